//! `call_host`: returns `"host says: " + host_reverse(input)`, where `host_reverse`
//! is a user host function imported from module `extism:host/user`
//! (wasm signature `(i64) -> i64`: kernel offsets of the argument and of the result).

use extism_pdk::{host_fn, plugin_fn, FnResult};

#[host_fn]
extern "ExtismHost" {
    fn host_reverse(input: String) -> String;
}

#[plugin_fn]
pub fn call_host(input: String) -> FnResult<String> {
    // SAFETY: the pdk declares every host import as an `unsafe fn`; this one only passes
    // a kernel offset of the input it wrote, and the wrapper copies the result out of
    // kernel memory by the offset the host returns.
    let reversed = unsafe { host_reverse(input)? };
    Ok(format!("host says: {reversed}"))
}

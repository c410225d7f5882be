//! `print` (built for wasm32-wasip1): writes `hello from wasi: <input>\n` to stdout
//! (input decoded as lossy UTF-8) and returns the input bytes unchanged as output.

use extism_pdk::{plugin_fn, FnResult};

#[plugin_fn]
pub fn print(input: Vec<u8>) -> FnResult<Vec<u8>> {
    println!("hello from wasi: {}", String::from_utf8_lossy(&input));
    Ok(input)
}

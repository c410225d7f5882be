//! Plugins that fail on purpose.
//!
//! * `fail` (a `#[plugin_fn]`): returns `Err`, so the pdk sets the error message
//!   `this plugin always fails: <input, lossy UTF-8>` and the export returns `-1`
//!   (the pdk maps every `?`/`Err(anyhow::Error)` to return code -1).
//! * `fail_code` (a raw export): sets no error and no output, and returns 7.

use extism_pdk::{plugin_fn, Error, FnResult};

#[plugin_fn]
pub fn fail(input: Vec<u8>) -> FnResult<()> {
    let msg = format!(
        "this plugin always fails: {}",
        String::from_utf8_lossy(&input)
    );
    Err(Error::msg(msg).into())
}

/// Returns 7 without touching input, output or the error slot.
///
/// `#[plugin_fn]` always calls `error_set` on its `Err` path (even with
/// `WithReturnCode`), so a message-less non-zero return needs a raw export.
#[no_mangle]
pub extern "C" fn fail_code() -> i32 {
    7
}

//! # plugin-adapter-env: a componentized plugin's host functions
//!
//! A classic Extism plugin imports its host functions (`config_get`, `var_get`, `var_set`,
//! `log_*`, `get_log_level`, `http_*`, and user functions) with handle-based signatures:
//! arguments and results are blocks of the kernel. Inside a composed plugin the kernel is
//! private, so a host cannot read those blocks. This adapter sits between the two: it exports
//! `extism:kernel/env` (the plugin's imports, with exactly their core types) and answers each
//! call by reading the argument blocks through the kernel's `raw` and `bulk` interfaces,
//! calling the value-based `extism:kernel/host` import, and copying the answer into a new
//! kernel block.
//!
//! Ownership follows the Extism runtime: the blocks passed to `config_get`, `var_get`,
//! `var_set`, `http_request` and `log_*` are freed here; a user function's argument is left
//! to the plugin (extism-pdk frees it). Handles that are not live read as empty, as they do
//! on the host backends, except keys: a `config_get` / `var_get` / `var_set` key that is not
//! a live block (nor `0`, the empty key) traps, as the host backends fail the call; a var
//! key that is not UTF-8 traps too, and a config key that is not UTF-8 matches nothing.
//! Empty answers are the null handle `0`, which extism-pdk reads as absent or empty.
//!
//! It traps when a key is not a key (above) and when the kernel cannot hold an answer (out
//! of memory), where the Extism runtime's host function fails too.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use plugin_adapter_rt::trap;

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin-env-adapter",
});

use exports::extism::kernel::env::Guest;
use extism::kernel::host::{self, LogLevel};
use extism::kernel::{bulk, names, raw};

/// The type the bindings' `Guest` trait is implemented on.
#[derive(Debug)]
pub struct EnvAdapter;

export!(EnvAdapter);

/// A copy of the live block `h`; empty for anything else.
fn read(h: u64) -> Vec<u8> {
    match raw::length(h) {
        0 => Vec::new(),
        len => bulk::read(h, 0, len).unwrap_or_default(),
    }
}

/// A copy of the block `h`, which is then freed.
fn take(h: u64) -> Vec<u8> {
    let bytes = read(h);
    raw::free(h);
    bytes
}

/// The key block `h` (`0`: the empty key), then freed; traps when it is not a live block.
fn take_key(h: u64) -> Vec<u8> {
    if h != 0 && raw::length(h) == 0 {
        trap()
    }
    take(h)
}

/// A var key: [`take_key`], and it must be UTF-8.
fn take_var_key(h: u64) -> String {
    String::from_utf8(take_key(h)).unwrap_or_else(|_| trap())
}

/// A log message, lossy UTF-8, then freed.
fn take_message(h: u64) -> String {
    String::from_utf8_lossy(&take(h)).into_owned()
}

/// A new block holding `data`; `0` for empty data.
fn give(data: &[u8]) -> u64 {
    bulk::alloc_bytes(data).unwrap_or_else(|_| trap())
}

fn log(level: LogLevel, message: u64) {
    // Copied out only when its level is kept (trace 0 ... error 4; `get-log-level` is the
    // least severe level kept, `i32::MAX` when logging is off).
    if (level as i32) < host::get_log_level() {
        raw::free(message);
        return;
    }
    let message = take_message(message);
    host::log(level, &message);
}

impl Guest for EnvAdapter {
    fn config_get(key: u64) -> u64 {
        // Config keys are strings: one that is not UTF-8 matches nothing.
        let Ok(key) = String::from_utf8(take_key(key)) else {
            return 0;
        };
        match host::config_get(&key) {
            Some(value) => give(value.as_bytes()),
            None => 0,
        }
    }

    fn var_get(key: u64) -> u64 {
        match host::var_get(&take_var_key(key)) {
            Some(value) => give(&value),
            None => 0,
        }
    }

    fn var_set(key: u64, value: u64) {
        let key = take_var_key(key);
        let value = (value != 0).then(|| take(value));
        host::var_set(&key, value.as_deref());
    }

    fn http_request(request: u64, body: u64) -> u64 {
        let request = take(request);
        let body = (body != 0).then(|| take(body));
        give(&host::http_request(&request, body.as_deref()))
    }

    fn http_status_code() -> i32 {
        i32::from(host::http_status_code())
    }

    fn http_headers() -> u64 {
        match host::http_headers() {
            Some(headers) => give(&headers),
            None => 0,
        }
    }

    fn get_log_level() -> i32 {
        host::get_log_level()
    }

    fn log_trace(message: u64) {
        log(LogLevel::Trace, message);
    }

    fn log_debug(message: u64) {
        log(LogLevel::Debug, message);
    }

    fn log_info(message: u64) {
        log(LogLevel::Info, message);
    }

    fn log_warn(message: u64) {
        log(LogLevel::Warn, message);
    }

    fn log_error(message: u64) {
        log(LogLevel::Error, message);
    }

    fn user_call(index: u32, arg: u64) -> u64 {
        let functions = names::user_functions();
        let Some((namespace, name)) = functions.get(index as usize) else {
            trap()
        };
        give(&host::user_call(namespace, name, &read(arg)))
    }
}

//! # kernel-abi: the Extism kernel ABI, written once
//!
//! An Extism plugin imports two kinds of functions from the module [`ENV`]
//! (`extism:host/env`): the **kernel**'s 20 functions (blocks, input, output, error) and the
//! runtime's 12 **host functions** (config, vars, HTTP, logging). This crate is the one place
//! that lists them, with their types; every other crate reads it:
//!
//! - as **data**: [`KERNEL_FUNCTIONS`] and [`HOST_FUNCTIONS`], each a list of [`Function`]
//!   (name, parameter and result wasm types), with [`kernel_function`] and [`host_function`]
//!   to look one up by name (a host's linker, a post-link check, componentize);
//! - as **code**: [`for_each_kernel_function!`] and [`for_each_host_function!`] call a macro
//!   of yours once with the whole list, in Rust types, so that a crate can generate one item
//!   per function (the core module's exports, a component's `raw` interface, a host's
//!   forwarders, the test drivers) without spelling the list again.
//!
//! In the macros' lists a value is a Rust `u64` (wasm `i64`), `u8` (wasm `i32`, the byte of
//! the `*_u8` functions) or `i32` (wasm `i32`, the host functions' codes and levels).
//! [`core_type!`] gives the Rust type a core-wasm embedder (wasmtime's typed functions) uses
//! for each, and [`val_type!`] the [`ValType`].
//!
//! `no_std`, no dependencies, nothing but constants and macros.
#![no_std]

/// The module a plugin imports the kernel and the host functions from.
pub const ENV: &str = "extism:host/env";
/// The default module of user host functions.
pub const USER: &str = "extism:host/user";
/// The WASI preview 1 module.
pub const WASI_P1: &str = "wasi_snapshot_preview1";
/// The kernel's linear memory export, which hosts read and write at handle offsets.
pub const MEMORY: &str = "memory";
/// The kernel's mutable `externref` global export that Extism's runtime sets before a call.
pub const CONTEXT_GLOBAL: &str = "extism_context";

/// The symbol of the core module's return area: bytes of its memory outside the heap that a
/// composer's glue may use for the canonical ABI's return areas (rustc exports it as a
/// global holding its address; the post-link step removes that export).
pub const RETURN_AREA_SYMBOL: &str = "EXTISM_RETURN_AREA";
/// The custom section of the core module that records the return area: its address, a
/// little-endian `u32`.
pub const RETURN_AREA_SECTION: &str = "extism-kernel-return-area";
/// The return area's size in bytes (it is 8-aligned).
pub const RETURN_AREA_BYTES: u32 = 32;

/// A wasm value type of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

/// A function of the ABI: its name and wasm type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Function {
    /// The export (kernel) or import (host function) name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result types (none or one).
    pub results: &'static [ValType],
}

/// Calls `$m! { ... }` with the kernel's 20 functions, in the order KERNEL-ABI.md lists
/// them, one `$(#[doc])* fn name(arg: type, ...) [-> type];` each (types `u64` or `u8`).
#[macro_export]
macro_rules! for_each_kernel_function {
    ($m:ident) => {
        $m! {
            /// Allocates a block of `n` bytes; `0` when `n == 0` or memory cannot grow.
            fn alloc(n: u64) -> u64;
            /// Frees a live block; anything else is ignored.
            fn free(h: u64);
            /// Length of a live block; `0` for any other value.
            fn length(h: u64) -> u64;
            /// Same as `length` (already O(1) and exact).
            fn length_unsafe(h: u64) -> u64;
            /// Reads a byte; `0` outside the heap.
            fn load_u8(p: u64) -> u8;
            /// Reads a little-endian `u64`; `0` outside the heap.
            fn load_u64(p: u64) -> u64;
            /// Writes a byte; ignored outside the heap.
            fn store_u8(p: u64, x: u8);
            /// Writes a little-endian `u64`; ignored outside the heap.
            fn store_u64(p: u64, x: u64);
            /// Reads a byte of the input; `0` past its end.
            fn input_load_u8(offset: u64) -> u8;
            /// Reads a little-endian `u64` of the input; `0` past its end.
            fn input_load_u64(offset: u64) -> u64;
            /// Marks a range as the input.
            fn input_set(h: u64, len: u64);
            /// Marks a range as the output.
            fn output_set(p: u64, len: u64);
            /// The input's length.
            fn input_length() -> u64;
            /// The input's offset.
            fn input_offset() -> u64;
            /// The output's length.
            fn output_length() -> u64;
            /// The output's offset.
            fn output_offset() -> u64;
            /// Sets (or, with `0`, clears) the error block.
            fn error_set(h: u64);
            /// The error block, `0` when none.
            fn error_get() -> u64;
            /// Forgets every block, the input, the output and the error.
            fn reset();
            /// Bytes under the allocator's management.
            fn memory_bytes() -> u64;
        }
    };
}

/// Calls `$m! { ... }` with the 12 Extism host functions of [`ENV`], one
/// `$(#[doc])* fn name(arg: type, ...) [-> type];` each (types `u64`, handles, or `i32`).
#[macro_export]
macro_rules! for_each_host_function {
    ($m:ident) => {
        $m! {
            /// The config value of the key block, as a new block; `0` when unset.
            fn config_get(key: u64) -> u64;
            /// The var of the key block, as a new block; `0` when unset.
            fn var_get(key: u64) -> u64;
            /// Sets the var of the key block to the value block (`0`: removes it).
            fn var_set(key: u64, value: u64);
            /// Makes the HTTP request described by a JSON block, with an optional body block;
            /// the response body as a new block.
            fn http_request(request: u64, body: u64) -> u64;
            /// The status of the last HTTP response.
            fn http_status_code() -> i32;
            /// The last HTTP response's headers as a JSON block; `0` when not kept.
            fn http_headers() -> u64;
            /// The log level in force: trace 0 ... error 4, `i32::MAX` when off.
            fn get_log_level() -> i32;
            /// Logs the message block at trace level.
            fn log_trace(message: u64);
            /// Logs the message block at debug level.
            fn log_debug(message: u64);
            /// Logs the message block at info level.
            fn log_info(message: u64);
            /// Logs the message block at warn level.
            fn log_warn(message: u64);
            /// Logs the message block at error level.
            fn log_error(message: u64);
        }
    };
}

/// The [`ValType`] of a Rust type in the lists above (`u64`, `u8`, `i32`).
#[macro_export]
macro_rules! val_type {
    (u64) => {
        $crate::ValType::I64
    };
    (u8) => {
        $crate::ValType::I32
    };
    (i32) => {
        $crate::ValType::I32
    };
}

/// The Rust type a core-wasm embedder passes for a type in the lists above: `u8` is an
/// `i32` in core wasm, so `u32`; the others are themselves.
#[macro_export]
macro_rules! core_type {
    (u64) => {
        u64
    };
    (u8) => {
        u32
    };
    (i32) => {
        i32
    };
}

/// The result type a core-wasm embedder uses for an optional result in the lists above:
/// `()` for none, else [`core_type!`].
#[macro_export]
macro_rules! core_result {
    () => {
        ()
    };
    ($t:ident) => {
        $crate::core_type!($t)
    };
}

macro_rules! table {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        &[$(Function {
            name: stringify!($name),
            params: &[$(val_type!($ty)),*],
            results: &[$(val_type!($ret))?],
        }),*]
    };
}

/// The kernel's functions, in the order of [`for_each_kernel_function!`].
pub const KERNEL_FUNCTIONS: &[Function] = for_each_kernel_function!(table);

/// The Extism host functions of [`ENV`], in the order of [`for_each_host_function!`].
pub const HOST_FUNCTIONS: &[Function] = for_each_host_function!(table);

fn find(list: &'static [Function], name: &str) -> Option<&'static Function> {
    list.iter().find(|f| f.name == name)
}

/// The kernel function `name`, if it is one.
pub fn kernel_function(name: &str) -> Option<&'static Function> {
    find(KERNEL_FUNCTIONS, name)
}

/// The host function `name` of [`ENV`], if it is one.
pub fn host_function(name: &str) -> Option<&'static Function> {
    find(HOST_FUNCTIONS, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_have_the_abi_counts_and_no_name_twice() {
        assert_eq!(KERNEL_FUNCTIONS.len(), 20);
        assert_eq!(HOST_FUNCTIONS.len(), 12);
        let all = || KERNEL_FUNCTIONS.iter().chain(HOST_FUNCTIONS);
        for f in all() {
            assert_eq!(all().filter(|g| g.name == f.name).count(), 1, "{}", f.name);
            assert!(f.results.len() <= 1, "{}", f.name);
        }
    }

    #[test]
    fn byte_functions_are_i32_and_everything_else_of_the_kernel_i64() {
        use ValType::{I32, I64};
        let store_u8 = kernel_function("store_u8").unwrap();
        assert_eq!(
            (store_u8.params, store_u8.results),
            (&[I64, I32][..], &[][..])
        );
        assert_eq!(kernel_function("load_u8").unwrap().results, [I32]);
        assert_eq!(kernel_function("input_load_u8").unwrap().results, [I32]);
        for f in KERNEL_FUNCTIONS.iter().filter(|f| !f.name.ends_with("_u8")) {
            assert!(
                f.params.iter().chain(f.results).all(|t| *t == I64),
                "{}",
                f.name
            );
        }
        assert_eq!(host_function("get_log_level").unwrap().results, [I32]);
        assert!(kernel_function("config_get").is_none());
        assert!(host_function("alloc").is_none());
    }
}

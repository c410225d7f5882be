//! # plugin-adapter-entry: a componentized plugin's entry point
//!
//! Exports `extism:kernel/entry`'s `call(name, input)`: the Extism call sequence that a
//! host runs around a classic plugin's export, inside the composition. It looks `name` up in
//! the plugin's function table (`extism:kernel/names`), prepares the kernel (`bulk`'s
//! `prepare-call`: clear the error, reset, set the input), calls the function through
//! `extism:kernel/dispatch`, and returns the output, or the return code with the error
//! message the plugin set.
//!
//! Errors are values (`call-error`); a trap of the plugin or of a host service traps the
//! call. It traps itself only when the kernel cannot give back an output it set (the range
//! left the heap), which the host backends report as a failure too.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use plugin_adapter_rt::trap;

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin-entry-adapter",
});

use exports::extism::kernel::entry::{CallError, Guest};
use extism::kernel::{bulk, dispatch, names};

/// The type the bindings' `Guest` trait is implemented on.
#[derive(Debug)]
pub struct EntryAdapter;

export!(EntryAdapter);

impl Guest for EntryAdapter {
    fn call(name: String, input: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let Some(index) = names::functions().iter().position(|n| *n == name) else {
            return Err(CallError::NoFunction(name));
        };
        if bulk::prepare_call(&input).is_err() {
            return Err(CallError::InputTooLarge(input.len() as u64));
        }
        let code = dispatch::invoke(index as u32);
        if code != 0 {
            return Err(CallError::Failed((code, bulk::error())));
        }
        Ok(bulk::output().unwrap_or_else(|_| trap()))
    }
}

//! The raw Extism kernel ABI: the 20 function exports and their wasm types.

use wasmparser::ValType::{self, I32, I64};

/// Name, parameters and results of every function a kernel module exports, in the order
/// KERNEL-ABI.md lists them.
pub const FUNCTIONS: [(&str, &[ValType], &[ValType]); 20] = [
    ("alloc", &[I64], &[I64]),
    ("free", &[I64], &[]),
    ("length", &[I64], &[I64]),
    ("length_unsafe", &[I64], &[I64]),
    ("load_u8", &[I64], &[I32]),
    ("load_u64", &[I64], &[I64]),
    ("store_u8", &[I64, I32], &[]),
    ("store_u64", &[I64, I64], &[]),
    ("input_load_u8", &[I64], &[I32]),
    ("input_load_u64", &[I64], &[I64]),
    ("input_set", &[I64, I64], &[]),
    ("output_set", &[I64, I64], &[]),
    ("input_length", &[], &[I64]),
    ("input_offset", &[], &[I64]),
    ("output_length", &[], &[I64]),
    ("output_offset", &[], &[I64]),
    ("error_set", &[I64], &[]),
    ("error_get", &[], &[I64]),
    ("reset", &[], &[]),
    ("memory_bytes", &[], &[I64]),
];

/// The kernel's linear memory, which hosts read and write at handle offsets.
pub const MEMORY: &str = "memory";

/// The mutable `externref` global the Extism runtime sets before each call.
pub const CONTEXT_GLOBAL: &str = "extism_context";

/// The wasm type of the ABI function `name`, if it is one.
pub fn function_type(name: &str) -> Option<(&'static [ValType], &'static [ValType])> {
    FUNCTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, p, r)| (p, r))
}

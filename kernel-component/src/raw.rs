//! `extism:kernel/raw`: the raw Extism ABI, one [`Kernel`](kernel_core::Kernel) method each.

use crate::Component;
use crate::arena::with_kernel;
use crate::exports::extism::kernel::raw::Guest;

impl Guest for Component {
    fn alloc(n: u64) -> u64 {
        with_kernel(|k| k.alloc(n))
    }

    fn free(h: u64) {
        with_kernel(|k| k.free(h))
    }

    fn length(h: u64) -> u64 {
        with_kernel(|k| k.length(h))
    }

    fn length_unsafe(h: u64) -> u64 {
        with_kernel(|k| k.length_unsafe(h))
    }

    fn load_u8(p: u64) -> u8 {
        with_kernel(|k| k.load_u8(p))
    }

    fn load_u64(p: u64) -> u64 {
        with_kernel(|k| k.load_u64(p))
    }

    fn input_load_u8(offset: u64) -> u8 {
        with_kernel(|k| k.input_load_u8(offset))
    }

    fn input_load_u64(offset: u64) -> u64 {
        with_kernel(|k| k.input_load_u64(offset))
    }

    fn store_u8(p: u64, x: u8) {
        with_kernel(|k| k.store_u8(p, x))
    }

    fn store_u64(p: u64, x: u64) {
        with_kernel(|k| k.store_u64(p, x))
    }

    fn input_set(h: u64, len: u64) {
        with_kernel(|k| k.input_set(h, len))
    }

    fn output_set(p: u64, len: u64) {
        with_kernel(|k| k.output_set(p, len))
    }

    fn input_length() -> u64 {
        with_kernel(|k| k.input_length())
    }

    fn input_offset() -> u64 {
        with_kernel(|k| k.input_offset())
    }

    fn output_length() -> u64 {
        with_kernel(|k| k.output_length())
    }

    fn output_offset() -> u64 {
        with_kernel(|k| k.output_offset())
    }

    fn reset() {
        with_kernel(|k| k.reset())
    }

    fn error_set(h: u64) {
        with_kernel(|k| k.error_set(h))
    }

    fn error_get() -> u64 {
        with_kernel(|k| k.error_get())
    }

    fn memory_bytes() -> u64 {
        with_kernel(|k| k.memory_bytes())
    }
}

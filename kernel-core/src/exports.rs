//! The 20 raw Extism exports of the core module: a thin layer over one [`Kernel`] in a static.
//!
//! Compiled only for wasm32 with the `exports` feature, so no other artifact (the component,
//! a host binary) ever gets symbols named `alloc` or `free`.

use crate::io::Kernel;
use crate::memory::WasmMemory;
use core::cell::UnsafeCell;

struct Global(UnsafeCell<Kernel<WasmMemory>>);

// SAFETY: the core module is built for wasm32 without the threads proposal, so there is only
// ever one thread, and no export calls another one.
unsafe impl Sync for Global {}

static KERNEL: Global = Global(UnsafeCell::new(Kernel::new(WasmMemory)));

fn kernel() -> &'static mut Kernel<WasmMemory> {
    // SAFETY: single-threaded (see `Global`), and each export takes this reference once and
    // drops it before returning, so two never coexist.
    unsafe { &mut *KERNEL.0.get() }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Allocates a block of `n` bytes; `0` when `n == 0` or memory cannot grow.
#[unsafe(no_mangle)]
pub extern "C" fn alloc(n: u64) -> u64 {
    kernel().alloc(n)
}

/// Frees a live block; anything else is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn free(h: u64) {
    kernel().free(h)
}

/// Length of a live block; `0` for any other value.
#[unsafe(no_mangle)]
pub extern "C" fn length(h: u64) -> u64 {
    kernel().length(h)
}

/// Same as `length` (already O(1) and exact).
#[unsafe(no_mangle)]
pub extern "C" fn length_unsafe(h: u64) -> u64 {
    kernel().length_unsafe(h)
}

/// Reads a byte; `0` outside the heap.
#[unsafe(no_mangle)]
pub extern "C" fn load_u8(p: u64) -> u8 {
    kernel().load_u8(p)
}

/// Reads a little-endian `u64`; `0` outside the heap.
#[unsafe(no_mangle)]
pub extern "C" fn load_u64(p: u64) -> u64 {
    kernel().load_u64(p)
}

/// Reads a byte of the input; `0` past its end.
#[unsafe(no_mangle)]
pub extern "C" fn input_load_u8(offset: u64) -> u8 {
    kernel().input_load_u8(offset)
}

/// Reads a little-endian `u64` of the input; `0` past its end.
#[unsafe(no_mangle)]
pub extern "C" fn input_load_u64(offset: u64) -> u64 {
    kernel().input_load_u64(offset)
}

/// Writes a byte; ignored outside the heap.
#[unsafe(no_mangle)]
pub extern "C" fn store_u8(p: u64, x: u8) {
    kernel().store_u8(p, x)
}

/// Writes a little-endian `u64`; ignored outside the heap.
#[unsafe(no_mangle)]
pub extern "C" fn store_u64(p: u64, x: u64) {
    kernel().store_u64(p, x)
}

/// Marks a range as the input.
#[unsafe(no_mangle)]
pub extern "C" fn input_set(h: u64, len: u64) {
    kernel().input_set(h, len)
}

/// Marks a range as the output.
#[unsafe(no_mangle)]
pub extern "C" fn output_set(p: u64, len: u64) {
    kernel().output_set(p, len)
}

/// The input's length.
#[unsafe(no_mangle)]
pub extern "C" fn input_length() -> u64 {
    kernel().input_length()
}

/// The input's offset.
#[unsafe(no_mangle)]
pub extern "C" fn input_offset() -> u64 {
    kernel().input_offset()
}

/// The output's length.
#[unsafe(no_mangle)]
pub extern "C" fn output_length() -> u64 {
    kernel().output_length()
}

/// The output's offset.
#[unsafe(no_mangle)]
pub extern "C" fn output_offset() -> u64 {
    kernel().output_offset()
}

/// Forgets every block, the input, the output and the error.
#[unsafe(no_mangle)]
pub extern "C" fn reset() {
    kernel().reset()
}

/// Sets (or, with `0`, clears) the error block.
#[unsafe(no_mangle)]
pub extern "C" fn error_set(h: u64) {
    kernel().error_set(h)
}

/// The error block, `0` when none.
#[unsafe(no_mangle)]
pub extern "C" fn error_get() -> u64 {
    kernel().error_get()
}

/// Bytes under the allocator's management.
#[unsafe(no_mangle)]
pub extern "C" fn memory_bytes() -> u64 {
    kernel().memory_bytes()
}

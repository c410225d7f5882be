//! # plugin-adapter-rt: what both plugin adapters share
//!
//! The two adapters of a componentized Extism plugin (`plugin-adapter-env`,
//! `plugin-adapter-entry`) are `no_std` wit-bindgen guests built for
//! `wasm32-unknown-unknown`, like the kernel component. On wasm32 this crate gives each of
//! them:
//!
//! - a **global allocator**: kernel-core's [`Heap`](kernel_core::Heap) over the module's own
//!   linear memory, from `__heap_base` up (the canonical ABI's `cabi_realloc`, the lists and
//!   strings passed between instances). Blocks are 8-aligned; a layout aligned above 8 gets
//!   null. `alloc` and `dealloc` are O(1);
//! - a **panic handler** that traps (the message is dropped, so no formatting is linked);
//! - [`trap`], for the few places where an adapter cannot go on (the kernel is out of
//!   memory where no error can be reported).
//!
//! A cdylib links this crate only if it names it: each adapter says
//! `use plugin_adapter_rt as _;`. On the host (`cargo clippy --workspace --all-targets`) only
//! [`trap`] exists, and it panics.
#![no_std]

// On the host (clippy, tests) the adapters are cdylibs too: std gives them a panic handler.
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

#[cfg(target_arch = "wasm32")]
mod allocator;

/// Stops the component: a wasm `unreachable` trap on wasm32, a panic elsewhere.
#[cold]
pub fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("plugin adapter trap");
}

/// A panic is a trap.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

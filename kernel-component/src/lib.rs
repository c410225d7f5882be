//! # kernel-component: the Extism kernel as a WebAssembly component
//!
//! The component form of this project's Extism kernel: a thin [`wit_bindgen`] guest over
//! [`kernel_core`] that exports the interfaces of the `kernel` world in `wit/`
//! (`extism:kernel/types`, `extism:kernel/raw` and `extism:kernel/bulk`). Every function is
//! one call into [`kernel_core::Kernel`]; this crate owns no allocator logic. The wasm32 build
//! is a core module that `wit-component` (`ComponentEncoder`, or `wasm-tools component new`)
//! wraps into the component:
//!
//! ```text
//! cargo build -p kernel-component --target wasm32-unknown-unknown --profile wasm-release \
//!     --target-dir target/wasm-build
//! wasm-tools component new \
//!     target/wasm-build/wasm32-unknown-unknown/wasm-release/kernel_component.wasm -o kernel.wasm
//! ```
//!
//! Build it in a cargo invocation of its own: cargo unifies features across the packages of
//! one invocation, and kernel-core's `exports` feature (raw `alloc`/`free` symbols) must
//! never reach this module.
//!
//! ## Two heaps in one linear memory
//!
//! ```text
//!  0          __heap_base                                                      memory end
//!  | data, stack | global allocator: kernel-core's Heap over linear memory              |
//!                  | metadata | canonical ABI lists, strings | Extism arena | ...        |
//!                                                            ^ offset 0 of every handle
//! ```
//!
//! - **The global allocator** (`allocator.rs`, wasm32 only) is kernel-core's
//!   [`Heap`](kernel_core::Heap) over the module's own linear memory (`WasmMemory`), from
//!   `__heap_base` up. It serves every Rust allocation: the `cabi_realloc` export through
//!   which the host hands in `list<u8>` and `string` arguments, the lists and strings the
//!   exports return (freed by the post-return functions), and the Extism arena's buffer.
//!   Alignments up to 8 are served; a larger one gets null (an allocation failure).
//! - **The Extism heap** (`arena.rs`) is a [`Kernel`](kernel_core::Kernel) over an arena
//!   (`VecMemory`): whole 64 KiB pages in one buffer of the global allocator, created by the
//!   first call that needs it and doubled, by one copy, when it must grow. Handles are
//!   offsets into that arena, not addresses of the component's memory (which a component
//!   does not export anyway): hosts copy bytes with `bulk`, plugins go byte by byte with
//!   `raw`.
//! - Both heaps are kernel-core's heap over one memory type, `KernelMemory` (`memory.rs`), an
//!   enum whose methods forward to `WasmMemory` or `VecMemory`: the heap's code is then
//!   linked once rather than twice (about 3 KB less).
//!
//! Because the canonical ABI's buffers are blocks of the global allocator and the Extism
//! blocks lie inside the arena, itself a single block of that allocator, the two can never
//! overlap: no `store-u8` can reach an argument being lifted or a result being lowered, and
//! `reset` (which lays the arena out anew) never touches a buffer the canonical ABI holds.
//! In particular `prepare-call` owns its `input` list, a global-allocator block, throughout
//! the `reset` it performs before copying that list into the fresh arena.
//!
//! ## No imports
//!
//! The component imports nothing, not even WASI. It is built for `wasm32-unknown-unknown`
//! (`wasm32-wasip2` would link `std`, whose runtime imports about a dozen WASI interfaces),
//! it is `no_std` with its own global allocator and panic handler, and it needs no clock,
//! randomness, environment or I/O: memory comes from `memory.grow`, a panic is a trap. A host
//! therefore instantiates it with an empty linker, next to any plugin.
//!
//! ## Cost and failure
//!
//! Each export costs what the `Kernel` method it calls costs (O(1) for the raw ABI; the
//! copying operations O(bytes copied)), plus the arena's occasional doubling. Nothing traps
//! on any argument. A `bulk` function whose result cannot be allocated returns
//! `out-of-memory`; the component traps only when its memory is exhausted where no error can
//! be reported: lifting an argument list, building an `error` string, or allocating the first
//! 64 KiB of the arena. A re-entrant call into the kernel (impossible through the component
//! model) would trap too.
//!
//! On the host this crate is only compiled for `cargo clippy --workspace --all-targets`: it
//! then uses `std`'s allocator and panic handler and one kernel per thread.
#![no_std]

extern crate alloc;
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

#[cfg(target_arch = "wasm32")]
mod allocator;
mod arena;
mod bulk;
mod memory;
mod raw;

wit_bindgen::generate!({
    path: "../wit",
    world: "kernel",
});

/// The type the bindings' `Guest` traits are implemented on.
#[derive(Debug)]
pub struct Component;

export!(Component);

/// A panic (none is expected: kernel-core and this crate have no panicking path for any
/// input) is a trap. The message is dropped, so no formatting code is linked.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

//! # kernel-core: an Extism-compatible kernel
//!
//! An Extism plugin keeps its call's input, output and error, and every byte block it hands
//! to the host, in the memory of a small companion module: the kernel. This crate is that
//! kernel's logic, `#![no_std]` and without dependencies: an allocator for byte blocks
//! ([`Heap`]) and the call's slots ([`Kernel`]), over a [`Memory`] that is the module's own
//! linear memory on wasm and an owned buffer in native tests, under miri, and in the
//! component.
//!
//! ## Memory layout
//!
//! ```text
//!  0            __heap_base                                                      memory end
//!  | data, stack |  metadata block  | block | block | free | block | ... | free (top)   |
//!                 ^ records + hash index (not accessible to loads and stores)
//! ```
//!
//! That is the layout after the first operation and after every `reset`; as the record table
//! doubles it moves to the end of free space, usually the top of the heap (see `heap.rs`).
//!
//! Blocks carry no headers: their sizes, states and links live in 32-byte records in the
//! metadata block, which also holds a hash index from a live block's start to its record.
//! The heap's root (bitmaps, class-list heads, bounds) is a Rust static below
//! `__heap_base`. Loads and stores are accepted only in `[heap start, memory end)` outside
//! the metadata block (upper bound exclusive), so a plugin can write anywhere in the blocks
//! but never into the allocator.
//!
//! ## Cost of each operation
//!
//! | operation | cost |
//! |---|---|
//! | `alloc` | O(1): TLSF good fit over 27 x 8 size classes; memory grows only when no free block fits, by the pages missing |
//! | `free`, `length`, `length_unsafe` | O(1) expected: one hash probe run, exact for any 64-bit value |
//! | `reset` | O(1): the heap is laid out anew, as on a fresh start |
//! | loads, stores, input loads | O(1): four comparisons |
//! | metadata growth | O(blocks in use), at doublings of the record table and when it moves up as memory grows (amortised O(1)) |
//!
//! ## On bad input
//!
//! Nothing traps or panics for any argument. `alloc` of a size that cannot fit returns `0`
//! and never wraps; `free` and `length` of anything but a live handle are a no-op and `0`;
//! loads outside the heap give `0`, stores there are ignored; `input_set`/`output_set` of
//! a range outside the heap and `error_set` of a non-handle are ignored. The allocator's
//! state can only change through its own operations, so no sequence of calls can make two
//! live blocks overlap or hand out memory outside the heap ([`Heap::check_invariants`]
//! states the invariants; the tests run it after every operation).
//!
//! ## Features
//!
//! None is on by default, and none turns the access checks above off: every build keeps the
//! metadata block out of reach of loads and stores (four comparisons per access).
//!
//! - `exports`: the 20 raw `#[no_mangle]` Extism exports (only for wasm32, only for the core
//!   module; see `exports.rs`).
//! - `alloc`: [`VecMemory`]. `check-invariants`: the scanner outside tests.
//!   `testing`: the shared action generator and shadow model ([`testing`]).
#![no_std]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod bulk;
#[cfg(feature = "testing")]
pub mod contract;
#[cfg(all(feature = "exports", target_arch = "wasm32"))]
mod exports;
#[cfg(target_arch = "wasm32")]
mod global_alloc;
mod heap;
mod io;
mod memory;
#[cfg(feature = "testing")]
pub mod testing;

pub use bulk::Error;
#[cfg(target_arch = "wasm32")]
pub use global_alloc::HeapAllocator;
pub use heap::{ALIGN, Heap, INITIAL_RECORDS, MAX_ALLOC, MIN_SPLIT};
pub use io::Kernel;
#[cfg(any(feature = "alloc", test))]
pub use memory::VecMemory;
#[cfg(target_arch = "wasm32")]
pub use memory::WasmMemory;
pub use memory::{MAX_MEMORY, Memory, PAGE_SIZE};

#[cfg(test)]
mod tests;

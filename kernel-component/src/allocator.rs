//! The component's global allocator: kernel-core's `Heap` over the module's own linear
//! memory ([`WasmMemory`], through [`KernelMemory::Linear`]), from `__heap_base` up, growing
//! it with `memory.grow` by the pages it needs.
//!
//! It serves every Rust allocation of the component: the canonical ABI's `cabi_realloc`, the
//! returned lists and strings, and the buffer of the Extism arena (`arena.rs`).
//!
//! The allocator itself is kernel-core's [`HeapAllocator`] (shared with the plugin adapters):
//! 8-aligned blocks (every type this crate and the bindings allocate), O(1) `alloc` and
//! `dealloc`.

use crate::memory::KernelMemory;
use kernel_core::{HeapAllocator, WasmMemory};

// SAFETY: `KernelMemory::Linear` forwards every method to `WasmMemory`, and this value never
// changes variant (see `memory.rs`: nothing ever assigns a `KernelMemory` after building it),
// so the allocator's memory behaves exactly as `WasmMemory` for the module's whole life.
#[global_allocator]
static GLOBAL: HeapAllocator<KernelMemory> =
    unsafe { HeapAllocator::over_linear_memory(KernelMemory::Linear(WasmMemory)) };

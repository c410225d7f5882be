//! The memory under both of the component's heaps, as one type.
//!
//! The global allocator's heap lives in the module's linear memory ([`WasmMemory`], wasm32
//! only); the Extism heap lives in an arena ([`VecMemory`]). Over two memory types
//! kernel-core's heap would be compiled twice, about 3 KB of a component of about 20 KB.
//! [`KernelMemory`] is one type with a variant per backing, each method a `match` that
//! forwards to kernel-core's own implementation, so the heap is compiled once. It adds no
//! memory logic of its own.

#[cfg(target_arch = "wasm32")]
use kernel_core::WasmMemory;
use kernel_core::{Memory, VecMemory};

/// The memory a heap of the component manages.
#[derive(Debug)]
pub enum KernelMemory {
    /// The module's linear memory from `__heap_base` up: the global allocator's.
    #[cfg(target_arch = "wasm32")]
    Linear(WasmMemory),
    /// A buffer of whole pages owned by the global allocator: the Extism heap's.
    Arena(VecMemory),
}

// SAFETY: every method forwards to the implementation of the value's own variant, which
// upholds the contract; a value never changes variant after it is given to its heap (this
// crate only ever builds one in a static's initialiser or in `arena::new_kernel`, and never
// assigns it afterwards), so all four methods always describe one and the same memory.
unsafe impl Memory for KernelMemory {
    fn heap_start(&self) -> u64 {
        match self {
            #[cfg(target_arch = "wasm32")]
            KernelMemory::Linear(m) => m.heap_start(),
            KernelMemory::Arena(m) => m.heap_start(),
        }
    }

    fn size(&self) -> u64 {
        match self {
            #[cfg(target_arch = "wasm32")]
            KernelMemory::Linear(m) => m.size(),
            KernelMemory::Arena(m) => m.size(),
        }
    }

    fn grow(&mut self, pages: u64) -> bool {
        match self {
            #[cfg(target_arch = "wasm32")]
            KernelMemory::Linear(m) => m.grow(pages),
            KernelMemory::Arena(m) => m.grow(pages),
        }
    }

    // Not inlined: the heap calls `at` for every field of a record it touches, and one shared
    // copy of this `match` instead of one per call site saves about 0.7 KB of code, at the
    // cost of a direct call per field access.
    #[inline(never)]
    fn at(&self, off: usize) -> *mut u8 {
        match self {
            #[cfg(target_arch = "wasm32")]
            KernelMemory::Linear(m) => m.at(off),
            KernelMemory::Arena(m) => m.at(off),
        }
    }
}

//! [`HeapAllocator`]: a [`Heap`] as a wasm module's global allocator, for the no_std guests
//! built on this crate (the kernel component and the plugin adapters).
//!
//! Blocks are 8-aligned ([`ALIGN`]), so layouts aligned to at most 8 are served; a larger
//! alignment gets a null pointer, which Rust reports as an allocation failure. `realloc` is
//! `GlobalAlloc`'s default (allocate, copy, free) and `alloc_zeroed` zeroes the new block.
//! `alloc` and `dealloc` cost what the heap's `alloc` and `free` cost: O(1).

use crate::{ALIGN, Heap, Memory};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

#[cfg(target_feature = "atomics")]
compile_error!("HeapAllocator assumes a single thread (no wasm `atomics`)");

/// A [`Heap`] over `M` in a static, serving the module's Rust allocations:
/// `#[global_allocator] static GLOBAL: HeapAllocator<WasmMemory> = HeapAllocator::new(WasmMemory);`
/// The heap must grow its memory directly (never through the global allocator), as
/// [`WasmMemory`](crate::WasmMemory) does.
#[derive(Debug)]
pub struct HeapAllocator<M: Memory>(UnsafeCell<Heap<M>>);

// SAFETY: this module exists on wasm32 only, and without the `atomics` feature (refused above)
// a wasm32 module has exactly one thread, so the heap is never reached from two threads.
unsafe impl<M: Memory> Sync for HeapAllocator<M> {}

impl<M: Memory> HeapAllocator<M> {
    /// An allocator whose heap lives in `memory` (laid out at the first allocation).
    pub const fn new(memory: M) -> Self {
        HeapAllocator(UnsafeCell::new(Heap::new(memory)))
    }

    /// The heap, for one operation.
    ///
    /// # Safety
    ///
    /// No other reference to the heap may be alive while the returned one is. The
    /// `GlobalAlloc` methods below each take it once and drop it before returning, and the
    /// heap never allocates through the global allocator (it grows its memory directly), so
    /// on a single thread two never coexist.
    #[expect(
        clippy::mut_from_ref,
        reason = "exclusive by the contract stated above"
    )]
    unsafe fn heap(&self) -> &mut Heap<M> {
        // SAFETY: the caller guarantees exclusivity (see `# Safety`); the cell lives forever.
        unsafe { &mut *self.0.get() }
    }
}

// SAFETY: blocks come from the heap, which hands out disjoint, 8-aligned ranges of at least
// the requested size inside its memory, and never moves or reuses a block until it is freed;
// layouts aligned above 8 get null rather than a misaligned block; `heap.alloc` returns 0 on
// failure, which becomes the null pointer; nothing here panics or unwinds.
unsafe impl<M: Memory> GlobalAlloc for HeapAllocator<M> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() as u64 > ALIGN {
            return null_mut();
        }
        // SAFETY: the only heap reference in this call; see `heap`.
        let heap = unsafe { self.heap() };
        let off = heap.alloc(layout.size() as u64);
        // Offsets are addresses in linear memory (below 2^32, so they fit a wasm32 `usize`);
        // offset 0 (failure) is the null pointer.
        heap.memory().at(off as usize)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the only heap reference in this call; see `heap`.
        let heap = unsafe { self.heap() };
        heap.free(ptr.expose_provenance() as u64);
    }
}

//! The global allocator: kernel-core's [`Heap`] over the module's own linear memory
//! ([`WasmMemory`]), growing it with `memory.grow` by the pages it needs.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use kernel_core::{ALIGN, Heap, Memory, WasmMemory};

#[cfg(target_feature = "atomics")]
compile_error!("the adapters' allocator assumes a single thread (no wasm `atomics`)");

/// The global allocator: one [`Heap`] in a static.
struct AdapterAllocator(UnsafeCell<Heap<WasmMemory>>);

// SAFETY: wasm32 without the `atomics` feature (refused above) has exactly one thread, so the
// heap is never reached from two threads.
unsafe impl Sync for AdapterAllocator {}

#[global_allocator]
static GLOBAL: AdapterAllocator = AdapterAllocator(UnsafeCell::new(Heap::new(WasmMemory)));

impl AdapterAllocator {
    /// The heap, for one operation.
    ///
    /// # Safety
    ///
    /// No other reference to the heap may be alive while the returned one is. The
    /// `GlobalAlloc` methods below each take it once and drop it before returning, and the
    /// heap never allocates through the global allocator (it grows linear memory directly),
    /// so on a single thread two never coexist.
    #[expect(
        clippy::mut_from_ref,
        reason = "exclusive by the contract stated above"
    )]
    unsafe fn heap(&self) -> &mut Heap<WasmMemory> {
        // SAFETY: the caller guarantees exclusivity (see `# Safety`); the cell lives forever.
        unsafe { &mut *self.0.get() }
    }
}

// SAFETY: blocks come from the heap, which hands out disjoint, 8-aligned ranges of at least
// the requested size inside linear memory, and never moves or reuses a block until it is
// freed; layouts aligned above 8 get null rather than a misaligned block; `heap.alloc`
// returns 0 on failure, which becomes the null pointer; nothing here panics or unwinds.
unsafe impl GlobalAlloc for AdapterAllocator {
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

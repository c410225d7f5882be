//! [`HeapAllocator`]: a [`Heap`] as a wasm module's global allocator, for the no_std guests
//! built on this crate (the kernel component and the plugin adapters).
//!
//! Blocks are 8-aligned ([`ALIGN`]), so layouts aligned to at most 8 are served; a larger
//! alignment gets a null pointer, which Rust reports as an allocation failure. `realloc` is
//! `GlobalAlloc`'s default (allocate, copy, free) and `alloc_zeroed` zeroes the new block.
//! `alloc` and `dealloc` cost what the heap's `alloc` and `free` cost: O(1).

use crate::{ALIGN, Heap, Memory, WasmMemory};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

#[cfg(target_feature = "atomics")]
compile_error!("HeapAllocator assumes a single thread (no wasm `atomics`)");

/// A [`Heap`] over the module's own linear memory in a static, serving the module's Rust
/// allocations:
///
/// ```no_run
/// use kernel_core::{HeapAllocator, WasmMemory};
///
/// #[global_allocator]
/// static GLOBAL: HeapAllocator = HeapAllocator::new(WasmMemory);
/// # fn main() {}
/// ```
///
/// Only linear memory: the allocator hands the heap's offsets out as pointers and takes
/// pointers back as offsets, which is right only where an offset is an address, offset 0 is
/// the null pointer and memory never moves. [`new`](Self::new) therefore takes
/// [`WasmMemory`] and nothing else; a type that wraps linear memory (the kernel component's
/// memory enum, which lets both of its heaps share one copy of the heap's code) needs the
/// unsafe [`over_linear_memory`](Self::over_linear_memory). Any other memory, a buffer
/// whose offsets are not addresses for instance, is refused:
///
/// ```compile_fail,E0308
/// use kernel_core::{HeapAllocator, Memory};
///
/// struct Empty;
/// // SAFETY: no bytes and no growth, so no offset is ever valid and the contract holds.
/// unsafe impl Memory for Empty {
///     fn heap_start(&self) -> u64 { 0 }
///     fn size(&self) -> u64 { 0 }
///     fn grow(&mut self, _pages: u64) -> bool { false }
///     fn at(&self, _off: usize) -> *mut u8 { core::ptr::null_mut() }
/// }
///
/// static GLOBAL: HeapAllocator<Empty> = HeapAllocator::new(Empty);
/// # fn main() {}
/// ```
///
/// (These examples exist only where this type does, on wasm32: `make test` compiles them with
/// `cargo test --doc -p kernel-core --target wasm32-wasip1`, a target the dev-dependencies
/// build for.)
#[derive(Debug)]
pub struct HeapAllocator<M: Memory = WasmMemory>(UnsafeCell<Heap<M>>);

// SAFETY: this module exists on wasm32 only, and without the `atomics` feature (refused above)
// a wasm32 module has exactly one thread, so the heap is never reached from two threads.
unsafe impl<M: Memory> Sync for HeapAllocator<M> {}

impl HeapAllocator<WasmMemory> {
    /// An allocator whose heap lives in the module's linear memory (laid out at the first
    /// allocation).
    pub const fn new(memory: WasmMemory) -> Self {
        HeapAllocator(UnsafeCell::new(Heap::new(memory)))
    }
}

impl<M: Memory> HeapAllocator<M> {
    /// An allocator whose heap lives in `memory`, a type that forwards to the module's own
    /// linear memory.
    ///
    /// # Safety
    ///
    /// For as long as the allocator lives, `memory` must behave exactly as [`WasmMemory`]
    /// does: `at(off)` is the address `off` of this module's linear memory (so `at(0)` is the
    /// null pointer, and a block's pointer read back as an integer is its offset), `grow` is
    /// `memory.grow` (memory never moves), and `heap_start` and `size` are `__heap_base` and
    /// the linear memory's size. The heap must grow its memory directly, never through the
    /// global allocator.
    pub const unsafe fn over_linear_memory(memory: M) -> Self {
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

// SAFETY: the heap's memory is linear memory (`new` takes `WasmMemory`, and the caller of
// `over_linear_memory` promises a memory that behaves as it does), so an offset is an address
// and memory never moves. Blocks come from the heap, which hands out disjoint, 8-aligned
// ranges of at least the requested size inside its memory, and never moves or reuses a block
// until it is freed; layouts aligned above 8 get null rather than a misaligned block;
// `heap.alloc` returns 0 on failure, which is the null pointer; `dealloc` gives the heap
// back the offset the block was handed out at; nothing here panics or unwinds.
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

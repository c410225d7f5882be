//! Where the heap's bytes come from.
//!
//! The allocator works on `u64` offsets into a [`Memory`]: a byte range `[0, size())` that can
//! only grow, in whole 64 KiB pages. On wasm the memory is the module's own linear memory and
//! offsets are addresses ([`WasmMemory`]); in native tests, under miri, and inside the
//! component it is an owned buffer ([`VecMemory`], feature `alloc`). [`Memory::at`] is the one
//! place an offset becomes a pointer.

/// A WebAssembly page: the unit `memory.grow` works in.
pub const PAGE_SIZE: u64 = 65536;

/// The most a 32-bit linear memory can hold: 65536 pages, 4 GiB.
pub const MAX_MEMORY: u64 = 1 << 32;

/// A growable byte range the heap manages.
///
/// # Safety
///
/// Implementors guarantee that, until the next call to [`Memory::grow`]:
/// - `at(off)` for `off < size()` points to `size() - off` bytes that are valid for reads and
///   writes, aligned to 8 when `off` is, and not accessed by anything but the heap's owner;
/// - `size()` never shrinks, never exceeds [`MAX_MEMORY`], and `grow` keeps every byte below
///   the old size unchanged (the pointer returned by `at` may move);
/// - `heap_start() <= size()`.
pub unsafe trait Memory {
    /// The first offset the heap may use (on wasm, `__heap_base`: data and stack sit below).
    fn heap_start(&self) -> u64;
    /// Current size in bytes; a multiple of [`PAGE_SIZE`] for wasm memories.
    fn size(&self) -> u64;
    /// Grows the memory by `pages` pages; `false` when the memory cannot grow that far
    /// (a host limit, or the 4 GiB address space), in which case nothing changed.
    fn grow(&mut self, pages: u64) -> bool;
    /// The address of byte `off`. Only meaningful for `off < size()`, so `off` always fits a
    /// `usize` (offsets are below 4 GiB).
    fn at(&self, off: usize) -> *mut u8;
}

/// The module's own linear memory (memory index 0); offsets are addresses.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Default, Clone, Copy)]
pub struct WasmMemory;

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Defined by wasm-ld: the first address above the data segments and the stack.
    static __heap_base: u8;
}

// SAFETY: linear memory `[0, memory_size)` is always addressable on wasm32; `memory.grow`
// preserves contents and never moves memory; the heap is the only code that touches addresses
// at or above `__heap_base` (Rust's own data and stack sit below it).
#[cfg(target_arch = "wasm32")]
unsafe impl Memory for WasmMemory {
    fn heap_start(&self) -> u64 {
        (&raw const __heap_base) as usize as u64
    }

    fn size(&self) -> u64 {
        core::arch::wasm32::memory_size(0) as u64 * PAGE_SIZE
    }

    fn grow(&mut self, pages: u64) -> bool {
        match usize::try_from(pages) {
            Ok(pages) => core::arch::wasm32::memory_grow(0, pages) != usize::MAX,
            Err(_) => false,
        }
    }

    fn at(&self, off: usize) -> *mut u8 {
        core::ptr::with_exposed_provenance_mut(off)
    }
}

#[cfg(any(feature = "alloc", test))]
pub use vec_memory::VecMemory;

#[cfg(any(feature = "alloc", test))]
mod vec_memory {
    use super::{MAX_MEMORY, Memory, PAGE_SIZE};
    use alloc::vec::Vec;

    /// A memory backed by an owned buffer of whole pages, with a page limit.
    ///
    /// Used by native tests (and miri) in place of linear memory, and by the component, whose
    /// Extism heap is an arena separate from the buffers of the canonical ABI.
    #[derive(Debug)]
    pub struct VecMemory {
        buf: Vec<u64>,
        base: *mut u8,
        heap_start: u64,
        max_pages: u64,
    }

    impl VecMemory {
        /// A memory of `initial_pages` pages that may grow to `max_pages`, whose heap starts at
        /// `heap_start` (to imitate the data and stack a wasm module keeps below its heap).
        pub fn new(initial_pages: u64, max_pages: u64, heap_start: u64) -> Self {
            let max_pages = max_pages.min(MAX_MEMORY / PAGE_SIZE);
            let mut m = VecMemory {
                buf: Vec::new(),
                base: core::ptr::null_mut(),
                heap_start,
                max_pages,
            };
            assert!(
                m.grow(initial_pages.max(1)),
                "initial pages exceed the limit"
            );
            assert!(
                heap_start <= m.size(),
                "heap start beyond the initial memory"
            );
            m
        }

        /// Lowers (or raises) the page limit, as a host's resource limiter would.
        pub fn set_max_pages(&mut self, max_pages: u64) {
            self.max_pages = max_pages.min(MAX_MEMORY / PAGE_SIZE);
        }
    }

    // SAFETY: `base` is re-derived from the buffer after every resize, so it covers exactly
    // `buf.len() * 8 == size()` initialised bytes, 8-aligned (the buffer holds `u64`s); the
    // buffer only grows and `resize` keeps its prefix; nothing else borrows `buf`.
    unsafe impl Memory for VecMemory {
        fn heap_start(&self) -> u64 {
            self.heap_start
        }

        fn size(&self) -> u64 {
            self.buf.len() as u64 * 8
        }

        fn grow(&mut self, pages: u64) -> bool {
            let Some(new_pages) = (self.size() / PAGE_SIZE).checked_add(pages) else {
                return false;
            };
            if new_pages > self.max_pages {
                return false;
            }
            let words = new_pages * (PAGE_SIZE / 8);
            let Ok(words) = usize::try_from(words) else {
                return false;
            };
            // Amortised: the component's arena grows page by page without copying each time.
            if self.buf.try_reserve(words - self.buf.len()).is_err() {
                return false;
            }
            self.buf.resize(words, 0);
            self.base = self.buf.as_mut_ptr().cast();
            true
        }

        fn at(&self, off: usize) -> *mut u8 {
            self.base.wrapping_add(off)
        }
    }
}

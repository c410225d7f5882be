//! The Extism heap: one [`Kernel`] over a [`VecMemory`] arena (through
//! [`KernelMemory::Arena`]), created by the first call that needs it.
//!
//! The arena is one buffer of the global allocator, so Extism handles are offsets into it and
//! no Extism block can overlap a buffer of the canonical ABI (see the crate docs).

use crate::memory::KernelMemory;
use kernel_core::{Kernel, MAX_MEMORY, PAGE_SIZE, VecMemory};

/// Pages the arena starts with.
const INITIAL_PAGES: u64 = 1;
/// The arena may grow to the whole 32-bit range; the component's memory runs out first, and
/// `alloc` then returns 0.
const MAX_PAGES: u64 = MAX_MEMORY / PAGE_SIZE;

/// A fresh kernel with a one-page arena. The heap may start at offset 0 of the arena:
/// kernel-core never hands out 0, the null handle, as a block.
fn new_kernel() -> Kernel<KernelMemory> {
    Kernel::new(KernelMemory::Arena(VecMemory::new(
        INITIAL_PAGES,
        MAX_PAGES,
        0,
    )))
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{KernelMemory, new_kernel};
    use core::cell::{Cell, UnsafeCell};
    use core::mem::MaybeUninit;
    use kernel_core::Kernel;

    /// The kernel, whether it exists yet, and whether a reference to it is out.
    ///
    /// `MaybeUninit` plus a flag, rather than an `Option`, keeps the static all zeros: an
    /// `Option<Kernel<_>>` encodes `None` in a niche, which turns the whole kernel (about
    /// 1.2 KB, mostly the heap's class-list heads) into an initialised data segment.
    struct Slot {
        kernel: UnsafeCell<MaybeUninit<Kernel<KernelMemory>>>,
        ready: Cell<bool>,
        busy: Cell<bool>,
    }

    // SAFETY: wasm32 without `atomics` (kernel-core's `HeapAllocator` refuses it) has one thread.
    unsafe impl Sync for Slot {}

    static SLOT: Slot = Slot {
        kernel: UnsafeCell::new(MaybeUninit::uninit()),
        ready: Cell::new(false),
        busy: Cell::new(false),
    };

    /// Marks the kernel busy (trapping if it already is) and returns it, creating it first
    /// if needed. Not inlined: one copy serves every export.
    #[inline(never)]
    fn enter() -> &'static mut Kernel<KernelMemory> {
        if SLOT.busy.replace(true) {
            // Re-entry: no export calls another, and a component instance cannot be
            // re-entered, so this is unreachable; trapping keeps the `&mut` below unique.
            core::arch::wasm32::unreachable()
        }
        // SAFETY: one thread, and `busy` was false: no reference to the kernel is alive (the
        // last one, given to `with_kernel`'s closure, ended before `busy` was cleared), and
        // none is made until `busy` is cleared again.
        let slot = unsafe { &mut *SLOT.kernel.get() };
        if !SLOT.ready.get() {
            slot.write(new_kernel());
            SLOT.ready.set(true);
        }
        // SAFETY: `ready` is set only after the kernel was written just above.
        unsafe { slot.assume_init_mut() }
    }

    pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel<KernelMemory>) -> R) -> R {
        // `f` takes the reference for a lifetime of its own, so `R` cannot hold on to it,
        // and `f` cannot unwind (panics abort): the reference is gone when `busy` clears.
        let r = f(enter());
        SLOT.busy.set(false);
        r
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{KernelMemory, new_kernel};
    use core::cell::RefCell;
    use kernel_core::Kernel;

    std::thread_local! {
        /// On the host (lints and type checks only), one kernel per thread.
        static KERNEL: RefCell<Option<Kernel<KernelMemory>>> = const { RefCell::new(None) };
    }

    pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel<KernelMemory>) -> R) -> R {
        KERNEL.with_borrow_mut(|k| f(k.get_or_insert_with(new_kernel)))
    }
}

/// Runs `f` on the component's kernel, creating it (and its arena) on first use. `f` must
/// not call `with_kernel` itself (that traps).
pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel<KernelMemory>) -> R) -> R {
    imp::with_kernel(f)
}

//! The 20 raw Extism exports of the core module: a thin layer over one [`Kernel`] in a static,
//! generated from the ABI table ([`kernel_abi::for_each_kernel_function!`]): each export
//! calls the [`Kernel`] method of the same name.
//!
//! Compiled only for wasm32 with the `exports` feature, so no other artifact (the component,
//! a host binary) ever gets symbols named `alloc` or `free`.

use crate::io::Kernel;
use crate::memory::WasmMemory;
use core::cell::UnsafeCell;

struct Global(UnsafeCell<Kernel<WasmMemory>>);

// SAFETY: the core module is built for wasm32 without the threads proposal, so there is only
// ever one thread, and no export calls another one.
unsafe impl Sync for Global {}

static KERNEL: Global = Global(UnsafeCell::new(Kernel::new(WasmMemory)));

/// The module's kernel, for one export call.
///
/// # Safety
///
/// No other reference to the kernel may be alive while the returned one is. Each export
/// below takes it once, for the one method call it makes, and no kernel method calls an
/// export, so on the module's single thread (see `Global`) two never coexist.
unsafe fn kernel() -> &'static mut Kernel<WasmMemory> {
    // SAFETY: the caller guarantees exclusivity (see `# Safety`); the static lives forever.
    unsafe { &mut *KERNEL.0.get() }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

macro_rules! exports {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        $(
            $(#[$doc])*
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the only kernel reference of this export, dropped when it returns.
                unsafe { kernel() }.$name($($arg),*)
            }
        )*
    };
}

kernel_abi::for_each_kernel_function!(exports);

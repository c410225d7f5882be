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

/// 32 ([`kernel_abi::RETURN_AREA_BYTES`]) bytes of the module's memory that belong to no
/// block: see [`EXTISM_RETURN_AREA`].
#[repr(C, align(8))]
pub struct ReturnArea(
    #[allow(dead_code, reason = "only wasm code outside the kernel uses the bytes")]
    UnsafeCell<[u8; kernel_abi::RETURN_AREA_BYTES as usize]>,
);

// SAFETY: Rust code never reads or writes the bytes (only wasm code outside the kernel does,
// between kernel calls), and the module has one thread (see `Global`).
unsafe impl Sync for ReturnArea {}

/// The return area ([`kernel_abi::RETURN_AREA_SYMBOL`]): plugin-host's composed plugins
/// write the canonical ABI's return areas (a call's result, a host service's answer) here
/// instead of allocating a block for each. It lies below `__heap_base`, so `store_*` refuse
/// it and no handle points into it; the post-link step records its address in a custom
/// section ([`kernel_abi::RETURN_AREA_SECTION`]).
#[unsafe(no_mangle)]
pub static EXTISM_RETURN_AREA: ReturnArea =
    ReturnArea(UnsafeCell::new([0; kernel_abi::RETURN_AREA_BYTES as usize]));

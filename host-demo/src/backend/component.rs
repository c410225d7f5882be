//! The kernel as a component: instantiated through bindings generated from `wit/`, with the
//! plugin's kernel imports answered by host functions that forward to its `raw` interface.

use super::InputTooLarge;
use crate::plugin::{ENV, HostState};
use std::sync::Arc;
use wasmtime::{Caller, Linker, StoreContextMut};
use wasmtime::{Result, bail};

/// Bindings for the `kernel` world of `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "kernel",
    });
}

use bindings::exports::extism::kernel::bulk::Guest as Bulk;
use bindings::exports::extism::kernel::raw::Guest as Raw;
use bindings::exports::extism::kernel::types::ErrorCode;

/// One instance of the kernel component.
#[expect(
    missing_debug_implementations,
    reason = "the generated bindings are not Debug"
)]
pub struct ComponentKernel {
    bindings: bindings::Kernel,
}

impl ComponentKernel {
    /// The kernel component instantiated through its bindings.
    pub fn new(bindings: bindings::Kernel) -> Self {
        ComponentKernel { bindings }
    }

    /// The raw ABI interface.
    pub fn raw(&self) -> &Raw {
        self.bindings.extism_kernel_raw()
    }

    /// The copying interface.
    pub fn bulk(&self) -> &Bulk {
        self.bindings.extism_kernel_bulk()
    }

    pub(super) fn prepare_call(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        input: &[u8],
    ) -> Result<Result<(), InputTooLarge>> {
        Ok(match self.bulk().call_prepare_call(&mut store, input)? {
            Ok(()) => Ok(()),
            Err(_) => Err(InputTooLarge(input.len())),
        })
    }

    pub(super) fn output(&self, mut store: StoreContextMut<'_, HostState>) -> Result<Vec<u8>> {
        match self.bulk().call_output(&mut store)? {
            Ok(v) => Ok(v),
            Err(e) => bail!(
                "the kernel component cannot read the output: {}",
                describe(e)
            ),
        }
    }

    pub(super) fn error(
        &self,
        mut store: StoreContextMut<'_, HostState>,
    ) -> Result<Option<String>> {
        self.bulk().call_error(&mut store)
    }

    pub(super) fn read_block(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        h: u64,
    ) -> Result<Vec<u8>> {
        let len = self.raw().call_length(&mut store, h)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .bulk()
            .call_read(&mut store, h, 0, len)?
            .unwrap_or_default())
    }

    pub(super) fn alloc_bytes(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        data: &[u8],
    ) -> Result<u64> {
        match self.bulk().call_alloc_bytes(&mut store, data)? {
            Ok(h) => Ok(h),
            Err(e) => bail!(
                "the kernel cannot allocate {} bytes: {}",
                data.len(),
                describe(e)
            ),
        }
    }

    pub(super) fn free(&self, mut store: StoreContextMut<'_, HostState>, h: u64) -> Result<()> {
        self.raw().call_free(&mut store, h)
    }
}

/// A one-line description of an `error-code`.
pub fn describe(e: ErrorCode) -> &'static str {
    match e {
        ErrorCode::InvalidHandle => "invalid handle",
        ErrorCode::OutOfBounds => "out of bounds",
        ErrorCode::OutOfMemory => "out of memory",
    }
}

fn kernel(c: &Caller<'_, HostState>) -> Result<Arc<ComponentKernel>> {
    match &c.data().kernel {
        Some(super::Kernel::Component(k)) => Ok(k.clone()),
        _ => bail!("no kernel component in this store"),
    }
}

/// Defines each kernel function the plugin imports as a host function forwarding to the
/// component's `raw` interface.
pub fn link(linker: &mut Linker<HostState>, names: &[String]) -> Result<()> {
    macro_rules! ret {
        () => {
            ()
        };
        ($t:ty) => {
            $t
        };
    }
    macro_rules! forward {
        ($name:literal, $call:ident, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
            if names.iter().any(|n| n == $name) {
                linker.func_wrap(
                    ENV,
                    $name,
                    |mut c: Caller<'_, HostState>, $($arg: $ty),*| -> Result<ret!($($ret)?)> {
                        let k = kernel(&c)?;
                        k.raw().$call(&mut c, $($arg),*)
                    },
                )?;
            }
        };
    }
    forward!("alloc", call_alloc, (n: u64) -> u64);
    forward!("free", call_free, (h: u64));
    forward!("length", call_length, (h: u64) -> u64);
    forward!("length_unsafe", call_length_unsafe, (h: u64) -> u64);
    forward!("load_u64", call_load_u64, (p: u64) -> u64);
    forward!("store_u64", call_store_u64, (p: u64, x: u64));
    forward!("input_load_u64", call_input_load_u64, (o: u64) -> u64);
    forward!("input_set", call_input_set, (h: u64, n: u64));
    forward!("output_set", call_output_set, (p: u64, n: u64));
    forward!("input_length", call_input_length, () -> u64);
    forward!("input_offset", call_input_offset, () -> u64);
    forward!("output_length", call_output_length, () -> u64);
    forward!("output_offset", call_output_offset, () -> u64);
    forward!("reset", call_reset, ());
    forward!("error_set", call_error_set, (h: u64));
    forward!("error_get", call_error_get, () -> u64);
    forward!("memory_bytes", call_memory_bytes, () -> u64);
    // The `u8` functions: an `i32` in the plugin's core wasm type.
    if names.iter().any(|n| n == "load_u8") {
        linker.func_wrap(ENV, "load_u8", |mut c: Caller<'_, HostState>, p: u64| {
            Ok(u32::from(kernel(&c)?.raw().call_load_u8(&mut c, p)?))
        })?;
    }
    if names.iter().any(|n| n == "input_load_u8") {
        linker.func_wrap(
            ENV,
            "input_load_u8",
            |mut c: Caller<'_, HostState>, o: u64| {
                Ok(u32::from(kernel(&c)?.raw().call_input_load_u8(&mut c, o)?))
            },
        )?;
    }
    if names.iter().any(|n| n == "store_u8") {
        linker.func_wrap(
            ENV,
            "store_u8",
            |mut c: Caller<'_, HostState>, p: u64, x: u32| {
                kernel(&c)?.raw().call_store_u8(&mut c, p, x as u8)
            },
        )?;
    }
    Ok(())
}

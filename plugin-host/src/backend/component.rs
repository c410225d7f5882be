//! The kernel as a component: instantiated through bindings generated from `wit/`, with the
//! plugin's kernel imports answered by host functions that forward to its `raw` interface.

use super::InputTooLarge;
use crate::state::HostState;
use kernel_abi::ENV;
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

    pub(super) fn length(&self, mut store: StoreContextMut<'_, HostState>, h: u64) -> Result<u64> {
        self.raw().call_length(&mut store, h)
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

macro_rules! forwarders {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        /// Defines each kernel function the plugin imports (`names`) as a host function
        /// forwarding to the component's `raw` interface (generated from the ABI table).
        pub fn link(linker: &mut Linker<HostState>, names: &[String]) -> Result<()> {
            $(
                if names.iter().any(|n| n == stringify!($name)) {
                    linker.func_wrap(
                        ENV,
                        stringify!($name),
                        |mut c: Caller<'_, HostState>, $($arg: kernel_abi::core_type!($ty)),*|
                            -> Result<kernel_abi::core_result!($($ret)?)> {
                            let k = kernel(&c)?;
                            // A `u8` of the ABI is an `i32` in core wasm: the casts narrow
                            // arguments and widen results, and are the identity for `u64`.
                            #[allow(clippy::unnecessary_cast, reason = "generated for every type")]
                            let r = paste::paste! {
                                k.raw().[<call_ $name>](&mut c, $($arg as $ty),*)?
                            };
                            #[allow(clippy::unnecessary_cast, reason = "generated for every type")]
                            Ok(r $(as kernel_abi::core_type!($ret))?)
                        },
                    )?;
                }
            )*
            Ok(())
        }
    };
}

kernel_abi::for_each_kernel_function!(forwarders);

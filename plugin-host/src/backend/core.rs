//! The kernel as a core module: one instance per plugin store, linked straight into the
//! plugin under `extism:host/env`.
//!
//! The kernel module this host runs has no `extism_context` global
//! ([`artifacts::KERNEL_CORE_HOSTED`](crate::artifacts::KERNEL_CORE_HOSTED)). Extism's
//! runtime puts its per-call context there for its own host functions; this host keeps that
//! state in the store. Merely declaring the `externref` global, even left null, gives every
//! store a GC heap in wasmtime 48 (`needs_gc_heap` is set by the global's type), and then
//! every call from the host into wasm enters and leaves a no-GC scope: about 6% of a
//! trivial plugin call here, which makes seven such calls.

use super::InputTooLarge;
use crate::state::HostState;
use wasmtime::error::Context;
use wasmtime::{AsContext, AsContextMut, Instance, Memory, StoreContextMut, TypedFunc};
use wasmtime::{Result, bail};

macro_rules! kernel_funcs {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        /// Every export of one kernel instance, typed (generated from the ABI table). A
        /// `u8` of the ABI is a `u32` here, as in core wasm.
        #[derive(Clone)]
        #[expect(
            missing_debug_implementations,
            reason = "typed functions are not Debug"
        )]
        pub struct KernelFuncs {
            $(
                $(#[$doc])*
                pub $name: TypedFunc<
                    ($(kernel_abi::core_type!($ty),)*),
                    kernel_abi::core_result!($($ret)?),
                >,
            )*
        }

        impl KernelFuncs {
            /// The exports of `instance`, type-checked.
            pub fn new(mut store: impl AsContextMut, instance: Instance) -> Result<Self> {
                let mut store = store.as_context_mut();
                Ok(KernelFuncs {
                    $(
                        $name: instance
                            .get_typed_func(&mut store, stringify!($name))
                            .with_context(|| format!("kernel export `{}`", stringify!($name)))?,
                    )*
                })
            }
        }
    };
}

kernel_abi::for_each_kernel_function!(kernel_funcs);

/// One kernel instance: its memory and its exports.
#[derive(Clone)]
#[expect(
    missing_debug_implementations,
    reason = "typed functions are not Debug"
)]
pub struct CoreKernel {
    instance: Instance,
    memory: Memory,
    funcs: KernelFuncs,
}

impl CoreKernel {
    /// The memory and exports of a kernel `instance` in the store.
    pub fn new(mut store: impl AsContextMut, instance: Instance) -> Result<Self> {
        let mut store = store.as_context_mut();
        let memory = instance
            .get_memory(&mut store, kernel_abi::MEMORY)
            .context("the kernel exports no `memory`")?;
        let funcs = KernelFuncs::new(&mut store, instance)?;
        Ok(CoreKernel {
            instance,
            memory,
            funcs,
        })
    }

    /// The kernel's linear memory.
    pub fn memory(&self) -> Memory {
        self.memory
    }

    /// The kernel instance.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// The kernel's exports.
    pub fn funcs(&self) -> &KernelFuncs {
        &self.funcs
    }

    fn bytes(&self, store: impl AsContext, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            // Nothing to read, wherever the kernel says it is.
            return Ok(Vec::new());
        }
        let data = self.memory.data(&store);
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| Some(o..o.checked_add(l)?))
            .filter(|r| r.end <= data.len());
        match range {
            Some(r) => Ok(data[r].to_vec()),
            None => bail!(
                "the kernel reported the range {offset}+{len}, outside its memory of {} bytes",
                data.len()
            ),
        }
    }

    pub(super) fn prepare_call(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        input: &[u8],
    ) -> Result<Result<(), InputTooLarge>> {
        let f = &self.funcs;
        f.error_set.call(&mut store, (0,))?;
        f.reset.call(&mut store, ())?;
        let h = if input.is_empty() {
            0
        } else {
            let h = f.alloc.call(&mut store, (input.len() as u64,))?;
            if h == 0 {
                return Ok(Err(InputTooLarge(input.len())));
            }
            self.write(&mut store, h, input)?;
            h
        };
        f.input_set.call(&mut store, (h, input.len() as u64))?;
        Ok(Ok(()))
    }

    fn write(&self, store: impl AsContextMut, h: u64, data: &[u8]) -> Result<()> {
        self.memory
            .write(store, h as usize, data)
            .with_context(|| format!("the kernel gave block {h}, outside its memory"))
    }

    pub(super) fn output(&self, mut store: StoreContextMut<'_, HostState>) -> Result<Vec<u8>> {
        let off = self.funcs.output_offset.call(&mut store, ())?;
        let len = self.funcs.output_length.call(&mut store, ())?;
        self.bytes(&store, off, len)
    }

    pub(super) fn error(
        &self,
        mut store: StoreContextMut<'_, HostState>,
    ) -> Result<Option<String>> {
        let h = self.funcs.error_get.call(&mut store, ())?;
        if h == 0 {
            return Ok(None);
        }
        let len = self.length(&mut store, h)?;
        if len == 0 {
            return Ok(None);
        }
        let bytes = self.bytes(&store, h, len)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    pub(super) fn length(&self, mut store: impl AsContextMut, h: u64) -> Result<u64> {
        self.funcs.length.call(&mut store, (h,))
    }

    pub(super) fn read_block(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        h: u64,
    ) -> Result<Vec<u8>> {
        let len = self.length(&mut store, h)?;
        if h == 0 || len == 0 {
            return Ok(Vec::new());
        }
        self.bytes(&store, h, len)
    }

    pub(super) fn alloc_bytes(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        data: &[u8],
    ) -> Result<u64> {
        if data.is_empty() {
            return Ok(0);
        }
        let h = self.funcs.alloc.call(&mut store, (data.len() as u64,))?;
        if h == 0 {
            bail!(
                "out of memory: the kernel cannot allocate {} bytes",
                data.len()
            );
        }
        self.write(&mut store, h, data)?;
        Ok(h)
    }

    pub(super) fn free(&self, mut store: StoreContextMut<'_, HostState>, h: u64) -> Result<()> {
        self.funcs.free.call(&mut store, (h,))
    }
}

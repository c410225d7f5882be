//! The kernel as a core module: one instance per plugin store, linked straight into the
//! plugin under `extism:host/env`.
//!
//! The kernel's `extism_context` global (an `externref`) stays null. Extism's runtime puts
//! its per-call context there for its own host functions; this host keeps that state in the
//! store, and setting the global would give every store a GC heap (a third memory per
//! plugin, and resident pages) for nothing.

use super::InputTooLarge;
use crate::plugin::HostState;
use wasmtime::error::Context;
use wasmtime::{AsContext, AsContextMut, Instance, Memory, StoreContextMut, TypedFunc};
use wasmtime::{Result, bail};

/// The exports of one kernel instance that the host itself calls.
#[derive(Clone)]
#[expect(
    missing_debug_implementations,
    reason = "typed functions are not Debug"
)]
pub struct CoreKernel {
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<u64, u64>,
    free: TypedFunc<u64, ()>,
    length: TypedFunc<u64, u64>,
    input_set: TypedFunc<(u64, u64), ()>,
    output_offset: TypedFunc<(), u64>,
    output_length: TypedFunc<(), u64>,
    error_set: TypedFunc<u64, ()>,
    error_get: TypedFunc<(), u64>,
    reset: TypedFunc<(), ()>,
}

impl CoreKernel {
    /// The exports the host calls, of a kernel `instance` in the store.
    pub fn new(mut store: impl AsContextMut<Data = HostState>, instance: Instance) -> Result<Self> {
        let mut store = store.as_context_mut();
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("the kernel exports no `memory`")?;
        macro_rules! f {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .with_context(|| format!("kernel export `{}`", $name))?
            };
        }
        Ok(CoreKernel {
            instance,
            memory,
            alloc: f!("alloc"),
            free: f!("free"),
            length: f!("length"),
            input_set: f!("input_set"),
            output_offset: f!("output_offset"),
            output_length: f!("output_length"),
            error_set: f!("error_set"),
            error_get: f!("error_get"),
            reset: f!("reset"),
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

    fn bytes(&self, store: impl AsContext, offset: u64, len: u64) -> Result<Vec<u8>> {
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
        self.error_set.call(&mut store, 0)?;
        self.reset.call(&mut store, ())?;
        let h = if input.is_empty() {
            0
        } else {
            let h = self.alloc.call(&mut store, input.len() as u64)?;
            if h == 0 {
                return Ok(Err(InputTooLarge(input.len())));
            }
            self.write(&mut store, h, input)?;
            h
        };
        self.input_set.call(&mut store, (h, input.len() as u64))?;
        Ok(Ok(()))
    }

    fn write(&self, store: impl AsContextMut, h: u64, data: &[u8]) -> Result<()> {
        self.memory
            .write(store, h as usize, data)
            .with_context(|| format!("the kernel gave block {h}, outside its memory"))
    }

    pub(super) fn output(&self, mut store: StoreContextMut<'_, HostState>) -> Result<Vec<u8>> {
        let off = self.output_offset.call(&mut store, ())?;
        let len = self.output_length.call(&mut store, ())?;
        self.bytes(&store, off, len)
    }

    pub(super) fn error(
        &self,
        mut store: StoreContextMut<'_, HostState>,
    ) -> Result<Option<String>> {
        let h = self.error_get.call(&mut store, ())?;
        if h == 0 {
            return Ok(None);
        }
        let len = self.length.call(&mut store, h)?;
        if len == 0 {
            return Ok(None);
        }
        let bytes = self.bytes(&store, h, len)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    pub(super) fn read_block(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        h: u64,
    ) -> Result<Vec<u8>> {
        let len = self.length.call(&mut store, h)?;
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
        let h = self.alloc.call(&mut store, data.len() as u64)?;
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
        self.free.call(&mut store, h)
    }
}

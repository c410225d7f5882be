//! The kernel behind a plugin, in either form, behind one type.
//!
//! - [`core`]: the kernel core module, instantiated once per store; the plugin's kernel
//!   imports are the kernel instance's own exports (no host trampoline), as in Extism's
//!   runtime.
//! - [`component`]: the kernel component; the plugin's kernel imports are host functions
//!   that forward each call to the component's `raw` interface.
//!
//! An enum rather than a trait object: there are exactly two forms, the plugin runner and
//! every host function match on them per call, and an enum keeps those calls static
//! (no `dyn` dispatch, no boxing) and lets a kernel be cloned into the store cheaply.
//!
//! [`Kernel`] gives the plugin runner and the host functions what they need from either:
//! preparing a call, reading the output and the error, and moving bytes in and out of
//! blocks. Every byte read from the kernel is read through bounds-checked slices (core) or
//! copied by the component itself: the host never trusts a kernel-reported offset.

pub mod component;
pub mod core;

use crate::state::HostState;
use wasmtime::AsContextMut;
use wasmtime::Result;

/// Which form of the kernel a plugin runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelKind {
    /// The core module (this project's, or any kernel `.wasm` given by path).
    #[default]
    Core,
    /// This project's kernel component.
    Component,
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelKind::Core => "core",
            KernelKind::Component => "component",
        })
    }
}

/// A kernel instance in a plugin's store.
#[derive(Clone)]
pub enum Kernel {
    /// The core module's exports.
    Core(std::sync::Arc<core::CoreKernel>),
    /// The component's bindings.
    Component(std::sync::Arc<component::ComponentKernel>),
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kernel::Core(_) => f.write_str("Kernel::Core"),
            Kernel::Component(_) => f.write_str("Kernel::Component"),
        }
    }
}

/// Calls the method of the same name on whichever form `$self` is, with the store first.
macro_rules! on_form {
    ($self:ident, $store:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Kernel::Core(k) => k.$method($store.as_context_mut(), $($arg),*),
            Kernel::Component(k) => k.$method($store.as_context_mut(), $($arg),*),
        }
    };
}

/// Why the kernel could not take the call's input.
#[derive(Debug)]
pub struct InputTooLarge(pub usize);

impl Kernel {
    /// The runtime's per-call sequence: clear the error, reset, copy the input in, mark it.
    /// `Ok(Err(_))` when the kernel cannot hold the input (memory limit).
    pub fn prepare_call(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
        input: &[u8],
    ) -> Result<Result<(), InputTooLarge>> {
        on_form!(self, store.prepare_call(input))
    }

    /// The call's output bytes.
    pub fn output(&self, mut store: impl AsContextMut<Data = HostState>) -> Result<Vec<u8>> {
        on_form!(self, store.output())
    }

    /// The call's error message, if the error block is set and not empty.
    pub fn error(&self, mut store: impl AsContextMut<Data = HostState>) -> Result<Option<String>> {
        on_form!(self, store.error())
    }

    /// The length of the live block `h` (`0` for anything that is not a live handle), without
    /// reading it.
    pub fn length(&self, mut store: impl AsContextMut<Data = HostState>, h: u64) -> Result<u64> {
        on_form!(self, store.length(h))
    }

    /// A copy of the live block `h` (empty for anything that is not a live handle).
    pub fn read_block(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
        h: u64,
    ) -> Result<Vec<u8>> {
        on_form!(self, store.read_block(h))
    }

    /// A new block holding `data`: `0` for empty data; an error when the kernel is full.
    pub fn alloc_bytes(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
        data: &[u8],
    ) -> Result<u64> {
        on_form!(self, store.alloc_bytes(data))
    }

    /// Frees a block (anything that is not a live handle is ignored).
    pub fn free(&self, mut store: impl AsContextMut<Data = HostState>, h: u64) -> Result<()> {
        on_form!(self, store.free(h))
    }
}

//! The three kernels behind one driver, each instance in its own store on one engine.

use crate::upstream::{self, UpstreamKernel};
use plugin_host::backend::component::bindings;
use plugin_host::backend::core::CoreKernel;
use plugin_host::{Limits, Runtime, RuntimeOptions};
use std::fmt;
use wasmtime::component::Linker;
use wasmtime::{Instance, Module, Result, Store};

/// A kernel under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelId {
    /// This project's kernel as a core module.
    Core,
    /// This project's kernel as a component (its `raw` interface).
    Component,
    /// Upstream's kernel (`extism` 1.41.0, `src/extism-runtime.wasm`).
    Upstream,
}

impl KernelId {
    /// All three, in report order.
    pub const ALL: [KernelId; 3] = [KernelId::Core, KernelId::Component, KernelId::Upstream];

    /// The name used in benchmark ids.
    pub fn id(self) -> &'static str {
        match self {
            KernelId::Core => "ours-core",
            KernelId::Component => "ours-component",
            KernelId::Upstream => "upstream",
        }
    }

    /// The name shown in tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            KernelId::Core => "ours (core module)",
            KernelId::Component => "ours (component)",
            KernelId::Upstream => "upstream 1.41.0",
        }
    }
}

impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What a store's [`Limits`] (with no limit) have recorded of all the store's memories: the
/// initial sizes at instantiation plus every growth.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrowthMeter {
    /// Bytes of linear memory in the store now.
    pub bytes: u64,
    /// Number of `memory.grow` requests that grew memory.
    pub grows: u64,
}

/// The runtime (engine, both forms of our kernel compiled) and upstream's kernel compiled on
/// the same engine.
#[derive(Debug)]
pub struct Kernels {
    /// plugin-host's runtime: its engine configuration is the one every figure uses.
    pub runtime: Runtime,
    /// Upstream's kernel: path and bytes.
    pub upstream: UpstreamKernel,
    /// Upstream's kernel compiled.
    pub upstream_module: Module,
}

impl Kernels {
    /// Fetches upstream's kernel and compiles everything on plugin-host's default engine.
    pub fn load() -> Result<Self> {
        let runtime = Runtime::new(RuntimeOptions::default())?;
        let upstream = upstream::fetch()?;
        let upstream_module = runtime.compile_kernel(&upstream.wasm)?;
        Ok(Kernels {
            runtime,
            upstream,
            upstream_module,
        })
    }

    /// A fresh store on the shared engine, metered, with no epoch deadline in reach.
    pub fn store(&self) -> Store<Limits> {
        let mut store = Store::new(self.runtime.engine(), Limits::new(None));
        store.limiter(|m| m);
        // The engine counts epochs (for plugin-host's timeouts); these stores never time out.
        store.set_epoch_deadline(1 << 50);
        store
    }
}

/// One kernel instance in its own store, driven from the host.
#[expect(
    missing_debug_implementations,
    reason = "the generated component bindings are not Debug"
)]
pub enum RawKernel {
    /// A core module (ours or upstream's).
    Core {
        /// Its store.
        store: Store<Limits>,
        /// Its memory and functions.
        f: Box<CoreKernel>,
    },
    /// The component.
    Component {
        /// Its store.
        store: Store<Limits>,
        /// Its bindings.
        kernel: Box<bindings::Kernel>,
    },
}

/// Calls the raw export `$name` on whichever kernel `$self` is.
macro_rules! raw_call {
    ($self:ident, $name:ident($arg:ident)) => {
        match $self {
            RawKernel::Core { store, f } => f.funcs().$name.call(store, ($arg,)),
            RawKernel::Component { store, kernel } => paste::paste! {
                kernel.extism_kernel_raw().[<call_ $name>](store, $arg)
            },
        }
    };
}

impl RawKernel {
    /// A fresh instance of `id`.
    pub fn new(kernels: &Kernels, id: KernelId) -> Result<Self> {
        let mut store = kernels.store();
        let module = match id {
            KernelId::Core => kernels.runtime.core_kernel()?,
            KernelId::Upstream => &kernels.upstream_module,
            KernelId::Component => {
                let linker = Linker::new(kernels.runtime.engine());
                let kernel = bindings::Kernel::instantiate(
                    &mut store,
                    kernels.runtime.component_kernel()?,
                    &linker,
                )?;
                return Ok(RawKernel::Component {
                    store,
                    kernel: Box::new(kernel),
                });
            }
        };
        let i = Instance::new(&mut store, module, &[])?;
        let f = Box::new(CoreKernel::new(&mut store, i)?);
        Ok(RawKernel::Core { store, f })
    }

    /// `alloc(n)`.
    #[inline]
    pub fn alloc(&mut self, n: u64) -> Result<u64> {
        raw_call!(self, alloc(n))
    }

    /// `free(h)`.
    #[inline]
    pub fn free(&mut self, h: u64) -> Result<()> {
        raw_call!(self, free(h))
    }

    /// `length(h)`.
    #[inline]
    pub fn length(&mut self, h: u64) -> Result<u64> {
        raw_call!(self, length(h))
    }

    /// What the store's limiter has recorded.
    pub fn meter(&self) -> GrowthMeter {
        match self {
            RawKernel::Core { store, .. } | RawKernel::Component { store, .. } => GrowthMeter {
                bytes: store.data().bytes(),
                grows: store.data().grows(),
            },
        }
    }
}

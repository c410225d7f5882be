//! The three kernels behind one driver, each instance in its own store on one engine.

use crate::upstream::{self, UpstreamKernel};
use host_demo::backend::component::bindings;
use host_demo::{Runtime, RuntimeOptions};
use std::fmt;
use wasmtime::component::Linker;
use wasmtime::{Instance, Memory, Module, ResourceLimiter, Result, Store, TypedFunc};

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

/// A store limiter that allows everything and records the bytes of all the store's
/// memories: the initial sizes at instantiation plus every growth.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrowthMeter {
    /// Bytes of linear memory in the store now.
    pub bytes: u64,
    /// Number of `memory.grow` requests that grew memory.
    pub grows: u64,
}

impl ResourceLimiter for GrowthMeter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        self.bytes += (desired - current) as u64;
        if current > 0 && desired > current {
            self.grows += 1;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(true)
    }
}

/// The runtime (engine, both forms of our kernel compiled) and upstream's kernel compiled on
/// the same engine.
#[derive(Debug)]
pub struct Kernels {
    /// host-demo's runtime: its engine configuration is the one every figure uses.
    pub runtime: Runtime,
    /// Upstream's kernel: path and bytes.
    pub upstream: UpstreamKernel,
    /// Upstream's kernel compiled.
    pub upstream_module: Module,
}

impl Kernels {
    /// Fetches upstream's kernel and compiles everything on host-demo's default engine.
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
    pub fn store(&self) -> Store<GrowthMeter> {
        let mut store = Store::new(self.runtime.engine(), GrowthMeter::default());
        store.limiter(|m| m);
        // The engine counts epochs (for host-demo's timeouts); these stores never time out.
        store.set_epoch_deadline(1 << 50);
        store
    }
}

/// The core-module kernel's functions this crate calls.
#[derive(Clone)]
#[expect(
    missing_debug_implementations,
    reason = "typed functions are not Debug"
)]
pub struct CoreFns {
    /// `alloc`.
    pub alloc: TypedFunc<u64, u64>,
    /// `free`.
    pub free: TypedFunc<u64, ()>,
    /// `length`.
    pub length: TypedFunc<u64, u64>,
    /// The kernel's memory.
    pub memory: Memory,
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
        store: Store<GrowthMeter>,
        /// Its functions.
        f: Box<CoreFns>,
    },
    /// The component.
    Component {
        /// Its store.
        store: Store<GrowthMeter>,
        /// Its bindings.
        kernel: Box<bindings::Kernel>,
    },
}

impl RawKernel {
    /// A fresh instance of `id`.
    pub fn new(kernels: &Kernels, id: KernelId) -> Result<Self> {
        let mut store = kernels.store();
        let module = match id {
            KernelId::Core => kernels.runtime.core_kernel(),
            KernelId::Upstream => &kernels.upstream_module,
            KernelId::Component => {
                let linker = Linker::new(kernels.runtime.engine());
                let kernel = bindings::Kernel::instantiate(
                    &mut store,
                    kernels.runtime.component_kernel(),
                    &linker,
                )?;
                return Ok(RawKernel::Component {
                    store,
                    kernel: Box::new(kernel),
                });
            }
        };
        let i = Instance::new(&mut store, module, &[])?;
        let f = Box::new(CoreFns {
            alloc: i.get_typed_func(&mut store, "alloc")?,
            free: i.get_typed_func(&mut store, "free")?,
            length: i.get_typed_func(&mut store, "length")?,
            memory: i
                .get_memory(&mut store, "memory")
                .ok_or_else(|| wasmtime::format_err!("the kernel exports no memory"))?,
        });
        Ok(RawKernel::Core { store, f })
    }

    /// `alloc(n)`.
    #[inline]
    pub fn alloc(&mut self, n: u64) -> Result<u64> {
        match self {
            RawKernel::Core { store, f } => f.alloc.call(store, n),
            RawKernel::Component { store, kernel } => {
                kernel.extism_kernel_raw().call_alloc(store, n)
            }
        }
    }

    /// `free(h)`.
    #[inline]
    pub fn free(&mut self, h: u64) -> Result<()> {
        match self {
            RawKernel::Core { store, f } => f.free.call(store, h),
            RawKernel::Component { store, kernel } => {
                kernel.extism_kernel_raw().call_free(store, h)
            }
        }
    }

    /// `length(h)`.
    #[inline]
    pub fn length(&mut self, h: u64) -> Result<u64> {
        match self {
            RawKernel::Core { store, f } => f.length.call(store, h),
            RawKernel::Component { store, kernel } => {
                kernel.extism_kernel_raw().call_length(store, h)
            }
        }
    }

    /// What the store's limiter has recorded.
    pub fn meter(&self) -> GrowthMeter {
        match self {
            RawKernel::Core { store, .. } | RawKernel::Component { store, .. } => *store.data(),
        }
    }
}

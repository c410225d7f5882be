//! The engine every plugin of a host shares, the kernel forms compiled once each (when a
//! plugin first needs one), and the compilation cache.

use crate::artifacts;
use crate::cache::{CacheStats, CompileCache};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::Result;
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of call timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Engine-wide settings.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Count fuel, so that plugins can be given a fuel limit (slows every call a little).
    pub fuel: bool,
    /// Use wasmtime's pooling allocator, with room for this many live plugin instances
    /// (each with its kernel). Off by default: see [`pooling_config`].
    pub pooling: Option<u32>,
    /// Keep compiled plugins and kernels in this directory and reuse them across
    /// processes (created if missing). `None`, the default: compile everything in every
    /// process, and share nothing between runtimes.
    ///
    /// Entries are keyed by the SHA-256 of the wasm bytes, the engine's configuration and
    /// the wasmtime version, so a changed plugin or setting never loads a stale artifact;
    /// an entry's integrity is checked before it is loaded. A corrupt entry or a directory
    /// that cannot be created or written costs a one-line warning on stderr and a
    /// compilation, never an error. The directory must be as trusted as the program: see
    /// [`crate::cache`].
    pub cache: Option<PathBuf>,
}

/// Largest memory a plugin (or its kernel) may grow to under the pooling allocator.
pub const POOLED_MEMORY_MAX: usize = 1 << 30;

/// The pooling allocator's configuration for `instances` live plugins, each a plugin
/// instance plus a kernel (one core instance, or one component instance with one core
/// instance inside it): two core instances and up to three memories per plugin (the
/// plugin's, the kernel's, and the store's GC heap, which wasmtime allocates as a memory).
///
/// Every slot is reserved up front (virtual address space, not memory), instantiation
/// takes a slot instead of making new mappings, and memories are initialized copy-on-write
/// from the module's image (`Config::memory_init_cow`, on by default), so a live instance
/// costs the pages it has written. Each memory may grow to [`POOLED_MEMORY_MAX`]; the
/// usual 4 GiB reservation with guard pages stays, so compiled code keeps eliding bounds
/// checks.
pub fn pooling_config(instances: u32) -> PoolingAllocationConfig {
    let n = instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(n.saturating_mul(2))
        .total_memories(n.saturating_mul(3))
        .total_tables(n.saturating_mul(2))
        .total_component_instances(n)
        // Only a kernel with an `externref` global (upstream's) makes a GC heap.
        .total_gc_heaps(n)
        .max_memory_size(POOLED_MEMORY_MAX);
    pool
}

/// The thread that advances an engine's epoch (the clock of call timeouts). It runs while
/// anything that can call into the engine holds it: the [`Runtime`], and every
/// [`PluginPre`](crate::PluginPre), [`Plugin`](crate::Plugin) and
/// [`ComposedPlugin`](crate::ComposedPlugin) made from it, so a plugin that outlives its
/// runtime still times out.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Result<Arc<Self>> {
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })?;
        Ok(Arc::new(EpochTicker { stop }))
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A wasmtime engine, the kernels compiled for it (each on first use), the compilation
/// cache, and a thread that advances the epoch.
#[derive(Debug)]
pub struct Runtime {
    engine: Engine,
    core_kernel: OnceLock<Module>,
    component_kernel: OnceLock<Component>,
    cache: Option<CompileCache>,
    options: RuntimeOptions,
    ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// An engine with epoch interruption (for timeouts) and, if asked, fuel.
    pub fn new(options: RuntimeOptions) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(options.fuel);
        config.wasm_component_model(true);
        config.memory_init_cow(true);
        // Calls between the core modules of one component (a composed plugin's calls into
        // its kernel and glue) may be inlined: measured in the README (without it a composed
        // 1 MiB `echo` takes 1.5x as long; a cold `host-demo call` takes about 45 ms more
        // with it). Inlining within a module too (`Inlining::Yes`) took a few per cent more
        // off a call and made cold compilation 2.6x slower. Classic plugins are linked by a
        // `Linker` across modules compiled apart, where nothing is inlined either way.
        config.compiler_inlining(wasmtime::Inlining::InterModule);
        if let Some(n) = options.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(n)));
        }
        let engine = Engine::new(&config)?;
        let cache = options
            .cache
            .as_deref()
            .map(|dir| CompileCache::open(dir, &engine));
        let ticker = EpochTicker::start(&engine)?;
        Ok(Runtime {
            engine,
            core_kernel: OnceLock::new(),
            component_kernel: OnceLock::new(),
            cache,
            options,
            ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The epoch ticker, for what outlives the runtime.
    pub(crate) fn ticker(&self) -> Arc<EpochTicker> {
        self.ticker.clone()
    }

    /// The settings this runtime was made with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// What the compilation cache did so far; `None` without one.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(CompileCache::stats)
    }

    /// This project's kernel module, compiled (through the cache) the first time it is asked
    /// for. Threads asking at once may each compile it; one result is kept.
    pub fn core_kernel(&self) -> Result<&Module> {
        lazily(&self.core_kernel, || {
            self.compile_module(artifacts::KERNEL_CORE_HOSTED)
                .context("compiling the kernel module")
        })
    }

    /// This project's kernel component, compiled (through the cache) the first time it is
    /// asked for.
    pub fn component_kernel(&self) -> Result<&Component> {
        lazily(&self.component_kernel, || {
            self.compile_component(artifacts::KERNEL_COMPONENT)
                .context("compiling the kernel component")
        })
    }

    /// `wasm` compiled as a core module on this engine, through the cache if there is one;
    /// wasmtime's error, unchanged, if it is not a valid module.
    pub(crate) fn compile_module(&self, wasm: &[u8]) -> Result<Module> {
        match &self.cache {
            Some(cache) => cache.module(&self.engine, wasm),
            None => Module::new(&self.engine, wasm),
        }
    }

    /// `wasm` compiled as a component on this engine, through the cache if there is one.
    pub(crate) fn compile_component(&self, wasm: &[u8]) -> Result<Component> {
        match &self.cache {
            Some(cache) => cache.component(&self.engine, wasm),
            None => Component::new(&self.engine, wasm),
        }
    }

    /// The classic plugin `plugin` composed with the kernel into one component
    /// ([`componentize`](crate::componentize::componentize)) and compiled; with a cache, a
    /// plugin composed before is loaded without composing it again.
    pub fn compile_composed(&self, plugin: &[u8]) -> Result<Component> {
        let compose =
            || crate::componentize::componentize(plugin).map_err(wasmtime::Error::from_anyhow);
        match &self.cache {
            Some(cache) => cache.composed(
                &self.engine,
                plugin,
                crate::componentize::fingerprint(),
                compose,
            ),
            None => Component::new(&self.engine, compose()?),
        }
    }

    /// Compiles a kernel module given as bytes (another kernel, such as upstream's), through
    /// the cache, after checking that it exports the memory and every ABI function (their
    /// types are checked when it is instantiated). Its `extism_context` global, which this
    /// host never sets, is left out when no code uses it, as for this project's kernel
    /// ([`artifacts::KERNEL_CORE_HOSTED`]).
    pub fn compile_kernel(&self, wasm: &[u8]) -> Result<Module> {
        let hosted = wasm_util::without_context_global(wasm);
        let module = self
            .compile_module(hosted.as_deref().unwrap_or(wasm))
            .context("compiling the kernel module")?;
        wasmtime::ensure!(
            module.get_export(kernel_abi::MEMORY).is_some(),
            "the kernel module does not export `{}`",
            kernel_abi::MEMORY
        );
        for f in kernel_abi::KERNEL_FUNCTIONS {
            wasmtime::ensure!(
                module.get_export(f.name).is_some(),
                "the kernel module does not export `{}`",
                f.name
            );
        }
        Ok(module)
    }
}

/// The value in `cell`, made by `make` the first time (a failure is returned and not kept).
fn lazily<T>(cell: &std::sync::OnceLock<T>, make: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = make()?;
    Ok(cell.get_or_init(|| v))
}

//! Compile once, link once, instantiate many: [`PluginPre`].
//!
//! Everything about a plugin that does not depend on a store is done once, in
//! [`PluginPre::new`]: the module is compiled and validated, its imports are sorted by what
//! answers them and type-checked, the kernel is pre-instantiated (`InstancePre`), and the
//! plugin's imports are resolved. [`PluginPre::instantiate`] then only makes a store and
//! instantiates the two instances in it. A `PluginPre` is `Send + Sync`: threads can share
//! one (in an `Arc`) and instantiate from it at the same time.
//!
//! How the plugin's imports are resolved depends on the kernel form:
//! - component backend: every import (kernel forwarders, host functions, user functions,
//!   WASI) is a host function, independent of any store, so the whole linker is closed over
//!   once in a wasmtime `InstancePre`;
//! - core backend: the plugin's kernel imports are the exports of a kernel *instance*, which
//!   lives in one store, so no `InstancePre` can close over them. The import list is resolved
//!   once into a plan (which kernel export, or which host function, answers each import, by
//!   index); each store fills the plan with its own kernel instance's exports. The plugin
//!   calls the kernel directly, with no host trampoline, as in Extism's runtime.

use crate::backend::component::{ComponentKernel, bindings};
use crate::backend::core::CoreKernel;
use crate::backend::{self, Kernel, KernelKind};
use crate::error::{CallError, one_line};
use crate::host_fns;
use crate::link::{
    PlannedModule, PluginLink, Source, check_import_type, classify_imports, instantiation_order,
    linked_module,
};
use crate::manifest::{MAIN, NamedModule};
use crate::options::PluginOptions;
use crate::plugin::Plugin;
use crate::runtime::{EpochTicker, Runtime};
use crate::state::{HostState, Services};
use kernel_abi::ENV;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use wasmtime::error::Context;
use wasmtime::{
    Engine, Extern, Instance, InstancePre, Linker, Module, ModuleExport, Store, ValType,
};
use wasmtime::{Result, bail, format_err};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// A plugin compiled and linked, ready to be instantiated many times.
pub struct PluginPre {
    engine: Engine,
    /// The plugin's function exports, by name, sorted once: whether each is an Extism
    /// function that returns a code (`Ok(true)`), returns nothing (`Ok(false)`), or is not
    /// one (`Err(its type)`).
    functions: HashMap<String, (ModuleExport, std::result::Result<bool, String>)>,
    options: PluginOptions,
    /// `_initialize` (or `__wasm_call_ctors`), when the plugin exports one.
    init: Option<ModuleExport>,
    fuel_counted: bool,
    kernel: KernelPre,
    link: PluginLink,
    _ticker: Arc<EpochTicker>,
}

impl fmt::Debug for PluginPre {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginPre")
            .field("kernel", &self.options.kernel)
            .field(
                "link",
                &match self.link {
                    PluginLink::Pre(_) => "instance-pre",
                    PluginLink::Plan { .. } => "import plan",
                },
            )
            .finish()
    }
}

/// The kernel, pre-instantiated (neither form imports anything).
enum KernelPre {
    Core(InstancePre<HostState>),
    Component(Box<bindings::KernelPre<HostState>>),
}

/// Whether `wasm` is a component rather than a core module.
pub fn is_component(wasm: &[u8]) -> bool {
    wasmparser::Parser::is_component(wasm)
}

impl PluginPre {
    /// Compiles `wasm` (an Extism plugin: a core module) and links it for `options`.
    pub fn new(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> Result<PluginPre> {
        Self::build(runtime, &[(MAIN, wasm)], options)
    }

    /// Compiles a plugin made of several modules and links them with Extism's rules: each
    /// module's imports are resolved by module name against the others' exports first, then
    /// against the kernel, the host functions, user functions and WASI; the main module (the
    /// last, see [`Manifest::modules`](crate::Manifest::modules)) is the one called. Every
    /// module shares the plugin's one kernel. An import nothing provides, a name given twice
    /// or an import cycle is an error naming it.
    pub fn linked(
        runtime: &Runtime,
        modules: &[NamedModule],
        options: PluginOptions,
    ) -> Result<PluginPre> {
        let modules: Vec<(&str, &[u8])> = modules
            .iter()
            .map(|m| (m.name.as_str(), m.wasm.as_slice()))
            .collect();
        Self::build(runtime, &modules, options)
    }

    fn build(
        runtime: &Runtime,
        wasm: &[(&str, &[u8])],
        options: PluginOptions,
    ) -> Result<PluginPre> {
        let Some(main) = wasm.len().checked_sub(1) else {
            bail!("a plugin needs at least one module");
        };
        let names: Vec<&str> = wasm.iter().map(|(n, _)| *n).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                bail!("the module name `{n}` is linked twice");
            }
        }
        let engine = runtime.engine();
        // One module: the messages name "the file"/"the plugin"; several: each module.
        let modules = wasm
            .iter()
            .map(|(name, bytes)| {
                let m = compile_module(runtime, bytes);
                if wasm.len() > 1 {
                    m.with_context(|| format!("in the module `{name}`"))
                } else {
                    m
                }
            })
            .collect::<Result<Vec<Module>>>()?;
        let mut kernel_imports: Vec<String> = Vec::new();
        let mut wasi = false;
        let mut deps = Vec::with_capacity(modules.len());
        for (i, module) in modules.iter().enumerate() {
            let others: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, n)| *n)
                .collect();
            let imports = classify_imports(module, &options, &others)?;
            wasi |= imports.wasi;
            for k in imports.kernel {
                if !kernel_imports.contains(&k) {
                    kernel_imports.push(k);
                }
            }
            let mut d: Vec<usize> = module
                .imports()
                .filter_map(|im| linked_module(&names, i, im.module()))
                .collect();
            d.dedup();
            deps.push(d);
        }
        let order = instantiation_order(&names, &deps)?;
        let module = modules[main].clone();
        if options.fuel.is_some() && !runtime.options().fuel {
            bail!("a fuel limit needs a runtime that counts fuel");
        }
        check_allowed_paths(&options)?;
        if options.kernel_wasm.is_some() && options.kernel == KernelKind::Component {
            bail!("a kernel given by path runs on the core backend only");
        }

        // Host functions, user functions and WASI: the same definitions on both backends.
        let mut linker: Linker<HostState> = Linker::new(engine);
        host_fns::link(&mut linker)?;
        for f in &options.functions {
            f.define(&mut linker)?;
        }
        if wasi {
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut HostState| {
                s.wasi
                    .as_mut()
                    .expect("WASI is linked only when the context exists")
            })?;
        }

        let (kernel, kernel_module) = match options.kernel {
            KernelKind::Core => {
                let kernel_module = match &options.kernel_wasm {
                    Some(w) => runtime.compile_kernel(w)?,
                    None => runtime.core_kernel()?.clone(),
                };
                let pre = Linker::new(engine)
                    .instantiate_pre(&kernel_module)
                    .context("the kernel module imports something")?;
                (KernelPre::Core(pre), Some(kernel_module))
            }
            KernelKind::Component => {
                let component_linker = wasmtime::component::Linker::new(engine);
                let pre = component_linker
                    .instantiate_pre(runtime.component_kernel()?)
                    .context("the kernel component imports something")?;
                let pre = bindings::KernelPre::new(pre)?;
                backend::component::link(&mut linker, &kernel_imports)?;
                (KernelPre::Component(Box::new(pre)), None)
            }
        };
        let link = if kernel_module.is_none() && modules.len() == 1 {
            // Every import is a host function: the whole link is closed over once.
            let plugin = linker
                .instantiate_pre(&module)
                .context("linking the plugin")?;
            PluginLink::Pre(plugin)
        } else {
            let mut planned = Vec::with_capacity(order.len());
            for &i in &order {
                let m = &modules[i];
                let mut plan = Vec::new();
                for import in m.imports() {
                    let (from, name) = (import.module(), import.name());
                    plan.push(match linked_module(&names, i, from) {
                        Some(j) => {
                            let what = format!("the module `{from}`");
                            let missing = || {
                                format!(
                                    "the module `{}` imports `{from}::{name}`, which {what} does not export",
                                    names[i]
                                )
                            };
                            Source::Module(j, answer(&modules[j], &import, &what, missing)?)
                        }
                        None => match &kernel_module {
                            Some(k) if from == ENV && kernel_imports.iter().any(|n| n == name) => {
                                let missing = || format!("the kernel does not export `{name}`");
                                Source::Kernel(answer(k, &import, "the kernel", missing)?)
                            }
                            _ => Source::Linker(from.to_string(), name.to_string()),
                        },
                    });
                }
                planned.push(PlannedModule {
                    index: i,
                    module: m.clone(),
                    imports: plan,
                });
            }
            PluginLink::Plan {
                linker,
                modules: planned,
            }
        };
        let functions = module
            .exports()
            .filter_map(|e| {
                let ty = e.ty().func()?.clone();
                let kind = match (
                    ty.params().len(),
                    ty.results().collect::<Vec<_>>().as_slice(),
                ) {
                    (0, []) => Ok(false),
                    (0, [ValType::I32]) => Ok(true),
                    _ => Err(ty.to_string()),
                };
                let index = module.get_export_index(e.name())?;
                Some((e.name().to_string(), (index, kind)))
            })
            .collect::<HashMap<_, _>>();
        // A WASI reactor's (or a C/C++ module's) initialiser: run once, before the first
        // call, as Extism does.
        let init = ["_initialize", "__wasm_call_ctors"]
            .into_iter()
            .find_map(|n| match functions.get(n) {
                Some((index, Ok(false))) => Some(*index),
                _ => None,
            });
        Ok(PluginPre {
            engine: engine.clone(),
            functions,
            init,
            options,
            fuel_counted: runtime.options().fuel,
            kernel,
            link,
            _ticker: runtime.ticker(),
        })
    }

    /// The plugin's export `name` as an Extism function: its export index and whether it
    /// returns a code; the error a call of it gets otherwise.
    pub(crate) fn function(&self, name: &str) -> Result<(&ModuleExport, bool), CallError> {
        match self.functions.get(name) {
            None => Err(CallError::NoFunction(name.to_string())),
            Some((_, Err(ty))) => Err(CallError::NotAnExtismFunction(name.to_string(), ty.clone())),
            Some((index, Ok(returns_code))) => Ok((index, *returns_code)),
        }
    }

    /// The plugin's initialiser, to run once per instance before its first call.
    pub(crate) fn init(&self) -> Option<&ModuleExport> {
        self.init.as_ref()
    }

    /// The options every instance gets.
    pub fn options(&self) -> &PluginOptions {
        &self.options
    }

    /// A new instance of the plugin with its own kernel, in a store of its own.
    pub fn instantiate(self: &Arc<Self>) -> Result<Plugin> {
        let stdout = self
            .options
            .capture_stdout
            .then(|| MemoryOutputPipe::new(usize::MAX));
        self.instantiate_with(stdout, Services::new(&self.options))
    }

    /// A new instance with `services` (fresh, or renewed after a trap with the vars kept),
    /// writing WASI stdout to `stdout` (inherited when `None`).
    pub(crate) fn instantiate_with(
        self: &Arc<Self>,
        stdout: Option<MemoryOutputPipe>,
        services: Services,
    ) -> Result<Plugin> {
        let options = &self.options;
        let wasi = match options.wasi {
            false => None,
            true => Some(wasi_builder(options, stdout.as_ref())?.build_p1()),
        };
        let state = HostState {
            kernel: None,
            services,
            wasi,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.services.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(u64::MAX / 2);
        if self.fuel_counted {
            store.set_fuel(u64::MAX)?;
        }
        // A memory the limiter refused to create or grow: reported as the limit, by the
        // limiter's own record rather than by an error's text.
        let memory_error = |e: wasmtime::Error, store: &Store<HostState>, what: &str| match options
            .memory_max_pages
        {
            Some(p) if store.data().services.limits.denied => format_err!(
                "out of memory: {what} does not fit the memory limit of {p} pages ({})",
                one_line(&e.root_cause().to_string())
            ),
            _ => e,
        };
        let kernel = match &self.kernel {
            KernelPre::Core(pre) => {
                let instance = match pre.instantiate(&mut store) {
                    Ok(i) => i,
                    Err(e) => {
                        return Err(memory_error(e, &store, "the kernel"))
                            .context("instantiating the kernel");
                    }
                };
                Kernel::Core(Arc::new(CoreKernel::new(&mut store, instance)?))
            }
            KernelPre::Component(pre) => {
                let bindings = match pre.instantiate(&mut store) {
                    Ok(b) => b,
                    Err(e) => return Err(memory_error(e, &store, "the kernel component")),
                };
                Kernel::Component(Arc::new(ComponentKernel::new(bindings)))
            }
        };
        store.data_mut().kernel = Some(kernel.clone());
        // A start function runs inside instantiation: it gets the call timeout, so one that
        // never returns cannot hang the host.
        let deadline = store.data_mut().services.start_call();
        store.set_epoch_deadline(deadline);
        let instance = match &self.link {
            PluginLink::Pre(pre) => pre.instantiate(&mut store),
            PluginLink::Plan { linker, modules } => {
                Self::instantiate_plan(&mut store, linker, modules, &kernel)
            }
        };
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = match instance {
            Ok(i) => i,
            Err(e) => {
                let e = start_timeout(e, options)?;
                return Err(memory_error(e, &store, "the plugin"))
                    .context("instantiating the plugin");
            }
        };
        Ok(Plugin::from_parts(
            store,
            instance,
            kernel,
            stdout,
            self.clone(),
        ))
    }
}

impl PluginPre {
    /// Instantiates the plan's modules in order in `store`; the main module's instance.
    fn instantiate_plan(
        store: &mut Store<HostState>,
        linker: &Linker<HostState>,
        modules: &[PlannedModule],
        kernel: &Kernel,
    ) -> Result<Instance> {
        let mut instances: Vec<Option<Instance>> = vec![None; modules.len()];
        let mut main = None;
        for planned in modules {
            let mut externs: Vec<Extern> = Vec::with_capacity(planned.imports.len());
            for source in &planned.imports {
                externs.push(match source {
                    Source::Kernel(e) => match kernel {
                        Kernel::Core(k) => k
                            .instance()
                            .get_module_export(&mut *store, e)
                            .context("a kernel export vanished")?,
                        Kernel::Component(_) => bail!("the component kernel has no core exports"),
                    },
                    Source::Linker(m, n) => linker
                        .get(&mut *store, m, n)
                        .with_context(|| format!("`{m}::{n}` is not defined"))?,
                    Source::Module(j, e) => instances[*j]
                        .context("a linked module was not instantiated before its importer")?
                        .get_module_export(&mut *store, e)
                        .context("a linked module's export vanished")?,
                });
            }
            let instance = Instance::new(&mut *store, &planned.module, &externs)?;
            instances[planned.index] = Some(instance);
            if planned.index == modules.len() - 1 {
                main = Some(instance);
            }
        }
        main.context("the plan has no main module")
    }
}

/// The export of `module` that answers `import` (of the same name), type-checked; `what`
/// names `module` in a type error, `missing` is the error when it has no such export.
fn answer(
    module: &Module,
    import: &wasmtime::ImportType<'_>,
    what: &str,
    missing: impl FnOnce() -> String,
) -> Result<ModuleExport> {
    let name = import.name();
    let export = module.get_export_index(name).with_context(missing)?;
    let ty = module.get_export(name).expect("the export exists");
    check_import_type(&import.ty(), &ty, import.module(), name, what)?;
    Ok(export)
}

/// Compiles one module of a plugin, refusing what is not a core wasm module.
fn compile_module(runtime: &Runtime, wasm: &[u8]) -> Result<Module> {
    if is_component(wasm) {
        bail!("the file is a component, not an Extism plugin (a core wasm module)");
    }
    if !wasm.starts_with(b"\0asm") {
        bail!("the file is not a WebAssembly module (no `\\0asm` header)");
    }
    runtime.compile_module(wasm).map_err(|e| {
        format_err!(
            "the plugin is not a valid WebAssembly module: {}",
            one_line(&format!("{e:#}"))
        )
    })
}

/// Refuses an allowed path that is not a directory, before anything is instantiated (on
/// every path: classic and composed plugins say the same).
pub(crate) fn check_allowed_paths(options: &PluginOptions) -> Result<()> {
    for p in &options.allowed_paths {
        if !p.host.is_dir() {
            bail!(
                "the allowed path {} is not a directory that exists",
                p.host.display()
            );
        }
    }
    Ok(())
}

/// The WASI context of a plugin run with `options.wasi`, on either plugin form: stdout to
/// `stdout` (inherited when `None`), stderr inherited, the allowed paths preopened.
pub(crate) fn wasi_builder(
    options: &PluginOptions,
    stdout: Option<&MemoryOutputPipe>,
) -> Result<WasiCtxBuilder> {
    let mut b = WasiCtxBuilder::new();
    match stdout {
        Some(pipe) => b.stdout(pipe.clone()),
        None => b.inherit_stdout(),
    };
    for p in &options.allowed_paths {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host, &p.guest, perms)
            .with_context(|| format!("opening the allowed path {}", p.host.display()))?;
    }
    b.inherit_stderr();
    Ok(b)
}

/// An instantiation that ran past the call timeout (a start function that does not return)
/// as that error; any other error as it is.
pub(crate) fn start_timeout(
    e: wasmtime::Error,
    options: &PluginOptions,
) -> Result<wasmtime::Error> {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => bail!(
            "instantiating the plugin: its start function ran past the timeout of {} ms",
            options.timeout.unwrap_or_default().as_millis()
        ),
        _ => Ok(e),
    }
}

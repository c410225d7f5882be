//! Loading an Extism plugin, linking it to a kernel and the host functions, and calling it.

use crate::backend::component::ComponentKernel;
use crate::backend::core::CoreKernel;
use crate::backend::{self, InputTooLarge, Kernel, KernelKind};
use crate::host_fns::{self, HostFunction};
use crate::http::{AllowedHosts, HttpState};
use crate::runtime::{EPOCH_TICK, Runtime};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Linker as ComponentLinker;
use wasmtime::error::Context;
use wasmtime::{Func, Instance, Linker, Module, ResourceLimiter, Store, Trap, Val, ValType};
use wasmtime::{Result, bail};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// The module plugins import the kernel and the host functions from.
pub const ENV: &str = "extism:host/env";
/// The default module of user host functions.
pub const USER: &str = "extism:host/user";
/// The WASI preview 1 module.
pub const WASI_P1: &str = "wasi_snapshot_preview1";

/// What a plugin may do and use.
#[derive(Clone)]
pub struct PluginOptions {
    /// The kernel form.
    pub kernel: KernelKind,
    /// Another kernel module to use on the core backend (for example upstream's).
    pub kernel_wasm: Option<Arc<Vec<u8>>>,
    /// `config_get`'s values.
    pub config: BTreeMap<String, String>,
    /// Hosts `http_request` may reach (globs); none by default.
    pub allowed_hosts: Vec<String>,
    /// Link WASI preview 1 (for plugins built for wasm32-wasip1).
    pub wasi: bool,
    /// Keep what the plugin writes to WASI stdout instead of printing it.
    pub capture_stdout: bool,
    /// Longest a call may run.
    pub timeout: Option<Duration>,
    /// Fuel per call (the runtime must count fuel).
    pub fuel: Option<u64>,
    /// Most 64 KiB pages all the plugin's memories may hold together, kernel included.
    pub memory_max_pages: Option<u64>,
    /// Most severe level the plugin's log calls are kept at; `None`: logging off.
    pub log_level: Option<log::Level>,
    /// Most bytes all vars may hold together (keys and values).
    pub var_limit_bytes: usize,
    /// Largest HTTP response body a plugin may receive.
    pub http_max_response_bytes: u64,
    /// User host functions.
    pub functions: Vec<HostFunction>,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            kernel: KernelKind::Core,
            kernel_wasm: None,
            config: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            wasi: false,
            capture_stdout: false,
            timeout: None,
            fuel: None,
            memory_max_pages: None,
            log_level: None,
            var_limit_bytes: 1 << 20,
            http_max_response_bytes: 64 << 20,
            functions: Vec::new(),
        }
    }
}

impl fmt::Debug for PluginOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginOptions")
            .field("kernel", &self.kernel)
            .field("kernel_wasm", &self.kernel_wasm.as_ref().map(|w| w.len()))
            .field("config", &self.config)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("wasi", &self.wasi)
            .field("timeout", &self.timeout)
            .field("fuel", &self.fuel)
            .field("memory_max_pages", &self.memory_max_pages)
            .field("log_level", &self.log_level)
            .field("functions", &self.functions.len())
            .finish()
    }
}

/// Counts the pages of every memory in a plugin's store against one limit.
#[derive(Debug, Default)]
pub struct Limits {
    max_bytes: Option<u64>,
    bytes: u64,
    /// A growth was refused since the last call started.
    pub denied: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        let total = self.bytes + (desired - current) as u64;
        if self.max_bytes.is_some_and(|m| total > m) {
            self.denied = true;
            return Ok(false);
        }
        self.bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(true)
    }
}

/// What a plugin's store holds for the host functions.
#[expect(
    missing_debug_implementations,
    reason = "the WASI context is not Debug"
)]
pub struct HostState {
    pub(crate) kernel: Option<Kernel>,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) vars: HashMap<String, Vec<u8>>,
    pub(crate) var_bytes: usize,
    pub(crate) var_limit: usize,
    pub(crate) http: HttpState,
    pub(crate) allowed_hosts: AllowedHosts,
    pub(crate) http_max_response: u64,
    pub(crate) http_timeout: Option<Duration>,
    pub(crate) log_level: Option<log::Level>,
    pub(crate) limits: Limits,
    wasi: Option<WasiP1Ctx>,
}

impl HostState {
    /// The kernel of this store.
    pub(crate) fn kernel(&self) -> Result<Kernel> {
        self.kernel
            .clone()
            .context("the plugin's kernel is not instantiated yet")
    }
}

/// Why a call failed. Each variant prints as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The plugin exports no function of that name.
    NoFunction(String),
    /// The export is not an Extism function (`() -> ()` or `() -> i32`).
    NotAnExtismFunction(String, String),
    /// The plugin returned a non-zero code, with the message it set, if any.
    Failed {
        /// The code.
        code: i32,
        /// The error block's text.
        message: Option<String>,
    },
    /// The call ran past its timeout.
    Timeout(Duration),
    /// The call used up its fuel.
    OutOfFuel(u64),
    /// The plugin's memory limit was reached.
    OutOfMemory(String),
    /// The plugin trapped, or a host function failed.
    Trap(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoFunction(n) => write!(f, "the plugin has no function `{n}`"),
            CallError::NotAnExtismFunction(n, ty) => write!(
                f,
                "`{n}` is not an Extism function: its type is {ty}, but Extism functions take no parameters and return nothing or an i32"
            ),
            CallError::Failed {
                code,
                message: Some(m),
            } => {
                write!(f, "plugin error (code {code}): {}", one_line(m))
            }
            CallError::Failed {
                code,
                message: None,
            } => write!(f, "the plugin returned code {code}"),
            CallError::Timeout(d) => write!(f, "the call timed out after {} ms", d.as_millis()),
            CallError::OutOfFuel(n) => write!(f, "the call ran out of fuel ({n} units)"),
            CallError::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            CallError::Trap(m) => f.write_str(&one_line(m)),
        }
    }
}

impl std::error::Error for CallError {}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A loaded plugin: its instance, its kernel, and the store they share.
pub struct Plugin {
    store: Store<HostState>,
    instance: Instance,
    kernel: Kernel,
    timeout: Option<Duration>,
    fuel: Option<u64>,
    memory_max_pages: Option<u64>,
    stdout: Option<MemoryOutputPipe>,
    /// What the plugin was made of, to make it anew after a trap on the component backend.
    parts: Parts,
}

/// Everything a plugin's store is instantiated from (all cheap to clone).
#[derive(Clone)]
struct Parts {
    engine: wasmtime::Engine,
    core_kernel: Module,
    component_kernel: wasmtime::component::Component,
    fuel_counted: bool,
    module: Module,
    kernel_imports: Vec<String>,
    wasi_imported: bool,
    options: PluginOptions,
    stdout: Option<MemoryOutputPipe>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("kernel", &self.kernel)
            .finish()
    }
}

/// The plugin's imports, sorted by what answers them.
struct Imports {
    kernel: Vec<String>,
    wasi: bool,
}

fn classify_imports(module: &Module, options: &PluginOptions) -> Result<Imports> {
    let mut kernel = Vec::new();
    let mut wasi = false;
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        if options
            .functions
            .iter()
            .any(|f| f.namespace == m && f.name == name)
        {
            continue;
        }
        match m {
            ENV if kernel_build::abi::function_type(name).is_some() => {
                kernel.push(name.to_string())
            }
            ENV if host_fns::HOST_FUNCTIONS.contains(&name) => {}
            ENV if name == "memory" || name == "extism_context" => bail!(
                "the plugin imports `{ENV}::{name}`: the kernel's {name} is not importable by plugins"
            ),
            ENV => bail!("the plugin imports `{ENV}::{name}`, which is no kernel or host function"),
            WASI_P1 if options.wasi => wasi = true,
            WASI_P1 => bail!(
                "the plugin imports WASI (`{WASI_P1}::{name}`); enable WASI (--wasi) to run it"
            ),
            USER => bail!(
                "the plugin imports the host function `{USER}::{name}`, which is not registered"
            ),
            _ => bail!("the plugin imports `{m}::{name}`, which this host does not provide"),
        }
    }
    Ok(Imports { kernel, wasi })
}

/// Whether `wasm` is a component rather than a core module.
pub fn is_component(wasm: &[u8]) -> bool {
    wasmparser::Parser::is_component(wasm)
}

impl Plugin {
    /// Loads `wasm` (an Extism plugin: a core module) with `options`.
    pub fn new(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> Result<Plugin> {
        if is_component(wasm) {
            bail!("the file is a component, not an Extism plugin (a core wasm module)");
        }
        if !wasm.starts_with(b"\0asm") {
            bail!("the file is not a WebAssembly module (no `\\0asm` header)");
        }
        let engine = runtime.engine();
        let module = Module::new(engine, wasm).map_err(|e| {
            wasmtime::format_err!(
                "the plugin is not a valid WebAssembly module: {}",
                one_line(&format!("{e:#}"))
            )
        })?;
        let imports = classify_imports(&module, &options)?;
        if options.fuel.is_some() && !runtime.options().fuel {
            bail!("a fuel limit needs a runtime that counts fuel");
        }
        if options.kernel_wasm.is_some() && options.kernel == KernelKind::Component {
            bail!("a kernel given by path runs on the core backend only");
        }
        let core_kernel = match &options.kernel_wasm {
            Some(w) => runtime.compile_kernel(w)?,
            None => runtime.core_kernel().clone(),
        };
        let stdout = options
            .capture_stdout
            .then(|| MemoryOutputPipe::new(usize::MAX));
        Self::instantiate(Parts {
            engine: engine.clone(),
            core_kernel,
            component_kernel: runtime.component_kernel().clone(),
            fuel_counted: runtime.options().fuel,
            module,
            kernel_imports: imports.kernel,
            wasi_imported: imports.wasi,
            options,
            stdout,
        })
    }

    /// A new store with the plugin and its kernel instantiated from `parts`.
    fn instantiate(parts: Parts) -> Result<Plugin> {
        let (engine, options, stdout) = (&parts.engine, &parts.options, parts.stdout.clone());
        let wasi = (options.wasi).then(|| {
            let mut b = WasiCtxBuilder::new();
            match &stdout {
                Some(pipe) => b.stdout(pipe.clone()),
                None => b.inherit_stdout(),
            };
            b.inherit_stderr().build_p1()
        });
        let state = HostState {
            kernel: None,
            config: options.config.clone(),
            vars: HashMap::new(),
            var_bytes: 0,
            var_limit: options.var_limit_bytes,
            http: HttpState::default(),
            allowed_hosts: AllowedHosts::new(options.allowed_hosts.iter().cloned()),
            http_max_response: options.http_max_response_bytes,
            http_timeout: options.timeout,
            log_level: options.log_level,
            limits: Limits {
                max_bytes: options.memory_max_pages.map(|p| p * 65536),
                ..Limits::default()
            },
            wasi,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(u64::MAX / 2);
        if parts.fuel_counted {
            store.set_fuel(u64::MAX)?;
        }
        let memory_error = |e: wasmtime::Error, what: &str| match options.memory_max_pages {
            Some(p) if format!("{e:#}").contains("memory") => wasmtime::format_err!(
                "out of memory: {what} does not fit the memory limit of {p} pages"
            ),
            _ => e,
        };
        let kernel = match options.kernel {
            KernelKind::Core => {
                let module = &parts.core_kernel;
                Kernel::Core(Arc::new(
                    CoreKernel::instantiate(&mut store, module)
                        .map_err(|e| memory_error(e, "the kernel"))?,
                ))
            }
            KernelKind::Component => {
                let linker = ComponentLinker::new(engine);
                Kernel::Component(Arc::new(
                    ComponentKernel::instantiate(&mut store, &parts.component_kernel, &linker)
                        .map_err(|e| memory_error(e, "the kernel component"))?,
                ))
            }
        };
        store.data_mut().kernel = Some(kernel.clone());
        let mut linker: Linker<HostState> = Linker::new(engine);
        backend::link(&kernel, &mut linker, &mut store, &parts.kernel_imports)?;
        host_fns::link(&mut linker)?;
        for f in &options.functions {
            f.define(&mut linker)?;
        }
        if parts.wasi_imported {
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut HostState| {
                s.wasi
                    .as_mut()
                    .expect("WASI is linked only when the context exists")
            })?;
        }
        let instance = linker
            .instantiate(&mut store, &parts.module)
            .map_err(|e| memory_error(e, "the plugin"))
            .context("instantiating the plugin")?;
        Ok(Plugin {
            store,
            instance,
            kernel,
            timeout: options.timeout,
            fuel: options.fuel,
            memory_max_pages: options.memory_max_pages,
            stdout,
            parts,
        })
    }

    /// Whether the plugin exports a function `name`.
    pub fn function_exists(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// What the plugin wrote to WASI stdout, when it was captured.
    pub fn stdout(&self) -> Option<Vec<u8>> {
        self.stdout.as_ref().map(|p| p.contents().to_vec())
    }

    /// The kernel this plugin runs on.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Calls the plugin's function `name` with `input`; its output, or why it failed.
    ///
    /// On the component backend, any trap in the store (the plugin's, or one inside a kernel
    /// call) makes wasmtime refuse every later entry into the kernel component. The plugin is
    /// then instantiated anew in a fresh store, with its vars kept: a plugin that trapped
    /// loses its own memory state on that backend (the kernel holds nothing across calls).
    pub fn call(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let result = self.call_once(name, input);
        if let Err(
            CallError::Timeout(_)
            | CallError::OutOfFuel(_)
            | CallError::OutOfMemory(_)
            | CallError::Trap(_),
        ) = &result
        {
            self.renew_component_kernel();
        }
        result
    }

    /// Makes the plugin anew in a fresh store, keeping its vars: wasmtime marks a store in
    /// which any wasm trapped so that none of its component instances can be entered again.
    fn renew_component_kernel(&mut self) {
        if !matches!(self.kernel, Kernel::Component(_)) {
            return;
        }
        if let Ok(mut fresh) = Self::instantiate(self.parts.clone()) {
            let old = self.store.data_mut();
            let (vars, var_bytes) = (std::mem::take(&mut old.vars), old.var_bytes);
            let new = fresh.store.data_mut();
            new.vars = vars;
            new.var_bytes = var_bytes;
            *self = fresh;
        }
    }

    fn call_once(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| CallError::NoFunction(name.to_string()))?;
        let ty = func.ty(&self.store);
        let returns_code = match (
            ty.params().len(),
            ty.results().collect::<Vec<_>>().as_slice(),
        ) {
            (0, []) => false,
            (0, [ValType::I32]) => true,
            _ => {
                return Err(CallError::NotAnExtismFunction(
                    name.to_string(),
                    ty.to_string(),
                ));
            }
        };
        self.store.data_mut().limits.denied = false;
        self.store.set_epoch_deadline(match self.timeout {
            Some(t) => (t.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1,
            None => u64::MAX / 2,
        });
        self.unlimited_fuel();
        match self.kernel.prepare_call(&mut self.store, input) {
            Ok(Ok(())) => {}
            Ok(Err(InputTooLarge(n))) => {
                return Err(CallError::OutOfMemory(match self.memory_max_pages {
                    Some(p) if self.store.data().limits.denied => {
                        format!("the input of {n} bytes does not fit the memory limit of {p} pages")
                    }
                    _ => format!("the kernel cannot hold an input of {n} bytes"),
                }));
            }
            Err(e) => return Err(self.classify(e)),
        }
        // The fuel limit is the plugin's: the kernel's own preparation is not counted.
        if let Some(fuel) = self.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Trap(e.to_string()))?;
        }
        let code = self
            .invoke(func, returns_code)
            .map_err(|e| self.classify(e));
        self.unlimited_fuel();
        let code = code?;
        if code != 0 {
            let message = self
                .kernel
                .error(&mut self.store)
                .map_err(|e| self.classify(e))?;
            return Err(CallError::Failed { code, message });
        }
        self.kernel
            .output(&mut self.store)
            .map_err(|e| CallError::Trap(one_line(&format!("{e:#}"))))
    }

    /// The host's own calls into the kernel (before and after the plugin's) are not metered.
    fn unlimited_fuel(&mut self) {
        if self.fuel.is_some() {
            let _ = self.store.set_fuel(u64::MAX);
        }
    }

    fn invoke(&mut self, func: Func, returns_code: bool) -> Result<i32> {
        if returns_code {
            let mut out = [Val::I32(0)];
            func.call(&mut self.store, &[], &mut out)?;
            Ok(out[0].unwrap_i32())
        } else {
            func.call(&mut self.store, &[], &mut [])?;
            Ok(0)
        }
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        let denied = self.store.data().limits.denied;
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                return CallError::Timeout(self.timeout.unwrap_or_default());
            }
            Some(Trap::OutOfFuel) => return CallError::OutOfFuel(self.fuel.unwrap_or_default()),
            _ => {}
        }
        if denied {
            let p = self.memory_max_pages.unwrap_or_default();
            return CallError::OutOfMemory(format!(
                "the plugin reached its memory limit of {p} pages ({})",
                one_line(&e.root_cause().to_string())
            ));
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => {
                CallError::Trap("the plugin trapped: call stack exhausted".into())
            }
            Some(t) => CallError::Trap(format!("the plugin trapped: {t}")),
            None => CallError::Trap(one_line(&e.root_cause().to_string())),
        }
    }
}

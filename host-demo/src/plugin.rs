//! Loading an Extism plugin, linking it to a kernel and the host functions, and calling it.

use crate::backend::{InputTooLarge, Kernel, KernelKind};
use crate::host_fns::HostFunction;
use crate::http::{AllowedHosts, HttpState};
use crate::pre::PluginPre;
pub use crate::pre::is_component;
use crate::runtime::{EPOCH_TICK, Runtime};
use crate::vars::Vars;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Result;
use wasmtime::error::Context;
use wasmtime::{Func, Instance, ResourceLimiter, Store, Trap, Val};
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

impl Limits {
    /// No more than `max_bytes` in all the store's memories together (`None`: no limit).
    pub fn new(max_bytes: Option<u64>) -> Self {
        Limits {
            max_bytes,
            ..Limits::default()
        }
    }
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
    pub(crate) vars: Vars,
    pub(crate) http: HttpState,
    pub(crate) allowed_hosts: AllowedHosts,
    pub(crate) http_max_response: u64,
    pub(crate) http_timeout: Option<Duration>,
    pub(crate) log_level: Option<log::Level>,
    pub(crate) limits: Limits,
    pub(crate) wasi: Option<WasiP1Ctx>,
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

impl CallError {
    /// What a failed call into wasm means for the caller: a timeout or out of fuel (the
    /// limits in `options`), out of memory when a memory growth was `denied`, or a trap.
    pub(crate) fn from_wasm(e: wasmtime::Error, options: &PluginOptions, denied: bool) -> Self {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                return CallError::Timeout(options.timeout.unwrap_or_default());
            }
            Some(Trap::OutOfFuel) => return CallError::OutOfFuel(options.fuel.unwrap_or_default()),
            _ => {}
        }
        if denied {
            let p = options.memory_max_pages.unwrap_or_default();
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

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A loaded plugin: its instance, its kernel, and the store they share.
///
/// A `Plugin` is `Send`: different threads may call different plugins at the same time.
pub struct Plugin {
    store: Store<HostState>,
    instance: Instance,
    kernel: Kernel,
    stdout: Option<MemoryOutputPipe>,
    /// What the plugin is instantiated from, to make it anew after a trap on the component
    /// backend.
    pre: Arc<PluginPre>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("kernel", &self.kernel)
            .finish()
    }
}

impl Plugin {
    /// Loads `wasm` (an Extism plugin: a core module) with `options`: compiles, links and
    /// instantiates it. To make many instances of one plugin, use [`PluginPre`] instead.
    pub fn new(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> Result<Plugin> {
        Arc::new(PluginPre::new(runtime, wasm, options)?).instantiate()
    }

    pub(crate) fn from_parts(
        store: Store<HostState>,
        instance: Instance,
        kernel: Kernel,
        stdout: Option<MemoryOutputPipe>,
        pre: Arc<PluginPre>,
    ) -> Plugin {
        Plugin {
            store,
            instance,
            kernel,
            stdout,
            pre,
        }
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
            self.renew_after_trap();
        }
        result
    }

    /// Makes the plugin anew in a fresh store, keeping its vars and its captured stdout:
    /// wasmtime marks a store in which any wasm trapped so that none of its component
    /// instances can be entered again. Only the component backend needs this.
    fn renew_after_trap(&mut self) {
        if !matches!(self.kernel, Kernel::Component(_)) {
            return;
        }
        if let Ok(mut fresh) = self.pre.instantiate_with(self.stdout.clone()) {
            fresh.store.data_mut().vars = std::mem::take(&mut self.store.data_mut().vars);
            *self = fresh;
        }
    }

    /// What this plugin was instantiated from: make more instances of it with
    /// [`PluginPre::instantiate`].
    pub fn pre(&self) -> &Arc<PluginPre> {
        &self.pre
    }

    fn call_once(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let (index, returns_code) = self.pre.function(name)?;
        let func = self
            .instance
            .get_module_export(&mut self.store, index)
            .and_then(|e| e.into_func())
            .ok_or_else(|| CallError::NoFunction(name.to_string()))?;
        self.store.data_mut().limits.denied = false;
        self.store
            .set_epoch_deadline(match self.pre.options().timeout {
                Some(t) => (t.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1,
                None => u64::MAX / 2,
            });
        self.unlimited_fuel();
        match self.kernel.prepare_call(&mut self.store, input) {
            Ok(Ok(())) => {}
            Ok(Err(InputTooLarge(n))) => {
                return Err(CallError::OutOfMemory(
                    match self.pre.options().memory_max_pages {
                        Some(p) if self.store.data().limits.denied => {
                            format!(
                                "the input of {n} bytes does not fit the memory limit of {p} pages"
                            )
                        }
                        _ => format!("the kernel cannot hold an input of {n} bytes"),
                    },
                ));
            }
            Err(e) => return Err(self.classify(e)),
        }
        // The fuel limit is the plugin's: the kernel's own preparation is not counted.
        if let Some(fuel) = self.pre.options().fuel {
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
        if self.pre.options().fuel.is_some() {
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
        CallError::from_wasm(e, self.pre.options(), self.store.data().limits.denied)
    }
}

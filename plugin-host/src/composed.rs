//! Running a composed plugin: the output of `host-demo componentize` (world `plugin` of
//! `wit/extism-plugin.wit`), a component whose only import is the value-based host services
//! `extism:kernel/host` (and, for a plugin built for WASI preview 1, the WASI 0.2 interfaces
//! the adapter uses, served by wasmtime-wasi) and whose only export is
//! `extism:kernel/entry`'s `call`.
//!
//! [`ComposedPlugin`] instantiates it with the host side of those services, the same
//! [`Services`] a classic plugin's host functions use (config, vars with the same byte
//! limit, log lines, HTTP through the allow-list within the call's deadline), and user host
//! functions by value (those made with [`HostFunction::bytes`]). A plugin therefore gives
//! the same outputs and errors on both forms; the kernel, the handle bookkeeping and the call
//! sequence live inside the component.
//!
//! A host service that fails (a var limit, a host not allowed) traps the call with its
//! message, as the host functions of the core path do. After any trap wasmtime refuses to
//! enter the component again, so the plugin is instantiated anew, keeping its vars.

use crate::componentize::glue;
use crate::error::{CallError, Renewal};
use crate::host_fns::HostFunction;
use crate::host_fns::log::level_to_int;
use crate::host_fns::vars::key_string;
use crate::options::PluginOptions;
use crate::pre::{check_allowed_paths, start_timeout, wasi_builder};
use crate::runtime::{EpochTicker, Runtime};
use crate::state::Services;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::component::{HasSelf, Linker, WasmList};
use wasmtime::error::Context;
use wasmtime::{Result, bail};
use wasmtime::{Store, StoreContextMut, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

use bindings::exports::extism::kernel::entry::CallError as EntryError;
use bindings::extism::kernel::host::{Host, LogLevel};

/// The host services' interface, as the composed component imports it.
const HOST_INTERFACE: &str = "extism:kernel/host@1.0.0";

/// `var-set` over its lists as they lie in the kernel's memory: the limit is checked on their
/// lengths before a byte is copied, as on the core path (bindgen's `Host::var_set` would get
/// them copied, a value of any size the plugin's memory holds).
fn var_set_unlifted(
    mut store: StoreContextMut<'_, ComposedState>,
    (key, value): (WasmList<u8>, Option<WasmList<u8>>),
) -> Result<()> {
    store.data().services.vars.check_key_len(key.len() as u64)?;
    let key = key_string(key.as_le_slice(&store).to_vec(), "var_set")?;
    let value = match value {
        None => None,
        Some(value) => {
            let vars = &store.data().services.vars;
            vars.check_set(&key, value.len() as u64)?;
            Some(value.as_le_slice(&store).to_vec())
        }
    };
    store.data_mut().services.var_set(key, value)
}

/// What a composed plugin's store holds: the host services and the user functions.
pub struct ComposedState {
    services: Services,
    functions: Arc<Vec<HostFunction>>,
    /// WASI 0.2, for a composed plugin that imports it (built from `PluginOptions::wasi`,
    /// the allowed paths and stdout capture, as for a classic plugin).
    wasi: WasiCtx,
    table: ResourceTable,
}

impl fmt::Debug for ComposedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComposedState")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl WasiView for ComposedState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ComposedState {
    fn new(
        services: Services,
        functions: Arc<Vec<HostFunction>>,
        options: &PluginOptions,
        stdout: Option<&MemoryOutputPipe>,
    ) -> Result<Self> {
        let wasi = match options.wasi {
            true => wasi_builder(options, stdout)?.build(),
            false => WasiCtx::builder().build(),
        };
        Ok(ComposedState {
            services,
            functions,
            wasi,
            table: ResourceTable::new(),
        })
    }
}

impl Host for ComposedState {
    fn config_get(&mut self, key: Vec<u8>) -> Result<Option<String>> {
        Ok(self.services.config_get(&key).map(str::to_string))
    }

    fn var_get(&mut self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let key = key_string(key, "var_get")?;
        Ok(self.services.var_get(&key).map(<[u8]>::to_vec))
    }

    /// Never called: the linker shadows it with [`var_set_unlifted`], which checks the limit
    /// before copying. Kept for the trait, with the same result.
    fn var_set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<()> {
        let key = key_string(key, "var_set")?;
        self.services.var_set(key, value)
    }

    fn get_log_level(&mut self) -> Result<i32> {
        Ok(level_to_int(self.services.log_level))
    }

    fn log(&mut self, level: LogLevel, message: Vec<u8>) -> Result<()> {
        let level = match level {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        self.services.log(level, &message);
        Ok(())
    }

    fn http_request(&mut self, request: Vec<u8>, body: Option<Vec<u8>>) -> Result<Vec<u8>> {
        self.services.http_request(&request, body.as_deref())
    }

    fn http_status_code(&mut self) -> Result<u16> {
        Ok(self.services.http.status)
    }

    fn http_headers(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.services.http_headers())
    }

    fn user_call(&mut self, namespace: String, name: String, input: Vec<u8>) -> Result<Vec<u8>> {
        let Some(f) = self
            .functions
            .iter()
            .find(|f| f.namespace == namespace && f.name == name)
        else {
            bail!("the host has no user function `{namespace}::{name}`");
        };
        match f.call_bytes(&input) {
            Some(result) => result,
            None => bail!(
                "the user function `{namespace}::{name}` works on the plugin's kernel (HostFunction::new); a composed plugin can only call functions made with HostFunction::bytes"
            ),
        }
    }
}

/// A composed plugin, instantiated in its own store.
pub struct ComposedPlugin {
    store: Store<ComposedState>,
    plugin: bindings::Plugin,
    pre: bindings::PluginPre<ComposedState>,
    options: PluginOptions,
    functions: Arc<Vec<HostFunction>>,
    /// Whether it can still be called after a trap.
    renewal: Renewal,
    /// WASI stdout, when `PluginOptions::capture_stdout` asks for it.
    stdout: Option<MemoryOutputPipe>,
    /// The numbers of the plugin's functions called so far (`function-index`; they do not
    /// change for the component's life, across renewals too).
    indices: HashMap<String, u32>,
    _ticker: Arc<EpochTicker>,
}

impl fmt::Debug for ComposedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComposedPlugin")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ComposedPlugin {
    /// Compiles and instantiates the composed plugin `wasm`. Of `options`, the kernel form
    /// and the kernel module do not apply (the kernel is inside); WASI, the allowed paths and
    /// stdout capture apply to a plugin that imports WASI (which needs `wasi`, as a classic
    /// one does); its user functions must be [`HostFunction::bytes`] functions.
    pub fn new(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> Result<Self> {
        let component = runtime
            .compile_component(wasm)
            .context("compiling the composed plugin")?;
        Self::from_component(runtime, &component, options)
    }

    /// Composes the classic plugin `plugin` (a core module) with the kernel, as
    /// [`componentize`](crate::componentize::componentize) does, and instantiates it: the
    /// composed path at load time (`host-demo call --kernel composed`). With the runtime's
    /// cache, a plugin composed before is neither composed nor compiled again. `options` as
    /// for [`new`](Self::new).
    pub fn compose(runtime: &Runtime, plugin: &[u8], options: PluginOptions) -> Result<Self> {
        let component = runtime
            .compile_composed(plugin)
            .context("composing the plugin with the kernel")?;
        Self::from_component(runtime, &component, options)
    }

    /// Instantiates a compiled composed plugin.
    pub fn from_component(
        runtime: &Runtime,
        component: &wasmtime::component::Component,
        options: PluginOptions,
    ) -> Result<Self> {
        let wasi = component
            .component_type()
            .imports(runtime.engine())
            .any(|(name, _)| name.starts_with("wasi:"));
        if wasi && !options.wasi {
            bail!("the composed plugin imports WASI: enable it (PluginOptions::wasi, --wasi)");
        }
        check_allowed_paths(&options)?;
        let mut linker = Linker::new(runtime.engine());
        bindings::Plugin::add_to_linker::<_, HasSelf<ComposedState>>(&mut linker, |s| s)?;
        linker.allow_shadowing(true);
        linker
            .instance(HOST_INTERFACE)?
            .func_wrap("var-set", var_set_unlifted)?;
        linker.allow_shadowing(false);
        if wasi {
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        }
        let pre = bindings::PluginPre::new(linker.instantiate_pre(component)?)
            .context("the component is not a composed plugin (world `extism:kernel/plugin`)")?;
        let functions = Arc::new(options.functions.clone());
        let stdout = options
            .capture_stdout
            .then(|| MemoryOutputPipe::new(usize::MAX));
        let state = ComposedState::new(
            Services::new(&options),
            functions.clone(),
            &options,
            stdout.as_ref(),
        )?;
        let (store, plugin) = Self::instantiate(&pre, state, &options)?;
        Ok(ComposedPlugin {
            store,
            plugin,
            pre,
            options,
            functions,
            renewal: Renewal::default(),
            stdout,
            indices: HashMap::new(),
            _ticker: runtime.ticker(),
        })
    }

    fn instantiate(
        pre: &bindings::PluginPre<ComposedState>,
        state: ComposedState,
        options: &PluginOptions,
    ) -> Result<(Store<ComposedState>, bindings::Plugin)> {
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.services.limits);
        // Unmetered unless a call sets a limit; an engine that counts no fuel refuses this.
        let _ = store.set_fuel(u64::MAX);
        // The plugin's start function runs inside instantiation, within the call timeout.
        let deadline = store.data_mut().services.start_call();
        store.set_epoch_deadline(deadline);
        let plugin = pre.instantiate(&mut store);
        store.set_epoch_deadline(u64::MAX / 2);
        let plugin = plugin.or_else(|e| Err(start_timeout(e, options)?))?;
        Ok((store, plugin))
    }

    /// Calls the plugin's function `name` with `input`; its output, or why it failed, as
    /// [`Plugin::call`](crate::Plugin::call) reports it.
    ///
    /// The first call of a name looks its number up (`function-index`); every call then
    /// enters `call-index`, which lowers only the input (a trivial call about 0.1 µs faster
    /// than through `call`, which lowers the name each time too).
    ///
    /// If making it anew after a trap fails, the call's error says so, and so does every
    /// later call.
    pub fn call(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.renewal.check()?;
        let index = match self.indices.get(name) {
            Some(&i) => i,
            None => {
                let found = self.enter(|p| {
                    p.plugin
                        .extism_kernel_entry()
                        .call_function_index(&mut p.store, name)
                        .map(Ok)
                })?;
                let Some(i) = found else {
                    return Err(CallError::NoFunction(name.to_string()));
                };
                self.indices.insert(name.to_string(), i);
                i
            }
        };
        self.enter(|p| {
            p.plugin
                .extism_kernel_entry()
                .call_call_index(&mut p.store, index, input)
        })
    }

    /// [`call`](Self::call) through the entry point's `call(name, input)`, which lowers the
    /// name on every call: what a host without the numbers does. The results are the same.
    pub fn call_by_name(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.renewal.check()?;
        self.enter(|p| {
            p.plugin
                .extism_kernel_entry()
                .call_call(&mut p.store, name, input)
        })
    }

    /// Runs `f` into the plugin within the call's timeout and fuel, and turns its result
    /// into the call's: an `err` of the entry point is the plugin's failure, a trap is
    /// classified and the plugin made anew.
    fn enter<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> wasmtime::Result<Result<T, EntryError>>,
    ) -> Result<T, CallError> {
        let deadline = self.store.data_mut().services.start_call();
        self.store.set_epoch_deadline(deadline);
        if let Some(fuel) = self.options.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Trap(e.to_string()))?;
        }
        match f(self) {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(EntryError::NoFunction(name))) => Err(CallError::NoFunction(name)),
            Ok(Err(EntryError::Failed((code, message)))) => Err(CallError::Failed {
                code,
                message: message.map(|m| String::from_utf8_lossy(&m).into_owned()),
            }),
            Err(e) => {
                let error = self.classify(e);
                let renewed = self.renew_after_trap();
                Err(self.renewal.after_trap(error, renewed))
            }
        }
    }

    /// What the plugin wrote to WASI stdout, when `PluginOptions::capture_stdout` is set.
    pub fn stdout(&self) -> Option<Vec<u8>> {
        self.stdout.as_ref().map(|p| p.contents().to_vec())
    }

    /// The names of the plugin's vars and their values.
    pub fn vars(&self) -> &HashMap<String, Vec<u8>> {
        self.store.data().services.vars().all()
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        let denied = self.store.data().services.limits.denied;
        // A trap of the composition's own glue: its function's name says why.
        let glue = e
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .and_then(|b| b.frames().first())
            .and_then(|f| f.func_name())
            .and_then(glue::trap_message);
        match glue {
            Some(why)
                if !denied && matches!(e.downcast_ref(), Some(Trap::UnreachableCodeReached)) =>
            {
                CallError::Trap(why.to_string())
            }
            _ => CallError::from_wasm(e, &self.options, denied),
        }
    }

    /// A fresh instance in a fresh store, keeping the vars: wasmtime refuses to enter a
    /// component again in a store where wasm trapped.
    fn renew_after_trap(&mut self) -> Result<()> {
        let services = self.store.data_mut().services.renewed(&self.options);
        let state = ComposedState::new(
            services,
            self.functions.clone(),
            &self.options,
            self.stdout.as_ref(),
        )?;
        let (store, plugin) = Self::instantiate(&self.pre, state, &self.options)?;
        self.store = store;
        self.plugin = plugin;
        Ok(())
    }
}

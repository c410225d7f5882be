//! Running a composed plugin: the output of `host-demo componentize` (world `plugin` of
//! `wit/extism-plugin.wit`), a component whose only import is the value-based host services
//! `extism:kernel/host` and whose only export is `extism:kernel/entry`'s `call`.
//!
//! [`ComposedPlugin`] instantiates it with [`Services`], the host side of those services:
//! config, vars (with the same byte limit), log lines (target [`LOG_TARGET`]), HTTP through
//! [`http::request`] and its allow-list, and user host functions by value
//! ([`UserFunction`]). Their behaviour is the one [`host_fns`](crate::host_fns) gives classic
//! plugins, so a plugin gives the same outputs and errors on both; the kernel, the handle
//! bookkeeping and the call sequence live inside the component.
//!
//! A host service that fails (a var limit, a host not allowed) traps the call with its
//! message, as the host functions of the core path do. After any trap wasmtime refuses to
//! enter the component again, so the plugin is instantiated anew, keeping its vars.

use crate::cli::CallArgs;
use crate::host_fns::{LOG_TARGET, level_to_int};
use crate::http::{self, AllowedHosts, HttpState};
use crate::plugin::{CallError, Limits, PluginOptions, USER};
use crate::runtime::{EPOCH_TICK, Runtime};
use crate::vars::Vars;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context;
use wasmtime::{Result, bail};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

use bindings::exports::extism::kernel::entry::CallError as EntryError;
use bindings::extism::kernel::host::{Host, LogLevel};

type UserCallback = dyn Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync;

/// A user host function by value: the argument block's bytes in, the result's bytes out (the
/// shape of [`HostFunction::bytes`](crate::HostFunction::bytes)).
#[derive(Clone)]
pub struct UserFunction {
    /// The import module (`extism:host/user` by default).
    pub namespace: String,
    /// The import name.
    pub name: String,
    callback: Arc<UserCallback>,
}

impl fmt::Debug for UserFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserFunction({}::{})", self.namespace, self.name)
    }
}

impl UserFunction {
    /// A user host function `name` of `extism:host/user`.
    pub fn new(
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        UserFunction {
            namespace: USER.to_string(),
            name: name.into(),
            callback: Arc::new(f),
        }
    }

    /// The same function under another import module.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
}

/// The host services of a composed plugin: what its store holds.
#[derive(Debug)]
pub struct Services {
    config: BTreeMap<String, String>,
    vars: Vars,
    http: HttpState,
    allowed_hosts: AllowedHosts,
    http_max_response: u64,
    http_timeout: Option<Duration>,
    log_level: Option<log::Level>,
    functions: Arc<Vec<UserFunction>>,
    limits: Limits,
}

impl Services {
    fn new(options: &PluginOptions, functions: Arc<Vec<UserFunction>>) -> Self {
        Services {
            config: options.config.clone(),
            vars: Vars::new(options.var_limit_bytes),
            http: HttpState::default(),
            allowed_hosts: AllowedHosts::new(options.allowed_hosts.iter().cloned()),
            http_max_response: options.http_max_response_bytes,
            http_timeout: options.timeout,
            log_level: options.log_level,
            functions,
            limits: Limits::new(options.memory_max_pages.map(|p| p * 65536)),
        }
    }
}

impl Host for Services {
    fn config_get(&mut self, key: String) -> Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }

    fn var_get(&mut self, key: String) -> Result<Option<Vec<u8>>> {
        Ok(self.vars.get(&key).map(<[u8]>::to_vec))
    }

    fn var_set(&mut self, key: String, value: Option<Vec<u8>>) -> Result<()> {
        self.vars.set(key, value)
    }

    fn get_log_level(&mut self) -> Result<i32> {
        Ok(level_to_int(self.log_level))
    }

    fn log(&mut self, level: LogLevel, message: String) -> Result<()> {
        let level = match level {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        if self.log_level.is_some_and(|l| level <= l) {
            log::log!(target: LOG_TARGET, level, "{message}");
        }
        Ok(())
    }

    fn http_request(&mut self, request: Vec<u8>, body: Option<Vec<u8>>) -> Result<Vec<u8>> {
        http::request(
            &mut self.http,
            &self.allowed_hosts,
            &request,
            body.as_deref(),
            self.http_max_response,
            self.http_timeout,
        )
        .map_err(wasmtime::Error::from_anyhow)
    }

    fn http_status_code(&mut self) -> Result<u16> {
        Ok(self.http.status)
    }

    fn http_headers(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.http.headers.take())
    }

    fn user_call(&mut self, namespace: String, name: String, input: Vec<u8>) -> Result<Vec<u8>> {
        let Some(f) = self
            .functions
            .iter()
            .find(|f| f.namespace == namespace && f.name == name)
        else {
            bail!("the host has no user function `{namespace}::{name}`");
        };
        (f.callback)(&input)
    }
}

/// A composed plugin, instantiated in its own store.
pub struct ComposedPlugin {
    store: Store<Services>,
    plugin: bindings::Plugin,
    pre: bindings::PluginPre<Services>,
    options: PluginOptions,
    functions: Arc<Vec<UserFunction>>,
}

impl fmt::Debug for ComposedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComposedPlugin")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ComposedPlugin {
    /// Compiles and instantiates the composed plugin `wasm`. Of `options`, the kernel form,
    /// the kernel module, WASI and stdout capture do not apply (the kernel is inside, and a
    /// composed plugin has no WASI); user host functions are `functions`.
    pub fn new(
        runtime: &Runtime,
        wasm: &[u8],
        options: PluginOptions,
        functions: Vec<UserFunction>,
    ) -> Result<Self> {
        let component =
            Component::new(runtime.engine(), wasm).context("compiling the composed plugin")?;
        let mut linker = Linker::new(runtime.engine());
        bindings::Plugin::add_to_linker::<_, HasSelf<Services>>(&mut linker, |s| s)?;
        let pre = bindings::PluginPre::new(linker.instantiate_pre(&component)?)
            .context("the component is not a composed plugin (world `extism:kernel/plugin`)")?;
        let functions = Arc::new(functions);
        let (store, plugin) = Self::instantiate(&pre, Services::new(&options, functions.clone()))?;
        Ok(ComposedPlugin {
            store,
            plugin,
            pre,
            options,
            functions,
        })
    }

    fn instantiate(
        pre: &bindings::PluginPre<Services>,
        services: Services,
    ) -> Result<(Store<Services>, bindings::Plugin)> {
        let mut store = Store::new(pre.engine(), services);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(u64::MAX / 2);
        // Unmetered unless a call sets a limit; an engine that counts no fuel refuses this.
        let _ = store.set_fuel(u64::MAX);
        let plugin = pre.instantiate(&mut store)?;
        Ok((store, plugin))
    }

    /// Calls the plugin's function `name` with `input`; its output, or why it failed, as
    /// [`Plugin::call`](crate::Plugin::call) reports it.
    pub fn call(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.store.data_mut().limits.denied = false;
        self.store.set_epoch_deadline(match self.options.timeout {
            Some(t) => (t.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1,
            None => u64::MAX / 2,
        });
        if let Some(fuel) = self.options.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Trap(e.to_string()))?;
        }
        let result = self
            .plugin
            .extism_kernel_entry()
            .call_call(&mut self.store, name, input);
        match result {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(EntryError::NoFunction(name))) => Err(CallError::NoFunction(name)),
            Ok(Err(EntryError::InputTooLarge(n))) => Err(CallError::OutOfMemory(format!(
                "the kernel cannot hold an input of {n} bytes"
            ))),
            Ok(Err(EntryError::Failed((code, message)))) => {
                Err(CallError::Failed { code, message })
            }
            Err(e) => {
                let error = self.classify(e);
                self.renew_after_trap();
                Err(error)
            }
        }
    }

    /// The names of the plugin's vars and their values.
    pub fn vars(&self) -> &HashMap<String, Vec<u8>> {
        self.store.data().vars.all()
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        CallError::from_wasm(e, &self.options, self.store.data().limits.denied)
    }

    /// A fresh instance in a fresh store, keeping the vars: wasmtime refuses to enter a
    /// component again in a store where wasm trapped.
    fn renew_after_trap(&mut self) {
        let mut services = Services::new(&self.options, self.functions.clone());
        let old = self.store.data_mut();
        services.vars = std::mem::take(&mut old.vars);
        if let Ok((store, plugin)) = Self::instantiate(&self.pre, services) {
            self.store = store;
            self.plugin = plugin;
        }
    }
}

/// The user host function the sample plugin `host_fn` imports: reverses a UTF-8 string (the
/// composed form of [`cli::host_reverse`](crate::cli::host_reverse)).
pub fn host_reverse() -> UserFunction {
    UserFunction::new("host_reverse", crate::cli::reverse_utf8)
}

/// `host-demo call` on a composed plugin: the options that apply to it, the same output and
/// timing lines as on the core path.
pub fn call_cli(args: CallArgs, wasm: &[u8]) -> Result<i32> {
    if args.wasi || args.kernel_wasm.is_some() {
        bail!(
            "a composed plugin carries its own kernel and has no WASI: drop --wasi and --kernel-wasm"
        );
    }
    if args.loops == 0 {
        bail!("--loop must be at least 1");
    }
    let input = crate::cli::read_input(&args)?;
    let runtime = Runtime::new(crate::RuntimeOptions {
        fuel: args.fuel.is_some(),
        ..crate::RuntimeOptions::default()
    })?;
    let options = PluginOptions {
        config: crate::cli::parse_config(&args.config)?
            .into_iter()
            .collect(),
        allowed_hosts: args.allow_host.clone(),
        timeout: args.timeout.map(Duration::from_millis),
        fuel: args.fuel,
        memory_max_pages: args.memory_max,
        log_level: args.log_level.map(Into::into),
        ..PluginOptions::default()
    };
    let mut plugin = ComposedPlugin::new(&runtime, wasm, options, vec![host_reverse()])?;
    crate::cli::call_loop(args.loops, || plugin.call(&args.function, &input))
}

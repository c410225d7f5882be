//! The host functions of `extism:host/env` (config, vars, logging, HTTP) and user host
//! functions. Each reads its arguments out of the kernel through [`Kernel`], whichever form
//! the kernel takes, and takes ownership of (frees) the handles passed to it, as the Extism
//! runtime does; user host functions leave that to the plugin (the pdk frees them).

use crate::backend::Kernel;
use crate::http;
use crate::plugin::{ENV, HostState, USER};
use std::fmt;
use std::sync::Arc;
use wasmtime::Result;
use wasmtime::{Caller, FuncType, Linker, Val, ValType};

/// The host functions a plugin may import from `extism:host/env`.
pub const HOST_FUNCTIONS: [&str; 12] = [
    "config_get",
    "var_get",
    "var_set",
    "http_request",
    "http_status_code",
    "http_headers",
    "log_trace",
    "log_debug",
    "log_info",
    "log_warn",
    "log_error",
    "get_log_level",
];

/// Log target of plugin log lines.
pub const LOG_TARGET: &str = "extism::plugin";

/// The plugin side of `get_log_level`: trace 0 ... error 4, `i32::MAX` when off.
pub fn level_to_int(level: Option<log::Level>) -> i32 {
    match level {
        Some(log::Level::Trace) => 0,
        Some(log::Level::Debug) => 1,
        Some(log::Level::Info) => 2,
        Some(log::Level::Warn) => 3,
        Some(log::Level::Error) => 4,
        None => i32::MAX,
    }
}

fn read_and_free(c: &mut Caller<'_, HostState>, k: &Kernel, h: u64) -> Result<Vec<u8>> {
    let bytes = k.read_block(&mut *c, h)?;
    k.free(&mut *c, h)?;
    Ok(bytes)
}

fn log_fn(level: log::Level) -> impl Fn(Caller<'_, HostState>, u64) -> Result<()> {
    move |mut c, h| {
        let k = c.data().kernel()?;
        let msg = read_and_free(&mut c, &k, h)?;
        if c.data().log_level.is_some_and(|l| level <= l) {
            log::log!(target: LOG_TARGET, level, "{}", String::from_utf8_lossy(&msg));
        }
        Ok(())
    }
}

/// Defines every `extism:host/env` host function in `linker`.
pub fn link(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        ENV,
        "config_get",
        |mut c: Caller<'_, HostState>, key: u64| {
            let k = c.data().kernel()?;
            let key = read_and_free(&mut c, &k, key)?;
            let value = c
                .data()
                .config
                .get(&*String::from_utf8_lossy(&key))
                .cloned();
            match value {
                Some(v) => k.alloc_bytes(&mut c, v.as_bytes()),
                None => Ok(0),
            }
        },
    )?;
    linker.func_wrap(ENV, "var_get", |mut c: Caller<'_, HostState>, key: u64| {
        let k = c.data().kernel()?;
        let key = read_and_free(&mut c, &k, key)?;
        let value = c
            .data()
            .vars
            .get(&String::from_utf8_lossy(&key))
            .map(<[u8]>::to_vec);
        match value {
            Some(v) => k.alloc_bytes(&mut c, &v),
            None => Ok(0),
        }
    })?;
    linker.func_wrap(
        ENV,
        "var_set",
        |mut c: Caller<'_, HostState>, key: u64, value: u64| {
            let k = c.data().kernel()?;
            let key = String::from_utf8_lossy(&read_and_free(&mut c, &k, key)?).into_owned();
            let value = if value == 0 {
                None
            } else {
                Some(read_and_free(&mut c, &k, value)?)
            };
            c.data_mut().vars.set(key, value)
        },
    )?;
    linker.func_wrap(
        ENV,
        "http_request",
        |mut c: Caller<'_, HostState>, req: u64, body: u64| {
            let k = c.data().kernel()?;
            let req = read_and_free(&mut c, &k, req)?;
            let body = if body == 0 {
                None
            } else {
                Some(read_and_free(&mut c, &k, body)?)
            };
            let s = c.data_mut();
            let response = http::request(
                &mut s.http,
                &s.allowed_hosts,
                &req,
                body.as_deref(),
                s.http_max_response,
                s.http_timeout,
            )
            .map_err(wasmtime::Error::from_anyhow)?;
            k.alloc_bytes(&mut c, &response)
        },
    )?;
    linker.func_wrap(ENV, "http_status_code", |c: Caller<'_, HostState>| {
        i32::from(c.data().http.status)
    })?;
    linker.func_wrap(ENV, "http_headers", |mut c: Caller<'_, HostState>| {
        let k = c.data().kernel()?;
        match c.data_mut().http.headers.take() {
            Some(h) => k.alloc_bytes(&mut c, &h),
            None => Ok(0),
        }
    })?;
    linker.func_wrap(ENV, "get_log_level", |c: Caller<'_, HostState>| {
        level_to_int(c.data().log_level)
    })?;
    linker.func_wrap(ENV, "log_trace", log_fn(log::Level::Trace))?;
    linker.func_wrap(ENV, "log_debug", log_fn(log::Level::Debug))?;
    linker.func_wrap(ENV, "log_info", log_fn(log::Level::Info))?;
    linker.func_wrap(ENV, "log_warn", log_fn(log::Level::Warn))?;
    linker.func_wrap(ENV, "log_error", log_fn(log::Level::Error))?;
    Ok(())
}

/// The plugin a user host function was called from: its kernel and host state.
pub struct CurrentPlugin<'a, 'b> {
    caller: &'a mut Caller<'b, HostState>,
}

impl fmt::Debug for CurrentPlugin<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentPlugin")
    }
}

impl CurrentPlugin<'_, '_> {
    /// A copy of the live block `h` (empty for anything else).
    pub fn read_block(&mut self, h: u64) -> Result<Vec<u8>> {
        let k = self.caller.data().kernel()?;
        k.read_block(&mut *self.caller, h)
    }

    /// A new block holding `data` (`0` when empty).
    pub fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64> {
        let k = self.caller.data().kernel()?;
        k.alloc_bytes(&mut *self.caller, data)
    }

    /// Frees the block `h`.
    pub fn free(&mut self, h: u64) -> Result<()> {
        let k = self.caller.data().kernel()?;
        k.free(&mut *self.caller, h)
    }

    /// The plugin's config value for `key`.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.caller.data().config.get(key).map(String::as_str)
    }
}

type Callback = dyn Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val]) -> Result<()> + Send + Sync;

/// A user host function: what a plugin imports from `extism:host/user` (or another module).
#[derive(Clone)]
pub struct HostFunction {
    /// The import module.
    pub namespace: String,
    /// The import name.
    pub name: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
    callback: Arc<Callback>,
}

impl fmt::Debug for HostFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostFunction({}::{})", self.namespace, self.name)
    }
}

impl HostFunction {
    /// A host function of any wasm type in `extism:host/user`.
    pub fn new(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        f: impl Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        HostFunction {
            namespace: USER.to_string(),
            name: name.into(),
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
            callback: Arc::new(f),
        }
    }

    /// The common shape, `(i64) -> i64` on handles: `f` gets the argument block's bytes and
    /// returns the result's bytes, which the host copies into a new block. The plugin keeps
    /// ownership of the argument (extism-pdk frees it after the call).
    pub fn bytes(
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        HostFunction::new(name, [ValType::I64], [ValType::I64], move |p, args, out| {
            let input = p.read_block(args[0].unwrap_i64() as u64)?;
            let result = f(&input)?;
            out[0] = Val::I64(p.alloc_bytes(&result)? as i64);
            Ok(())
        })
    }

    /// The same function under another import module.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub(crate) fn define(&self, linker: &mut Linker<HostState>) -> Result<()> {
        let ty = FuncType::new(linker.engine(), self.params.clone(), self.results.clone());
        let cb = self.callback.clone();
        linker.func_new(
            &self.namespace,
            &self.name,
            ty,
            move |mut caller, args, out| {
                let mut p = CurrentPlugin {
                    caller: &mut caller,
                };
                cb(&mut p, args, out)
            },
        )?;
        Ok(())
    }
}

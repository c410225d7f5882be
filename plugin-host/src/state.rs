//! What a plugin's store holds: [`Services`] (the host services' state, the same for a
//! classic and a composed plugin) and, for a classic plugin, [`HostState`] around it.

use crate::backend::Kernel;
use crate::host_fns::vars::Vars;
use crate::http::{AllowedHosts, HttpState};
use crate::limits::Limits;
use crate::options::PluginOptions;
use crate::runtime::EPOCH_TICK;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmtime::Result;
use wasmtime::error::Context;
use wasmtime_wasi::p1::WasiP1Ctx;

/// The state of the host services of one plugin instance: config, vars, HTTP, logging,
/// memory limits and the current call's deadline. Made from [`PluginOptions`] by
/// [`Services::new`], for either form of plugin.
#[derive(Debug)]
pub struct Services {
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) vars: Vars,
    pub(crate) http: HttpState,
    pub(crate) allowed_hosts: AllowedHosts,
    pub(crate) http_max_response: u64,
    pub(crate) http_response_headers: bool,
    pub(crate) log_level: Option<log::Level>,
    pub(crate) limits: Limits,
    timeout: Option<Duration>,
    /// When the current call must end (its start plus the timeout).
    deadline: Option<Instant>,
}

impl Services {
    /// Fresh services for an instance with `options`.
    pub(crate) fn new(options: &PluginOptions) -> Self {
        Services {
            config: options.config.clone(),
            vars: Vars::new(options.var_limit_bytes),
            http: HttpState::default(),
            allowed_hosts: AllowedHosts::new(options.allowed_hosts.iter().cloned()),
            http_max_response: options.http_max_response_bytes,
            http_response_headers: options.http_response_headers,
            log_level: options.log_level,
            limits: Limits::new(options.memory_max_pages.map(|p| p * 65536)),
            timeout: options.timeout,
            deadline: None,
        }
    }

    /// Fresh services for a new instance of the same plugin that keeps these vars (after a
    /// trap, the plugin is instantiated anew).
    pub(crate) fn renewed(&mut self, options: &PluginOptions) -> Self {
        let mut fresh = Services::new(options);
        fresh.vars = std::mem::take(&mut self.vars);
        fresh
    }

    /// Starts a call: clears the memory-limit flag, sets the deadline, and returns the
    /// store's epoch deadline for it (in ticks of [`EPOCH_TICK`]).
    pub(crate) fn start_call(&mut self) -> u64 {
        self.limits.denied = false;
        self.deadline = self.timeout.map(|t| Instant::now() + t);
        match self.timeout {
            Some(t) => (t.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1,
            None => u64::MAX / 2,
        }
    }

    /// What is left of the current call's time, for a blocking host service (an HTTP
    /// request); `None` when calls have no timeout.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The plugin's vars.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }
}

/// What a classic plugin's store holds for the host functions.
pub struct HostState {
    pub(crate) kernel: Option<Kernel>,
    pub(crate) services: Services,
    pub(crate) wasi: Option<WasiP1Ctx>,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The WASI context is not Debug.
        f.debug_struct("HostState")
            .field("kernel", &self.kernel)
            .field("services", &self.services)
            .field("wasi", &self.wasi.is_some())
            .finish()
    }
}

impl HostState {
    /// The kernel of this store.
    pub(crate) fn kernel(&self) -> Result<Kernel> {
        self.kernel
            .clone()
            .context("the plugin's kernel is not instantiated yet")
    }
}

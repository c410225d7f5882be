//! [`PluginOptions`]: what a plugin may do and use.

use crate::backend::KernelKind;
use crate::host_fns::HostFunction;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A host directory a WASI plugin may open, under a guest path (a WASI preopen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPath {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the plugin sees it.
    pub guest: String,
    /// Only reads are allowed: a write through it fails inside the plugin.
    pub read_only: bool,
}

impl AllowedPath {
    /// Extism's spelling: the host path, read-only when it starts with `ro:`, and the guest
    /// path.
    pub fn new(host: &str, guest: impl Into<String>) -> Self {
        let (host, read_only) = match host.strip_prefix("ro:") {
            Some(h) => (h, true),
            None => (host, false),
        };
        AllowedPath {
            host: PathBuf::from(host),
            guest: guest.into(),
            read_only,
        }
    }
}

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
    /// Longest a call may run, HTTP requests included.
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
    /// Keep the last HTTP response's headers for `http_headers` (off by default, as in
    /// Extism: the plugin then gets none).
    pub http_response_headers: bool,
    /// Host directories a WASI plugin may open.
    pub allowed_paths: Vec<AllowedPath>,
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
            http_response_headers: false,
            allowed_paths: Vec::new(),
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
            .field("allowed_paths", &self.allowed_paths)
            .field("http_response_headers", &self.http_response_headers)
            .field("functions", &self.functions.len())
            .finish()
    }
}

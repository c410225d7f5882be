//! Extism manifests: [`Manifest`] reads one (JSON or TOML, with the Extism project's own
//! serde types from `extism-manifest`), loads its wasm sources and applies its options.
//!
//! - Sources: `path` (read as given, relative to the working directory, as Extism does),
//!   `data` (base64) and `url` (fetched with `method` and `headers`), each with an optional
//!   `hash` (sha256, hex; checked before anything is compiled, a mismatch is an error naming
//!   the module) and `name`. An unnamed module is `main`; the main module is the one named
//!   `main`, or else the last. The others are linked to it by name ([`PluginPre::linked`]).
//! - Options: `memory.max_pages`, `memory.max_http_response_bytes`, `memory.max_var_bytes`,
//!   `config`, `allowed_hosts`, `allowed_paths` (host path, with `ro:` for read-only, to guest
//!   path) and `timeout_ms`, onto [`PluginOptions`].
//!
//! `extism-manifest` also accepts `"data": {"ptr": N, "len": M}` and reads that address of
//! the host process's memory; a manifest from anywhere could read (or crash) the host with
//! it, so such a `data` is refused before the manifest reaches those types.
//!
//! [`PluginPre::linked`]: crate::PluginPre::linked

use crate::options::{AllowedPath, PluginOptions};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use wasmtime::error::Context;
use wasmtime::{Result, bail, format_err};

/// The name of the main module, and of a module the manifest gives no name.
pub const MAIN: &str = "main";

/// Largest wasm module fetched from a `url` source.
pub const MAX_URL_BYTES: u64 = 256 << 20;

/// A parsed Extism manifest.
#[derive(Debug, Clone)]
pub struct Manifest(pub extism_manifest::Manifest);

/// One module of a plugin: its name (what other modules import it by) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedModule {
    /// The module name.
    pub name: String,
    /// The wasm bytes.
    pub wasm: Vec<u8>,
}

/// Whether `bytes` look like a manifest rather than wasm: text that starts (after white
/// space) with `{` (JSON) or with anything but the wasm magic (TOML).
pub fn looks_like_manifest(bytes: &[u8]) -> bool {
    !bytes.starts_with(b"\0asm") && std::str::from_utf8(bytes).is_ok()
}

impl Manifest {
    /// Parses a manifest: JSON when its first non-blank character is `{`, else TOML. Errors
    /// say where (line and column) and name unknown fields.
    pub fn parse(text: &[u8]) -> Result<Manifest> {
        let text = std::str::from_utf8(text).context("the manifest is not UTF-8 text")?;
        let value: serde_json::Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| format_err!("the manifest is not valid JSON: {e}"))?
        } else {
            let v: toml::Value = toml::from_str(text).map_err(|e| {
                format_err!(
                    "the manifest is not valid TOML: {}",
                    crate::error::one_line(&e.to_string())
                )
            })?;
            serde_json::to_value(v).context("the TOML manifest")?
        };
        refuse_pointer_data(&value)?;
        let m = serde_json::from_value(value)
            .map_err(|e| format_err!("the manifest is not an Extism manifest: {e}"))?;
        Ok(Manifest(m))
    }

    /// Reads and parses the manifest file `path`.
    pub fn from_file(path: &Path) -> Result<Manifest> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Manifest::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Loads every wasm source, checks its hash, and names it; the main module last.
    pub fn modules(&self) -> Result<Vec<NamedModule>> {
        let m = &self.0;
        if m.wasm.is_empty() {
            bail!("the manifest lists no wasm module");
        }
        let mut modules = Vec::with_capacity(m.wasm.len());
        for (i, w) in m.wasm.iter().enumerate() {
            let meta = w.meta();
            let name = meta.name.clone().unwrap_or_else(|| MAIN.to_string());
            let what = format!("wasm[{i}] (`{name}`)");
            let wasm = load(w).with_context(|| format!("loading {what}"))?;
            if let Some(want) = &meta.hash {
                let got = hex(&Sha256::digest(&wasm));
                if !got.eq_ignore_ascii_case(want.trim()) {
                    bail!("the hash of {what} is {got}, but the manifest says {want}");
                }
            }
            if modules.iter().any(|n: &NamedModule| n.name == name) {
                bail!("the module name `{name}` is given twice");
            }
            modules.push(NamedModule { name, wasm });
        }
        let main = modules
            .iter()
            .position(|n| n.name == MAIN)
            .unwrap_or(modules.len() - 1);
        let main = modules.remove(main);
        modules.push(main);
        Ok(modules)
    }

    /// Applies the manifest's options to `options` (its config first: keys already in
    /// `options` are kept, as command-line values override a manifest's).
    pub fn apply(&self, options: &mut PluginOptions) -> Result<()> {
        let m = &self.0;
        if let Some(p) = m.memory.max_pages {
            options.memory_max_pages = Some(u64::from(p));
        }
        if let Some(b) = m.memory.max_http_response_bytes {
            options.http_max_response_bytes = b;
        }
        if let Some(b) = m.memory.max_var_bytes {
            options.var_limit_bytes = usize::try_from(b).unwrap_or(usize::MAX);
        }
        for (k, v) in &m.config {
            options.config.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(hosts) = &m.allowed_hosts {
            options.allowed_hosts.extend(hosts.iter().cloned());
        }
        if let Some(paths) = &m.allowed_paths {
            for (host, guest) in paths {
                let guest = guest
                    .to_str()
                    .with_context(|| format!("the guest path of {host} is not UTF-8"))?;
                options.allowed_paths.push(AllowedPath::new(host, guest));
            }
        }
        if let Some(ms) = m.timeout_ms {
            options.timeout = Some(Duration::from_millis(ms));
        }
        Ok(())
    }
}

/// Refuses a `data` source given as a pointer and length (see the module docs).
fn refuse_pointer_data(manifest: &serde_json::Value) -> Result<()> {
    let Some(wasm) = manifest.get("wasm").and_then(|w| w.as_array()) else {
        return Ok(());
    };
    for (i, w) in wasm.iter().enumerate() {
        if let Some(data) = w.get("data")
            && !data.is_string()
        {
            bail!("wasm[{i}].data must be a base64 string (a pointer and length are refused)");
        }
    }
    Ok(())
}

fn load(w: &extism_manifest::Wasm) -> Result<Vec<u8>> {
    match w {
        extism_manifest::Wasm::File { path, .. } => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
        extism_manifest::Wasm::Data { data, .. } => Ok(data.clone()),
        extism_manifest::Wasm::Url { req, .. } => fetch(req),
    }
}

/// Fetches a `url` source with its method and headers (redirects not followed).
fn fetch(req: &extism_manifest::HttpRequest) -> Result<Vec<u8>> {
    let url = &req.url;
    let method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let mut builder = ureq::http::Request::builder()
        .method(method.as_str())
        .uri(url.as_str());
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let request = builder
        .body(())
        .map_err(|e| format_err!("invalid request for {url}: {e}"))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .proxy(None)
        .allow_non_standard_methods(true)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent
        .run(request)
        .map_err(|e| format_err!("fetching {url} failed: {e}"))?;
    response
        .into_body()
        .into_with_config()
        .limit(MAX_URL_BYTES)
        .read_to_vec()
        .map_err(|e| format_err!("fetching {url} failed: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

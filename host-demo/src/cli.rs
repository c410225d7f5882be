//! The command line: `host-demo call` (in the style of `extism call`), `host-demo demo`,
//! `host-demo density`, `host-demo componentize`. It parses arguments, calls `plugin-host`
//! and prints.

use clap::{Parser, Subcommand, ValueEnum};
use host_fixtures::samples::{self, host_reverse};
use plugin_host::density::{self, DensityConfig};
use plugin_host::host_fns::log::LOG_TARGET;
use plugin_host::manifest::looks_like_manifest;
use plugin_host::{
    AllowedPath, CallError, ComposedPlugin, KernelKind, Manifest, NamedModule, PluginOptions,
    PluginPre, Runtime, RuntimeOptions,
};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::error::Context;
use wasmtime::{Result, bail};

/// Run Extism plugins on this project's kernel, as a core module or as a component.
#[derive(Debug, Parser)]
#[command(name = "host-demo", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a function of a plugin and write its output to stdout.
    Call(CallArgs),
    /// Run the sample plugins on both kernel forms and print a side-by-side table.
    Demo,
    /// Create many live instances of a plugin, call each once, and report the time per
    /// instance, the resident memory per live instance and the call throughput.
    Density(DensityArgs),
    /// Turn an Extism plugin (a core module) into one self-contained component with the
    /// kernel inside; `host-demo call` runs the result.
    Componentize(ComponentizeArgs),
}

/// `host-demo componentize PLUGIN -o OUT`.
#[derive(Debug, clap::Args)]
pub struct ComponentizeArgs {
    /// The plugin: a `.wasm` file, or `sample:NAME` for an embedded sample plugin.
    pub plugin: String,
    /// Where to write the component.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
}

/// Which kernel form to run a plugin on.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum KernelArg {
    /// The kernel core module, linked into the plugin as Extism's runtime does.
    #[default]
    Core,
    /// The kernel component, answering the plugin's kernel imports through host functions.
    Component,
    /// The plugin composed with the kernel core module into one component when it is loaded
    /// (as `componentize` does; cached with the compiled code), the kernel linked directly
    /// into the plugin: fastest for calls that move much data. WASI with `--wasi`; no linked
    /// modules, user host functions on bytes only.
    Composed,
}

/// Log levels for `--log-level`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LevelArg {
    /// Everything.
    Trace,
    /// Debug and above.
    Debug,
    /// Info and above.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// `host-demo call PLUGIN FUNCTION`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The plugin: a `.wasm` file, an Extism manifest (JSON or TOML), a composed component,
    /// or `sample:NAME` for an embedded sample plugin (echo, count_vowels, fail,
    /// alloc_churn, host_fn, http, wasi_print).
    pub plugin: String,
    /// The function to call.
    pub function: String,
    /// PLUGIN is an Extism manifest (also recognised without this flag).
    #[arg(short = 'm', long)]
    pub manifest: bool,
    /// Link another module under NAME (default: the file's stem); the plugin's imports from
    /// NAME are its exports (repeatable).
    #[arg(long = "link", value_name = "[NAME=]PATH")]
    pub link: Vec<String>,
    /// Config values as one JSON object of strings, merged under `--config`'s.
    #[arg(long = "set-config", value_name = "JSON")]
    pub set_config: Option<String>,
    /// Let a WASI plugin open a host directory, at the guest path GUEST (default: the same
    /// path); `ro:` makes it read-only (repeatable).
    #[arg(long = "allow-path", value_name = "[ro:]HOST[:GUEST]")]
    pub allow_path: Vec<String>,
    /// Most bytes the plugin's vars may hold together (default 1 MiB).
    #[arg(long, value_name = "BYTES")]
    pub var_max: Option<u64>,
    /// Largest HTTP response body the plugin may receive (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    pub http_response_max: Option<u64>,
    /// Give the plugin the last HTTP response's headers (`http_headers`; off by default).
    #[arg(long)]
    pub enable_http_response_headers: bool,
    /// The input (bytes of this argument).
    #[arg(short, long, conflicts_with = "stdin")]
    pub input: Option<OsString>,
    /// Read the input from stdin.
    #[arg(long)]
    pub stdin: bool,
    /// A config value for the plugin, `KEY=VALUE` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<OsString>,
    /// The kernel form.
    #[arg(long, value_enum, default_value_t)]
    pub kernel: KernelArg,
    /// Another kernel module to run on the core backend (for example upstream's
    /// `extism-runtime.wasm`).
    #[arg(long, value_name = "PATH", conflicts_with = "kernel")]
    pub kernel_wasm: Option<PathBuf>,
    /// Link WASI preview 1 (for plugins built for wasm32-wasip1).
    #[arg(long)]
    pub wasi: bool,
    /// A host the plugin may reach with HTTP requests: a glob such as `*.example.com`
    /// (repeatable; none by default).
    #[arg(long = "allow-host", value_name = "GLOB")]
    pub allow_host: Vec<String>,
    /// Call the function N times on the same plugin, printing the time per call to stderr.
    #[arg(long = "loop", value_name = "N", default_value_t = 1)]
    pub loops: u32,
    /// Fail a call that runs longer than this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Fail a call that uses more than this much fuel (wasm instructions, roughly).
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Most 64 KiB pages the plugin's memories may hold together, kernel included.
    #[arg(long, value_name = "PAGES")]
    pub memory_max: Option<u64>,
    /// Print the plugin's log lines of this level and above to stderr (off by default).
    #[arg(long, value_enum)]
    pub log_level: Option<LevelArg>,
    /// The compilation cache.
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The compilation cache: on by default, in `$XDG_CACHE_HOME/extism-kernel-host` or
/// `$HOME/.cache/extism-kernel-host`.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// Compile the plugin and the kernel in this process instead of loading them from the
    /// compilation cache (on by default, in $XDG_CACHE_HOME/extism-kernel-host or
    /// $HOME/.cache/extism-kernel-host); the variable is true unless empty, 0, false, no or
    /// off.
    #[arg(long, env = "HOST_DEMO_NO_CACHE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,
    /// Keep the compilation cache in this directory (created if missing).
    #[arg(long, value_name = "DIR", env = "HOST_DEMO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache directory, `None` if the cache is off (or there is no home directory).
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(default_cache_dir)
    }
}

/// `$XDG_CACHE_HOME/extism-kernel-host` (if it is an absolute path), else
/// `$HOME/.cache/extism-kernel-host`.
fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("extism-kernel-host"))
}

/// `host-demo density PLUGIN FUNCTION`.
#[derive(Debug, clap::Args)]
pub struct DensityArgs {
    /// The plugin: a `.wasm` file, or `sample:NAME` for an embedded sample plugin.
    pub plugin: String,
    /// The function to call on every instance.
    pub function: String,
    /// How many live instances to create.
    #[arg(long, default_value_t = 1000)]
    pub instances: usize,
    /// The input of every call.
    #[arg(short, long)]
    pub input: Option<OsString>,
    /// Also measure throughput with this many threads, each on its own instances.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seconds each throughput measurement runs.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// The kernel form.
    #[arg(long, value_enum, default_value_t)]
    pub kernel: KernelArg,
    /// Another kernel module to run on the core backend (for example upstream's).
    #[arg(long, value_name = "PATH", conflicts_with = "kernel")]
    pub kernel_wasm: Option<PathBuf>,
    /// Use wasmtime's pooling allocator, sized for the instances.
    #[arg(long)]
    pub pooling: bool,
    /// Link WASI preview 1.
    #[arg(long)]
    pub wasi: bool,
    /// Print the figures as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The compilation cache.
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl From<LevelArg> for log::Level {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::Trace => log::Level::Trace,
            LevelArg::Debug => log::Level::Debug,
            LevelArg::Info => log::Level::Info,
            LevelArg::Warn => log::Level::Warn,
            LevelArg::Error => log::Level::Error,
        }
    }
}

impl From<KernelArg> for KernelKind {
    fn from(k: KernelArg) -> Self {
        match k {
            KernelArg::Core | KernelArg::Composed => KernelKind::Core,
            KernelArg::Component => KernelKind::Component,
        }
    }
}

/// `--set-config`: a JSON object of strings.
fn parse_set_config(json: &str) -> Result<Vec<(String, String)>> {
    let map: std::collections::BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|e| wasmtime::format_err!("--set-config is not a JSON object of strings: {e}"))?;
    Ok(map.into_iter().collect())
}

/// `--allow-path [ro:]HOST[:GUEST]`: as Extism's CLI reads it (the guest path is the host
/// path when none is given).
fn parse_allow_path(spec: &str) -> AllowedPath {
    let (ro, rest) = match spec.strip_prefix("ro:") {
        Some(r) => ("ro:", r),
        None => ("", spec),
    };
    let (host, guest) = rest.split_once(':').unwrap_or((rest, rest));
    AllowedPath::new(&format!("{ro}{host}"), guest)
}

/// `--link [NAME=]PATH`: the module, named NAME or after the file's stem.
fn read_link(spec: &str) -> Result<NamedModule> {
    let (name, path) = match spec.split_once('=') {
        Some((n, p)) => (n.to_string(), p),
        None => (
            std::path::Path::new(spec)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .with_context(|| format!("--link {spec}: no file name to name the module after"))?,
            spec,
        ),
    };
    let wasm = read_plugin(path).with_context(|| format!("--link {spec}"))?;
    Ok(NamedModule { name, wasm })
}

fn parse_config(items: &[OsString]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            let s = item
                .to_str()
                .with_context(|| format!("--config {item:?} is not valid UTF-8"))?;
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("--config `{s}` is not KEY=VALUE"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The call's input: stdin with `--stdin`, else the bytes of `--input`, else nothing.
fn read_input(args: &CallArgs) -> Result<Vec<u8>> {
    if args.stdin {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        Ok(args
            .input
            .as_ref()
            .map(|s| s.as_encoded_bytes().to_vec())
            .unwrap_or_default())
    }
}

fn read_plugin(spec: &str) -> Result<Vec<u8>> {
    if let Some(name) = spec.strip_prefix("sample:") {
        return samples::plugin(name)
            .map(<[u8]>::to_vec)
            .with_context(|| format!("no sample plugin `{name}`"));
    }
    std::fs::read(spec).with_context(|| format!("reading {spec}"))
}

/// Runs `host-demo call`; the process exit code.
pub fn call(args: CallArgs) -> Result<i32> {
    if let Some(level) = args.log_level {
        // `try_init`: a second call in one process (a test, an embedder) keeps the first.
        let _ = env_logger::Builder::new()
            .filter_module(LOG_TARGET, log::Level::from(level).to_level_filter())
            .format_target(false)
            .try_init();
    }
    let wasm = read_plugin(&args.plugin)?;
    // A manifest: with --manifest, or a text file that parses as one.
    let manifest = if args.manifest {
        Some(Manifest::parse(&wasm).with_context(|| format!("in {}", args.plugin))?)
    } else if looks_like_manifest(&wasm) {
        Manifest::parse(&wasm).ok()
    } else {
        None
    };
    let composed = manifest.is_none() && plugin_host::is_component(&wasm);
    if composed && args.kernel_wasm.is_some() {
        // A composed plugin (`host-demo componentize`) carries its own kernel.
        bail!("a composed plugin carries its own kernel: drop --kernel-wasm");
    }
    let compose = matches!(args.kernel, KernelArg::Composed) && !composed;
    if args.loops == 0 {
        bail!("--loop must be at least 1");
    }
    let input = read_input(&args)?;
    let runtime = Runtime::new(RuntimeOptions {
        fuel: args.fuel.is_some(),
        cache: args.cache.dir(),
        ..RuntimeOptions::default()
    })?;
    let mut options = PluginOptions {
        kernel: args.kernel.into(),
        kernel_wasm: read_kernel(&args.kernel_wasm)?,
        wasi: args.wasi,
        fuel: args.fuel,
        log_level: args.log_level.map(Into::into),
        functions: vec![host_reverse()],
        ..PluginOptions::default()
    };
    // The manifest's options first, then the flags over them, as `extism call` does.
    let mut modules = match &manifest {
        Some(m) => {
            m.apply(&mut options)?;
            m.modules()?
        }
        None => vec![NamedModule {
            name: plugin_host::manifest::MAIN.to_string(),
            wasm,
        }],
    };
    let linked = args
        .link
        .iter()
        .map(|l| read_link(l))
        .collect::<Result<Vec<_>>>()?;
    modules.splice(0..0, linked);
    if let Some(json) = &args.set_config {
        options.config.extend(parse_set_config(json)?);
    }
    options.config.extend(parse_config(&args.config)?);
    options
        .allowed_hosts
        .extend(args.allow_host.iter().cloned());
    options
        .allowed_paths
        .extend(args.allow_path.iter().map(|p| parse_allow_path(p)));
    if let Some(ms) = args.timeout {
        options.timeout = Some(Duration::from_millis(ms));
    }
    if let Some(p) = args.memory_max {
        options.memory_max_pages = Some(p);
    }
    if let Some(b) = args.var_max {
        options.var_limit_bytes = usize::try_from(b).unwrap_or(usize::MAX);
    }
    if let Some(b) = args.http_response_max {
        options.http_max_response_bytes = b;
    }
    options.http_response_headers |= args.enable_http_response_headers;
    if composed || compose {
        let wasm = modules.pop().map(|m| m.wasm).unwrap_or_default();
        if !modules.is_empty() {
            bail!("a composed plugin carries its modules inside: drop --link");
        }
        let mut plugin = if compose {
            ComposedPlugin::compose(&runtime, &wasm, options)?
        } else {
            ComposedPlugin::new(&runtime, &wasm, options)?
        };
        call_loop(args.loops, || plugin.call(&args.function, &input))
    } else {
        let pre = Arc::new(PluginPre::linked(&runtime, &modules, options)?);
        let mut plugin = pre.instantiate()?;
        call_loop(args.loops, || plugin.call(&args.function, &input))
    }
}

/// Calls `call` `loops` times, writes the last output to stdout and, for more than one call,
/// the time per call to stderr (`host-demo call --loop N`, on either kind of plugin).
fn call_loop(
    loops: u32,
    mut call: impl FnMut() -> std::result::Result<Vec<u8>, CallError>,
) -> Result<i32> {
    let mut times = Vec::with_capacity(loops as usize);
    let mut output = Vec::new();
    for _ in 0..loops {
        let t = Instant::now();
        output = call()?;
        times.push(t.elapsed());
    }
    std::io::stdout().write_all(&output)?;
    std::io::stdout().flush()?;
    if loops > 1 {
        times.sort();
        let total: Duration = times.iter().sum();
        eprintln!(
            "{} calls: mean {:.2} us, median {:.2} us, min {:.2} us per call",
            times.len(),
            total.as_secs_f64() * 1e6 / times.len() as f64,
            times[times.len() / 2].as_secs_f64() * 1e6,
            times[0].as_secs_f64() * 1e6
        );
    }
    Ok(0)
}

fn read_kernel(path: &Option<PathBuf>) -> Result<Option<Arc<Vec<u8>>>> {
    path.as_ref()
        .map(|p| {
            std::fs::read(p)
                .map(Arc::new)
                .with_context(|| format!("reading {}", p.display()))
        })
        .transpose()
}

/// Runs `host-demo density`.
pub fn density(args: DensityArgs) -> Result<i32> {
    let wasm = read_plugin(&args.plugin)?;
    let pooling = args
        .pooling
        .then(|| u32::try_from(args.instances + 1).unwrap_or(u32::MAX));
    let runtime = Runtime::new(RuntimeOptions {
        pooling,
        cache: args.cache.dir(),
        ..RuntimeOptions::default()
    })?;
    let kernel_wasm = read_kernel(&args.kernel_wasm)?;
    let kernel_name = match (&args.kernel_wasm, args.kernel) {
        (Some(p), _) => format!("kernel module {}", p.display()),
        (None, KernelArg::Core) => "this project's kernel module".to_string(),
        (None, KernelArg::Component) => "this project's kernel component".to_string(),
        (None, KernelArg::Composed) => {
            bail!("density measures classic plugins: use --kernel core or --kernel component")
        }
    };
    let options = PluginOptions {
        kernel: args.kernel.into(),
        kernel_wasm,
        wasi: args.wasi,
        capture_stdout: args.wasi,
        functions: vec![host_reverse()],
        ..PluginOptions::default()
    };
    let pre = Arc::new(PluginPre::new(&runtime, &wasm, options)?);
    let config = DensityConfig {
        instances: args.instances,
        function: args.function.clone(),
        input: args
            .input
            .map(|s| s.into_encoded_bytes())
            .unwrap_or_default(),
        threads: args.threads,
        throughput_time: Duration::from_secs_f64(args.seconds.max(0.01)),
    };
    let report = density::run(&pre, &config)?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["plugin"] = args.plugin.clone().into();
        v["function"] = args.function.clone().into();
        v["kernel"] = kernel_name.into();
        v["pooling"] = args.pooling.into();
        println!("{v}");
    } else {
        let what = format!(
            "{} `{}` on {}, pooling allocator {}",
            args.plugin,
            args.function,
            kernel_name,
            if args.pooling { "on" } else { "off" }
        );
        print!("{}", density::render(&report, &what));
    }
    Ok(0)
}

/// `host-demo componentize PLUGIN -o OUT`: `PLUGIN` is a `.wasm` file or `sample:NAME`.
fn componentize(plugin: &str, output: &std::path::Path) -> Result<()> {
    let wasm = read_plugin(plugin)?;
    let component =
        plugin_host::componentize::componentize(&wasm).map_err(wasmtime::Error::from_anyhow)?;
    std::fs::write(output, &component).with_context(|| format!("writing {}", output.display()))?;
    let (imports, exports) = plugin_host::componentize::component_world(&component)
        .map_err(wasmtime::Error::from_anyhow)?;
    eprintln!(
        "wrote {} ({} bytes): imports {}, exports {}",
        output.display(),
        component.len(),
        imports.join(", "),
        exports.join(", ")
    );
    Ok(())
}

/// Parses the arguments and runs; errors go to stderr as one line with exit code 1.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Call(args) => call(args),
        Command::Demo => {
            crate::demo::run(&mut std::io::stdout()).map(|agreed| if agreed { 0 } else { 1 })
        }
        Command::Density(args) => density(args),
        Command::Componentize(args) => componentize(&args.plugin, &args.output).map(|()| 0),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!(
                "error: {}",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            1
        }
    }
}

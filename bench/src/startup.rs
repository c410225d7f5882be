//! Whole-process start-up: one plugin call per process, timed from spawn to exit, with the
//! compilation cache off, cold (an empty directory for every run) and warm (one directory,
//! filled by a first, untimed run).
//!
//! The programs: `host-demo call PLUGIN count_vowels --input "Hello, World!"` (ours), and,
//! when `make bench-startup-extism` has built it, the scratch program of
//! `bench/extism-startup/` doing the same call through Extism's own runtime (the `extism`
//! crate, whose cache is wasmtime's `cache` feature). Both read the plugin from the same
//! file, the sample `count_vowels`; runs of the programs and modes are interleaved, so that a
//! change of the machine's load hits all of them alike.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use wasmtime::error::Context;
use wasmtime::{Result, ensure};

/// Runs of each program in each mode.
pub const RUNS: usize = 20;
/// The function called, and its input.
pub const FUNCTION: &str = "count_vowels";
/// The input of every call.
pub const INPUT: &str = "Hello, World!";
/// What every call must print.
pub const EXPECTED: &[u8] = br#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#;
/// The extism release the scratch program is built with (see its `Cargo.toml.in`).
pub const EXTISM_VERSION: &str = "1.30.0";

/// One program whose start-up is measured.
#[derive(Debug, Clone)]
pub struct Program {
    /// Its row's name.
    pub label: String,
    /// Program and arguments of one call.
    pub argv: Vec<OsString>,
    /// The environment variable that names its cache directory.
    pub cache_var: &'static str,
    /// The environment that turns its cache off (the directory variable is then unset).
    pub off_env: &'static [(&'static str, &'static str)],
}

/// `host-demo call PLUGIN count_vowels --input "Hello, World!"`.
pub fn host_demo(bin: &Path, plugin: &Path) -> Program {
    Program {
        label: "ours: `host-demo call`".into(),
        argv: vec![
            bin.into(),
            "call".into(),
            plugin.into(),
            FUNCTION.into(),
            "--input".into(),
            INPUT.into(),
        ],
        cache_var: "HOST_DEMO_CACHE_DIR",
        off_env: &[("HOST_DEMO_NO_CACHE", "1")],
    }
}

/// The scratch program of `make bench-startup-extism`: the same call through Extism.
pub fn extism(bin: &Path, plugin: &Path) -> Program {
    Program {
        label: format!("Extism {EXTISM_VERSION} (`extism` crate)"),
        argv: vec![bin.into(), plugin.into(), FUNCTION.into(), INPUT.into()],
        cache_var: "EXTISM_STARTUP_CACHE_DIR",
        off_env: &[],
    }
}

/// Where `make bench-startup-extism` builds the Extism program.
pub fn extism_bin() -> PathBuf {
    crate::target_dir().join("extism-startup/target/release/extism-startup")
}

/// Median and fastest of a mode's runs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    /// The median.
    pub median_ms: f64,
    /// The fastest run.
    pub min_ms: f64,
}

impl Times {
    fn of(mut ms: Vec<f64>) -> Times {
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median_ms = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        Times {
            median_ms,
            min_ms: ms[0],
        }
    }
}

/// One program's start-up in each mode.
#[derive(Debug, Clone)]
pub struct Startup {
    /// The program's row name.
    pub label: String,
    /// Cache off.
    pub off: Times,
    /// An empty cache directory for every run (compile, then store).
    pub cold: Times,
    /// A filled cache directory.
    pub warm: Times,
}

/// The modes, in the order each round runs them.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Off,
    Cold,
    Warm,
}

/// One call of `p` in `mode`, with the cache (if any) in `dir`: the wall-clock time from
/// spawn to exit, after checking the output.
fn run_once(p: &Program, mode: Mode, dir: &Path) -> Result<f64> {
    let mut cmd = Command::new(&p.argv[0]);
    cmd.args(&p.argv[1..])
        .env_remove("HOST_DEMO_CACHE_DIR")
        .env_remove("HOST_DEMO_NO_CACHE")
        .env_remove("EXTISM_STARTUP_CACHE_DIR")
        .stdin(Stdio::null());
    match mode {
        Mode::Off => {
            cmd.envs(p.off_env.iter().copied());
        }
        Mode::Cold | Mode::Warm => {
            cmd.env(p.cache_var, dir);
        }
    }
    let t = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {}", p.argv[0].to_string_lossy()))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    ensure!(
        out.status.success() && out.stdout == EXPECTED,
        "{} ({mode:?}): exit {:?}, stdout {:?}, stderr {}",
        p.label,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(ms)
}

/// Each program's start-up, `runs` times in each mode, interleaved; scratch files (the
/// cache directories) under `scratch`, removed at the end.
pub fn measure(programs: &[Program], runs: usize, scratch: &Path) -> Result<Vec<Startup>> {
    ensure!(runs > 0, "at least one run");
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).context("creating the scratch folder")?;
    let mut times = vec![[Vec::new(), Vec::new(), Vec::new()]; programs.len()];
    let warm_dir = |i: usize| scratch.join(format!("warm-{i}"));
    for (i, p) in programs.iter().enumerate() {
        run_once(p, Mode::Warm, &warm_dir(i))?;
    }
    for round in 0..runs {
        for (i, p) in programs.iter().enumerate() {
            let cold = scratch.join(format!("cold-{i}-{round}"));
            for (m, mode) in [Mode::Off, Mode::Cold, Mode::Warm].into_iter().enumerate() {
                let dir = match mode {
                    Mode::Warm => warm_dir(i),
                    _ => cold.clone(),
                };
                times[i][m].push(run_once(p, mode, &dir)?);
            }
            let _ = std::fs::remove_dir_all(&cold);
        }
    }
    let _ = std::fs::remove_dir_all(scratch);
    Ok(programs
        .iter()
        .zip(times)
        .map(|(p, [off, cold, warm])| Startup {
            label: p.label.clone(),
            off: Times::of(off),
            cold: Times::of(cold),
            warm: Times::of(warm),
        })
        .collect())
}

/// The sample plugin written to a file of `scratch` (both programs read the same file).
pub fn plugin_file(scratch: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(scratch).context("creating the scratch folder")?;
    let path = scratch.join("count_vowels.wasm");
    std::fs::write(&path, host_fixtures::samples::sample("count_vowels"))
        .context("writing the sample plugin")?;
    Ok(path)
}

/// The table of `rows`: median (fastest) per mode.
pub fn render(rows: &[Startup], runs: usize) -> String {
    let cell = |t: Times| format!("{:.1} ({:.1})", t.median_ms, t.min_ms);
    let mut s = format!(
        "| start-up, one `{FUNCTION}` call per process, ms: median (fastest) of {runs} | cache off | cold cache | warm cache |\n|---|---:|---:|---:|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.label,
            cell(r.off),
            cell(r.cold),
            cell(r.warm)
        ));
    }
    s
}

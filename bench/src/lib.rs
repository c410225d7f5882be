//! # kernel-bench: this project's kernel against upstream Extism's, measured side by side
//!
//! `make bench` runs the criterion benchmarks of `benches/kernels.rs`, then the `report`
//! binary, which reads criterion's estimates, measures heap efficiency and density itself,
//! and writes `docs/bench/REPORT.md` with SVG plots. Every figure of one report comes from
//! one run, on one wasmtime engine configuration (the one [`plugin_host::Runtime`] makes).
//!
//! Three kernels are compared ([`KernelId`]): this project's kernel as a core module, the
//! same kernel as a component (driven through its `raw` interface), and upstream's kernel as
//! shipped in the `extism` 1.41.0 package of the Rust registry ([`upstream`]: fetched with
//! cargo at bench time, never committed).
//!
//! - [`kernels`]: the three kernels behind one small driver ([`kernels::RawKernel`]: `alloc`,
//!   `free`, `length`), each in its own store whose limiter records memory growth.
//! - [`forms`]: whole plugins on four forms ([`Form`]): the classic plugin on each of the
//!   three kernels, and the plugin composed with our kernel into one component
//!   (`plugin_host::ComposedPlugin`), for the plugin benchmarks and the report's "Composed
//!   plugins" table.
//! - [`workloads`]: the seeded generator and the workloads (random actions, churn).
//! - [`startup`]: whole-process start-up of `host-demo call` (and of Extism's runtime, when
//!   `make bench-startup-extism` has built its scratch program) with the compilation cache
//!   off, cold and warm.

pub mod ab;
pub mod forms;
pub mod kernels;
pub mod plots;
pub mod startup;
pub mod upstream;
pub mod workloads;

pub use forms::Form;
pub use kernels::{KernelId, Kernels, RawKernel};

/// The workspace root (this crate's parent folder).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The cargo target folder: `CARGO_TARGET_DIR` if set, else `target/` in the workspace.
pub fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => workspace_root().join("target"),
    }
}

/// Actions per measured iteration of the `random_actions` benchmark.
pub const ACTIONS: u64 = 1000;
/// Minimum live blocks of the `random_actions` benchmark.
pub const RANDOM_LIVE: [usize; 2] = [50, 1000];
/// Frees per timed batch of the `free` benchmark.
pub const FREE_BATCH: usize = 16;
/// Live block counts of the `length` and `free` benchmarks.
pub const LIVE: [usize; 3] = [1_000, 10_000, 100_000];
/// Input sizes of the round trip, with their names in benchmark ids.
pub const SIZES: [(usize, &str); 4] = [
    (0, "0B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];
/// Actions of the heap-efficiency churn.
pub const CHURN_ACTIONS: usize = 200_000;
/// Rounds of the `alloc_churn` sample's `churn` per call in the `plugin_churn` benchmark
/// (its input, in ASCII decimal).
pub const PLUGIN_CHURN_ROUNDS: u32 = 300;
/// The trivial call of the `plugin_call` benchmark: the `echo` sample's function, its
/// input, and the name of the case in benchmark ids.
pub const TRIVIAL_CALL: (&str, &[u8], &str) = ("reverse", b"x", "reverse-x");

/// Where the benchmarks note the load average when they start, for the report.
pub fn load_note_path() -> std::path::PathBuf {
    target_dir()
        .join("criterion")
        .join("kernel-bench-load-at-start.txt")
}

/// The load average over 1, 5 and 15 minutes (`/proc/loadavg`), or `?`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Runs `cmd` (described as `what` in errors), which must succeed, and parses its stdout as
/// JSON.
pub fn run_json(
    cmd: &mut std::process::Command,
    what: &str,
) -> wasmtime::Result<serde_json::Value> {
    use wasmtime::error::Context;
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    wasmtime::ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("parsing the JSON of {what}"))
}

/// A bin's exit: success, or the error on one line after `name: `, and failure.
pub fn exit(name: &str, result: wasmtime::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

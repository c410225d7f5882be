//! `cargo run -p kernel-bench --release --bin report [-- OUT_DIR]`: the benchmark report.
//!
//! Reads the estimates `cargo bench -p kernel-bench` left in `target/criterion`, measures
//! heap efficiency (the churn workload on each kernel, memory growth recorded by the store's
//! limiter), runs `target/release/host-demo density` once per kernel and instance count,
//! each in its own process, times the start-up of `host-demo call` (and of Extism's runtime,
//! if `make bench-startup-extism` built it) with the compilation cache off, cold and warm
//! ([`kernel_bench::startup`]), then writes `OUT_DIR/REPORT.md` (default `docs/bench`) with SVG
//! plots beside it (the main table; then the "Composed plugins" table, the figures of the
//! plugin benchmarks on the four [`Form`]s), prints the tables, and refreshes the README's benchmark table between
//! its `<!-- bench:begin -->` and `<!-- bench:end -->` markers when they are there.

use host_fixtures::samples;
use kernel_bench::ab;
use kernel_bench::plots::{self, Series};
use kernel_bench::workloads::{self, Churn};
use kernel_bench::{
    ACTIONS, CHURN_ACTIONS, FREE_BATCH, Form, KernelId, Kernels, LIVE, PLUGIN_CHURN_ROUNDS,
    RANDOM_LIVE, RawKernel, SIZES, TRIVIAL_CALL,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use wasmtime::error::Context;
use wasmtime::{Result, bail, ensure};

/// Median time per iteration of every benchmark, in ns, by criterion's full id.
type Estimates = BTreeMap<String, f64>;

fn read_estimates(dir: &Path, out: &mut Estimates) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let bench = path.join("benchmark.json");
            let est = path.join("estimates.json");
            if bench.exists() && est.exists() {
                let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bench)?)
                    .with_context(|| format!("parsing {}", bench.display()))?;
                let e: serde_json::Value = serde_json::from_slice(&std::fs::read(&est)?)
                    .with_context(|| format!("parsing {}", est.display()))?;
                if let (Some(id), Some(median)) = (
                    b["full_id"].as_str(),
                    e["median"]["point_estimate"].as_f64(),
                ) {
                    out.insert(id.to_string(), median);
                }
            }
        } else {
            read_estimates(&path, out)?;
        }
    }
    Ok(())
}

fn get(est: &Estimates, id: &str) -> Result<f64> {
    est.get(id).copied().with_context(|| {
        format!("no criterion estimate for `{id}`: run `cargo bench -p kernel-bench` first")
    })
}

/// One `host-demo density --json` run.
#[derive(Debug, Clone)]
struct Density {
    kernel: String,
    pooling: bool,
    instances: u64,
    create_us: f64,
    rss_per_instance: f64,
    one_thread: f64,
    two_threads: f64,
}

fn density(
    bin: &Path,
    instances: usize,
    kernel_wasm: Option<&Path>,
    pooling: bool,
) -> Result<Density> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "density",
        "sample:count_vowels",
        "count_vowels",
        "--instances",
    ])
    .arg(instances.to_string())
    .args(["--input", "Hello, World!", "--threads", "2", "--json"]);
    if let Some(p) = kernel_wasm {
        cmd.arg("--kernel-wasm").arg(p);
    }
    if pooling {
        cmd.arg("--pooling");
    }
    let v = kernel_bench::run_json(&mut cmd, "host-demo density")?;
    let tp = |threads: u64| -> Result<f64> {
        v["throughput"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["threads"] == threads)
            .and_then(|t| t["calls_per_sec"].as_f64())
            .with_context(|| format!("no throughput with {threads} threads"))
    };
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("no `{k}` in the JSON"))
    };
    Ok(Density {
        kernel: if kernel_wasm.is_some() {
            KernelId::Upstream.label().into()
        } else {
            KernelId::Core.label().into()
        },
        pooling,
        instances: num("instances")? as u64,
        create_us: num("create_and_call_us")?,
        rss_per_instance: num("rss_per_instance")?,
        one_thread: tp(1)?,
        two_threads: tp(2)?,
    })
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    format!("{cpu}, {cores} cores, {mem} RAM")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// A number with about 3 significant digits.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A case of the "Composed plugins" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    /// The `echo` round trip at the size of this index in [`SIZES`].
    RoundTrip(usize),
    /// [`TRIVIAL_CALL`].
    Trivial,
    /// The `alloc_churn` sample's `churn`, [`PLUGIN_CHURN_ROUNDS`] rounds.
    Churn,
}

impl Case {
    fn all() -> impl Iterator<Item = Case> {
        (0..SIZES.len())
            .map(Case::RoundTrip)
            .chain([Case::Trivial, Case::Churn])
    }

    /// Criterion's id of this case on `form`.
    fn bench_id(self, form: Form) -> String {
        match self {
            Case::RoundTrip(i) => format!("round_trip/{form}/{}", SIZES[i].1),
            Case::Trivial => format!("plugin_call/{form}/{}", TRIVIAL_CALL.2),
            Case::Churn => format!("plugin_churn/{form}/{PLUGIN_CHURN_ROUNDS}"),
        }
    }

    /// The row's name, with its unit.
    fn name(self) -> String {
        let (function, input, _) = TRIVIAL_CALL;
        match self {
            Case::RoundTrip(i) => format!("`echo` round trip, {} (µs)", SIZES[i].1),
            Case::Trivial => format!(
                "trivial call: `echo`'s `{function}` on `{}` (µs)",
                String::from_utf8_lossy(input)
            ),
            Case::Churn => format!("`alloc_churn`'s `churn`, {PLUGIN_CHURN_ROUNDS} rounds (ms)"),
        }
    }

    /// The unit of the row, in ns.
    fn unit_ns(self) -> f64 {
        match self {
            Case::Churn => 1e6,
            _ => 1e3,
        }
    }

    /// The plugin, function, input and calls of each form of the interleaved measurement.
    fn interleaved_call(self) -> (&'static str, &'static str, Vec<u8>, usize) {
        match self {
            Case::RoundTrip(i) => {
                let size = SIZES[i].0;
                let input = (0..size).map(|i| (i * 7 + 3) as u8).collect();
                (
                    "echo",
                    "echo",
                    input,
                    if size >= 64 << 10 { 300 } else { 5000 },
                )
            }
            Case::Trivial => ("echo", TRIVIAL_CALL.0, TRIVIAL_CALL.1.to_vec(), 5000),
            Case::Churn => (
                "alloc_churn",
                "churn",
                PLUGIN_CHURN_ROUNDS.to_string().into_bytes(),
                30,
            ),
        }
    }

    /// Whether the goal "composed ≤ 1x the core path's time" applies, and the aim "1.5x
    /// faster than the core path".
    fn goal(self) -> (bool, bool) {
        match self {
            Case::RoundTrip(i) => (i == SIZES.len() - 1, i == SIZES.len() - 1),
            Case::Trivial => (true, false),
            Case::Churn => (true, true),
        }
    }
}

/// Every figure of the report.
struct Figures {
    /// Actions per µs by (kernel, N).
    actions: BTreeMap<(KernelId, usize), f64>,
    /// ns per `length` by (kernel, live blocks).
    length: BTreeMap<(KernelId, usize), f64>,
    /// ns per `free` by (kernel, live blocks).
    free: BTreeMap<(KernelId, usize), f64>,
    /// µs per echo call by (kernel, size index).
    round_trip: BTreeMap<(KernelId, usize), f64>,
    /// µs per plain copy by size index.
    plain_copy: Vec<f64>,
    /// The composed table's figures (in each case's unit) by case and form.
    plugins: BTreeMap<(Case, Form), f64>,
    /// Each case on the core path (first) and composed (second), calls interleaved.
    composed_ab: BTreeMap<Case, ab::Interleaved>,
    /// ns per raw `length` call from the host: core, component.
    raw_length: (f64, f64),
    /// µs to move 1 MiB in and out: core, component.
    bulk: (f64, f64),
    /// The churn by kernel.
    churn: BTreeMap<KernelId, Churn>,
    /// The round trip on ours (core) and upstream's, calls interleaved.
    ab: Vec<ab::Pair>,
    density: Vec<Density>,
}

fn collect(est: &Estimates, kernels: &Kernels, density_runs: &[Density]) -> Result<Figures> {
    let mut f = Figures {
        actions: BTreeMap::new(),
        length: BTreeMap::new(),
        free: BTreeMap::new(),
        round_trip: BTreeMap::new(),
        plain_copy: Vec::new(),
        plugins: BTreeMap::new(),
        composed_ab: BTreeMap::new(),
        raw_length: (0.0, 0.0),
        bulk: (0.0, 0.0),
        churn: BTreeMap::new(),
        ab: ab::round_trip(kernels)?,
        density: density_runs.to_vec(),
    };
    for id in KernelId::ALL {
        for n in RANDOM_LIVE {
            let ns = get(est, &format!("random_actions/{id}/{n}"))?;
            f.actions.insert((id, n), ACTIONS as f64 / (ns / 1000.0));
        }
        for n in LIVE {
            f.length
                .insert((id, n), get(est, &format!("length/{id}/{n}"))?);
            let batch = get(est, &format!("free/{id}/{n}"))?;
            f.free.insert((id, n), batch / FREE_BATCH as f64);
        }
        for (i, (_, name)) in SIZES.iter().enumerate() {
            let ns = get(est, &format!("round_trip/{id}/{name}"))?;
            f.round_trip.insert((id, i), ns / 1000.0);
        }
        let mut k = RawKernel::new(kernels, id)?;
        f.churn.insert(id, workloads::churn(&mut k, CHURN_ACTIONS)?);
    }
    for (_, name) in SIZES {
        f.plain_copy
            .push(get(est, &format!("round_trip/plain-copy/{name}"))? / 1000.0);
    }
    for case in Case::all() {
        for form in Form::ALL {
            let ns = get(est, &case.bench_id(form))?;
            f.plugins.insert((case, form), ns / case.unit_ns());
        }
    }
    let mut loaded = BTreeMap::new();
    for case in Case::all() {
        let (plugin, function, input, calls) = case.interleaved_call();
        if !loaded.contains_key(plugin) {
            let wasm = samples::plugin(plugin).with_context(|| format!("the {plugin} sample"))?;
            let core = Form::Kernel(KernelId::Core).load(kernels, wasm)?;
            loaded.insert(plugin, (core, Form::Composed.load(kernels, wasm)?));
        }
        let (core, composed) = loaded.get_mut(plugin).expect("loaded above");
        let pair = ab::interleave(core, composed, function, &input, calls)
            .with_context(|| format!("{}, interleaved", case.name()))?;
        f.composed_ab.insert(case, pair);
    }
    f.raw_length = (
        get(est, "component_overhead/raw-length/ours-core")?,
        get(est, "component_overhead/raw-length/ours-component")?,
    );
    f.bulk = (
        get(est, "component_overhead/bulk-1MiB/ours-core")? / 1000.0,
        get(est, "component_overhead/bulk-1MiB/ours-component")? / 1000.0,
    );
    Ok(f)
}

/// The main table: one row per figure, goals and verdicts beside the ratios.
fn main_table(f: &Figures) -> (String, Vec<String>) {
    use KernelId::{Component, Core, Upstream};
    let mut t = String::new();
    let mut unmet = Vec::new();
    t.push_str(
        "| figure | ours (core) | ours (component) | upstream 1.41.0 | ratio | goal | verdict |\n",
    );
    t.push_str("|---|---:|---:|---:|---:|---|---|\n");
    let mut row = |t: &mut String,
                   name: String,
                   vals: [String; 3],
                   ratio: String,
                   goal: &str,
                   ok: Option<bool>| {
        let v = ok.map_or("", verdict);
        if ok == Some(false) {
            unmet.push(format!("{name}: {ratio} (goal: {goal})"));
        }
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {ratio} | {goal} | {v} |",
            vals[0], vals[1], vals[2]
        );
    };
    for n in RANDOM_LIVE {
        let [c, m, u] = [Core, Component, Upstream].map(|k| f.actions[&(k, n)]);
        let r = c / u;
        row(
            &mut t,
            format!("random actions, ≥{n} live (actions/µs)"),
            [num(c), num(m), num(u)],
            format!("{}x upstream", num(r)),
            "≥ 3x upstream",
            Some(r >= 3.0),
        );
    }
    for (what, map) in [("length", &f.length), ("free", &f.free)] {
        for n in LIVE {
            let [c, m, u] = [Core, Component, Upstream].map(|k| map[&(k, n)]);
            let r = u / c;
            let (goal, ok) = if n == 10_000 {
                ("≥ 100x faster than upstream", Some(r >= 100.0))
            } else {
                ("", None)
            };
            row(
                &mut t,
                format!("`{what}`, {n} live blocks (ns)"),
                [num(c), num(m), num(u)],
                format!("{}x faster", num(r)),
                goal,
                ok,
            );
        }
        let flat = map[&(Core, 100_000)] / map[&(Core, 1_000)];
        row(
            &mut t,
            format!("`{what}`: 100k ÷ 1k blocks, ours (core)"),
            [num(flat), String::new(), String::new()],
            format!("{}x", num(flat)),
            "flat: read here as ≤ 2x from 1k to 100k",
            Some(flat <= 2.0),
        );
    }
    let [c, m, u] = [Core, Component, Upstream].map(|k| {
        let ch = &f.churn[&k];
        ch.grown() as f64 / ch.peak_live as f64
    });
    row(
        &mut t,
        "heap efficiency: memory grown ÷ peak live bytes".into(),
        [num(c), num(m), num(u)],
        format!("{}x", num(c)),
        "≤ 1.3x",
        Some(c <= 1.3),
    );
    for (i, (_, name)) in SIZES.iter().enumerate() {
        let [c, m, u] = [Core, Component, Upstream].map(|k| f.round_trip[&(k, i)]);
        let ab = f.ab[i].ours_us / f.ab[i].upstream_us;
        row(
            &mut t,
            format!("`echo` round trip, {name} (µs)"),
            [num(c), num(m), num(u)],
            format!(
                "{}x upstream's time (interleaved: {}x)",
                num(c / u),
                num(ab)
            ),
            "≤ 1x upstream's time (verdict on the interleaved ratio)",
            Some(ab <= 1.0),
        );
    }
    for (i, (_, name)) in SIZES.iter().enumerate().skip(2) {
        let c = f.round_trip[&(Core, i)];
        let r = c / f.plain_copy[i];
        let (goal, ok) = if i == 3 {
            ("≤ 1.5x the plain copy", Some(r <= 1.5))
        } else {
            ("", None)
        };
        row(
            &mut t,
            format!("plain copy in and out, {name} (µs)"),
            [num(f.plain_copy[i]), String::new(), String::new()],
            format!("echo (core) = {}x copy", num(r)),
            goal,
            ok,
        );
    }
    let r = f.raw_length.1 / f.raw_length.0;
    row(
        &mut t,
        "raw `length` call from the host (ns)".into(),
        [num(f.raw_length.0), num(f.raw_length.1), String::new()],
        format!("component {}x core", num(r)),
        "≤ 2x core",
        Some(r <= 2.0),
    );
    let r = f.bulk.1 / f.bulk.0;
    row(
        &mut t,
        "1 MiB in and out, bulk (µs)".into(),
        [num(f.bulk.0), num(f.bulk.1), String::new()],
        format!("component {}x core", num(r)),
        "report",
        None,
    );
    (t, unmet)
}

/// The "Composed plugins" table, and the note of the aim under it.
fn composed_table(f: &Figures) -> (String, Vec<String>) {
    const GOAL: &str = "composed ≤ 1x the core path's time (verdict on the interleaved ratio)";
    let core = Form::Kernel(KernelId::Core);
    let mut t = String::new();
    let mut unmet = Vec::new();
    t.push_str("| case |");
    for form in Form::ALL {
        let _ = write!(t, " {} |", form.label());
    }
    t.push_str(" composed ÷ core | goal | verdict |\n|---|");
    t.push_str(&"---:|".repeat(Form::ALL.len() + 1));
    t.push_str("---|---|\n");
    let mut aims = Vec::new();
    for case in Case::all() {
        let ratio = f.plugins[&(case, Form::Composed)] / f.plugins[&(case, core)];
        let ab = &f.composed_ab[&case];
        let inter = ab.second_us / ab.first_us;
        let _ = write!(t, "| {} |", case.name());
        for form in Form::ALL {
            let _ = write!(t, " {} |", num(f.plugins[&(case, form)]));
        }
        let (goal, aim) = case.goal();
        let (g, v) = if goal {
            (GOAL, verdict(inter <= 1.0))
        } else {
            ("", "")
        };
        let _ = writeln!(
            t,
            " {}x (interleaved: {}x) | {g} | {v} |",
            num(ratio),
            num(inter)
        );
        if goal && inter > 1.0 {
            unmet.push(format!(
                "composed plugins, {}: {}x the core path's time (interleaved: {}x) (goal: {GOAL})",
                case.name(),
                num(ratio),
                num(inter)
            ));
        }
        if aim {
            let faster = 1.0 / inter;
            let what = match case {
                Case::RoundTrip(i) => format!("the {} round trip", SIZES[i].1),
                _ => "the churn".into(),
            };
            let speed = if faster >= 1.0 {
                format!("{}x faster", num(faster))
            } else {
                format!("{}x slower", num(1.0 / faster))
            };
            aims.push(format!(
                "{what} {speed} ({})",
                if faster >= 1.5 {
                    "reached"
                } else {
                    "not reached"
                }
            ));
        }
    }
    let _ = writeln!(
        t,
        "\nAim (not a goal): composed 1.5x faster than the core path (composed ÷ core ≤ 0.67) on the 1 MiB round trip and the churn; in this run, on the interleaved ratios, {}.",
        aims.join("; ")
    );
    (t, unmet)
}

fn density_table(f: &Figures) -> (String, Vec<String>) {
    let mut t = String::new();
    let mut unmet = Vec::new();
    t.push_str("| kernel | pooling | instances | µs per create + first call | KiB resident per instance | calls/s, 1 thread | calls/s, 2 threads | 2 ÷ 1 thread |\n");
    t.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for d in &f.density {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {} |",
            d.kernel,
            if d.pooling { "on" } else { "off" },
            d.instances,
            num(d.create_us),
            num(d.rss_per_instance / 1024.0),
            d.one_thread,
            d.two_threads,
            num(d.two_threads / d.one_thread)
        );
    }
    let ours: Vec<&Density> = f
        .density
        .iter()
        .filter(|d| !d.pooling && d.kernel == KernelId::Core.label())
        .collect();
    t.push_str("\nGoals, ours (core, no pooling): ");
    let mut goals = Vec::new();
    for d in &ours {
        let up = f
            .density
            .iter()
            .find(|u| u.instances == d.instances && u.kernel == KernelId::Upstream.label());
        let kib = d.rss_per_instance / 1024.0;
        let lower = up.is_none_or(|u| d.rss_per_instance < u.rss_per_instance);
        let scale = d.two_threads / d.one_thread;
        for (name, ok, got) in [
            (
                "resident ≤ 53 KiB per instance",
                kib <= 53.0,
                format!("{} KiB", num(kib)),
            ),
            (
                "resident lower than upstream's",
                lower,
                match up {
                    Some(u) => format!("{} vs {} KiB", num(kib), num(u.rss_per_instance / 1024.0)),
                    None => "no upstream run".into(),
                },
            ),
            (
                "create + first call ≤ 80 µs",
                d.create_us <= 80.0,
                format!("{} µs", num(d.create_us)),
            ),
            (
                "2 threads ≥ 1.8x one",
                scale >= 1.8,
                format!("{}x", num(scale)),
            ),
        ] {
            goals.push(format!(
                "{} at {}: {got}, {}",
                name,
                d.instances,
                verdict(ok)
            ));
            if !ok {
                unmet.push(format!("density, {} instances: {name}: {got}", d.instances));
            }
        }
    }
    t.push_str(&goals.join("; "));
    t.push_str(".\n");
    (t, unmet)
}

fn write_plots(f: &Figures, dir: &Path) -> Result<Vec<&'static str>> {
    use KernelId::{Component, Core, Upstream};
    let kernels = [Core, Component, Upstream];
    let mut files = Vec::new();

    let cats: Vec<String> = RANDOM_LIVE.iter().map(|n| format!("≥{n} live")).collect();
    let series: Vec<Series> = kernels
        .iter()
        .map(|&k| {
            Series::new(
                k.label(),
                RANDOM_LIVE.iter().map(|&n| f.actions[&(k, n)]).collect(),
            )
        })
        .collect();
    plots::bars(
        &dir.join("random_actions.svg"),
        "Random alloc/free actions",
        "actions per µs (log; higher is better)",
        &cats,
        &series,
        true,
    )?;
    files.push("random_actions.svg");

    let cats: Vec<String> = LIVE
        .iter()
        .map(|n| format!("{}k blocks", n / 1000))
        .collect();
    for (file, what, map) in [
        ("length.svg", "length", &f.length),
        ("free.svg", "free", &f.free),
    ] {
        let series: Vec<Series> = kernels
            .iter()
            .map(|&k| Series::new(k.label(), LIVE.iter().map(|&n| map[&(k, n)]).collect()))
            .collect();
        plots::lines(
            &dir.join(file),
            &format!("`{what}` latency by live blocks"),
            "ns per call (log; lower is better)",
            &cats,
            &series,
        )?;
        files.push(file);
    }

    let cats: Vec<String> = SIZES.iter().map(|(_, n)| n.to_string()).collect();
    let mut series: Vec<Series> = kernels
        .iter()
        .map(|&k| {
            Series::new(
                k.label(),
                (0..SIZES.len()).map(|i| f.round_trip[&(k, i)]).collect(),
            )
        })
        .collect();
    series.push(Series::new("plain copy in and out", f.plain_copy.clone()));
    plots::lines(
        &dir.join("round_trip.svg"),
        "echo plugin call round trip by input size",
        "µs per call (log; lower is better)",
        &cats,
        &series,
    )?;
    files.push("round_trip.svg");

    let cats = vec!["memory grown ÷ peak live bytes".to_string()];
    let series: Vec<Series> = kernels
        .iter()
        .map(|&k| {
            let c = &f.churn[&k];
            Series::new(k.label(), vec![c.grown() as f64 / c.peak_live as f64])
        })
        .collect();
    plots::bars(
        &dir.join("heap_efficiency.svg"),
        "Heap efficiency on a churn workload (goal ≤ 1.3)",
        "x peak live bytes (lower is better)",
        &cats,
        &series,
        false,
    )?;
    files.push("heap_efficiency.svg");

    if !f.density.is_empty() {
        let runs: Vec<&Density> = f.density.iter().filter(|d| !d.pooling).collect();
        let mut instances: Vec<u64> = runs.iter().map(|d| d.instances).collect();
        instances.dedup();
        let cats: Vec<String> = instances.iter().map(|n| format!("{n} instances")).collect();
        let series: Vec<Series> = [Core, Upstream]
            .iter()
            .map(|&k| {
                Series::new(
                    k.label(),
                    instances
                        .iter()
                        .map(|&n| {
                            runs.iter()
                                .find(|d| d.instances == n && d.kernel == k.label())
                                .map_or(0.0, |d| d.rss_per_instance / 1024.0)
                        })
                        .collect(),
                )
            })
            .collect();
        plots::bars(
            &dir.join("density.svg"),
            "Resident memory per live plugin instance (goal ≤ 53 KiB)",
            "KiB per instance (lower is better)",
            &cats,
            &series,
            false,
        )?;
        files.push("density.svg");
    }
    Ok(files)
}

fn replace_readme_table(readme: &Path, table: &str) -> Result<bool> {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let Ok(text) = std::fs::read_to_string(readme) else {
        return Ok(false);
    };
    let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
        return Ok(false);
    };
    if b < a {
        return Ok(false);
    }
    let new = format!("{}{BEGIN}\n{table}{}", &text[..a], &text[b..]);
    std::fs::write(readme, new).context("writing the README")?;
    Ok(true)
}

fn run() -> Result<()> {
    let root = kernel_bench::workspace_root();
    let target = kernel_bench::target_dir();
    let out_dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| root.join("docs/bench"), PathBuf::from);
    std::fs::create_dir_all(&out_dir).context("creating the report folder")?;
    let load_start = kernel_bench::load_average();
    let load_bench =
        std::fs::read_to_string(kernel_bench::load_note_path()).unwrap_or_else(|_| "?".into());

    let mut est = Estimates::new();
    read_estimates(&target.join("criterion"), &mut est)?;
    ensure!(
        !est.is_empty(),
        "no criterion results in {}: run `cargo bench -p kernel-bench` first",
        target.join("criterion").display()
    );

    eprintln!("report: fetching upstream's kernel and measuring heap efficiency");
    let kernels = Kernels::load()?;

    let bin = target.join("release/host-demo");
    let mut density_runs = Vec::new();
    if bin.exists() {
        for n in [1000usize, 10_000] {
            for upstream in [false, true] {
                eprintln!(
                    "report: host-demo density, {n} instances, {} kernel",
                    if upstream { "upstream's" } else { "our" }
                );
                density_runs.push(density(
                    &bin,
                    n,
                    upstream.then_some(kernels.upstream.path.as_path()),
                    false,
                )?);
            }
        }
        eprintln!("report: host-demo density, 1000 instances, pooling");
        density_runs.push(density(&bin, 1000, None, true)?);
    } else {
        bail!(
            "{} is missing: `cargo build -p host-demo --release` first",
            bin.display()
        );
    }

    let startup_runs = kernel_bench::startup::RUNS;
    let scratch = target.join("startup-scratch");
    let plugin = kernel_bench::startup::plugin_file(&scratch.join("plugin"))?;
    let mut programs = vec![kernel_bench::startup::host_demo(&bin, &plugin)];
    let extism_bin = kernel_bench::startup::extism_bin();
    if extism_bin.exists() {
        programs.push(kernel_bench::startup::extism(&extism_bin, &plugin));
    }
    eprintln!(
        "report: start-up, {} program(s), {startup_runs} runs each with the cache off, cold and warm",
        programs.len()
    );
    let startup = kernel_bench::startup::measure(&programs, startup_runs, &scratch.join("caches"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let stable = kernel_bench::startup::render(&startup, startup_runs);

    let f = collect(&est, &kernels, &density_runs)?;
    let (table, mut unmet) = main_table(&f);
    let (ctable, cunmet) = composed_table(&f);
    unmet.extend(cunmet);
    let (dtable, dunmet) = density_table(&f);
    unmet.extend(dunmet);
    let plot_files = write_plots(&f, &out_dir)?;

    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let rustc = shell("rustc", &["--version"]);
    let machine = machine();
    let load_end = kernel_bench::load_average();
    let heading = format!(
        "Measured {date} on {machine}; {rustc}, wasmtime 48.0.8 (host-demo's engine configuration for every kernel), release profile. \
         Load average (1, 5, 15 min) {load_bench} when the benchmarks started, {load_start} when the report started, {load_end} at its end \
         (the machine is shared with other builds, so single figures can be noisy).\n"
    );

    let mut md = String::new();
    md.push_str("# Benchmarks: our kernel against upstream's\n\n");
    md.push_str("Written by `make bench` (criterion benchmarks in `bench/benches/kernels.rs`, then `cargo run -p kernel-bench --release --bin report`); every figure below comes from that one run. Medians of criterion's samples.\n\n");
    md.push_str(&heading);
    md.push_str("\nKernels: ours as a core module, ours as a component (its `raw` interface, answered through the component model), and upstream's `src/extism-runtime.wasm` from the `extism` 1.41.0 package, fetched through cargo at bench time (");
    let shown = kernels
        .upstream
        .path
        .iter()
        .skip_while(|c| !c.to_string_lossy().starts_with("extism-"))
        .collect::<PathBuf>();
    let _ = write!(
        md,
        "`$CARGO_HOME/registry/src/*/{}`, {} bytes",
        shown.display(),
        kernels.upstream.wasm.len()
    );
    md.push_str("). Each instance has its own store on one engine; kernel functions are called from the host through typed functions (core modules) or the component bindings.\n\n");
    md.push_str("## Summary\n\n");
    md.push_str(&table);
    md.push_str("\nRatios: random actions are ours (core) ÷ upstream's throughput; `length` and `free` are upstream's time ÷ ours (core); the round trip is ours (core) ÷ upstream's time, so below 1 is faster.\n\n");
    md.push_str("## Workloads\n\n");
    let _ = writeln!(
        md,
        "- **Random actions** (talc-style): {ACTIONS} actions per iteration, each one `alloc` (size 1 B to 64 KiB, a power of two 2^e with e uniform in 0..=16, then uniform below it: biased small) or one `free` of a random live block; below N live blocks it allocates, at 2N it frees, otherwise a coin flip."
    );
    let _ = writeln!(
        md,
        "- **`length` and `free`**: N live blocks of 1 to 64 bytes; `length` of a random live block; `free` of {FREE_BATCH} distinct random live blocks timed together (each then allocated again, untimed, so N stay live). Upstream at 10k and 100k blocks runs 10 flat samples to keep the run short."
    );
    let _ = writeln!(
        md,
        "- **Heap efficiency**: kernel-core's churn test driven from the host ({CHURN_ACTIONS} actions, at least 300 live blocks, a quarter of the sizes up to 64 KiB, the rest up to 512 B); memory is what the store's `ResourceLimiter` saw the kernel's memories grow by after instantiation, divided by the peak of live requested bytes."
    );
    md.push_str("- **Round trip**: `Plugin::call(\"echo\", input)` of the sample `echo` plugin (`extism-pdk` 1.4) through plugin-host, on each kernel, and `ComposedPlugin::call(\"echo\", input)` of the same plugin composed; the plain copy writes the same bytes into a block of wasm memory and reads them back into a new `Vec`.\n");
    let _ = writeln!(
        md,
        "- **Trivial call**: `{}` of the sample `echo` plugin on `{}` ({} bytes), on each form.",
        TRIVIAL_CALL.0,
        String::from_utf8_lossy(TRIVIAL_CALL.1),
        TRIVIAL_CALL.1.len()
    );
    let _ = writeln!(
        md,
        "- **Plugin churn**: `churn` of the sample `alloc_churn` plugin on `{PLUGIN_CHURN_ROUNDS}` ({PLUGIN_CHURN_ROUNDS} rounds of 1 to 4 allocations of 1 B to 64 KiB through the pdk's `Memory` API, 0 to 3 frees, at most 24 live, every live block's length and contents checked each round), on each form, its JSON summary checked to be the same on all; 10 flat samples."
    );
    md.push_str("- **Component overhead**: one `length` call from the host on each form; 1 MiB moved in and out (core module: `alloc`, `Memory::write`, `Memory::read`, `free`; component: `bulk.alloc-bytes`, `bulk.read`, `raw.free`).\n\n");
    md.push_str("## Round trip, interleaved\n\nCriterion measures one kernel after the other, seconds apart, and the machine's load changes meanwhile; so the round trip's verdict uses this second measurement, in the same run, which alternates one call on ours (core) and one on upstream's and takes each one's median:\n\n| input | calls each | ours (core), µs | upstream, µs | ours ÷ upstream |\n|---|---:|---:|---:|---:|\n");
    for p in &f.ab {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            SIZES[p.size].1,
            p.calls,
            num(p.ours_us),
            num(p.upstream_us),
            num(p.ours_us / p.upstream_us)
        );
    }
    md.push('\n');
    md.push_str("## Composed plugins\n\nThe same classic plugins on the core path (ours and upstream's kernel), on the component backend, and composed with our kernel into one component at load time (`ComposedPlugin::compose`: the kernel's core module linked directly into the plugin). Medians of criterion's samples; the ratio is composed ÷ ours (core path), so below 1 is faster, and beside it the same ratio from a second measurement in the same run that alternates one call on the core path and one composed (medians of 5000 calls each, 300 from 64 KiB, 30 of the churn), on which the verdicts rest, as for the round trip above. Every form gave the same outputs.\n\n");
    md.push_str(&ctable);
    md.push('\n');
    md.push_str("## Heap efficiency details\n\n| kernel | peak live bytes | memory at start | memory at end | grown ÷ peak | end ÷ peak | `memory.grow` calls |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for k in KernelId::ALL {
        let c = &f.churn[&k];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            k.label(),
            c.peak_live,
            c.initial_bytes,
            c.final_bytes,
            num(c.grown() as f64 / c.peak_live as f64),
            num(c.final_bytes as f64 / c.peak_live as f64),
            c.grows
        );
    }
    md.push_str("\nA component store's memory is the component's whole linear memory: the kernel's heap arena and whatever the component's own allocator (behind the canonical ABI) holds.\n\n");
    md.push_str("## Density\n\n`target/release/host-demo density sample:count_vowels count_vowels --instances N --input \"Hello, World!\" --threads 2 --json [--kernel-wasm UPSTREAM] [--pooling]`, each run in its own process (resident memory is per process):\n\n");
    md.push_str(&dtable);
    md.push_str("\n## Start-up\n\n`target/release/host-demo call PLUGIN count_vowels --input \"Hello, World!\"`, the sample `count_vowels` read from a file, one call per process, timed from spawn to exit (`bench/src/startup.rs`): with the compilation cache off (`HOST_DEMO_NO_CACHE=1`), cold (an empty `HOST_DEMO_CACHE_DIR` every run: compile, then store) and warm (a directory filled by a first run). ");
    if extism_bin.exists() {
        let _ = write!(
            md,
            "Extism's row is the same call through the `extism` {} crate (`bench/extism-startup/`, built by `make bench-startup-extism`), its wasmtime cache configured the same three ways. ",
            kernel_bench::startup::EXTISM_VERSION
        );
    } else {
        md.push_str(
            "`make bench-startup-extism` adds the same call through Extism's own runtime. ",
        );
    }
    md.push_str("Runs of every program and mode are interleaved.\n\n");
    md.push_str(&stable);
    md.push_str("\n## Goals not met\n\n");
    if unmet.is_empty() {
        md.push_str("None: every goal above is met in this run.\n");
    } else {
        for u in &unmet {
            let _ = writeln!(md, "- {u}");
        }
    }
    md.push_str("\n## Plots\n\n");
    for p in &plot_files {
        let _ = writeln!(md, "![{p}]({p})");
    }
    md.push_str("\n## Rerun\n\n```sh\nmake bench   # about 6 minutes when host-demo is built; writes docs/bench/REPORT.md and the plots\n```\n");
    let report = out_dir.join("REPORT.md");
    std::fs::write(&report, &md).context("writing REPORT.md")?;

    println!("{heading}");
    println!("{table}");
    println!("Composed plugins:\n\n{ctable}");
    println!("{dtable}");
    println!("{stable}");
    if unmet.is_empty() {
        println!("Every goal is met.");
    } else {
        println!("Goals not met:");
        for u in &unmet {
            println!("- {u}");
        }
    }
    let readme_table = format!("{heading}\n{table}\n{dtable}\n{stable}");
    if replace_readme_table(&root.join("README.md"), &readme_table)? {
        println!("\nrefreshed the table in README.md");
    }
    println!(
        "\nwrote {} and {} plots in {}",
        report.display(),
        plot_files.len(),
        out_dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    kernel_bench::exit("report", run())
}

//! How many plugin instances a host can keep, and what each costs: `host-demo density`.
//!
//! From one [`PluginPre`], creates `instances` plugins, calls each once, and keeps them all
//! alive; reports the time per create-and-first-call and the growth of the process's
//! resident memory per live instance. Then measures call throughput with 1 thread and with
//! `threads` threads, each thread calling only its own instances, for the same time.

use crate::{Plugin, PluginPre};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::Result;
use wasmtime::error::Context;

/// What to measure.
#[derive(Debug, Clone)]
pub struct DensityConfig {
    /// Live instances to create.
    pub instances: usize,
    /// The function to call.
    pub function: String,
    /// Its input.
    pub input: Vec<u8>,
    /// Most threads for the throughput measurement (1 and this many are measured).
    pub threads: usize,
    /// How long each throughput measurement runs.
    pub throughput_time: Duration,
}

/// Throughput with a number of threads.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Threads calling at once, each on its own instances.
    pub threads: usize,
    /// Calls completed per second, all threads together.
    pub calls_per_sec: f64,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct DensityReport {
    /// Live instances at the end.
    pub instances: usize,
    /// Mean time to create one instance and make its first call, in microseconds.
    pub create_and_call_us: f64,
    /// The part of it spent creating the instance (store, kernel, plugin), in microseconds.
    pub create_us: f64,
    /// Resident memory of the process before the instances were made, in bytes.
    pub rss_before: u64,
    /// Resident memory with all instances alive, in bytes.
    pub rss_after: u64,
    /// Growth of resident memory per live instance, in bytes.
    pub rss_per_instance: f64,
    /// Call throughput with 1 thread and with more.
    pub throughput: Vec<Throughput>,
}

/// The process's resident set size, in bytes (Linux: `VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// Runs the measurement. The first call's output of every instance must equal the first
/// instance's (a plugin whose output varies per instance is reported as an error).
pub fn run(pre: &Arc<PluginPre>, config: &DensityConfig) -> Result<DensityReport> {
    wasmtime::ensure!(config.instances > 0, "--instances must be at least 1");
    wasmtime::ensure!(config.threads > 0, "--threads must be at least 1");
    // One instance made and dropped first: what every later one shares (code, type
    // registrations, lazily made host state) is then resident before the baseline.
    let expected = {
        let mut p = pre.instantiate()?;
        p.call(&config.function, &config.input)
            .context("the first call")?
    };
    let rss_before = resident_bytes()?;
    let mut plugins: Vec<Plugin> = Vec::with_capacity(config.instances);
    let start = Instant::now();
    let mut creating = Duration::ZERO;
    for i in 0..config.instances {
        let t = Instant::now();
        let mut p = pre
            .instantiate()
            .with_context(|| format!("creating instance {}", i + 1))?;
        creating += t.elapsed();
        let out = p
            .call(&config.function, &config.input)
            .with_context(|| format!("calling instance {}", i + 1))?;
        wasmtime::ensure!(
            out == expected,
            "instance {} gave another output than the first",
            i + 1
        );
        plugins.push(p);
    }
    let elapsed = start.elapsed();
    let rss_after = resident_bytes()?;
    let mut throughput = vec![measure(&mut plugins, config, 1)?];
    if config.threads > 1 {
        throughput.push(measure(&mut plugins, config, config.threads)?);
    }
    let instances = plugins.len();
    drop(plugins);
    Ok(DensityReport {
        instances,
        create_and_call_us: elapsed.as_secs_f64() * 1e6 / instances as f64,
        create_us: creating.as_secs_f64() * 1e6 / instances as f64,
        rss_before,
        rss_after,
        rss_per_instance: rss_after.saturating_sub(rss_before) as f64 / instances as f64,
        throughput,
    })
}

/// Calls for `config.throughput_time` on `threads` threads. The instances are cut into
/// `config.threads` equal groups and thread `i` calls only group `i`, round robin, so every
/// thread count works on the same number of instances per thread.
fn measure(plugins: &mut [Plugin], config: &DensityConfig, threads: usize) -> Result<Throughput> {
    let group = plugins.len().div_ceil(config.threads);
    let stop = AtomicBool::new(false);
    let (function, input) = (&config.function, &config.input);
    let counts = std::thread::scope(|s| -> Result<Vec<u64>> {
        let workers: Vec<_> = plugins
            .chunks_mut(group)
            .take(threads)
            .map(|chunk| {
                let stop = &stop;
                s.spawn(move || -> Result<u64> {
                    let mut calls = 0u64;
                    'outer: loop {
                        for p in chunk.iter_mut() {
                            if stop.load(Ordering::Relaxed) {
                                break 'outer;
                            }
                            p.call(function, input)?;
                            calls += 1;
                        }
                    }
                    Ok(calls)
                })
            })
            .collect();
        let started = workers.len();
        std::thread::sleep(config.throughput_time);
        stop.store(true, Ordering::Relaxed);
        let counts = workers
            .into_iter()
            .map(|w| w.join().expect("a caller thread panicked"))
            .collect::<Result<Vec<u64>>>()?;
        debug_assert_eq!(counts.len(), started);
        Ok(counts)
    })?;
    let threads = counts.len();
    Ok(Throughput {
        threads,
        calls_per_sec: counts.iter().sum::<u64>() as f64 / config.throughput_time.as_secs_f64(),
    })
}

/// The report as the lines `host-demo density` prints.
pub fn render(report: &DensityReport, what: &str) -> String {
    let mut s = format!("{what}\n");
    s += &format!(
        "create + first call: {:.1} us per instance (create {:.1} us; {} instances)\n",
        report.create_and_call_us, report.create_us, report.instances
    );
    s += &format!(
        "resident memory: {:.1} MiB before, {:.1} MiB with all alive: {:.1} KiB per live instance\n",
        report.rss_before as f64 / 1048576.0,
        report.rss_after as f64 / 1048576.0,
        report.rss_per_instance / 1024.0
    );
    let one = report.throughput.first().map(|t| t.calls_per_sec);
    for t in &report.throughput {
        s += &format!(
            "throughput, {} thread{}: {:.0} calls/s",
            t.threads,
            if t.threads == 1 { "" } else { "s" },
            t.calls_per_sec
        );
        match one {
            Some(o) if t.threads > 1 && o > 0.0 => {
                s += &format!(" ({:.2}x one thread)\n", t.calls_per_sec / o)
            }
            _ => s += "\n",
        }
    }
    s
}

//! The `echo` round trip on our core kernel and upstream's with the calls interleaved one
//! for one, so that a shared machine's load falls on both alike: the report's ratio for the
//! round trip (criterion measures one kernel after the other, seconds apart); and
//! [`interleave`], the same for any two plugins, for the composed plugins' ratios.

use crate::forms::Loaded;
use crate::{Kernels, SIZES};
use host_fixtures::samples;
use plugin_host::{Plugin, PluginOptions};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::error::Context;
use wasmtime::{Result, ensure};

/// Medians of one size's interleaved calls.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// The input size's index in [`SIZES`].
    pub size: usize,
    /// Calls of each kernel.
    pub calls: usize,
    /// Median µs per call on our core kernel.
    pub ours_us: f64,
    /// Median µs per call on upstream's kernel.
    pub upstream_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every size of [`SIZES`]: `echo` on ours, then on upstream's, and again, timing each call.
pub fn round_trip(kernels: &Kernels) -> Result<Vec<Pair>> {
    let echo = samples::plugin("echo").context("the echo sample plugin")?;
    let upstream = PluginOptions {
        kernel_wasm: Some(Arc::new(kernels.upstream.wasm.clone())),
        ..Default::default()
    };
    let mut ours = Plugin::new(&kernels.runtime, echo, PluginOptions::default())?;
    let mut theirs = Plugin::new(&kernels.runtime, echo, upstream)?;
    let mut out = Vec::new();
    for (i, (size, _)) in SIZES.iter().enumerate() {
        let input: Vec<u8> = (0..*size).map(|i| (i * 7 + 3) as u8).collect();
        let calls = if *size >= 64 << 10 { 300 } else { 5000 };
        let (mut a, mut b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for _ in 0..calls {
            let t = Instant::now();
            black_box(ours.call("echo", black_box(&input))?);
            a.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            black_box(theirs.call("echo", black_box(&input))?);
            b.push(t.elapsed().as_secs_f64() * 1e6);
        }
        out.push(Pair {
            size: i,
            calls,
            ours_us: median(a),
            upstream_us: median(b),
        });
    }
    Ok(out)
}

/// Medians of `calls` calls of one function on two plugins, alternated one for one.
#[derive(Debug, Clone, Copy)]
pub struct Interleaved {
    /// Calls of each plugin.
    pub calls: usize,
    /// Median µs per call on the first plugin.
    pub first_us: f64,
    /// Median µs per call on the second plugin.
    pub second_us: f64,
}

/// `function` on `input`, `calls` times on `first` and `second` alternately, each call timed
/// and its output checked to be the same on both (the report's interleaved composed ÷ core
/// ratios).
pub fn interleave(
    first: &mut Loaded,
    second: &mut Loaded,
    function: &str,
    input: &[u8],
    calls: usize,
) -> Result<Interleaved> {
    let want = first.call(function, input)?;
    ensure!(
        second.call(function, input)? == want,
        "`{function}` gave different outputs on the two forms"
    );
    let (mut a, mut b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let t = Instant::now();
        black_box(first.call(function, black_box(input))?);
        a.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        black_box(second.call(function, black_box(input))?);
        b.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(Interleaved {
        calls,
        first_us: median(a),
        second_us: median(b),
    })
}

//! The criterion benchmarks of `make bench`: our kernel (core module and component) and
//! upstream's, side by side on one engine, and whole plugins on those kernels and composed
//! with ours. `cargo bench -p kernel-bench` runs them; `cargo run -p kernel-bench --release
//! --bin report` turns the estimates into the report.
//!
//! Groups (ids `GROUP/FUNCTION/VALUE`, read back by the report):
//! - `random_actions/KERNEL/N`: 1000 random `alloc`/`free` actions with at least N live
//!   blocks (throughput in actions).
//! - `length/KERNEL/N`, `free/KERNEL/N`: one `length` of a random live block, one `free` of
//!   a random live block (timed per batch of frees; each freed block is then allocated
//!   again, untimed, so N blocks stay live), with N small blocks live.
//! - `round_trip/FORM/SIZE`: an `echo` call of an `extism-pdk` plugin through plugin-host,
//!   FORM a kernel (`ours-core`, `ours-component`, `upstream`) or `composed` (the plugin
//!   composed with our kernel into one component at load time, `ComposedPlugin::compose`);
//!   `round_trip/plain-copy/SIZE`: the same bytes written into wasm memory and read back.
//! - `plugin_call/FORM/reverse-x`: the trivial call, `echo`'s `reverse` on `x`, on the same
//!   four forms.
//! - `plugin_churn/FORM/ROUNDS`: the `alloc_churn` sample's `churn` with ROUNDS rounds
//!   (`PLUGIN_CHURN_ROUNDS`; allocations, frees and checks through the pdk's `Memory` API,
//!   about 40 ms a call on the core path), on the four forms; flat sampling, 10 samples.
//! - `component_overhead/raw-length/FORM`: one `length` call from the host;
//!   `component_overhead/bulk-1MiB/FORM`: 1 MiB into a new block and back out.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use host_fixtures::samples;
use kernel_bench::workloads::{LiveSet, RandomActions};
use kernel_bench::{
    ACTIONS, FREE_BATCH, Form, KernelId, Kernels, LIVE, PLUGIN_CHURN_ROUNDS, RANDOM_LIVE,
    RawKernel, SIZES, TRIVIAL_CALL,
};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        let note = kernel_bench::load_note_path();
        if let Some(dir) = note.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&note, kernel_bench::load_average());
        Kernels::load().expect("loading the kernels")
    })
}

fn random_actions(c: &mut Criterion) {
    let ks = kernels();
    let mut g = c.benchmark_group("random_actions");
    g.throughput(Throughput::Elements(ACTIONS));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for n in RANDOM_LIVE {
        for id in KernelId::ALL {
            let mut k = RawKernel::new(ks, id).expect("instantiating");
            let mut w = RandomActions::new(42, n);
            w.fill(&mut k).expect("filling");
            g.bench_function(BenchmarkId::new(id.id(), n), |b| {
                b.iter(|| {
                    for _ in 0..ACTIONS {
                        w.step(&mut k).expect("action");
                    }
                })
            });
        }
    }
    g.finish();
}

fn latency(c: &mut Criterion) {
    let ks = kernels();
    for id in KernelId::ALL {
        for n in LIVE {
            let mut k = RawKernel::new(ks, id).expect("instantiating");
            let mut set = LiveSet::new(&mut k, n, 9).expect("filling");
            // Upstream's lookups walk every block: fewer, longer samples there.
            let slow = id == KernelId::Upstream && n >= 10_000;
            for group in ["length", "free"] {
                let mut g = c.benchmark_group(group);
                if slow {
                    g.sample_size(10)
                        .warm_up_time(Duration::from_millis(500))
                        .measurement_time(Duration::from_secs(2))
                        .sampling_mode(SamplingMode::Flat);
                } else {
                    g.warm_up_time(Duration::from_secs(1))
                        .measurement_time(Duration::from_secs(2));
                }
                let bench = BenchmarkId::new(id.id(), n);
                if group == "length" {
                    // The live handles in a random order, walked in sequence: the kernel's
                    // lookups are random, the harness's own reads are not.
                    let order: Vec<u64> = (0..n)
                        .map(|_| {
                            let i = set.pick();
                            set.blocks[i].0
                        })
                        .collect();
                    let mut next = 0;
                    g.bench_function(bench, |b| {
                        b.iter(|| {
                            let h = order[next];
                            next = if next + 1 == order.len() { 0 } else { next + 1 };
                            black_box(k.length(h).expect("length"))
                        })
                    });
                } else {
                    g.throughput(Throughput::Elements(FREE_BATCH as u64));
                    g.bench_function(bench, |b| {
                        b.iter_custom(|iters| {
                            let mut timed = Duration::ZERO;
                            let mut picked = [0usize; FREE_BATCH];
                            for _ in 0..iters {
                                for j in 0..FREE_BATCH {
                                    // Distinct blocks, so that every free is of a live one.
                                    let mut i = set.pick();
                                    while picked[..j].contains(&i) {
                                        i = set.pick();
                                    }
                                    picked[j] = i;
                                }
                                let handles = picked.map(|i| set.blocks[i].0);
                                let t = Instant::now();
                                for h in handles {
                                    k.free(h).expect("free");
                                }
                                timed += t.elapsed();
                                for &i in &picked {
                                    let size = set.blocks[i].1;
                                    set.blocks[i].0 = k.alloc(size).expect("alloc");
                                }
                            }
                            timed
                        })
                    });
                }
                g.finish();
            }
        }
    }
}

fn round_trip(c: &mut Criterion) {
    let ks = kernels();
    let echo = samples::plugin("echo").expect("the echo sample plugin");
    let mut g = c.benchmark_group("round_trip");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (size, name) in SIZES {
        let input: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        for form in Form::ALL {
            let mut plugin = form.load(ks, echo).expect("loading echo");
            let out = plugin.call("echo", &input).expect("echo");
            assert!(out == input, "echo on {form} changed the bytes");
            // The component moves a classic plugin's bytes one raw call at a time.
            let slow = form == Form::Kernel(KernelId::Component) && size >= 64 << 10;
            g.sampling_mode(if slow {
                SamplingMode::Flat
            } else {
                SamplingMode::Auto
            });
            g.sample_size(if slow { 10 } else { 30 });
            g.bench_function(BenchmarkId::new(form.id(), name), |b| {
                b.iter(|| black_box(plugin.call("echo", black_box(&input)).expect("echo")))
            });
        }
        g.sampling_mode(SamplingMode::Auto).sample_size(30);
        let mut k = RawKernel::new(ks, KernelId::Core).expect("instantiating");
        let h = k.alloc(size.max(1) as u64).expect("alloc");
        let RawKernel::Core { store, f } = &mut k else {
            unreachable!("a core kernel")
        };
        g.bench_function(BenchmarkId::new("plain-copy", name), |b| {
            b.iter(|| {
                f.memory()
                    .write(&mut *store, h as usize, black_box(&input))
                    .expect("write");
                let mut out = vec![0u8; input.len()];
                f.memory()
                    .read(&*store, h as usize, &mut out)
                    .expect("read");
                black_box(out)
            })
        });
    }
    g.finish();
}

fn component_overhead(c: &mut Criterion) {
    let ks = kernels();
    let mut g = c.benchmark_group("component_overhead");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let mib: Vec<u8> = (0..1usize << 20).map(|i| (i * 13 + 1) as u8).collect();
    for id in [KernelId::Core, KernelId::Component] {
        let mut k = RawKernel::new(ks, id).expect("instantiating");
        let h = k.alloc(100).expect("alloc");
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("raw-length", id.id()), |b| {
            b.iter(|| black_box(k.length(black_box(h)).expect("length")))
        });
        g.throughput(Throughput::Bytes(mib.len() as u64));
        g.bench_function(BenchmarkId::new("bulk-1MiB", id.id()), |b| match &mut k {
            RawKernel::Core { store, f } => b.iter(|| {
                let h = f
                    .funcs()
                    .alloc
                    .call(&mut *store, (mib.len() as u64,))
                    .expect("alloc");
                f.memory()
                    .write(&mut *store, h as usize, black_box(&mib))
                    .expect("write");
                let mut out = vec![0u8; mib.len()];
                f.memory()
                    .read(&*store, h as usize, &mut out)
                    .expect("read");
                f.funcs().free.call(&mut *store, (h,)).expect("free");
                black_box(out)
            }),
            RawKernel::Component { store, kernel } => b.iter(|| {
                let bulk = kernel.extism_kernel_bulk();
                let h = bulk
                    .call_alloc_bytes(&mut *store, black_box(&mib))
                    .expect("call")
                    .expect("alloc-bytes");
                let out = bulk
                    .call_read(&mut *store, h, 0, mib.len() as u64)
                    .expect("call")
                    .expect("read");
                kernel
                    .extism_kernel_raw()
                    .call_free(&mut *store, h)
                    .expect("free");
                black_box(out)
            }),
        });
    }
    g.finish();
}

fn plugin_call(c: &mut Criterion) {
    let ks = kernels();
    let echo = samples::plugin("echo").expect("the echo sample plugin");
    let (function, input, case) = TRIVIAL_CALL;
    let mut g = c.benchmark_group("plugin_call");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for form in Form::ALL {
        let mut plugin = form.load(ks, echo).expect("loading echo");
        let out = plugin.call(function, input).expect(function);
        let want: Vec<u8> = input.iter().rev().copied().collect();
        assert!(out == want, "{function} on {form} gave {out:?}");
        g.bench_function(BenchmarkId::new(form.id(), case), |b| {
            b.iter(|| black_box(plugin.call(function, black_box(input)).expect(function)))
        });
    }
    g.finish();
}

fn plugin_churn(c: &mut Criterion) {
    let ks = kernels();
    let wasm = samples::plugin("alloc_churn").expect("the alloc_churn sample plugin");
    let input = PLUGIN_CHURN_ROUNDS.to_string().into_bytes();
    let mut g = c.benchmark_group("plugin_churn");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));
    let mut expected: Option<Vec<u8>> = None;
    for form in Form::ALL {
        let mut plugin = form.load(ks, wasm).expect("loading alloc_churn");
        let out = plugin.call("churn", &input).expect("churn");
        match &expected {
            None => expected = Some(out),
            Some(want) => assert!(
                &out == want,
                "churn on {form} gave {}, the core path {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(want)
            ),
        }
        // The component backend answers every kernel call through the component model:
        // about ten times the core path's time, so one call per sample there (criterion
        // then warns that 10 samples take longer than 5 s).
        let slow = form == Form::Kernel(KernelId::Component);
        g.measurement_time(Duration::from_secs(if slow { 5 } else { 3 }));
        g.bench_function(BenchmarkId::new(form.id(), PLUGIN_CHURN_ROUNDS), |b| {
            b.iter(|| black_box(plugin.call("churn", black_box(&input)).expect("churn")))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    random_actions,
    latency,
    round_trip,
    plugin_call,
    plugin_churn,
    component_overhead
);
criterion_main!(benches);

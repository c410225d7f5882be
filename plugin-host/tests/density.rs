//! Many instances per host: the kernel's small memory footprint, `PluginPre` (compile and
//! link once, instantiate many), the pooling allocator, and plugins called from several
//! threads at once.

use host_fixtures::samples::sample;
use host_fixtures::{KINDS, runtime};
use kernel_core::testing::{Rng, SplitMix64};
use plugin_host::density::{DensityConfig, resident_bytes};
use plugin_host::{
    KernelKind, Plugin, PluginOptions, PluginPre, Runtime, RuntimeOptions, artifacts,
};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Engine, Instance, Module, Store, TypedFunc};

fn echo() -> &'static [u8] {
    sample("echo")
}

fn count_vowels() -> &'static [u8] {
    sample("count_vowels")
}

fn options(kernel: KernelKind) -> PluginOptions {
    host_fixtures::options(kernel)
}

fn pre(kernel: KernelKind, wasm: &[u8]) -> Arc<PluginPre> {
    Arc::new(PluginPre::new(runtime(), wasm, options(kernel)).unwrap())
}

#[test]
fn plugins_are_send_and_their_pre_is_shared_between_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Plugin>();
    send_sync::<PluginPre>();
    send_sync::<Runtime>();
}

#[test]
fn instances_of_one_pre_are_independent() {
    for kind in KINDS {
        let pre = pre(kind, echo());
        let mut a = pre.instantiate().unwrap();
        let mut b = pre.instantiate().unwrap();
        assert_eq!(a.call("echo", b"first").unwrap(), b"first", "{kind}");
        assert_eq!(b.call("reverse", b"second").unwrap(), b"dnoces", "{kind}");
        // Each has its own kernel: a's output is untouched by b's call, and vice versa.
        assert_eq!(a.call("echo", b"").unwrap(), b"", "{kind}");
        assert_eq!(b.call("echo", b"b").unwrap(), b"b", "{kind}");
        // A plugin made with Plugin::new hands out the same pre.
        let c = Plugin::new(runtime(), echo(), options(kind)).unwrap();
        let mut d = c.pre().instantiate().unwrap();
        assert_eq!(d.call("echo", b"d").unwrap(), b"d", "{kind}");
    }
}

#[test]
fn threads_instantiate_from_one_pre_and_call_at_the_same_time() {
    for kind in KINDS {
        let pre = pre(kind, count_vowels());
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|t| {
                    let pre = pre.clone();
                    s.spawn(move || {
                        let mut plugins: Vec<Plugin> =
                            (0..8).map(|_| pre.instantiate().unwrap()).collect();
                        // count_vowels keeps a running total in a var: per instance.
                        let mut totals = [0usize; 8];
                        for round in 0..50 {
                            for (p, total) in plugins.iter_mut().zip(&mut totals) {
                                let n = t * 100 + round;
                                *total += n;
                                let out = p.call("count_vowels", "a".repeat(n).as_bytes());
                                let want = format!(
                                    r#"{{"count":{n},"total":{total},"vowels":"aeiouAEIOU"}}"#
                                );
                                assert_eq!(String::from_utf8(out.unwrap()).unwrap(), want);
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        });
    }
}

#[test]
fn pooling_allocator_runs_plugins_and_refuses_instances_past_the_pool() {
    let runtime = Runtime::new(RuntimeOptions {
        pooling: Some(4),
        ..RuntimeOptions::default()
    })
    .unwrap();
    for kind in KINDS {
        let pre = Arc::new(PluginPre::new(&runtime, echo(), options(kind)).unwrap());
        let mut live: Vec<Plugin> = (0..4)
            .map(|i| {
                pre.instantiate()
                    .unwrap_or_else(|e| panic!("{kind} {i}: {e:#}"))
            })
            .collect();
        for (i, p) in live.iter_mut().enumerate() {
            let input = format!("pooled {i}");
            assert_eq!(p.call("echo", input.as_bytes()).unwrap(), input.as_bytes());
        }
        let err = pre.instantiate().expect_err("the pool holds 4 plugins");
        let msg = format!("{err:#}");
        assert!(msg.contains("maximum concurrent"), "{msg}");
        // A slot freed is a slot reused.
        drop(live.pop());
        let mut again = pre.instantiate().unwrap();
        assert_eq!(again.call("reverse", b"abc").unwrap(), b"cba", "{kind}");
    }
}

#[test]
fn density_run_reports_every_figure() {
    for kind in KINDS {
        let pre = pre(kind, count_vowels());
        let config = DensityConfig {
            instances: 50,
            function: "count_vowels".into(),
            input: b"Hello, World!".to_vec(),
            threads: 2,
            throughput_time: Duration::from_millis(50),
        };
        let report = plugin_host::density::run(&pre, &config).unwrap();
        assert_eq!(report.instances, 50);
        assert!(report.create_and_call_us > 0.0);
        assert!(report.rss_after > 0 && report.rss_before > 0);
        assert_eq!(report.throughput.len(), 2);
        assert_eq!(report.throughput[1].threads, 2);
        assert!(report.throughput.iter().all(|t| t.calls_per_sec > 0.0));
        let text = plugin_host::density::render(&report, "test");
        assert!(text.contains("per live instance"), "{text}");
    }
    assert!(resident_bytes().unwrap() > 1 << 20);
}

/// Every instance's first call must give the first instance's output: a plugin whose
/// instances disagree (here through a host function that counts its calls) is refused.
/// (Hardening round 2: this test used to check a missing function, not disagreement.)
#[test]
fn density_refuses_a_plugin_whose_instances_disagree() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let wasm = wat::parse_str(
        r#"(module
            (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
            (import "extism:host/env" "length" (func $length (param i64) (result i64)))
            (import "extism:host/user" "tick" (func $tick (param i64) (result i64)))
            (func (export "run") (result i32) (local $h i64)
                (local.set $h (call $tick (i64.const 0)))
                (call $output_set (local.get $h) (call $length (local.get $h)))
                (i32.const 0)))"#,
    )
    .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let tick = plugin_host::HostFunction::bytes("tick", move |_| {
        Ok(counter
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
            .into_bytes())
    });
    for kernel in KINDS {
        let pre = Arc::new(
            PluginPre::new(
                runtime(),
                &wasm,
                PluginOptions {
                    kernel,
                    functions: vec![tick.clone()],
                    ..PluginOptions::default()
                },
            )
            .unwrap(),
        );
        let config = DensityConfig {
            instances: 3,
            function: "run".into(),
            input: Vec::new(),
            threads: 1,
            throughput_time: Duration::from_millis(10),
        };
        let err = plugin_host::density::run(&pre, &config).unwrap_err();
        assert!(
            format!("{err:#}").contains("instance 1 gave another output than the first"),
            "{kernel}: {err:#}"
        );
    }
}

/// A function that does not exist is reported, not panicked on.
#[test]
fn density_reports_a_missing_function() {
    let pre = pre(KernelKind::Core, echo());
    let config = DensityConfig {
        instances: 2,
        function: "no_such_function".into(),
        input: Vec::new(),
        threads: 1,
        throughput_time: Duration::from_millis(10),
    };
    let err = plugin_host::density::run(&pre, &config).unwrap_err();
    assert!(format!("{err:#}").contains("no_such_function"), "{err:#}");
}

/// The core kernel's stack sits at the bottom of its memory, below every static and the
/// heap: a stack overflow would move the stack pointer below address 0 and trap, so the
/// contract suite (which runs every export under hostile arguments without a trap) would
/// have caught one. The built module must keep that layout.
#[test]
fn core_kernel_stack_is_first_so_an_overflow_traps() {
    let stack = kernel_build::artifacts::CORE_STACK_BYTES;
    let mut sp = None;
    let mut others = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&host_fixtures::drivers::core_wasm()) {
        match payload.unwrap() {
            wasmparser::Payload::GlobalSection(r) => {
                for g in r {
                    let g = g.unwrap();
                    let mut ops = g.init_expr.get_operators_reader();
                    if let Ok(wasmparser::Operator::I32Const { value }) = ops.read() {
                        if g.ty.mutable && sp.is_none() {
                            sp = Some(value as u32);
                        } else {
                            others.push(value as u32);
                        }
                    }
                }
            }
            wasmparser::Payload::DataSection(r) => {
                for d in r {
                    if let wasmparser::DataKind::Active { offset_expr, .. } = d.unwrap().kind {
                        let mut ops = offset_expr.get_operators_reader();
                        if let Ok(wasmparser::Operator::I32Const { value }) = ops.read() {
                            others.push(value as u32);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        sp,
        Some(stack),
        "the stack pointer starts at the top of the stack"
    );
    assert!(
        others.iter().all(|&a| a >= stack),
        "every static lies above the stack: {others:?}"
    );
}

/// How deep the core kernel's stack goes: every export called with random arguments (sizes
/// up to 1 MiB, handles of live blocks and garbage), then the lowest byte of the stack
/// region that was written. The stack is 8 KiB; the kernel uses a small part of it.
#[test]
fn core_kernel_uses_a_small_part_of_its_stack() {
    let engine = Engine::default();
    let module = Module::new(&engine, artifacts::KERNEL_CORE).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let f64 = |s: &mut Store<()>, n: &str| -> TypedFunc<u64, u64> {
        instance.get_typed_func(s, n).unwrap()
    };
    let alloc = f64(&mut store, "alloc");
    let length = f64(&mut store, "length");
    let load = f64(&mut store, "load_u64");
    let free: TypedFunc<u64, ()> = instance.get_typed_func(&mut store, "free").unwrap();
    let store64: TypedFunc<(u64, u64), ()> =
        instance.get_typed_func(&mut store, "store_u64").unwrap();
    let input_set: TypedFunc<(u64, u64), ()> =
        instance.get_typed_func(&mut store, "input_set").unwrap();
    let output_set: TypedFunc<(u64, u64), ()> =
        instance.get_typed_func(&mut store, "output_set").unwrap();
    let error_set: TypedFunc<u64, ()> = instance.get_typed_func(&mut store, "error_set").unwrap();
    let reset: TypedFunc<(), ()> = instance.get_typed_func(&mut store, "reset").unwrap();
    let mut rng = SplitMix64(7);
    let mut live: Vec<u64> = Vec::new();
    for step in 0..20_000u32 {
        let r = rng.next_u64();
        let pick = |live: &[u64], r: u64| {
            if live.is_empty() || r.is_multiple_of(5) {
                r >> 3
            } else {
                live[(r as usize >> 8) % live.len()] + (r % 3).saturating_sub(1)
            }
        };
        match r % 10 {
            0..=3 => {
                let size = match (r >> 4) % 4 {
                    0 => (r >> 8) % 64,
                    1 => (r >> 8) % 4096,
                    2 => (r >> 8) % (1 << 20),
                    _ => r >> 8,
                };
                let h = alloc.call(&mut store, size).unwrap();
                if h != 0 {
                    live.push(h);
                }
            }
            4 | 5 => {
                if !live.is_empty() {
                    let h = live.swap_remove((r as usize >> 8) % live.len());
                    free.call(&mut store, h).unwrap();
                }
            }
            6 => {
                let p = pick(&live, r);
                length.call(&mut store, p).unwrap();
                load.call(&mut store, p).unwrap();
                store64.call(&mut store, (p, r)).unwrap();
            }
            7 => {
                let h = pick(&live, r);
                input_set.call(&mut store, (h, r % 64)).unwrap();
                output_set.call(&mut store, (h, r % 64)).unwrap();
                error_set.call(&mut store, h).unwrap();
            }
            8 => free.call(&mut store, pick(&live, r)).unwrap(),
            _ => {
                if step.is_multiple_of(997) {
                    reset.call(&mut store, ()).unwrap();
                    live.clear();
                }
            }
        }
    }
    let stack = kernel_build::artifacts::CORE_STACK_BYTES as usize;
    let region = &memory.data(&store)[..stack];
    let lowest = region.iter().position(|&b| b != 0).unwrap_or(stack);
    let used = stack - lowest;
    eprintln!("core kernel stack high-water mark: {used} of {stack} bytes");
    assert!(
        used <= stack / 2,
        "the kernel used {used} of its {stack} stack bytes"
    );
}

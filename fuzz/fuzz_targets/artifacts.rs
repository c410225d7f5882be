//! The built artifacts, differentially: fuzzer bytes drive the shared action generator
//! (`kernel_core::testing`, as the `actions` target does) against the core module and the
//! component in wasmtime, each in lockstep with a native twin (`host_fixtures::drivers`).
//!
//! Every answer of a wasm kernel is compared with its twin's (a `Kernel` over a `VecMemory`
//! laid out like the wasm kernel's memory) and checked against the shadow model; the twin
//! runs the invariant scanner after every action; at the end the core module's memory is
//! compared with its twin's byte for byte, metadata included. A disagreement, a failed check
//! or a trap inside a kernel function panics, which libFuzzer reports.
//!
//! The first byte chooses the memories. Bits 0-4 and 5: the core module's limit, 2 to 33
//! pages (the twin imitates it exactly), or none. Bits 6-7: the component's, none (with a
//! twin) or 4 / 8 MiB (without one: its arena shares memory with the canonical ABI's
//! buffers, so there the shadow model is the check). The rest is the action stream. Where a
//! memory has no limit, sizes that could fit are cut to at most 4 MiB, so that an input
//! never makes a host allocate gigabytes.
//!
//! The engine, the compiled core module and the compiled component are made once per
//! process; each input gets fresh instances (`Lockstep::new` makes two of each).
#![no_main]

use host_fixtures::drivers::{ComponentDriver, CoreDriver, HostView, Lockstep, UNLIMITED};
use kernel_core::testing::{Action, ByteRng, Driver, Runner};
use kernel_core::{MAX_ALLOC, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;
use plugin_host::Limits;
use plugin_host::artifacts::KERNEL_COMPONENT;
use plugin_host::backend::component::bindings;
use plugin_host::backend::core::KernelFuncs;
use std::sync::OnceLock;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Instance, Module, Store};

/// Actions per input at most; each is one or a few calls into each wasm kernel.
const MAX_ACTIONS: usize = 2048;

/// Largest block an action asks for where a memory has no limit (see the file's docs).
const UNLIMITED_CAP: u64 = 4 << 20;

/// What every input shares: the engine and the two kernel forms, compiled.
struct Compiled {
    engine: Engine,
    core: Module,
    component: Component,
    linker: Linker<Limits>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let engine = host_fixtures::drivers::engine();
        let core = Module::new(&engine, host_fixtures::drivers::core_wasm())
            .expect("compiling the kernel module");
        let component =
            Component::new(&engine, KERNEL_COMPONENT).expect("compiling the kernel component");
        let linker = Linker::new(&engine);
        Compiled {
            engine,
            core,
            component,
            linker,
        }
    })
}

/// A store whose memories may hold `max_bytes` together.
fn store(max_bytes: usize) -> Store<Limits> {
    let mut store = Store::new(&compiled().engine, Limits::new(Some(max_bytes as u64)));
    store.limiter(|l| l);
    store
}

/// A fresh core-module kernel (what `CoreDriver::new` makes, without compiling again).
fn core_driver(max_bytes: usize) -> CoreDriver {
    let mut store = store(max_bytes);
    let instance = Instance::new(&mut store, &compiled().core, &[]).expect("instantiating");
    let memory = instance
        .get_memory(&mut store, "memory")
        .expect("a memory export");
    let f = KernelFuncs::new(&mut store, instance).expect("the kernel's exports");
    CoreDriver { store, memory, f }
}

/// A fresh kernel component (what `ComponentDriver::new` makes, without compiling again).
fn component_driver(max_bytes: usize) -> ComponentDriver {
    let c = compiled();
    let mut store = store(max_bytes);
    let k = bindings::Kernel::instantiate(&mut store, &c.component, &c.linker)
        .expect("instantiating the kernel component");
    ComponentDriver { store, k }
}

/// `a` with a size that could fit but exceeds [`UNLIMITED_CAP`] cut below it.
fn capped(a: Action) -> Action {
    let cap = |n: u64| {
        if n > UNLIMITED_CAP && n <= MAX_ALLOC {
            n % UNLIMITED_CAP
        } else {
            n
        }
    };
    match a {
        Action::Alloc(n, b) => Action::Alloc(cap(n), b),
        other => other,
    }
}

/// Runs `actions` on `d` and checks it at the end; the first failure panics, naming `form`.
fn run<D: Driver + HostView>(form: &str, d: &mut Lockstep<D>, actions: &[Action]) {
    let mut runner = Runner {
        full_check_every: 16,
        check_invariants: true,
        max_live: 64,
        ..Runner::default()
    };
    for &action in actions {
        if let Err(e) = runner.step(d, action) {
            panic!("{form}: action #{} {action:?}: {e}", runner.actions);
        }
    }
    if let Err(e) = runner.verify_all(d).and_then(|()| d.check()) {
        panic!("{form}: after {} actions: {e}", runner.actions);
    }
    if let Err(e) = d.compare_memory() {
        panic!("{form}: after {} actions: {e}", runner.actions);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let core_max = match cfg & 32 {
        0 => (2 + u64::from(cfg & 31)) as usize * PAGE_SIZE as usize,
        _ => UNLIMITED,
    };
    let (component_max, component_twin) = match cfg >> 6 {
        0 | 1 => (UNLIMITED, true),
        2 => (4 << 20, false),
        _ => (8 << 20, false),
    };
    let mut rng = ByteRng(rest);
    let mut actions = Vec::new();
    while !rng.is_empty() && actions.len() < MAX_ACTIONS {
        actions.push(Action::draw(&mut rng));
    }
    let uncapped = |max: usize, a: Action| if max == UNLIMITED { capped(a) } else { a };

    let core_actions: Vec<Action> = actions.iter().map(|&a| uncapped(core_max, a)).collect();
    let mut core = Lockstep::new(|| core_driver(core_max), core_max, true);
    run("core module", &mut core, &core_actions);

    let component_actions: Vec<Action> = actions
        .iter()
        .map(|&a| uncapped(component_max, a))
        .collect();
    let mut component = Lockstep::new(
        || component_driver(component_max),
        component_max,
        component_twin,
    );
    run("component", &mut component, &component_actions);
});

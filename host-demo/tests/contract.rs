//! The kernel contract (KERNEL-ABI.md), checked against the built artifacts through wasmtime:
//! the core module (typed functions) and the component (bindings over `wit/`), one suite for
//! both. `KERNEL_WASM=path cargo test -p host-demo --test contract` runs the core-module
//! half against any other kernel `.wasm` (upstream's, for instance) instead of ours.
//!
//! The hostile stress tests (`*_hostile_actions_in_lockstep`) drive each form with the shared
//! action generator (`STRESS_ACTIONS` actions per form, 1 000 000 by default: about 75 s for
//! the core module and 120 s for the component in the dev profile, the two running in
//! parallel; `STRESS_ACTIONS=200000` for a quicker run) in lockstep
//! with a native twin: a `kernel_core::Kernel` over a `VecMemory` laid out like the wasm
//! kernel's memory. Every answer of the wasm kernel must equal the twin's; the twin runs the
//! invariant scanner after every action; and for the core module the host compares the wasm
//! kernel's memory from its heap start to its end, metadata block included, byte for byte with
//! the twin's. Identical bytes mean the wasm kernel's records and hash index are the ones the
//! scanner just accepted, so the invariants are checked from the host without a test-only
//! export. The component's memory is not visible to the host: there the twin's answers and the
//! shadow model are the check.

use host_demo::artifacts;
use host_demo::backend::component::bindings;
use kernel_core::testing::{Action, Driver, Runner, SplitMix64, Value};
use kernel_core::{Kernel, Memory as _, PAGE_SIZE, VecMemory};
use std::time::Instant;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{Config, Engine, Instance, Memory, Module, ResourceLimiter, Store, TypedFunc};

/// A store limiter: at most `max` bytes of memory in the store.
struct Limit {
    max: usize,
}

impl ResourceLimiter for Limit {
    fn memory_growing(
        &mut self,
        _c: usize,
        desired: usize,
        _m: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max)
    }
    fn table_growing(&mut self, _c: usize, _d: usize, _m: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

fn engine() -> Engine {
    let mut c = Config::new();
    c.wasm_component_model(true);
    Engine::new(&c).unwrap()
}

fn core_wasm() -> Vec<u8> {
    match std::env::var_os("KERNEL_WASM") {
        Some(p) => std::fs::read(p).expect("KERNEL_WASM names a readable file"),
        None => artifacts::KERNEL_CORE.to_vec(),
    }
}

/// The core module under test, driven through typed functions.
struct CoreDriver {
    store: Store<Limit>,
    memory: Memory,
    f: CoreFns,
}

struct CoreFns {
    alloc: TypedFunc<u64, u64>,
    free: TypedFunc<u64, ()>,
    length: TypedFunc<u64, u64>,
    length_unsafe: TypedFunc<u64, u64>,
    load_u8: TypedFunc<u64, u32>,
    load_u64: TypedFunc<u64, u64>,
    store_u8: TypedFunc<(u64, u32), ()>,
    store_u64: TypedFunc<(u64, u64), ()>,
    input_load_u8: TypedFunc<u64, u32>,
    input_load_u64: TypedFunc<u64, u64>,
    input_set: TypedFunc<(u64, u64), ()>,
    output_set: TypedFunc<(u64, u64), ()>,
    input_length: TypedFunc<(), u64>,
    input_offset: TypedFunc<(), u64>,
    output_length: TypedFunc<(), u64>,
    output_offset: TypedFunc<(), u64>,
    reset: TypedFunc<(), ()>,
    error_set: TypedFunc<u64, ()>,
    error_get: TypedFunc<(), u64>,
    memory_bytes: TypedFunc<(), u64>,
}

impl CoreDriver {
    fn new(max_memory: usize) -> Self {
        let engine = engine();
        let module = Module::new(&engine, core_wasm()).unwrap();
        let mut store = Store::new(&engine, Limit { max: max_memory });
        store.limiter(|l| l);
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let memory = i.get_memory(&mut store, "memory").unwrap();
        macro_rules! f {
            ($n:literal) => {
                i.get_typed_func(&mut store, $n).expect($n)
            };
        }
        let f = CoreFns {
            alloc: f!("alloc"),
            free: f!("free"),
            length: f!("length"),
            length_unsafe: f!("length_unsafe"),
            load_u8: f!("load_u8"),
            load_u64: f!("load_u64"),
            store_u8: f!("store_u8"),
            store_u64: f!("store_u64"),
            input_load_u8: f!("input_load_u8"),
            input_load_u64: f!("input_load_u64"),
            input_set: f!("input_set"),
            output_set: f!("output_set"),
            input_length: f!("input_length"),
            input_offset: f!("input_offset"),
            output_length: f!("output_length"),
            output_offset: f!("output_offset"),
            reset: f!("reset"),
            error_set: f!("error_set"),
            error_get: f!("error_get"),
            memory_bytes: f!("memory_bytes"),
        };
        CoreDriver { store, memory, f }
    }
}

impl Driver for CoreDriver {
    fn alloc(&mut self, n: u64) -> u64 {
        self.f.alloc.call(&mut self.store, n).unwrap()
    }
    fn free(&mut self, h: u64) {
        self.f.free.call(&mut self.store, h).unwrap()
    }
    fn length(&mut self, h: u64) -> u64 {
        self.f.length.call(&mut self.store, h).unwrap()
    }
    fn length_unsafe(&mut self, h: u64) -> u64 {
        self.f.length_unsafe.call(&mut self.store, h).unwrap()
    }
    fn load_u8(&mut self, p: u64) -> u8 {
        self.f.load_u8.call(&mut self.store, p).unwrap() as u8
    }
    fn load_u64(&mut self, p: u64) -> u64 {
        self.f.load_u64.call(&mut self.store, p).unwrap()
    }
    fn store_u8(&mut self, p: u64, x: u8) {
        self.f
            .store_u8
            .call(&mut self.store, (p, x as u32))
            .unwrap()
    }
    fn store_u64(&mut self, p: u64, x: u64) {
        self.f.store_u64.call(&mut self.store, (p, x)).unwrap()
    }
    fn input_load_u8(&mut self, o: u64) -> u8 {
        self.f.input_load_u8.call(&mut self.store, o).unwrap() as u8
    }
    fn input_load_u64(&mut self, o: u64) -> u64 {
        self.f.input_load_u64.call(&mut self.store, o).unwrap()
    }
    fn input_set(&mut self, h: u64, n: u64) {
        self.f.input_set.call(&mut self.store, (h, n)).unwrap()
    }
    fn output_set(&mut self, p: u64, n: u64) {
        self.f.output_set.call(&mut self.store, (p, n)).unwrap()
    }
    fn input_length(&mut self) -> u64 {
        self.f.input_length.call(&mut self.store, ()).unwrap()
    }
    fn input_offset(&mut self) -> u64 {
        self.f.input_offset.call(&mut self.store, ()).unwrap()
    }
    fn output_length(&mut self) -> u64 {
        self.f.output_length.call(&mut self.store, ()).unwrap()
    }
    fn output_offset(&mut self) -> u64 {
        self.f.output_offset.call(&mut self.store, ()).unwrap()
    }
    fn reset(&mut self) {
        self.f.reset.call(&mut self.store, ()).unwrap()
    }
    fn error_set(&mut self, h: u64) {
        self.f.error_set.call(&mut self.store, h).unwrap()
    }
    fn error_get(&mut self) -> u64 {
        self.f.error_get.call(&mut self.store, ()).unwrap()
    }
    fn memory_bytes(&mut self) -> u64 {
        self.f.memory_bytes.call(&mut self.store, ()).unwrap()
    }
    fn read(&mut self, h: u64, len: u64) -> Vec<u8> {
        let data = self.memory.data(&self.store);
        data[h as usize..(h + len) as usize].to_vec()
    }
    fn write(&mut self, h: u64, data: &[u8]) {
        self.memory
            .write(&mut self.store, h as usize, data)
            .unwrap()
    }
    fn memory_size(&mut self) -> u64 {
        self.memory.data_size(&self.store) as u64
    }
}

/// The component under test, through the bindings over `wit/`.
struct ComponentDriver {
    store: Store<Limit>,
    k: bindings::Kernel,
}

impl ComponentDriver {
    fn new(max_memory: usize) -> Self {
        let engine = engine();
        let component = Component::new(&engine, artifacts::KERNEL_COMPONENT).unwrap();
        let mut store = Store::new(&engine, Limit { max: max_memory });
        store.limiter(|l| l);
        let linker = ComponentLinker::new(&engine);
        let k = bindings::Kernel::instantiate(&mut store, &component, &linker).unwrap();
        ComponentDriver { store, k }
    }
}

macro_rules! raw {
    ($self:ident . $f:ident ( $($a:expr),* )) => {
        $self.k.extism_kernel_raw().$f(&mut $self.store, $($a),*).unwrap()
    };
}

impl Driver for ComponentDriver {
    fn alloc(&mut self, n: u64) -> u64 {
        raw!(self.call_alloc(n))
    }
    fn free(&mut self, h: u64) {
        raw!(self.call_free(h))
    }
    fn length(&mut self, h: u64) -> u64 {
        raw!(self.call_length(h))
    }
    fn length_unsafe(&mut self, h: u64) -> u64 {
        raw!(self.call_length_unsafe(h))
    }
    fn load_u8(&mut self, p: u64) -> u8 {
        raw!(self.call_load_u8(p))
    }
    fn load_u64(&mut self, p: u64) -> u64 {
        raw!(self.call_load_u64(p))
    }
    fn store_u8(&mut self, p: u64, x: u8) {
        raw!(self.call_store_u8(p, x))
    }
    fn store_u64(&mut self, p: u64, x: u64) {
        raw!(self.call_store_u64(p, x))
    }
    fn input_load_u8(&mut self, o: u64) -> u8 {
        raw!(self.call_input_load_u8(o))
    }
    fn input_load_u64(&mut self, o: u64) -> u64 {
        raw!(self.call_input_load_u64(o))
    }
    fn input_set(&mut self, h: u64, n: u64) {
        raw!(self.call_input_set(h, n))
    }
    fn output_set(&mut self, p: u64, n: u64) {
        raw!(self.call_output_set(p, n))
    }
    fn input_length(&mut self) -> u64 {
        raw!(self.call_input_length())
    }
    fn input_offset(&mut self) -> u64 {
        raw!(self.call_input_offset())
    }
    fn output_length(&mut self) -> u64 {
        raw!(self.call_output_length())
    }
    fn output_offset(&mut self) -> u64 {
        raw!(self.call_output_offset())
    }
    fn reset(&mut self) {
        raw!(self.call_reset())
    }
    fn error_set(&mut self, h: u64) {
        raw!(self.call_error_set(h))
    }
    fn error_get(&mut self) -> u64 {
        raw!(self.call_error_get())
    }
    fn memory_bytes(&mut self) -> u64 {
        raw!(self.call_memory_bytes())
    }
    fn read(&mut self, h: u64, len: u64) -> Vec<u8> {
        let b = self.k.extism_kernel_bulk();
        b.call_read(&mut self.store, h, 0, len).unwrap().unwrap()
    }
    fn write(&mut self, h: u64, data: &[u8]) {
        let b = self.k.extism_kernel_bulk();
        b.call_write(&mut self.store, h, 0, data).unwrap().unwrap()
    }
    fn memory_size(&mut self) -> u64 {
        // The arena starts one word in (offset 0 is the null handle) and `memory_bytes` counts
        // everything above that.
        let m = self.memory_bytes();
        if m == 0 { 0 } else { m + 8 }
    }
}

const UNLIMITED: usize = 1 << 32;

/// The kernel's memory as the host sees it, where the host can see it.
trait HostView {
    /// The whole linear memory of the kernel (the core module's); `None` for the component,
    /// whose memory is not exported.
    fn raw_memory(&self) -> Option<&[u8]> {
        None
    }
}

impl HostView for CoreDriver {
    fn raw_memory(&self) -> Option<&[u8]> {
        Some(self.memory.data(&self.store))
    }
}

impl HostView for ComponentDriver {}

/// A wasm kernel driven in lockstep with a native twin (see the file's docs). Answers are the
/// wasm kernel's; the first disagreement is kept and reported by [`Driver::check`].
struct Lockstep<D> {
    wasm: D,
    /// The native kernel laid out like the wasm one, or `None` where the wasm kernel's memory
    /// limit cannot be imitated (the component's arena shares its memory with other data).
    twin: Option<Kernel<VecMemory>>,
    /// Where the wasm kernel's heap starts.
    lo: u64,
    mismatch: Option<String>,
    /// Compare the core module's memory with the twin's every this many actions.
    compare_every: u64,
    checks: u64,
    memory_compares: u64,
    calls: u64,
    /// `alloc` of a size that could fit (1 to `MAX_ALLOC`) that returned 0: memory was full.
    refused_allocs: u64,
}

impl<D: Driver + HostView> Lockstep<D> {
    /// `make` builds a fresh wasm kernel: a first one shows where the heap starts and how
    /// big memory is at the start; the second is the one driven. `max_bytes` is the wasm
    /// kernel's memory limit, which the twin copies when `twin` is set.
    fn new(make: impl Fn() -> D, max_bytes: usize, twin: bool) -> Self {
        let mut probe = make();
        assert_ne!(probe.alloc(1), 0, "the kernel cannot allocate one byte");
        let size = probe.memory_size();
        let lo = size - probe.memory_bytes();
        drop(probe);
        let twin = twin.then(|| {
            let pages = max_bytes as u64 / PAGE_SIZE;
            Kernel::new(VecMemory::new(size / PAGE_SIZE, pages, lo))
        });
        let mut wasm = make();
        // Lay both heaps out (the component makes its arena at the first call that needs it)
        // with the same calls, so that their memories start equal.
        wasm.alloc(1);
        wasm.reset();
        let twin = twin.map(|mut t| {
            Driver::alloc(&mut t, 1);
            Driver::reset(&mut t);
            t
        });
        Lockstep {
            wasm,
            twin,
            lo,
            mismatch: None,
            compare_every: 4096,
            checks: 0,
            memory_compares: 0,
            calls: 0,
            refused_allocs: 0,
        }
    }

    fn agree<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        wasm: &T,
        twin: &T,
    ) {
        if wasm != twin && self.mismatch.is_none() {
            let what = what();
            self.mismatch = Some(format!(
                "{what}: wasm kernel {wasm:?}, native twin {twin:?}"
            ));
        }
    }

    /// The core module's memory from the heap start to the end equals the twin's, byte for
    /// byte: block bytes, free space, and the metadata block (records and hash index).
    fn compare_memory(&mut self) -> Result<(), String> {
        let (Some(twin), Some(wasm)) = (&self.twin, self.wasm.raw_memory()) else {
            return Ok(());
        };
        self.memory_compares += 1;
        let mem = twin.heap().memory();
        let end = mem.size();
        if wasm.len() as u64 != end {
            return Err(format!("memory is {} bytes, the twin's {end}", wasm.len()));
        }
        // SAFETY: by `Memory`'s contract, `at(off)` for `off < size()` points to
        // `size() - off` initialised bytes; `lo < end` (the heap lies inside the memory), and
        // the shared borrow of the twin keeps them unchanged while the slice lives.
        let theirs = unsafe {
            std::slice::from_raw_parts(mem.at(self.lo as usize), (end - self.lo) as usize)
        };
        let ours = &wasm[self.lo as usize..];
        match ours.iter().zip(theirs).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(format!(
                "kernel memory differs from the twin's at byte {}",
                self.lo + i as u64
            )),
        }
    }
}

/// Calls the export on the wasm kernel and on the twin, and compares the answers.
macro_rules! both {
    ($self:ident . $f:ident ( $($a:ident),* )) => {{
        $self.calls += 1;
        let w = $self.wasm.$f($($a),*);
        if let Some(t) = $self.twin.as_mut() {
            let t = Driver::$f(t, $($a),*);
            $self.agree(|| format!(concat!(stringify!($f), "{:?}"), ($($a,)*)), &w, &t);
        }
        w
    }};
}

impl<D: Driver + HostView> Driver for Lockstep<D> {
    fn alloc(&mut self, n: u64) -> u64 {
        let h = both!(self.alloc(n));
        if h == 0 && (1..=kernel_core::MAX_ALLOC).contains(&n) {
            self.refused_allocs += 1;
        }
        h
    }
    fn free(&mut self, h: u64) {
        both!(self.free(h))
    }
    fn length(&mut self, h: u64) -> u64 {
        both!(self.length(h))
    }
    fn length_unsafe(&mut self, h: u64) -> u64 {
        both!(self.length_unsafe(h))
    }
    fn load_u8(&mut self, p: u64) -> u8 {
        both!(self.load_u8(p))
    }
    fn load_u64(&mut self, p: u64) -> u64 {
        both!(self.load_u64(p))
    }
    fn store_u8(&mut self, p: u64, x: u8) {
        both!(self.store_u8(p, x))
    }
    fn store_u64(&mut self, p: u64, x: u64) {
        both!(self.store_u64(p, x))
    }
    fn input_load_u8(&mut self, o: u64) -> u8 {
        both!(self.input_load_u8(o))
    }
    fn input_load_u64(&mut self, o: u64) -> u64 {
        both!(self.input_load_u64(o))
    }
    fn input_set(&mut self, h: u64, n: u64) {
        both!(self.input_set(h, n))
    }
    fn output_set(&mut self, p: u64, n: u64) {
        both!(self.output_set(p, n))
    }
    fn input_length(&mut self) -> u64 {
        both!(self.input_length())
    }
    fn input_offset(&mut self) -> u64 {
        both!(self.input_offset())
    }
    fn output_length(&mut self) -> u64 {
        both!(self.output_length())
    }
    fn output_offset(&mut self) -> u64 {
        both!(self.output_offset())
    }
    fn reset(&mut self) {
        both!(self.reset())
    }
    fn error_set(&mut self, h: u64) {
        both!(self.error_set(h))
    }
    fn error_get(&mut self) -> u64 {
        both!(self.error_get())
    }
    fn memory_bytes(&mut self) -> u64 {
        both!(self.memory_bytes())
    }
    fn read(&mut self, h: u64, len: u64) -> Vec<u8> {
        both!(self.read(h, len))
    }
    fn write(&mut self, h: u64, data: &[u8]) {
        self.wasm.write(h, data);
        if let Some(t) = self.twin.as_mut() {
            Driver::write(t, h, data);
        }
    }
    fn memory_size(&mut self) -> u64 {
        let w = self.wasm.memory_size();
        if let Some(t) = self.twin.as_mut() {
            let t = Driver::memory_size(t);
            self.agree(|| "memory size".into(), &w, &t);
        }
        w
    }
    fn check(&mut self) -> Result<(), String> {
        if let Some(m) = self.mismatch.take() {
            return Err(m);
        }
        if let Some(t) = &self.twin {
            t.heap()
                .check_invariants()
                .map_err(|e| format!("twin: {e}"))?;
        }
        self.checks += 1;
        if self.checks.is_multiple_of(self.compare_every) {
            self.compare_memory()?;
        }
        Ok(())
    }
}

/// Actions per kernel form in the hostile stress tests: `STRESS_ACTIONS`, default 1 000 000.
fn stress_actions() -> u64 {
    std::env::var("STRESS_ACTIONS")
        .ok()
        .map(|v| v.parse().expect("STRESS_ACTIONS is a number"))
        .unwrap_or(1_000_000)
}

/// Runs `n` seeded hostile actions on `d`, then a reset and a free of `u64::MAX`; prints the
/// figures (`cargo test -- --nocapture` shows them).
fn stress<D: Driver + HostView>(name: &str, d: &mut Lockstep<D>, seed: u64, n: u64) -> Runner {
    let start = Instant::now();
    let mut r = Runner {
        full_check_every: 4096,
        max_live: 500,
        ..Runner::default()
    };
    r.run(d, &mut SplitMix64(seed), n)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    r.step(d, Action::Reset).unwrap();
    r.step(d, Action::Free(Value::Raw(u64::MAX))).unwrap();
    d.compare_memory().unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!(
        "{name}: {} actions ({} kernel calls, {} refused allocs), {} memory comparisons, \
         {:.1} s",
        r.actions,
        d.calls,
        d.refused_allocs,
        d.memory_compares,
        start.elapsed().as_secs_f64()
    );
    r
}

#[test]
fn core_module_hostile_actions_in_lockstep() {
    let mut d = Lockstep::new(|| CoreDriver::new(UNLIMITED), UNLIMITED, true);
    let n = stress_actions();
    stress("core module", &mut d, 0x5EED, n);
    assert!(d.memory_compares >= n / 4096, "memory was compared");
}

#[test]
fn component_hostile_actions_in_lockstep() {
    let mut d = Lockstep::new(|| ComponentDriver::new(UNLIMITED), UNLIMITED, true);
    stress("component", &mut d, 0xC0FFEE, stress_actions());
}

#[test]
fn hostile_actions_under_a_memory_limit_refuse_allocs_and_never_trap() {
    // The core module's limit is imitated exactly by the twin; the component's arena shares
    // its memory with the canonical ABI's buffers, so there the shadow model is the check.
    let n = 100_000;
    let mut core = Lockstep::new(|| CoreDriver::new(1 << 20), 1 << 20, true);
    stress("core module, 1 MiB", &mut core, 0x11, n);
    let mut component = Lockstep::new(|| ComponentDriver::new(4 << 20), 4 << 20, false);
    stress("component, 4 MiB", &mut component, 0x12, n);
    for (form, refused) in [
        ("core", core.refused_allocs),
        ("component", component.refused_allocs),
    ] {
        assert!(refused > 0, "{form}: the memory limit was never reached");
    }
}

/// Every test runs once per kernel form.
macro_rules! contract {
    ($($name:ident($d:ident) $body:block)*) => {
        mod core_module {
            use super::*;
            $(#[test] fn $name() { let mut $d = CoreDriver::new(UNLIMITED); $body })*
        }
        mod component {
            use super::*;
            $(#[test] fn $name() { let mut $d = ComponentDriver::new(UNLIMITED); $body })*
        }
    };
}

contract! {
    alloc_zero_is_null_and_lengths_are_exact(d) {
        assert_eq!(d.alloc(0), 0);
        assert_eq!(d.length(0), 0);
        for n in [1, 7, 8, 9, 100, 4096, 65535, 65536, 65537, 300_000] {
            let h = d.alloc(n);
            assert_ne!(h, 0);
            assert_eq!(d.length(h), n);
            assert_eq!(d.length_unsafe(h), n);
            for k in 1..=4 {
                assert_eq!(d.length(h + k), 0);
            }
        }
    }

    freed_block_is_reused_and_small_excess_not_split(d) {
        let h = d.alloc(65535);
        let _guard = d.alloc(10);
        d.free(h);
        assert_eq!(d.length(h), 0);
        assert_eq!(d.alloc(65535), h);
        d.free(h);
        assert_eq!(d.alloc(65535 - 24), h);
    }

    reset_gives_the_first_handle_of_a_fresh_kernel(d) {
        let first = d.alloc(100);
        let others: Vec<u64> = (0..300).map(|i| d.alloc(1 + i * 13)).collect();
        d.reset();
        for h in others {
            assert_eq!(d.length(h), 0);
        }
        assert_eq!(d.length(first), 0);
        assert_eq!(d.alloc(100), first);
    }

    loads_and_stores_are_little_endian(d) {
        let p = d.alloc(16);
        d.store_u64(p, 999);
        assert_eq!(d.load_u8(p), 0xE7);
        assert_eq!(d.load_u8(p + 1), 0x03);
        for i in 0..8 {
            d.store_u8(p + 8 + i, i as u8);
        }
        assert_eq!(d.load_u64(p + 8), 0x0706_0504_0302_0100);
    }

    out_of_bounds_never_traps(d) {
        let h = d.alloc(8);
        for p in [u64::MAX, u64::MAX - 7, 1 << 32, (1 << 32) - 1, (1 << 32) - 7] {
            assert_eq!(d.load_u8(p), 0);
            assert_eq!(d.load_u64(p), 0);
            d.store_u8(p, 1);
            d.store_u64(p, 1);
        }
        d.input_set(h, 8);
        assert_eq!(d.input_load_u8(8), 0);
        assert_eq!(d.input_load_u64(1), 0);
        assert_eq!(d.input_load_u64(u64::MAX), 0);
    }

    error_set_get_and_clear(d) {
        let h = d.alloc(5);
        d.error_set(h);
        assert_eq!(d.error_get(), h);
        d.error_set(0);
        assert_eq!(d.error_get(), 0);
    }

    freeing_the_input_empties_it(d) {
        let h = d.alloc(5);
        d.write(h, b"hello");
        d.input_set(h, 5);
        assert_eq!(d.input_length(), 5);
        assert_eq!(d.input_load_u8(4), b'o');
        let off = d.input_offset();
        d.free(off);
        assert_eq!(d.input_length(), 0);
    }

    alloc_size_wrap_returns_zero(d) {
        for n in [u64::MAX, u64::MAX - 12, 1 << 63, 1 << 32] {
            assert_eq!(d.alloc(n), 0, "alloc({n})");
        }
        let a = d.alloc(8);
        let b = d.alloc(8);
        assert!(b >= a + 8);
    }

}

#[test]
fn core_module_bound_is_exclusive_at_memory_end() {
    let mut d = CoreDriver::new(UNLIMITED);
    d.alloc(1);
    let end = d.memory_size();
    d.store_u8(end - 1, 0xAB);
    assert_eq!(d.load_u8(end - 1), 0xAB);
    assert_eq!(d.load_u8(end), 0);
    d.store_u8(end, 1);
    assert_eq!(d.load_u64(end - 7), 0);
}

#[test]
fn exhausted_memory_returns_zero_and_reset_recovers() {
    let results = [
        exhaust(&mut CoreDriver::new(4 << 20)),
        exhaust(&mut ComponentDriver::new(8 << 20)),
    ];
    for (count, first, after_reset) in results {
        assert!(count > 0, "some blocks fit");
        assert_eq!(first, after_reset, "reset recovers the whole heap");
    }
}

/// Allocates 100 KB blocks until `alloc` returns 0; checks the kernel still answers.
fn exhaust(d: &mut impl Driver) -> (u64, u64, u64) {
    let first = d.alloc(100_000);
    let mut count = 1;
    while d.alloc(100_000) != 0 {
        count += 1;
        assert!(count < 10_000, "the limit is never hit");
    }
    assert_ne!(d.alloc(16), 0, "small blocks still fit in the last page");
    d.reset();
    (count, first, d.alloc(100_000))
}

/// The 4 GiB address-space edge, on the core module (whose memory may really grow that far;
/// wasmtime reserves it and only touched pages cost anything). The component's arena is a
/// zero-filled buffer, so the same test there would write 4 GiB; its arithmetic is the same
/// kernel-core code, covered natively by `alloc_size_wrap_returns_zero`.
#[test]
fn core_module_allocations_near_4_gib_return_zero_and_never_wrap() {
    const GIB: u64 = 1 << 30;
    const EDGE: u64 = 1 << 32;
    let mut d = CoreDriver::new(UNLIMITED);
    let first = d.alloc(100);
    let mut blocks = Vec::new();
    loop {
        let h = d.alloc(GIB);
        if h == 0 {
            break;
        }
        assert!(h + GIB <= EDGE, "block {h} passes the 4 GiB edge");
        blocks.push(h);
        assert!(
            blocks.len() < 4,
            "four 1 GiB blocks cannot fit beside the kernel's data"
        );
    }
    assert_eq!(blocks.len(), 3);
    // The largest block that still fits, by bisection; each probe that fits is freed again.
    let (mut fits, mut too_big) = (1u64, GIB);
    while too_big - fits > 1 {
        let n = fits + (too_big - fits) / 2;
        let h = d.alloc(n);
        if h == 0 {
            too_big = n;
        } else {
            assert!(h + n <= EDGE, "block {h}+{n} passes the edge");
            d.free(h);
            fits = n;
        }
    }
    let h = d.alloc(fits);
    assert!(h != 0 && h + fits <= EDGE && d.memory_size() <= EDGE);
    assert_eq!(d.length(h), fits);
    d.store_u8(h + fits - 1, 0xEE);
    assert_eq!(
        d.load_u8(h + fits - 1),
        0xEE,
        "the last byte is inside memory"
    );
    assert_eq!(d.load_u64(EDGE - 7), 0, "a word across the edge is refused");
    for n in [
        fits,
        GIB,
        kernel_core::MAX_ALLOC,
        EDGE - h,
        EDGE - h - 8,
        u64::MAX - h + 1,
    ] {
        assert_eq!(d.alloc(n), 0, "alloc({n}) at the edge");
    }
    let mut small = 0;
    while d.alloc(8) != 0 {
        small += 1;
        assert!(small < 1 << 20, "small blocks never run out");
    }
    assert!(d.memory_size() <= EDGE);
    for &b in &blocks {
        assert_eq!(d.length(b), GIB, "1 GiB blocks are intact");
    }
    d.reset();
    assert_eq!(d.alloc(100), first, "reset recovers the whole heap");
}

/// Regression (hostile.rs `traps_inside_kernel_calls_never_wear_the_kernel_out`): a trap
/// inside a kernel function that had taken a frame on the shadow stack skipped the epilogue
/// giving it back, so every such trap lowered the core module's stack pointer for good. The
/// kernel now keeps no frames there: no function sets the stack pointer (the module's only
/// mutable `i32` global).
#[test]
fn core_module_never_moves_its_stack_pointer() {
    use wasmparser::{Operator, Parser, Payload, ValType};
    let mut stack_pointers = Vec::new();
    let mut setters = Vec::new();
    let mut func = 0;
    for payload in Parser::new(0).parse_all(artifacts::KERNEL_CORE) {
        match payload.unwrap() {
            Payload::GlobalSection(globals) => {
                for (i, g) in globals.into_iter().enumerate() {
                    let ty = g.unwrap().ty;
                    if ty.mutable && ty.content_type == ValType::I32 {
                        stack_pointers.push(i as u32);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().unwrap();
                while !ops.eof() {
                    if let Operator::GlobalSet { global_index } = ops.read().unwrap()
                        && stack_pointers.contains(&global_index)
                    {
                        setters.push(func);
                    }
                }
                func += 1;
            }
            _ => {}
        }
    }
    assert!(func > 20, "the code section was read");
    assert!(
        setters.is_empty(),
        "functions {setters:?} move the stack pointer (globals {stack_pointers:?})"
    );
}

#[test]
fn core_module_exports_exactly_the_abi_and_is_small() {
    let wasm = artifacts::KERNEL_CORE;
    kernel_build::postlink::check_kernel_module(wasm).unwrap();
    assert!(
        wasm.len() <= 4096,
        "the core module is {} bytes",
        wasm.len()
    );
    let engine = engine();
    let module = Module::new(&engine, wasm).unwrap();
    for export in module.exports() {
        if let Some(m) = export.ty().memory() {
            assert!(m.minimum() <= 2, "declares {} initial pages", m.minimum());
        }
    }
}

#[test]
fn component_world_is_the_one_in_wit() {
    let decoded = wit_component::decode(artifacts::KERNEL_COMPONENT).unwrap();
    let wit_parser::decoding::DecodedWasm::Component(resolve, world) = &decoded else {
        panic!("the artifact is not a component");
    };
    let world = &resolve.worlds[*world];
    let mut ours = wit_parser::Resolve::default();
    let (pkg, _) = ours
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
        .unwrap();
    let kernel = ours.select_world(&[pkg], Some("kernel")).unwrap();
    let expect = &ours.worlds[kernel];
    assert!(world.imports.is_empty(), "the component imports nothing");
    let names = |r: &wit_parser::Resolve, w: &wit_parser::World| {
        let mut v: Vec<String> = w.exports.keys().map(|k| r.name_world_key(k)).collect();
        v.sort();
        v
    };
    assert_eq!(names(resolve, world), names(&ours, expect));
    // Every exported interface has the same functions with the same types.
    for (key, item) in &expect.exports {
        let wit_parser::WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let name = ours.name_world_key(key);
        let theirs = world
            .exports
            .iter()
            .find(|(k, _)| resolve.name_world_key(k) == name)
            .map(|(_, i)| match i {
                wit_parser::WorldItem::Interface { id, .. } => id,
                _ => panic!("{name} is not an interface"),
            })
            .unwrap();
        let a = &ours.interfaces[*id];
        let b = &resolve.interfaces[*theirs];
        let sig = |r: &wit_parser::Resolve, f: &wit_parser::Function| {
            let params: Vec<String> = f
                .params
                .iter()
                .map(|p| format!("{}:{:?}", p.name, short(r, &p.ty)))
                .collect();
            format!(
                "{}({}) -> {:?}",
                f.name,
                params.join(","),
                f.result.as_ref().map(|t| short(r, t))
            )
        };
        let mut fa: Vec<String> = a.functions.values().map(|f| sig(&ours, f)).collect();
        let mut fb: Vec<String> = b.functions.values().map(|f| sig(resolve, f)).collect();
        fa.sort();
        fb.sort();
        assert_eq!(fa, fb, "interface {name}");
    }
}

/// A type, named structurally enough to compare two resolves.
fn short(r: &wit_parser::Resolve, t: &wit_parser::Type) -> String {
    match t {
        wit_parser::Type::Id(id) => {
            let def = &r.types[*id];
            match &def.name {
                Some(n) => n.clone(),
                None => format!("{:?}", def.kind.as_str()),
            }
        }
        other => format!("{other:?}"),
    }
}

//! The kernel contract (KERNEL-ABI.md), checked against the built artifacts through wasmtime:
//! the core module (typed functions) and the component (bindings over `wit/`), one suite for
//! both. `KERNEL_WASM=path cargo test -p host-demo --test contract` runs the core-module
//! half against any other kernel `.wasm` (upstream's, for instance) instead of ours.

use host_demo::artifacts;
use host_demo::backend::component::bindings;
use kernel_core::testing::{Action, Driver, Runner, SplitMix64, Value};
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

    seeded_hostile_actions_keep_the_model(d) {
        let mut r = Runner { full_check_every: 2000, max_live: 500, ..Runner::default() };
        r.run(&mut d, &mut SplitMix64(0x5EED), 30_000).unwrap();
        r.step(&mut d, Action::Reset).unwrap();
        r.step(&mut d, Action::Free(Value::Raw(u64::MAX))).unwrap();
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

//! The kernel contract (KERNEL-ABI.md), checked against the built artifacts through wasmtime:
//! the core module (typed functions) and the component (bindings over `wit/`), one suite for
//! both. `KERNEL_WASM=path cargo test -p plugin-host --test contract` runs the core-module
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

use host_fixtures::drivers::{
    ComponentDriver, CoreDriver, HostView, Lockstep, UNLIMITED, core_wasm, engine,
};
use kernel_core::testing::{Action, Driver, Runner, SplitMix64, Value};
use plugin_host::artifacts;
use std::time::Instant;
use wasmtime::Module;

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

// The contract suite (KERNEL-ABI.md), shared with the native kernel: once per built form.
kernel_core::contract_suite!(core_module, || CoreDriver::new(UNLIMITED));
kernel_core::contract_suite!(component, || ComponentDriver::new(UNLIMITED));
// The core module as plugin-host runs it: the fast build, without `extism_context`.
kernel_core::contract_suite!(hosted_core_module, || CoreDriver::from_wasm(
    artifacts::KERNEL_CORE_HOSTED,
    UNLIMITED
));

/// The core module as plugin-host runs it is the fast build of the core module (the ABI
/// exactly, a return area, no bigger than 8 KiB) minus `extism_context` and nothing else: no
/// GC reference left (so wasmtime gives its stores no GC heap), the same functions, the same
/// return area.
#[test]
fn hosted_core_module_is_the_fast_core_module_without_its_context_global() {
    let (core, hosted) = (artifacts::KERNEL_CORE_FAST, artifacts::KERNEL_CORE_HOSTED);
    kernel_build::postlink::check_kernel_module(core).unwrap();
    assert_eq!(hosted, wasm_util::without_context_global(core).unwrap());
    assert!(
        core.len() <= 8192,
        "the fast core module is {} bytes",
        core.len()
    );
    assert!(wasm_util::return_area(core).unwrap().is_some());
    let text = |w: &[u8]| wasmprinter::print_bytes(w).unwrap();
    let (core_text, hosted_text) = (text(core), text(hosted));
    assert!(!hosted_text.contains("externref"), "{hosted_text}");
    let without: Vec<&str> = core_text
        .lines()
        .filter(|l| !l.contains("externref") && !l.contains("extism_context"))
        .collect();
    assert_eq!(hosted_text.lines().collect::<Vec<_>>(), without);
    assert_eq!(
        wasm_util::return_area(hosted).unwrap(),
        wasm_util::return_area(core).unwrap()
    );
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
    never_moves_its_stack_pointer(&core_wasm());
    never_moves_its_stack_pointer(artifacts::KERNEL_CORE_FAST);
}

fn never_moves_its_stack_pointer(wasm: &[u8]) {
    use wasmparser::{Operator, Parser, Payload, ValType};
    let mut stack_pointers = Vec::new();
    let mut setters = Vec::new();
    let mut func = 0;
    for payload in Parser::new(0).parse_all(wasm) {
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

/// The core module's return area (`kernel_abi::RETURN_AREA_SYMBOL`), where composed plugins'
/// glue writes the canonical ABI's return areas instead of allocating a block each time, lies
/// outside the heap: a plugin's stores there are ignored, its loads read `0`, and no block
/// ever overlaps it, before or after a reset.
#[test]
fn core_module_return_area_is_outside_the_heap() {
    let at = wasm_util::return_area(&core_wasm())
        .unwrap()
        .expect("the core module records its return area") as u64;
    let end = at + kernel_abi::RETURN_AREA_BYTES as u64;
    let mut d = CoreDriver::new(UNLIMITED);
    let zeros = vec![0; kernel_abi::RETURN_AREA_BYTES as usize];
    let area = |d: &mut CoreDriver| {
        let mut bytes = zeros.clone();
        d.memory.read(&d.store, at as usize, &mut bytes).unwrap();
        bytes
    };
    for round in 0..2 {
        for p in (at..end).step_by(8) {
            d.store_u64(p, u64::MAX);
            d.store_u8(p, 0xFF);
            assert_eq!(
                (d.load_u64(p), d.load_u8(p)),
                (0, 0),
                "round {round}, at {p}"
            );
        }
        assert_eq!(
            area(&mut d),
            zeros,
            "round {round}: a store reached the area"
        );
        for n in [1, 8, 24, 100, 4096, 65536, 300_000] {
            let h = d.alloc(n);
            assert!(
                h != 0 && (h + n <= at || h >= end),
                "block {h} of {n} bytes overlaps the area [{at}, {end})"
            );
        }
        d.reset();
    }
}

#[test]
fn core_module_exports_exactly_the_abi_and_is_small() {
    let wasm = &core_wasm()[..];
    kernel_build::postlink::check_kernel_module(wasm).unwrap();
    // 4096 until the second hardening review: growing the record table where it lies (so
    // that `alloc` no longer fails near the memory limit with plenty free) added 224 bytes.
    assert!(
        wasm.len() <= 4352,
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

/// The component's `bulk` interface, every function and every `error-code` (hardening round
/// 2: it had no direct test).
#[test]
fn component_bulk_interface_and_every_error_code() {
    use plugin_host::backend::component::bindings::exports::extism::kernel::types::ErrorCode;
    let mut d = ComponentDriver::new(UNLIMITED);
    let b = d.k.extism_kernel_bulk();
    let s = &mut d.store;
    // alloc-bytes / read / write
    assert_eq!(b.call_alloc_bytes(&mut *s, b"").unwrap(), Ok(0));
    let h = b.call_alloc_bytes(&mut *s, b"hello").unwrap().unwrap();
    assert_ne!(h, 0);
    assert_eq!(b.call_read(&mut *s, h, 0, 5).unwrap().unwrap(), b"hello");
    assert_eq!(b.call_read(&mut *s, h, 1, 3).unwrap().unwrap(), b"ell");
    assert_eq!(b.call_read(&mut *s, h, 5, 0).unwrap().unwrap(), b"");
    assert_eq!(
        b.call_read(&mut *s, h, 3, 5).unwrap(),
        Err(ErrorCode::OutOfBounds)
    );
    assert_eq!(
        b.call_read(&mut *s, h, u64::MAX, 2).unwrap(),
        Err(ErrorCode::OutOfBounds)
    );
    assert_eq!(
        b.call_read(&mut *s, h + 1, 0, 1).unwrap(),
        Err(ErrorCode::InvalidHandle)
    );
    assert_eq!(
        b.call_read(&mut *s, 0, 0, 0).unwrap(),
        Err(ErrorCode::InvalidHandle)
    );
    b.call_write(&mut *s, h, 1, b"EL").unwrap().unwrap();
    assert_eq!(b.call_read(&mut *s, h, 0, 5).unwrap().unwrap(), b"hELlo");
    assert_eq!(
        b.call_write(&mut *s, h, 4, b"xx").unwrap(),
        Err(ErrorCode::OutOfBounds)
    );
    assert_eq!(
        b.call_write(&mut *s, 12345, 0, b"x").unwrap(),
        Err(ErrorCode::InvalidHandle)
    );
    // set-input / prepare-call
    let i = b.call_set_input(&mut *s, b"input").unwrap().unwrap();
    let raw = d.k.extism_kernel_raw();
    assert_eq!(raw.call_input_offset(&mut *s).unwrap(), i);
    assert_eq!(raw.call_input_length(&mut *s).unwrap(), 5);
    assert_eq!(b.call_set_input(&mut *s, b"").unwrap(), Ok(0));
    b.call_set_error(&mut *s, "old").unwrap().unwrap();
    b.call_prepare_call(&mut *s, b"abc").unwrap().unwrap();
    assert_eq!(raw.call_input_length(&mut *s).unwrap(), 3);
    assert_eq!(raw.call_input_load_u8(&mut *s, 2).unwrap(), b'c');
    assert_eq!(
        b.call_error(&mut *s).unwrap(),
        None,
        "prepare-call clears the error"
    );
    // prepare-call reset the heap: the input is the fresh kernel's first block, `h` again.
    assert_eq!(
        raw.call_input_offset(&mut *s).unwrap(),
        h,
        "prepare-call resets"
    );
    // output
    assert_eq!(b.call_output(&mut *s).unwrap().unwrap(), b"");
    let o = b.call_alloc_bytes(&mut *s, b"out!").unwrap().unwrap();
    raw.call_output_set(&mut *s, o, 4).unwrap();
    assert_eq!(b.call_output(&mut *s).unwrap().unwrap(), b"out!");
    raw.call_free(&mut *s, o).unwrap();
    raw.call_alloc(&mut *s, 1 << 20).unwrap();
    assert!(matches!(
        b.call_output(&mut *s).unwrap(),
        Ok(_) | Err(ErrorCode::OutOfBounds)
    ));
    // error / set-error
    b.call_set_error(&mut *s, "boom").unwrap().unwrap();
    assert_eq!(b.call_error(&mut *s).unwrap().as_deref(), Some("boom"));
    assert_ne!(raw.call_error_get(&mut *s).unwrap(), 0);
    raw.call_error_set(&mut *s, 0).unwrap();
    assert_eq!(b.call_error(&mut *s).unwrap(), None);
    // Out of memory, under a limit: blocks of 64 KiB until the arena cannot grow (each
    // call's list fits the component's own heap again, so the answer is the error code).
    let mut small = ComponentDriver::new(4 << 20);
    let b = small.k.extism_kernel_bulk();
    let chunk = vec![1u8; 64 << 10];
    let mut blocks = 0;
    let refused = loop {
        match b.call_alloc_bytes(&mut small.store, &chunk).unwrap() {
            Ok(_) => blocks += 1,
            Err(e) => break e,
        }
        assert!(blocks < 200, "4 MiB never ran out");
    };
    assert_eq!(refused, ErrorCode::OutOfMemory, "after {blocks} blocks");
    assert_eq!(
        b.call_set_input(&mut small.store, &chunk).unwrap(),
        Err(ErrorCode::OutOfMemory)
    );
    assert_eq!(
        b.call_set_error(&mut small.store, &"e".repeat(64 << 10))
            .unwrap(),
        Err(ErrorCode::OutOfMemory)
    );
    // prepare-call resets first: the same input fits again.
    b.call_prepare_call(&mut small.store, &chunk)
        .unwrap()
        .unwrap();
}

//! `cargo run -p host-demo --release --example raw_call_cost`: the per-call cost of one raw
//! kernel function (`length`) called from the host, on the core module and on the component,
//! in one run. (`make bench` will measure the plugin-side path as well.)

use plugin_host::artifacts;
use plugin_host::backend::component::bindings;
use std::time::Instant;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Instance, Module, Store};

fn main() -> wasmtime::Result<()> {
    let engine = Engine::default();
    let rounds = 200_000u32;

    let mut store = Store::new(&engine, ());
    let module = Module::new(&engine, artifacts::KERNEL_CORE_HOSTED)?;
    let i = Instance::new(&mut store, &module, &[])?;
    let alloc = i.get_typed_func::<u64, u64>(&mut store, "alloc")?;
    let length = i.get_typed_func::<u64, u64>(&mut store, "length")?;
    let h = alloc.call(&mut store, 100)?;
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(length.call(&mut store, h)?, 100);
    }
    let core_ns = t.elapsed().as_nanos() as f64 / rounds as f64;

    let mut store = Store::new(&engine, ());
    let component = Component::new(&engine, artifacts::KERNEL_COMPONENT)?;
    let k = bindings::Kernel::instantiate(&mut store, &component, &Linker::new(&engine))?;
    let raw = k.extism_kernel_raw();
    let h = raw.call_alloc(&mut store, 100)?;
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(raw.call_length(&mut store, h)?, 100);
    }
    let component_ns = t.elapsed().as_nanos() as f64 / rounds as f64;

    println!("length() from the host, {rounds} calls each:");
    println!("  core module: {core_ns:8.1} ns/call");
    println!(
        "  component:   {component_ns:8.1} ns/call ({:.2}x)",
        component_ns / core_ns
    );
    Ok(())
}

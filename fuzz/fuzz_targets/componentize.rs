//! `componentize` on generated modules: wasm-smith turns the fuzzer's bytes into a valid core
//! module, which `plugin_host::componentize::componentize` must either refuse with an error
//! or turn into a component that validates (wasmparser, default features; componentize
//! itself checks that its world has `plugin`'s one import and one export). Never a panic.
//!
//! Most modules are Extism-like: their imports are drawn from every kernel function and
//! every host function of `extism:host/env` with the ABI's types (`kernel_abi`'s tables) and
//! a few user host functions (`(i64) -> (i64)`, other modules), and their exports are one to
//! four functions `() -> i32` or `() -> ()` with names from a list or from the input (and now
//! and then a function of another type, or a memory). Some draw from a hostile list instead:
//! the ABI's names with wrong types, names `extism:host/env` does not have, WASI, imported
//! memories, tables and globals, which must be refused. The rest come from a configuration
//! drawn from the input (`wasm_smith::Config`'s own `Arbitrary`).
//!
//! When the input asks for it (one input in 32) and the module is small, the module is
//! first made to terminate (wasm-smith's `ensure_termination`: a fuel global checked at
//! every loop head and function entry, so even a start function ends), and the component is
//! instantiated with `plugin_host::ComposedPlugin` under a fuel limit, a memory limit and a
//! timeout, and each of its functions is called (and one it does not have): every call may
//! fail, none may panic in the host.
//!
//! `KERNEL_FUZZ_VERBOSE=1` prints what each input made and what componentize and the calls
//! answered.
//!
//! Slow by nature: every input composes and validates the whole kernel component and both
//! adapters (about 0.25 s under the sanitizers), and a run compiles the composition with
//! cranelift (about 2 s), hence one in 32.
#![no_main]

use kernel_abi::{Function, ValType};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use plugin_host::componentize::componentize;
use plugin_host::{ComposedPlugin, PluginOptions};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

/// Largest module that is instantiated and called (compiling the composition is the cost).
const RUN_MAX_BYTES: usize = 4 << 10;

/// Export names the Extism-like modules choose from (besides names from the input).
const NAMES: &[&str] = &[
    "run",
    "count_vowels",
    "_initialize",
    "_start",
    "call",
    "",
    "a b",
    "ünïcödé",
    "invoke",
    "memory",
];

fn wat_type(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
    }
}

/// `bytes` as a WAT string literal, every byte escaped.
fn wat_string(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for b in bytes {
        let _ = write!(s, "\\{b:02x}");
    }
    s.push('"');
    s
}

/// A function import of WAT: `module::name` of type `params -> results`.
fn import(module: &str, name: &str, params: &[&str], results: &[&str]) -> String {
    format!(
        "(import {} {} (func (param {}) (result {})))\n",
        wat_string(module.as_bytes()),
        wat_string(name.as_bytes()),
        params.join(" "),
        results.join(" ")
    )
}

fn abi_import(f: &Function) -> String {
    let params: Vec<&str> = f.params.iter().map(wat_type).collect();
    let results: Vec<&str> = f.results.iter().map(wat_type).collect();
    import(kernel_abi::ENV, f.name, &params, &results)
}

/// The imports a plugin of the ABI may have: every kernel and host function with its type,
/// and user host functions.
fn abi_imports() -> String {
    let mut wat = String::new();
    for f in kernel_abi::KERNEL_FUNCTIONS
        .iter()
        .chain(kernel_abi::HOST_FUNCTIONS)
    {
        wat.push_str(&abi_import(f));
    }
    for (module, name) in [
        (kernel_abi::USER, "my_host_fn"),
        ("other:module", "f"),
        ("", ""),
    ] {
        wat.push_str(&import(module, name, &["i64"], &["i64"]));
    }
    wat
}

/// What componentize must refuse: each ABI name with a type that is not its own, names of
/// `extism:host/env` that are neither kernel nor host functions, user functions of another
/// type, WASI, and imports that are not functions.
fn hostile_imports() -> String {
    let mut wat = String::new();
    for f in kernel_abi::KERNEL_FUNCTIONS
        .iter()
        .chain(kernel_abi::HOST_FUNCTIONS)
    {
        // One parameter too many.
        let mut params: Vec<&str> = f.params.iter().map(wat_type).collect();
        params.push("i32");
        let results: Vec<&str> = f.results.iter().map(wat_type).collect();
        wat.push_str(&import(kernel_abi::ENV, f.name, &params, &results));
    }
    wat.push_str(&import(kernel_abi::ENV, "allocate", &["i64"], &["i64"]));
    wat.push_str(&import(kernel_abi::ENV, "", &[], &[]));
    wat.push_str(&import(
        kernel_abi::USER,
        "two_args",
        &["i64", "i64"],
        &["i64"],
    ));
    wat.push_str(&import(
        kernel_abi::WASI_P1,
        "fd_write",
        &["i32"; 4],
        &["i32"],
    ));
    wat.push_str(&import(
        "wasi:cli/environment@0.2.0",
        "get-environment",
        &["i32"],
        &[],
    ));
    wat.push_str(r#"(import "extism:host/env" "memory" (memory 1))"#);
    wat.push_str(r#"(import "env" "table" (table 1 funcref))"#);
    wat.push_str(r#"(import "env" "global" (global i64))"#);
    wat
}

fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {body})")).expect("a valid WAT module")
}

/// The import lists, as the modules wasm-smith reads them from.
fn import_lists() -> &'static (Vec<u8>, Vec<u8>) {
    static LISTS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    LISTS.get_or_init(|| {
        let abi = abi_imports();
        (module(&abi), module(&format!("{abi}{}", hostile_imports())))
    })
}

/// The exports a generated module must have: its Extism functions' names (`names`) and a
/// module that has exactly those exports.
fn exports(u: &mut Unstructured) -> Result<(Vec<String>, Vec<u8>)> {
    let mut names = BTreeSet::new();
    let mut wat = String::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let name = if u.ratio(3, 4)? {
            u.choose(NAMES)?.to_string()
        } else {
            u.arbitrary::<String>()?
        };
        if !names.insert(name.clone()) {
            continue;
        }
        let ty = match u.int_in_range(0..=9)? {
            0..=6 => "(result i32)",
            7 | 8 => "",
            // Not an Extism function: componentize leaves it out.
            _ => "(param i64) (result i64)",
        };
        let _ = writeln!(
            wat,
            "(func (export {}) {ty} unreachable)",
            wat_string(name.as_bytes())
        );
    }
    if !names.contains("memory") && u.ratio(1, 2)? {
        wat.push_str(r#"(memory (export "memory") 1)"#);
    }
    Ok((names.into_iter().collect(), module(&wat)))
}

/// The configuration of an Extism-like module (`imports`: which list to draw from).
fn extism_like(
    u: &mut Unstructured,
    imports: &[u8],
    exports: Vec<u8>,
) -> Result<wasm_smith::Config> {
    Ok(wasm_smith::Config {
        available_imports: Some(imports.to_vec()),
        exports: Some(exports),
        max_funcs: 20,
        max_instructions: 200,
        max_memories: 1,
        max_memory32_bytes: 4 << 20,
        max_tables: 1,
        max_table_elements: 1000,
        max_data_segments: 8,
        max_element_segments: 8,
        max_globals: 8,
        // What plugins built with a PDK use; the rest now and then.
        gc_enabled: false,
        exceptions_enabled: u.ratio(1, 8)?,
        threads_enabled: false,
        memory64_enabled: u.ratio(1, 8)?,
        simd_enabled: u.ratio(1, 4)?,
        relaxed_simd_enabled: false,
        tail_call_enabled: u.ratio(1, 4)?,
        wide_arithmetic_enabled: false,
        reference_types_enabled: u.arbitrary()?,
        multi_value_enabled: u.arbitrary()?,
        ..wasm_smith::Config::default()
    })
}

/// A configuration drawn from the input, kept small.
fn arbitrary_config(u: &mut Unstructured) -> Result<wasm_smith::Config> {
    let mut config: wasm_smith::Config = u.arbitrary()?;
    config.max_funcs = config.max_funcs.min(30);
    config.max_instructions = config.max_instructions.min(300);
    config.max_memory32_bytes = config.max_memory32_bytes.min(4 << 20);
    config.max_memory64_bytes = config.max_memory64_bytes.min(4 << 20);
    config.max_table_elements = config.max_table_elements.min(1000);
    Ok(config)
}

/// Whether to print what each input does (`KERNEL_FUZZ_VERBOSE`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("KERNEL_FUZZ_VERBOSE").is_some())
}

/// One input: a module, componentized, maybe run.
fn one(u: &mut Unstructured) -> Result<()> {
    let (abi, hostile) = import_lists();
    let run = u.ratio(1, 32)?;
    let mode = u.int_in_range(0..=7)?;
    let (names, config) = match mode {
        0..=6 => {
            let (names, wanted) = exports(u)?;
            let imports = if mode == 6 { hostile } else { abi };
            (names, extism_like(u, imports, wanted)?)
        }
        _ => (Vec::new(), arbitrary_config(u)?),
    };
    let mut module = wasm_smith::Module::new(config, u)?;
    let run = run && module.ensure_termination(10_000).is_ok();
    let wasm = module.to_bytes();

    let componentized = componentize(&wasm);
    if verbose() {
        eprintln!(
            "mode {mode}, {} bytes, exports {names:?}: {:?}",
            wasm.len(),
            componentized.as_ref().map(Vec::len)
        );
    }
    let Ok(component) = componentized else {
        return Ok(());
    };
    if let Err(e) = wasmparser::Validator::new().validate_all(&component) {
        panic!("componentize gave a component that does not validate: {e}");
    }
    if !run || wasm.len() > RUN_MAX_BYTES {
        return Ok(());
    }
    let options = PluginOptions {
        fuel: Some(1_000_000),
        memory_max_pages: Some(512),
        timeout: Some(Duration::from_secs(2)),
        var_limit_bytes: 4096,
        ..PluginOptions::default()
    };
    let mut plugin = match ComposedPlugin::new(host_fixtures::fuel_runtime(), &component, options) {
        Ok(p) => p,
        Err(e) => {
            if verbose() {
                eprintln!("  ComposedPlugin::new: {e:#}");
            }
            return Ok(());
        }
    };
    let input: Vec<u8> = u.arbitrary()?;
    for name in names.iter().map(String::as_str).chain(["no such function"]) {
        let result = plugin.call(name, &input);
        if verbose() {
            eprintln!("  call {name:?}: {result:?}");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = one(&mut Unstructured::new(data));
});

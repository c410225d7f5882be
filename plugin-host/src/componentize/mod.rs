//! `host-demo componentize`: an unmodified Extism plugin as one self-contained component.
//!
//! A classic plugin is a core module that imports the kernel and the host functions from
//! `extism:host/env` and exports its functions as `() -> i32` (or `() -> ()`). [`componentize`]
//! makes it a component of world `plugin` (`wit/extism-plugin.wit`), which imports only the
//! value-based host services `extism:kernel/host` and exports `extism:kernel/entry`'s
//! `call(name, input)`.
//!
//! Inside, everything is linked at the core level (see [`component`]): the plugin's own
//! module, unchanged, is instantiated with the kernel's core module instance as its kernel
//! imports, so a `load_u64` or `store_u64` of the plugin is a direct call into the kernel,
//! with no component boundary on the way; its host functions are small [`glue`] functions
//! that pass kernel blocks to the host services as they are. The only lift and lower is at
//! the component's boundary, where the canonical ABI copies `call`'s input straight into a
//! kernel block and its output straight out of the output block.
//!
//! A plugin built for WASI preview 1 (imports of `wasi_snapshot_preview1`) gets wasmtime's
//! reactor adapter (`wasi-preview1-component-adapter-provider` 48.0.8), linked to the
//! plugin's memory as wit-component links it; the component then imports the WASI 0.2
//! interfaces the adapter uses too. Its initialiser (`_initialize`) runs once, before the
//! first call, from the entry glue.
//!
//! Refused, with an error naming the import: anything that is neither a kernel function nor
//! an Extism host function of `extism:host/env` with its ABI type, nor a user host function of
//! type `(i64) -> i64`, nor WASI preview 1; in particular other WASI modules, and imported
//! memories, tables and globals.

mod component;
pub mod glue;

use crate::artifacts;
use anyhow::{Context, Result, anyhow, bail, ensure};
use kernel_abi::{ENV, MEMORY, WASI_P1};
use wasm_util::wasm_types;
use wasmparser::{FuncType, Parser, Payload, TypeRef, ValType};

/// The full name of interface `name` of the `extism:kernel` package.
pub fn interface(name: &str) -> String {
    format!("extism:kernel/{name}@1.0.0")
}

/// Where a function import of the plugin is satisfied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The kernel's export of the same name.
    Kernel,
    /// The env glue's Extism host function of the same name.
    Host,
    /// The env glue's user host function number `.0`.
    User(u32),
    /// WASI preview 1 (`wasi_snapshot_preview1`): wasmtime's reactor adapter.
    Wasi,
}

/// What composing needs to know about a plugin.
#[derive(Debug, Default)]
struct Plan {
    /// Every function type, by type index.
    types: Vec<FuncType>,
    /// Every function import, in order: module, name, where it comes from.
    imports: Vec<(String, String, Target)>,
    /// The type index of every function import.
    import_types: Vec<u32>,
    /// The type index of every defined function.
    defined: Vec<u32>,
    /// The user host functions: (module, name), by env glue number.
    user: Vec<(String, String)>,
    /// The Extism functions: export name, function index, whether it returns an i32.
    functions: Vec<(String, u32, bool)>,
    /// The initialiser (`_initialize` or `__wasm_call_ctors`) to run before the first call.
    init: Option<String>,
    /// Whether the plugin exports its memory as `memory` (the WASI adapter works on it).
    memory_exported: bool,
}

impl Plan {
    /// The type of function `index`, imported or defined.
    fn type_of_function(&self, index: u32) -> Result<&FuncType> {
        let ty = match index.checked_sub(self.import_types.len() as u32) {
            None => self.import_types[index as usize],
            Some(i) => *self
                .defined
                .get(i as usize)
                .context("an export refers to a function that does not exist")?,
        };
        self.types
            .get(ty as usize)
            .context("a function refers to a type that is not a function type")
    }
}

fn type_text(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

/// Where the import `module::name` of type `ty` goes, or why it cannot be mapped.
fn map_import(
    module: &str,
    name: &str,
    ty: &FuncType,
    user: &mut Vec<(String, String)>,
) -> Result<Target> {
    let (params, results) = (ty.params(), ty.results());
    let refuse = |why: String| {
        anyhow!(
            "cannot componentize: the import `{module}::{name}` {} cannot be mapped: {why}",
            type_text(params, results)
        )
    };
    if module == ENV {
        // The host functions' core types are `extism:kernel/env`'s, once lowered.
        let expected = kernel_abi::kernel_function(name)
            .map(|f| (f, Target::Kernel))
            .or_else(|| kernel_abi::host_function(name).map(|f| (f, Target::Host)));
        let Some((f, target)) = expected else {
            return Err(refuse(format!(
                "`{ENV}` has no function `{name}` (neither a kernel function nor an Extism host function)"
            )));
        };
        let (p, r) = (wasm_types(f.params), wasm_types(f.results));
        if p != params || r != results {
            return Err(refuse(format!("its type should be {}", type_text(&p, &r))));
        }
        return Ok(target);
    }
    if module == WASI_P1 {
        return Ok(Target::Wasi);
    }
    if module.starts_with("wasi") {
        return Err(refuse(
            "of WASI, a composed plugin has preview 1 (`wasi_snapshot_preview1`) only".into(),
        ));
    }
    if params != [ValType::I64] || results != [ValType::I64] {
        return Err(refuse(
            "a user host function must have the type (i64) -> (i64) (one handle in, one out)"
                .into(),
        ));
    }
    user.push((module.to_string(), name.to_string()));
    Ok(Target::User(user.len() as u32 - 1))
}

/// What kind of item a non-function import is, for the error message.
fn kind_text(ty: &TypeRef) -> &'static str {
    match ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => "function",
        TypeRef::Table(_) => "table",
        TypeRef::Memory(_) => "memory",
        TypeRef::Global(_) => "global",
        TypeRef::Tag(_) => "tag",
    }
}

/// The first pass: types, imports and where they go, Extism functions.
fn analyze(plugin: &[u8]) -> Result<Plan> {
    let mut plan = Plan::default();
    for payload in Parser::new(0).parse_all(plugin) {
        match payload.context("reading the plugin")? {
            Payload::Version { encoding, .. } => ensure!(
                encoding == wasmparser::Encoding::Module,
                "cannot componentize: the plugin is not a core module (already a component?)"
            ),
            Payload::TypeSection(s) => {
                for ty in s.into_iter_err_on_gc_types() {
                    plan.types.push(ty.context("reading the plugin's types")?);
                }
            }
            Payload::ImportSection(s) => {
                for import in s.into_imports() {
                    let import = import?;
                    let TypeRef::Func(ty) = import.ty else {
                        bail!(
                            "cannot componentize: the import `{}::{}` is a {}, which cannot be mapped: a composed plugin imports only functions",
                            import.module,
                            import.name,
                            kind_text(&import.ty)
                        );
                    };
                    let func_type = plan
                        .types
                        .get(ty as usize)
                        .context("an import refers to a type that does not exist")?
                        .clone();
                    let target =
                        map_import(import.module, import.name, &func_type, &mut plan.user)?;
                    plan.imports
                        .push((import.module.to_string(), import.name.to_string(), target));
                    plan.import_types.push(ty);
                }
            }
            Payload::FunctionSection(s) => {
                for ty in s {
                    plan.defined.push(ty?);
                }
            }
            Payload::ExportSection(s) => {
                for export in s {
                    let export = export?;
                    if export.kind == wasmparser::ExternalKind::Memory && export.name == MEMORY {
                        plan.memory_exported = true;
                    }
                    if export.kind != wasmparser::ExternalKind::Func {
                        continue;
                    }
                    let ty = plan.type_of_function(export.index)?;
                    if ty.params().is_empty() && matches!(ty.results(), [] | [ValType::I32]) {
                        let returns_code = !ty.results().is_empty();
                        plan.functions
                            .push((export.name.to_string(), export.index, returns_code));
                    }
                }
            }
            _ => {}
        }
    }
    ensure!(
        !plan.functions.is_empty(),
        "cannot componentize: the plugin exports no Extism function (`() -> i32` or `() -> ()`)"
    );
    // A WASI reactor's (or a C/C++ module's) initialiser, as the core path finds it.
    plan.init = ["_initialize", "__wasm_call_ctors"]
        .into_iter()
        .find(|init| {
            plan.functions
                .iter()
                .any(|(name, _, returns_code)| name == init && !returns_code)
        })
        .map(str::to_string);
    Ok(plan)
}

/// What a composition depends on besides the plugin: this crate's version, the kernel's
/// core module, the WASI adapter and the component's text for a plan that reaches every
/// part of the glue. The
/// compilation cache keys composed plugins by it and the plugin's bytes, so a change of any
/// of them never loads a stale composition.
pub fn fingerprint() -> &'static [u8] {
    static FINGERPRINT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let plan = Plan {
            imports: vec![
                (ENV.into(), "alloc".into(), Target::Kernel),
                (ENV.into(), "config_get".into(), Target::Host),
                ("m".into(), "n".into(), Target::User(0)),
            ],
            user: vec![("m".into(), "n".into())],
            functions: vec![("f".into(), 0, true), ("_initialize".into(), 1, false)],
            init: Some("_initialize".into()),
            ..Plan::default()
        };
        [
            env!("CARGO_PKG_VERSION").as_bytes(),
            b"\0",
            artifacts::KERNEL_CORE_HOSTED,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            // The return area's address is the kernel's, whose bytes are above.
            component::text(&plan, 0).as_bytes(),
        ]
        .concat()
    })
}

/// The names of a component's imports and exports (interfaces by their full name).
pub fn component_world(component: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
    let wit_parser::decoding::DecodedWasm::Component(resolve, world) =
        wit_component::decode(component)?
    else {
        bail!("not a component");
    };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::IndexMap<wit_parser::WorldKey, wit_parser::WorldItem>| {
        items.keys().map(|k| resolve.name_world_key(k)).collect()
    };
    Ok((names(&world.imports), names(&world.exports)))
}

/// An Extism plugin (a core module) as a self-contained component of world `plugin`: its
/// only import is `extism:kernel/host`, its only export `extism:kernel/entry`. An import
/// that cannot be mapped is refused with an error naming it.
pub fn componentize(plugin: &[u8]) -> Result<Vec<u8>> {
    let plan = analyze(plugin)?;
    let stub = wasi_stub(&plan)?;
    let composed = component::encode(
        &plan,
        artifacts::KERNEL_CORE_HOSTED,
        plugin,
        stub.as_deref(),
    )?;
    wasmparser::Validator::new()
        .validate_all(&composed)
        .context("the composed component does not validate")?;
    let (imports, exports) = component_world(&composed)?;
    let (wasi, others): (Vec<_>, Vec<_>) = imports.iter().partition(|i| i.starts_with("wasi:"));
    ensure!(
        others == [&interface("host")]
            && exports == [interface("entry")]
            && (stub.is_some() || wasi.is_empty()),
        "the composed component imports {imports:?} and exports {exports:?}"
    );
    Ok(composed)
}

/// For a plugin that imports WASI preview 1: a stub module with the same preview 1 imports
/// and an exported memory, carrying an empty world, for wit-component to link the adapter to.
fn wasi_stub(plan: &Plan) -> Result<Option<Vec<u8>>> {
    use wasm_encoder::{EntityType, ExportKind, ExportSection, ImportSection, MemorySection};
    use wasm_encoder::{MemoryType, Module, TypeSection};
    let wasi: Vec<_> = plan
        .imports
        .iter()
        .zip(&plan.import_types)
        .filter(|((_, _, t), _)| *t == Target::Wasi)
        .collect();
    if wasi.is_empty() {
        return Ok(None);
    }
    ensure!(
        plan.memory_exported,
        "cannot componentize: the plugin imports WASI but does not export its memory as `memory`, which the WASI adapter works on"
    );
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    for (i, ((module, name, _), ty)) in wasi.iter().enumerate() {
        let ty = &plan.types[**ty as usize];
        let conv = |v: &[ValType]| -> Result<Vec<wasm_encoder::ValType>> {
            v.iter()
                .map(|t| match t {
                    ValType::I32 => Ok(wasm_encoder::ValType::I32),
                    ValType::I64 => Ok(wasm_encoder::ValType::I64),
                    ValType::F32 => Ok(wasm_encoder::ValType::F32),
                    ValType::F64 => Ok(wasm_encoder::ValType::F64),
                    other => bail!(
                        "cannot componentize: the WASI import `{module}::{name}` has a {other} value"
                    ),
                })
                .collect()
        };
        types.ty().function(conv(ty.params())?, conv(ty.results())?);
        imports.import(module, name, EntityType::Function(i as u32));
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export(MEMORY, ExportKind::Memory, 0);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&memories)
        .section(&exports);
    let mut stub = module.finish();
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("stub.wit", "package extism:wasi-stub;\nworld stub {}\n")
        .map_err(|e| anyhow!("{e}"))?;
    let world = resolve.select_world(&[package], Some("stub"))?;
    wit_component::embed_component_metadata(
        &mut stub,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    Ok(Some(stub))
}

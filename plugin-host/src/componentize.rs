//! `host-demo componentize`: an unmodified Extism plugin as one self-contained component.
//!
//! A classic plugin is a core module that imports the kernel and the host functions from
//! `extism:host/env` and exports its functions as `() -> i32` (or `() -> ()`). [`componentize`]
//! makes it a component of world `plugin` (`wit/extism-plugin.wit`), which imports only the
//! value-based host services `extism:kernel/host` and exports `extism:kernel/entry`'s
//! `call(name, input)`. The result is a composition of five instances:
//!
//! ```text
//!                      host services (the only import)
//!                             |
//!   kernel ---raw,bulk---> env adapter <---names--- names
//!     |  \                    | env                  |
//!     |   `---raw-------> plugin module              |
//!     |                       | dispatch             |
//!     `------bulk-------> entry adapter <---names----'
//!                             |
//!                  extism:kernel/entry (the only export)
//! ```
//!
//! - **kernel**: this project's kernel component, unchanged.
//! - **plugin module**: the plugin, rewritten with wasmparser and `wasm_encoder::reencode`.
//!   Its kernel imports are renamed onto `extism:kernel/raw` (kebab-case names; their
//!   canonical lowering is exactly the ABI's core type, so nothing else changes), its
//!   `extism:host/env` host-function imports onto `extism:kernel/env` (same core types), and
//!   each user host function (any other module, type `(i64) -> i64`) is replaced by a small
//!   local function that calls `env.user-call(index, arg)`. Its exports are replaced by one,
//!   `dispatch.invoke(index)`, a `br_table` over its Extism functions. Custom sections (names,
//!   producers) are dropped, since function indices move. wit-component then wraps it for
//!   world `plugin-module`.
//! - **names**: a generated data-only module: the plugin's function names and user host
//!   functions, as `list<string>` and `list<tuple<string, string>>` results (world
//!   `plugin-names`).
//! - **env adapter** (`plugin-adapter/env`): the Extism host functions, handle-based, over the
//!   kernel and the host services.
//! - **entry adapter** (`plugin-adapter/entry`): `call(name, input)`: looks the name up,
//!   prepares the kernel, invokes, returns the output or the error.
//!
//! Two adapters rather than one, because instances cannot form a cycle: the entry needs the
//! plugin, which needs the env functions. wac-graph composes the five; the result is
//! validated and its imports checked.
//!
//! Refused, with an error naming the import: anything that is neither a kernel function nor
//! an Extism host function of `extism:host/env` with its ABI type, nor a user host function of
//! type `(i64) -> i64`; in particular WASI imports (a composed plugin's only import is the
//! host services), and imported memories, tables and globals.

use crate::artifacts;
use anyhow::{Context, Result, anyhow, bail, ensure};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, ImportSection, Instruction, MemorySection, MemoryType, Module, StartSection,
    TypeSection,
};
use wasmparser::{FuncType, Parser, Payload, TypeRef, ValType};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{Resolve, SourceMap, WorldId};

/// The `extism:kernel` package's WIT, as built into this binary.
const WIT: [(&str, &str); 2] = [
    (
        "extism-kernel.wit",
        include_str!("../../wit/extism-kernel.wit"),
    ),
    (
        "extism-plugin.wit",
        include_str!("../../wit/extism-plugin.wit"),
    ),
];

use kernel_abi::ENV;
use std::path::Path;
use wasm_util::wasm_types;

/// The full name of interface `name` of the `extism:kernel` package.
pub fn interface(name: &str) -> String {
    format!("extism:kernel/{name}@1.0.0")
}

/// Where a function import of the plugin goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Renamed: `(module, name)` of `extism:kernel/raw` or `extism:kernel/env`.
    Renamed(String, String),
    /// A user host function, replaced by a local function calling `env.user-call(index)`.
    User(u32),
}

/// What the rewrite needs to know about a plugin, from a first pass over it.
#[derive(Debug, Default)]
struct Plan {
    /// Every function type, by type index.
    types: Vec<FuncType>,
    /// Every function import, in order, and where it goes.
    imports: Vec<Target>,
    /// The type index of every function import.
    import_types: Vec<u32>,
    /// The type index of every defined function.
    defined: Vec<u32>,
    /// The user host functions: (module, name), by `env.user-call` index.
    user: Vec<(String, String)>,
    /// The Extism functions: export name, old function index, whether it returns an i32.
    functions: Vec<(String, u32, bool)>,
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
            .map(|f| (f, "raw"))
            .or_else(|| kernel_abi::host_function(name).map(|f| (f, "env")));
        let Some((f, iface)) = expected else {
            return Err(refuse(format!(
                "`{ENV}` has no function `{name}` (neither a kernel function nor an Extism host function)"
            )));
        };
        let (p, r) = (wasm_types(f.params), wasm_types(f.results));
        if p != params || r != results {
            return Err(refuse(format!("its type should be {}", type_text(&p, &r))));
        }
        return Ok(Target::Renamed(interface(iface), name.replace('_', "-")));
    }
    if module.starts_with("wasi") {
        return Err(refuse(
            "WASI is not available to a composed plugin, whose only import is the host services (`extism:kernel/host`)".into(),
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
                    plan.imports.push(target);
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
    Ok(plan)
}

/// Renumbers functions: the user host function imports become local functions, and one
/// import (`env.user-call`) may be added.
#[derive(Debug)]
struct Renumber {
    /// New index of every old function index.
    map: Vec<u32>,
}

impl Reencode for Renumber {
    type Error = String;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<String>> {
        self.map
            .get(func as usize)
            .copied()
            .ok_or_else(|| reencode::Error::UserError(format!("no function {func}")))
    }
}

fn reencode_err(e: reencode::Error<String>) -> anyhow::Error {
    anyhow!("rewriting the plugin: {e}")
}

/// The second pass: the plugin module of world `plugin-module`, before its metadata.
fn rewrite(plugin: &[u8], plan: &Plan) -> Result<Vec<u8>> {
    // A section re-encoded unchanged (its indices do not move).
    macro_rules! copy {
        ($re:ident, $module:ident, $new:expr, $parse:ident, $s:expr) => {{
            let mut out = $new;
            $re.$parse(&mut out, $s).map_err(reencode_err)?;
            $module.section(&out);
        }};
    }
    ensure!(
        !plan.defined.is_empty(),
        "cannot componentize: the plugin defines no functions"
    );
    let kept = plan
        .imports
        .iter()
        .filter(|t| matches!(t, Target::Renamed(..)))
        .count() as u32;
    let has_user = !plan.user.is_empty();
    let user_call = kept;
    let first_shim = kept + u32::from(has_user);
    let first_defined = first_shim + plan.user.len() as u32;
    let invoke = first_defined + plan.defined.len() as u32;
    let mut map = Vec::with_capacity(plan.imports.len() + plan.defined.len());
    let mut next_kept = 0;
    for target in &plan.imports {
        match target {
            Target::Renamed(..) => {
                map.push(next_kept);
                next_kept += 1;
            }
            Target::User(i) => map.push(first_shim + i),
        }
    }
    map.extend((0..plan.defined.len() as u32).map(|j| first_defined + j));
    let mut re = Renumber { map };

    // New types go after the old ones, so old type indices stay.
    let old_types = plan.types.len() as u32;
    let (ty_user_call, ty_shim, ty_invoke) = (old_types, old_types + 1, old_types + 2);

    let mut module = Module::new();
    // The code section being written, and how many of the plugin's bodies are still to come.
    let mut code: Option<(CodeSection, u32)> = None;
    for payload in Parser::new(0).parse_all(plugin) {
        match payload? {
            Payload::TypeSection(s) => {
                let mut types = TypeSection::new();
                re.parse_type_section(&mut types, s).map_err(reencode_err)?;
                use wasm_encoder::ValType::{I32, I64};
                types.ty().function([I32, I64], [I64]);
                types.ty().function([I64], [I64]);
                types.ty().function([I32], [I32]);
                module.section(&types);
            }
            Payload::ImportSection(_) => {
                // Every import is a function (`analyze` refused the rest), in `plan`'s order.
                let mut imports = ImportSection::new();
                for (target, &ty) in plan.imports.iter().zip(&plan.import_types) {
                    if let Target::Renamed(m, n) = target {
                        imports.import(m, n, EntityType::Function(ty));
                    }
                }
                if has_user {
                    imports.import(
                        &interface("env"),
                        "user-call",
                        EntityType::Function(ty_user_call),
                    );
                }
                module.section(&imports);
            }
            Payload::FunctionSection(s) => {
                let mut functions = FunctionSection::new();
                for _ in &plan.user {
                    functions.function(ty_shim);
                }
                re.parse_function_section(&mut functions, s)
                    .map_err(reencode_err)?;
                functions.function(ty_invoke);
                module.section(&functions);
            }
            Payload::TableSection(s) => {
                copy!(
                    re,
                    module,
                    wasm_encoder::TableSection::new(),
                    parse_table_section,
                    s
                )
            }
            Payload::MemorySection(s) => {
                copy!(re, module, MemorySection::new(), parse_memory_section, s)
            }
            Payload::TagSection(s) => copy!(
                re,
                module,
                wasm_encoder::TagSection::new(),
                parse_tag_section,
                s
            ),
            Payload::GlobalSection(s) => {
                copy!(
                    re,
                    module,
                    wasm_encoder::GlobalSection::new(),
                    parse_global_section,
                    s
                )
            }
            Payload::ExportSection(_) => {
                let mut exports = ExportSection::new();
                exports.export(
                    &format!("{}#invoke", interface("dispatch")),
                    ExportKind::Func,
                    invoke,
                );
                module.section(&exports);
            }
            Payload::StartSection { func, .. } => {
                let function_index = re.function_index(func).map_err(reencode_err)?;
                module.section(&StartSection { function_index });
            }
            Payload::ElementSection(s) => {
                let mut out = wasm_encoder::ElementSection::new();
                re.parse_element_section(&mut out, s)
                    .map_err(reencode_err)?;
                module.section(&out);
            }
            Payload::DataCountSection { count, .. } => {
                module.section(&wasm_encoder::DataCountSection { count });
            }
            Payload::CodeSectionStart { count, .. } => {
                let mut out = CodeSection::new();
                for i in 0..plan.user.len() as u32 {
                    let mut f = Function::new([]);
                    f.instruction(&Instruction::I32Const(i as i32))
                        .instruction(&Instruction::LocalGet(0))
                        .instruction(&Instruction::Call(user_call))
                        .instruction(&Instruction::End);
                    out.function(&f);
                }
                code = Some((out, count));
            }
            Payload::CodeSectionEntry(body) => {
                let (out, left) = code
                    .as_mut()
                    .context("a function body outside the code section")?;
                re.parse_function_body(out, body).map_err(reencode_err)?;
                *left -= 1;
            }
            Payload::DataSection(s) => {
                let mut out = DataSection::new();
                re.parse_data_section(&mut out, s).map_err(reencode_err)?;
                module.section(&out);
            }
            // Names, producers and other custom sections describe the old numbering.
            Payload::CustomSection(_) | Payload::Version { .. } | Payload::End(_) => {}
            other => {
                if let Some((id, _)) = other.as_section() {
                    bail!(
                        "cannot componentize: the plugin has a section ({id}) this tool does not rewrite"
                    );
                }
            }
        }
        // The code section ends with its last body: add `invoke` and write it out.
        if let Some((mut out, 0)) = code.take_if(|(_, left)| *left == 0) {
            out.function(&invoke_body(plan, &re.map));
            module.section(&out);
        }
    }
    Ok(module.finish())
}

/// `invoke(index)`: a `br_table` over the Extism functions; each returns its code (`0` for
/// one that returns nothing); an index out of range traps.
fn invoke_body(plan: &Plan, map: &[u32]) -> Function {
    let n = plan.functions.len() as u32;
    let mut f = Function::new([]);
    // Block `n` (outermost) is the default; block `i` ends right before case `i`'s code.
    for _ in 0..=n {
        f.instruction(&Instruction::Block(wasm_encoder::BlockType::Empty));
    }
    f.instruction(&Instruction::LocalGet(0));
    f.instruction(&Instruction::BrTable((0..n).collect(), n));
    for (_, old, returns_code) in &plan.functions {
        f.instruction(&Instruction::End);
        f.instruction(&Instruction::Call(map[*old as usize]));
        if !returns_code {
            f.instruction(&Instruction::I32Const(0));
        }
        f.instruction(&Instruction::Return);
    }
    f.instruction(&Instruction::End);
    f.instruction(&Instruction::Unreachable);
    f.instruction(&Instruction::End);
    f
}

/// The names module (world `plugin-names`): the answers of `names.functions` and
/// `names.user-functions` laid out in a data segment, each function returning the address of
/// its result's (pointer, length) pair.
fn names_module(plan: &Plan) -> Vec<u8> {
    fn string(data: &mut Vec<u8>, s: &str) -> [u32; 2] {
        let at = data.len() as u32;
        data.extend_from_slice(s.as_bytes());
        [at, s.len() as u32]
    }
    fn words(data: &mut Vec<u8>, words: &[u32]) -> u32 {
        data.resize(data.len().next_multiple_of(8), 0);
        let at = data.len() as u32;
        for w in words {
            data.extend_from_slice(&w.to_le_bytes());
        }
        at
    }
    // Address 0 is left unused: no pointer is null.
    let mut data = vec![0; 8];
    let names: Vec<[u32; 2]> = plan
        .functions
        .iter()
        .map(|(name, _, _)| string(&mut data, name))
        .collect();
    let list = words(&mut data, &names.concat());
    let functions = words(&mut data, &[list, names.len() as u32]);
    let pairs: Vec<[u32; 4]> = plan
        .user
        .iter()
        .map(|(m, n)| {
            let [a, b] = string(&mut data, m);
            let [c, d] = string(&mut data, n);
            [a, b, c, d]
        })
        .collect();
    let list = words(&mut data, &pairs.concat());
    let user = words(&mut data, &[list, pairs.len() as u32]);

    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], [wasm_encoder::ValType::I32]);
    module.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0).function(0);
    module.section(&funcs);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: (data.len() as u64).div_ceil(65536),
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    let names = interface("names");
    exports.export(&format!("{names}#functions"), ExportKind::Func, 0);
    exports.export(&format!("{names}#user-functions"), ExportKind::Func, 1);
    module.section(&exports);
    let mut code = CodeSection::new();
    for at in [functions, user] {
        let mut f = Function::new([]);
        f.instruction(&Instruction::I32Const(at as i32))
            .instruction(&Instruction::End);
        code.function(&f);
    }
    module.section(&code);
    let mut segments = DataSection::new();
    segments.active(0, &ConstExpr::i32_const(0), data);
    module.section(&segments);
    module.finish()
}

/// The `extism:kernel` package, parsed.
fn wit() -> Result<(Resolve, wit_parser::PackageId)> {
    let mut sources = SourceMap::new();
    for (file, text) in WIT {
        sources.push(Path::new(file), text);
    }
    let group = sources
        .parse()
        .map_err(|(_, e)| anyhow!("parsing the built-in WIT: {e}"))?;
    let mut resolve = Resolve::default();
    let package = resolve
        .push_group(group)
        .map_err(|e| anyhow!("resolving the built-in WIT: {e}"))?;
    Ok((resolve, package))
}

/// `module` with world `world`'s metadata, encoded as a component.
fn encode_component(mut module: Vec<u8>, world: &str) -> Result<Vec<u8>> {
    let (resolve, package) = wit()?;
    let world: WorldId = resolve.select_world(&[package], Some(world))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        StringEncoding::UTF8,
        false,
    )?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .encode()
}

/// Instantiates `package`, giving each of its imports that `provided` names.
fn instantiate(
    graph: &mut CompositionGraph,
    package: PackageId,
    provided: &[(String, NodeId)],
) -> Result<NodeId> {
    let instance = graph.instantiate(package);
    let world = graph[package].ty();
    let imports: Vec<String> = graph.types()[world].imports.keys().cloned().collect();
    for name in imports {
        if let Some((_, node)) = provided.iter().find(|(n, _)| *n == name) {
            graph.set_instantiation_argument(instance, &name, *node)?;
        }
    }
    Ok(instance)
}

/// Adds `instance`'s export of interface `name` to `provided`.
fn provide(
    graph: &mut CompositionGraph,
    instance: NodeId,
    name: &str,
    provided: &mut Vec<(String, NodeId)>,
) -> Result<NodeId> {
    let name = interface(name);
    let node = graph.alias_instance_export(instance, &name)?;
    provided.push((name, node));
    Ok(node)
}

/// The five instances, wired; the host services are left as the only import.
fn compose(plugin: Vec<u8>, names: Vec<u8>) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let mut register = |name: &str, bytes: Vec<u8>| -> Result<PackageId> {
        let package = Package::from_bytes(name, None, bytes, graph.types_mut())?;
        Ok(graph.register_package(package)?)
    };
    let kernel = register("extism:kernel-impl", artifacts::KERNEL_COMPONENT.to_vec())?;
    let names = register("extism:plugin-names", names)?;
    let env = register("extism:plugin-env", artifacts::PLUGIN_ADAPTER_ENV.to_vec())?;
    let plugin = register("extism:plugin-module", plugin)?;
    let entry = register(
        "extism:plugin-entry",
        artifacts::PLUGIN_ADAPTER_ENTRY.to_vec(),
    )?;

    let mut provided = Vec::new();
    let k = graph.instantiate(kernel);
    for name in ["types", "raw", "bulk"] {
        provide(&mut graph, k, name, &mut provided)?;
    }
    let n = instantiate(&mut graph, names, &provided)?;
    provide(&mut graph, n, "names", &mut provided)?;
    let e = instantiate(&mut graph, env, &provided)?;
    provide(&mut graph, e, "env", &mut provided)?;
    let p = instantiate(&mut graph, plugin, &provided)?;
    provide(&mut graph, p, "dispatch", &mut provided)?;
    let x = instantiate(&mut graph, entry, &provided)?;
    let call = graph.alias_instance_export(x, &interface("entry"))?;
    graph.export(call, interface("entry"))?;
    Ok(graph.encode(EncodeOptions::default())?)
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
    let module = rewrite(plugin, &plan)?;
    let plugin =
        encode_component(module, "plugin-module").context("wrapping the rewritten plugin")?;
    let names = encode_component(names_module(&plan), "plugin-names")
        .context("wrapping the plugin's names")?;
    let composed = compose(plugin, names).context("composing the plugin with the kernel")?;
    let composed = wasm_util::strip_debug_sections(&composed)?;
    wasmparser::Validator::new()
        .validate_all(&composed)
        .context("the composed component does not validate")?;
    let (imports, exports) = component_world(&composed)?;
    ensure!(
        imports == [interface("host")] && exports == [interface("entry")],
        "the composed component imports {imports:?} and exports {exports:?}"
    );
    Ok(composed)
}

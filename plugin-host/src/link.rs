//! Linking a classic plugin: what answers each of its imports.
//!
//! Every import is sorted once, when the plugin is compiled ([`classify_imports`]): a kernel
//! function of `extism:host/env` (the ABI table), an Extism host function, a user host
//! function of the options, or WASI preview 1. Anything else is refused with an error that
//! names it. How the kernel imports are then answered depends on the kernel form (see
//! [`PluginPre`](crate::PluginPre)).

use crate::options::PluginOptions;
use crate::state::HostState;
use kernel_abi::{CONTEXT_GLOBAL, ENV, MEMORY, USER, WASI_P1};
use wasmtime::{InstancePre, Linker, Module, ModuleExport};
use wasmtime::{Result, bail};

/// How the plugin's imports are answered.
pub(crate) enum PluginLink {
    /// Every import is store-independent (one module on the component backend).
    Pre(InstancePre<HostState>),
    /// The modules in instantiation order (each after those it imports from; the main
    /// module last), each with what answers its imports.
    Plan {
        linker: Linker<HostState>,
        modules: Vec<PlannedModule>,
    },
}

/// One module of a plugin and, per import in the module's import order, what answers it.
pub(crate) struct PlannedModule {
    /// Its index among the plugin's modules (the main module's is the last).
    pub(crate) index: usize,
    pub(crate) module: Module,
    pub(crate) imports: Vec<Source>,
}

/// What answers one plugin import on the core backend.
pub(crate) enum Source {
    /// The kernel instance's export.
    Kernel(ModuleExport),
    /// A host function (or WASI) defined in the linker: module and name.
    Linker(String, String),
    /// An export of another module of the plugin: that module's index, and the export.
    Module(usize, ModuleExport),
}

/// The plugin's imports, sorted by what answers them.
pub(crate) struct Imports {
    /// The kernel functions it imports.
    pub(crate) kernel: Vec<String>,
    /// Whether it imports WASI.
    pub(crate) wasi: bool,
}

/// Sorts `module`'s imports. Those from a module named in `linked` (the plugin's other
/// modules) are left to the plan: Extism resolves them before the host functions.
pub(crate) fn classify_imports(
    module: &Module,
    options: &PluginOptions,
    linked: &[&str],
) -> Result<Imports> {
    let mut kernel = Vec::new();
    let mut wasi = false;
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        if linked.contains(&m) {
            continue;
        }
        if options
            .functions
            .iter()
            .any(|f| f.namespace == m && f.name == name)
        {
            continue;
        }
        match m {
            ENV if kernel_abi::kernel_function(name).is_some() => kernel.push(name.to_string()),
            ENV if kernel_abi::host_function(name).is_some() => {}
            ENV if name == MEMORY || name == CONTEXT_GLOBAL => bail!(
                "the plugin imports `{ENV}::{name}`: the kernel's {name} is not importable by plugins"
            ),
            ENV => bail!("the plugin imports `{ENV}::{name}`, which is no kernel or host function"),
            WASI_P1 if options.wasi => wasi = true,
            WASI_P1 => bail!(
                "the plugin imports WASI (`{WASI_P1}::{name}`); enable WASI (--wasi) to run it"
            ),
            USER => bail!(
                "the plugin imports the host function `{USER}::{name}`, which is not registered"
            ),
            _ => bail!("the plugin imports `{m}::{name}`, which this host does not provide"),
        }
    }
    Ok(Imports { kernel, wasi })
}

/// An import `module::name` must have the type of the export that answers it (checked
/// once here for functions, so that instantiation cannot fail on it later; memories, tables
/// and globals of linked modules are checked when instantiated).
pub(crate) fn check_import_type(
    import: &wasmtime::ExternType,
    export: &wasmtime::ExternType,
    module: &str,
    name: &str,
    what: &str,
) -> Result<()> {
    use wasmtime::ExternType::Func;
    match (import, export) {
        (Func(i), Func(e)) if e.matches(i) => Ok(()),
        (Func(_), _) | (_, Func(_)) => bail!(
            "the plugin imports `{module}::{name}` with the type {import:?}, but {what}'s is {export:?}"
        ),
        _ => Ok(()),
    }
}

/// The index of the plugin's other module that module `i`'s imports from `from` name, if one
/// does (a module's imports of its own name are not links).
pub(crate) fn linked_module(names: &[&str], i: usize, from: &str) -> Option<usize> {
    names.iter().position(|n| *n == from).filter(|&j| j != i)
}

/// The order to instantiate the modules in: each after the modules it imports from. `deps[i]`
/// lists the modules module `i` imports from; an import cycle is an error naming it.
pub(crate) fn instantiation_order(names: &[&str], deps: &[Vec<usize>]) -> Result<Vec<usize>> {
    // 0: not seen, 1: on the current path, 2: done.
    fn visit(
        i: usize,
        names: &[&str],
        deps: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<()> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let cycle: Vec<&str> = path[start..]
                    .iter()
                    .chain([&i])
                    .map(|&p| names[p])
                    .collect();
                bail!(
                    "the plugin's modules import each other in a cycle: {}",
                    cycle.join(" -> ")
                );
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for &d in &deps[i] {
            visit(d, names, deps, state, path, order)?;
        }
        path.pop();
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    let mut state = vec![0u8; names.len()];
    let mut order = Vec::with_capacity(names.len());
    // The main module (the last) first, so that modules nothing reaches from it still come
    // before it: visit every module, the main one last.
    for i in 0..names.len() {
        visit(i, names, deps, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

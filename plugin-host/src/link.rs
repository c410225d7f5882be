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
    /// Every import is store-independent (component backend).
    Pre(InstancePre<HostState>),
    /// Per import, in the module's import order: a kernel export or a linker definition.
    Plan {
        linker: Linker<HostState>,
        imports: Vec<Source>,
    },
}

/// What answers one plugin import on the core backend.
pub(crate) enum Source {
    /// The kernel instance's export.
    Kernel(ModuleExport),
    /// A host function (or WASI) defined in the linker: module and name.
    Linker(String, String),
}

/// The plugin's imports, sorted by what answers them.
pub(crate) struct Imports {
    /// The kernel functions it imports.
    pub(crate) kernel: Vec<String>,
    /// Whether it imports WASI.
    pub(crate) wasi: bool,
}

pub(crate) fn classify_imports(module: &Module, options: &PluginOptions) -> Result<Imports> {
    let mut kernel = Vec::new();
    let mut wasi = false;
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
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

/// The plugin's import `name` must have the type of the kernel's export (checked once here,
/// so that instantiation cannot fail on it later).
pub(crate) fn check_import_type(
    import: &wasmtime::ExternType,
    export: &wasmtime::ExternType,
    name: &str,
) -> Result<()> {
    match (import, export) {
        (wasmtime::ExternType::Func(i), wasmtime::ExternType::Func(e)) if e.matches(i) => Ok(()),
        _ => bail!(
            "the plugin imports `{ENV}::{name}` with the type {import:?}, but the kernel's is {export:?}"
        ),
    }
}

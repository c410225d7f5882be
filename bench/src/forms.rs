//! The four forms a whole Extism plugin runs on in the plugin benchmarks (`round_trip`,
//! `plugin_call`, `plugin_churn`): the classic plugin on our kernel's core path, on the
//! component backend and on upstream's kernel (all three [`Plugin`]), and the plugin
//! composed with our kernel into one component at load time ([`ComposedPlugin::compose`]).

use crate::{KernelId, Kernels};
use plugin_host::{CallError, ComposedPlugin, KernelKind, Plugin, PluginOptions};
use std::fmt;
use std::sync::Arc;
use wasmtime::Result;

/// A form a plugin runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Form {
    /// A classic plugin on one of the three kernels.
    Kernel(KernelId),
    /// The plugin composed with our kernel into one component.
    Composed,
}

impl Form {
    /// All four, in report order.
    pub const ALL: [Form; 4] = [
        Form::Kernel(KernelId::Core),
        Form::Kernel(KernelId::Component),
        Form::Kernel(KernelId::Upstream),
        Form::Composed,
    ];

    /// The name used in benchmark ids (a kernel's [`KernelId::id`] for the classic forms).
    pub fn id(self) -> &'static str {
        match self {
            Form::Kernel(k) => k.id(),
            Form::Composed => "composed",
        }
    }

    /// The name shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            Form::Kernel(KernelId::Core) => "ours (core path)",
            Form::Kernel(KernelId::Component) => "ours (component backend)",
            Form::Kernel(KernelId::Upstream) => "upstream 1.41.0 (core path)",
            Form::Composed => "composed",
        }
    }

    /// Loads the classic plugin `wasm` on this form, with default options otherwise.
    pub fn load(self, kernels: &Kernels, wasm: &[u8]) -> Result<Loaded> {
        let runtime = &kernels.runtime;
        let options = match self {
            Form::Kernel(KernelId::Core) | Form::Composed => PluginOptions::default(),
            Form::Kernel(KernelId::Component) => PluginOptions {
                kernel: KernelKind::Component,
                ..Default::default()
            },
            Form::Kernel(KernelId::Upstream) => PluginOptions {
                kernel_wasm: Some(Arc::new(kernels.upstream.wasm.clone())),
                ..Default::default()
            },
        };
        Ok(match self {
            Form::Kernel(_) => Loaded::Classic(Plugin::new(runtime, wasm, options)?),
            Form::Composed => {
                Loaded::Composed(Box::new(ComposedPlugin::compose(runtime, wasm, options)?))
            }
        })
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A plugin loaded on one of the [`Form`]s.
#[derive(Debug)]
pub enum Loaded {
    /// On a kernel.
    Classic(Plugin),
    /// Composed with our kernel (boxed: a [`ComposedPlugin`] is several times the size of a
    /// [`Plugin`]).
    Composed(Box<ComposedPlugin>),
}

impl Loaded {
    /// Calls the plugin's function `name` with `input` ([`Plugin::call`],
    /// [`ComposedPlugin::call`]).
    pub fn call(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        match self {
            Loaded::Classic(p) => p.call(name, input),
            Loaded::Composed(p) => p.call(name, input),
        }
    }
}

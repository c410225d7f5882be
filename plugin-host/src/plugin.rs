//! [`Plugin`]: a classic plugin linked to its kernel and the host functions, and the Extism
//! call sequence around each call.

use crate::backend::{InputTooLarge, Kernel};
use crate::error::{CallError, Renewal, one_line};
use crate::manifest::Manifest;
use crate::options::PluginOptions;
use crate::pre::PluginPre;
use crate::runtime::Runtime;
use crate::state::HostState;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::Result;
use wasmtime::{Instance, Store, TypedFunc};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// A loaded plugin: its instance, its kernel, and the store they share.
///
/// A `Plugin` is `Send`: different threads may call different plugins at the same time.
#[derive(Debug)]
pub struct Plugin {
    store: Store<HostState>,
    instance: Instance,
    kernel: Kernel,
    stdout: Option<MemoryOutputPipe>,
    /// What the plugin is instantiated from, to make it anew after a trap on the component
    /// backend.
    pre: Arc<PluginPre>,
    /// Whether it can still be called after a trap.
    renewal: Renewal,
    /// Whether the initialiser (`_initialize`) has run in this instance.
    initialized: bool,
    /// The plugin's functions called so far, typed once: wasmtime 48 fills in a function's
    /// `VMFuncRef` anew each time an export is looked up, and an untyped call checks the
    /// types each time (together about 0.13 µs of a trivial call).
    functions: HashMap<String, Function>,
}

/// One of the plugin's Extism functions, typed.
#[derive(Clone)]
enum Function {
    /// `() -> i32`: returns a code.
    Code(TypedFunc<(), i32>),
    /// `() -> ()`.
    Unit(TypedFunc<(), ()>),
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Function::Code(_) => "() -> i32",
            Function::Unit(_) => "() -> ()",
        })
    }
}

impl Plugin {
    /// Loads `wasm` (an Extism plugin: a core module) with `options`: compiles, links and
    /// instantiates it. To make many instances of one plugin, use [`PluginPre`] instead.
    pub fn new(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> Result<Plugin> {
        Arc::new(PluginPre::new(runtime, wasm, options)?).instantiate()
    }

    /// Loads the plugin an Extism manifest describes: its modules (linked by name, the main
    /// one called) and its options applied over `options`.
    pub fn from_manifest(
        runtime: &Runtime,
        manifest: &Manifest,
        mut options: PluginOptions,
    ) -> Result<Plugin> {
        manifest.apply(&mut options)?;
        let modules = manifest.modules()?;
        Arc::new(PluginPre::linked(runtime, &modules, options)?).instantiate()
    }

    pub(crate) fn from_parts(
        store: Store<HostState>,
        instance: Instance,
        kernel: Kernel,
        stdout: Option<MemoryOutputPipe>,
        pre: Arc<PluginPre>,
    ) -> Plugin {
        Plugin {
            store,
            instance,
            kernel,
            stdout,
            pre,
            renewal: Renewal::default(),
            initialized: false,
            functions: HashMap::new(),
        }
    }

    /// Whether the plugin exports a function `name`.
    pub fn function_exists(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// What the plugin wrote to WASI stdout, when it was captured.
    pub fn stdout(&self) -> Option<Vec<u8>> {
        self.stdout.as_ref().map(|p| p.contents().to_vec())
    }

    /// The kernel this plugin runs on.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Calls the plugin's function `name` with `input`; its output, or why it failed.
    ///
    /// On the component backend, any trap in the store (the plugin's, or one inside a kernel
    /// call) makes wasmtime refuse every later entry into the kernel component. The plugin is
    /// then instantiated anew in a fresh store, with its vars kept: a plugin that trapped
    /// loses its own memory state on that backend (the kernel holds nothing across calls).
    ///
    /// If making it anew fails, the call's error says so, and so does every later call.
    pub fn call(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.renewal.check()?;
        match self.call_once(name, input) {
            Err(e) if e.is_trap() => {
                let renewed = self.renew_after_trap();
                Err(self.renewal.after_trap(e, renewed))
            }
            other => other,
        }
    }

    /// Makes the plugin anew in a fresh store, keeping its vars and its captured stdout:
    /// wasmtime marks a store in which any wasm trapped so that none of its component
    /// instances can be entered again. Only the component backend needs this.
    fn renew_after_trap(&mut self) -> Result<()> {
        if !matches!(self.kernel, Kernel::Component(_)) {
            return Ok(());
        }
        let services = self.store.data_mut().services.renewed(self.pre.options());
        *self = self.pre.instantiate_with(self.stdout.clone(), services)?;
        Ok(())
    }

    /// What this plugin was instantiated from: make more instances of it with
    /// [`PluginPre::instantiate`].
    pub fn pre(&self) -> &Arc<PluginPre> {
        &self.pre
    }

    /// The plugin's function `name`, typed (looked up once per instance).
    fn function(&mut self, name: &str) -> Result<Function, CallError> {
        if let Some(f) = self.functions.get(name) {
            return Ok(f.clone());
        }
        let (index, returns_code) = self.pre.function(name)?;
        let func = self
            .instance
            .get_module_export(&mut self.store, index)
            .and_then(|e| e.into_func())
            .ok_or_else(|| CallError::NoFunction(name.to_string()))?;
        // `PluginPre` checked the type: `() -> i32` or `() -> ()`.
        let typed = |e: wasmtime::Error| CallError::Trap(one_line(&format!("{e:#}")));
        let f = if returns_code {
            Function::Code(func.typed(&self.store).map_err(typed)?)
        } else {
            Function::Unit(func.typed(&self.store).map_err(typed)?)
        };
        self.functions.insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn call_once(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let func = self.function(name)?;
        let deadline = self.store.data_mut().services.start_call();
        self.store.set_epoch_deadline(deadline);
        self.unlimited_fuel();
        match self.kernel.prepare_call(&mut self.store, input) {
            Ok(Ok(())) => {}
            Ok(Err(InputTooLarge(n))) => {
                return Err(CallError::OutOfMemory(
                    match self.pre.options().memory_max_pages {
                        Some(p) if self.store.data().services.limits.denied => {
                            format!(
                                "the input of {n} bytes does not fit the memory limit of {p} pages"
                            )
                        }
                        _ => format!("the kernel cannot hold an input of {n} bytes"),
                    },
                ));
            }
            Err(e) => return Err(self.classify(e)),
        }
        // The fuel limit is the plugin's: the kernel's own preparation is not counted.
        if let Some(fuel) = self.pre.options().fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Trap(e.to_string()))?;
        }
        let code = self.run_init().and_then(|()| self.invoke(func));
        let code = code.map_err(|e| self.classify(e));
        self.unlimited_fuel();
        let code = code?;
        if code != 0 {
            let message = self
                .kernel
                .error(&mut self.store)
                .map_err(|e| self.classify(e))?;
            return Err(CallError::Failed { code, message });
        }
        self.kernel
            .output(&mut self.store)
            .map_err(|e| CallError::Trap(one_line(&format!("{e:#}"))))
    }

    /// The host's own calls into the kernel (before and after the plugin's) are not metered.
    fn unlimited_fuel(&mut self) {
        if self.pre.options().fuel.is_some() {
            let _ = self.store.set_fuel(u64::MAX);
        }
    }

    /// Runs the plugin's initialiser once, inside the first call (its deadline and fuel).
    fn run_init(&mut self) -> Result<()> {
        if self.initialized {
            return Ok(());
        }
        self.initialized = true;
        let Some(index) = self.pre.init() else {
            return Ok(());
        };
        match self
            .instance
            .get_module_export(&mut self.store, index)
            .and_then(|e| e.into_func())
        {
            Some(f) => f.call(&mut self.store, &[], &mut []),
            None => Ok(()),
        }
    }

    fn invoke(&mut self, func: Function) -> Result<i32> {
        match func {
            Function::Code(f) => f.call(&mut self.store, ()),
            Function::Unit(f) => f.call(&mut self.store, ()).map(|()| 0),
        }
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        CallError::from_wasm(
            e,
            self.pre.options(),
            self.store.data().services.limits.denied,
        )
    }
}

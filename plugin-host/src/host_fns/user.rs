//! User host functions: what a plugin imports from `extism:host/user` (or any other module
//! the host names), defined by the embedder as a [`HostFunction`].

use crate::state::HostState;
use kernel_abi::USER;
use std::fmt;
use std::sync::Arc;
use wasmtime::{Caller, FuncType, Linker, Result, Val, ValType};

/// The plugin a user host function was called from: its kernel and host state.
pub struct CurrentPlugin<'a, 'b> {
    caller: &'a mut Caller<'b, HostState>,
}

impl fmt::Debug for CurrentPlugin<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentPlugin")
    }
}

impl CurrentPlugin<'_, '_> {
    /// A copy of the live block `h` (empty for anything else).
    pub fn read_block(&mut self, h: u64) -> Result<Vec<u8>> {
        let k = self.caller.data().kernel()?;
        k.read_block(&mut *self.caller, h)
    }

    /// A new block holding `data` (`0` when empty).
    pub fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64> {
        let k = self.caller.data().kernel()?;
        k.alloc_bytes(&mut *self.caller, data)
    }

    /// Frees the block `h`.
    pub fn free(&mut self, h: u64) -> Result<()> {
        let k = self.caller.data().kernel()?;
        k.free(&mut *self.caller, h)
    }

    /// The plugin's config value for `key`.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.caller.data().services.config_get(key.as_bytes())
    }
}

type RawCallback =
    dyn Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val]) -> Result<()> + Send + Sync;
type BytesCallback = dyn Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync;

/// What a user host function does.
#[derive(Clone)]
enum Callback {
    /// Any wasm type, on the plugin's values and kernel ([`HostFunction::new`]).
    Raw {
        params: Vec<ValType>,
        results: Vec<ValType>,
        f: Arc<RawCallback>,
    },
    /// `(i64) -> i64` on blocks, by value ([`HostFunction::bytes`]): the only kind a
    /// composed plugin, whose kernel the host cannot see, can call.
    Bytes(Arc<BytesCallback>),
}

/// A user host function: what a plugin imports from `extism:host/user` (or another module).
#[derive(Clone)]
pub struct HostFunction {
    /// The import module.
    pub namespace: String,
    /// The import name.
    pub name: String,
    callback: Callback,
}

impl fmt::Debug for HostFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostFunction({}::{})", self.namespace, self.name)
    }
}

impl HostFunction {
    /// A host function of any wasm type in `extism:host/user`, on the plugin's values and
    /// kernel (classic plugins only).
    pub fn new(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        f: impl Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        HostFunction {
            namespace: USER.to_string(),
            name: name.into(),
            callback: Callback::Raw {
                params: params.into_iter().collect(),
                results: results.into_iter().collect(),
                f: Arc::new(f),
            },
        }
    }

    /// The common shape, `(i64) -> i64` on handles: `f` gets the argument block's bytes and
    /// returns the result's bytes, which the host copies into a new block. The plugin keeps
    /// ownership of the argument (extism-pdk frees it after the call). Works for classic
    /// and composed plugins alike.
    pub fn bytes(
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        HostFunction {
            namespace: USER.to_string(),
            name: name.into(),
            callback: Callback::Bytes(Arc::new(f)),
        }
    }

    /// The same function under another import module.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Calls a [`bytes`](Self::bytes) function by value (the composed path); `None` for a
    /// function made with [`new`](Self::new).
    pub(crate) fn call_bytes(&self, input: &[u8]) -> Option<Result<Vec<u8>>> {
        match &self.callback {
            Callback::Bytes(f) => Some(f(input)),
            Callback::Raw { .. } => None,
        }
    }

    pub(crate) fn define(&self, linker: &mut Linker<HostState>) -> Result<()> {
        let (params, results) = match &self.callback {
            Callback::Raw {
                params, results, ..
            } => (params.clone(), results.clone()),
            Callback::Bytes(_) => (vec![ValType::I64], vec![ValType::I64]),
        };
        let ty = FuncType::new(linker.engine(), params, results);
        let callback = self.callback.clone();
        linker.func_new(
            &self.namespace,
            &self.name,
            ty,
            move |mut caller, args, out| {
                let mut p = CurrentPlugin {
                    caller: &mut caller,
                };
                match &callback {
                    Callback::Raw { f, .. } => f(&mut p, args, out),
                    Callback::Bytes(f) => {
                        let input = p.read_block(args[0].unwrap_i64() as u64)?;
                        let result = f(&input)?;
                        out[0] = Val::I64(p.alloc_bytes(&result)? as i64);
                        Ok(())
                    }
                }
            },
        )?;
        Ok(())
    }
}

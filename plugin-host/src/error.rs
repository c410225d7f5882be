//! [`CallError`]: why a call failed, each variant one line.

use crate::options::PluginOptions;
use std::fmt;
use std::time::Duration;
use wasmtime::Trap;

/// Why a call failed. Each variant prints as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The plugin exports no function of that name.
    NoFunction(String),
    /// The export is not an Extism function (`() -> ()` or `() -> i32`).
    NotAnExtismFunction(String, String),
    /// The plugin returned a non-zero code, with the message it set, if any.
    Failed {
        /// The code.
        code: i32,
        /// The error block's text.
        message: Option<String>,
    },
    /// The call ran past its timeout.
    Timeout(Duration),
    /// The call used up its fuel.
    OutOfFuel(u64),
    /// The plugin's memory limit was reached.
    OutOfMemory(String),
    /// The plugin trapped, or a host function failed.
    Trap(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoFunction(n) => write!(f, "the plugin has no function `{n}`"),
            CallError::NotAnExtismFunction(n, ty) => write!(
                f,
                "`{n}` is not an Extism function: its type is {ty}, but Extism functions take no parameters and return nothing or an i32"
            ),
            CallError::Failed {
                code,
                message: Some(m),
            } => {
                write!(f, "plugin error (code {code}): {}", one_line(m))
            }
            CallError::Failed {
                code,
                message: None,
            } => write!(f, "the plugin returned code {code}"),
            CallError::Timeout(d) => write!(f, "the call timed out after {} ms", d.as_millis()),
            CallError::OutOfFuel(n) => write!(f, "the call ran out of fuel ({n} units)"),
            CallError::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            CallError::Trap(m) => f.write_str(&one_line(m)),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// What a failed call into wasm means for the caller: a timeout or out of fuel (the
    /// limits in `options`), out of memory when a memory growth was `denied`, or a trap.
    pub(crate) fn from_wasm(e: wasmtime::Error, options: &PluginOptions, denied: bool) -> Self {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                return CallError::Timeout(options.timeout.unwrap_or_default());
            }
            Some(Trap::OutOfFuel) => return CallError::OutOfFuel(options.fuel.unwrap_or_default()),
            _ => {}
        }
        if denied {
            let p = options.memory_max_pages.unwrap_or_default();
            return CallError::OutOfMemory(format!(
                "the plugin reached its memory limit of {p} pages ({})",
                one_line(&e.root_cause().to_string())
            ));
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => {
                CallError::Trap("the plugin trapped: call stack exhausted".into())
            }
            Some(t) => CallError::Trap(format!("the plugin trapped: {t}")),
            None => CallError::Trap(one_line(&e.root_cause().to_string())),
        }
    }

    /// Whether the store may hold a trapped instance after this error (wasm stopped in the
    /// middle of a call), rather than an error reported between calls.
    pub(crate) fn is_trap(&self) -> bool {
        matches!(
            self,
            CallError::Timeout(_)
                | CallError::OutOfFuel(_)
                | CallError::OutOfMemory(_)
                | CallError::Trap(_)
        )
    }
}

/// Whether a plugin that is made anew after a trap can still be called: once making it anew
/// fails, every later call gets that reason (classic plugins on the component backend, and
/// composed plugins, are renewed: wasmtime refuses to enter a component again in a store
/// where wasm trapped).
#[derive(Debug, Default)]
pub(crate) struct Renewal {
    broken: Option<String>,
}

impl Renewal {
    /// Refuses the call when the plugin is broken.
    pub(crate) fn check(&self) -> Result<(), CallError> {
        match &self.broken {
            Some(why) => Err(CallError::Trap(why.clone())),
            None => Ok(()),
        }
    }

    /// The error a trapped call reports, given how making the plugin anew went.
    pub(crate) fn after_trap(
        &mut self,
        error: CallError,
        renewed: wasmtime::Result<()>,
    ) -> CallError {
        match renewed {
            Ok(()) => error,
            Err(e) => {
                let why = format!(
                    "the plugin cannot be called again: making it anew after a trap failed: {}",
                    one_line(&format!("{e:#}"))
                );
                self.broken = Some(why.clone());
                CallError::Trap(format!("{error}; {why}"))
            }
        }
    }
}

/// `s` with every run of white space (newlines included) made one space.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

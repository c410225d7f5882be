//! The host functions a classic plugin imports from `extism:host/env`, and user host
//! functions. One file per service, each holding that service's logic for both plugin forms
//! (as methods of [`Services`](crate::Services), which the composed path calls too) and its
//! classic host functions:
//!
//! - [`config`] has `config_get`;
//! - [`vars`] has `var_get`, `var_set`, and the [`Vars`](vars::Vars) themselves;
//! - [`http`] has `http_request`, `http_status_code`, `http_headers`;
//! - [`log`] has `log_*`, `get_log_level`;
//! - [`user`] has [`HostFunction`] (user host functions) and [`CurrentPlugin`].
//!
//! [`link`] defines every function of the ABI table's host-function list
//! ([`kernel_abi::for_each_host_function!`]), each checked at compile time against the
//! table's type. A classic host function reads its arguments out of the kernel through
//! [`Kernel`], whichever form the kernel takes, and takes ownership of (frees) the handles
//! passed to it, as the Extism runtime does; user host functions leave that to the plugin.
//! Every limit is checked before anything is copied out of the kernel: a block's length is
//! known in O(1).

pub mod config;
pub mod http;
pub mod log;
pub mod user;
pub mod vars;

pub use user::{CurrentPlugin, HostFunction};

use crate::backend::Kernel;
use crate::state::HostState;
use config::*;
use http::*;
use kernel_abi::ENV;
use log::*;
use vars::*;
use wasmtime::{Caller, Linker};
use wasmtime::{Result, bail};

macro_rules! define_all {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        /// Defines every `extism:host/env` host function in `linker`.
        pub fn link(linker: &mut Linker<HostState>) -> Result<()> {
            $(
                let f: fn(
                    Caller<'_, HostState>,
                    $(kernel_abi::core_type!($ty)),*
                ) -> Result<kernel_abi::core_result!($($ret)?)> = $name;
                linker.func_wrap(ENV, stringify!($name), f)?;
            )*
            Ok(())
        }
    };
}

kernel_abi::for_each_host_function!(define_all);

/// A copy of the live block `h`, which is then freed (the host function owns it).
pub(crate) fn take(c: &mut Caller<'_, HostState>, k: &Kernel, h: u64) -> Result<Vec<u8>> {
    let bytes = k.read_block(&mut *c, h)?;
    k.free(&mut *c, h)?;
    Ok(bytes)
}

/// The key block `h` of a `config_get` / `var_get` / `var_set` (`what`), freed: `0` is the
/// empty key; anything else that is not a live block fails the call.
pub(crate) fn take_key(
    c: &mut Caller<'_, HostState>,
    k: &Kernel,
    h: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if h != 0 && k.length(&mut *c, h)? == 0 {
        bail!("{what}: the key {h} is not a live block of the kernel");
    }
    take(c, k, h)
}

/// `data` as a new block for the plugin, `0` for none.
pub(crate) fn give(c: &mut Caller<'_, HostState>, k: &Kernel, data: Option<&[u8]>) -> Result<u64> {
    match data {
        Some(d) => k.alloc_bytes(&mut *c, d),
        None => Ok(0),
    }
}

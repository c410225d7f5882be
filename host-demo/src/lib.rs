//! # host-demo: run Extism plugins on this project's kernel
//!
//! A wasmtime host for Extism plugins. The kernel behind a plugin is either this project's
//! core module, linked into the plugin the way Extism's runtime links its own kernel, or its
//! component, whose `raw` interface answers the plugin's kernel imports through host
//! functions. The same plugin, unchanged, gives the same results on both.
//!
//! - [`Runtime`]: the engine, with both kernel forms compiled once.
//! - [`Plugin`]: a plugin linked to a kernel and the host functions; [`Plugin::call`] runs the
//!   Extism call sequence (reset, input in, call, output and error out).
//! - [`PluginPre`]: a plugin compiled and linked once, instantiated many times (each
//!   instance with its own kernel and store; instances are `Send`).
//! - [`PluginOptions`]: config, allowed HTTP hosts, WASI, timeout, fuel, memory limit, log
//!   level, user host functions ([`HostFunction`]).
//! - [`backend`]: the two kernel forms behind one type. [`host_fns`]: the host functions.
//! - [`componentize`]: an unmodified plugin composed with the kernel component into one
//!   self-contained component; [`composed`]: running such a component.
//! - [`density`]: many live instances of one plugin, measured (`host-demo density`).
//! - [`vars`]: a plugin's vars under their byte limit. [`loopback`]: a tiny HTTP server for
//!   the demo and the tests.
//! - [`artifacts`]: the kernel artifacts and sample plugins, embedded at build time.

pub mod artifacts;
pub mod backend;
pub mod cli;
pub mod componentize;
pub mod composed;
pub mod demo;
pub mod density;
pub mod host_fns;
pub mod http;
pub mod loopback;
pub mod plugin;
pub mod pre;
pub mod runtime;
pub mod vars;

pub use backend::KernelKind;
pub use host_fns::{CurrentPlugin, HostFunction};
pub use plugin::{CallError, Plugin, PluginOptions};
pub use pre::PluginPre;
pub use runtime::{Runtime, RuntimeOptions};

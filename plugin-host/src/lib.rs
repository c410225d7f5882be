//! # plugin-host: run Extism plugins on this project's kernel, with wasmtime
//!
//! A host library for Extism plugins. The kernel behind a plugin is either this project's
//! core module, linked into the plugin the way Extism's runtime links its own kernel, or its
//! component, whose `raw` interface answers the plugin's kernel imports through host
//! functions. The same plugin, unchanged, gives the same results on both. A plugin can also
//! be composed with the kernel into one self-contained component ([`componentize`]) and run
//! as such ([`ComposedPlugin`]), here or in any component host.
//!
//! ```
//! use plugin_host::{HostFunction, KernelKind, Plugin, PluginOptions, Runtime, RuntimeOptions};
//!
//! # fn main() -> wasmtime::Result<()> {
//! // An Extism plugin: here a tiny one in WAT that returns its input and calls a user host
//! // function; usually a `.wasm` built with an Extism PDK.
//! let wasm = wat::parse_str(r#"(module
//!     (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
//!     (import "extism:host/env" "input_length" (func $input_length (result i64)))
//!     (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
//!     (import "extism:host/user" "shout" (func $shout (param i64) (result i64)))
//!     (func (export "echo") (result i32)
//!         (call $output_set (call $input_offset) (call $input_length))
//!         (i32.const 0))
//!     (func (export "shout") (result i32) (local $h i64)
//!         (local.set $h (call $shout (call $input_offset)))
//!         (call $output_set (local.get $h) (call $input_length))
//!         (i32.const 0)))"#)?;
//!
//! // One runtime per process: the engine, the kernel forms (each compiled on first use),
//! // the timeout clock; `RuntimeOptions::cache` keeps compiled code on disk.
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! let options = PluginOptions {
//!     functions: vec![HostFunction::bytes("shout", |input| Ok(input.to_ascii_uppercase()))],
//!     ..PluginOptions::default()
//! };
//! for kernel in [KernelKind::Core, KernelKind::Component] {
//!     let mut plugin = Plugin::new(&runtime, &wasm, PluginOptions { kernel, ..options.clone() })?;
//!     assert_eq!(plugin.call("echo", b"hello")?, b"hello");
//!     assert_eq!(plugin.call("shout", b"hello")?, b"HELLO");
//!     // Errors are values, one line each.
//!     let e = plugin.call("nope", b"").unwrap_err();
//!     assert_eq!(e.to_string(), "the plugin has no function `nope`");
//! }
//!
//! // The same plugin as one self-contained component (kernel inside), run here.
//! let component = plugin_host::componentize::componentize(&wasm).map_err(wasmtime::Error::from_anyhow)?;
//! let mut composed = plugin_host::ComposedPlugin::new(&runtime, &component, options)?;
//! assert_eq!(composed.call("shout", b"hello")?, b"HELLO");
//! # Ok(())
//! # }
//! ```
//!
//! ## What is where
//!
//! - [`Runtime`] (`runtime.rs`): the engine, the kernel forms (each compiled once, on first
//!   use), the epoch ticker of call timeouts; [`cache`]: the compilation cache on disk
//!   ([`RuntimeOptions::cache`]).
//! - [`PluginOptions`] (`options.rs`): config, allowed HTTP hosts, WASI, timeout, fuel,
//!   memory limit, log level, var and HTTP limits, user host functions.
//! - [`Plugin`] (`plugin.rs`): a plugin linked to a kernel and the host functions;
//!   [`Plugin::call`] runs the Extism call sequence (reset, input in, call, output and error
//!   out). [`CallError`] (`error.rs`): why a call failed, one line each.
//! - [`PluginPre`] (`pre.rs`): a plugin compiled and linked once, instantiated many times
//!   (each instance with its own kernel and store; instances are `Send`); `link.rs`: what
//!   answers each of a plugin's imports.
//! - [`backend`]: the two kernel forms behind one type. [`state`]: what a store holds
//!   ([`Services`], the host services' state for either plugin form). [`limits`]: one memory
//!   limit over a store's memories.
//! - [`host_fns`]: the host functions, one file per service (config, vars, HTTP, logging,
//!   user functions); [`http`]: the HTTP client behind `http_request`.
//! - [`componentize`]: an unmodified plugin composed with the kernel into one component;
//!   [`composed`]: running such a component.
//! - [`manifest`]: Extism manifests (JSON or TOML): wasm sources by path, data or URL with
//!   their hashes, and the options they set.
//! - [`density`]: many live instances of one plugin, measured.
//! - [`artifacts`]: the kernel artifacts, embedded at build time.
//!
//! The kernel ABI and the host-function table come from the `kernel-abi` crate.

pub mod artifacts;
pub mod backend;
pub mod cache;
pub mod componentize;
pub mod composed;
pub mod density;
pub mod error;
pub mod host_fns;
pub mod http;
pub mod limits;
mod link;
pub mod manifest;
pub mod options;
pub mod plugin;
pub mod pre;
pub mod runtime;
pub mod state;

pub use backend::KernelKind;
pub use cache::CacheStats;
pub use composed::ComposedPlugin;
pub use error::CallError;
pub use host_fns::{CurrentPlugin, HostFunction};
pub use limits::Limits;
pub use manifest::{Manifest, NamedModule};
pub use options::{AllowedPath, PluginOptions};
pub use plugin::Plugin;
pub use pre::{PluginPre, is_component};
pub use runtime::{Runtime, RuntimeOptions};
pub use state::Services;

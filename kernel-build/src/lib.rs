//! # kernel-build: the kernel's wasm artifacts
//!
//! - [`artifacts`]: builds the core module, the component and the sample plugins with
//!   nested cargo invocations (used by the build scripts of plugin-host and host-fixtures,
//!   and by `make build`).
//! - [`postlink`]: the core module's post-link step (`extism_context`, exact exports).
//! - [`componentize`]: the component from the kernel-component crate's core module.
//!
//! The ABI it checks the core module against is `kernel-abi`'s table.
pub mod artifacts;
pub mod componentize;
pub mod postlink;

//! The kernel's wasm artifacts, embedded in this crate by its build script.

/// This project's kernel as a core module (`extism-kernel.wasm`).
pub const KERNEL_CORE: &[u8] = include_bytes!(env!("KERNEL_CORE_WASM"));

/// This project's kernel as a component (`extism-kernel.component.wasm`).
pub const KERNEL_COMPONENT: &[u8] = include_bytes!(env!("KERNEL_COMPONENT_WASM"));

/// The adapter that answers a componentized plugin's host-function imports
/// (`extism-plugin-env.component.wasm`, world `plugin-env-adapter`).
pub const PLUGIN_ADAPTER_ENV: &[u8] = include_bytes!(env!("PLUGIN_ADAPTER_ENV_WASM"));

/// The adapter that runs a componentized plugin's calls (`extism-plugin-entry.component.wasm`,
/// world `plugin-entry-adapter`).
pub const PLUGIN_ADAPTER_ENTRY: &[u8] = include_bytes!(env!("PLUGIN_ADAPTER_ENTRY_WASM"));

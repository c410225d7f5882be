//! The wasm artifacts embedded in this crate by its build script: the kernel in both forms
//! and the sample plugins.

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

/// The sample plugins (`plugins/`), by short name.
pub const PLUGINS: [(&str, &[u8]); 7] = [
    (
        "count_vowels",
        include_bytes!(env!("PLUGIN_COUNT_VOWELS_WASM")),
    ),
    ("echo", include_bytes!(env!("PLUGIN_ECHO_WASM"))),
    ("fail", include_bytes!(env!("PLUGIN_FAIL_WASM"))),
    (
        "alloc_churn",
        include_bytes!(env!("PLUGIN_ALLOC_CHURN_WASM")),
    ),
    ("host_fn", include_bytes!(env!("PLUGIN_HOST_FN_WASM"))),
    ("http", include_bytes!(env!("PLUGIN_HTTP_WASM"))),
    ("wasi_print", include_bytes!(env!("PLUGIN_WASI_PRINT_WASM"))),
];

/// A sample plugin's bytes by short name (`"echo"`, `"count_vowels"`, ...).
pub fn plugin(name: &str) -> Option<&'static [u8]> {
    PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

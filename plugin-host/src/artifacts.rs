//! The kernel's wasm artifacts, embedded in this crate by its build script.

use std::sync::OnceLock;

/// This project's kernel as a core module (`extism-kernel.wasm`): the ABI exactly, what
/// Extism's runtime loads.
pub const KERNEL_CORE: &[u8] = include_bytes!(env!("KERNEL_CORE_WASM"));

/// This project's kernel as a component (`extism-kernel.component.wasm`).
pub const KERNEL_COMPONENT: &[u8] = include_bytes!(env!("KERNEL_COMPONENT_WASM"));

/// [`KERNEL_CORE`] as this crate runs it, on the core path and inside composed plugins:
/// without the `extism_context` global, which only Extism's runtime sets
/// ([`wasm_util::without_context_global`] says why it matters). The same code otherwise.
pub fn kernel_core_hosted() -> &'static [u8] {
    static HOSTED: OnceLock<Vec<u8>> = OnceLock::new();
    HOSTED.get_or_init(|| {
        wasm_util::without_context_global(KERNEL_CORE)
            .expect("the embedded kernel module loses its context global (checked by the tests)")
    })
}

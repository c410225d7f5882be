//! The kernel's wasm artifacts, embedded in this crate by its build script.

/// This project's kernel as a core module (`extism-kernel.wasm`): the ABI exactly, what
/// Extism's runtime loads.
pub const KERNEL_CORE: &[u8] = include_bytes!(env!("KERNEL_CORE_WASM"));

/// The same kernel module optimised for speed (`extism-kernel.fast.wasm`, profile
/// `wasm-release-fast`): what this crate runs, as [`KERNEL_CORE_HOSTED`].
pub const KERNEL_CORE_FAST: &[u8] = include_bytes!(env!("KERNEL_CORE_FAST_WASM"));

/// This project's kernel as a component (`extism-kernel.component.wasm`).
pub const KERNEL_COMPONENT: &[u8] = include_bytes!(env!("KERNEL_COMPONENT_WASM"));

/// The kernel module as this crate runs it, on the core path and inside composed plugins:
/// [`KERNEL_CORE_FAST`] without the `extism_context` global, which only Extism's runtime
/// sets ([`wasm_util::without_context_global`] says why it matters), made by the build
/// script.
pub const KERNEL_CORE_HOSTED: &[u8] = include_bytes!(env!("KERNEL_CORE_HOSTED_WASM"));

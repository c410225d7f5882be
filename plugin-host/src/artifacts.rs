//! The kernel's wasm artifacts, embedded in this crate by its build script.

/// This project's kernel as a core module (`extism-kernel.wasm`).
pub const KERNEL_CORE: &[u8] = include_bytes!(env!("KERNEL_CORE_WASM"));

/// This project's kernel as a component (`extism-kernel.component.wasm`).
pub const KERNEL_COMPONENT: &[u8] = include_bytes!(env!("KERNEL_COMPONENT_WASM"));

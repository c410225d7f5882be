//! Builds the kernel's wasm artifacts and the sample plugins (through kernel-build's nested
//! cargo invocations) so that the library can embed them: `cargo test` and `make demo` then
//! work from a fresh clone with nothing built beforehand.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.parent().expect("host-demo sits in the workspace");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("wasm");
    for p in [
        "kernel-core/src",
        "kernel-core/Cargo.toml",
        "kernel-component/src",
        "kernel-component/Cargo.toml",
        "plugin-adapter",
        "wit",
        "kernel-build/src",
        "plugins",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let a = kernel_build::artifacts::build_all(root, &root.join("target").join("wasm-build"), &out)
        .unwrap_or_else(|e| panic!("building the wasm artifacts: {e:#}"));
    println!("cargo:rustc-env=KERNEL_CORE_WASM={}", a.core.display());
    println!(
        "cargo:rustc-env=KERNEL_COMPONENT_WASM={}",
        a.component.display()
    );
    println!(
        "cargo:rustc-env=PLUGIN_ADAPTER_ENV_WASM={}",
        a.adapter_env.display()
    );
    println!(
        "cargo:rustc-env=PLUGIN_ADAPTER_ENTRY_WASM={}",
        a.adapter_entry.display()
    );
    for (name, path) in &a.plugins {
        println!(
            "cargo:rustc-env={}_WASM={}",
            name.to_uppercase(),
            path.display()
        );
    }
}

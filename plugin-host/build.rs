//! Builds the kernel's wasm artifacts (the core module and the component) through kernel-build's nested cargo invocations, so that the library can
//! embed them: `cargo build` and `cargo test` then work from a fresh clone with nothing built
//! beforehand. The sample plugins are not built here (see `fixtures/`).

fn main() {
    kernel_build::artifacts::build_script(
        &[
            "kernel-abi/src",
            "kernel-core/src",
            "kernel-core/Cargo.toml",
            "kernel-component/src",
            "kernel-component/Cargo.toml",
            "wit",
            "kernel-build/src",
            "wasm-util/src",
            "Cargo.toml",
            "Cargo.lock",
        ],
        |root, out| {
            let a = kernel_build::artifacts::build_kernels(
                root,
                &root.join("target").join("wasm-build"),
                out,
            )?;
            Ok(vec![
                ("KERNEL_CORE_WASM".into(), a.core),
                ("KERNEL_CORE_FAST_WASM".into(), a.core_fast),
                ("KERNEL_COMPONENT_WASM".into(), a.component),
            ])
        },
    );
}

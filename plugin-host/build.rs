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
            // The module as this crate runs it, made here rather than at every start-up
            // (re-encoding it took about 0.4 ms, a tenth of a warm `host-demo call`).
            let hosted = out.join("extism-kernel.hosted.wasm");
            std::fs::write(
                &hosted,
                wasm_util::without_context_global(&std::fs::read(&a.core_fast)?)?,
            )?;
            Ok(vec![
                ("KERNEL_CORE_WASM".into(), a.core),
                ("KERNEL_CORE_HOSTED_WASM".into(), hosted),
                ("KERNEL_CORE_FAST_WASM".into(), a.core_fast),
                ("KERNEL_COMPONENT_WASM".into(), a.component),
            ])
        },
    );
}

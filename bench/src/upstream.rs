//! Upstream's kernel, fetched through cargo at bench time.
//!
//! A scratch package under `target/upstream-kernel/` depends on `extism = "=1.41.0"`;
//! `cargo fetch` puts the package in cargo's registry cache (a no-op when it is already
//! there), `cargo metadata` says where, and the kernel is that package's
//! `src/extism-runtime.wasm`. Nothing of it is copied into the repository.

use std::path::PathBuf;
use std::process::Command;
use wasmtime::error::Context;
use wasmtime::{Result, bail, ensure};

/// The `extism` release whose kernel is measured.
pub const EXTISM_VERSION: &str = "1.41.0";

/// Upstream's kernel: where cargo keeps it, and its bytes.
#[derive(Debug, Clone)]
pub struct UpstreamKernel {
    /// `.../registry/src/*/extism-1.41.0/src/extism-runtime.wasm`.
    pub path: PathBuf,
    /// The module's bytes.
    pub wasm: Vec<u8>,
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Fetches the `extism` package through cargo and reads its kernel; checks it is a core
/// wasm module.
pub fn fetch() -> Result<UpstreamKernel> {
    let dir = crate::target_dir().join("upstream-kernel");
    std::fs::create_dir_all(dir.join("src")).context("creating the scratch package")?;
    let manifest = dir.join("Cargo.toml");
    std::fs::write(
        &manifest,
        format!(
            "# Written by kernel-bench: only to have cargo fetch upstream's kernel.\n\
             [package]\nname = \"upstream-kernel-fetch\"\nversion = \"0.0.0\"\n\
             edition = \"2021\"\npublish = false\n\n\
             [dependencies]\nextism = \"={EXTISM_VERSION}\"\n\n[workspace]\n"
        ),
    )
    .context("writing the scratch manifest")?;
    std::fs::write(dir.join("src/lib.rs"), "").context("writing the scratch package")?;

    let status = cargo()
        .args(["fetch", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .status()
        .context("running cargo fetch")?;
    ensure!(
        status.success(),
        "cargo fetch of extism {EXTISM_VERSION} failed"
    );

    let meta = crate::run_json(
        cargo()
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest),
        "cargo metadata",
    )?;
    let Some(extism_manifest) = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "extism" && p["version"] == EXTISM_VERSION)
        .and_then(|p| p["manifest_path"].as_str())
    else {
        bail!("cargo metadata lists no extism {EXTISM_VERSION}");
    };
    let path = PathBuf::from(extism_manifest)
        .parent()
        .context("extism's manifest has no folder")?
        .join("src/extism-runtime.wasm");
    let wasm = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        wasm.starts_with(b"\0asm\x01\0\0\0"),
        "{} is not a core wasm module",
        path.display()
    );
    Ok(UpstreamKernel { path, wasm })
}

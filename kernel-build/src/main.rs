//! `kernel-build [OUT_DIR]`: builds every wasm artifact and prints their sizes (`make build`).

use anyhow::Result;
use kernel_build::artifacts;
use std::path::PathBuf;

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kernel-build sits in the workspace")
        .to_path_buf();
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm"));
    let target = root.join("target");
    let a = artifacts::build_kernels(&root, &target.join("wasm-build"), &out)?;
    let plugins = artifacts::build_plugins(&root, &target.join("wasm-plugins"), &out)?;
    println!("{:<40} {:>9}", "artifact", "bytes");
    for p in [&a.core, &a.core_fast, &a.component]
        .into_iter()
        .chain(plugins.iter().map(|(_, p)| p))
    {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        println!("{name:<40} {:>9}", std::fs::metadata(p)?.len());
    }
    Ok(())
}

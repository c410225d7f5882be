//! Builds every wasm artifact with nested cargo invocations, one per artifact.
//!
//! Each wasm crate is built in its own cargo invocation with `--target` given explicitly:
//! cargo unifies features across one invocation, so building the core module (feature
//! `exports`) together with the component would give the component the raw `alloc`/`free`
//! symbols. The nested builds use their own target directory, so they never wait on the
//! lock of the build that runs them (the build scripts of plugin-host and host-fixtures).

use crate::{componentize::componentize, postlink::finish_core_module};
use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the core module.
pub const CORE_MODULE: &str = "extism-kernel.wasm";
/// File name of the core module optimised for speed (profile `wasm-release-fast`), which
/// plugin-host runs.
pub const CORE_MODULE_FAST: &str = "extism-kernel.fast.wasm";
/// File name of the component.
pub const COMPONENT: &str = "extism-kernel.component.wasm";

/// Stack of the core module: the kernel's functions barely use one (the contract suite runs
/// every export under it). Small enough that the statics above it have 2-byte addresses.
pub const CORE_STACK_BYTES: u32 = 8 * 1024;

/// Stack of the component: its canonical-ABI glue copies lists through the heap, not the
/// stack, so 64 KiB is ample (the default 1 MiB would be committed by every instance).
pub const COMPONENT_STACK_BYTES: u32 = 64 * 1024;

/// The sample plugins: crate file stem and target.
pub const PLUGINS: [(&str, &str); 8] = [
    ("plugin_count_vowels", "wasm32-unknown-unknown"),
    ("plugin_echo", "wasm32-unknown-unknown"),
    ("plugin_fail", "wasm32-unknown-unknown"),
    ("plugin_alloc_churn", "wasm32-unknown-unknown"),
    ("plugin_host_fn", "wasm32-unknown-unknown"),
    ("plugin_http", "wasm32-unknown-unknown"),
    ("plugin_wasi_print", "wasm32-wasip1"),
    ("plugin_wasi_files", "wasm32-wasip1"),
];

/// The kernel's artifacts (what a host embeds), and where they were built.
#[derive(Debug, Clone)]
pub struct KernelArtifacts {
    /// The core module, post-linked.
    pub core: PathBuf,
    /// The same, optimised for speed.
    pub core_fast: PathBuf,
    /// The component.
    pub component: PathBuf,
}

/// The wasm targets the builds need; `make setup` installs them.
pub const WASM_TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip1"];

/// Fails with one line naming the first of `targets` that the Rust toolchain building this
/// has no standard library for, and how to install it (rustc would otherwise fail deep in a
/// nested build with "can't find crate for `core`").
pub fn check_targets(targets: &[&str]) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| format!("running {} --print sysroot", rustc.to_string_lossy()))?;
    ensure!(out.status.success(), "`rustc --print sysroot` failed");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for target in targets {
        let lib = sysroot.join("lib").join("rustlib").join(target).join("lib");
        ensure!(
            lib.is_dir(),
            "the Rust target `{target}` is not installed: run `make setup` (or `rustup target add {}`)",
            WASM_TARGETS.join(" ")
        );
    }
    Ok(())
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root);
    // What a parent build (a build script, `cargo test`) sets must not leak into the wasm
    // builds: host rustflags, wrappers, another target directory or target.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        c.env_remove(var);
    }
    c
}

/// The command as a shell line (program and arguments, without the environment).
fn shown(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(mut c: Command) -> Result<()> {
    let status = c
        .status()
        .with_context(|| format!("could not run `{}`", shown(&c)))?;
    ensure!(
        status.success(),
        "the nested wasm build `{}` (in {}) failed with {status}; its errors are above",
        shown(&c),
        c.get_current_dir().unwrap_or(Path::new(".")).display()
    );
    Ok(())
}

/// Builds the core module and the component of the workspace at
/// `root` into `out`, using `target_dir` for the nested cargo builds.
pub fn build_kernels(root: &Path, target_dir: &Path, out: &Path) -> Result<KernelArtifacts> {
    check_targets(&WASM_TARGETS[..1])?;
    std::fs::create_dir_all(out)?;
    let core_module = |profile: &str, file: &str| -> Result<PathBuf> {
        let linked = build_guest(
            root,
            target_dir,
            "kernel-core",
            &["--crate-type", "cdylib", "--features", "exports"],
            CORE_STACK_BYTES,
            profile,
        )?;
        let core = out.join(file);
        std::fs::write(
            &core,
            finish_core_module(&linked).context("post-linking the core module")?,
        )?;
        Ok(core)
    };
    let core = core_module("wasm-release", CORE_MODULE)?;
    let core_fast = core_module("wasm-release-fast", CORE_MODULE_FAST)?;
    // The kernel component: a no_std wit-bindgen guest.
    let component = build_component(root, target_dir, out, "kernel-component", COMPONENT)?;
    Ok(KernelArtifacts {
        core,
        core_fast,
        component,
    })
}

/// Builds the sample plugins (`plugins/`, their own workspace) into `out`, by crate file
/// stem, using `target_dir` for the nested cargo builds.
pub fn build_plugins(root: &Path, target_dir: &Path, out: &Path) -> Result<Vec<(String, PathBuf)>> {
    check_targets(&WASM_TARGETS)?;
    std::fs::create_dir_all(out)?;
    let wasm_dir = |target: &str, profile: &str| target_dir.join(target).join(profile);
    let manifest = root.join("plugins").join("Cargo.toml");
    for target in ["wasm32-unknown-unknown", "wasm32-wasip1"] {
        let mut c = cargo(root);
        c.args(["build", "--release", "--target", target, "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir);
        for (name, t) in PLUGINS {
            if t == target {
                c.args(["-p", &name.replace('_', "-")]);
            }
        }
        run(c)?;
    }
    let mut plugins = Vec::new();
    for (name, target) in PLUGINS {
        let built = wasm_dir(target, "release").join(format!("{name}.wasm"));
        let dst = out.join(format!("{name}.wasm"));
        std::fs::copy(&built, &dst).with_context(|| format!("copying {}", built.display()))?;
        plugins.push((name.to_string(), dst));
    }
    Ok(plugins)
}

/// A build script's `main` around `build`: `rerun-if-changed` for `watched` (relative to the
/// workspace root, which `build` gets with the build script's `OUT_DIR`), then `build`'s
/// `cargo:rustc-env` lines. A failure is printed as one short paragraph and the build script
/// exits with code 1, without a panic's backtrace.
pub fn build_script(
    watched: &[&str],
    build: impl FnOnce(&Path, &Path) -> Result<Vec<(String, PathBuf)>>,
) {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().unwrap_or(&manifest);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("wasm");
    for p in watched {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    match build(root, &out) {
        Ok(vars) => {
            for (var, path) in vars {
                println!("cargo:rustc-env={var}={}", path.display());
            }
        }
        Err(e) => {
            eprintln!(
                "error: {}",
                format!("{e:#}")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            std::process::exit(1);
        }
    }
}

/// Builds the library of the workspace crate `krate` for wasm32-unknown-unknown in the
/// `wasm-release` profile (`extra` are more `cargo rustc` arguments before `--`), with a
/// stack of `stack` bytes; the linked module.
fn build_guest(
    root: &Path,
    target_dir: &Path,
    krate: &str,
    extra: &[&str],
    stack: u32,
    profile: &str,
) -> Result<Vec<u8>> {
    let mut c = cargo(root);
    c.args(["rustc", "-p", krate, "--lib"])
        .args(extra)
        .args(["--target", "wasm32-unknown-unknown", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--", "-C"])
        .arg(format!("link-arg=-zstack-size={stack}"))
        // Without this, wasm-ld keeps every static's address as a padded 5-byte LEB.
        .args(["-C", "link-arg=--compress-relocations"]);
    run(c)?;
    let module = target_dir
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join(format!("{}.wasm", krate.replace('-', "_")));
    std::fs::read(&module).with_context(|| format!("reading {}", module.display()))
}

/// Builds the wit-bindgen guest crate `krate` ([`build_guest`], stack
/// [`COMPONENT_STACK_BYTES`]) and writes its component to `out/file`.
fn build_component(
    root: &Path,
    target_dir: &Path,
    out: &Path,
    krate: &str,
    file: &str,
) -> Result<PathBuf> {
    let module = build_guest(
        root,
        target_dir,
        krate,
        &[],
        COMPONENT_STACK_BYTES,
        "wasm-release",
    )?;
    let dst = out.join(file);
    std::fs::write(
        &dst,
        componentize(&module).with_context(|| format!("componentizing {krate}"))?,
    )?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_wasm_target_is_one_line_naming_it_and_make_setup() {
        let e = check_targets(&["wasm32-nonexistent-target"]).unwrap_err();
        let line = format!("{e:#}");
        assert_eq!(
            line,
            "the Rust target `wasm32-nonexistent-target` is not installed: run `make setup` (or `rustup target add wasm32-unknown-unknown wasm32-wasip1`)"
        );
        // The targets the builds use are installed here (make setup ran).
        check_targets(&WASM_TARGETS).unwrap();
    }
}

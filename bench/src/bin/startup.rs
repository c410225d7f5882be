//! `cargo run -p kernel-bench --release --bin startup [-- --runs N] [--extism PATH]
//! [--host-demo PATH]`: the whole-process start-up of `target/release/host-demo call` (or
//! the given binary) with its compilation cache off,
//! cold and warm, and the same for Extism's runtime when its scratch program is built
//! (`make bench-startup-extism` builds it and runs this); see `kernel_bench::startup`.

use kernel_bench::startup;
use std::path::PathBuf;
use std::process::ExitCode;
use wasmtime::error::Context;
use wasmtime::{Result, bail};

fn run() -> Result<()> {
    let mut runs = startup::RUNS;
    let mut extism = None;
    let mut host_demo = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--runs") => {
                runs = args
                    .next()
                    .and_then(|n| n.to_str()?.parse().ok())
                    .context("--runs N")?;
            }
            Some("--extism") => extism = Some(PathBuf::from(args.next().context("--extism PATH")?)),
            Some("--host-demo") => {
                host_demo = Some(PathBuf::from(args.next().context("--host-demo PATH")?));
            }
            _ => bail!("usage: startup [--runs N] [--extism PATH] [--host-demo PATH]"),
        }
    }
    let target = kernel_bench::target_dir();
    let host_demo = host_demo.unwrap_or_else(|| target.join("release/host-demo"));
    if !host_demo.exists() {
        bail!(
            "{} is missing: `cargo build -p host-demo --release` first",
            host_demo.display()
        );
    }
    let extism = match extism {
        Some(p) if !p.exists() => bail!("{} is missing", p.display()),
        Some(p) => Some(p),
        None => Some(startup::extism_bin()).filter(|p| p.exists()),
    };
    let scratch = target.join("startup-scratch");
    let plugin = startup::plugin_file(&scratch.join("plugin"))?;
    let mut programs = vec![startup::host_demo(&host_demo, &plugin)];
    match &extism {
        Some(p) => programs.push(startup::extism(p, &plugin)),
        None => eprintln!(
            "startup: no Extism program at {} (`make bench-startup-extism` builds it); ours only",
            startup::extism_bin().display()
        ),
    }
    eprintln!(
        "startup: {runs} runs of each program with the cache off, cold and warm (load average {})",
        kernel_bench::load_average()
    );
    let rows = startup::measure(&programs, runs, &scratch.join("caches"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    print!("{}", startup::render(&rows, runs));
    eprintln!(
        "startup: load average {} at the end",
        kernel_bench::load_average()
    );
    Ok(())
}

fn main() -> ExitCode {
    kernel_bench::exit("startup", run())
}

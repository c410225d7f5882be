//! `extism-startup PLUGIN.wasm FUNCTION INPUT`: one call of an Extism plugin through
//! Extism's own runtime (the `extism` crate), the output on stdout: what
//! `make bench-startup-extism` times once per process, next to `host-demo call`.
//!
//! With `EXTISM_STARTUP_CACHE_DIR=DIR`, Extism's compilation cache (wasmtime's `cache`
//! feature, as Extism configures it) lives in `DIR/cache`, with its configuration written to
//! `DIR/wasmtime-cache.toml`; without it the cache is off.

use extism::{Manifest, PluginBuilder, Wasm};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, function, input] = args.as_slice() else {
        return Err("usage: extism-startup PLUGIN.wasm FUNCTION INPUT".into());
    };
    let builder = PluginBuilder::new(Manifest::new([Wasm::file(plugin)])).with_wasi(false);
    let builder = match std::env::var_os("EXTISM_STARTUP_CACHE_DIR") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            let config = dir.join("wasmtime-cache.toml");
            let cache = dir.join("cache");
            std::fs::write(
                &config,
                format!("[cache]\ndirectory = {:?}\n", cache.display().to_string()),
            )?;
            builder.with_cache_config(config)
        }
        None => builder.with_cache_disabled(),
    };
    let mut plugin = builder.build()?;
    let output: &[u8] = plugin.call(function, input.as_bytes())?;
    let mut stdout = std::io::stdout();
    stdout.write_all(output)?;
    stdout.flush()?;
    Ok(())
}

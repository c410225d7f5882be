//! `host-demo demo` (`make demo`): every sample plugin, on both kernel forms, side by side.

use host_fixtures::loopback;
use host_fixtures::samples::{self, host_reverse};
use plugin_host::{CallError, KernelKind, Plugin, PluginOptions, Runtime, RuntimeOptions};
use std::io::Write;
use std::time::Instant;
use wasmtime::Result;

/// One scripted call.
struct Step {
    plugin: &'static str,
    function: &'static str,
    input: Vec<u8>,
    /// Timed repetitions after the first call.
    reps: u32,
}

fn step(
    plugin: &'static str,
    function: &'static str,
    input: impl Into<Vec<u8>>,
    reps: u32,
) -> Step {
    Step {
        plugin,
        function,
        input: input.into(),
        reps,
    }
}

fn show(bytes: &[u8]) -> String {
    if bytes.len() > 48 {
        let sum = bytes
            .iter()
            .fold(0u32, |a, &b| a.wrapping_mul(31).wrapping_add(b as u32));
        return format!("<{} bytes, sum {sum:08x}>", bytes.len());
    }
    let s = String::from_utf8_lossy(bytes);
    format!("{s:?}")
}

/// What one call gave: its output, or its error line.
fn outcome(r: Result<Vec<u8>, CallError>) -> String {
    match r {
        Ok(out) => show(&out),
        Err(e) => format!("error: {e}"),
    }
}

/// Runs the demo, printing the table to `out`; whether both kernel forms agreed everywhere.
pub fn run(out: &mut impl Write) -> Result<bool> {
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let steps = [
        step("count_vowels", "count_vowels", "Hello, World!", 200),
        step("count_vowels", "count_vowels", "aeiou AEIOU", 0),
        step("echo", "echo", "", 1000),
        step("echo", "echo", "hello, kernel", 1000),
        step("echo", "reverse", "stressed", 200),
        step("echo", "echo", big.clone(), 10),
        step("echo", "reverse", big, 10),
        step("fail", "fail", "boom", 200),
        step("fail", "fail_code", "", 200),
        step("alloc_churn", "churn", "10", 20),
        step("host_fn", "call_host", "hello", 200),
        step("wasi_print", "print", "world", 50),
    ];
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let (port, _server) = loopback::try_serve(2 * 21, |_| {
        loopback::response("200 OK", "", b"hello from the demo's loopback server")
    })?;
    let url = format!("http://127.0.0.1:{port}/greeting");
    let http = step("http", "fetch", url.clone(), 20);
    let mut agreed = true;
    writeln!(
        out,
        "{:<26} {:<24} {:<48} {:>12} {:>12}",
        "plugin::function", "input", "output", "core us", "component us"
    )?;
    writeln!(out, "{}", "-".repeat(126))?;
    let mut plugins: Vec<[Option<Plugin>; 2]> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for s in steps.iter().chain(std::iter::once(&http)) {
        let idx = match names.iter().position(|n| *n == s.plugin) {
            Some(i) => i,
            None => {
                names.push(s.plugin);
                plugins.push([None, None]);
                names.len() - 1
            }
        };
        let mut results = Vec::new();
        let mut times = Vec::new();
        for (slot, kernel) in [KernelKind::Core, KernelKind::Component]
            .into_iter()
            .enumerate()
        {
            let plugin = match &mut plugins[idx][slot] {
                Some(p) => p,
                p @ None => {
                    let wasm = samples::sample(s.plugin);
                    let options = PluginOptions {
                        kernel,
                        wasi: s.plugin == "wasi_print",
                        capture_stdout: true,
                        allowed_hosts: vec!["127.0.0.1".into()],
                        log_level: Some(log::Level::Info),
                        functions: vec![host_reverse()],
                        ..PluginOptions::default()
                    };
                    p.insert(Plugin::new(&runtime, wasm, options)?)
                }
            };
            let mut result = outcome(plugin.call(s.function, &s.input));
            if s.plugin == "wasi_print" {
                let stdout = plugin.stdout().unwrap_or_default();
                result = format!("{result}, stdout {}", show(&stdout));
            }
            results.push(result);
            let t = Instant::now();
            for _ in 0..s.reps {
                let _ = plugin.call(s.function, &s.input);
            }
            times.push(if s.reps == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", t.elapsed().as_secs_f64() * 1e6 / s.reps as f64)
            });
        }
        let same = results[0] == results[1];
        agreed &= same;
        let name = format!("{}::{}", s.plugin, s.function);
        let input = if s.plugin == "http" {
            "<loopback URL>".to_string()
        } else {
            show(&s.input)
        };
        let output = if same {
            results[0].clone()
        } else {
            format!("DIFFER: {} | {}", results[0], results[1])
        };
        writeln!(
            out,
            "{name:<26} {input:<24} {output:<48} {:>12} {:>12}",
            times[0], times[1]
        )?;
    }
    writeln!(out)?;
    if agreed {
        writeln!(
            out,
            "verdict: both kernel forms gave identical outputs and errors on all {} calls",
            steps.len() + 1
        )?;
    } else {
        writeln!(
            out,
            "verdict: the kernel forms DISAGREED (see DIFFER above)"
        )?;
    }
    Ok(agreed)
}

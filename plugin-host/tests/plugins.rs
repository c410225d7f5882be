//! Every sample plugin (see `plugins/README.md`) on both kernel forms, with exact outputs and
//! errors, plus hand-written WAT plugins for the error paths: bad modules, bad imports, traps,
//! timeouts, fuel, memory limits and out-of-bounds output.

use host_fixtures::loopback::serve_ok_or_404 as serve;
use host_fixtures::samples::{host_reverse, sample};
use host_fixtures::{KINDS, fuel_runtime, runtime};
use plugin_host::host_fns::log::LOG_TARGET;
use plugin_host::{CallError, HostFunction, KernelKind, Plugin, PluginOptions, Runtime};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const KIB64: usize = 64 << 10;
const MIB4: usize = 4 << 20;

fn opts(kernel: KernelKind) -> PluginOptions {
    host_fixtures::options(kernel)
}

fn load(wasm: &[u8], options: PluginOptions) -> Plugin {
    let kernel = options.kernel;
    Plugin::new(runtime(), wasm, options)
        .unwrap_or_else(|e| panic!("loading the plugin on {kernel}: {e:#}"))
}

fn load_sample(name: &str, kernel: KernelKind) -> Plugin {
    load(sample(name), opts(kernel))
}

/// `Plugin::new`'s error as one line (asserting that it is one line).
fn load_error(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> String {
    let kernel = options.kernel;
    let e =
        Plugin::new(runtime, wasm, options).expect_err(&format!("loading should fail on {kernel}"));
    let msg = format!("{e:#}");
    assert!(!msg.contains('\n'), "{kernel}: not one line: {msg:?}");
    assert!(!msg.is_empty(), "{kernel}: empty error");
    msg
}

/// A call's error, checking that it prints as one line.
fn call_error(plugin: &mut Plugin, function: &str, input: &[u8]) -> CallError {
    let kernel = plugin.kernel().clone();
    let e = plugin
        .call(function, input)
        .expect_err(&format!("{kernel:?}: `{function}` should fail"));
    let line = e.to_string();
    assert!(!line.contains('\n'), "{kernel:?}: not one line: {line:?}");
    e
}

fn call_ok(plugin: &mut Plugin, function: &str, input: &[u8]) -> Vec<u8> {
    let kernel = plugin.kernel().clone();
    plugin
        .call(function, input)
        .unwrap_or_else(|e| panic!("{kernel:?}: `{function}` failed: {e}"))
}

fn call_str(plugin: &mut Plugin, function: &str, input: &[u8]) -> String {
    String::from_utf8(call_ok(plugin, function, input)).expect("UTF-8 output")
}

fn failed(code: i32, message: Option<&str>) -> CallError {
    CallError::Failed {
        code,
        message: message.map(str::to_string),
    }
}

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid WAT")
}

/// Deterministic pseudo-random bytes (splitmix64).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn reversed(v: &[u8]) -> Vec<u8> {
    v.iter().rev().copied().collect()
}

// ---------------------------------------------------------------------------------------------
// count_vowels

fn vowels_json(count: u64, total: u64, vowels: &str) -> String {
    format!(r#"{{"count":{count},"total":{total},"vowels":{vowels}}}"#)
}

#[test]
fn count_vowels_sequence_keeps_a_running_total() {
    for kind in KINDS {
        let mut p = load_sample("count_vowels", kind);
        let dflt = r#""aeiouAEIOU""#;
        for (input, count, total) in [
            ("Hello, World!", 3, 3),
            ("aeiou AEIOU", 10, 13),
            ("", 0, 13),
            ("rhythm", 0, 13),
            ("café olé", 2, 15),
        ] {
            assert_eq!(
                call_str(&mut p, "count_vowels", input.as_bytes()),
                vowels_json(count, total, dflt),
                "{kind}: input {input:?}"
            );
        }
    }
}

#[test]
fn count_vowels_config_on_fresh_instances() {
    let cases: [(&str, &str, &str); 4] = [
        (
            "xyz\"",
            "xyzzy\"",
            r#"{"count":6,"total":6,"vowels":"xyz\""}"#,
        ),
        (
            "",
            "banana",
            r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#,
        ),
        ("é", "café olé", r#"{"count":2,"total":2,"vowels":"é"}"#),
        ("aa", "banana", r#"{"count":3,"total":3,"vowels":"aa"}"#),
    ];
    for kind in KINDS {
        for (vowels, input, expected) in cases {
            let options = PluginOptions {
                config: BTreeMap::from([("vowels".to_string(), vowels.to_string())]),
                ..opts(kind)
            };
            let mut p = load(sample("count_vowels"), options);
            assert_eq!(
                call_str(&mut p, "count_vowels", input.as_bytes()),
                expected,
                "{kind}: vowels {vowels:?}, input {input:?}"
            );
        }
    }
}

#[test]
fn count_vowels_rejects_non_utf8_and_keeps_the_total() {
    for kind in KINDS {
        let mut p = load_sample("count_vowels", kind);
        assert_eq!(
            call_str(&mut p, "count_vowels", b"Hello, World!"),
            r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#
        );
        assert_eq!(
            call_error(&mut p, "count_vowels", b"a\xffb"),
            failed(-1, Some("invalid utf-8 sequence of 1 bytes from index 1")),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "count_vowels", b"\xff"),
            failed(-1, Some("invalid utf-8 sequence of 1 bytes from index 0")),
            "{kind}"
        );
        // The var was not touched by the failed calls.
        assert_eq!(
            call_str(&mut p, "count_vowels", b"a"),
            r#"{"count":1,"total":4,"vowels":"aeiouAEIOU"}"#,
            "{kind}"
        );
    }
}

/// Records the plugin log lines (target [`LOG_TARGET`]) of every test in
/// this binary; everything else (wasmtime, cranelift) is dropped.
struct Capture;

static LOG_LINES: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == LOG_TARGET
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        LOG_LINES.lock().unwrap_or_else(|e| e.into_inner()).push((
            record.level(),
            record.target().to_string(),
            record.args().to_string(),
        ));
    }

    fn flush(&self) {}
}

fn install_logger() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        log::set_logger(&Capture).expect("no other logger");
        // Not `Trace`: cranelift logs a lot at debug and trace levels while compiling.
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn log_lines_with(message: &str) -> Vec<(log::Level, String)> {
    LOG_LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, _, m)| m == message)
        .map(|(l, t, _)| (*l, t.clone()))
        .collect()
}

#[test]
fn count_vowels_logging_on_and_off() {
    install_logger();
    // Vowel counts no other test uses, so that parallel tests cannot add matching lines.
    let cases = [
        (Some(log::Level::Info), 37, true),
        (Some(log::Level::Trace), 38, true),
        (Some(log::Level::Warn), 39, false),
        (None, 41, false),
    ];
    for (level, n, logged) in cases {
        for kind in KINDS {
            let mut p = load(
                sample("count_vowels"),
                PluginOptions {
                    log_level: level,
                    ..opts(kind)
                },
            );
            let input = "a".repeat(n);
            assert_eq!(
                call_str(&mut p, "count_vowels", input.as_bytes()),
                vowels_json(n as u64, n as u64, r#""aeiouAEIOU""#),
                "{kind}: log level {level:?}"
            );
        }
        let lines = log_lines_with(&format!("counted {n} vowels"));
        if logged {
            let line = (log::Level::Info, LOG_TARGET.to_string());
            assert_eq!(lines, vec![line.clone(), line], "level {level:?}");
        } else {
            assert_eq!(lines, vec![], "level {level:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// echo

#[test]
fn echo_readme_examples() {
    for kind in KINDS {
        let mut p = load_sample("echo", kind);
        for (input, rev) in [
            (&b""[..], &b""[..]),
            (b"abc", b"cba"),
            (b"\x00\xff\x10", b"\x10\xff\x00"),
            ("hé".as_bytes(), b"\xa9\xc3\x68"),
        ] {
            assert_eq!(call_ok(&mut p, "echo", input), input, "{kind}");
            assert_eq!(call_ok(&mut p, "reverse", input), rev, "{kind}");
        }
    }
}

#[test]
fn echo_and_reverse_around_64kib() {
    for kind in KINDS {
        let mut p = load_sample("echo", kind);
        for (i, len) in [0, 1, KIB64 - 1, KIB64, KIB64 + 1].into_iter().enumerate() {
            let input = random_bytes(len, 100 + i as u64);
            let out = call_ok(&mut p, "echo", &input);
            assert!(out == input, "{kind}: echo of {len} bytes differs");
            let out = call_ok(&mut p, "reverse", &input);
            assert!(
                out == reversed(&input),
                "{kind}: reverse of {len} bytes differs"
            );
        }
    }
}

#[test]
fn echo_and_reverse_4mib() {
    let input = random_bytes(MIB4, 4);
    let rev = reversed(&input);
    for kind in KINDS {
        let mut p = load_sample("echo", kind);
        let out = call_ok(&mut p, "echo", &input);
        assert_eq!(out.len(), input.len(), "{kind}");
        assert!(out == input, "{kind}: echo of 4 MiB differs");
        let out = call_ok(&mut p, "reverse", &input);
        assert!(out == rev, "{kind}: reverse of 4 MiB differs");
        // The instance still handles small calls after the big ones.
        assert_eq!(call_ok(&mut p, "echo", b"small"), b"small", "{kind}");
    }
}

// ---------------------------------------------------------------------------------------------
// fail

#[test]
fn fail_messages_and_codes() {
    for kind in KINDS {
        let mut p = load_sample("fail", kind);
        assert_eq!(
            call_error(&mut p, "fail", b"boom"),
            failed(-1, Some("this plugin always fails: boom")),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "fail", b""),
            failed(-1, Some("this plugin always fails: ")),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "fail", b"a\xffb"),
            failed(-1, Some("this plugin always fails: a\u{FFFD}b")),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "fail_code", b""),
            failed(7, None),
            "{kind}"
        );
        // The error of one call does not leak into the next.
        assert_eq!(
            call_error(&mut p, "fail_code", b"x"),
            failed(7, None),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "fail", b"again"),
            failed(-1, Some("this plugin always fails: again")),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "fail", b"boom").to_string(),
            "plugin error (code -1): this plugin always fails: boom"
        );
        assert_eq!(
            call_error(&mut p, "fail_code", b"").to_string(),
            "the plugin returned code 7"
        );
    }
}

#[test]
fn plugins_stay_usable_after_a_failed_call() {
    for kind in KINDS {
        let mut p = load_sample("echo", kind);
        assert_eq!(call_ok(&mut p, "echo", b"before"), b"before");
        assert_eq!(
            call_error(&mut p, "missing", b"x"),
            CallError::NoFunction("missing".into())
        );
        assert_eq!(call_ok(&mut p, "echo", b"after"), b"after", "{kind}");

        let mut p = load_sample("fail", kind);
        call_error(&mut p, "fail", b"boom");
        // `fail_code` makes no host calls: a stale error must not show up.
        assert_eq!(
            call_error(&mut p, "fail_code", b""),
            failed(7, None),
            "{kind}"
        );
        call_error(&mut p, "fail", b"boom");
        assert_eq!(
            call_error(&mut p, "fail", b"next"),
            failed(-1, Some("this plugin always fails: next")),
            "{kind}"
        );

        let mut p = load_sample("count_vowels", kind);
        call_error(&mut p, "count_vowels", b"\xff");
        assert_eq!(
            call_str(&mut p, "count_vowels", b"oo"),
            r#"{"count":2,"total":2,"vowels":"aeiouAEIOU"}"#,
            "{kind}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// alloc_churn

#[test]
fn alloc_churn_10_and_100_rounds() {
    for kind in KINDS {
        let mut p = load_sample("alloc_churn", kind);
        for (input, expected) in [
            (
                "10",
                r#"{"rounds":10,"allocs":23,"frees":23,"checked_bytes":183914}"#,
            ),
            (
                "100",
                r#"{"rounds":100,"allocs":252,"frees":252,"checked_bytes":6513325}"#,
            ),
            (
                "0",
                r#"{"rounds":0,"allocs":0,"frees":0,"checked_bytes":0}"#,
            ),
            (
                " 5\n",
                r#"{"rounds":5,"allocs":9,"frees":9,"checked_bytes":53064}"#,
            ),
            (
                "10",
                r#"{"rounds":10,"allocs":23,"frees":23,"checked_bytes":183914}"#,
            ),
        ] {
            assert_eq!(
                call_str(&mut p, "churn", input.as_bytes()),
                expected,
                "{kind}: input {input:?}"
            );
        }
        assert_eq!(
            call_error(&mut p, "churn", b"abc"),
            failed(-1, Some(r#"churn: invalid number of rounds: "abc""#)),
            "{kind}"
        );
        assert_eq!(
            call_error(&mut p, "churn", b"\xff"),
            failed(-1, Some("churn: input is not a decimal number of rounds")),
            "{kind}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// host_fn

#[test]
fn host_fn_calls_the_user_host_function() {
    for kind in KINDS {
        let options = PluginOptions {
            functions: vec![host_reverse()],
            ..opts(kind)
        };
        let mut p = load(sample("host_fn"), options);
        assert_eq!(call_str(&mut p, "call_host", b"hello"), "host says: olleh");
        assert_eq!(call_str(&mut p, "call_host", b""), "host says: ");
        assert_eq!(
            call_str(&mut p, "call_host", "héllo".as_bytes()),
            "host says: olléh"
        );
        assert_eq!(
            call_error(&mut p, "call_host", b"\xff"),
            failed(-1, Some("invalid utf-8 sequence of 1 bytes from index 0")),
            "{kind}"
        );
        assert_eq!(call_str(&mut p, "call_host", b"hello"), "host says: olleh");
    }
}

#[test]
fn host_fn_without_the_host_function_fails_to_load() {
    for kind in KINDS {
        let msg = load_error(runtime(), sample("host_fn"), opts(kind));
        assert!(msg.contains("host_reverse"), "{kind}: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// wasi_print

#[test]
fn wasi_print_captures_stdout() {
    for kind in KINDS {
        let options = PluginOptions {
            wasi: true,
            capture_stdout: true,
            ..opts(kind)
        };
        let mut p = load(sample("wasi_print"), options);
        assert_eq!(p.stdout(), Some(vec![]), "{kind}");
        assert_eq!(call_ok(&mut p, "print", b"world"), b"world", "{kind}");
        assert_eq!(
            p.stdout().as_deref(),
            Some(&b"hello from wasi: world\n"[..]),
            "{kind}"
        );
        assert_eq!(call_ok(&mut p, "print", b""), b"", "{kind}");
        assert_eq!(
            p.stdout().as_deref(),
            Some(&b"hello from wasi: world\nhello from wasi: \n"[..]),
            "{kind}"
        );
    }
}

#[test]
fn wasi_print_without_wasi_fails_to_load() {
    for kind in KINDS {
        let msg = load_error(runtime(), sample("wasi_print"), opts(kind));
        assert!(msg.contains("WASI"), "{kind}: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// http

#[test]
fn http_fetch_from_loopback() {
    let (port, server) = serve(2 * KINDS.len(), "hello body");
    for kind in KINDS {
        let options = PluginOptions {
            allowed_hosts: vec!["127.0.0.1".into()],
            timeout: Some(Duration::from_secs(30)),
            ..opts(kind)
        };
        let mut p = load(sample("http"), options);
        let ok = format!("http://127.0.0.1:{port}/ok");
        assert_eq!(call_str(&mut p, "fetch", ok.as_bytes()), "200 hello body");
        let missing = format!("http://127.0.0.1:{port}/missing");
        assert_eq!(call_str(&mut p, "fetch", missing.as_bytes()), "404 ");
    }
    let paths = server.join().expect("server thread");
    assert_eq!(paths, ["/ok", "/missing", "/ok", "/missing"]);
}

#[test]
fn http_to_a_host_not_allowed_is_a_trap() {
    // A listener that must never be contacted (nothing accepts on it).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    for kind in KINDS {
        let mut p = load_sample("http", kind);
        let url = format!("http://127.0.0.1:{port}/ok");
        match call_error(&mut p, "fetch", url.as_bytes()) {
            CallError::Trap(msg) => {
                assert!(msg.contains("is not allowed"), "{kind}: {msg}");
            }
            e => panic!("{kind}: expected a trap, got {e:?}"),
        }
    }
    assert!(
        listener.accept().is_err(),
        "a refused request reached the network"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad modules and bad imports

#[test]
fn bytes_that_are_not_wasm_fail_to_load() {
    for kind in KINDS {
        for bytes in [&b""[..], b"hello, world", b"\0as", b"\0asn\x01\0\0\0"] {
            let msg = load_error(runtime(), bytes, opts(kind));
            assert!(msg.contains("WebAssembly"), "{kind}: {msg}");
        }
    }
}

#[test]
fn a_truncated_plugin_fails_to_load() {
    let echo = sample("echo");
    for kind in KINDS {
        for len in [9, 100, echo.len() / 2, echo.len() - 1] {
            let msg = load_error(runtime(), &echo[..len], opts(kind));
            assert!(msg.contains("WebAssembly"), "{kind}, {len} bytes: {msg}");
        }
    }
}

#[test]
fn a_component_is_not_a_plugin() {
    for kind in KINDS {
        let msg = load_error(
            runtime(),
            plugin_host::artifacts::KERNEL_COMPONENT,
            opts(kind),
        );
        assert!(msg.contains("component"), "{kind}: {msg}");
    }
}

#[test]
fn unknown_env_import_is_named() {
    let wasm = wat(r#"(module
        (import "extism:host/env" "bogus" (func (param i64) (result i64)))
        (func (export "f") (result i32) (i32.const 0)))"#);
    for kind in KINDS {
        let msg = load_error(runtime(), &wasm, opts(kind));
        assert!(msg.contains("bogus"), "{kind}: {msg}");
    }
}

#[test]
fn importing_the_kernel_memory_is_refused() {
    let wasm = wat(r#"(module
        (import "extism:host/env" "memory" (memory 1))
        (func (export "f") (result i32) (i32.const 0)))"#);
    for kind in KINDS {
        let msg = load_error(runtime(), &wasm, opts(kind));
        assert!(msg.contains("memory"), "{kind}: {msg}");
    }
}

#[test]
fn unknown_module_import_is_named() {
    let wasm = wat(r#"(module
        (import "somewhere" "else" (func))
        (func (export "f") (result i32) (i32.const 0)))"#);
    for kind in KINDS {
        let msg = load_error(runtime(), &wasm, opts(kind));
        assert!(
            msg.contains("somewhere") && msg.contains("else"),
            "{kind}: {msg}"
        );
    }
}

#[test]
fn a_kernel_import_of_the_wrong_type_fails_to_load() {
    let wasm = wat(r#"(module
        (import "extism:host/env" "alloc" (func (param i32) (result i32)))
        (func (export "f") (result i32) (i32.const 0)))"#);
    for kind in KINDS {
        let msg = load_error(runtime(), &wasm, opts(kind));
        assert!(msg.contains("alloc"), "{kind}: {msg}");
    }
}

#[test]
fn fuel_needs_a_fuel_runtime() {
    for kind in KINDS {
        let options = PluginOptions {
            fuel: Some(1000),
            ..opts(kind)
        };
        let msg = load_error(runtime(), sample("echo"), options);
        assert!(msg.contains("fuel"), "{kind}: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Calls that go wrong, on hand-written plugins

/// A plugin with one export per way a call can go wrong, and `ok` that works.
const MISBEHAVING: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "ok") (result i32) (i32.const 0))
    (func (export "nothing"))
    (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
    (func (export "boom") (result i32) unreachable)
    (func (export "add") (param i32 i32) (result i32)
        (i32.add (local.get 0) (local.get 1)))
    (func (export "wide") (result i64) (i64.const 0))
    (func (export "grow") (result i32)
        (block $done
            (loop $l
                (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                (br $l)))
        unreachable)
    (func $deep (export "deep") (result i32) (call $deep))
)"#;

fn misbehaving(options: PluginOptions) -> Plugin {
    load(&wat(MISBEHAVING), options)
}

#[test]
fn missing_and_non_extism_functions() {
    for kind in KINDS {
        let mut p = misbehaving(opts(kind));
        assert_eq!(
            call_error(&mut p, "missing", b""),
            CallError::NoFunction("missing".into()),
            "{kind}"
        );
        // An export that is not a function.
        assert_eq!(
            call_error(&mut p, "memory", b""),
            CallError::NoFunction("memory".into()),
            "{kind}"
        );
        for name in ["add", "wide"] {
            match call_error(&mut p, name, b"") {
                CallError::NotAnExtismFunction(n, _) => assert_eq!(n, name, "{kind}"),
                e => panic!("{kind}: `{name}`: expected NotAnExtismFunction, got {e:?}"),
            }
        }
        assert_eq!(call_ok(&mut p, "ok", b"x"), b"", "{kind}");
        assert_eq!(call_ok(&mut p, "nothing", b"x"), b"", "{kind}");

        let mut p = load_sample("echo", kind);
        assert_eq!(
            call_error(&mut p, "count_vowels", b""),
            CallError::NoFunction("count_vowels".into())
        );
    }
}

#[test]
fn a_trap_is_reported() {
    for kind in KINDS {
        match call_error(&mut misbehaving(opts(kind)), "boom", b"") {
            CallError::Trap(msg) => assert!(msg.contains("unreachable"), "{kind}: {msg}"),
            e => panic!("{kind}: expected a trap, got {e:?}"),
        }
        match call_error(&mut misbehaving(opts(kind)), "deep", b"") {
            CallError::Trap(msg) => assert!(msg.contains("stack"), "{kind}: {msg}"),
            e => panic!("{kind}: expected a trap, got {e:?}"),
        }
    }
}

#[test]
fn an_infinite_loop_times_out() {
    let timeout = Duration::from_millis(200);
    for kind in KINDS {
        let mut p = misbehaving(PluginOptions {
            timeout: Some(timeout),
            ..opts(kind)
        });
        let start = Instant::now();
        assert_eq!(
            call_error(&mut p, "spin", b""),
            CallError::Timeout(timeout),
            "{kind}"
        );
        let took = start.elapsed();
        assert!(
            took >= timeout && took < Duration::from_secs(10),
            "{kind}: {took:?}"
        );
    }
}

#[test]
fn a_sample_plugin_with_a_timeout_still_works() {
    for kind in KINDS {
        let mut p = load(
            sample("echo"),
            PluginOptions {
                timeout: Some(Duration::from_secs(30)),
                ..opts(kind)
            },
        );
        assert_eq!(call_ok(&mut p, "reverse", b"stressed"), b"desserts");
        assert_eq!(call_ok(&mut p, "echo", b"again"), b"again");
    }
}

fn fuelled(wasm: &[u8], kind: KernelKind, fuel: u64) -> Plugin {
    Plugin::new(
        fuel_runtime(),
        wasm,
        PluginOptions {
            fuel: Some(fuel),
            ..opts(kind)
        },
    )
    .unwrap_or_else(|e| panic!("{kind}: loading with fuel: {e:#}"))
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    for kind in KINDS {
        let mut p = fuelled(&wat(MISBEHAVING), kind, 10_000);
        assert_eq!(
            call_error(&mut p, "spin", b""),
            CallError::OutOfFuel(10_000),
            "{kind}"
        );
    }
}

#[test]
fn a_sample_plugin_runs_within_its_fuel() {
    for kind in KINDS {
        let mut p = fuelled(sample("echo"), kind, 10_000_000);
        // Fuel is refilled per call.
        for _ in 0..3 {
            assert_eq!(call_ok(&mut p, "echo", b"fuelled"), b"fuelled", "{kind}");
        }
        // Echoing 8 MiB needs more than that.
        assert_eq!(
            call_error(&mut p, "echo", &random_bytes(8 << 20, 8)),
            CallError::OutOfFuel(10_000_000),
            "{kind}"
        );
    }
}

#[test]
fn memory_growth_past_the_limit_is_out_of_memory() {
    for kind in KINDS {
        let mut p = misbehaving(PluginOptions {
            memory_max_pages: Some(100),
            ..opts(kind)
        });
        match call_error(&mut p, "grow", b"") {
            CallError::OutOfMemory(msg) => assert!(msg.contains("100"), "{kind}: {msg}"),
            e => panic!("{kind}: expected OutOfMemory, got {e:?}"),
        }
    }
}

#[test]
fn an_input_past_the_memory_limit_is_out_of_memory() {
    let big = random_bytes(MIB4, 40);
    for kind in KINDS {
        let mut p = load(
            sample("echo"),
            PluginOptions {
                memory_max_pages: Some(40),
                ..opts(kind)
            },
        );
        assert_eq!(call_ok(&mut p, "echo", b"fits"), b"fits", "{kind}");
        match call_error(&mut p, "echo", &big) {
            CallError::OutOfMemory(msg) => assert!(msg.contains("40"), "{kind}: {msg}"),
            e => panic!("{kind}: expected OutOfMemory, got {e:?}"),
        }
    }
}

#[test]
fn a_memory_limit_too_small_for_the_plugin_fails_to_load() {
    for kind in KINDS {
        let options = PluginOptions {
            memory_max_pages: Some(1),
            ..opts(kind)
        };
        let msg = load_error(runtime(), sample("echo"), options);
        assert!(msg.contains("memory"), "{kind}: {msg}");
    }
}

/// `host_reverse`, except that it fails on the input `fail`.
fn failing_host_reverse() -> HostFunction {
    HostFunction::bytes("host_reverse", |input| {
        if input == b"fail" {
            wasmtime::bail!("host_reverse refuses `fail`");
        }
        Ok(input.iter().rev().copied().collect())
    })
}

#[test]
fn a_failing_host_function_is_a_trap() {
    for kind in KINDS {
        let mut p = load(
            sample("host_fn"),
            PluginOptions {
                functions: vec![failing_host_reverse()],
                ..opts(kind)
            },
        );
        assert_eq!(call_str(&mut p, "call_host", b"abc"), "host says: cba");
        match call_error(&mut p, "call_host", b"fail") {
            CallError::Trap(msg) => {
                assert!(msg.contains("host_reverse refuses `fail`"), "{kind}: {msg}")
            }
            e => panic!("{kind}: expected a trap, got {e:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The plugin is usable after each kind of failed call: the failure repeats, and other calls
// work. Generated per kernel form as `recovery::<case>::{core, component}`.

/// A plugin, a call that fails, and a call that must then give `expected`.
struct Recovery {
    plugin: Plugin,
    bad: (&'static str, Vec<u8>),
    good: (&'static str, Vec<u8>),
    expected: Result<Vec<u8>, CallError>,
}

fn check_recovery(kind: KernelKind, case: fn(KernelKind) -> Recovery) {
    let Recovery {
        mut plugin,
        bad,
        good,
        expected,
    } = case(kind);
    let first = call_error(&mut plugin, bad.0, &bad.1);
    for round in 0..2 {
        assert_eq!(
            plugin.call(good.0, &good.1),
            expected,
            "{kind}: `{}` after `{}` failed with: {first}",
            good.0,
            bad.0
        );
        if round == 0 {
            assert_eq!(
                call_error(&mut plugin, bad.0, &bad.1),
                first,
                "{kind}: `{}` again",
                bad.0
            );
        }
    }
}

fn ok_after(plugin: Plugin, bad: &'static str) -> Recovery {
    Recovery {
        plugin,
        bad: (bad, Vec::new()),
        good: ("ok", b"x".to_vec()),
        expected: Ok(Vec::new()),
    }
}

fn after_trap(kind: KernelKind) -> Recovery {
    ok_after(misbehaving(opts(kind)), "boom")
}

fn after_stack_overflow(kind: KernelKind) -> Recovery {
    ok_after(misbehaving(opts(kind)), "deep")
}

fn after_timeout(kind: KernelKind) -> Recovery {
    let options = PluginOptions {
        timeout: Some(Duration::from_millis(200)),
        ..opts(kind)
    };
    ok_after(misbehaving(options), "spin")
}

fn after_out_of_fuel(kind: KernelKind) -> Recovery {
    ok_after(fuelled(&wat(MISBEHAVING), kind, 10_000), "spin")
}

fn after_memory_growth_denied(kind: KernelKind) -> Recovery {
    let options = PluginOptions {
        memory_max_pages: Some(100),
        ..opts(kind)
    };
    ok_after(misbehaving(options), "grow")
}

fn after_input_too_large(kind: KernelKind) -> Recovery {
    let options = PluginOptions {
        memory_max_pages: Some(40),
        ..opts(kind)
    };
    Recovery {
        plugin: load(sample("echo"), options),
        bad: ("echo", random_bytes(MIB4, 41)),
        good: ("echo", b"fits".to_vec()),
        expected: Ok(b"fits".to_vec()),
    }
}

fn after_host_function_error(kind: KernelKind) -> Recovery {
    let options = PluginOptions {
        functions: vec![failing_host_reverse()],
        ..opts(kind)
    };
    Recovery {
        plugin: load(sample("host_fn"), options),
        bad: ("call_host", b"fail".to_vec()),
        good: ("call_host", b"hello".to_vec()),
        expected: Ok(b"host says: olleh".to_vec()),
    }
}

fn after_http_refused(kind: KernelKind) -> Recovery {
    Recovery {
        plugin: load_sample("http", kind),
        // Refused before any connection is attempted.
        bad: ("fetch", b"http://127.0.0.1:9/".to_vec()),
        good: ("fetch", b"\xff".to_vec()),
        expected: Err(failed(
            -1,
            Some("invalid utf-8 sequence of 1 bytes from index 0"),
        )),
    }
}

fn after_plugin_error(kind: KernelKind) -> Recovery {
    Recovery {
        plugin: load_sample("fail", kind),
        bad: ("fail", b"boom".to_vec()),
        good: ("fail_code", Vec::new()),
        expected: Err(failed(7, None)),
    }
}

fn after_missing_function(kind: KernelKind) -> Recovery {
    Recovery {
        plugin: load_sample("echo", kind),
        bad: ("missing", Vec::new()),
        good: ("echo", b"hi".to_vec()),
        expected: Ok(b"hi".to_vec()),
    }
}

/// `recovery_case!(case, works)` or `recovery_case!(case, renewed)`: the tests
/// `recovery::case::{core, component}`; `renewed` marks the cases where the component
/// backend makes the plugin anew after the trap (both run).
macro_rules! recovery_case {
    ($case:ident, works) => {
        recovery_case!($case, []);
    };
    // Regression: on the component backend a call that trapped (wasm trap, timeout, fuel,
    // memory limit, host function error) left the kernel component instance unusable: every
    // later call failed with `wasm trap: cannot enter component instance`. The plugin is now
    // made anew after such a trap.
    ($case:ident, renewed) => {
        recovery_case!($case, []);
    };
    ($case:ident, [$(#[$attr:meta])*]) => {
        mod $case {
            use plugin_host::KernelKind;

            #[test]
            fn core() {
                crate::check_recovery(KernelKind::Core, crate::$case);
            }

            #[test]
            $(#[$attr])*
            fn component() {
                crate::check_recovery(KernelKind::Component, crate::$case);
            }
        }
    };
}

mod recovery {
    recovery_case!(after_plugin_error, works);
    recovery_case!(after_missing_function, works);
    recovery_case!(after_trap, renewed);
    recovery_case!(after_stack_overflow, renewed);
    recovery_case!(after_timeout, renewed);
    recovery_case!(after_out_of_fuel, renewed);
    recovery_case!(after_memory_growth_denied, renewed);
    recovery_case!(after_input_too_large, renewed);
    recovery_case!(after_host_function_error, renewed);
    recovery_case!(after_http_refused, renewed);
}

#[test]
fn output_set_out_of_bounds_is_ignored() {
    let wasm = wat(r#"(module
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (func (export "high") (result i32)
            (call $output_set (i64.const 0xFFFFFFF0) (i64.const 64))
            (i32.const 0))
        (func (export "wrap") (result i32)
            (call $output_set (i64.const -16) (i64.const 64))
            (i32.const 0))
        (func (export "huge") (result i32)
            (call $output_set (i64.const 8) (i64.const -1))
            (i32.const 0)))"#);
    for kind in KINDS {
        let mut p = load(&wasm, opts(kind));
        for f in ["high", "wrap", "huge"] {
            assert_eq!(
                p.call(f, b"some input"),
                Ok(vec![]),
                "{kind}: output_set in `{f}`"
            );
        }
    }
}

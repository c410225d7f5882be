//! Extism manifests (JSON and TOML), linked modules, allowed paths, `_initialize` and the
//! other host features an Extism user expects, against real plugins.

use host_fixtures::loopback::{response, serve, serve_ok_or_404};
use host_fixtures::samples::sample;
use host_fixtures::{KINDS, runtime};
use plugin_host::{
    AllowedPath, CallError, KernelKind, Manifest, NamedModule, Plugin, PluginOptions, PluginPre,
};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A fresh directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("manifest-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Writes the sample `name` into `dir`; its path.
fn sample_file(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, sample(name)).expect("writing a sample");
    path.display().to_string()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn from_manifest(text: &str, kernel: KernelKind) -> wasmtime::Result<Plugin> {
    let manifest = Manifest::parse(text.as_bytes())?;
    Plugin::from_manifest(runtime(), &manifest, host_fixtures::options(kernel))
}

fn load(text: &str, kernel: KernelKind) -> Plugin {
    from_manifest(text, kernel).unwrap_or_else(|e| panic!("{kernel}: {e:#}"))
}

fn load_error(text: &str) -> String {
    let e = from_manifest(text, KernelKind::Core).expect_err("the manifest should be refused");
    let line = format!("{e:#}");
    assert!(!line.contains('\n'), "not one line: {line:?}");
    line
}

fn call(p: &mut Plugin, f: &str, input: &str) -> String {
    String::from_utf8(
        p.call(f, input.as_bytes())
            .unwrap_or_else(|e| panic!("{f}: {e}")),
    )
    .expect("UTF-8 output")
}

#[test]
fn json_and_toml_manifests_set_config_and_the_var_limit() {
    let dir = temp_dir("config");
    let path = sample_file(&dir, "count_vowels");
    let json = format!(
        r#"{{"wasm": [{{"path": "{path}"}}], "config": {{"vowels": "xyz"}},
            "memory": {{"max_var_bytes": 6}}}}"#
    );
    let toml = format!(
        "config = {{ vowels = \"xyz\" }}\nmemory = {{ max_var_bytes = 6 }}\n[[wasm]]\npath = \"{path}\"\n"
    );
    for kernel in KINDS {
        for text in [&json, &toml] {
            let mut p = load(text, kernel);
            assert_eq!(
                call(&mut p, "count_vowels", "xyzzy a"),
                r#"{"count":5,"total":5,"vowels":"xyz"}"#,
                "{kernel}"
            );
            // "total" plus "10" is 7 bytes: over the manifest's limit of 6.
            match p.call("count_vowels", b"xyzzy") {
                Err(CallError::Trap(m)) => assert!(m.contains("over the limit of 6"), "{m}"),
                other => panic!("{kernel}: {other:?}"),
            }
        }
    }
}

#[test]
fn sources_by_path_data_and_url_each_with_a_hash() {
    let dir = temp_dir("sources");
    let echo = sample("echo");
    let path = sample_file(&dir, "echo");
    let (port, server) = serve(1, move |req| {
        assert_eq!(req.method, "POST");
        assert_eq!(req.headers.get("x-token").map(String::as_str), Some("t1"));
        response("200 OK", "", sample("echo"))
    });
    let hash = sha256(echo);
    for (source, kind) in [
        (format!(r#"{{"path": "{path}", "hash": "{hash}"}}"#), "path"),
        (
            format!(r#"{{"data": "{}", "hash": "{hash}"}}"#, base64(echo)),
            "data",
        ),
        (
            format!(
                r#"{{"url": "http://127.0.0.1:{port}/echo.wasm", "method": "POST",
                    "headers": {{"X-Token": "t1"}}, "hash": "{}"}}"#,
                hash.to_uppercase()
            ),
            "url",
        ),
    ] {
        let mut p = load(&format!(r#"{{"wasm": [{source}]}}"#), KernelKind::Core);
        assert_eq!(call(&mut p, "reverse", "stressed"), "desserts", "{kind}");
    }
    server.join().expect("the server");
}

#[test]
fn a_url_source_with_a_wrong_hash_is_refused_naming_the_module() {
    let (port, server) = serve(1, |_| response("200 OK", "", sample("echo")));
    let e = load_error(&format!(
        r#"{{"wasm": [{{"url": "http://127.0.0.1:{port}/e.wasm", "name": "echo", "hash": "{}"}}]}}"#,
        "0".repeat(64)
    ));
    assert!(
        e.contains("the hash of wasm[0] (`echo`) is ") && e.contains(&"0".repeat(64)),
        "{e}"
    );
    server.join().expect("the server");
}

#[test]
fn bad_manifests_give_one_line_errors_that_say_where() {
    let dir = temp_dir("bad");
    let path = sample_file(&dir, "echo");
    let (port, server) = serve_ok_or_404(1, "");
    for (text, want) in [
        (
            "{\"wasm\": [\n  {\"path\": 1}\n".to_string(),
            "not valid JSON: EOF while parsing a list at line 3",
        ),
        (
            format!(r#"{{"wasm": [{{"path": "{path}"}}], "timeout": 5}}"#),
            "unknown field `timeout`",
        ),
        ("[[wasm]]\npath = \n".to_string(), "not valid TOML"),
        (
            r#"{"wasm": [{"path": "/nonexistent/plugin.wasm"}]}"#.to_string(),
            "reading /nonexistent/plugin.wasm",
        ),
        (
            format!(r#"{{"wasm": [{{"url": "http://127.0.0.1:{port}/missing.wasm"}}]}}"#),
            "fetching http://127.0.0.1",
        ),
        (
            r#"{"wasm": [{"data": {"ptr": 4096, "len": 64}}]}"#.to_string(),
            "wasm[0].data must be a base64 string",
        ),
        (r#"{"wasm": []}"#.to_string(), "lists no wasm module"),
        (
            format!(r#"{{"wasm": [{{"path": "{path}"}}, {{"path": "{path}"}}]}}"#),
            "the module name `main` is given twice",
        ),
        (
            format!(
                r#"{{"wasm": [{{"path": "{path}"}}], "allowed_paths": {{"/nonexistent/dir": "/d"}}}}"#
            ),
            "the allowed path /nonexistent/dir is not a directory",
        ),
    ] {
        let e = load_error(&text);
        assert!(e.contains(want), "{text}: {e}");
    }
    server.join().expect("the server");
}

#[test]
fn allowed_hosts_timeout_and_the_http_response_limit_come_from_the_manifest() {
    let dir = temp_dir("http");
    let path = sample_file(&dir, "http");
    let (port, server) = serve(2, |_| response("200 OK", "", b"0123456789"));
    let url = format!("http://127.0.0.1:{port}/");
    let text = |limit: u64| {
        format!(
            r#"{{"wasm": [{{"path": "{path}"}}], "allowed_hosts": ["127.0.0.1"],
                "memory": {{"max_http_response_bytes": {limit}}}, "timeout_ms": 20000}}"#
        )
    };
    let mut p = load(&text(10), KernelKind::Core);
    assert_eq!(call(&mut p, "fetch", &url), "200 0123456789");
    let mut p = load(&text(9), KernelKind::Core);
    match p.call("fetch", url.as_bytes()) {
        Err(CallError::Trap(m)) => assert!(m.contains("exceeds 9 bytes"), "{m}"),
        other => panic!("{other:?}"),
    }
    server.join().expect("the server");
    // No allowed hosts: refused.
    let mut p = load(
        &format!(r#"{{"wasm": [{{"path": "{path}"}}]}}"#),
        KernelKind::Core,
    );
    assert!(
        matches!(p.call("fetch", url.as_bytes()), Err(CallError::Trap(m)) if m.contains("not allowed"))
    );
    // `timeout_ms` and `memory.max_pages` on a plugin given as data.
    let spin = wat::parse_str(
        r#"(module (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))"#,
    )
    .expect("WAT");
    let mut p = load(
        &format!(
            r#"{{"wasm": [{{"data": "{}"}}], "timeout_ms": 100}}"#,
            base64(&spin)
        ),
        KernelKind::Core,
    );
    assert_eq!(
        p.call("spin", b""),
        Err(CallError::Timeout(Duration::from_millis(100)))
    );
    let echo = sample_file(&dir, "echo");
    let mut p = load(
        &format!(r#"{{"wasm": [{{"path": "{echo}"}}], "memory": {{"max_pages": 40}}}}"#),
        KernelKind::Core,
    );
    assert!(
        matches!(p.call("echo", &[7; 4 << 20]), Err(CallError::OutOfMemory(m)) if m.contains("40 pages"))
    );
}

#[test]
fn allowed_paths_grant_directories_and_a_read_only_one_refuses_writes() {
    let dir = temp_dir("paths");
    let (rw, ro) = (dir.join("rw"), dir.join("ro"));
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("greeting.txt"), b"hello from the host").unwrap();
    let options = PluginOptions {
        wasi: true,
        allowed_paths: vec![
            AllowedPath::new(&rw.display().to_string(), "/data"),
            AllowedPath::new(&format!("ro:{}", ro.display()), "/ro"),
        ],
        ..PluginOptions::default()
    };
    for kernel in KINDS {
        let mut p = Plugin::new(
            runtime(),
            sample("wasi_files"),
            PluginOptions {
                kernel,
                ..options.clone()
            },
        )
        .unwrap_or_else(|e| panic!("{kernel}: {e:#}"));
        assert_eq!(
            call(&mut p, "read_file", "/ro/greeting.txt"),
            "hello from the host"
        );
        assert_eq!(call(&mut p, "write_file", "/data/out.txt\nwritten"), "7");
        assert_eq!(std::fs::read(rw.join("out.txt")).unwrap(), b"written");
        assert_eq!(call(&mut p, "list_dir", "/ro"), "greeting.txt");
        for (f, input) in [
            ("write_file", "/ro/greeting.txt\noverwritten"),
            ("write_file", "/ro/new.txt\nx"),
            ("read_file", "/elsewhere/x"),
        ] {
            match p.call(f, input.as_bytes()) {
                Err(CallError::Failed {
                    code: -1,
                    message: Some(m),
                }) => assert!(
                    m.contains(input.split('\n').next().unwrap()),
                    "{kernel}: {m}"
                ),
                other => panic!("{kernel}: {f} {input:?}: {other:?}"),
            }
        }
        assert_eq!(
            std::fs::read(ro.join("greeting.txt")).unwrap(),
            b"hello from the host"
        );
        assert!(!ro.join("new.txt").exists());
    }
}

use host_fixtures::UPPER_HOST_FN_WAT as UPPER;

fn module(name: &str, wasm: Vec<u8>) -> NamedModule {
    NamedModule {
        name: name.into(),
        wasm,
    }
}

#[test]
fn a_linked_module_provides_user_functions_and_shares_the_kernel() {
    let upper = wat::parse_str(UPPER).expect("WAT");
    for kernel in KINDS {
        let modules = [
            module("extism:host/user", upper.clone()),
            module("main", sample("host_fn").to_vec()),
        ];
        let options = host_fixtures::options(kernel);
        let pre = Arc::new(PluginPre::linked(runtime(), &modules, options).expect("linked"));
        let mut p = pre.instantiate().expect("an instance");
        for (input, want) in [
            ("hello", "host says: HELLO"),
            ("", "host says: "),
            ("héllo wörld", "host says: HéLLO WöRLD"),
        ] {
            assert_eq!(call(&mut p, "call_host", input), want, "{kernel}");
        }
    }
    // The same through a manifest: the linked module by name, the main one last.
    let dir = temp_dir("linked");
    let main = sample_file(&dir, "host_fn");
    let text = format!(
        r#"{{"wasm": [{{"path": "{main}", "name": "main"}},
                     {{"data": "{}", "name": "extism:host/user"}}]}}"#,
        base64(&upper)
    );
    assert_eq!(
        call(&mut load(&text, KernelKind::Core), "call_host", "abc"),
        "host says: ABC"
    );
}

#[test]
fn link_cycles_missing_exports_and_names_linked_twice_are_errors_naming_them() {
    let a = wat::parse_str(r#"(module (import "b" "f" (func)) (func (export "g")))"#).unwrap();
    let b = wat::parse_str(r#"(module (import "a" "g" (func)) (func (export "f")))"#).unwrap();
    let main = wat::parse_str(
        r#"(module (import "a" "nope" (func)) (func (export "run") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let error = |modules: &[NamedModule]| {
        format!(
            "{:#}",
            PluginPre::linked(runtime(), modules, PluginOptions::default()).unwrap_err()
        )
    };
    let e = error(&[
        module("a", a.clone()),
        module("b", b.clone()),
        module("main", main.clone()),
    ]);
    assert!(e.contains("cycle: a -> b -> a"), "{e}");
    let lone_a = wat::parse_str(r#"(module (func (export "g")))"#).unwrap();
    let e = error(&[module("a", lone_a.clone()), module("main", main)]);
    assert!(
        e.contains("the module `main` imports `a::nope`, which the module `a` does not export"),
        "{e}"
    );
    let e = error(&[module("a", lone_a.clone()), module("a", lone_a)]);
    assert!(e.contains("the module name `a` is linked twice"), "{e}");
}

#[test]
fn initialize_runs_once_before_the_first_call() {
    let wasm = wat::parse_str(
        r#"(module
            (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
            (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
            (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
            (global $inits (mut i64) (i64.const 0))
            (global $calls (mut i64) (i64.const 0))
            (func (export "_initialize") (global.set $inits (i64.add (global.get $inits) (i64.const 1))))
            (func (export "count") (result i32) (local $h i64)
                (global.set $calls (i64.add (global.get $calls) (i64.const 1)))
                (local.set $h (call $alloc (i64.const 16)))
                (call $store_u64 (local.get $h) (global.get $inits))
                (call $store_u64 (i64.add (local.get $h) (i64.const 8)) (global.get $calls))
                (call $output_set (local.get $h) (i64.const 16))
                (i32.const 0)))"#,
    )
    .unwrap();
    for kernel in KINDS {
        let pre =
            Arc::new(PluginPre::new(runtime(), &wasm, host_fixtures::options(kernel)).unwrap());
        for _ in 0..2 {
            let mut p = pre.instantiate().unwrap();
            for calls in 1..=3u64 {
                let out = p.call("count", b"").unwrap();
                let inits = u64::from_le_bytes(out[..8].try_into().unwrap());
                let seen = u64::from_le_bytes(out[8..].try_into().unwrap());
                assert_eq!((inits, seen), (1, calls), "{kernel}");
            }
        }
    }
}

#[test]
fn http_response_headers_reach_the_plugin_only_when_enabled() {
    let (port, server) = serve(4, |_| response("200 OK", "X-Answer: 42\r\n", b"ok"));
    let json = format!(r#"{{"url":"http://127.0.0.1:{port}/"}}"#);
    let wasm = wat::parse_str(format!(
        r#"(module
            (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
            (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
            (import "extism:host/env" "length" (func $length (param i64) (result i64)))
            (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
            (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
            (import "extism:host/env" "http_headers" (func $http_headers (result i64)))
            (memory 1)
            (data (i32.const 0) "{}")
            (func (export "headers") (result i32) (local $req i64) (local $i i32) (local $h i64)
                (local.set $req (call $alloc (i64.const {len})))
                (block $done (loop $l
                    (br_if $done (i32.ge_u (local.get $i) (i32.const {len})))
                    (call $store_u8 (i64.add (local.get $req) (i64.extend_i32_u (local.get $i)))
                        (i32.load8_u (local.get $i)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $l)))
                (drop (call $http_request (local.get $req) (i64.const 0)))
                (local.set $h (call $http_headers))
                (call $output_set (local.get $h) (call $length (local.get $h)))
                (i32.const 0)))"#,
        json.replace('"', "\\\""),
        len = json.len()
    ))
    .unwrap();
    for kernel in KINDS {
        for enabled in [false, true] {
            let mut p = Plugin::new(
                runtime(),
                &wasm,
                PluginOptions {
                    kernel,
                    allowed_hosts: vec!["127.0.0.1".into()],
                    http_response_headers: enabled,
                    ..PluginOptions::default()
                },
            )
            .unwrap();
            let out = call(&mut p, "headers", "");
            if enabled {
                assert!(out.contains(r#""x-answer":"42""#), "{kernel}: {out}");
            } else {
                assert_eq!(out, "", "{kernel}");
            }
        }
    }
    server.join().expect("the server");
}

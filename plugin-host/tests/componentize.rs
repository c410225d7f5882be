//! `componentize` (what `host-demo componentize` runs): every sample plugin becomes a self-contained component that
//! validates, imports only the host services, and gives the same outputs and errors as the
//! plugin itself on the core backend; plugins with imports that cannot be mapped are refused
//! with an error naming the import.

use host_fixtures::loopback::serve_ok_or_404 as serve;
use host_fixtures::runtime;
use host_fixtures::samples::{self, host_reverse};
use plugin_host::componentize::{component_world, componentize, interface};
use plugin_host::{CallError, ComposedPlugin, HostFunction, Plugin, PluginOptions};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The samples without WASI, each componentized once (the WASI ones have tests of their own).
fn composed(name: &str) -> &'static [u8] {
    static COMPOSED: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let all = COMPOSED.get_or_init(|| {
        samples::PLUGINS
            .iter()
            .filter(|(n, _)| !n.starts_with("wasi_"))
            .map(|(n, wasm)| {
                let c = componentize(wasm).unwrap_or_else(|e| panic!("componentizing {n}: {e:#}"));
                (*n, c)
            })
            .collect()
    });
    &all.iter().find(|(n, _)| *n == name).expect("a sample").1
}

/// The same plugin on both paths: the core backend (`Plugin`) and the composed component,
/// the latter twice: entered by number (`ComposedPlugin::call`) and by name (`call_by_name`).
struct Pair {
    core: Plugin,
    composed: ComposedPlugin,
    by_name: ComposedPlugin,
}

impl Pair {
    fn new(name: &str, options: PluginOptions) -> Pair {
        let wasm = samples::plugin(name).expect("a sample");
        let options = PluginOptions {
            functions: vec![host_reverse()],
            ..options
        };
        let core = Plugin::new(runtime(), wasm, options.clone()).expect("core plugin");
        let component = composed(name);
        let composed =
            ComposedPlugin::new(runtime(), component, options.clone()).expect("composed plugin");
        let by_name = ComposedPlugin::new(runtime(), component, options).expect("composed plugin");
        Pair {
            core,
            composed,
            by_name,
        }
    }

    /// Calls all three, asserts they agree, and returns the (common) result.
    fn call(&mut self, function: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let core = self.core.call(function, input);
        let composed = self.composed.call(function, input);
        let by_name = self.by_name.call_by_name(function, input);
        let what = format!("{function}({:?})", String::from_utf8_lossy(input));
        assert_eq!(composed, core, "{what}: composed vs core");
        assert_eq!(by_name, core, "{what}: composed, by name, vs core");
        core
    }
}

#[test]
fn every_sample_composes_into_a_valid_component_importing_only_host_services() {
    for (name, _) in samples::PLUGINS
        .iter()
        .filter(|(n, _)| !n.starts_with("wasi_"))
    {
        let c = composed(name);
        wasmparser::Validator::new()
            .validate_all(c)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (imports, exports) = component_world(c).unwrap();
        assert_eq!(imports, [interface("host")], "{name}");
        assert_eq!(exports, [interface("entry")], "{name}");
        assert!(plugin_host::is_component(c), "{name}");
    }
}

#[test]
fn echo_and_reverse_match_core() {
    let mut p = Pair::new("echo", PluginOptions::default());
    let big: Vec<u8> = (0..100_003u32).map(|i| (i * 7) as u8).collect();
    for input in [&b""[..], b"abc", b"\x00\xff\x10", "hé".as_bytes(), &big] {
        let out = p.call("echo", input).unwrap();
        assert_eq!(out, input);
        let mut rev = input.to_vec();
        rev.reverse();
        assert_eq!(p.call("reverse", input).unwrap(), rev);
    }
    assert_eq!(
        p.call("no_such_function", b"x"),
        Err(CallError::NoFunction("no_such_function".into()))
    );
}

#[test]
fn count_vowels_matches_core_with_vars_config_and_logging() {
    let mut p = Pair::new(
        "count_vowels",
        PluginOptions {
            log_level: Some(log::Level::Info),
            ..PluginOptions::default()
        },
    );
    for input in [
        &b"Hello, World!"[..],
        b"aeiou AEIOU",
        b"",
        b"rhythm",
        "café olé".as_bytes(),
    ] {
        p.call("count_vowels", input).unwrap();
    }
    assert_eq!(
        p.call("count_vowels", b"").unwrap(),
        br#"{"count":0,"total":15,"vowels":"aeiouAEIOU"}"#
    );
    assert!(matches!(
        p.call("count_vowels", b"a\xffb"),
        Err(CallError::Failed { code: -1, .. })
    ));

    let config = BTreeMap::from([("vowels".to_string(), "xyz\"".to_string())]);
    let mut p = Pair::new(
        "count_vowels",
        PluginOptions {
            config,
            ..PluginOptions::default()
        },
    );
    assert_eq!(
        p.call("count_vowels", b"xyzzy\"").unwrap(),
        br#"{"count":6,"total":6,"vowels":"xyz\""}"#
    );
}

#[test]
fn a_failing_host_service_traps_like_core_and_the_plugin_recovers() {
    // `total` plus its value exceeds 6 bytes once the total has two digits.
    let mut p = Pair::new(
        "count_vowels",
        PluginOptions {
            var_limit_bytes: 6,
            ..PluginOptions::default()
        },
    );
    assert!(p.call("count_vowels", b"aaaaaaaaa").is_ok());
    let err = p.call("count_vowels", b"a").unwrap_err();
    assert!(
        matches!(&err, CallError::Trap(m) if m.contains("var_set of `total`")),
        "{err}"
    );
    // The composed plugin is instantiated anew after the trap and still agrees with core;
    // the refused `var_set` left the old total (9) in place on both.
    assert_eq!(
        p.call("count_vowels", b"b").unwrap(),
        br#"{"count":0,"total":9,"vowels":"aeiouAEIOU"}"#
    );
}

#[test]
fn fail_and_fail_code_match_core() {
    let mut p = Pair::new("fail", PluginOptions::default());
    for input in [&b"boom"[..], b"", b"a\xffb"] {
        assert!(matches!(
            p.call("fail", input),
            Err(CallError::Failed {
                code: -1,
                message: Some(_)
            })
        ));
    }
    assert_eq!(
        p.call("fail_code", b"ignored"),
        Err(CallError::Failed {
            code: 7,
            message: None
        })
    );
}

#[test]
fn alloc_churn_matches_core() {
    let mut p = Pair::new("alloc_churn", PluginOptions::default());
    for input in ["0", "3", " 5\n", "10", "100", "abc"] {
        let _ = p.call("churn", input.as_bytes());
    }
    assert_eq!(
        p.call("churn", b"10").unwrap(),
        br#"{"rounds":10,"allocs":23,"frees":23,"checked_bytes":183914}"#
    );
}

#[test]
fn host_fn_user_function_matches_core() {
    let mut p = Pair::new("host_fn", PluginOptions::default());
    for input in ["hello", "", "héllo"] {
        let out = p.call("call_host", input.as_bytes()).unwrap();
        let want = format!("host says: {}", input.chars().rev().collect::<String>());
        assert_eq!(out, want.as_bytes());
    }
    assert!(p.call("call_host", b"\xff").is_err());
}

#[test]
fn http_matches_core_on_loopback() {
    // Each URL is fetched once by each of the three (`Pair` has core, composed by number and
    // composed by name).
    let (port, server) = serve(6, "hello body");
    let mut p = Pair::new(
        "http",
        PluginOptions {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..PluginOptions::default()
        },
    );
    let ok = format!("http://127.0.0.1:{port}/ok");
    assert_eq!(p.call("fetch", ok.as_bytes()).unwrap(), b"200 hello body");
    let missing = format!("http://127.0.0.1:{port}/missing");
    assert_eq!(p.call("fetch", missing.as_bytes()).unwrap(), b"404 ");
    server.join().unwrap();

    // A host outside the allow-list is refused by the host, with the same message.
    let err = p.call("fetch", b"http://localhost:9/").unwrap_err();
    assert!(
        matches!(&err, CallError::Trap(m) if m.contains("is not allowed")),
        "{err}"
    );
}

/// Componentizes the module in `wat`, expecting a refusal; the error text.
fn refusal(wat: &str) -> String {
    let wasm = wat::parse_str(wat).unwrap();
    format!("{:#}", componentize(&wasm).unwrap_err())
}

#[test]
fn a_composed_wasi_plugin_prints_as_the_classic_one_does() {
    let component = componentize(samples::plugin("wasi_print").unwrap()).unwrap();
    let (imports, _) = component_world(&component).unwrap();
    assert!(imports.contains(&interface("host")), "{imports:?}");
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:cli/stdout@")),
        "{imports:?}"
    );
    let options = PluginOptions {
        wasi: true,
        capture_stdout: true,
        ..PluginOptions::default()
    };
    let mut core = Plugin::new(
        runtime(),
        samples::plugin("wasi_print").unwrap(),
        options.clone(),
    )
    .unwrap();
    let mut composed = ComposedPlugin::new(runtime(), &component, options).unwrap();
    for input in [&b"world"[..], b"", b"again"] {
        assert_eq!(composed.call("print", input), core.call("print", input));
    }
    assert_eq!(composed.stdout(), core.stdout());
    assert_eq!(
        composed.stdout().as_deref(),
        Some(&b"hello from wasi: world\nhello from wasi: \nhello from wasi: again\n"[..])
    );
    // Without WASI enabled it is refused when loaded, as a classic WASI plugin is.
    let e = ComposedPlugin::new(runtime(), &component, PluginOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("WASI"), "{e:#}");
}

#[test]
fn a_composed_wasi_plugin_reads_and_writes_allowed_paths_as_the_classic_one_does() {
    let dir = std::env::temp_dir().join(format!("composed-wasi-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ro")).unwrap();
    std::fs::create_dir_all(dir.join("rw")).unwrap();
    std::fs::write(dir.join("ro/a.txt"), b"alpha").unwrap();
    let options = PluginOptions {
        wasi: true,
        allowed_paths: vec![
            plugin_host::AllowedPath {
                host: dir.join("ro"),
                guest: "/ro".into(),
                read_only: true,
            },
            plugin_host::AllowedPath {
                host: dir.join("rw"),
                guest: "/rw".into(),
                read_only: false,
            },
        ],
        ..PluginOptions::default()
    };
    let wasm = samples::plugin("wasi_files").unwrap();
    let component = componentize(wasm).unwrap();
    let mut core = Plugin::new(runtime(), wasm, options.clone()).unwrap();
    let mut composed = ComposedPlugin::new(runtime(), &component, options).unwrap();
    let cases: [(&str, &[u8]); 6] = [
        ("read_file", b"/ro/a.txt"),
        ("list_dir", b"/ro"),
        ("write_file", b"/rw/b.txt\nbeta"),
        ("read_file", b"/rw/b.txt"),
        ("write_file", b"/ro/c.txt\nno"),
        ("read_file", b"/elsewhere/x"),
    ];
    for (function, input) in cases {
        let c = composed.call(function, input);
        assert_eq!(c, core.call(function, input), "{function}");
    }
    assert_eq!(composed.call("read_file", b"/ro/a.txt").unwrap(), b"alpha");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_allowed_path_is_refused_alike_on_the_classic_and_the_composed_path() {
    // The composed path used to fail only when WASI opened the path, with another message
    // ("opening the allowed path ...: No such file or directory").
    let options = PluginOptions {
        wasi: true,
        allowed_paths: vec![plugin_host::AllowedPath {
            host: "/nonexistent-allowed-path".into(),
            guest: "/x".into(),
            read_only: false,
        }],
        ..PluginOptions::default()
    };
    let wasm = samples::plugin("wasi_files").unwrap();
    let component = componentize(wasm).unwrap();
    let classic = Plugin::new(runtime(), wasm, options.clone()).unwrap_err();
    let composed = ComposedPlugin::new(runtime(), &component, options).unwrap_err();
    let want = "the allowed path /nonexistent-allowed-path is not a directory that exists";
    assert_eq!(format!("{classic:#}"), want);
    assert_eq!(format!("{composed:#}"), want);
}

#[test]
fn unmappable_imports_are_refused_naming_the_import() {
    let run = r#"(func (export "run") (result i32) i32.const 0)"#;
    let cases = [
        (
            r#"(import "extism:host/env" "no_such_host_fn" (func (param i64) (result i64)))"#,
            "`extism:host/env::no_such_host_fn`",
        ),
        (
            r#"(import "extism:host/env" "alloc" (func (param i32) (result i32)))"#,
            "`extism:host/env::alloc`",
        ),
        (
            r#"(import "extism:host/env" "config_get" (func (param i64)))"#,
            "`extism:host/env::config_get`",
        ),
        (
            r#"(import "my:host/functions" "two_args" (func (param i64 i64) (result i64)))"#,
            "`my:host/functions::two_args`",
        ),
        (
            r#"(import "env" "memory" (memory 1))"#,
            "`env::memory` is a memory",
        ),
        (
            r#"(import "wasi:cli/stdout@0.2.0" "get-stdout" (func (result i32)))"#,
            "`wasi:cli/stdout@0.2.0::get-stdout`",
        ),
    ];
    for (import, want) in cases {
        let e = refusal(&format!("(module {import} {run})"));
        assert!(e.contains(want), "{import}: {e}");
        assert!(e.contains("cannot be mapped"), "{import}: {e}");
    }
    // Without any Extism function there is nothing to call.
    let e = refusal(r#"(module (func (export "f") (param i32)))"#);
    assert!(e.contains("no Extism function"), "{e}");
}

#[test]
fn a_user_function_in_any_module_and_void_exports_are_mapped() {
    // A hand-written plugin: a user host function outside `extism:host/user`, an export
    // returning nothing, and one returning a code; the composed form runs them all.
    let wasm = wat::parse_str(
        r#"(module
            (import "extism:host/env" "input_length" (func $len (result i64)))
            (import "extism:host/env" "error_set" (func $error_set (param i64)))
            (import "custom:ns" "twice" (func $twice (param i64) (result i64)))
            (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
            (import "extism:host/env" "length" (func $length (param i64) (result i64)))
            (func (export "nothing"))
            (func (export "code") (result i32) (i32.wrap_i64 (call $len)))
            (func (export "user") (result i32)
                (local $h i64)
                (local.set $h (call $twice (i64.const 0)))
                (call $output_set (local.get $h) (call $length (local.get $h)))
                i32.const 0))"#,
    )
    .unwrap();
    let component = componentize(&wasm).unwrap();
    let twice = HostFunction::bytes("twice", |input| Ok([b"twice:", input, input].concat()))
        .in_namespace("custom:ns");
    let options = PluginOptions {
        functions: vec![twice],
        ..PluginOptions::default()
    };
    let mut p = ComposedPlugin::new(runtime(), &component, options).unwrap();
    assert_eq!(p.call("nothing", b"abc").unwrap(), b"");
    assert_eq!(
        p.call("code", b"abc"),
        Err(CallError::Failed {
            code: 3,
            message: None
        })
    );
    assert_eq!(p.call("user", b"").unwrap(), b"twice:");
}

/// A hand-written plugin on both paths: the core backend and the composed component.
fn wat_pair(wat: &str, options: PluginOptions) -> (Plugin, ComposedPlugin) {
    let wasm = wat::parse_str(wat).unwrap();
    let component = componentize(&wasm).unwrap();
    let core = Plugin::new(runtime(), &wasm, options.clone()).unwrap();
    let composed = ComposedPlugin::new(runtime(), &component, options).unwrap();
    (core, composed)
}

const KERNEL_IMPORTS: &str = r#"
    (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
    (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
    (import "extism:host/env" "input_length" (func $input_length (result i64)))
    (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
    (import "extism:host/env" "error_set" (func $error_set (param i64)))
"#;

#[test]
fn names_are_matched_byte_for_byte_at_every_length() {
    // Each export outputs its own number; names share prefixes and straddle the 8-byte
    // chunks the entry glue compares by.
    let names = [
        "",
        "a",
        "ab",
        "abcdefg",
        "abcdefgh",
        "abcdefghi",
        "abcdefgh\u{e9}",
        "x y\"z",
    ];
    let mut wat = format!("(module {KERNEL_IMPORTS}");
    for (i, n) in names.iter().enumerate() {
        let escaped: String = n.bytes().map(|b| format!("\\{b:02x}")).collect();
        wat.push_str(&format!(
            r#"(func (export "{escaped}") (result i32) (local $h i64)
                (local.set $h (call $alloc (i64.const 1)))
                (call $store_u8 (local.get $h) (i32.const {}))
                (call $output_set (local.get $h) (i64.const 1))
                (i32.const 0))"#,
            48 + i
        ));
    }
    wat.push(')');
    let (mut core, mut composed) = wat_pair(&wat, PluginOptions::default());
    for (i, n) in names.iter().enumerate() {
        assert_eq!(composed.call(n, b"").unwrap(), [48 + i as u8], "{n:?}");
        assert_eq!(
            composed.call_by_name(n, b"").unwrap(),
            [48 + i as u8],
            "{n:?}"
        );
        assert_eq!(core.call(n, b"").unwrap(), [48 + i as u8], "{n:?}");
    }
    for missing in [
        "abcdefgi",
        "abcdefghij",
        "b",
        "abcdefgh\u{e8}",
        "x y\"",
        "A",
    ] {
        assert_eq!(
            composed.call(missing, b"in"),
            Err(CallError::NoFunction(missing.into())),
            "{missing:?}"
        );
        assert_eq!(composed.call(missing, b"in"), core.call(missing, b"in"));
        assert_eq!(
            composed.call_by_name(missing, b"in"),
            core.call(missing, b"in")
        );
    }
    // Looked up by number once: the numbers hold for later calls, in any order.
    for (i, n) in names.iter().enumerate().rev() {
        assert_eq!(
            composed.call(n, b"").unwrap(),
            [48 + i as u8],
            "{n:?} again"
        );
    }
}

/// Regression (direct linking): keys and messages are the plugin's bytes, passed through as
/// blocks. A non-UTF-8 error message or log line must not trap the lowering (it is decoded
/// lossily, as on the core path), and a key that is not a live block fails with a message.
#[test]
fn non_utf8_messages_are_decoded_lossily_and_bad_keys_fail_with_a_message() {
    let wat = format!(
        r#"(module {KERNEL_IMPORTS}
            (import "extism:host/env" "log_warn" (func $log_warn (param i64)))
            (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
            (func $bad (result i64) (local $h i64)
                (local.set $h (call $alloc (i64.const 3)))
                (call $store_u8 (local.get $h) (i32.const 0x6f))
                (call $store_u8 (i64.add (local.get $h) (i64.const 1)) (i32.const 0xff))
                (call $store_u8 (i64.add (local.get $h) (i64.const 2)) (i32.const 0x6b))
                (local.get $h))
            (func (export "fail") (result i32)
                (call $error_set (call $bad))
                (i32.const 7))
            (func (export "log") (result i32)
                (call $log_warn (call $bad))
                (i32.const 0))
            (func (export "bad_key") (result i32)
                (drop (call $config_get (i64.const 12345)))
                (i32.const 0)))"#
    );
    let options = PluginOptions {
        log_level: Some(log::Level::Trace),
        ..PluginOptions::default()
    };
    let (mut core, mut composed) = wat_pair(&wat, options);
    let failed = composed.call("fail", b"");
    assert_eq!(
        failed,
        Err(CallError::Failed {
            code: 7,
            message: Some("o\u{fffd}k".into())
        })
    );
    assert_eq!(failed, core.call("fail", b""));
    assert_eq!(composed.call("log", b"").unwrap(), b"");
    assert_eq!(core.call("log", b"").unwrap(), b"");
    let e = composed.call("bad_key", b"").unwrap_err();
    assert!(
        matches!(&e, CallError::Trap(m) if m.contains("the key handle is not a live block")),
        "{e}"
    );
    // The plugin is made anew after the trap and works.
    assert!(matches!(
        composed.call("fail", b""),
        Err(CallError::Failed { code: 7, .. })
    ));
}

#[test]
fn an_input_the_kernel_cannot_hold_is_out_of_memory_and_the_plugin_recovers() {
    let wat = format!(
        r#"(module {KERNEL_IMPORTS}
            (func (export "len") (result i32) (i32.wrap_i64 (call $input_length))))"#
    );
    let options = PluginOptions {
        memory_max_pages: Some(40),
        ..PluginOptions::default()
    };
    let (mut core, mut composed) = wat_pair(&wat, options);
    let big = vec![7u8; 4 << 20];
    let e = composed.call("len", &big).unwrap_err();
    assert!(matches!(e, CallError::OutOfMemory(_)), "{e}");
    assert!(matches!(
        core.call("len", &big),
        Err(CallError::OutOfMemory(_))
    ));
    assert_eq!(
        composed.call("len", b"abc"),
        Err(CallError::Failed {
            code: 3,
            message: None
        })
    );
}

#[test]
fn the_initialiser_runs_once_before_the_first_call() {
    let wat = format!(
        r#"(module {KERNEL_IMPORTS}
            (global $inits (mut i32) (i32.const 0))
            (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
            (func (export "inits") (result i32) (i32.add (i32.const 100) (global.get $inits))))"#
    );
    let (mut core, mut composed) = wat_pair(&wat, PluginOptions::default());
    for _ in 0..3 {
        let want = Err(CallError::Failed {
            code: 101,
            message: None,
        });
        assert_eq!(composed.call("inits", b""), want);
        assert_eq!(core.call("inits", b""), want);
    }
}

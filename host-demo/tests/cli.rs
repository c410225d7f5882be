//! The `host-demo` binary: bad files and bad arguments give one-line errors with exit code 1,
//! `componentize` writes what the library makes, and `call` takes `extism call`'s flags and
//! manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `host-demo`, with its compilation cache in a temporary directory shared by the test runs
/// (entries are keyed by content, so sharing is safe), not in the user's.
fn host_demo_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-demo"));
    cmd.env(
        "HOST_DEMO_CACHE_DIR",
        std::env::temp_dir().join("host-demo-cli-cache"),
    )
    .env_remove("HOST_DEMO_NO_CACHE");
    cmd
}

/// Runs `host-demo` with `args`; its exit code and stderr.
fn host_demo(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = host_demo_command()
        .args(args)
        .output()
        .expect("running host-demo");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `host-demo` fails with exit code 1 and one line on stderr containing every word of `want`.
fn fails_with(args: &[&std::ffi::OsStr], want: &[&str]) {
    let (code, stderr) = host_demo(args);
    assert_eq!(code, Some(1), "{args:?}: {stderr}");
    let line = stderr.strip_suffix('\n').unwrap_or(&stderr);
    assert!(
        line.starts_with("error: ") && !line.contains('\n'),
        "{args:?}: not one line: {stderr:?}"
    );
    for w in want {
        assert!(line.contains(w), "{args:?}: {line:?} lacks {w:?}");
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("hostile-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).expect("writing a temporary file");
    path
}

#[test]
fn bad_files_and_arguments_give_one_line_errors() {
    use std::ffi::OsStr;
    let echo = host_fixtures::samples::sample("echo");
    let not_wasm = temp_file("not-wasm", b"hello, world\n");
    let truncated = temp_file("truncated.wasm", &echo[..echo.len() / 2]);
    let component = temp_file("component.wasm", plugin_host::artifacts::KERNEL_COMPONENT);
    let echo_file = temp_file("echo.wasm", echo);
    let call = OsStr::new("call");
    fails_with(
        &[call, not_wasm.as_os_str(), OsStr::new("echo")],
        &["not a WebAssembly module"],
    );
    fails_with(
        &[call, truncated.as_os_str(), OsStr::new("echo")],
        &["not a valid WebAssembly module"],
    );
    fails_with(
        &[call, component.as_os_str(), OsStr::new("echo")],
        &["component"],
    );
    fails_with(
        &[
            call,
            OsStr::new("/nonexistent/plugin.wasm"),
            OsStr::new("f"),
        ],
        &["/nonexistent/plugin.wasm"],
    );
    fails_with(
        &[call, echo_file.as_os_str(), OsStr::new("no_such_function")],
        &["no function", "no_such_function"],
    );
    fails_with(
        &[
            call,
            OsStr::new("sample:echo"),
            OsStr::new("no_such_function"),
            OsStr::new("--kernel"),
            OsStr::new("component"),
        ],
        &["no function", "no_such_function"],
    );
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = OsStr::from_bytes(b"key=\xFFvalue");
        fails_with(
            &[
                call,
                OsStr::new("sample:echo"),
                OsStr::new("echo"),
                OsStr::new("--config"),
                bad,
            ],
            &["--config", "not valid UTF-8"],
        );
    }
    fails_with(
        &[
            call,
            OsStr::new("sample:echo"),
            OsStr::new("echo"),
            OsStr::new("--config"),
            OsStr::new("novalue"),
        ],
        &["--config", "KEY=VALUE"],
    );
    for f in [not_wasm, truncated, component, echo_file] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn the_cli_round_trip_works() {
    let dir = std::env::temp_dir().join(format!("componentize-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("echo.component.wasm");
    let status = host_demo_command()
        .args(["componentize", "sample:echo", "-o"])
        .arg(&out)
        .status()
        .expect("running host-demo");
    assert!(status.success());
    let written = std::fs::read(&out).unwrap();
    let echo = host_fixtures::samples::sample("echo");
    assert_eq!(
        written,
        plugin_host::componentize::componentize(echo).unwrap()
    );
    let call = host_demo_command()
        .arg("call")
        .arg(&out)
        .args(["reverse", "--input", "stressed"])
        .output()
        .expect("running host-demo");
    assert!(
        call.status.success(),
        "{}",
        String::from_utf8_lossy(&call.stderr)
    );
    assert_eq!(call.stdout, b"desserts");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `host-demo` with string arguments; `Ok(stdout)` on success, `Err(stderr)` on exit 1
/// (which must be one line).
fn run(args: &[&str]) -> Result<String, String> {
    let out = host_demo_command()
        .args(args)
        .output()
        .expect("running host-demo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8(out.stdout).expect("UTF-8 output")),
        Some(1) => {
            let line = stderr.strip_suffix('\n').unwrap_or(&stderr);
            assert!(!line.contains('\n'), "{args:?}: not one line: {stderr:?}");
            Err(line.to_string())
        }
        code => panic!("{args:?}: exit code {code:?}: {stderr}"),
    }
}

/// A fresh directory for one test.
fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

#[test]
fn set_config_merges_under_config_and_var_max_limits_the_vars() {
    let base = [
        "call",
        "sample:count_vowels",
        "count_vowels",
        "--input",
        "xyz abc",
    ];
    let with = |extra: &[&str]| run(&[&base[..], extra].concat());
    assert_eq!(
        with(&["--set-config", r#"{"vowels":"xyz"}"#]).unwrap(),
        r#"{"count":3,"total":3,"vowels":"xyz"}"#
    );
    assert_eq!(
        with(&[
            "--set-config",
            r#"{"vowels":"xyz"}"#,
            "--config",
            "vowels=ab"
        ])
        .unwrap(),
        r#"{"count":2,"total":2,"vowels":"ab"}"#
    );
    let e = with(&["--set-config", r#"["vowels"]"#]).unwrap_err();
    assert!(
        e.contains("--set-config is not a JSON object of strings"),
        "{e}"
    );
    // Ten vowels: "total" and "10" are 7 bytes, over 6.
    let e = run(&[
        "call",
        "sample:count_vowels",
        "count_vowels",
        "--input",
        "aeiou aeiou",
        "--var-max",
        "6",
    ])
    .unwrap_err();
    assert!(e.contains("over the limit of 6 bytes"), "{e}");
}

#[test]
fn allow_path_grants_a_directory_and_ro_refuses_writes() {
    let dir = temp_dir("paths");
    std::fs::write(dir.join("note.txt"), b"granted").unwrap();
    let d = dir.display().to_string();
    let ro = format!("ro:{d}:/ro");
    let rw = format!("{d}:/rw");
    let base = [
        "call",
        "sample:wasi_files",
        "--wasi",
        "--allow-path",
        &ro,
        "--allow-path",
        &rw,
    ];
    let with =
        |f: &str, input: &str| run(&[&base[..2], &[f], &base[2..], &["--input", input]].concat());
    assert_eq!(with("read_file", "/ro/note.txt").unwrap(), "granted");
    let e = with("write_file", "/ro/note.txt\nchanged").unwrap_err();
    assert!(
        e.contains("plugin error") && e.contains("writing /ro/note.txt"),
        "{e}"
    );
    assert_eq!(with("write_file", "/rw/new.txt\nfresh").unwrap(), "5");
    assert_eq!(std::fs::read(dir.join("new.txt")).unwrap(), b"fresh");
    assert_eq!(std::fs::read(dir.join("note.txt")).unwrap(), b"granted");
    // A plain path is granted under its own name.
    let same = run(&[
        "call",
        "sample:wasi_files",
        "read_file",
        "--wasi",
        "--allow-path",
        &d,
        "--input",
        &format!("{d}/note.txt"),
    ]);
    assert_eq!(same.unwrap(), "granted");
    let e = run(&[
        "call",
        "sample:wasi_files",
        "read_file",
        "--wasi",
        "--allow-path",
        "/nonexistent/dir",
    ])
    .unwrap_err();
    assert!(
        e.contains("the allowed path /nonexistent/dir is not a directory"),
        "{e}"
    );
}

use host_fixtures::UPPER_HOST_FN_WAT as UPPER;

#[test]
fn link_and_manifests_in_json_and_toml() {
    let dir = temp_dir("link");
    let upper = dir.join("upper.wasm");
    std::fs::write(&upper, wat::parse_str(UPPER).unwrap()).unwrap();
    let link = format!("extism:host/user={}", upper.display());
    let out = run(&[
        "call",
        "sample:host_fn",
        "call_host",
        "--input",
        "abc",
        "--link",
        &link,
    ]);
    assert_eq!(out.unwrap(), "host says: ABC");
    let e = run(&[
        "call",
        "sample:host_fn",
        "call_host",
        "--link",
        &link,
        "--link",
        &link,
    ])
    .unwrap_err();
    assert!(
        e.contains("the module name `extism:host/user` is linked twice"),
        "{e}"
    );
    // A manifest: with -m, and recognised without it; JSON and TOML.
    let echo = dir.join("echo.wasm");
    std::fs::write(&echo, host_fixtures::samples::sample("echo")).unwrap();
    let json = dir.join("plugin.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"wasm": [{{"path": "{}"}}], "config": {{"k": "v"}}}}"#,
            echo.display()
        ),
    )
    .unwrap();
    let toml = dir.join("plugin.toml");
    std::fs::write(&toml, format!("[[wasm]]\npath = \"{}\"\n", echo.display())).unwrap();
    for (m, flag) in [(&json, true), (&json, false), (&toml, true), (&toml, false)] {
        let m = m.display().to_string();
        let mut args = vec!["call", m.as_str(), "reverse", "--input", "stressed"];
        if flag {
            args.insert(1, "-m");
        }
        assert_eq!(run(&args).unwrap(), "desserts", "{args:?}");
    }
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"wasm": [], "nope": 1}"#).unwrap();
    let e = run(&["call", "-m", &bad.display().to_string(), "f"]).unwrap_err();
    assert!(e.contains("unknown field `nope`"), "{e}");
}

#[test]
fn http_response_max_limits_responses() {
    let (port, server) = host_fixtures::loopback::serve(2, |_| {
        host_fixtures::loopback::response("200 OK", "", b"0123456789")
    });
    let url = format!("http://127.0.0.1:{port}/");
    let base = [
        "call",
        "sample:http",
        "fetch",
        "--allow-host",
        "127.0.0.1",
        "--input",
        &url,
    ];
    let ok = run(&[
        &base[..],
        &[
            "--http-response-max",
            "10",
            "--enable-http-response-headers",
        ],
    ]
    .concat());
    assert_eq!(ok.unwrap(), "200 0123456789");
    let e = run(&[&base[..], &["--http-response-max", "9"]].concat()).unwrap_err();
    assert!(e.contains("exceeds 9 bytes"), "{e}");
    server.join().unwrap();
}

/// `host-demo call sample:count_vowels count_vowels --input "Hello, World!"` with the cache
/// in `dir` (`None`: the variable unset) and `extra` arguments; stdout and stderr, after
/// checking that it succeeded.
fn count_vowels(dir: Option<&Path>, extra: &[&str], env: &[(&str, &str)]) -> (Vec<u8>, String) {
    let mut cmd = host_demo_command();
    match dir {
        Some(d) => cmd.env("HOST_DEMO_CACHE_DIR", d),
        None => cmd.env_remove("HOST_DEMO_CACHE_DIR"),
    };
    cmd.envs(env.iter().copied());
    let out = cmd
        .args(["call", "sample:count_vowels", "count_vowels"])
        .args(["--input", "Hello, World!"])
        .args(extra)
        .output()
        .expect("running host-demo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{extra:?} {env:?}: {stderr}");
    (out.stdout, stderr)
}

/// The cache's entries with their modification times, sorted.
fn entries(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("reading the cache directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .map(|p| {
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn call_uses_the_compilation_cache_unless_told_not_to() {
    const VOWELS: &[u8] = br#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#;
    let root = std::env::temp_dir().join(format!("host-demo-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("cache");

    // Cold: the plugin and the core kernel compiled and stored.
    let (cold, stderr) = count_vowels(Some(&dir), &[], &[]);
    assert_eq!((cold.as_slice(), stderr.as_str()), (VOWELS, ""));
    let stored = entries(&dir);
    assert_eq!(stored.len(), 2, "{stored:?}");
    // Warm: the same output, and nothing compiled or written again.
    let (warm, stderr) = count_vowels(Some(&dir), &[], &[]);
    assert_eq!((warm.as_slice(), stderr.as_str()), (VOWELS, ""));
    assert_eq!(entries(&dir), stored, "a warm run rewrote an entry");
    // `--cache-dir` names the directory too.
    let (out, _) = count_vowels(None, &["--cache-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(out, VOWELS);
    assert_eq!(entries(&dir), stored);

    // Off: `--no-cache`, or HOST_DEMO_NO_CACHE set to a true value, touch no directory.
    let unused = root.join("unused");
    for (extra, env) in [
        (&["--no-cache"][..], &[][..]),
        (&[], &[("HOST_DEMO_NO_CACHE", "1")]),
        (&[], &[("HOST_DEMO_NO_CACHE", "yes")]),
    ] {
        let (out, stderr) = count_vowels(Some(&unused), extra, env);
        assert_eq!((out.as_slice(), stderr.as_str()), (VOWELS, ""));
        assert!(!unused.exists(), "{extra:?} {env:?} used the cache");
    }
    let (out, _) = count_vowels(Some(&unused), &[], &[("HOST_DEMO_NO_CACHE", "0")]);
    assert_eq!(out, VOWELS);
    assert_eq!(entries(&unused).len(), 2, "HOST_DEMO_NO_CACHE=0 is off");

    // The default directory: $XDG_CACHE_HOME/extism-kernel-host, else under $HOME.
    let xdg = root.join("xdg");
    let (out, _) = count_vowels(None, &[], &[("XDG_CACHE_HOME", xdg.to_str().unwrap())]);
    assert_eq!(out, VOWELS);
    assert_eq!(entries(&xdg.join("extism-kernel-host")).len(), 2);
    let home = root.join("home");
    let (out, _) = count_vowels(
        None,
        &[],
        &[("XDG_CACHE_HOME", ""), ("HOME", home.to_str().unwrap())],
    );
    assert_eq!(out, VOWELS);
    assert_eq!(entries(&home.join(".cache/extism-kernel-host")).len(), 2);

    // A corrupt entry: one warning line, the right output, the entry stored anew.
    let victim = &stored[0].0;
    let bytes = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes[..bytes.len() / 2]).unwrap();
    let (out, stderr) = count_vowels(Some(&dir), &[], &[]);
    assert_eq!(out, VOWELS);
    assert!(
        stderr.starts_with("warning: compilation cache: ") && stderr.lines().count() == 1,
        "{stderr:?}"
    );
    assert_eq!(std::fs::read(victim).unwrap(), bytes, "stored anew");

    // A directory that cannot be made (its parent is a file): one warning, the right output.
    let file = root.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (out, stderr) = count_vowels(Some(&file.join("cache")), &[], &[]);
    assert_eq!(out, VOWELS);
    assert!(
        stderr.starts_with("warning: compilation cache: cannot create ")
            && stderr.lines().count() == 1,
        "{stderr:?}"
    );

    // `--help` tells of the flag and the variables.
    let help = host_demo_command()
        .args(["call", "--help"])
        .output()
        .expect("running host-demo");
    let help = String::from_utf8_lossy(&help.stdout);
    for w in [
        "--no-cache",
        "HOST_DEMO_NO_CACHE",
        "--cache-dir",
        "HOST_DEMO_CACHE_DIR",
    ] {
        assert!(help.contains(w), "--help lacks {w}: {help}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn kernel_composed_composes_at_load_time_and_caches_the_composition() {
    let dir = temp_dir("kernel-composed");
    let cache = dir.join("cache");
    let call = |extra: &[&str]| {
        let out = host_demo_command()
            .env("HOST_DEMO_CACHE_DIR", &cache)
            .args(["call", "sample:count_vowels", "count_vowels", "--input"])
            .args(["Hello, World!", "--config", "vowels=lo"])
            .args(extra)
            .output()
            .expect("running host-demo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let core = call(&[]);
    let entries = || std::fs::read_dir(&cache).unwrap().count();
    let before = entries();
    assert_eq!(call(&["--kernel", "composed"]), core);
    // One new entry: the composed plugin, compiled, keyed by the plugin's bytes.
    assert_eq!(entries(), before + 1);
    assert_eq!(call(&["--kernel", "composed"]), core);
    assert_eq!(
        entries(),
        before + 1,
        "the second run loads it from the cache"
    );
    // A WASI plugin composes too, and needs --wasi as on the core path.
    let wasi = [
        "call",
        "sample:wasi_print",
        "print",
        "--input",
        "x",
        "--kernel",
        "composed",
    ];
    let e = run(&wasi).unwrap_err();
    assert!(e.contains("WASI"), "{e}");
    assert_eq!(
        run(&[&wasi[..], &["--wasi"]].concat()).unwrap(),
        "hello from wasi: x\nx"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

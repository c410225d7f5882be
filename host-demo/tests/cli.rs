//! The `host-demo` binary: bad files and bad arguments give one-line errors with exit code 1,
//! and `componentize` writes what the library makes.

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

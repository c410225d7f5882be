//! The `host-demo` binary: bad files and bad arguments give one-line errors with exit code 1,
//! and `componentize` writes what the library makes.

use std::process::Command;

/// Runs `host-demo` with `args`; its exit code and stderr.
fn host_demo(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_host-demo"))
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
    let status = Command::new(env!("CARGO_BIN_EXE_host-demo"))
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
    let call = Command::new(env!("CARGO_BIN_EXE_host-demo"))
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

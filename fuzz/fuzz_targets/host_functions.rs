//! The Extism host functions given anything: a small plugin (WAT, [`INTERPRETER`]) reads a
//! program from its input and calls the host functions of `extism:host/env` (`config_get`,
//! `var_get`, `var_set`, `http_request`, `http_status_code`, `http_headers`,
//! `get_log_level`, `log_*`) and a few kernel functions (`alloc`, `free`, `output_set`,
//! `error_set`, `reset`) with the arguments it says: handles of blocks it made (filled with
//! the fuzzer's bytes: keys, values, messages, JSON requests with arbitrary methods and
//! headers), such handles off by a little, raw `i64`s, `0`, blocks too big for the limits.
//!
//! The input chooses the plugin's form (the core-module kernel, the component kernel, or the
//! plugin composed into one component by `componentize`) and its options: a log level, a
//! var limit of 64 or 1024 bytes, a memory limit of 40 or 80 pages, a 2 s timeout, whether
//! response headers are kept. A call may fail; the host must not panic, every error must
//! print as one line, and the plugin must answer the next call (an empty program: an empty
//! output).
//!
//! `KERNEL_FUZZ_VERBOSE=1` prints each input's choice, ops and results (to see what a
//! corpus reaches, or what a crash did).
//!
//! No network: the only allowed host is `224.0.0.1`, a multicast address, to which Linux
//! refuses a TCP connection at once (`ENETUNREACH`) without sending a packet, so a request
//! runs through the JSON, the URL, the allow-list, the method and the headers and then
//! fails to connect. Every other host is refused by the allow-list.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use plugin_host::{
    CallError, ComposedPlugin, KernelKind, PluginOptions, PluginPre, Runtime, RuntimeOptions,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The plugin: `run` executes the program in its input, one op after another, keeping the
/// handles it makes in a ring of 64 slots at address 0 of its memory. An op is one byte,
/// then its arguments; an argument is a kind byte then its value (see [`Arg`]).
const INTERPRETER: &str = r#"(module
    (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
    (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
    (import "extism:host/env" "input_length" (func $input_length (result i64)))
    (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
    (import "extism:host/env" "free" (func $free (param i64)))
    (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
    (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
    (import "extism:host/env" "error_set" (func $error_set (param i64)))
    (import "extism:host/env" "reset" (func $reset))
    (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
    (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
    (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
    (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
    (import "extism:host/env" "http_status_code" (func $http_status_code (result i32)))
    (import "extism:host/env" "http_headers" (func $http_headers (result i64)))
    (import "extism:host/env" "get_log_level" (func $get_log_level (result i32)))
    (import "extism:host/env" "log_trace" (func $log_trace (param i64)))
    (import "extism:host/env" "log_debug" (func $log_debug (param i64)))
    (import "extism:host/env" "log_info" (func $log_info (param i64)))
    (import "extism:host/env" "log_warn" (func $log_warn (param i64)))
    (import "extism:host/env" "log_error" (func $log_error (param i64)))
    (memory 1)
    (global $pc (mut i64) (i64.const 0))
    (global $pushed (mut i32) (i32.const 0))
    (func $byte (result i32)
        (call $input_load_u8 (global.get $pc))
        (global.set $pc (i64.add (global.get $pc) (i64.const 1))))
    (func $word (result i64)
        (call $input_load_u64 (global.get $pc))
        (global.set $pc (i64.add (global.get $pc) (i64.const 8))))
    (func $slot (param $i i32) (result i32)
        (i32.shl (i32.and (local.get $i) (i32.const 63)) (i32.const 3)))
    (func $push (param $h i64)
        (i64.store (call $slot (global.get $pushed)) (local.get $h))
        (global.set $pushed (i32.add (global.get $pushed) (i32.const 1))))
    (func $arg (result i64) (local $kind i32)
        (local.set $kind (call $byte))
        (if (i32.eq (local.get $kind) (i32.const 0))
            (then (return (i64.load (call $slot (call $byte))))))
        (if (i32.eq (local.get $kind) (i32.const 1)) (then (return (call $word))))
        (if (i32.eq (local.get $kind) (i32.const 2)) (then (return (i64.const 0))))
        (if (i32.eq (local.get $kind) (i32.const 3))
            (then (return (i64.add (i64.load (call $slot (call $byte)))
                (i64.extend_i32_s (i32.extend8_s (call $byte)))))))
        (i64.load (call $slot (i32.sub (global.get $pushed) (i32.const 1)))))
    ;; A block of the next `len` (u16) bytes of the program.
    (func $block (local $len i64) (local $h i64) (local $i i64)
        (local.set $len (i64.extend_i32_u (i32.or (call $byte) (i32.shl (call $byte) (i32.const 8)))))
        (local.set $h (call $alloc (local.get $len)))
        (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (local.get $len)))
            (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $byte))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
        (call $push (local.get $h)))
    (func (export "run") (result i32) (local $end i64) (local $op i32) (local $a i64)
        (local.set $end (call $input_length))
        (global.set $pc (i64.const 0))
        (global.set $pushed (i32.const 0))
        (memory.fill (i32.const 0) (i32.const 0) (i32.const 512))
        (block $done (loop $next
            (br_if $done (i64.ge_u (global.get $pc) (local.get $end)))
            (local.set $op (call $byte))
            (if (i32.eq (local.get $op) (i32.const 0)) (then (call $block) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 1)) (then (call $push (call $alloc (call $arg))) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 2)) (then (call $push (call $config_get (call $arg))) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 3)) (then (call $push (call $var_get (call $arg))) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 4)) (then
                (local.set $a (call $arg)) (call $var_set (local.get $a) (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 5)) (then
                (local.set $a (call $arg)) (call $push (call $http_request (local.get $a) (call $arg))) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 6)) (then
                (call $push (i64.extend_i32_s (call $http_status_code))) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 7)) (then (call $push (call $http_headers)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 8)) (then
                (call $push (i64.extend_i32_s (call $get_log_level))) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 9)) (then (call $log_trace (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 10)) (then (call $log_debug (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 11)) (then (call $log_info (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 12)) (then (call $log_warn (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 13)) (then (call $log_error (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 14)) (then (call $free (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 15)) (then
                (local.set $a (call $arg)) (call $output_set (local.get $a) (call $arg)) (br $next)))
            (if (i32.eq (local.get $op) (i32.const 16)) (then
                (call $error_set (call $arg)) (return (i32.const 1))))
            (if (i32.eq (local.get $op) (i32.const 17)) (then (return (call $byte))))
            (if (i32.eq (local.get $op) (i32.const 18)) (then (call $reset) (br $next)))
            (br $next)))
        (i32.const 0)))"#;

/// An argument of an op, as the interpreter reads it.
#[derive(Debug, Clone, Copy)]
enum Arg {
    /// The handle in slot `i` (of 64).
    Slot(u8),
    /// Any value.
    Raw(u64),
    /// `0`.
    Zero,
    /// The handle in slot `i` plus a small signed offset.
    Near(u8, i8),
    /// The handle made last.
    Last,
}

/// The program being written, and how many handles it made (to point `Slot`s at them).
#[derive(Debug, Default)]
struct Program {
    bytes: Vec<u8>,
    pushed: usize,
    /// What it does, when [`verbose`].
    shown: Vec<String>,
}

/// Whether to print what each input does (`KERNEL_FUZZ_VERBOSE`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("KERNEL_FUZZ_VERBOSE").is_some())
}

/// The ops' names, by number.
const OPS: [&str; 19] = [
    "block",
    "alloc",
    "config_get",
    "var_get",
    "var_set",
    "http_request",
    "http_status_code",
    "http_headers",
    "get_log_level",
    "log_trace",
    "log_debug",
    "log_info",
    "log_warn",
    "log_error",
    "free",
    "output_set",
    "error_set",
    "return",
    "reset",
];

impl Program {
    fn op(&mut self, op: u8, args: &[Arg]) {
        if verbose() {
            let name = OPS.get(usize::from(op)).copied().unwrap_or("nop");
            self.shown.push(format!("{name}{args:?}"));
        }
        self.bytes.push(op);
        for a in args {
            match *a {
                Arg::Slot(i) => self.bytes.extend([0, i]),
                Arg::Raw(x) => {
                    self.bytes.push(1);
                    self.bytes.extend(x.to_le_bytes());
                }
                Arg::Zero => self.bytes.push(2),
                Arg::Near(i, d) => self.bytes.extend([3, i, d as u8]),
                Arg::Last => self.bytes.push(4),
            }
        }
    }

    /// An op that makes a handle (every op that pushes one).
    fn pushing(&mut self, op: u8, args: &[Arg]) {
        self.op(op, args);
        self.pushed += 1;
    }

    fn block(&mut self, data: &[u8]) {
        let data = &data[..data.len().min(u16::MAX as usize)];
        if verbose() {
            self.shown
                .push(format!("block {:?}", String::from_utf8_lossy(data)));
        }
        self.bytes.push(0);
        self.bytes.extend((data.len() as u16).to_le_bytes());
        self.bytes.extend(data);
        self.pushed += 1;
    }

    /// An argument: mostly a handle the program made, recent ones more often.
    fn arg(&self, u: &mut Unstructured) -> Result<Arg> {
        let recent = |u: &mut Unstructured| -> Result<u8> {
            let back = u.int_in_range(1..=self.pushed.clamp(1, 64))?;
            Ok((self.pushed.wrapping_sub(back) % 64) as u8)
        };
        Ok(match u.int_in_range(0..=19)? {
            0..=7 => Arg::Last,
            8..=13 => Arg::Slot(recent(u)?),
            14 => Arg::Near(recent(u)?, u.arbitrary()?),
            15 => Arg::Zero,
            16 => Arg::Raw(*u.choose(&[u64::MAX, 1 << 32, (1 << 32) - 1, 1 << 40, 8, 1])?),
            _ => Arg::Raw(u.arbitrary()?),
        })
    }

    /// The slot of the block pushed last (by [`block`](Self::block)), which stays put while
    /// later blocks are pushed.
    fn last_slot(&self) -> Arg {
        Arg::Slot(((self.pushed - 1) % 64) as u8)
    }

    /// An optional second argument (a var's value, a request's body): `0` (none), any
    /// argument, or a new block of anything; choice `0..=max`, the new block from 2 on.
    fn optional(&mut self, u: &mut Unstructured, max: u8) -> Result<Arg> {
        Ok(match u.int_in_range(0..=max)? {
            0 => Arg::Zero,
            1 => self.arg(u)?,
            _ => {
                self.block(&u.arbitrary::<Vec<u8>>()?);
                Arg::Last
            }
        })
    }
}

/// The config every plugin has: keys a program may ask for.
const CONFIG: &[(&str, &str)] = &[("k", "v"), ("", "empty key"), ("ключ", "значение")];

/// Keys a program uses: the config's, a few of its own, anything.
fn key(u: &mut Unstructured) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=5)? {
        0 => u.choose(CONFIG)?.0.as_bytes().to_vec(),
        1 => b"var".to_vec(),
        2 => vec![b'x'; u.int_in_range(0..=2048)?],
        3 => vec![0xff, 0xfe],
        _ => u.arbitrary()?,
    })
}

fn string(u: &mut Unstructured, choices: &[&str]) -> Result<String> {
    if u.ratio(2, 3)? {
        Ok(u.choose(choices)?.to_string())
    } else {
        u.arbitrary()
    }
}

/// The JSON of an HTTP request: mostly well-formed, with a URL on the allowed multicast
/// address or on a host that is not allowed, arbitrary methods and headers; now and then a
/// field of the wrong type, or cut short.
fn request(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut map = Map::new();
    let url = match u.int_in_range(0..=6)? {
        0 => "http://224.0.0.1/".to_string(),
        1 => format!(
            "http://224.0.0.1:{}/{}",
            u.arbitrary::<u16>()?,
            u.arbitrary::<String>()?
        ),
        2 => "https://224.0.0.1/x?y=z".to_string(),
        3 => format!("{}://224.0.0.1/", u.arbitrary::<String>()?),
        4 => string(
            u,
            &[
                "http://127.0.0.1/",
                "http://[::1]/",
                "http:///",
                "http://a@b/",
            ],
        )?,
        _ => u.arbitrary()?,
    };
    if u.ratio(7, 8)? {
        map.insert("url".into(), Value::String(url));
    } else if u.arbitrary()? {
        map.insert("url".into(), Value::from(u.arbitrary::<i64>()?));
    }
    match u.int_in_range(0..=4)? {
        0 => {}
        1 => {
            map.insert("method".into(), Value::Null);
        }
        2 => {
            map.insert("method".into(), Value::from(u.arbitrary::<u8>()?));
        }
        _ => {
            let m = string(
                u,
                &[
                    "GET", "post", "PUT", "DELETE", "HEAD", "CONNECT", "OPTIONS", "TRACE", "",
                ],
            )?;
            map.insert("method".into(), Value::String(m));
        }
    }
    match u.int_in_range(0..=5)? {
        0 => {}
        1 => {
            map.insert("headers".into(), Value::Array(vec![Value::Null]));
        }
        _ => {
            let mut headers = Map::new();
            for _ in 0..u.int_in_range(0..=8)? {
                let name = string(
                    u,
                    &[
                        "Host",
                        "Content-Length",
                        "Transfer-Encoding",
                        "Connection",
                        "X-A",
                        "",
                        "a b",
                    ],
                )?;
                let value = string(u, &["224.0.0.1", "1", "chunked", "close", "", "\r\nX: y"])?;
                headers.insert(name, Value::String(value));
            }
            map.insert("headers".into(), Value::Object(headers));
        }
    }
    if u.ratio(1, 8)? {
        map.insert(u.arbitrary()?, Value::Bool(true));
    }
    let mut json = serde_json::to_vec(&Value::Object(map)).expect("a JSON value serializes");
    if u.ratio(1, 10)? {
        json.truncate(u.int_in_range(0..=json.len())?);
    }
    Ok(json)
}

/// The program of one input. Most calls take blocks made just before them (a key, a value,
/// a request, a message); the rest take any argument.
fn program(u: &mut Unstructured) -> Result<Program> {
    let mut p = Program::default();
    while !u.is_empty() && p.bytes.len() < 16 << 10 {
        match u.int_in_range(0..=31)? {
            0 | 1 => p.block(&key(u)?),
            2 => p.block(&u.arbitrary::<Vec<u8>>()?),
            3 => p.block(&request(u)?),
            4 => {
                let n = *u.choose(&[0, 1, 64 << 10, 1 << 20, 8 << 20, u64::MAX])?;
                p.pushing(1, &[Arg::Raw(n)]);
            }
            5 | 6 => {
                p.block(&key(u)?);
                p.pushing(u.int_in_range(2..=3)?, &[Arg::Last]);
            }
            7 => p.pushing(u.int_in_range(2..=3)?, &[p.arg(u)?]),
            8..=10 => {
                p.block(&key(u)?);
                let k = p.last_slot();
                let value = p.optional(u, 3)?;
                p.op(4, &[k, value]);
            }
            11 => {
                let (k, v) = (p.arg(u)?, p.arg(u)?);
                p.op(4, &[k, v]);
            }
            12..=15 => {
                p.block(&request(u)?);
                let request = p.last_slot();
                let body = p.optional(u, 2)?;
                p.pushing(5, &[request, body]);
            }
            16 => {
                let (r, b) = (p.arg(u)?, p.arg(u)?);
                p.pushing(5, &[r, b]);
            }
            17 => p.pushing(6, &[]),
            18 => p.pushing(7, &[]),
            19 => p.pushing(8, &[]),
            20 | 21 => {
                p.block(&u.arbitrary::<Vec<u8>>()?);
                p.op(u.int_in_range(9..=13)?, &[Arg::Last]);
            }
            22 => p.op(u.int_in_range(9..=13)?, &[p.arg(u)?]),
            23 | 24 => p.op(14, &[p.arg(u)?]),
            25 | 26 => {
                let (h, n) = (p.arg(u)?, p.arg(u)?);
                p.op(15, &[h, n]);
            }
            27 => {
                p.op(16, &[p.arg(u)?]);
                break;
            }
            28 => {
                p.op(17, &[]);
                p.bytes.push(u.arbitrary()?);
                break;
            }
            29 => p.op(18, &[]),
            _ => p.op(u.arbitrary()?, &[]),
        }
    }
    Ok(p)
}

/// What the input chooses of a plugin: its form and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Choice {
    /// 0: core-module kernel, 1: component kernel, 2: composed.
    form: u8,
    log_level: Option<log::Level>,
    big_vars: bool,
    big_memory: bool,
    headers: bool,
}

impl Choice {
    fn draw(u: &mut Unstructured) -> Result<Self> {
        Ok(Choice {
            form: u.int_in_range(0..=2)?,
            log_level: *u.choose(&[
                None,
                Some(log::Level::Trace),
                Some(log::Level::Info),
                Some(log::Level::Error),
            ])?,
            big_vars: u.arbitrary()?,
            big_memory: u.arbitrary()?,
            headers: u.arbitrary()?,
        })
    }

    fn options(&self) -> PluginOptions {
        PluginOptions {
            kernel: if self.form == 1 {
                KernelKind::Component
            } else {
                KernelKind::Core
            },
            config: CONFIG
                .iter()
                .map(|&(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allowed_hosts: vec!["224.0.0.1".into()],
            timeout: Some(Duration::from_secs(2)),
            memory_max_pages: Some(if self.big_memory { 80 } else { 40 }),
            log_level: self.log_level,
            var_limit_bytes: if self.big_vars { 1024 } else { 64 },
            http_max_response_bytes: 1 << 16,
            http_response_headers: self.headers,
            ..PluginOptions::default()
        }
    }
}

/// A plugin of one [`Choice`], made fresh for each input.
enum Made {
    Classic(plugin_host::Plugin),
    Composed(Box<ComposedPlugin>),
}

impl Made {
    fn call(&mut self, input: &[u8]) -> std::result::Result<Vec<u8>, CallError> {
        match self {
            Made::Classic(p) => p.call("run", input),
            Made::Composed(p) => p.call("run", input),
        }
    }
}

/// The runtime, the plugin, and what each choice needs compiled once.
struct Shared {
    runtime: Runtime,
    wasm: Vec<u8>,
    component: Vec<u8>,
    pres: Mutex<HashMap<Choice, Arc<PluginPre>>>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Compiled code is kept on disk (cargo-fuzz's target folder): a composed plugin is
        // compiled once, not at every input.
        let cache = concat!(env!("CARGO_MANIFEST_DIR"), "/target/host-functions-cache");
        let runtime = Runtime::new(RuntimeOptions {
            cache: Some(cache.into()),
            ..RuntimeOptions::default()
        })
        .expect("a runtime");
        let wasm = wat::parse_str(INTERPRETER).expect("the interpreter is valid WAT");
        let component =
            plugin_host::componentize::componentize(&wasm).expect("componentizing the plugin");
        Shared {
            runtime,
            wasm,
            component,
            pres: Mutex::default(),
        }
    })
}

fn make(choice: Choice) -> Made {
    let s = shared();
    if choice.form == 2 {
        let p = ComposedPlugin::new(&s.runtime, &s.component, choice.options())
            .unwrap_or_else(|e| panic!("{choice:?}: the composed plugin: {e:#}"));
        return Made::Composed(Box::new(p));
    }
    let pre = s
        .pres
        .lock()
        .expect("no panic while held")
        .entry(choice)
        .or_insert_with(|| {
            let pre = PluginPre::new(&s.runtime, &s.wasm, choice.options())
                .unwrap_or_else(|e| panic!("{choice:?}: linking the plugin: {e:#}"));
            Arc::new(pre)
        })
        .clone();
    Made::Classic(
        pre.instantiate()
            .unwrap_or_else(|e| panic!("{choice:?}: instantiating: {e:#}")),
    )
}

fn one(u: &mut Unstructured) -> Result<()> {
    let choice = Choice::draw(u)?;
    let mut calls = Vec::new();
    for _ in 0..u.int_in_range(1..=3)? {
        calls.push(program(u)?);
    }
    let mut plugin = make(choice);
    if verbose() {
        eprintln!("{choice:?}");
    }
    for (i, program) in calls.iter().enumerate() {
        let result = plugin.call(&program.bytes);
        if verbose() {
            eprintln!("call {i}: {:?}", program.shown);
            eprintln!("  -> {result:?}");
        }
        if let Err(e) = result {
            let line = e.to_string();
            assert!(
                !line.is_empty() && !line.contains('\n'),
                "{choice:?}: call {i}: an error of more than one line: {line:?}"
            );
        }
        match plugin.call(b"") {
            Ok(out) if out.is_empty() => {}
            other => panic!("{choice:?}: after call {i}, an empty program gave {other:?}"),
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = one(&mut Unstructured::new(data));
});

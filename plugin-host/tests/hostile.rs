//! Hostile plugins and bad host input (issue 6). Each plugin is inline WAT that calls the
//! kernel's exports and the host functions the way no well-behaved plugin would: it stores
//! over every address it can reach, sets ranges and handles that are not blocks, frees twice,
//! resets in the middle of a call, exhausts the kernel's memory, loops forever inside kernel
//! calls, recurses until the stack overflows, and grows its own memory past the limit. For
//! each, on both kernel forms, the host must give a correct result or a clear one-line error,
//! never panic, never read outside the kernel's memory, and stay usable for the next call.
//! (The `host-demo` binary on bad files and bad arguments: `host-demo/tests/cli.rs`.)

use host_fixtures::{KINDS, fuel_runtime, runtime};
use plugin_host::{CallError, KernelKind, Plugin, PluginOptions, Runtime};
use std::time::{Duration, Instant};

/// Every kernel export and the host functions the hostile plugins call, and two helpers:
/// `$out_u64` makes a `u64` the output, `$out_words` makes `n` words at a block the output.
const PRELUDE: &str = r#"
    (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
    (import "extism:host/env" "free" (func $free (param i64)))
    (import "extism:host/env" "length" (func $length (param i64) (result i64)))
    (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
    (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
    (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
    (import "extism:host/env" "input_length" (func $input_length (result i64)))
    (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
    (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
    (import "extism:host/env" "error_set" (func $error_set (param i64)))
    (import "extism:host/env" "reset" (func $reset))
    (import "extism:host/env" "memory_bytes" (func $memory_bytes (result i64)))
    (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
    (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
    (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
    (import "extism:host/env" "log_info" (func $log_info (param i64)))
    (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
    (memory 1)
    (func $out_u64 (param $x i64) (local $h i64)
        (local.set $h (call $alloc (i64.const 8)))
        (call $store_u64 (local.get $h) (local.get $x))
        (call $output_set (local.get $h) (i64.const 8)))
    (func (export "ok") (result i32)
        (call $out_u64 (i64.const 0x1122334455667788))
        (i32.const 0))
"#;

/// A plugin made of the prelude and `funcs`.
fn hostile(funcs: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {funcs})")).expect("valid WAT")
}

fn load(runtime: &Runtime, wasm: &[u8], options: PluginOptions) -> Plugin {
    let kind = options.kernel;
    Plugin::new(runtime, wasm, options).unwrap_or_else(|e| panic!("{kind}: loading: {e:#}"))
}

fn opts(kernel: KernelKind) -> PluginOptions {
    host_fixtures::options(kernel)
}

/// Runs `test` on a fresh instance of the hostile plugin `funcs` on each kernel form.
fn on_each_kind(funcs: &str, mut test: impl FnMut(&mut Plugin, KernelKind)) {
    let wasm = hostile(funcs);
    for kind in KINDS {
        test(&mut load(runtime(), &wasm, opts(kind)), kind);
    }
}

/// A call's error, checking that it prints as one line (shown with `--nocapture`).
fn call_error(p: &mut Plugin, kind: KernelKind, f: &str, input: &[u8]) -> CallError {
    let e = p
        .call(f, input)
        .expect_err(&format!("{kind}: `{f}` should fail"));
    let line = e.to_string();
    assert!(!line.contains('\n') && !line.is_empty(), "{kind}: {line:?}");
    eprintln!("{kind}: {f}: {line}");
    e
}

/// Calling `f` traps with a message containing `want`, and the plugin still works after.
fn traps_and_recovers(p: &mut Plugin, kind: KernelKind, f: &str, input: &[u8], want: &str) {
    assert_trap(call_error(p, kind, f, input), kind, want);
    still_ok(p, kind, f);
}

/// Asserts that `e` is a trap whose message contains `want`.
fn assert_trap(e: CallError, kind: KernelKind, want: &str) {
    match e {
        CallError::Trap(msg) => assert!(msg.contains(want), "{kind}: {msg}"),
        e => panic!("{kind}: expected a trap containing {want:?}, got {e:?}"),
    }
}

fn call_ok(p: &mut Plugin, kind: KernelKind, f: &str, input: &[u8]) -> Vec<u8> {
    p.call(f, input)
        .unwrap_or_else(|e| panic!("{kind}: `{f}` failed: {e}"))
}

/// The plugin still answers a plain call correctly.
fn still_ok(p: &mut Plugin, kind: KernelKind, after: &str) {
    assert_eq!(
        p.call("ok", b"x"),
        Ok(0x1122_3344_5566_7788u64.to_le_bytes().to_vec()),
        "{kind}: `ok` after `{after}`"
    );
}

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stores everywhere

const SCRIBBLE: &str = r#"
    (func (export "scribble") (result i32)
        (local $p i64) (local $end i64) (local $in i64) (local $out i64)
        (local.set $in (call $input_offset))
        ;; Past the end of the kernel's memory: its heap ends below memory_bytes + 64 KiB.
        (local.set $end (i64.add (call $memory_bytes) (i64.const 0x10000)))
        (loop $bytes
            (call $store_u8 (local.get $p) (i32.const 0xA5))
            (local.set $p (i64.add (local.get $p) (i64.const 1)))
            (br_if $bytes (i64.lt_u (local.get $p) (local.get $end))))
        (local.set $p (i64.const 0))
        (loop $words
            (call $store_u64 (local.get $p) (i64.const -1))
            (call $store_u64 (i64.add (local.get $p) (i64.const 5)) (i64.const -1))
            (local.set $p (i64.add (local.get $p) (i64.const 8)))
            (br_if $words (i64.lt_u (local.get $p) (local.get $end))))
        (call $store_u64 (i64.const 0xFFFFFFF8) (i64.const -1))
        (call $store_u64 (i64.const 0xFFFFFFFD) (i64.const -1))
        (call $store_u64 (i64.const -8) (i64.const -1))
        (call $store_u8 (i64.const -1) (i32.const 1))
        ;; The allocator still knows the input block and hands out a block clear of it.
        (local.set $out (call $alloc (i64.const 32)))
        (if (i64.eqz (local.get $out)) (then (return (i32.const 2))))
        (call $store_u64 (local.get $out) (call $length (local.get $in)))
        (call $store_u64 (i64.add (local.get $out) (i64.const 8)) (call $load_u64 (local.get $in)))
        (call $store_u64 (i64.add (local.get $out) (i64.const 16)) (local.get $out))
        (call $store_u64 (i64.add (local.get $out) (i64.const 24)) (local.get $in))
        (call $output_set (local.get $out) (i64.const 32))
        (i32.const 0))
"#;

#[test]
fn a_plugin_storing_over_every_address_still_gets_its_output() {
    on_each_kind(SCRIBBLE, |p, kind| {
        for len in [100u64, 3000] {
            let out = words(&call_ok(p, kind, "scribble", &vec![7; len as usize]));
            let [length, word, out, input] = out[..] else {
                panic!("{kind}: output of {} words", out.len());
            };
            assert_eq!(length, len, "{kind}: the input block keeps its length");
            assert_eq!(
                word,
                u64::MAX,
                "{kind}: the input's bytes were the plugin's to write"
            );
            assert!(
                out + 32 <= input || input + len <= out,
                "{kind}: new block {out} overlaps the input {input}+{len}"
            );
        }
        still_ok(p, kind, "scribble");
    });
}

// ---------------------------------------------------------------------------------------------
// Output and error ranges that are not blocks

const BAD_RANGES: &str = r#"
    (func (export "output_low") (result i32)
        ;; Data, stack and (on the core module) the allocator's metadata.
        (call $output_set (i64.const 0) (i64.const 0x10000))
        (i32.const 0))
    (func (export "output_past_end") (result i32)
        (call $output_set (i64.sub (call $memory_bytes) (i64.const 8)) (i64.const 0x20000))
        (i32.const 0))
    (func (export "output_to_u64_max") (result i32)
        (call $output_set (call $input_offset) (i64.sub (i64.const 0) (call $input_offset)))
        (i32.const 0))
    (func (export "output_freed_then_reused_by_the_allocator") (result i32)
        (local $h i64) (local $i i32)
        (local.set $h (call $alloc (i64.const 4096)))
        (call $store_u64 (local.get $h) (i64.const 0x4242424242424242))
        (call $output_set (local.get $h) (i64.const 4096))
        (call $free (local.get $h))
        ;; Enough blocks that the allocator's record table grows, into the freed block.
        (loop $l
            (drop (call $alloc (i64.const 8)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 400))))
        (i32.const 0))
    (func $msg (result i64) (local $h i64)
        (local.set $h (call $alloc (i64.const 5)))
        (call $store_u64 (local.get $h) (i64.const 0x21737075))
        (call $store_u8 (i64.add (local.get $h) (i64.const 4)) (i32.const 0x21))
        (local.get $h))
    (func (export "error_not_a_block") (result i32)
        (call $error_set (i64.const 12345))
        (i32.const 1))
    (func (export "error_off_by_one") (result i32)
        (call $error_set (i64.add (call $msg) (i64.const 1)))
        (i32.const 2))
    (func (export "error_u64_max") (result i32)
        (call $error_set (i64.const -1))
        (i32.const 3))
    (func (export "error_freed") (result i32) (local $h i64)
        (local.set $h (call $msg))
        (call $error_set (local.get $h))
        (call $free (local.get $h))
        (i32.const 4))
    (func (export "error_then_bogus") (result i32)
        (call $error_set (call $msg))
        (call $error_set (i64.const 77))
        (i32.const 5))
    (func (export "error_then_reset") (result i32)
        (call $error_set (call $msg))
        (call $reset)
        (i32.const 6))
"#;

#[test]
fn output_set_outside_the_heap_is_ignored() {
    on_each_kind(BAD_RANGES, |p, kind| {
        for f in ["output_low", "output_past_end", "output_to_u64_max"] {
            assert_eq!(p.call(f, b"input"), Ok(vec![]), "{kind}: `{f}`");
        }
        still_ok(p, kind, "bad output ranges");
    });
}

#[test]
fn output_over_a_block_the_allocator_reused_is_read_inside_kernel_memory() {
    // The output range is checked when it is set; the block is then freed and the allocator
    // moves its own record table there. The core host reads the range straight from the
    // kernel's memory (inside it, so no harm, though the bytes are the allocator's); the
    // component refuses to hand out bytes it no longer lets plugins reach.
    on_each_kind(BAD_RANGES, |p, kind| {
        let got = p.call("output_freed_then_reused_by_the_allocator", b"");
        eprintln!(
            "{kind}: output over a reused block: {:?}",
            got.as_ref().map(Vec::len)
        );
        match got {
            Ok(bytes) => assert_eq!(bytes.len(), 4096, "{kind}"),
            Err(CallError::Trap(msg)) => {
                assert!(msg.contains("output"), "{kind}: {msg}")
            }
            Err(e) => panic!("{kind}: {e:?}"),
        }
        still_ok(p, kind, "output over a reused block");
    });
}

#[test]
fn error_set_of_something_not_a_block_gives_no_message() {
    let wasm = hostile(BAD_RANGES);
    let no_message = |code| CallError::Failed {
        code,
        message: None,
    };
    for kind in KINDS {
        let mut p = load(runtime(), &wasm, opts(kind));
        for (f, want) in [
            ("error_not_a_block", no_message(1)),
            ("error_off_by_one", no_message(2)),
            ("error_u64_max", no_message(3)),
            ("error_freed", no_message(4)),
            (
                "error_then_bogus",
                CallError::Failed {
                    code: 5,
                    message: Some("ups!!".into()),
                },
            ),
            ("error_then_reset", no_message(6)),
        ] {
            assert_eq!(call_error(&mut p, kind, f, b""), want, "{kind}: `{f}`");
        }
        still_ok(&mut p, kind, "bad error handles");
    }
}

// ---------------------------------------------------------------------------------------------
// Frees, resets and host functions with values that are not handles

const BAD_HANDLES: &str = r#"
    (func (export "double_free") (result i32) (local $h i64) (local $a i64) (local $b i64)
        (local.set $h (call $alloc (i64.const 32)))
        (call $free (local.get $h))
        (call $free (local.get $h))
        (call $free (call $input_offset))
        (call $free (call $input_offset))
        (call $free (i64.const 0))
        (call $free (i64.const -1))
        (call $free (i64.add (local.get $h) (i64.const 8)))
        (local.set $a (call $alloc (i64.const 32)))
        (local.set $b (call $alloc (i64.const 32)))
        (local.set $h (call $alloc (i64.const 24)))
        (call $store_u64 (local.get $h) (local.get $a))
        (call $store_u64 (i64.add (local.get $h) (i64.const 8)) (local.get $b))
        (call $store_u64 (i64.add (local.get $h) (i64.const 16)) (call $input_length))
        (call $output_set (local.get $h) (i64.const 24))
        (i32.const 0))
    (func (export "reset_mid_call") (result i32) (local $in i64) (local $len i64)
        (local.set $in (call $input_offset))
        (local.set $len (call $input_length))
        (call $reset)
        (if (i64.ne (call $input_length) (i64.const 0)) (then (return (i32.const 2))))
        (if (i64.ne (call $length (local.get $in)) (i64.const 0)) (then (return (i32.const 3))))
        ;; A stale range, inside the heap: accepted, and read inside kernel memory.
        (call $output_set (local.get $in) (local.get $len))
        (i32.const 0))
    ;; (Keys that are not blocks fail the call: `keys_that_are_not_live_blocks_fail_the_call`.)
    (func (export "bad_host_args") (result i32)
        (call $log_info (i64.const -1))
        ;; Host functions take ownership: this frees the input.
        (call $log_info (call $input_offset))
        (call $out_u64 (call $input_length))
        (i32.const 0))
    (func (export "bad_http_request") (result i32)
        (drop (call $http_request (i64.const -1) (i64.const 7)))
        (i32.const 0))
    (func (export "config_key_minus_one") (result i32)
        (drop (call $config_get (i64.const -1)))
        (i32.const 0))
    (func (export "config_key_12345") (result i32)
        (drop (call $config_get (i64.const 12345)))
        (i32.const 0))
    (func (export "var_get_key_8") (result i32)
        (drop (call $var_get (i64.const 8)))
        (i32.const 0))
    (func (export "var_set_key_minus_one") (result i32)
        (call $var_set (i64.const -1) (i64.const -1))
        (i32.const 0))
    (func (export "var_set_key_7fffffff") (result i32)
        (call $var_set (i64.const 0x7FFFFFFF) (i64.const 0))
        (i32.const 0))
    ;; A var key that is not UTF-8: one block holding 0xFF.
    (func (export "var_set_key_not_utf8") (result i32) (local $k i64)
        (local.set $k (call $alloc (i64.const 1)))
        (call $store_u8 (local.get $k) (i32.const 0xFF))
        (call $var_set (local.get $k) (i64.const 0))
        (i32.const 0))
"#;

#[test]
fn double_frees_and_frees_of_non_handles_are_ignored() {
    on_each_kind(BAD_HANDLES, |p, kind| {
        let out = words(&call_ok(p, kind, "double_free", b"some input"));
        let [a, b, input_length] = out[..] else {
            panic!("{kind}: {out:?}");
        };
        assert!(a != 0 && b != 0 && a.abs_diff(b) >= 32, "{kind}: {a} {b}");
        assert_eq!(input_length, 0, "{kind}: freeing the input empties it");
        still_ok(p, kind, "double_free");
    });
}

#[test]
fn reset_in_the_middle_of_a_call_forgets_the_input() {
    on_each_kind(BAD_HANDLES, |p, kind| {
        // The stale range still holds the input's bytes: reset forgets blocks, it does not
        // clear memory.
        assert_eq!(
            call_ok(p, kind, "reset_mid_call", b"forgotten"),
            b"forgotten"
        );
        still_ok(p, kind, "reset_mid_call");
    });
}

#[test]
fn host_functions_given_non_handles_read_nothing() {
    on_each_kind(BAD_HANDLES, |p, kind| {
        assert_eq!(
            call_ok(p, kind, "bad_host_args", b"input"),
            0u64.to_le_bytes(),
            "{kind}"
        );
        traps_and_recovers(p, kind, "bad_http_request", b"", "request");
    });
}

/// Regression (hardening round 2, "keys that are not keys"): a `config_get` / `var_get` /
/// `var_set` key that is not a live block used to become the key `""`, and keys were
/// converted lossily, so different keys collided. Now the call fails naming the function;
/// the plugin stays usable.
#[test]
fn keys_that_are_not_live_blocks_fail_the_call() {
    on_each_kind(BAD_HANDLES, |p, kind| {
        for (function, want) in [
            ("config_key_minus_one", "config_get: the key"),
            (
                "config_key_12345",
                "config_get: the key 12345 is not a live block",
            ),
            ("var_get_key_8", "var_get: the key 8 is not a live block"),
            ("var_set_key_minus_one", "var_set: the key"),
            (
                "var_set_key_7fffffff",
                "var_set: the key 2147483647 is not a live block",
            ),
            (
                "var_set_key_not_utf8",
                "var_set: the key is not valid UTF-8",
            ),
        ] {
            traps_and_recovers(p, kind, function, b"", want);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Exhausted memory

const EXHAUST: &str = r#"
    (data (i32.const 0) "k")
    ;; Allocates 64 KiB blocks until `alloc` returns 0, then small ones; returns how many of
    ;; each fitted, through a block allocated first.
    (func $exhaust (result i64) (local $first i64) (local $big i64) (local $small i64)
        (local.set $first (call $alloc (i64.const 24)))
        (loop $l
            (if (i64.ne (call $alloc (i64.const 65536)) (i64.const 0))
                (then (local.set $big (i64.add (local.get $big) (i64.const 1))) (br $l))))
        (loop $l
            (if (i64.ne (call $alloc (i64.const 64)) (i64.const 0))
                (then (local.set $small (i64.add (local.get $small) (i64.const 1))) (br $l))))
        (call $store_u64 (local.get $first) (local.get $big))
        (call $store_u64 (i64.add (local.get $first) (i64.const 8)) (local.get $small))
        (local.get $first))
    (func (export "exhaust") (result i32) (local $first i64)
        (local.set $first (call $exhaust))
        ;; Sizes that can never fit are refused without growing or trapping.
        (call $store_u64 (i64.add (local.get $first) (i64.const 16))
            (i64.or (i64.or (call $alloc (i64.const -1)) (call $alloc (i64.const -13)))
                (i64.or (call $alloc (i64.const 0x100000000)) (call $alloc (i64.const 0xFFFF0001)))))
        (call $output_set (local.get $first) (i64.const 24))
        (i32.const 0))
    (func (export "exhaust_then_config_get") (result i32) (local $key i64)
        (local.set $key (call $alloc (i64.const 1)))
        (call $store_u8 (local.get $key) (i32.load8_u (i32.const 0)))
        (drop (call $exhaust))
        ;; The host must copy the config value into the full kernel.
        (drop (call $config_get (local.get $key)))
        (i32.const 0))
    (func (export "grow_then_answer") (result i32) (local $pages i64)
        (block $done
            (loop $l
                (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                (local.set $pages (i64.add (local.get $pages) (i64.const 1)))
                (br $l)))
        (call $out_u64 (local.get $pages))
        (i32.const 0))
"#;

#[test]
fn an_exhausted_kernel_refuses_allocs_and_recovers_at_the_next_call() {
    let wasm = hostile(EXHAUST);
    for kind in KINDS {
        let mut p = load(
            runtime(),
            &wasm,
            PluginOptions {
                memory_max_pages: Some(40),
                ..opts(kind)
            },
        );
        let first = words(&call_ok(&mut p, kind, "exhaust", b""));
        let [big, small, refused] = first[..] else {
            panic!("{kind}: {first:?}");
        };
        assert!(
            big > 10 && small > 0,
            "{kind}: {big} big, {small} small blocks"
        );
        assert_eq!(refused, 0, "{kind}: a size that cannot fit gave a block");
        // The next call starts from a reset kernel: the same blocks fit again.
        let again = words(&call_ok(&mut p, kind, "exhaust", b""));
        assert_eq!(again, first, "{kind}: after reset");
        still_ok(&mut p, kind, "exhaust");
    }
}

#[test]
fn a_host_call_into_a_full_kernel_is_out_of_memory() {
    let wasm = hostile(EXHAUST);
    for kind in KINDS {
        let mut options = PluginOptions {
            memory_max_pages: Some(40),
            ..opts(kind)
        };
        options.config.insert("k".into(), "v".repeat(200_000));
        let mut p = load(runtime(), &wasm, options);
        match call_error(&mut p, kind, "exhaust_then_config_get", b"") {
            CallError::OutOfMemory(msg) => {
                assert!(
                    msg.contains("40 pages") && msg.contains("200000 bytes"),
                    "{kind}: {msg}"
                );
            }
            e => panic!("{kind}: expected OutOfMemory, got {e:?}"),
        }
        still_ok(&mut p, kind, "exhaust_then_config_get");
    }
}

#[test]
fn a_plugin_growing_its_memory_past_the_limit_gets_minus_one_and_carries_on() {
    let wasm = hostile(EXHAUST);
    for kind in KINDS {
        let mut p = load(
            runtime(),
            &wasm,
            PluginOptions {
                memory_max_pages: Some(50),
                ..opts(kind)
            },
        );
        let pages = words(&call_ok(&mut p, kind, "grow_then_answer", b""));
        assert!(
            pages[0] > 0 && pages[0] < 50,
            "{kind}: grew {pages:?} pages"
        );
        // The limit is spent: the next call grows nothing, and still answers.
        assert_eq!(
            words(&call_ok(&mut p, kind, "grow_then_answer", b"")),
            [0],
            "{kind}"
        );
        still_ok(&mut p, kind, "grow_then_answer");
    }
}

// ---------------------------------------------------------------------------------------------
// Loops, traps and stack overflows in the middle of kernel calls

const SPIN: &str = r#"
    ;; Works the kernel forever. A prelude as long as the input shifts where the fuel runs
    ;; out, so traps land at every point of the kernel's functions across calls.
    (func (export "spin_in_kernel") (result i32) (local $n i64) (local $h i64)
        (local.set $n (call $input_length))
        (block $pre_done
            (loop $pre
                (br_if $pre_done (i64.eqz (local.get $n)))
                (local.set $n (i64.sub (local.get $n) (i64.const 1)))
                (br $pre)))
        (loop $l
            (local.set $h (call $alloc (i64.const 24)))
            (call $store_u64 (local.get $h) (i64.const 7))
            (call $store_u8 (i64.add (local.get $h) (i64.const 3)) (i32.const 1))
            (drop (call $length (local.get $h)))
            (call $error_set (local.get $h))
            (call $free (local.get $h))
            (br $l))
        (i32.const 0))
    (func $dive (export "dive") (result i32)
        (call $store_u64 (call $input_offset) (i64.const 1))
        (drop (call $length (call $input_offset)))
        (call $dive))
"#;

#[test]
fn a_plugin_looping_forever_in_kernel_calls_times_out() {
    let wasm = hostile(SPIN);
    let timeout = Duration::from_millis(200);
    for kind in KINDS {
        let mut p = load(
            runtime(),
            &wasm,
            PluginOptions {
                timeout: Some(timeout),
                ..opts(kind)
            },
        );
        for _ in 0..3 {
            let start = Instant::now();
            assert_eq!(
                call_error(&mut p, kind, "spin_in_kernel", b""),
                CallError::Timeout(timeout),
                "{kind}"
            );
            assert!(start.elapsed() < Duration::from_secs(10), "{kind}");
            still_ok(&mut p, kind, "a timeout");
        }
    }
}

#[test]
fn a_plugin_recursing_through_kernel_calls_overflows_its_stack_cleanly() {
    on_each_kind(SPIN, |p, kind| {
        for _ in 0..3 {
            traps_and_recovers(p, kind, "dive", b"12345678", "stack");
        }
    });
}

/// Regression: a trap inside a kernel function (fuel, timeout, stack overflow) skipped the
/// epilogue that gives back the function's shadow-stack frame, so the core module's stack
/// pointer sank a little with every such trap, wrapped below 0 after a few hundred, and from
/// then on every kernel call that uses the shadow stack trapped: the plugin was dead. The
/// component backend makes the plugin anew after any trap, so it never showed there.
#[test]
fn traps_inside_kernel_calls_never_wear_the_kernel_out() {
    let wasm = hostile(SPIN);
    for (kind, calls) in [(KernelKind::Core, 3000), (KernelKind::Component, 30)] {
        let mut p = load(
            fuel_runtime(),
            &wasm,
            PluginOptions {
                fuel: Some(20_000),
                ..opts(kind)
            },
        );
        for i in 0..calls {
            let input = vec![0; i % 257];
            assert_eq!(
                call_error(&mut p, kind, "spin_in_kernel", &input),
                CallError::OutOfFuel(20_000),
                "{kind}: call {i}"
            );
        }
        still_ok(&mut p, kind, "out of fuel inside kernel calls");
    }
}

//! The glue modules of a composed plugin, as WAT: small core modules that sit between the
//! plugin, the kernel and the host services, all linked below the component boundary.
//!
//! Every glue module works on the kernel's memory (its only memory, imported), so that the
//! canonical ABI moves bytes straight between the host and kernel blocks:
//!
//! - [`ALLOC`]: the `realloc` of every lift and lower. It hands out kernel blocks
//!   (`alloc(n)`, exactly `n` bytes, 8-aligned), so a string or list the host lowers *is* a
//!   kernel block, its pointer the block's handle. Its `entry-realloc` variant, used when the
//!   host lowers `call`'s arguments, first resets the kernel for the new call, so the name
//!   and the input land in a fresh heap.
//! - [`env`]: the Extism host functions with their handle-based ABI (each frees its argument
//!   blocks as the Extism runtime does), over the value-based `extism:kernel/host` import
//!   lowered with the kernel's memory: a key or message block is passed to the host as it
//!   is, and the host's answer is written by `realloc` into a new block, which is returned.
//! - [`entry`]: `call(name, input)`: finds the function by comparing the name's bytes,
//!   makes the input block the call's input, runs the initialiser once, calls, and writes the
//!   result (pointing at the output block, or at the error block) for the canonical lift.
//!
//! A glue trap is an `unreachable` in a function whose name says why; [`trap_message`]
//! turns the name in a trap's backtrace back into the message.

use std::fmt::Write;

/// `alloc` instance: `realloc` over kernel blocks, and the reset before each call.
pub const ALLOC: &str = r#"(module
  (import "kernel" "memory" (memory 0))
  (import "kernel" "alloc" (func $alloc (param i64) (result i64)))
  (import "kernel" "free" (func $free (param i64)))
  (import "kernel" "reset" (func $reset))
  ;; Whether the next call's arguments are still to be lowered: its first `entry-realloc`
  ;; (or, when nothing was lowered, `prepare`) resets the kernel.
  (global $fresh (mut i32) (i32.const 1))
  (func $realloc (export "realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    (if (i32.eqz (local.get $size)) (then
      (if (local.get $old) (then (call $free (i64.extend_i32_u (local.get $old)))))
      (return (i32.const 0))))
    ;; Kernel blocks are 8-aligned.
    (if (i32.gt_u (local.get $align) (i32.const 8)) (then (call $alignment_over_8)))
    (local.set $p (i32.wrap_i64 (call $alloc (i64.extend_i32_u (local.get $size)))))
    (if (i32.eqz (local.get $p)) (then (call $kernel_out_of_memory)))
    (if (local.get $old) (then
      (memory.copy (local.get $p) (local.get $old)
        (select (local.get $old_size) (local.get $size)
          (i32.lt_u (local.get $old_size) (local.get $size))))
      (call $free (i64.extend_i32_u (local.get $old)))))
    (local.get $p))
  (func $prepare (export "prepare")
    (if (global.get $fresh) (then (call $reset) (global.set $fresh (i32.const 0)))))
  ;; Called by `call` once its arguments are in place: the next lowering is a new call's.
  (func (export "arguments-taken") (global.set $fresh (i32.const 1)))
  (func (export "entry-realloc")
    (param i32 i32 i32 i32) (result i32)
    (call $prepare)
    (call $realloc (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func $kernel_out_of_memory unreachable)
  (func $alignment_over_8 unreachable)
)"#;

/// What each glue trap function means, by the name it has in a trap's backtrace.
const TRAPS: [(&str, &str); 5] = [
    (
        "kernel_out_of_memory",
        "the kernel's memory cannot hold the bytes of a call's argument or of a host service's answer",
    ),
    (
        "alignment_over_8",
        "a lowering asked for an alignment over 8",
    ),
    (
        "key_is_not_a_live_block",
        "config_get / var_get / var_set: the key handle is not a live block of the kernel",
    ),
    (
        "no_such_function_index",
        "call-index: no function of the plugin has that number",
    ),
    (
        "no_user_function",
        "a user host function index out of range",
    ),
];

/// The message of a glue trap whose innermost frame is the glue function `name`.
pub fn trap_message(name: &str) -> Option<&'static str> {
    TRAPS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

/// `s` as a WAT string literal: every byte outside a safe set hex-escaped.
pub fn wat_string(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        if b.is_ascii_alphanumeric() || b"_-.:/@#".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\{b:02x}");
        }
    }
    out.push('"');
    out
}

/// The kernel imports [`env`] and [`entry`] share.
const COMMON_IMPORTS: &str = r#"
  (import "kernel" "memory" (memory 0))
  (import "kernel" "alloc" (func $alloc (param i64) (result i64)))
  (import "kernel" "free" (func $free (param i64)))
  (import "kernel" "length" (func $length (param i64) (result i64)))
"#;

/// The small helpers [`env`] and [`entry`] share.
const COMMON: &str = r#"
  ;; The byte length of block `h` (0 unless `h` is a live block).
  (func $len (param $h i64) (result i32) (i32.wrap_i64 (call $length (local.get $h))))
  ;; Where the bytes of block `h` start, for a lowering: `0` for an empty one (a lowering
  ;; checks even an empty range against the memory's size).
  (func $ptr (param $h i64) (result i32)
    (select (i32.wrap_i64 (local.get $h)) (i32.const 0) (call $len (local.get $h))))
  (func $kernel_out_of_memory unreachable)
"#;

/// The return area of every lowering and lift the glue makes, as the immutable global
/// `$area` (wasmtime folds it into a constant): the kernel's
/// [`RETURN_AREA_BYTES`](kernel_abi::RETURN_AREA_BYTES) bytes at `at`, outside its heap
/// ([`RETURN_AREA_SYMBOL`](kernel_abi::RETURN_AREA_SYMBOL)), which no block overlaps. The
/// largest area needed is 24 bytes. One area serves them all: a host service's answer is
/// read before the service returns, and a call's result is written after the plugin's
/// function returned; the component is never entered again while it runs.
fn area(at: u32) -> String {
    const _: () = assert!(kernel_abi::RETURN_AREA_BYTES >= 24);
    format!("  (global $area i32 (i32.const {at}))\n")
}

/// The `env` glue: the Extism host functions of `extism:host/env` (exported under their
/// ABI names) and, for user host function `i` of `user`, an export `user<i>`; `return_area`
/// is the kernel's ([`area`]).
pub fn env(user: &[(String, String)], return_area: u32) -> String {
    let mut w = String::from("(module");
    w.push_str(COMMON_IMPORTS);
    w.push_str(
        r#"
  (import "host" "config-get" (func $h_config_get (param i32 i32 i32)))
  (import "host" "var-get" (func $h_var_get (param i32 i32 i32)))
  (import "host" "var-set" (func $h_var_set (param i32 i32 i32 i32 i32)))
  (import "host" "get-log-level" (func $h_get_log_level (result i32)))
  (import "host" "log" (func $h_log (param i32 i32 i32)))
  (import "host" "http-request" (func $h_http_request (param i32 i32 i32 i32 i32 i32)))
  (import "host" "http-status-code" (func $h_http_status_code (result i32)))
  (import "host" "http-headers" (func $h_http_headers (param i32)))
  (import "host" "user-call" (func $h_user_call (param i32 i32 i32 i32 i32 i32 i32)))
"#,
    );
    w.push_str(COMMON);
    w.push_str(&area(return_area));
    w.push_str(
        r#"
  (func $key_is_not_a_live_block unreachable)
  ;; A key block: `0` is the empty key; anything else must be a live block.
  (func $key (param $h i64)
    (if (i32.and (i64.ne (local.get $h) (i64.const 0)) (i64.eqz (call $length (local.get $h))))
      (then (call $key_is_not_a_live_block))))
  ;; The block an `option<list<u8>>` at `r` holds: its handle, `0` for `none` or empty.
  (func $option (param $r i32) (result i64)
    (if (result i64) (i32.load8_u (local.get $r))
      (then (i64.extend_i32_u (i32.load offset=4 (local.get $r))))
      (else (i64.const 0))))
  (func $free_some (param $h i64) (if (i64.ne (local.get $h) (i64.const 0)) (then (call $free (local.get $h)))))
  ;; `config_get` (`$var` 0) or `var_get` (1): the key block to the host, then freed; the
  ;; answer's block, `0` when absent.
  (func $get (param $var i32) (param $k i64) (result i64) (local $r i32) (local $v i64)
    (call $key (local.get $k))
    (local.set $r (global.get $area))
    (if (local.get $var)
      (then (call $h_var_get (call $ptr (local.get $k)) (call $len (local.get $k)) (local.get $r)))
      (else (call $h_config_get (call $ptr (local.get $k)) (call $len (local.get $k)) (local.get $r))))
    (call $free_some (local.get $k))
    (local.set $v (call $option (local.get $r)))
    (local.get $v))
  (func (export "config_get") (param i64) (result i64) (call $get (i32.const 0) (local.get 0)))
  (func (export "var_get") (param i64) (result i64) (call $get (i32.const 1) (local.get 0)))
  (func (export "var_set") (param $k i64) (param $v i64)
    (call $key (local.get $k))
    (call $h_var_set (call $ptr (local.get $k)) (call $len (local.get $k))
      (i64.ne (local.get $v) (i64.const 0)) (call $ptr (local.get $v)) (call $len (local.get $v)))
    (call $free_some (local.get $k))
    (call $free_some (local.get $v)))
  (func (export "http_request") (param $q i64) (param $b i64) (result i64) (local $r i32) (local $v i64)
    (local.set $r (global.get $area))
    (call $h_http_request (call $ptr (local.get $q)) (call $len (local.get $q))
      (i64.ne (local.get $b) (i64.const 0)) (call $ptr (local.get $b)) (call $len (local.get $b))
      (local.get $r))
    (call $free_some (local.get $q))
    (call $free_some (local.get $b))
    (local.set $v (i64.extend_i32_u (i32.load (local.get $r))))
    (local.get $v))
  (func (export "http_status_code") (result i32) (call $h_http_status_code))
  (func (export "http_headers") (result i64) (local $r i32) (local $v i64)
    (local.set $r (global.get $area))
    (call $h_http_headers (local.get $r))
    (local.set $v (call $option (local.get $r)))
    (local.get $v))
  (func (export "get_log_level") (result i32) (call $h_get_log_level))
  ;; A log line at `level` (trace 0 ... error 4): passed on only when the host keeps that
  ;; level, so a message that would be dropped is never copied out.
  (func $log (param $level i32) (param $m i64)
    (if (i32.ge_s (local.get $level) (call $h_get_log_level)) (then
      (call $h_log (local.get $level) (call $ptr (local.get $m)) (call $len (local.get $m)))))
    (call $free_some (local.get $m)))
  (func (export "log_trace") (param i64) (call $log (i32.const 0) (local.get 0)))
  (func (export "log_debug") (param i64) (call $log (i32.const 1) (local.get 0)))
  (func (export "log_info") (param i64) (call $log (i32.const 2) (local.get 0)))
  (func (export "log_warn") (param i64) (call $log (i32.const 3) (local.get 0)))
  (func (export "log_error") (param i64) (call $log (i32.const 4) (local.get 0)))
  ;; A new block holding the constant bytes written by the caller's stores.
  (func $block (param $n i32) (result i32) (local $p i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (local.set $p (i32.wrap_i64 (call $alloc (i64.extend_i32_u (local.get $n)))))
    (if (i32.eqz (local.get $p)) (then (call $kernel_out_of_memory)))
    (local.get $p))
  ;; User host function: namespace and name blocks (freed after), the argument block
  ;; (left to the plugin, as extism-pdk frees it), the result as a new block.
  (func $user (param $ns i32) (param $ns_len i32) (param $n i32) (param $n_len i32) (param $arg i64)
    (result i64) (local $r i32) (local $v i64)
    (local.set $r (global.get $area))
    (call $h_user_call (local.get $ns) (local.get $ns_len) (local.get $n) (local.get $n_len)
      (call $ptr (local.get $arg)) (call $len (local.get $arg)) (local.get $r))
    (call $free (i64.extend_i32_u (local.get $ns)))
    (call $free (i64.extend_i32_u (local.get $n)))
    (local.set $v (i64.extend_i32_u (i32.load (local.get $r))))
    (local.get $v))
"#,
    );
    for (i, (namespace, name)) in user.iter().enumerate() {
        let _ = writeln!(
            w,
            "  (func (export \"user{i}\") (param $arg i64) (result i64) (local $ns i32) (local $n i32)"
        );
        for (local, bytes) in [("ns", namespace.as_bytes()), ("n", name.as_bytes())] {
            let _ = writeln!(
                w,
                "    (local.set ${local} (call $block (i32.const {})))",
                bytes.len()
            );
            store_bytes(&mut w, local, bytes);
        }
        let _ = writeln!(
            w,
            "    (call $user (local.get $ns) (i32.const {}) (local.get $n) (i32.const {}) (local.get $arg)))",
            namespace.len(),
            name.len()
        );
    }
    w.push(')');
    w
}

/// Stores that write the constant `bytes` at the address in local `$local`.
fn store_bytes(w: &mut String, local: &str, bytes: &[u8]) {
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in chunks.by_ref() {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let _ = writeln!(
            w,
            "    (i64.store offset={at} (local.get ${local}) (i64.const {}))",
            v as i64
        );
        at += 8;
    }
    for &b in chunks.remainder() {
        let _ = writeln!(
            w,
            "    (i32.store8 offset={at} (local.get ${local}) (i32.const {b}))"
        );
        at += 1;
    }
}

/// A condition: the `len` bytes at `$name` equal `bytes` (the caller checked the length).
fn bytes_equal(bytes: &[u8]) -> String {
    let mut terms = Vec::new();
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in chunks.by_ref() {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes")) as i64;
        terms.push(format!(
            "(i64.eq (i64.load offset={at} (local.get $name)) (i64.const {v}))"
        ));
        at += 8;
    }
    for &b in chunks.remainder() {
        terms.push(format!(
            "(i32.eq (i32.load8_u offset={at} (local.get $name)) (i32.const {b}))"
        ));
        at += 1;
    }
    let mut cond = terms.pop().unwrap_or_else(|| "(i32.const 1)".into());
    while let Some(t) = terms.pop() {
        cond = format!("(i32.and {t} {cond})");
    }
    cond
}

/// The `entry` glue over the plugin's Extism `functions` (export name, whether it returns a
/// code), with `init` the number of the one among them to run once before the first call
/// (the initialiser, which returns nothing): `call(name, input)`, `function-index(name)`
/// (a function's number is its place in `functions`) and `call-index(index, input)`;
/// `return_area` is the kernel's ([`area`]), where results are written.
///
/// A call's result is the canonical layout of `result<list<u8>, call-error>` (24 bytes, align 4):
/// the discriminant at 0; `ok`'s list at 4 (pointer, length); `err`'s `call-error`
/// discriminant at 4 and payload at 8: `no-function`'s string (pointer, length), or
/// `failed`'s `s32` code at 8 and `option<list<u8>>` at 12 (discriminant, then pointer and
/// length at 16 and 20).
pub fn entry(functions: &[(String, bool)], init: Option<usize>, return_area: u32) -> String {
    let mut w = String::from("(module");
    w.push_str(COMMON_IMPORTS);
    w.push_str(
        r#"
  (import "kernel" "input_set" (func $input_set (param i64 i64)))
  (import "kernel" "output_offset" (func $output_offset (result i64)))
  (import "kernel" "output_length" (func $output_length (result i64)))
  (import "kernel" "error_get" (func $error_get (result i64)))
  (import "alloc" "prepare" (func $prepare))
  (import "alloc" "arguments-taken" (func $arguments_taken))
"#,
    );
    for (i, (name, returns_code)) in functions.iter().enumerate() {
        let result = if *returns_code { " (result i32)" } else { "" };
        let _ = writeln!(
            w,
            "  (import \"plugin\" {} (func $f{i}{result}))",
            wat_string(name.as_bytes())
        );
    }
    w.push_str(COMMON);
    w.push_str(&area(return_area));
    w.push_str(
        r#"  (global $initialized (mut i32) (i32.const 0))
  (func $no_such_function_index unreachable)
  ;; `call(name, input)`: the function of that name, or `err(no-function(name))` with the
  ;; name block as the string.
  (func (export "call") (param $name i32) (param $name_len i32) (param $input i32) (param $input_len i32)
    (result i32) (local $i i32) (local $r i32)
    (call $prepare)
    (call $arguments_taken)
    (local.set $i (call $find (local.get $name) (local.get $name_len)))
    (if (i32.lt_s (local.get $i) (i32.const 0))
      (then
        (local.set $r (global.get $area))
        (i32.store8 (local.get $r) (i32.const 1))
        (i32.store8 offset=4 (local.get $r) (i32.const 0))
        (i32.store offset=8 (local.get $r) (local.get $name))
        (i32.store offset=12 (local.get $r) (local.get $name_len))
        (return (local.get $r))))
    (call $free (i64.extend_i32_u (local.get $name)))
    (call $run (local.get $i) (local.get $input) (local.get $input_len)))
  ;; `call-index(index, input)`: the function numbered `index`; another number traps.
  (func (export "call-index") (param $i i32) (param $input i32) (param $input_len i32) (result i32)
    (call $prepare)
    (call $arguments_taken)
    (call $run (local.get $i) (local.get $input) (local.get $input_len)))
  ;; `function-index(name)`: `option<u32>` (the discriminant at 0, the number at 4).
  (func (export "function-index") (param $name i32) (param $name_len i32) (result i32)
    (local $i i32) (local $r i32)
    (call $prepare)
    (call $arguments_taken)
    (local.set $i (call $find (local.get $name) (local.get $name_len)))
    (local.set $r (global.get $area))
    (i32.store8 (local.get $r) (i32.ge_s (local.get $i) (i32.const 0)))
    (i32.store offset=4 (local.get $r) (local.get $i))
    (local.get $r))
  ;; The number of the function named by the `name_len` bytes at `name`; -1 for none.
  (func $find (param $name i32) (param $name_len i32) (result i32)
"#,
    );
    for (i, (name, _)) in functions.iter().enumerate() {
        let _ = writeln!(
            w,
            "    (if (i32.eq (local.get $name_len) (i32.const {})) (then (if {} (then (return (i32.const {i}))))))",
            name.len(),
            bytes_equal(name.as_bytes()),
        );
    }
    w.push_str(
        r#"    (i32.const -1))
  ;; Calls function `i`: the input block becomes the input, the initialiser runs before the
  ;; first call; then the result (pointing at the output block, or at the error block).
  (func $run (param $i i32) (param $input i32) (param $input_len i32) (result i32)
    (local $code i32) (local $r i32) (local $e i64) (local $out_len i32)
"#,
    );
    let _ = writeln!(
        w,
        "    (if (i32.ge_u (local.get $i) (i32.const {})) (then (call $no_such_function_index)))",
        functions.len()
    );
    w.push_str(
        "    (call $input_set (i64.extend_i32_u (local.get $input)) (i64.extend_i32_u (local.get $input_len)))\n",
    );
    if let Some(i) = init {
        let _ = writeln!(
            w,
            "    (if (i32.eqz (global.get $initialized)) (then (global.set $initialized (i32.const 1)) (call $f{i})))"
        );
    }
    w.push_str(
        "    (block $found
",
    );
    for (i, (_, returns_code)) in functions.iter().enumerate() {
        let call = if *returns_code {
            format!("(local.set $code (call $f{i}))")
        } else {
            format!("(call $f{i})")
        };
        let _ = writeln!(
            w,
            "      (if (i32.eq (local.get $i) (i32.const {i})) (then {call} (br $found)))"
        );
    }
    w.push_str(
        r#"    )
    (local.set $r (global.get $area))
    (if (local.get $code)
      (then
        (i32.store8 (local.get $r) (i32.const 1))
        (i32.store8 offset=4 (local.get $r) (i32.const 1))
        (i32.store offset=8 (local.get $r) (local.get $code))
        (local.set $e (call $error_get))
        (i32.store8 offset=12 (local.get $r) (i32.ne (call $len (local.get $e)) (i32.const 0)))
        (i32.store offset=16 (local.get $r) (call $ptr (local.get $e)))
        (i32.store offset=20 (local.get $r) (call $len (local.get $e))))
      (else
        ;; The output block as the list: an empty output is `(0, 0)`, wherever it was set.
        (local.set $out_len (i32.wrap_i64 (call $output_length)))
        (i32.store8 (local.get $r) (i32.const 0))
        (i32.store offset=4 (local.get $r)
          (select (i32.wrap_i64 (call $output_offset)) (i32.const 0) (local.get $out_len)))
        (i32.store offset=8 (local.get $r) (local.get $out_len))))
    (local.get $r))
)"#,
    );
    w
}

//! The composed plugin's component: the kernel's core module, the plugin's own core module
//! and the [`glue`](super::glue) modules, instantiated and linked by core instantiation
//! arguments inside one component, with a canonical lift and lower only at its boundary:
//!
//! ```text
//!        extism:kernel/host (import)              extism:kernel/entry (export)
//!              | canon lower                             ^ canon lift
//!              v  (memory: kernel's, realloc: alloc)     |  (memory: kernel's, realloc: alloc)
//!   kernel --> alloc --> env glue --> plugin --> entry glue
//!     `---------------------------------^-----------^
//!          the plugin's kernel imports are the kernel's own exports
//! ```
//!
//! The text is written as WAT with two placeholder modules, which [`encode`] replaces by the
//! kernel's and the plugin's bytes (a core module is one section of a component, and nothing
//! else in the component depends on its contents). For a plugin that imports WASI preview 1
//! the text starts from what wit-component makes of a stub with the same WASI imports and
//! wasmtime's reactor adapter (see [`wasi_text`]).

use super::glue::{self, wat_string};
use super::{Plan, Target};
use anyhow::{Context, Result, bail, ensure};
use kernel_abi::MEMORY;
use std::fmt::Write;
use wasm_encoder::Encode;
use wasmparser::{Parser, Payload};

/// The types of `extism:kernel/host` (`wit/extism-plugin.wit`) as a component instance type.
const HOST_TYPE: &str = r#"
  (type $host-type (instance
    (type $log-level' (enum "trace" "debug" "info" "warn" "error"))
    (export "log-level" (type $log-level (eq $log-level')))
    (type $bytes (list u8))
    (type $option-bytes (option $bytes))
    (type $option-string (option string))
    (export "config-get" (func (param "key" $bytes) (result $option-string)))
    (export "var-get" (func (param "key" $bytes) (result $option-bytes)))
    (export "var-set" (func (param "key" $bytes) (param "value" $option-bytes)))
    (export "get-log-level" (func (result s32)))
    (export "log" (func (param "level" $log-level) (param "message" $bytes)))
    (export "http-request" (func (param "request" $bytes) (param "body" $option-bytes) (result $bytes)))
    (export "http-status-code" (func (result u16)))
    (export "http-headers" (func (result $option-bytes)))
    (export "user-call" (func (param "namespace" string) (param "name" string) (param "input" $bytes) (result $bytes)))
  ))
"#;

/// The entry glue's functions, exported again from an instance that imports them, for the
/// lifts.
///
/// wasmtime 48 looks up the core function of a lifted export on every call, and for a
/// function *defined* in the instance it is taken from, it fills in the function's
/// `VMFuncRef` anew each time (a search of the store's module registry); for an *imported*
/// one it returns the import's, which is ready. Lifting the re-export took a trivial call
/// from 0.73-0.78 to 0.67-0.71 µs (`host-demo call sample:echo reverse --input x --loop
/// 200000 --kernel composed`, release).
const REEXPORT: &str = r#"  (core module $reexport
    (import "entry" "call" (func $call (param i32 i32 i32 i32) (result i32)))
    (import "entry" "function-index" (func $function-index (param i32 i32) (result i32)))
    (import "entry" "call-index" (func $call-index (param i32 i32 i32) (result i32)))
    (export "call" (func $call))
    (export "function-index" (func $function-index))
    (export "call-index" (func $call-index)))
  (core instance $entry-export (instantiate $reexport (with "entry" (instance $entry))))
"#;

/// `extism:kernel/entry`'s lifted functions and the instance they are exported in, with the
/// nested component that gives `call-error` its name (as wit-component writes it).
const ENTRY: &str = r#"
  (type $bytes (list u8))
  (type $option-bytes (option $bytes))
  (type $call-error (variant
    (case "no-function" string)
    (case "failed" (tuple s32 $option-bytes))))
  (type $call-result (result $bytes (error $call-error)))
  (type $option-index (option u32))
  (func $call (param "name" string) (param "input" $bytes) (result $call-result)
    (canon lift (core func $entry-export "call") (memory $kernel-memory) (realloc $entry-realloc)))
  (func $function-index (param "name" string) (result $option-index)
    (canon lift (core func $entry-export "function-index") (memory $kernel-memory) (realloc $entry-realloc)))
  (func $call-index (param "index" u32) (param "input" $bytes) (result $call-result)
    (canon lift (core func $entry-export "call-index") (memory $kernel-memory) (realloc $entry-realloc)))
  (component $entry-interface
    (type $bytes (list u8))
    (type $option-bytes (option $bytes))
    (type $call-error' (variant
      (case "no-function" string)
      (case "failed" (tuple s32 $option-bytes))))
    (import "import-type-call-error" (type $call-error (eq $call-error')))
    (type $call-result (result $bytes (error $call-error)))
    (type $option-index (option u32))
    (import "import-func-call" (func $call (param "name" string) (param "input" $bytes) (result $call-result)))
    (import "import-func-function-index" (func $function-index (param "name" string) (result $option-index)))
    (import "import-func-call-index" (func $call-index (param "index" u32) (param "input" $bytes) (result $call-result)))
    (type $bytes2 (list u8))
    (type $option-bytes2 (option $bytes2))
    (type $call-error2' (variant
      (case "no-function" string)
      (case "failed" (tuple s32 $option-bytes2))))
    (export $call-error2 "call-error" (type $call-error2'))
    (type $call-result2 (result $bytes2 (error $call-error2)))
    (type $option-index2 (option u32))
    (export "call" (func $call) (func (param "name" string) (param "input" $bytes2) (result $call-result2)))
    (export "function-index" (func $function-index) (func (param "name" string) (result $option-index2)))
    (export "call-index" (func $call-index) (func (param "index" u32) (param "input" $bytes2) (result $call-result2)))
  )
  (instance $entry-instance (instantiate $entry-interface
    (with "import-func-call" (func $call))
    (with "import-func-function-index" (func $function-index))
    (with "import-func-call-index" (func $call-index))
    (with "import-type-call-error" (type $call-error))))
  (export "extism:kernel/entry@1.0.0" (instance $entry-instance))
"#;

/// The host services the env glue imports, by their names in `extism:kernel/host`.
const HOST_SERVICES: [&str; 9] = [
    "config-get",
    "var-get",
    "var-set",
    "get-log-level",
    "log",
    "http-request",
    "http-status-code",
    "http-headers",
    "user-call",
];

/// A placeholder core module: its custom section names what replaces it.
fn placeholder(id: &str, what: &str) -> String {
    format!("  (core module ${id} (@custom {PLACEHOLDER:?} {what:?}))\n")
}

/// The name of the custom section that marks a placeholder module.
const PLACEHOLDER: &str = "extism-placeholder";

/// The composition's own items, before and after the plugin's instantiation.
struct Parts {
    /// The host import, the kernel and glue modules, their instances, the lowered host
    /// services and the instances the plugin's Extism imports come from.
    head: String,
    /// The plugin's instantiation arguments for its Extism imports.
    plugin_args: String,
    /// The entry glue's instance (given `plugin`, the plugin's instance) and the lifted,
    /// exported `call`.
    tail: String,
}

fn parts(plan: &Plan, plugin: &str, return_area: u32) -> Parts {
    let mut w = placeholder("kernel-module", "kernel");
    w.push_str(HOST_TYPE);
    w.push_str("  (import \"extism:kernel/host@1.0.0\" (instance $host (type $host-type)))\n");
    let _ = writeln!(
        w,
        "  (core module $alloc{}",
        &glue::ALLOC["(module".len()..]
    );
    let _ = writeln!(
        w,
        "  (core module $env{}",
        &glue::env(&plan.user, return_area)["(module".len()..]
    );
    let functions: Vec<(String, bool)> = plan
        .functions
        .iter()
        .map(|(name, _, returns_code)| (name.clone(), *returns_code))
        .collect();
    let init = plan
        .init
        .as_ref()
        .and_then(|init| functions.iter().position(|(name, _)| name == init));
    let _ = writeln!(
        w,
        "  (core module $entry{}",
        &glue::entry(&functions, init, return_area)["(module".len()..]
    );
    w.push_str("  (core instance $k (instantiate $kernel-module))\n");
    let _ = writeln!(
        w,
        "  (alias core export $k {} (core memory $kernel-memory))",
        wat_string(MEMORY.as_bytes())
    );
    w.push_str("  (core instance $a (instantiate $alloc (with \"kernel\" (instance $k))))\n");
    w.push_str("  (alias core export $a \"realloc\" (core func $realloc))\n");
    w.push_str("  (alias core export $a \"entry-realloc\" (core func $entry-realloc))\n");
    for name in HOST_SERVICES {
        let _ = writeln!(
            w,
            "  (core func $host-{name} (canon lower (func $host \"{name}\") (memory $kernel-memory) (realloc $realloc)))"
        );
    }
    w.push_str("  (core instance $host-core\n");
    for name in HOST_SERVICES {
        let _ = writeln!(w, "    (export \"{name}\" (func $host-{name}))");
    }
    w.push_str("  )\n");
    w.push_str(
        "  (core instance $e (instantiate $env (with \"kernel\" (instance $k)) (with \"host\" (instance $host-core))))\n",
    );
    // One instance per module the plugin imports from (WASI aside), holding exactly what it
    // imports.
    let mut modules: Vec<&str> = Vec::new();
    for (module, _, target) in &plan.imports {
        if *target != Target::Wasi && !modules.contains(&module.as_str()) {
            modules.push(module);
        }
    }
    for (m, module) in modules.iter().enumerate() {
        let _ = writeln!(w, "  (core instance $import{m}");
        let mut seen: Vec<&str> = Vec::new();
        for (_, name, target) in plan.imports.iter().filter(|(n, _, _)| n == module) {
            if seen.contains(&name.as_str()) {
                continue;
            }
            seen.push(name);
            let (instance, export) = match target {
                Target::Kernel => ("$k", name.clone()),
                Target::Host => ("$e", name.clone()),
                Target::User(i) => ("$e", format!("user{i}")),
                Target::Wasi => unreachable!("WASI modules are left out"),
            };
            let _ = writeln!(
                w,
                "    (export {} (func {instance} {}))",
                wat_string(name.as_bytes()),
                wat_string(export.as_bytes())
            );
        }
        w.push_str("  )\n");
    }
    let mut plugin_args = String::new();
    for (m, module) in modules.iter().enumerate() {
        let _ = write!(
            plugin_args,
            " (with {} (instance $import{m}))",
            wat_string(module.as_bytes())
        );
    }
    let tail = format!(
        "  (core instance $entry (instantiate $entry (with \"kernel\" (instance $k)) (with \"alloc\" (instance $a)) (with \"plugin\" (instance {plugin}))))\n{REEXPORT}{ENTRY}"
    );
    Parts {
        head: w,
        plugin_args,
        tail,
    }
}

/// The component's text for a plugin without WASI, with placeholders for the kernel and
/// the plugin; `return_area` is the kernel's (`glue::area`).
pub(super) fn text(plan: &Plan, return_area: u32) -> String {
    let Parts {
        head,
        plugin_args,
        tail,
    } = parts(plan, "$p", return_area);
    let plugin = placeholder("plugin-module", "plugin");
    format!(
        "(component\n{plugin}{head}  (core instance $p (instantiate $plugin-module{plugin_args}))\n{tail})\n"
    )
}

/// The component's text for a plugin that imports WASI preview 1: what wit-component makes
/// of a stub with the plugin's preview 1 imports and the reactor adapter (the adapter
/// rewritten and linked to the stub's memory, its WASI imports), printed as WAT, with the
/// stub replaced by the plugin's placeholder and this composition's parts added around the
/// plugin's instantiation.
fn wasi_text(plan: &Plan, stub: &[u8], return_area: u32) -> Result<String> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME as NAME,
        WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as REACTOR,
    };
    let linked = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(stub)?
        .adapter(NAME, REACTOR)?
        .encode()
        .context("linking the WASI adapter")?;
    let mut text = wasmprinter::print_bytes(&linked)?;
    // The stub module, replaced by the plugin's placeholder.
    let start = text
        .find("  (core module $main ")
        .context("wit-component's output has no `$main` module")?;
    let end = start + sexp_len(&text[start + 2..])? + 2;
    text.replace_range(start..end, &placeholder("main", "plugin"));
    let Parts {
        head,
        plugin_args,
        tail,
    } = parts(plan, "$main", return_area);
    let at = text
        .find("  (core instance $main ")
        .context("wit-component's output has no `$main` instance")?;
    let args = at
        + text[at..]
            .find("(instantiate $main")
            .context("the `$main` instance is not an instantiation")?
        + "(instantiate $main".len();
    text.insert_str(args, &plugin_args);
    text.insert_str(at, &head);
    let close = text.rfind(')').context("empty text")?;
    text.insert_str(close, &tail);
    Ok(text)
}

/// The length of the s-expression `text` starts with (a `(` to its matching `)`; strings
/// and comments as WAT has them).
fn sexp_len(text: &str) -> Result<usize> {
    let b = text.as_bytes();
    ensure!(b.first() == Some(&b'('), "not an s-expression");
    let (mut depth, mut i) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b';' if b.get(i + 1) == Some(&b';') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' if b.get(i + 1) == Some(&b';') => {
                // A block comment `(; ... ;)`.
                i += 2;
                while i + 1 < b.len() && !(b[i] == b';' && b[i + 1] == b')') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    bail!("an s-expression that does not end")
}

/// The composed component: the text encoded, with the placeholders replaced by `kernel` and
/// `plugin`. `stub` is the stub module of a WASI plugin ([`wasi_text`]).
pub fn encode(plan: &Plan, kernel: &[u8], plugin: &[u8], stub: Option<&[u8]>) -> Result<Vec<u8>> {
    let return_area = wasm_util::return_area(kernel)?.context(
        "the kernel module does not record its return area (it is not this project's kernel)",
    )?;
    let text = match stub {
        None => text(plan, return_area),
        Some(stub) => wasi_text(plan, stub, return_area)?,
    };
    let skeleton = wat::parse_str(&text).context("encoding the composed plugin's text")?;
    splice(&skeleton, kernel, plugin)
}

/// `component` with each placeholder module replaced by what its custom section names. The
/// component's top-level sections are walked by hand (an id byte, a LEB128 size, the
/// contents): only core module sections are looked into.
fn splice(component: &[u8], kernel: &[u8], plugin: &[u8]) -> Result<Vec<u8>> {
    ensure!(component.len() >= 8, "a truncated component");
    let mut out = Vec::with_capacity(component.len() + kernel.len() + plugin.len());
    out.extend_from_slice(&component[..8]);
    let mut at = 8;
    let mut replaced = 0;
    while at < component.len() {
        let id = component[at];
        let mut reader = wasmparser::BinaryReader::new(&component[at + 1..], 0);
        let size = reader.read_var_u32()? as usize;
        let start = at + 1 + reader.original_position() as usize;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= component.len())
            .context("a truncated section")?;
        let what = (id == wasm_encoder::ComponentSectionId::CoreModule as u8)
            .then(|| placeholder_of(&component[start..end]))
            .flatten();
        match what {
            Some(what) => {
                let bytes = if what == b"kernel" { kernel } else { plugin };
                out.push(id);
                bytes.encode(&mut out);
                replaced += 1;
            }
            None => out.extend_from_slice(&component[at..end]),
        }
        at = end;
    }
    ensure!(
        replaced == 2,
        "the composed plugin's text has {replaced} placeholders, not 2"
    );
    Ok(out)
}

/// What a placeholder module stands for (`kernel` or `plugin`), if `module` is one.
fn placeholder_of(module: &[u8]) -> Option<&[u8]> {
    Parser::new(0).parse_all(module).find_map(|p| match p {
        Ok(Payload::CustomSection(c)) if c.name() == PLACEHOLDER => Some(c.data()),
        _ => None,
    })
}

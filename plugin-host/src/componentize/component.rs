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
//! The text is written as WAT with two empty placeholder modules, which [`encode`] replaces
//! by the kernel's and the plugin's bytes (a core module is one section of a component, and
//! nothing else in the component depends on its contents).

use super::glue::{self, wat_string};
use super::{Plan, Target};
use anyhow::{Context, Result, ensure};
use kernel_abi::MEMORY;
use std::fmt::Write;
use wasm_encoder::Encode;

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

/// `extism:kernel/entry`'s lifted `call` and the instance it is exported in, with the
/// nested component that gives `call-error` its name (as wit-component writes it).
const ENTRY: &str = r#"
  (type $bytes (list u8))
  (type $option-bytes (option $bytes))
  (type $call-error (variant
    (case "no-function" string)
    (case "failed" (tuple s32 $option-bytes))))
  (type $call-result (result $bytes (error $call-error)))
  (func $call (param "name" string) (param "input" $bytes) (result $call-result)
    (canon lift (core func $entry "call") (memory $memory) (realloc $entry-realloc)))
  (component $entry-interface
    (type $bytes (list u8))
    (type $option-bytes (option $bytes))
    (type $call-error' (variant
      (case "no-function" string)
      (case "failed" (tuple s32 $option-bytes))))
    (import "import-type-call-error" (type $call-error (eq $call-error')))
    (type $call-result (result $bytes (error $call-error)))
    (import "import-func-call" (func $call (param "name" string) (param "input" $bytes) (result $call-result)))
    (type $bytes2 (list u8))
    (type $option-bytes2 (option $bytes2))
    (type $call-error2' (variant
      (case "no-function" string)
      (case "failed" (tuple s32 $option-bytes2))))
    (export $call-error2 "call-error" (type $call-error2'))
    (type $call-result2 (result $bytes2 (error $call-error2)))
    (export "call" (func $call) (func (param "name" string) (param "input" $bytes2) (result $call-result2)))
  )
  (instance $entry-instance (instantiate $entry-interface
    (with "import-func-call" (func $call))
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

/// The component's text, with placeholders for the kernel (module 0) and the plugin
/// (module 1).
pub(super) fn text(plan: &Plan) -> String {
    let mut w = String::from("(component\n");
    // The placeholders come first, so they are the first two sections; they have no names,
    // so they encode as just a header: module 0 is the kernel, module 1 the plugin.
    w.push_str("  (core module)\n  (core module)\n");
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
        &glue::env(&plan.user)["(module".len()..]
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
        &glue::entry(&functions, init)["(module".len()..]
    );
    w.push_str("  (core instance $k (instantiate 0))\n");
    let _ = writeln!(
        w,
        "  (alias core export $k {} (core memory $memory))",
        wat_string(MEMORY.as_bytes())
    );
    w.push_str("  (core instance $a (instantiate $alloc (with \"kernel\" (instance $k))))\n");
    w.push_str("  (alias core export $a \"realloc\" (core func $realloc))\n");
    w.push_str("  (alias core export $a \"entry-realloc\" (core func $entry-realloc))\n");
    for name in HOST_SERVICES {
        let _ = writeln!(
            w,
            "  (core func $host-{name} (canon lower (func $host \"{name}\") (memory $memory) (realloc $realloc)))"
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
    // One instance per module the plugin imports from, holding exactly what it imports.
    let mut modules: Vec<&str> = Vec::new();
    for (module, _, _) in &plan.imports {
        if !modules.contains(&module.as_str()) {
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
    w.push_str("  (core instance $p (instantiate 1");
    for (m, module) in modules.iter().enumerate() {
        let _ = write!(
            w,
            " (with {} (instance $import{m}))",
            wat_string(module.as_bytes())
        );
    }
    w.push_str("))\n");
    w.push_str(
        "  (core instance $entry (instantiate $entry (with \"kernel\" (instance $k)) (with \"alloc\" (instance $a)) (with \"plugin\" (instance $p))))\n",
    );
    w.push_str(ENTRY);
    w.push_str(")\n");
    w
}

/// The section a component encodes an empty core module as: id 1, size 8, the header.
const EMPTY_MODULE_SECTION: [u8; 10] = [1, 8, 0, b'a', b's', b'm', 1, 0, 0, 0];

/// The composed component: the text of [`text`] encoded, with the placeholders replaced by
/// `kernel` and `plugin`.
pub fn encode(plan: &Plan, kernel: &[u8], plugin: &[u8]) -> Result<Vec<u8>> {
    let skeleton = wat::parse_str(text(plan)).context("encoding the composed plugin's text")?;
    let header = 8;
    let rest = header + 2 * EMPTY_MODULE_SECTION.len();
    ensure!(
        skeleton.len() >= rest
            && skeleton[header..rest] == [EMPTY_MODULE_SECTION, EMPTY_MODULE_SECTION].concat(),
        "the composed plugin's text does not start with its two placeholder modules"
    );
    let mut out = skeleton[..header].to_vec();
    for module in [kernel, plugin] {
        out.push(wasm_encoder::ComponentSectionId::CoreModule as u8);
        module.encode(&mut out);
    }
    out.extend_from_slice(&skeleton[rest..]);
    Ok(out)
}

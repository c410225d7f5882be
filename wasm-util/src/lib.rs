//! # wasm-util: wasm helpers shared by the build and the host
//!
//! - [`strip_debug_sections`]: wit-component and wac-graph leave names and producer records
//!   in the components they encode. The kernel component (built by kernel-build) and composed
//!   plugins (made by the host at run time) ship without them: it copies a component's
//!   top-level sections except [`DEBUG_SECTIONS`], nested modules and components whole.
//! - [`wasm_types`]: the `kernel-abi` table's types as wasmparser's, for checking modules
//!   against it.
//! - [`return_area`]: where the kernel module's return area is, from the custom section the
//!   post-link step writes.
//! - [`without_context_global`]: the kernel module without `extism_context`, as plugin-host
//!   runs it.

use anyhow::{Context, Result, bail, ensure};
use wasm_encoder::reencode::{Error as ReencodeError, Reencode, utils};
use wasm_encoder::{Component, RawSection};
use wasmparser::{Chunk, ExternalKind, Parser, Payload, TypeRef, Validator, WasmFeatures};

/// The wasmparser types of an ABI type list.
pub fn wasm_types(types: &[kernel_abi::ValType]) -> Vec<wasmparser::ValType> {
    types
        .iter()
        .map(|t| match t {
            kernel_abi::ValType::I32 => wasmparser::ValType::I32,
            kernel_abi::ValType::I64 => wasmparser::ValType::I64,
        })
        .collect()
}

/// The address of a kernel core module's return area ([`kernel_abi::RETURN_AREA_BYTES`]
/// bytes of its memory outside the heap), from its [`kernel_abi::RETURN_AREA_SECTION`];
/// `None` when it has no such section.
pub fn return_area(kernel: &[u8]) -> Result<Option<u32>> {
    for payload in Parser::new(0).parse_all(kernel) {
        if let Payload::CustomSection(c) = payload?
            && c.name() == kernel_abi::RETURN_AREA_SECTION
        {
            let at: [u8; 4] = c
                .data()
                .try_into()
                .context("the kernel's return area section is not 4 bytes long")?;
            return Ok(Some(u32::from_le_bytes(at)));
        }
    }
    Ok(None)
}

/// The kernel core module `kernel` without its `extism_context` global
/// ([`kernel_abi::CONTEXT_GLOBAL`]) and that export (later globals move down one index);
/// `kernel` unchanged when it exports no such global. Fails when code uses the global.
///
/// Only Extism's own runtime sets that `externref` global; no kernel's code reads it. But a
/// module with a GC reference in it makes wasmtime give every store a GC heap, and a store
/// with a GC heap brackets every call from the host into wasm with GC bookkeeping: about 6%
/// of a trivial plugin call on the core path, which makes several such calls per plugin
/// call.
pub fn without_context_global(kernel: &[u8]) -> Result<Vec<u8>> {
    let (mut imported, mut context) = (0, None);
    for payload in Parser::new(0).parse_all(kernel) {
        match payload? {
            Payload::ImportSection(s) => {
                for import in s.into_imports() {
                    if matches!(import?.ty, TypeRef::Global(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::ExportSection(s) => {
                for export in s {
                    let export = export?;
                    if export.kind == ExternalKind::Global
                        && export.name == kernel_abi::CONTEXT_GLOBAL
                    {
                        context = Some(export.index);
                    }
                }
            }
            _ => {}
        }
    }
    let Some(index) = context else {
        return Ok(kernel.to_vec());
    };
    ensure!(
        index >= imported,
        "the kernel module imports its `{}`",
        kernel_abi::CONTEXT_GLOBAL
    );

    /// Drops global `index` (defined, after `imported` imported ones).
    struct DropGlobal {
        index: u32,
        imported: u32,
    }
    /// Code or a constant expression uses the dropped global.
    #[derive(Debug)]
    struct Used;
    impl Reencode for DropGlobal {
        type Error = Used;

        fn global_index(&mut self, global: u32) -> Result<u32, ReencodeError<Used>> {
            match global.cmp(&self.index) {
                std::cmp::Ordering::Less => Ok(global),
                std::cmp::Ordering::Equal => Err(ReencodeError::UserError(Used)),
                std::cmp::Ordering::Greater => Ok(global - 1),
            }
        }

        fn parse_global_section(
            &mut self,
            globals: &mut wasm_encoder::GlobalSection,
            section: wasmparser::GlobalSectionReader<'_>,
        ) -> Result<(), ReencodeError<Used>> {
            for (i, global) in (self.imported..).zip(section) {
                let global = global?;
                if i != self.index {
                    self.parse_global(globals, global)?;
                }
            }
            Ok(())
        }

        fn parse_export(
            &mut self,
            exports: &mut wasm_encoder::ExportSection,
            export: wasmparser::Export<'_>,
        ) -> Result<(), ReencodeError<Used>> {
            if export.kind == ExternalKind::Global && export.index == self.index {
                return Ok(());
            }
            utils::parse_export(self, exports, export)
        }

        /// The name section's global names, without the dropped global's.
        fn parse_custom_name_subsection(
            &mut self,
            names: &mut wasm_encoder::NameSection,
            section: wasmparser::Name<'_>,
        ) -> Result<(), ReencodeError<Used>> {
            let wasmparser::Name::Global(map) = section else {
                return utils::parse_custom_name_subsection(self, names, section);
            };
            let mut globals = wasm_encoder::NameMap::new();
            for naming in map {
                let naming = naming?;
                if naming.index != self.index {
                    globals.append(self.global_index(naming.index)?, naming.name);
                }
            }
            names.globals(&globals);
            Ok(())
        }
    }
    let mut module = wasm_encoder::Module::new();
    DropGlobal { index, imported }
        .parse_core_module(&mut module, Parser::new(0), kernel)
        .map_err(|e| match e {
            ReencodeError::UserError(Used) => anyhow::anyhow!(
                "the kernel module's code uses its `{}` global",
                kernel_abi::CONTEXT_GLOBAL
            ),
            e => anyhow::anyhow!("re-encoding the kernel module: {e:?}"),
        })?;
    let out = module.finish();
    Validator::new_with_features(WasmFeatures::default())
        .validate_all(&out)
        .context("the kernel module without its context global does not validate")?;
    Ok(out)
}

/// Custom sections of debugging value only, dropped from the shipped component.
pub const DEBUG_SECTIONS: [&str; 3] = ["component-name", "producers", "name"];

/// Copies a component's top-level sections, leaving out [`DEBUG_SECTIONS`]; nested modules
/// and components are copied whole.
pub fn strip_debug_sections(component: &[u8]) -> Result<Vec<u8>> {
    let mut out = Component::new();
    let mut parser = Parser::new(0);
    let mut rest = component;
    loop {
        let Chunk::Parsed { payload, consumed } = parser.parse(rest, true)? else {
            bail!("truncated component");
        };
        rest = &rest[consumed..];
        let nested_module = matches!(payload, Payload::ModuleSection { .. });
        match payload {
            Payload::Version { .. } => {}
            Payload::End(_) => break,
            Payload::CustomSection(c) if DEBUG_SECTIONS.contains(&c.name()) => {}
            Payload::ModuleSection {
                unchecked_range: r, ..
            }
            | Payload::ComponentSection {
                unchecked_range: r, ..
            } => {
                let id = if nested_module {
                    wasm_encoder::ComponentSectionId::CoreModule
                } else {
                    wasm_encoder::ComponentSectionId::Component
                };
                out.section(&RawSection {
                    id: id as u8,
                    data: &component[r.start as usize..r.end as usize],
                });
                // The parent parser resumes after the nested item: skip its bytes.
                rest = &rest[(r.end - r.start) as usize..];
            }
            other => {
                let Some((id, range)) = other.as_section() else {
                    bail!("unexpected payload in a component");
                };
                out.section(&RawSection {
                    id,
                    data: &component[range.start as usize..range.end as usize],
                });
            }
        }
    }
    let out = out.finish();
    wasmparser::Validator::new()
        .validate_all(&out)
        .context("the stripped component does not validate")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_like(extra: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
              (memory (export "memory") 1)
              (global $sp (mut i32) (i32.const 1024))
              {extra}
              (func (export "alloc") (param i64) (result i64) global.get $sp drop local.get 0)
              (@custom "kept" "bytes"))"#
        ))
        .unwrap()
    }

    const CONTEXT: &str =
        r#"(global $context (export "extism_context") (mut externref) (ref.null extern))"#;

    #[test]
    fn drops_the_context_global_and_its_export_only() {
        let out = without_context_global(&kernel_like(CONTEXT)).unwrap();
        let text = wasmprinter::print_bytes(&out).unwrap();
        assert!(
            !text.contains("externref") && !text.contains("extism_context"),
            "{text}"
        );
        for kept in [
            "(export \"memory\"",
            "(export \"alloc\"",
            "(mut i32)",
            "\"kept\"",
        ] {
            assert!(text.contains(kept), "{kept} is gone: {text}");
        }
    }

    #[test]
    fn leaves_a_module_without_it_unchanged() {
        let wasm = kernel_like("");
        assert_eq!(without_context_global(&wasm).unwrap(), wasm);
    }

    #[test]
    fn later_globals_move_down_one_index() {
        // As in upstream's kernel: the context global first, then `__heap_base`.
        let wasm = wat::parse_str(format!(
            r#"(module
              {CONTEXT}
              (global $base (export "__heap_base") i32 (i32.const 4096))
              (func (export "base") (result i32) global.get $base))"#
        ))
        .unwrap();
        let out = without_context_global(&wasm).unwrap();
        let text = wasmprinter::print_bytes(&out).unwrap();
        assert!(!text.contains("externref"), "{text}");
        // Its name moved with it.
        assert!(text.contains("(global $base (;0;) i32"), "{text}");
        assert!(
            text.contains("(export \"__heap_base\" (global $base))"),
            "{text}"
        );
        assert!(text.contains("global.get $base"), "{text}");
    }

    #[test]
    fn refuses_a_module_whose_code_uses_it() {
        let used = format!("{CONTEXT} (func global.get $context drop)");
        let err = without_context_global(&kernel_like(&used)).unwrap_err();
        assert!(
            err.to_string().contains("code uses its `extism_context`"),
            "{err}"
        );
    }
}

//! The core module's post-link step.
//!
//! Rust cannot declare an `externref` global, and rustc's wasm linker exports `__heap_base`
//! and `__data_end` besides the functions. This step rewrites the linked module with the
//! wasm-tools crates so that it exports exactly what the Extism runtime expects of a kernel:
//! the 20 ABI functions, `memory`, and `extism_context`, a mutable `externref` global
//! initialised to null. Everything else in the module is re-encoded unchanged, and the
//! address of the kernel's return area (the global rustc exports for the static
//! [`RETURN_AREA_SYMBOL`]) is recorded in a custom section, [`RETURN_AREA_SECTION`], for
//! plugin-host's composer.

use anyhow::{Context, Result, bail, ensure};
use kernel_abi::{
    CONTEXT_GLOBAL, KERNEL_FUNCTIONS, MEMORY, RETURN_AREA_SECTION, RETURN_AREA_SYMBOL,
};
use wasm_encoder::reencode::{Error as ReencodeError, Reencode, utils};
use wasm_encoder::{
    ConstExpr, CustomSection, ExportKind, ExportSection, GlobalSection, GlobalType, HeapType,
    Module, RefType, SectionId, ValType,
};
use wasm_util::wasm_types;
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, Validator, WasmFeatures};

/// Adds `extism_context`, keeps only the ABI's exports and records the return area's
/// address when the module has one; fails unless the result is a valid module that exports
/// all 20 functions with their ABI types and `memory`.
pub fn finish_core_module(linked: &[u8]) -> Result<Vec<u8>> {
    let mut globals = 0;
    let mut inits = Vec::new();
    let mut area_global = None;
    for payload in Parser::new(0).parse_all(linked) {
        match payload? {
            Payload::ImportSection(s) => {
                for imp in s.into_imports() {
                    if matches!(imp?.ty, TypeRef::Global(_)) {
                        globals += 1;
                        inits.push(None);
                    }
                }
            }
            Payload::GlobalSection(s) => {
                globals += s.count();
                for g in s {
                    let g = g?;
                    let mut ops = g.init_expr.get_operators_reader();
                    inits.push(match (g.ty.mutable, ops.read()?) {
                        (false, wasmparser::Operator::I32Const { value }) => Some(value as u32),
                        _ => None,
                    });
                }
            }
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e?;
                    if e.kind == ExternalKind::Global && e.name == RETURN_AREA_SYMBOL {
                        area_global = Some(e.index);
                    }
                }
            }
            _ => {}
        }
    }
    let area = match area_global {
        None => None,
        Some(g) => {
            let at = inits.get(g as usize).copied().flatten().with_context(|| {
                format!("`{RETURN_AREA_SYMBOL}` is not an immutable i32 global of the module")
            })?;
            ensure!(
                at % 8 == 0,
                "`{RETURN_AREA_SYMBOL}` at {at} is not 8-aligned"
            );
            Some(at)
        }
    };
    let mut r = AddContext {
        index: globals,
        global_written: false,
        exports_written: false,
    };
    let mut module = Module::new();
    r.parse_core_module(&mut module, Parser::new(0), linked)
        .map_err(|e| anyhow::anyhow!("re-encoding the kernel module: {e:?}"))?;
    ensure!(
        r.exports_written,
        "the linked kernel module has no export section"
    );
    if let Some(at) = area {
        module.section(&CustomSection {
            name: RETURN_AREA_SECTION.into(),
            data: at.to_le_bytes().as_slice().into(),
        });
    }
    let out = module.finish();
    check_kernel_module(&out)?;
    Ok(out)
}

struct AddContext {
    index: u32,
    global_written: bool,
    exports_written: bool,
}

impl AddContext {
    fn push_context(&mut self, globals: &mut GlobalSection) {
        globals.global(
            GlobalType {
                val_type: ValType::Ref(RefType::EXTERNREF),
                mutable: true,
                shared: false,
            },
            &ConstExpr::ref_null(HeapType::EXTERN),
        );
        self.global_written = true;
    }
}

/// Whether a section with this id comes after the global section in a module.
fn after_globals(id: SectionId) -> bool {
    matches!(
        id,
        SectionId::Export
            | SectionId::Start
            | SectionId::Element
            | SectionId::DataCount
            | SectionId::Code
            | SectionId::Data
    )
}

impl Reencode for AddContext {
    type Error = std::convert::Infallible;

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        utils::parse_global_section(self, globals, section)?;
        self.push_context(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        for export in section {
            let export = export?;
            let keep = match export.kind {
                ExternalKind::Func => kernel_abi::kernel_function(export.name).is_some(),
                ExternalKind::Memory => export.name == MEMORY,
                _ => false,
            };
            if keep {
                utils::parse_export(self, exports, export)?;
            }
        }
        exports.export(CONTEXT_GLOBAL, ExportKind::Global, self.index);
        self.exports_written = true;
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        // A module without globals of its own still gets the global section, in its place.
        if !self.global_written && before.is_none_or(after_globals) {
            let mut globals = GlobalSection::new();
            self.push_context(&mut globals);
            module.section(&globals);
        }
        Ok(())
    }
}

/// Validates `wasm` and checks it exports exactly what an Extism kernel exports.
pub fn check_kernel_module(wasm: &[u8]) -> Result<()> {
    let mut validator = Validator::new_with_features(WasmFeatures::default());
    let types = validator
        .validate_all(wasm)
        .context("the kernel module does not validate")?;
    let types = types.as_ref();
    let mut seen = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(s) = payload? {
            for export in s {
                let export = export?;
                match export.kind {
                    ExternalKind::Func => {
                        let Some(f) = kernel_abi::kernel_function(export.name) else {
                            bail!("unexpected function export `{}`", export.name);
                        };
                        let (params, results) = (wasm_types(f.params), wasm_types(f.results));
                        let ty = types.core_function_at(export.index);
                        let ty = types[ty].unwrap_func();
                        ensure!(
                            ty.params() == params && ty.results() == results,
                            "export `{}` has type {ty}, the ABI says {params:?} -> {results:?}",
                            export.name
                        );
                    }
                    ExternalKind::Memory => ensure!(export.name == MEMORY, "extra memory"),
                    ExternalKind::Global => {
                        ensure!(export.name == CONTEXT_GLOBAL, "extra global export");
                        let g = types.global_at(export.index);
                        ensure!(
                            g.mutable && g.content_type == wasmparser::ValType::EXTERNREF,
                            "`extism_context` must be a mutable externref"
                        );
                    }
                    _ => bail!("unexpected export `{}`", export.name),
                }
                seen.push(export.name.to_string());
            }
        }
    }
    for f in KERNEL_FUNCTIONS {
        ensure!(
            seen.iter().any(|s| s == f.name),
            "missing export `{}`",
            f.name
        );
    }
    for name in [MEMORY, CONTEXT_GLOBAL] {
        ensure!(seen.iter().any(|s| s == name), "missing export `{name}`");
    }
    ensure!(
        seen.len() == KERNEL_FUNCTIONS.len() + 2,
        "duplicate exports"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linked module shaped like rustc's output: the ABI functions (as stubs), `memory`,
    /// `__heap_base` and `__data_end`.
    fn linked(with_globals: bool) -> Vec<u8> {
        wat::parse_str(linked_text(with_globals, "")).unwrap()
    }

    /// [`linked`]'s text, with `extra` fields.
    fn linked_text(with_globals: bool, extra: &str) -> String {
        let mut wat = String::from("(module (memory (export \"memory\") 1)\n");
        wat.push_str(extra);
        if with_globals {
            wat.push_str("(global $sp (mut i32) (i32.const 1024))\n");
            wat.push_str("(global (export \"__heap_base\") i32 (i32.const 2048))\n");
            wat.push_str("(global (export \"__data_end\") i32 (i32.const 2048))\n");
        }
        for f in KERNEL_FUNCTIONS {
            let name = f.name;
            let p: Vec<_> = wasm_types(f.params).iter().map(|t| t.to_string()).collect();
            let r: Vec<_> = wasm_types(f.results)
                .iter()
                .map(|t| t.to_string())
                .collect();
            let body: Vec<_> = r.iter().map(|t| format!("({t}.const 0)")).collect();
            wat.push_str(&format!(
                "(func (export \"{name}\") (param {}) (result {}) {})\n",
                p.join(" "),
                r.join(" "),
                body.join(" ")
            ));
        }
        wat.push(')');
        wat
    }

    #[test]
    fn adds_context_global_and_drops_linker_exports() {
        for with_globals in [true, false] {
            let out = finish_core_module(&linked(with_globals)).unwrap();
            check_kernel_module(&out).unwrap();
            let text = wasmprinter::print_bytes(&out).unwrap();
            assert!(
                text.contains("(global (;") && text.contains("(mut externref) ref.null extern")
            );
            assert!(!text.contains("__heap_base") && !text.contains("__data_end"));
        }
    }

    #[test]
    fn records_the_return_area_and_drops_its_export() {
        let area = format!("(global (export \"{RETURN_AREA_SYMBOL}\") i32 (i32.const 4096))\n");
        let out = finish_core_module(&wat::parse_str(linked_text(true, &area)).unwrap()).unwrap();
        check_kernel_module(&out).unwrap();
        assert_eq!(wasm_util::return_area(&out).unwrap(), Some(4096));
        let text = wasmprinter::print_bytes(&out).unwrap();
        assert!(!text.contains(RETURN_AREA_SYMBOL), "{text}");
        // Without the static, no section.
        let out = finish_core_module(&linked(true)).unwrap();
        assert_eq!(wasm_util::return_area(&out).unwrap(), None);
        // A misaligned area is refused.
        let area = format!("(global (export \"{RETURN_AREA_SYMBOL}\") i32 (i32.const 4100))\n");
        let err = finish_core_module(&wat::parse_str(linked_text(true, &area)).unwrap());
        assert!(err.unwrap_err().to_string().contains("not 8-aligned"));
    }

    #[test]
    fn refuses_a_module_missing_an_abi_function() {
        let wat = "(module (memory (export \"memory\") 1) (func (export \"alloc\") (param i64) (result i64) i64.const 0))";
        let err = finish_core_module(&wat::parse_str(wat).unwrap()).unwrap_err();
        assert!(err.to_string().contains("missing export `free`"), "{err}");
    }

    #[test]
    fn refuses_an_abi_function_of_the_wrong_type() {
        let wat = "(module (memory (export \"memory\") 1) (func (export \"alloc\") (param i32) (result i32) i32.const 0))";
        let err = finish_core_module(&wat::parse_str(wat).unwrap()).unwrap_err();
        assert!(err.to_string().contains("export `alloc` has type"), "{err}");
    }
}

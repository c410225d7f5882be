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

use anyhow::{Context, Result, bail};
use wasm_encoder::{Component, RawSection};
use wasmparser::{Chunk, Parser, Payload};

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

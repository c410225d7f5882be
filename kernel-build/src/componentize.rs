//! The kernel component: the wit-bindgen core module encoded as a component.

use anyhow::{Context, Result, bail};
use wasm_encoder::{Component, RawSection};
use wasmparser::{Chunk, Parser, Payload};
use wit_component::ComponentEncoder;

/// Custom sections of debugging value only, dropped from the shipped component.
pub const DEBUG_SECTIONS: [&str; 3] = ["component-name", "producers", "name"];

/// Turns the kernel-component crate's core module (with its embedded `component-type`
/// section, from wit-bindgen) into a validated component without debug names.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    let component = ComponentEncoder::default()
        .validate(true)
        .module(core)
        .context("reading the component's core module")?
        .encode()
        .context("encoding the component")?;
    strip_debug_sections(&component)
}

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

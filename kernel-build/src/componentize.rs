//! The kernel component: the wit-bindgen core module encoded as a component.

use anyhow::{Context, Result};
use wit_component::ComponentEncoder;

/// Turns the kernel-component crate's core module (with its embedded `component-type`
/// section, from wit-bindgen) into a validated component without debug names.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    let component = ComponentEncoder::default()
        .validate(true)
        .module(core)
        .context("reading the component's core module")?
        .encode()
        .context("encoding the component")?;
    wasm_util::strip_debug_sections(&component)
}

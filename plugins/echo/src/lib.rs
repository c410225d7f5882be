//! `echo` returns the input bytes unchanged; `reverse` returns them reversed byte-wise.
//! Neither requires the input to be UTF-8.

use extism_pdk::{plugin_fn, FnResult};

#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

#[plugin_fn]
pub fn reverse(mut input: Vec<u8>) -> FnResult<Vec<u8>> {
    input.reverse();
    Ok(input)
}

//! Files through WASI (built for wasm32-wasip1), for the host's `allowed_paths`:
//! - `read_file`: the input is a path; the output, the file's bytes;
//! - `write_file`: the input is `PATH\nCONTENTS`; writes CONTENTS to PATH and returns the
//!   number of bytes written, as text;
//! - `list_dir`: the input is a directory; the output, its entries' names sorted, one a line.
//!
//! A failure (no preopen for the path, a read-only preopen, a missing file) is the plugin's
//! error: the message of the I/O error, with the path.

use extism_pdk::{plugin_fn, Error, FnResult};

fn path(input: &[u8]) -> FnResult<&str> {
    Ok(
        std::str::from_utf8(input)
            .map_err(|e| Error::msg(format!("the path is not UTF-8: {e}")))?,
    )
}

#[plugin_fn]
pub fn read_file(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let p = path(&input)?;
    Ok(std::fs::read(p).map_err(|e| Error::msg(format!("reading {p}: {e}")))?)
}

#[plugin_fn]
pub fn write_file(input: Vec<u8>) -> FnResult<String> {
    let split = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let p = path(&input[..split])?;
    let contents = input.get(split + 1..).unwrap_or_default();
    std::fs::write(p, contents).map_err(|e| Error::msg(format!("writing {p}: {e}")))?;
    Ok(contents.len().to_string())
}

#[plugin_fn]
pub fn list_dir(input: Vec<u8>) -> FnResult<String> {
    let p = path(&input)?;
    let mut names = std::fs::read_dir(p)
        .map_err(|e| Error::msg(format!("listing {p}: {e}")))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::msg(format!("listing {p}: {e}")))?;
    names.sort();
    Ok(names.join("\n"))
}

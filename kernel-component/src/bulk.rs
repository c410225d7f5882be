//! `extism:kernel/bulk`: copying operations for hosts, over kernel-core's bulk methods.

use crate::Component;
use crate::arena::with_kernel;
use crate::exports::extism::kernel::bulk::Guest;
use crate::exports::extism::kernel::types::ErrorCode;
use alloc::string::String;
use alloc::vec::Vec;
use kernel_core::Error;

/// The WIT error code of a kernel-core error.
fn code(e: Error) -> ErrorCode {
    match e {
        Error::InvalidHandle => ErrorCode::InvalidHandle,
        Error::OutOfBounds => ErrorCode::OutOfBounds,
        Error::OutOfMemory => ErrorCode::OutOfMemory,
    }
}

/// A copy of `bytes` for the canonical ABI to lower; `out-of-memory` instead of a trap when
/// the global allocator cannot hold it.
fn copy_out(bytes: Result<&[u8], Error>) -> Result<Vec<u8>, ErrorCode> {
    let bytes = bytes.map_err(code)?;
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len())
        .map_err(|_| ErrorCode::OutOfMemory)?;
    v.extend_from_slice(bytes);
    Ok(v)
}

/// `bytes` as UTF-8, each invalid sequence replaced by U+FFFD (as
/// `String::from_utf8_lossy`, whose chunk iterator is larger in wasm).
fn lossy(mut bytes: &[u8]) -> String {
    let mut s = String::new();
    loop {
        match core::str::from_utf8(bytes) {
            Ok(valid) => {
                s.push_str(valid);
                return s;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at_checked(e.valid_up_to()).unwrap_or_default();
                // SAFETY: `from_utf8` just checked that the first `valid_up_to` bytes are UTF-8.
                s.push_str(unsafe { core::str::from_utf8_unchecked(valid) });
                s.push(char::REPLACEMENT_CHARACTER);
                // `error_len` is `None` for a sequence cut short by the end: nothing follows.
                let skip = e.error_len().map_or(rest.len(), usize::from);
                bytes = rest.get(skip..).unwrap_or_default();
            }
        }
    }
}

impl Guest for Component {
    fn alloc_bytes(data: Vec<u8>) -> Result<u64, ErrorCode> {
        with_kernel(|k| k.alloc_bytes(&data)).map_err(code)
    }

    fn read(h: u64, offset: u64, len: u64) -> Result<Vec<u8>, ErrorCode> {
        with_kernel(|k| copy_out(k.read(h, offset, len)))
    }

    fn write(h: u64, offset: u64, data: Vec<u8>) -> Result<(), ErrorCode> {
        with_kernel(|k| k.write(h, offset, &data)).map_err(code)
    }

    fn set_input(data: Vec<u8>) -> Result<u64, ErrorCode> {
        with_kernel(|k| k.set_input(&data)).map_err(code)
    }

    fn prepare_call(input: Vec<u8>) -> Result<(), ErrorCode> {
        // `input` is a global-allocator block, outside the arena that `reset` lays out anew.
        with_kernel(|k| {
            k.error_set(0);
            k.reset();
            k.set_input(&input).map(drop)
        })
        .map_err(code)
    }

    fn output() -> Result<Vec<u8>, ErrorCode> {
        with_kernel(|k| copy_out(k.output()))
    }

    fn error() -> Option<String> {
        with_kernel(|k| k.error_message().map(lossy))
    }

    fn set_error(msg: String) -> Result<(), ErrorCode> {
        with_kernel(|k| k.set_error_message(msg.as_bytes())).map_err(code)
    }
}

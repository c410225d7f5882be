//! Copying operations with real errors, for hosts (the component's host interface). Each is
//! built from the same heap as the raw operations; none of them can break its invariants.

use crate::io::Kernel;
use crate::memory::Memory;

/// Why a bulk operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The handle is not a live block.
    InvalidHandle,
    /// The range does not lie inside the block (or the heap).
    OutOfBounds,
    /// Memory cannot grow enough.
    OutOfMemory,
}

impl<M: Memory> Kernel<M> {
    /// A new block holding `data`; `0` for empty data.
    pub fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64, Error> {
        if data.is_empty() {
            return Ok(0);
        }
        let h = self.alloc(data.len() as u64);
        if h == 0 {
            return Err(Error::OutOfMemory);
        }
        self.write(h, 0, data)?;
        Ok(h)
    }

    fn block_range(&self, h: u64, offset: u64, len: u64) -> Result<u64, Error> {
        let n = self.length(h);
        if n == 0 {
            return Err(Error::InvalidHandle);
        }
        match offset.checked_add(len) {
            Some(e) if e <= n => Ok(h + offset),
            _ => Err(Error::OutOfBounds),
        }
    }

    /// `len` bytes of block `h` from `offset`.
    pub fn read(&self, h: u64, offset: u64, len: u64) -> Result<&[u8], Error> {
        let p = self.block_range(h, offset, len)?;
        self.heap().bytes(p, len).ok_or(Error::OutOfBounds)
    }

    /// Writes `data` into block `h` at `offset`.
    pub fn write(&mut self, h: u64, offset: u64, data: &[u8]) -> Result<(), Error> {
        let p = self.block_range(h, offset, data.len() as u64)?;
        let dst = self
            .heap_mut()
            .bytes_mut(p, data.len() as u64)
            .ok_or(Error::OutOfBounds)?;
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Copies `data` into a new block and makes it the input; returns the block (`0` when
    /// empty).
    pub fn set_input(&mut self, data: &[u8]) -> Result<u64, Error> {
        let h = self.alloc_bytes(data)?;
        self.input_set(h, data.len() as u64);
        Ok(h)
    }

    /// The output bytes, if the output range is still accessible.
    pub fn output(&self) -> Result<&[u8], Error> {
        let (p, n) = (self.output_offset(), self.output_length());
        if n == 0 {
            return Ok(&[]);
        }
        self.heap().bytes(p, n).ok_or(Error::OutOfBounds)
    }

    /// The error message bytes: `None` when no error block is set or it is empty or freed.
    pub fn error_message(&self) -> Option<&[u8]> {
        let h = self.error_get();
        let n = self.length(h);
        if h == 0 || n == 0 {
            return None;
        }
        self.heap().bytes(h, n)
    }

    /// Sets the error message to a new block holding `msg`.
    pub fn set_error_message(&mut self, msg: &[u8]) -> Result<(), Error> {
        let h = self.alloc_bytes(msg)?;
        self.error_set(h);
        Ok(())
    }
}

//! [`Limits`]: one memory limit over every memory of a plugin's store.

use wasmtime::{ResourceLimiter, Result};

/// Counts the pages of every memory in a plugin's store against one limit.
#[derive(Debug, Default)]
pub struct Limits {
    max_bytes: Option<u64>,
    bytes: u64,
    peak: u64,
    grows: u64,
    /// A growth was refused since the last call started.
    pub denied: bool,
}

impl Limits {
    /// No more than `max_bytes` in all the store's memories together (`None`: no limit).
    pub fn new(max_bytes: Option<u64>) -> Self {
        Limits {
            max_bytes,
            ..Limits::default()
        }
    }

    /// Bytes of memory the store's memories hold together now.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The most bytes they ever held together.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// How many `memory.grow`s grew a memory (the memories' creation not counted).
    pub fn grows(&self) -> u64 {
        self.grows
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        let total = self.bytes + (desired - current) as u64;
        if self.max_bytes.is_some_and(|m| total > m) {
            self.denied = true;
            return Ok(false);
        }
        self.bytes = total;
        self.peak = self.peak.max(total);
        if current > 0 && desired > current {
            self.grows += 1;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(true)
    }
}

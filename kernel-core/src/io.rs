//! The kernel: the heap plus the call's input, output and error slots, with one method per
//! raw Extism export and the same meaning (see `KERNEL-ABI.md` in the README's references).

use crate::heap::Heap;
use crate::memory::Memory;

/// A byte range of the heap marked as the input or the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    offset: u64,
    length: u64,
}

/// An Extism kernel over a [`Memory`]: the allocator and the input, output and error slots.
///
/// Every method is total: any 64-bit argument is accepted, nothing panics on bad input, and
/// values that are not what the method expects give `0` or are ignored, as the ABI says.
#[derive(Debug)]
pub struct Kernel<M: Memory> {
    heap: Heap<M>,
    input: Slot,
    output: Slot,
    error: u64,
}

impl<M: Memory> Kernel<M> {
    /// A kernel over `mem`; nothing is touched until the first call.
    pub const fn new(mem: M) -> Self {
        Kernel {
            heap: Heap::new(mem),
            input: Slot {
                offset: 0,
                length: 0,
            },
            output: Slot {
                offset: 0,
                length: 0,
            },
            error: 0,
        }
    }

    /// The allocator.
    pub fn heap(&self) -> &Heap<M> {
        &self.heap
    }

    /// The allocator, mutably (a host adjusting memory limits, tests).
    pub fn heap_mut(&mut self) -> &mut Heap<M> {
        &mut self.heap
    }

    /// `alloc`: a block of exactly `n` bytes, or `0`.
    pub fn alloc(&mut self, n: u64) -> u64 {
        self.heap.alloc(n)
    }

    /// `free`: frees a live block; ignores anything else. Freeing the input's block empties
    /// the input.
    pub fn free(&mut self, h: u64) {
        if self.heap.free(h) && h == self.input.offset {
            self.input.length = 0;
        }
    }

    /// `length`: the length of a live block, `0` for any other value.
    pub fn length(&self, h: u64) -> u64 {
        self.heap.length(h)
    }

    /// `length_unsafe`: the same answer as [`length`](Self::length), which is already O(1).
    pub fn length_unsafe(&self, h: u64) -> u64 {
        self.heap.length(h)
    }

    /// `load_u8`: the byte at `p`, or `0` outside the accessible heap.
    pub fn load_u8(&self, p: u64) -> u8 {
        self.heap.load::<1>(p).map_or(0, |b| b[0])
    }

    /// `load_u64`: the little-endian word at `p`, or `0` unless all 8 bytes are accessible.
    #[inline(always)]
    pub fn load_u64(&self, p: u64) -> u64 {
        self.heap.load_inline::<8>(p).map_or(0, u64::from_le_bytes)
    }

    /// `store_u8`: writes a byte at `p`; ignored outside the accessible heap.
    pub fn store_u8(&mut self, p: u64, x: u8) {
        self.heap.store(p, [x]);
    }

    /// `store_u64`: writes a little-endian word at `p`; ignored unless all 8 bytes are
    /// accessible.
    #[inline(always)]
    pub fn store_u64(&mut self, p: u64, x: u64) {
        self.heap.store_inline(p, x.to_le_bytes());
    }

    /// `input_load_u8`: the input's byte at `offset`, `0` past its end.
    pub fn input_load_u8(&self, offset: u64) -> u8 {
        if offset < self.input.length {
            self.load_u8(self.input.offset + offset)
        } else {
            0
        }
    }

    /// `input_load_u64`: the input's word at `offset`, `0` unless all 8 bytes are inside it.
    #[inline(always)]
    pub fn input_load_u64(&self, offset: u64) -> u64 {
        match self.input.length.checked_sub(8) {
            Some(last) if offset <= last => self.load_u64(self.input.offset + offset),
            _ => 0,
        }
    }

    fn range_ok(&self, p: u64, len: u64) -> bool {
        len == 0 || self.heap.accessible(p, len)
    }

    /// `input_set`: marks `[h, h + len)` as the input; ignored unless the range is accessible
    /// (an empty range always is).
    pub fn input_set(&mut self, h: u64, len: u64) {
        if self.range_ok(h, len) {
            self.input = Slot {
                offset: h,
                length: len,
            };
        }
    }

    /// `output_set`: marks `[p, p + len)` as the output; ignored unless the range is
    /// accessible (an empty range always is).
    pub fn output_set(&mut self, p: u64, len: u64) {
        if self.range_ok(p, len) {
            self.output = Slot {
                offset: p,
                length: len,
            };
        }
    }

    /// `input_length`.
    pub fn input_length(&self) -> u64 {
        self.input.length
    }

    /// `input_offset`.
    pub fn input_offset(&self) -> u64 {
        self.input.offset
    }

    /// `output_length`.
    pub fn output_length(&self) -> u64 {
        self.output.length
    }

    /// `output_offset`.
    pub fn output_offset(&self) -> u64 {
        self.output.offset
    }

    /// `error_set`: `0` clears the error; a live handle becomes the error message; anything
    /// else is ignored.
    pub fn error_set(&mut self, h: u64) {
        if h == 0 || self.heap.is_live(h) {
            self.error = h;
        }
    }

    /// `error_get`: the error block, `0` when none.
    pub fn error_get(&self) -> u64 {
        self.error
    }

    /// `reset`: forgets every block, the input, the output and the error. O(1).
    pub fn reset(&mut self) {
        self.heap.reset();
        self.input = Slot::default();
        self.output = Slot::default();
        self.error = 0;
    }

    /// `memory_bytes`: bytes under the allocator's management.
    pub fn memory_bytes(&self) -> u64 {
        self.heap.memory_bytes()
    }
}

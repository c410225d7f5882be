//! The allocator: two-level segregated fit (TLSF) over block records kept out of band.
//!
//! Every block, free or in use, has a 32-byte record (eight `u32` fields, [`F`]) in a table. The table and a hash
//! index of the live blocks live together in one *metadata block* inside the heap, which the
//! bounds check of loads and stores excludes, so nothing a plugin stores can reach them. The
//! rest of the heap holds nothing but block bytes: blocks sit back to back with no headers.
//!
//! - `alloc`: O(1). The request is rounded to 8 bytes; a few entries of its exact size class
//!   are probed, then the two bitmaps find the first non-empty class whose every block fits
//!   (TLSF "good fit"). The block is split when the excess is at least [`MIN_SPLIT`] bytes.
//!   When nothing fits, memory grows by exactly the pages still missing after the free block
//!   at the top of the heap, if there is one (by the table's size at least when the table is
//!   the top: see below).
//! - `free`, `length`: O(1) expected: one hash probe sequence, keyed by the block's start,
//!   confirmed against the record, so any value that is not a live handle gives `None`.
//!   Freed blocks merge with free neighbours at once (the records link physical neighbours)
//!   and go to the head of their class list, so the next fitting request reuses them.
//! - `reset`: O(1): the metadata block is laid out anew at the bottom of the heap with its
//!   initial capacity and the rest of the heap becomes one free block, exactly as on a fresh
//!   heap, so the first allocation after `reset` is the first allocation of a fresh kernel.
//!
//! ## The record table
//!
//! The table doubles when fewer than [`RESERVE`] records are spare at the start of `alloc`;
//! records are addressed by index, so moving the table changes no link. Doubling needs no
//! free block twice the table's size besides the table: the table's block is freed first,
//! merging with the free space beside it, and the doubled table is carved from the *end* of
//! the first free block that then fits, memory growing by the pages still missing if none
//! does; the records are copied after the carve, overlapping if need be. So the table's own
//! bytes and its free neighbours count towards its next size, and at its peak the metadata
//! takes the doubled table, not three times the table. Allocations split free blocks from
//! their start, so the free space left below the table stays beside it; and when the table
//! is the top of the heap and a block needs memory, the table moves up to the new end of
//! memory, by its own size at least if memory can grow so far, rather than let the block sit
//! above it. Either way the table keeps free space or the memory's end beside it to double
//! into: while a heap fills up to a memory limit, `alloc` fails only when fewer bytes are
//! left, free or still to grow into, than the doubled table adds (or than the block needs).
//! A doubling or a move costs O(table) and comes with as many records gained or bytes
//! allocated or grown: amortised O(1). When memory cannot hold the doubled table, `alloc`
//! returns 0 and the table stays where it was.

use crate::memory::{MAX_MEMORY, Memory, PAGE_SIZE};
use core::ptr::NonNull;

/// Alignment of every block's start and size.
pub const ALIGN: u64 = 8;
/// A free excess smaller than this stays with the block it belongs to.
pub const MIN_SPLIT: u64 = 32;
/// The largest request `alloc` considers; larger ones return 0 without growing memory.
pub const MAX_ALLOC: u64 = MAX_MEMORY - PAGE_SIZE;

/// Second-level classes per power of two: 2^SLI.
const SLI: u32 = 3;
const SL_COUNT: usize = 1 << SLI;
/// Sizes below this have classes 8 bytes wide (first level 0).
const SMALL: u64 = 1 << (SLI + 3);
/// Classes: 8 per first level; level 0 for small sizes, then one per power of two up to 2^31
/// (27 levels, 216 classes). 256 so that a class masked with 255 is provably in bounds.
const CLASSES: usize = 256;

/// No record.
const NIL: u32 = u32::MAX;
/// No slot of the hash index.
///
/// Internal functions answer "none" with [`NIL`] or `NO_SLOT` rather than an `Option`: on
/// wasm32 an `Option<u32>` or a pair is returned through memory on the shadow stack, and a
/// trap inside a kernel call (fuel, a timeout, a stack overflow) skips the epilogue that gives
/// the frame back, so the core module's stack pointer sank with every such trap until it
/// wrapped and every later call trapped. With scalar returns the kernel keeps no frames on
/// the shadow stack (host-demo's contract tests check the built module for it).
const NO_SLOT: u64 = u64::MAX;
/// Hash slots per record (the index stays at most half full).
const SLOTS_PER_REC: u64 = 2;
/// Bytes of metadata per record of capacity: the record and its hash slots.
const META_PER_REC: u64 = REC_BYTES + SLOTS_PER_REC * 4;
/// Record capacity of a fresh (or reset) heap.
pub const INITIAL_RECORDS: u32 = 32;
/// Spare records `alloc` wants before it starts: 2 for itself, 2 to grow the table.
const RESERVE: u32 = 4;

/// What a record describes (its `State` field).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum State {
    /// A slot of the record table that describes nothing.
    Unused = 0,
    /// A free block, in its class list.
    Free = 1,
    /// A block handed out by `alloc`: a valid handle.
    Live = 2,
    /// A block the heap uses itself (the metadata): in use, never a handle.
    Internal = 3,
}

/// The fields of a record: eight `u32`s. Offsets fit in 32 bits because the memory is at most
/// 4 GiB; a block's end may be 2^32 and is computed in `u64`. Fields are read and written one
/// at a time (one wasm load or store each), which keeps the core module small.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
enum F {
    Start,
    Size,
    /// Bytes the caller asked for (`length`); `Size` rounded it up.
    Used,
    State,
    PrevPhys,
    NextPhys,
    PrevFree,
    /// Also links unused slots of the table.
    NextFree,
}

/// The address of one record.
///
/// Type invariant: an `R` is made only by [`Heap::r`], for an index below the table's
/// high-water mark, and is used before the heap next grows its memory or moves its table
/// (which happen only inside `grow_for` and `place_table`, never while an `R` is held).
#[derive(Clone, Copy)]
struct R(*mut [u32; 8]);

impl R {
    fn get(self, f: F) -> u32 {
        // SAFETY: by the type invariant the record lies inside the metadata block, inside the
        // heap's memory, 8-aligned; nothing else holds a reference to it.
        unsafe { (*self.0)[f as usize] }
    }

    fn set(self, f: F, v: u32) {
        // SAFETY: as in `get`.
        unsafe { (*self.0)[f as usize] = v }
    }
}

/// Bytes of one record.
const REC_BYTES: u64 = 32;

/// Rounds up to [`ALIGN`]; `n` is at most [`MAX_ALLOC`], so this cannot wrap.
const fn align_up(n: u64) -> u64 {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// The class a block of `size` bytes is filed under: first level times 8 plus second level.
/// Sizes are below 2^32, so the class is below 216; the mask only lets the compiler see it.
fn class_of(size: u64) -> usize {
    if size < SMALL {
        (size / ALIGN) as usize
    } else {
        let log = 63 - size.leading_zeros();
        let fl = (log - (SLI + 3) + 1) as usize;
        let sl = ((size >> (log - SLI)) as usize) & (SL_COUNT - 1);
        (fl * SL_COUNT + sl) & (CLASSES - 1)
    }
}

/// The first class whose every block holds `size` bytes, or `None` past the largest class.
fn class_fitting(size: u64) -> Option<usize> {
    let size = if size < SMALL {
        size
    } else {
        let log = 63 - size.leading_zeros();
        size + (1 << (log - SLI)) - 1
    };
    (size < MAX_MEMORY).then(|| class_of(size))
}

/// The allocator over a [`Memory`]. See the module docs for the layout and costs.
#[derive(Debug)]
pub struct Heap<M: Memory> {
    mem: M,
    /// First managed byte; nothing below it is ever handed out or accessible.
    lo: u64,
    /// End of managed memory: the memory's size when the heap last grew.
    end: u64,
    /// The metadata block: `cap` records, then `cap * SLOTS_PER_REC` hash slots. Kept as a
    /// `usize` (it is below 4 GiB) so address arithmetic stays 32-bit on wasm.
    meta: usize,
    cap: u32,
    /// The record of the metadata block itself.
    meta_rec: u32,
    /// Records ever used in the table since the last reset, and the unused ones among them.
    high_water: u32,
    unused_head: u32,
    in_use: u32,
    /// Blocks in the hash index (live and internal).
    hashed: u32,
    /// Physical ends of the block chain.
    first: u32,
    last: u32,
    /// One bit per class: set when its list is not empty.
    nonempty: [u64; CLASSES / 64],
    heads: [u32; CLASSES],
    ready: bool,
}

impl<M: Memory> Heap<M> {
    /// A heap over `mem`. Nothing is touched until the first operation. Class heads are only
    /// meaningful where their bitmap bit is set.
    pub const fn new(mem: M) -> Self {
        Heap {
            mem,
            lo: 0,
            end: 0,
            meta: 0,
            cap: 0,
            // All zeros, so a static heap costs no data segment; `init` sets every field.
            meta_rec: 0,
            high_water: 0,
            unused_head: 0,
            in_use: 0,
            hashed: 0,
            first: 0,
            last: 0,
            nonempty: [0; CLASSES / 64],
            heads: [0; CLASSES],
            ready: false,
        }
    }

    /// The memory underneath.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The memory underneath, for a host that changes its limits.
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Lays the heap out as on a fresh start: metadata at the bottom, one free block above.
    /// Returns `false` (and stays unready, with `end == 0`) when memory cannot hold even the
    /// metadata; that can only happen on the first call, since memory never shrinks.
    fn init(&mut self) -> bool {
        self.ready = false;
        // Offset 0 is the null handle: a heap that may start there starts one word later.
        let lo = align_up(self.mem.heap_start().max(1));
        let meta_bytes = INITIAL_RECORDS as u64 * META_PER_REC;
        let size = self.mem.size();
        if lo + meta_bytes > size {
            let pages = (lo + meta_bytes - size).div_ceil(PAGE_SIZE);
            if !self.mem.grow(pages) {
                return false;
            }
        }
        self.lo = lo;
        self.end = self.mem.size();
        self.meta = lo as usize;
        self.cap = INITIAL_RECORDS;
        self.high_water = 0;
        self.unused_head = NIL;
        self.in_use = 0;
        self.hashed = 0;
        self.nonempty = [0; CLASSES / 64];
        self.first = NIL;
        self.last = NIL;
        self.clear_index();
        let m = self.new_rec(lo, meta_bytes, State::Internal);
        self.meta_rec = m;
        self.link_after(NIL, m);
        if self.end > lo + meta_bytes {
            self.append_free(lo + meta_bytes, self.end - lo - meta_bytes);
        }
        self.ready = true;
        true
    }

    fn ensure_ready(&mut self) -> bool {
        self.ready || self.init()
    }

    // ----- the record table ---------------------------------------------------------------

    /// Record `i` (which must be below the high-water mark).
    fn r(&self, i: u32) -> R {
        debug_assert!(i < self.high_water);
        R(self
            .mem
            .at(self.meta + i as usize * REC_BYTES as usize)
            .cast())
    }

    fn get(&self, i: u32, f: F) -> u32 {
        self.r(i).get(f)
    }

    fn put(&mut self, i: u32, f: F, v: u32) {
        self.r(i).set(f, v)
    }

    fn state(&self, i: u32) -> u32 {
        self.get(i, F::State)
    }

    fn size(&self, i: u32) -> u64 {
        self.get(i, F::Size) as u64
    }

    fn start(&self, i: u32) -> u64 {
        self.get(i, F::Start) as u64
    }

    /// Takes an unused record and fills it in: no links yet, nothing used.
    fn new_rec(&mut self, start: u64, size: u64, state: State) -> u32 {
        debug_assert!(self.in_use < self.cap, "record reserve broken");
        let i = if self.unused_head != NIL {
            let i = self.unused_head;
            self.unused_head = self.get(i, F::NextFree);
            i
        } else {
            self.high_water += 1;
            self.high_water - 1
        };
        self.in_use += 1;
        let r = self.r(i);
        r.set(F::Start, start as u32);
        r.set(F::Size, size as u32);
        r.set(F::Used, 0);
        r.set(F::State, state as u32);
        r.set(F::PrevPhys, NIL);
        r.set(F::NextPhys, NIL);
        r.set(F::PrevFree, NIL);
        r.set(F::NextFree, NIL);
        i
    }

    fn release_rec(&mut self, i: u32) {
        self.put(i, F::State, State::Unused as u32);
        self.put(i, F::NextFree, self.unused_head);
        self.unused_head = i;
        self.in_use -= 1;
    }

    // ----- the hash index of blocks in use ------------------------------------------------

    fn slots(&self) -> u64 {
        self.cap as u64 * SLOTS_PER_REC
    }

    fn slot_ptr(&self, k: u64) -> *mut u32 {
        debug_assert!(k < self.slots());
        self.mem
            .at(self.meta + self.cap as usize * REC_BYTES as usize + k as usize * 4)
            .cast()
    }

    fn slot(&self, k: u64) -> u32 {
        // SAFETY: `k < slots()`: the slot lies in the metadata block after the records,
        // 4-aligned because the block and the record area are 8-aligned.
        unsafe { self.slot_ptr(k).read() }
    }

    fn set_slot(&mut self, k: u64, v: u32) {
        // SAFETY: as in `slot`.
        unsafe { self.slot_ptr(k).write(v) }
    }

    fn clear_index(&mut self) {
        // SAFETY: the whole slot area of the metadata block, as in `slot`.
        unsafe { core::ptr::write_bytes(self.slot_ptr(0), 0, self.slots() as usize) }
    }

    /// Home slot of a block start (Fibonacci hashing of the 8-byte granule).
    fn home(&self, start: u32) -> u64 {
        let bits = self.slots().trailing_zeros();
        ((start >> 3).wrapping_mul(0x9E37_79B1) >> (32 - bits)) as u64
    }

    fn index_insert(&mut self, i: u32) {
        let mask = self.slots() - 1;
        let mut k = self.home(self.get(i, F::Start));
        while self.slot(k) != 0 {
            k = (k + 1) & mask;
        }
        self.set_slot(k, i + 1);
        self.hashed += 1;
    }

    /// The slot holding the block that starts at `h`, or [`NO_SLOT`]. (A scalar rather than
    /// an `Option`: see [`NO_SLOT`].)
    fn index_find(&self, h: u64) -> u64 {
        // An unready heap has `end == 0`: nothing is found.
        if !h.is_multiple_of(ALIGN) || h < self.lo || h >= self.end {
            return NO_SLOT;
        }
        let mask = self.slots() - 1;
        let mut k = self.home(h as u32);
        loop {
            match self.slot(k) {
                0 => return NO_SLOT,
                v if self.start(v - 1) == h => return k,
                _ => k = (k + 1) & mask,
            }
        }
    }

    /// The record a found slot `k` holds.
    fn rec_at(&self, k: u64) -> u32 {
        self.slot(k) - 1
    }

    /// The slot of the live block `h`, or [`NO_SLOT`] when `h` is not a live handle.
    fn live(&self, h: u64) -> u64 {
        let k = self.index_find(h);
        if k != NO_SLOT && self.state(self.rec_at(k)) == State::Live as u32 {
            k
        } else {
            NO_SLOT
        }
    }

    /// Removes slot `k`, shifting later members of its probe run back (no tombstones).
    fn index_remove(&mut self, mut k: u64) {
        let mask = self.slots() - 1;
        let mut j = k;
        loop {
            j = (j + 1) & mask;
            let v = self.slot(j);
            if v == 0 {
                break;
            }
            let home = self.home(self.get(v - 1, F::Start));
            // Move `v` into the hole unless its home lies cyclically in (k, j].
            let stays = if k <= j {
                k < home && home <= j
            } else {
                k < home || home <= j
            };
            if !stays {
                self.set_slot(k, v);
                k = j;
            }
        }
        self.set_slot(k, 0);
        self.hashed -= 1;
    }

    /// The record of the block in use that starts at `h`.
    #[cfg(any(test, feature = "check-invariants"))]
    fn find(&self, h: u64) -> Option<u32> {
        let k = self.index_find(h);
        (k != NO_SLOT).then(|| self.rec_at(k))
    }

    // ----- free lists ---------------------------------------------------------------------

    fn has_blocks(&self, c: usize) -> bool {
        self.nonempty[c / 64] & (1 << (c % 64)) != 0
    }

    fn insert_free(&mut self, i: u32) {
        let c = class_of(self.size(i));
        // A head whose bit is clear is stale (reset clears only the bitmap).
        let head = if self.has_blocks(c) {
            self.heads[c]
        } else {
            NIL
        };
        let r = self.r(i);
        r.set(F::State, State::Free as u32);
        r.set(F::PrevFree, NIL);
        r.set(F::NextFree, head);
        if head != NIL {
            self.put(head, F::PrevFree, i);
        }
        self.heads[c] = i;
        self.nonempty[c / 64] |= 1 << (c % 64);
    }

    fn remove_free(&mut self, i: u32) {
        let r = self.r(i);
        let c = class_of(r.get(F::Size) as u64);
        let (prev, next) = (r.get(F::PrevFree), r.get(F::NextFree));
        if prev != NIL {
            self.put(prev, F::NextFree, next);
        } else {
            self.heads[c] = next;
            if next == NIL {
                self.nonempty[c / 64] &= !(1 << (c % 64));
            }
        }
        if next != NIL {
            self.put(next, F::PrevFree, prev);
        }
    }

    /// A free block of at least `size` bytes if one exists without growing, else [`NIL`].
    fn find_free(&self, size: u64) -> u32 {
        // The head of the exact class may fit where the good-fit search would skip it.
        let c = class_of(size);
        if self.has_blocks(c) && self.size(self.heads[c]) >= size {
            return self.heads[c];
        }
        // Good fit: the first non-empty class from the one whose every block fits: at most
        // four bitmap words.
        let Some(c) = class_fitting(size) else {
            return NIL;
        };
        let mut w = c / 64;
        let mut bits = self.nonempty[w] & (u64::MAX << (c % 64));
        while bits == 0 {
            w += 1;
            match self.nonempty.get(w) {
                Some(&b) => bits = b,
                None => return NIL,
            }
        }
        self.heads[(w * 64 + bits.trailing_zeros() as usize) & (CLASSES - 1)]
    }

    // ----- blocks -------------------------------------------------------------------------

    /// Adds a free block at the physical top of the heap.
    fn append_free(&mut self, start: u64, size: u64) -> u32 {
        let i = self.new_rec(start, size, State::Free);
        self.link_after(self.last, i);
        self.insert_free(i);
        i
    }

    /// Puts record `i` into the physical chain right after `p` (`NIL`: at the bottom, which
    /// only `init` does, with an empty chain).
    fn link_after(&mut self, p: u32, i: u32) {
        let next = if p == NIL {
            NIL
        } else {
            self.get(p, F::NextPhys)
        };
        let r = self.r(i);
        r.set(F::PrevPhys, p);
        r.set(F::NextPhys, next);
        if p != NIL {
            self.put(p, F::NextPhys, i);
        } else {
            self.first = i;
        }
        if next != NIL {
            self.put(next, F::PrevPhys, i);
        } else {
            self.last = i;
        }
    }

    /// Grows memory by the pages a block of `size` bytes still needs at the top of the heap;
    /// returns a free block of at least `size` bytes, or [`NIL`] when memory cannot grow.
    /// Uses at most two new records.
    ///
    /// When the record table is the top of the heap, the table moves up instead, to the new
    /// end of memory, and the block is found below it: a block allocated above the table
    /// would keep it from doubling in place. The table moves by its own size at least when
    /// memory can grow so far, so that every move comes with as many new bytes (which
    /// `memory.grow` costs anyway): amortised O(1).
    fn grow_for(&mut self, size: u64) -> u32 {
        let top = self.last;
        let top_free = if self.state(top) == State::Free as u32 {
            self.size(top)
        } else {
            0
        };
        if top_free >= size {
            return top;
        }
        if self.state(top) == State::Internal as u32 {
            let table = self.cap as u64 * META_PER_REC;
            return match self.place_table(self.cap, size.max(table)) {
                NIL => self.place_table(self.cap, size),
                i => i,
            };
        }
        let pages = (size - top_free).div_ceil(PAGE_SIZE);
        let bytes = pages * PAGE_SIZE;
        if self.end + bytes > MAX_MEMORY || !self.mem.grow(pages) {
            return NIL;
        }
        let old_end = self.end;
        self.end += bytes;
        if top_free > 0 {
            self.remove_free(top);
            self.put(top, F::Size, (top_free + bytes) as u32);
            self.insert_free(top);
            top
        } else {
            self.append_free(old_end, bytes)
        }
    }

    /// A free block of at least `size` bytes, growing memory if none exists; [`NIL`] when
    /// memory cannot grow. Any `size` may be asked for: one that cannot fit finds no block and
    /// grows no memory. Uses at most two new records.
    fn fit(&mut self, size: u64) -> u32 {
        match self.find_free(size) {
            NIL => self.grow_for(size),
            i => i,
        }
    }

    /// Takes a live block of `size` bytes (a multiple of [`ALIGN`]) out of the free space,
    /// growing memory if needed, and indexes it; [`NIL`] when memory cannot grow. Uses at
    /// most two new records.
    fn take(&mut self, size: u64) -> u32 {
        let i = self.fit(size);
        if i == NIL {
            return NIL;
        }
        let i = self.carve(i, self.start(i), size, State::Live);
        self.index_insert(i);
        i
    }

    /// Makes `[at, at + size)` of the free block `i` a block in `state` (not indexed) and
    /// returns its record. The bytes before `at` stay free as a block of their own; those
    /// after the range too when they are at least [`MIN_SPLIT`], else they go with it. Uses
    /// a new record for each free part.
    fn carve(&mut self, i: u32, at: u64, size: u64, state: State) -> u32 {
        self.remove_free(i);
        let mut i = i;
        let front = at - self.start(i);
        if front > 0 {
            let rest = self.split(i, front);
            self.insert_free(i);
            i = rest;
        }
        if self.size(i) - size >= MIN_SPLIT {
            let rest = self.split(i, size);
            self.insert_free(rest);
        }
        self.put(i, F::State, state as u32);
        i
    }

    /// Cuts block `i` after its first `size` bytes; returns the record of the rest, linked
    /// after `i` and in no list.
    fn split(&mut self, i: u32, size: u64) -> u32 {
        let rest = self.new_rec(self.start(i) + size, self.size(i) - size, State::Free);
        self.link_after(i, rest);
        self.put(i, F::Size, size as u32);
        rest
    }

    /// Returns a block in use to the free space, merging it with free neighbours; returns
    /// the free block it is now part of.
    fn release(&mut self, i: u32) -> u32 {
        let mut i = i;
        let prev = self.get(i, F::PrevPhys);
        if prev != NIL && self.state(prev) == State::Free as u32 {
            self.remove_free(prev);
            self.absorb_next(prev);
            i = prev;
        }
        let next = self.get(i, F::NextPhys);
        if next != NIL && self.state(next) == State::Free as u32 {
            self.remove_free(next);
            self.absorb_next(i);
        }
        self.insert_free(i);
        i
    }

    /// Merges block `i`'s physical successor into `i` and drops the successor's record.
    fn absorb_next(&mut self, i: u32) {
        let r = self.r(i);
        let n = r.get(F::NextPhys);
        let rn = self.r(n);
        let after = rn.get(F::NextPhys);
        r.set(F::Size, r.get(F::Size) + rn.get(F::Size));
        r.set(F::NextPhys, after);
        if after != NIL {
            self.put(after, F::PrevPhys, i);
        } else {
            self.last = i;
        }
        self.release_rec(n);
    }

    /// Makes sure `alloc` has the records it may need, doubling the table if not.
    fn reserve(&mut self) -> bool {
        if self.cap - self.in_use >= RESERVE {
            return true;
        }
        match self.cap.checked_mul(2) {
            Some(cap) => self.place_table(cap, 0) != NIL,
            None => false,
        }
    }

    /// Moves the record table, with room for `cap` records, to the end of a free block that
    /// also holds `extra` bytes below it, and returns that block's record, which holds the
    /// bytes below the table when `extra > 0`; [`NIL`], and the table stays, when memory
    /// cannot grow enough. Uses at most two new records.
    ///
    /// The table's block is given back first, so that it merges with the free space beside
    /// it, and the new table is carved from the end of the first free block that fits,
    /// which may be that merged block, growing memory if none fits: the old table's bytes
    /// count towards the new one, and a table at the top of the heap grows by growing memory
    /// by only what it still lacks. Carved from the end, the table keeps the free space
    /// below it beside it, which allocations use from its other end. The records stay
    /// where they are until they are copied (nothing writes into free blocks); when nothing
    /// fits, the old table's range is carved out again, as it was.
    fn place_table(&mut self, cap: u32, extra: u64) -> u32 {
        // No size check: `fit` finds nothing and grows nothing for a size that cannot fit.
        let bytes = cap as u64 * META_PER_REC;
        let old = self.meta as u64;
        let old_size = self.cap as u64 * META_PER_REC;
        let merged = self.release(self.meta_rec);
        let i = self.fit(bytes + extra);
        if i == NIL {
            // `fit` changed nothing: `merged` still holds the old table's range.
            self.meta_rec = self.carve(merged, old, old_size, State::Internal);
            return NIL;
        }
        let at = self.start(i) + self.size(i) - bytes;
        let m = self.carve(i, at, bytes, State::Internal);
        let new_meta = self.start(m) as usize;
        // SAFETY: both ranges lie in `[lo, end)`, inside the memory; the old one still holds
        // the records (since the release, only records were written, at their old place), the
        // new one is the block just carved; `copy` allows them to overlap.
        unsafe {
            core::ptr::copy(
                self.mem.at(old as usize),
                self.mem.at(new_meta),
                (self.high_water as u64 * REC_BYTES) as usize,
            );
        }
        self.meta = new_meta;
        self.cap = cap;
        self.meta_rec = m;
        self.clear_index();
        self.hashed = 0;
        for j in 0..self.high_water {
            if self.state(j) == State::Live as u32 {
                self.index_insert(j);
            }
        }
        i
    }

    // ----- the public operations ----------------------------------------------------------

    /// A new block of exactly `n` usable bytes; `0` for `n == 0`, for sizes that cannot fit,
    /// or when memory cannot grow. O(1).
    pub fn alloc(&mut self, n: u64) -> u64 {
        if n == 0 || n > MAX_ALLOC || !self.ensure_ready() || !self.reserve() {
            return 0;
        }
        match self.take(align_up(n)) {
            NIL => 0,
            i => {
                self.put(i, F::Used, n as u32);
                self.start(i)
            }
        }
    }

    /// Frees the block `h`; `false` (and nothing changes) when `h` is not a live handle.
    pub fn free(&mut self, h: u64) -> bool {
        let k = self.live(h);
        if k == NO_SLOT {
            return false;
        }
        let i = self.rec_at(k);
        self.index_remove(k);
        self.release(i);
        true
    }

    /// The requested length of the live block `h`; `0` for any other value. O(1).
    pub fn length(&self, h: u64) -> u64 {
        match self.live(h) {
            NO_SLOT => 0,
            k => self.get(self.rec_at(k), F::Used) as u64,
        }
    }

    /// Whether `h` is a live handle.
    pub fn is_live(&self, h: u64) -> bool {
        self.live(h) != NO_SLOT
    }

    /// Forgets every block. O(1): see the module docs.
    pub fn reset(&mut self) {
        self.init();
    }

    /// Bytes under the heap's management (metadata included).
    pub fn memory_bytes(&self) -> u64 {
        self.end - self.lo
    }

    /// Whether `[p, p + w)` may be read and written by a plugin: inside the heap and clear of
    /// the metadata block.
    pub fn accessible(&self, p: u64, w: u64) -> bool {
        self.accessible_inline(p, w)
    }

    /// [`accessible`](Self::accessible), always inlined: for the word loads and stores a
    /// plugin makes once per 8 bytes it moves (as a call chain they made a 1 MiB echo 1.8x
    /// slower than upstream's kernel). The other callers share one outlined copy, to keep the
    /// module small.
    #[inline(always)]
    fn accessible_inline(&self, p: u64, w: u64) -> bool {
        let Some(e) = p.checked_add(w) else {
            return false;
        };
        let meta = self.meta as u64;
        let meta_end = meta + self.cap as u64 * META_PER_REC;
        // An unready heap has `end == 0`: nothing is accessible.
        p >= self.lo && e <= self.end && (e <= meta || p >= meta_end)
    }

    /// The address of byte `p`, if `[p, p + w)` is [`accessible`](Self::accessible). The
    /// pointer is valid for `w` bytes of reads and writes until the heap next changes.
    pub fn ptr(&self, p: u64, w: u64) -> Option<NonNull<u8>> {
        if self.accessible(p, w) {
            NonNull::new(self.mem.at(p as usize))
        } else {
            None
        }
    }

    /// The `w` bytes at `p`, if [`accessible`](Self::accessible).
    pub fn bytes(&self, p: u64, w: u64) -> Option<&[u8]> {
        let q = self.ptr(p, w)?.as_ptr();
        // SAFETY: `ptr` gives addresses of accessible ranges only, which lie inside the memory
        // the heap owns; the shared borrow of `self` keeps them from changing while the slice
        // lives.
        Some(unsafe { core::slice::from_raw_parts(q, w as usize) })
    }

    /// The `w` bytes at `p` for writing, if [`accessible`](Self::accessible).
    pub fn bytes_mut(&mut self, p: u64, w: u64) -> Option<&mut [u8]> {
        let q = self.ptr(p, w)?.as_ptr();
        // SAFETY: as in `bytes`; the exclusive borrow of `self` makes this the only access.
        Some(unsafe { core::slice::from_raw_parts_mut(q, w as usize) })
    }

    /// Reads `N` bytes at `p`; `None` when not accessible.
    pub fn load<const N: usize>(&self, p: u64) -> Option<[u8; N]> {
        let q = self.ptr(p, N as u64)?.as_ptr();
        // SAFETY: `ptr` checked that `N` bytes at `q` lie inside the memory; any alignment.
        Some(unsafe { q.cast::<[u8; N]>().read_unaligned() })
    }

    /// [`load`](Self::load) with the access check inlined (see
    /// [`accessible_inline`](Self::accessible_inline)).
    #[inline(always)]
    pub fn load_inline<const N: usize>(&self, p: u64) -> Option<[u8; N]> {
        if !self.accessible_inline(p, N as u64) {
            return None;
        }
        let q = self.mem.at(p as usize);
        // SAFETY: the `N` bytes at `q` are accessible, hence inside the memory; any alignment.
        Some(unsafe { q.cast::<[u8; N]>().read_unaligned() })
    }

    /// [`store`](Self::store) with the access check inlined.
    #[inline(always)]
    pub fn store_inline<const N: usize>(&mut self, p: u64, v: [u8; N]) {
        if self.accessible_inline(p, N as u64) {
            let q = self.mem.at(p as usize);
            // SAFETY: as in `load_inline`; `&mut self` makes this the only access.
            unsafe { q.cast::<[u8; N]>().write_unaligned(v) }
        }
    }

    /// Writes `N` bytes at `p`; `false` (and nothing written) when not accessible.
    pub fn store<const N: usize>(&mut self, p: u64, v: [u8; N]) -> bool {
        match self.ptr(p, N as u64) {
            // SAFETY: as in `load`; `&mut self` makes this the only access.
            Some(q) => unsafe { q.as_ptr().cast::<[u8; N]>().write_unaligned(v) },
            None => return false,
        }
        true
    }

    /// Number of live blocks plus the heap's own (the metadata block).
    pub fn blocks_in_use(&self) -> u32 {
        self.hashed + self.ready as u32
    }
}

#[cfg(any(test, feature = "check-invariants"))]
impl<M: Memory> Heap<M> {
    /// The bytes of the metadata block's records and hash index, which no load or store may
    /// reach (empty before the first operation).
    pub fn metadata(&self) -> core::ops::Range<u64> {
        let meta = self.meta as u64;
        meta..meta + self.cap as u64 * META_PER_REC
    }

    /// Bytes in free blocks.
    pub fn free_bytes(&self) -> u64 {
        let (mut i, mut free) = (if self.ready { self.first } else { NIL }, 0);
        while i != NIL {
            if self.state(i) == State::Free as u32 {
                free += self.size(i);
            }
            i = self.get(i, F::NextPhys);
        }
        free
    }

    /// All fields of record `i`, for the scanner.
    fn rec(&self, i: u32) -> Rec {
        let state = match self.state(i) {
            1 => State::Free,
            2 => State::Live,
            3 => State::Internal,
            _ => State::Unused,
        };
        Rec {
            start: self.get(i, F::Start),
            size: self.get(i, F::Size),
            used: self.get(i, F::Used),
            state,
            prev_phys: self.get(i, F::PrevPhys),
            next_phys: self.get(i, F::NextPhys),
            prev_free: self.get(i, F::PrevFree),
            next_free: self.get(i, F::NextFree),
        }
    }

    /// Walks every structure and returns the first broken invariant, if any: blocks tile
    /// `[lo, end)` in order with consistent links; no two free blocks touch; every free block
    /// is in the list of its class and every list holds only free blocks of that class; the
    /// bitmaps agree with the lists; the index holds exactly the live blocks, each where
    /// probing finds it; the metadata block is what the heap thinks it is; counts add up.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        if !self.ready {
            return Ok(());
        }
        if !self.lo.is_multiple_of(ALIGN) || self.end > MAX_MEMORY || self.end > self.mem.size() {
            return Err("heap bounds");
        }
        let mut i = self.first;
        let mut prev = NIL;
        let mut at = self.lo;
        let mut records = 0u32;
        let (mut free, mut used) = (0u32, 0u32);
        let mut prev_free = false;
        while i != NIL {
            if i >= self.high_water {
                return Err("link outside the record table");
            }
            let r = self.rec(i);
            if r.state != State::Unused && self.state(i) > State::Internal as u32 {
                return Err("record state out of range");
            }
            if r.start as u64 != at {
                return Err("blocks do not tile the heap");
            }
            if r.size == 0 || !(r.size as u64).is_multiple_of(ALIGN) {
                return Err("block size not a positive multiple of 8");
            }
            if r.prev_phys != prev {
                return Err("physical back link");
            }
            match r.state {
                State::Free => {
                    if prev_free {
                        return Err("two free neighbours (coalescing broken)");
                    }
                    free += 1;
                    if self.find(r.start as u64).is_some() {
                        return Err("free block in the index");
                    }
                }
                State::Internal => {
                    if i != self.meta_rec || self.find(r.start as u64).is_some() {
                        return Err("internal block other than the metadata, or indexed");
                    }
                }
                State::Live => {
                    used += 1;
                    if r.used == 0 || r.used > r.size {
                        return Err("live length out of range");
                    }
                    if r.size as u64 - align_up(r.used as u64) >= MIN_SPLIT {
                        return Err("live block keeps an excess it should have split");
                    }
                    if self.find(r.start as u64) != Some(i) {
                        return Err("live block missing from the index");
                    }
                }
                State::Unused => return Err("unused record in the chain"),
            }
            prev_free = r.state == State::Free;
            at = r.start as u64 + r.size as u64;
            records += 1;
            prev = i;
            i = r.next_phys;
            if records > self.high_water {
                return Err("cycle in the physical chain");
            }
        }
        if prev != self.last || at != self.end {
            return Err("chain does not end at the heap's end");
        }
        if used != self.hashed || records != self.in_use {
            return Err("counts disagree");
        }
        let mut listed = 0u32;
        for c in 0..CLASSES {
            if !self.has_blocks(c) {
                continue;
            }
            let mut j = self.heads[c];
            if j == NIL {
                return Err("bitmap and lists disagree");
            }
            let mut back = NIL;
            while j != NIL {
                let r = self.rec(j);
                if r.state != State::Free || class_of(r.size as u64) != c {
                    return Err("free list holds a wrong block");
                }
                if r.prev_free != back {
                    return Err("free list back link");
                }
                listed += 1;
                if listed > free {
                    return Err("free lists longer than the free blocks");
                }
                back = j;
                j = r.next_free;
            }
        }
        if listed != free {
            return Err("a free block is in no list");
        }
        let mut unused = 0;
        let mut j = self.unused_head;
        while j != NIL {
            if j >= self.high_water || self.rec(j).state != State::Unused {
                return Err("unused-record list");
            }
            unused += 1;
            j = self.rec(j).next_free;
            if unused > self.high_water {
                return Err("cycle in the unused-record list");
            }
        }
        if unused + self.in_use != self.high_water || self.high_water > self.cap {
            return Err("record table counts");
        }
        let m = self.rec(self.meta_rec);
        if m.state != State::Internal
            || m.start as usize != self.meta
            || (m.size as u64) < self.cap as u64 * META_PER_REC
        {
            return Err("metadata block");
        }
        let occupied = (0..self.slots()).filter(|&k| self.slot(k) != 0).count();
        if occupied != self.hashed as usize || self.hashed as u64 * 2 > self.slots() {
            return Err("index occupancy");
        }
        Ok(())
    }
}

/// A record's fields, read at once by the invariant scanner.
#[cfg(any(test, feature = "check-invariants"))]
#[derive(Clone, Copy, Debug)]
struct Rec {
    start: u32,
    size: u32,
    used: u32,
    state: State,
    prev_phys: u32,
    next_phys: u32,
    prev_free: u32,
    next_free: u32,
}

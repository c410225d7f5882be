//! Native tests of the allocator and the slots: the ABI's rules, one regression test per
//! upstream defect and per bug in upstream's history, and the shared action generator driven
//! by a seed and by proptest, with the invariant scanner after every operation.

use crate::testing::Rng;
use crate::testing::{Action, Driver, Runner, SplitMix64, Value, VecRng};
use crate::{Kernel, Memory, PAGE_SIZE, VecMemory};
use core::cell::Cell;
use proptest::prelude::*;
use std::string::String;
use std::vec::Vec;

/// A kernel like the core module's: one page, the heap above 16 KiB of "data and stack".
fn kernel() -> Kernel<VecMemory> {
    Kernel::new(VecMemory::new(1, 1024, 16 * 1024))
}

fn checked<M: Memory>(k: &Kernel<M>) {
    k.heap().check_invariants().expect("invariants");
}

// The contract suite (KERNEL-ABI.md), shared with the built core module and the component.
crate::contract_suite!(contract, kernel);

/// A memory that counts the heap's accesses to it: the heap reaches memory only through
/// [`Memory::at`], once for each record whose fields it reads or writes, each hash slot, and
/// each bulk operation (clearing the index, copying the record table), and never touches the
/// bytes of a block. The count is the number of places an operation touches.
///
/// Made with [`unbacked`](Self::unbacked), it grows by pages that only `size()` knows about,
/// so a test can grow a heap to a gigabyte without allocating one. That is honest only as long
/// as the heap touches nothing but its metadata: `at` never hands out a pointer less than
/// [`SLACK`](Self::SLACK) bytes before the end of the real buffer and panics instead, so a
/// heap that wrote into a block, or a reset that cleared memory, would fail the test rather
/// than reach memory that is not there.
#[derive(Debug)]
struct CountingMemory {
    backing: VecMemory,
    /// Bytes grown into without backing, above the buffer.
    unbacked: u64,
    /// The page limit of unbacked growth; `None`: growth is the buffer's.
    unbacked_max_pages: Option<u64>,
    touches: Cell<u64>,
}

impl CountingMemory {
    /// What the heap may reach from a pointer of an unbacked memory: more than the initial
    /// metadata block (the only one the tests of unbacked memories ever have), its largest
    /// bulk operation.
    const SLACK: u64 = PAGE_SIZE;

    /// A counting [`VecMemory`].
    fn backed(initial_pages: u64, max_pages: u64, heap_start: u64) -> Self {
        CountingMemory {
            backing: VecMemory::new(initial_pages, max_pages, heap_start),
            unbacked: 0,
            unbacked_max_pages: None,
            touches: Cell::new(0),
        }
    }

    /// `pages` of buffer, then growth without backing up to `max_pages`.
    fn unbacked(pages: u64, max_pages: u64, heap_start: u64) -> Self {
        CountingMemory {
            backing: VecMemory::new(pages, pages, heap_start),
            unbacked: 0,
            unbacked_max_pages: Some(max_pages),
            touches: Cell::new(0),
        }
    }

    /// Calls to `at` so far.
    fn touches(&self) -> u64 {
        self.touches.get()
    }
}

// SAFETY: backed, every method forwards to `VecMemory`, which keeps the contract. Unbacked,
// `size()` also counts bytes without a buffer, so `at(off)` cannot promise `size() - off`
// valid bytes: it promises `SLACK` of them, panicking rather than hand out any other
// pointer, and the heap never reaches further than its metadata block's size from a pointer
// `at` gave it (a record, a slot, or the index and the table in bulk), which the tests of
// unbacked memories keep at the initial 1280 bytes, below `SLACK`. Unbacked growth changes no
// byte of the buffer.
unsafe impl Memory for CountingMemory {
    fn heap_start(&self) -> u64 {
        self.backing.heap_start()
    }

    fn size(&self) -> u64 {
        self.backing.size() + self.unbacked
    }

    fn grow(&mut self, pages: u64) -> bool {
        let Some(max_pages) = self.unbacked_max_pages else {
            return self.backing.grow(pages);
        };
        match (self.size() / PAGE_SIZE).checked_add(pages) {
            Some(total) if total <= max_pages => {
                self.unbacked += pages * PAGE_SIZE;
                true
            }
            _ => false,
        }
    }

    fn at(&self, off: usize) -> *mut u8 {
        self.touches.set(self.touches.get() + 1);
        if self.unbacked_max_pages.is_some() {
            assert!(
                off as u64 + Self::SLACK <= self.backing.size(),
                "the heap touched byte {off}, beyond its metadata"
            );
        }
        self.backing.at(off)
    }
}

#[test]
fn alloc_fails_cleanly_when_memory_cannot_grow_and_stays_usable() {
    let mut k = Kernel::new(VecMemory::new(1, 4, 0));
    let mut got = Vec::new();
    loop {
        let h = k.alloc(50_000);
        if h == 0 {
            break;
        }
        got.push(h);
    }
    assert_eq!(
        got.len(),
        5,
        "4 pages hold five 50 000-byte blocks beside the metadata"
    );
    checked(&k);
    assert_ne!(k.alloc(100), 0, "small blocks still fit in what is left");
    k.reset();
    assert_eq!(k.alloc(50_000), got[0]);
    checked(&k);
}

// ----- upstream defects (KERNEL-ABI.md) ---------------------------------------------------

#[test]
fn bound_is_exclusive_at_memory_end() {
    let mut k = kernel();
    let _ = k.alloc(1);
    let end = k.heap().memory().size();
    k.store_u8(end - 1, 0xAB);
    assert_eq!(k.load_u8(end - 1), 0xAB);
    k.store_u8(end, 1);
    assert_eq!(k.load_u8(end), 0);
    assert_eq!(k.load_u64(end - 7), 0);
    k.store_u64(end - 7, u64::MAX);
    assert_eq!(
        k.load_u8(end - 1),
        0xAB,
        "a refused word store writes nothing"
    );
    assert_eq!(
        k.load_u64(u64::MAX - 3),
        0,
        "no overflow in the bound check"
    );
    k.store_u64(u64::MAX - 3, 1);
    checked(&k);
}

/// Mean memory touches (see [`CountingMemory`]) per call of `length` on each of `n` live
/// blocks of 1 to 64 bytes, of `length` on a value near each (a handle or not), and of `free`
/// on every other block; every answer is checked to be exact.
fn length_and_free_touches(n: u64) -> [f64; 3] {
    let mut k = Kernel::new(CountingMemory::backed(1, 1 << 14, 0));
    let hs: Vec<u64> = (0..n).map(|i| k.alloc(1 + i % 64)).collect();
    let mut sorted = hs.clone();
    sorted.sort_unstable();
    let touches = |k: &Kernel<CountingMemory>| k.heap().memory().touches();
    let mut t = touches(&k);
    let mut per_call = |k: &Kernel<CountingMemory>, calls: u64| {
        let now = touches(k);
        let mean = (now - t) as f64 / calls as f64;
        t = now;
        mean
    };
    for (i, &h) in hs.iter().enumerate() {
        assert_eq!(k.length(h), 1 + i as u64 % 64);
    }
    let length = per_call(&k, n);
    for (i, &h) in hs.iter().enumerate() {
        let near = h + 8 * (1 + i as u64 % 3);
        assert_eq!(k.length(near) == 0, sorted.binary_search(&near).is_err());
    }
    let near = per_call(&k, n);
    for &h in hs.iter().step_by(2) {
        k.free(h);
    }
    let free = per_call(&k, n.div_ceil(2));
    checked(&k);
    [length, near, free]
}

#[test]
fn length_and_free_do_not_walk_blocks() {
    // Upstream's `length` and `free` walk every block. Ours probe the hash index: the records
    // and slots they touch do not grow with the number of blocks (a walk would touch 100
    // times more at 100k blocks than at 1k). Only the index's fill, which varies between its
    // doublings, moves the mean probe length a little. The timing itself is `make bench`'s.
    let small = length_and_free_touches(1_000);
    let large = length_and_free_touches(100_000);
    for (what, s, l) in [
        ("length of a handle", small[0], large[0]),
        ("length near a handle", small[1], large[1]),
        ("free", small[2], large[2]),
    ] {
        assert!(
            l <= s + 1.0,
            "{what}: {s:.2} touches a call at 1k blocks, {l:.2} at 100k"
        );
    }
}

#[test]
fn churn_does_not_balloon_memory() {
    // Upstream reuses freed blocks only before growing and never merges them: about 6.6x
    // its peak live bytes on a churn like this one. Ours must stay within 1.3x.
    let mut k = Kernel::new(VecMemory::new(1, 1 << 14, 0));
    let mut rng = SplitMix64(7);
    let mut live: Vec<(u64, u64)> = Vec::new();
    let (mut live_bytes, mut peak) = (0u64, 0u64);
    for _ in 0..200_000 {
        if live.len() < 300 || rng.below(2) == 0 {
            let max = if rng.below(4) == 0 { 65536 } else { 512 };
            let n = 1 + rng.below(max);
            let h = k.alloc(n);
            assert_ne!(
                h,
                0,
                "live {} peak {peak} memory {}",
                live.len(),
                k.memory_bytes()
            );
            live.push((h, n));
            live_bytes += n;
            peak = peak.max(live_bytes);
        } else {
            let (h, n) = live.swap_remove(rng.below(live.len() as u64) as usize);
            k.free(h);
            live_bytes -= n;
        }
    }
    checked(&k);
    let ratio = k.memory_bytes() as f64 / peak as f64;
    assert!(
        ratio <= 1.3,
        "memory {} for peak {peak}: {ratio:.2}x",
        k.memory_bytes()
    );
}

#[test]
fn handle_zero_is_never_handed_out_when_memory_starts_the_heap() {
    // Found by the churn test: with the heap at offset 0, the first metadata block sat at 0
    // and, once the table moved, the block made of its bytes was handed out as handle 0.
    let mut k = Kernel::new(VecMemory::new(1, 64, 0));
    let hs: Vec<u64> = (0..200).map(|_| k.alloc(8)).collect();
    for h in &hs {
        k.free(*h);
    }
    for _ in 0..200 {
        assert_ne!(k.alloc(8), 0);
    }
    checked(&k);
}

#[test]
fn heap_starts_at_heap_base_not_in_the_stack() {
    let mut k = kernel();
    let h = k.alloc(1);
    assert!(h >= 16 * 1024, "handle {h} below the heap start");
    for p in [0, 1, 100, 16 * 1024 - 8] {
        k.store_u64(p, u64::MAX);
        assert_eq!(k.load_u64(p), 0, "below the heap start is not accessible");
    }
}

#[test]
fn metadata_cannot_be_overwritten_by_stores() {
    let mut k = kernel();
    let hs: Vec<u64> = (0..100).map(|i| k.alloc(10 + i)).collect();
    let end = k.heap().memory().size();
    // Store over every byte a plugin can reach, as a hostile plugin would.
    let mut p = 0;
    while p < end {
        k.store_u64(p, 0xDEAD_BEEF_DEAD_BEEF);
        k.store_u8(p, 0xFF);
        p += 1;
    }
    checked(&k);
    for (i, &h) in hs.iter().enumerate() {
        assert_eq!(k.length(h), 10 + i as u64);
    }
    for &h in &hs {
        k.free(h);
    }
    checked(&k);
}

#[test]
fn metadata_is_out_of_reach_in_every_build() {
    // A `bounds-checking` feature used to turn the metadata check off: stores then reached the
    // records and hash slots, and a corrupted slot indexed outside the record table (undefined
    // behaviour natively, from safe calls). Every build now refuses the whole block.
    let mut k = kernel();
    let hs: Vec<u64> = (0..100).map(|i| k.alloc(10 + i)).collect();
    let meta = k.heap().metadata();
    assert!(meta.start >= 16 * 1024 && meta.end <= k.heap().memory().size());
    let snapshot = |k: &Kernel<VecMemory>| -> Vec<u8> {
        let len = (meta.end - meta.start) as usize;
        // SAFETY: the metadata block lies inside the memory (asserted above), so by `Memory`'s
        // contract `len` bytes from its start are initialised; the shared borrow of the kernel
        // keeps them unchanged while the slice is copied.
        unsafe { std::slice::from_raw_parts(k.heap().memory().at(meta.start as usize), len) }
            .to_vec()
    };
    let before = snapshot(&k);
    for p in meta.start - 7..meta.end {
        k.store_u8(p, 0xFF);
        k.store_u64(p, u64::MAX);
        assert!(!k.heap_mut().store(p, [0xEE; 8]), "store_u64 at {p}");
        assert_eq!(k.load_u64(p), 0, "load_u64 at {p}");
        if p >= meta.start {
            assert_eq!(k.load_u8(p), 0, "load_u8 at {p}");
            assert!(k.heap().bytes(p, 1).is_none(), "host view of {p}");
        }
        k.input_set(p, 8);
        k.output_set(p, 8);
        assert_eq!(
            (k.input_length(), k.output_length()),
            (0, 0),
            "slots over {p}"
        );
    }
    assert!(snapshot(&k) == before, "a store changed the metadata");
    checked(&k);
    for (i, &h) in hs.iter().enumerate() {
        assert_eq!(k.length(h), 10 + i as u64);
    }
}

/// Memory touches (see [`CountingMemory`]) of one `reset`, which must keep the memory and
/// leave only the metadata block.
fn reset_touches(k: &mut Kernel<CountingMemory>) -> u64 {
    let grown = k.memory_bytes();
    let before = k.heap().memory().touches();
    k.reset();
    let touches = k.heap().memory().touches() - before;
    checked(k);
    assert_eq!(k.memory_bytes(), grown, "memory is kept, not returned");
    assert_eq!(k.heap().blocks_in_use(), 1, "only the metadata block");
    touches
}

#[test]
fn reset_cost_is_independent_of_memory_ever_grown() {
    // Upstream's reset zeroed every byte ever used. Ours lays out a fixed-size table: it
    // touches the same records and slots whatever the heap held or grew to.
    let mut counts = Vec::new();
    for n in [1_000, 100_000] {
        let mut k = Kernel::new(CountingMemory::backed(1, 1 << 14, 0));
        for i in 0..n {
            assert_ne!(k.alloc(1 + i % 64), 0);
        }
        counts.push(reset_touches(&mut k));
    }
    // A gigabyte, without a gigabyte of buffer: the heap touches only its metadata, so pages
    // it grows into need no backing (`CountingMemory` panics if the heap touched one).
    let mut k = Kernel::new(CountingMemory::unbacked(2, 1 << 16, 1024));
    for _ in 0..4 {
        assert_ne!(k.alloc(256 << 20), 0);
    }
    assert!(k.memory_bytes() >= 1 << 30);
    assert_eq!(k.heap().metadata().end - k.heap().metadata().start, 1280);
    counts.push(reset_touches(&mut k));
    assert!(
        counts.iter().all(|&c| c == counts[0]),
        "reset touches {counts:?} at 1k blocks, 100k blocks, 1 GiB"
    );
}

#[test]
fn record_table_grows_while_memory_is_free() {
    // Growing the record table took a free block twice the table's size and freed the old
    // table only after copying it, so near the memory limit `alloc(8)` failed with up to
    // twice the table's size still free (and memory held three times the table at the
    // copy): at one page, after 506 blocks, with 40 976 bytes free beside a 20 480-byte
    // table. Now the old table's bytes and the free space beside it count towards the new
    // table, and a table at the top doubles by growing memory by what it lacks, so
    // `alloc(8)` fails only when fewer bytes are left, free or not yet grown into, than the
    // doubled table adds (or than the 8 bytes).
    for pages in 1..=48 {
        let mut k = Kernel::new(VecMemory::new(1, pages, 0));
        let mut hs = Vec::new();
        loop {
            match k.alloc(8) {
                0 => break,
                h => hs.push(h),
            }
        }
        checked(&k);
        let table = k.heap().metadata().end - k.heap().metadata().start;
        let free = k.heap().free_bytes();
        let ungrown = pages * PAGE_SIZE - k.heap().memory().size();
        assert!(
            free + ungrown < table + 8,
            "{pages} pages: alloc(8) failed after {} blocks with {free} bytes free and \
             {ungrown} to grow into, beside a table of {table}",
            hs.len()
        );
        // The table that could not grow is intact: freeing blocks makes room again.
        for h in hs.drain(hs.len() - 8..) {
            k.free(h);
        }
        assert_ne!(k.alloc(8), 0, "{pages} pages: alloc(8) after frees");
        checked(&k);
    }
}

// ----- upstream's bug history -------------------------------------------------------------

#[test]
fn zero_length_blocks_are_never_handed_out() {
    let mut k = kernel();
    assert_eq!(k.alloc(0), 0);
    let h = k.alloc(1);
    assert_eq!(k.length(h), 1);
}

#[test]
fn growth_near_page_multiple_terminates() {
    for n in [
        65536 - 8,
        65536,
        65536 + 8,
        2 * 65536 - 1,
        2 * 65536,
        2 * 65536 + 1,
    ] {
        let mut k = Kernel::new(VecMemory::new(1, 64, 0));
        let size = k.heap().memory().size();
        let h = k.alloc(n);
        assert_ne!(h, 0, "alloc({n})");
        assert_eq!(k.length(h), n);
        let grown = k.heap().memory().size() - size;
        assert!(
            grown <= (n.div_ceil(PAGE_SIZE) + 1) * PAGE_SIZE,
            "grew {grown} for {n}"
        );
        checked(&k);
    }
}

#[test]
fn page_count_rounds_up_not_down() {
    let mut k = Kernel::new(VecMemory::new(1, 64, 0));
    let free_top = k.heap().memory().size() - 2048;
    let h = k.alloc(free_top + 1);
    assert_ne!(h, 0);
    k.store_u8(h + free_top, 7);
    assert_eq!(k.load_u8(h + free_top), 7, "the last byte is inside memory");
    checked(&k);
}

#[test]
fn split_never_overwrites_a_neighbour() {
    let mut k = kernel();
    let a = k.alloc(1000);
    let b = k.alloc(16);
    k.store_u64(b, 0x1122_3344_5566_7788);
    k.free(a);
    let c = k.alloc(100);
    let d = k.alloc(200);
    assert!(c + 100 <= d || d + 200 <= c);
    assert_eq!(k.load_u64(b), 0x1122_3344_5566_7788);
    assert_eq!(k.length(b), 16);
    checked(&k);
}

#[test]
fn growth_counts_the_whole_block_at_a_page_end() {
    // Fill the heap to a few bytes short of the page end, then ask for a block that fits in
    // those bytes only without its bookkeeping; upstream's growth ignored the header here.
    let mut k = Kernel::new(VecMemory::new(1, 64, 0));
    let top = k.heap().memory().size();
    let a = k.alloc(8);
    let fill = top - (a + 8) - 16;
    let f = k.alloc(fill);
    assert_ne!(f, 0);
    let h = k.alloc(24);
    assert_ne!(h, 0);
    assert!(h + 24 <= k.heap().memory().size());
    checked(&k);
}

#[test]
fn bound_check_does_not_overflow_at_large_memory() {
    let mut k = Kernel::new(VecMemory::new(1, 64, 0));
    let _ = k.alloc(1);
    for p in [
        u64::MAX,
        u64::MAX - 7,
        u64::MAX - 8,
        (1 << 32) - 1,
        1 << 32,
        u64::MAX - (1 << 32) + 1,
    ] {
        assert_eq!(k.load_u64(p), 0);
        assert_eq!(k.load_u8(p), 0);
        k.store_u64(p, 1);
        k.input_set(p, 16);
        k.output_set(p, u64::MAX);
    }
    assert_eq!(k.input_length(), 0);
    assert_eq!(k.output_length(), 0);
    checked(&k);
}

#[test]
fn metadata_growth_keeps_every_block() {
    let mut k = kernel();
    let hs: Vec<u64> = (0..5000).map(|i| k.alloc(1 + i % 17)).collect();
    checked(&k);
    for (i, &h) in hs.iter().enumerate() {
        assert_eq!(k.length(h), 1 + i as u64 % 17);
    }
}

// ----- the shared generator: seeded stress and proptest -----------------------------------

#[test]
fn seeded_actions_keep_the_model() {
    for seed in 0..8 {
        let mut k = Kernel::new(VecMemory::new(1, 256, 4096));
        let mut r = Runner {
            max_live: 300,
            full_check_every: 97,
            ..Runner::default()
        };
        r.run(&mut k, &mut SplitMix64(seed), 4000)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn hostile_values_never_break_the_heap() {
    let mut k = kernel();
    let mut r = Runner::default();
    for v in [
        Value::Raw(u64::MAX),
        Value::Raw(0),
        Value::Raw(1),
        Value::Raw(16 * 1024),
        Value::MemoryEnd(0),
        Value::MemoryEnd(1),
        Value::MemoryEnd(8),
    ] {
        for a in [
            Action::Free(v),
            Action::StoreU64(v, u64::MAX),
            Action::StoreU8(v, 1),
            Action::LoadU64(v),
            Action::InputSet(v, 9),
            Action::OutputSet(v, 1 << 40),
            Action::ErrorSet(v),
            Action::Alloc(24, 3),
            Action::Free(Value::Live(0)),
        ] {
            r.step(&mut k, a).unwrap();
        }
    }
}

/// A kernel whose loads read any byte inside the memory, as upstream's unchecked loads do,
/// while its stores keep to the accessible heap: the allocator's metadata leaks to reads.
struct LeakyLoads(Kernel<VecMemory>);

impl LeakyLoads {
    fn raw(&self, p: u64, w: u64) -> u64 {
        let mem = self.0.heap().memory();
        if p.checked_add(w).is_none_or(|e| e > mem.size()) {
            return 0;
        }
        let mut word = [0u8; 8];
        // SAFETY: `[p, p + w)` lies inside the memory, and by `Memory`'s contract `at(p)`
        // points to `size() - p` initialised bytes; the shared borrow keeps them unchanged.
        let bytes = unsafe { std::slice::from_raw_parts(mem.at(p as usize), w as usize) };
        word[..w as usize].copy_from_slice(bytes);
        u64::from_le_bytes(word)
    }
}

impl Driver for LeakyLoads {
    fn alloc(&mut self, n: u64) -> u64 {
        self.0.alloc(n)
    }
    fn free(&mut self, h: u64) {
        self.0.free(h)
    }
    fn length(&mut self, h: u64) -> u64 {
        self.0.length(h)
    }
    fn length_unsafe(&mut self, h: u64) -> u64 {
        self.0.length_unsafe(h)
    }
    fn load_u8(&mut self, p: u64) -> u8 {
        self.raw(p, 1) as u8
    }
    fn load_u64(&mut self, p: u64) -> u64 {
        self.raw(p, 8)
    }
    fn store_u8(&mut self, p: u64, x: u8) {
        self.0.store_u8(p, x)
    }
    fn store_u64(&mut self, p: u64, x: u64) {
        self.0.store_u64(p, x)
    }
    fn input_load_u8(&mut self, offset: u64) -> u8 {
        self.0.input_load_u8(offset)
    }
    fn input_load_u64(&mut self, offset: u64) -> u64 {
        self.0.input_load_u64(offset)
    }
    fn input_set(&mut self, h: u64, len: u64) {
        self.0.input_set(h, len)
    }
    fn output_set(&mut self, p: u64, len: u64) {
        self.0.output_set(p, len)
    }
    fn input_length(&mut self) -> u64 {
        self.0.input_length()
    }
    fn input_offset(&mut self) -> u64 {
        self.0.input_offset()
    }
    fn output_length(&mut self) -> u64 {
        self.0.output_length()
    }
    fn output_offset(&mut self) -> u64 {
        self.0.output_offset()
    }
    fn reset(&mut self) {
        self.0.reset()
    }
    fn error_set(&mut self, h: u64) {
        self.0.error_set(h)
    }
    fn error_get(&mut self) -> u64 {
        self.0.error_get()
    }
    fn memory_bytes(&mut self) -> u64 {
        self.0.memory_bytes()
    }
    fn read(&mut self, h: u64, len: u64) -> Vec<u8> {
        Driver::read(&mut self.0, h, len)
    }
    fn write(&mut self, h: u64, data: &[u8]) {
        Driver::write(&mut self.0, h, data)
    }
    fn memory_size(&mut self) -> u64 {
        Driver::memory_size(&mut self.0)
    }
    fn check(&mut self) -> Result<(), String> {
        Driver::check(&mut self.0)
    }
}

#[test]
fn shadow_model_catches_reads_of_the_metadata() {
    // The model checked loads outside live blocks only past the memory's end, so a kernel
    // that let plugins read its records and hash index passed every test.
    let leaky = || LeakyLoads(Kernel::new(VecMemory::new(1, 64, 16 * 1024)));
    let mut d = leaky();
    let mut r = Runner::default();
    r.step(&mut d, Action::Alloc(10, 1)).unwrap();
    let e = r.step(&mut d, Action::LoadMetadata(0)).unwrap_err();
    assert!(e.contains("may not write"), "{e}");
    // The shared generator finds it too, on every seed (it draws `LoadMetadata` and loads
    // near blocks and the memory's end); the honest kernel passes the same actions. (2000
    // actions until the bulk actions took half of the `Reset` draws; 5000 since.)
    for seed in 0..8 {
        let mut r = Runner::default();
        let e = r
            .run(&mut leaky(), &mut SplitMix64(seed), 5000)
            .unwrap_err();
        assert!(e.contains("may not write"), "seed {seed}: {e}");
        let mut k = Kernel::new(VecMemory::new(1, 64, 16 * 1024));
        Runner::default()
            .run(&mut k, &mut SplitMix64(seed), 5000)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn proptest_actions_keep_the_model(values in proptest::collection::vec(any::<u64>(), 1..600)) {
        let mut k = Kernel::new(VecMemory::new(1, 64, 1024));
        let mut rng = VecRng(values.clone(), 0);
        let mut r = Runner::default();
        r.run(&mut k, &mut rng, values.len() as u64 / 2).map_err(TestCaseError::fail)?;
    }
}

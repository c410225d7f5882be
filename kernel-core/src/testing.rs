//! One action generator and one shadow model for every test of the kernel.
//!
//! [`Action`]s are drawn from any stream of `u64`s ([`Rng`]): a seeded [`SplitMix64`] for the
//! stress tests, the fuzzer's bytes ([`ByteRng`]) for the fuzz target, proptest's vectors for
//! the property tests. A [`Runner`] applies them to a [`Driver`] (the native [`Kernel`], the
//! built core module, the component) and checks each answer against its [`Shadow`] model:
//! every live block keeps its length and bytes unless an action wrote them, no two live
//! blocks overlap, values that are not live handles are refused, nothing outside the heap is
//! reachable, a load reads nothing a store could not change (so the allocator's metadata
//! reads as 0), and the driver's own invariant check holds after every action.

use crate::io::Kernel;
use crate::memory::Memory;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

macro_rules! driver_trait {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        /// A kernel under test, whatever form it takes. The raw exports, one method each
        /// (generated from the ABI table), then the host's own view of the kernel.
        pub trait Driver {
            $( $(#[$doc])* fn $name(&mut self, $($arg: $ty),*) $(-> $ret)?; )*
            /// The host's own view of the first `len` bytes of the live block `h` (not
            /// through `load_u8`).
            fn read(&mut self, h: u64, len: u64) -> Vec<u8>;
            /// The host writing `data` into a live block at `h`, as a host copies an input in.
            fn write(&mut self, h: u64, data: &[u8]);
            /// Size of the kernel's memory in bytes.
            fn memory_size(&mut self) -> u64;
            /// The allocator's invariant scanner, where the driver can run it.
            fn check(&mut self) -> Result<(), String> {
                Ok(())
            }
            /// The copying interface's `alloc-bytes`, where the kernel form has one (the
            /// native kernel, the component); `None` where it has none (the core module).
            fn bulk_alloc_bytes(&mut self, _data: &[u8]) -> Option<Result<u64, crate::Error>> {
                None
            }
            /// The copying interface's `read` (see [`bulk_alloc_bytes`](Self::bulk_alloc_bytes)).
            fn bulk_read(
                &mut self,
                _h: u64,
                _offset: u64,
                _len: u64,
            ) -> Option<Result<Vec<u8>, crate::Error>> {
                None
            }
            /// The copying interface's `write` (see [`bulk_alloc_bytes`](Self::bulk_alloc_bytes)).
            fn bulk_write(
                &mut self,
                _h: u64,
                _offset: u64,
                _data: &[u8],
            ) -> Option<Result<(), crate::Error>> {
                None
            }
        }
    };
}
kernel_abi::for_each_kernel_function!(driver_trait);

macro_rules! kernel_methods {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        $( fn $name(&mut self, $($arg: $ty),*) $(-> $ret)? { Kernel::$name(self, $($arg),*) } )*
    };
}

impl<M: Memory> Driver for Kernel<M> {
    kernel_abi::for_each_kernel_function!(kernel_methods);
    fn read(&mut self, h: u64, len: u64) -> Vec<u8> {
        self.heap()
            .bytes(h, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }
    fn write(&mut self, h: u64, data: &[u8]) {
        if let Some(b) = self.heap_mut().bytes_mut(h, data.len() as u64) {
            b.copy_from_slice(data);
        }
    }
    fn memory_size(&mut self) -> u64 {
        self.heap().memory().size()
    }
    fn check(&mut self) -> Result<(), String> {
        self.heap().check_invariants().map_err(String::from)
    }
    fn bulk_alloc_bytes(&mut self, data: &[u8]) -> Option<Result<u64, crate::Error>> {
        Some(self.alloc_bytes(data))
    }
    fn bulk_read(
        &mut self,
        h: u64,
        offset: u64,
        len: u64,
    ) -> Option<Result<Vec<u8>, crate::Error>> {
        Some(Kernel::read(self, h, offset, len).map(<[u8]>::to_vec))
    }
    fn bulk_write(&mut self, h: u64, offset: u64, data: &[u8]) -> Option<Result<(), crate::Error>> {
        Some(Kernel::write(self, h, offset, data))
    }
}

/// A stream of `u64`s to draw actions from.
pub trait Rng {
    /// The next value.
    fn next_u64(&mut self) -> u64;
    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The SplitMix64 generator: a seeded stream for reproducible stress tests.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A fuzzer's bytes as a stream, eight at a time; zeros once they run out.
#[derive(Debug, Clone)]
pub struct ByteRng<'a>(pub &'a [u8]);

impl ByteRng<'_> {
    /// Whether every byte has been used.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Rng for ByteRng<'_> {
    fn next_u64(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }
}

/// Proptest's (or any) vector of values as a stream, cycling.
#[derive(Debug, Clone)]
pub struct VecRng(pub Vec<u64>, pub usize);

impl Rng for VecRng {
    fn next_u64(&mut self) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let v = self.0[self.1 % self.0.len()];
        self.1 += 1;
        v
    }
}

/// An argument, resolved against the shadow model when the action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A live handle, chosen by index among the live ones.
    Live(u64),
    /// A live handle plus a small offset (1 to 8), or its length plus or minus one.
    LiveNear(u64, u8),
    /// A handle that was freed (or forgotten by `reset`).
    Stale(u64),
    /// `0`.
    Zero,
    /// The memory's size minus a small number.
    MemoryEnd(u8),
    /// Any value.
    Raw(u64),
}

/// One call, or one host-side step, against the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(missing_docs, reason = "each variant is the export of the same name")]
pub enum Action {
    /// `alloc(n)`, then the host fills the block with a byte pattern.
    Alloc(u64, u8),
    Free(Value),
    Length(Value),
    LengthUnsafe(Value),
    LoadU8(Value),
    LoadU64(Value),
    StoreU8(Value, u8),
    StoreU64(Value, u64),
    /// `input_set` of a live block's first `n` bytes (`n` capped at its length) or of a value.
    InputSet(Value, u64),
    OutputSet(Value, u64),
    InputLoadU8(u64),
    InputLoadU64(u64),
    ErrorSet(Value),
    Reset,
    MemoryBytes,
    /// Word and byte loads where the allocator's metadata may lie, chosen by the number: the
    /// first 2 KiB of the heap (the metadata's place after every `reset`), the last 4 KiB of
    /// memory (where the table goes as it doubles), just after or just before a live block.
    /// Each must read 0 or bytes a store there could change (see [`Runner`]).
    LoadMetadata(u64),
    /// The copying interface, where the driver has one: `alloc-bytes` of `n` bytes (at most
    /// 64 KiB) of a pattern.
    BulkAllocBytes(u64, u8),
    /// `read(h, offset, len)`.
    BulkRead(Value, u64, u64),
    /// `write(h, offset, len bytes of a pattern)`.
    BulkWrite(Value, u64, u64, u8),
}

fn draw_size(r: &mut impl Rng) -> u64 {
    match r.below(100) {
        0..=39 => 1 + r.below(64),
        40..=69 => 65 + r.below(960),
        70..=89 => 1025 + r.below(64 * 1024 - 1024),
        90..=94 => {
            // Near page multiples: where upstream's growth went wrong.
            let pages = 1 + r.below(4);
            (pages * 65536)
                .wrapping_add(r.below(64))
                .wrapping_sub(32)
                .max(1)
        }
        95..=98 => match r.below(6) {
            0 => u64::MAX - r.below(64),
            1 => (1u64 << 32) - r.below(1 << 16),
            2 => (1u64 << 32) + r.below(64),
            3 => u64::MAX - 12,
            4 => 1u64 << 63,
            _ => r.next_u64(),
        },
        _ => 0,
    }
}

fn draw_value(r: &mut impl Rng) -> Value {
    match r.below(20) {
        0..=9 => Value::Live(r.next_u64()),
        10..=12 => Value::LiveNear(r.next_u64(), r.below(11) as u8),
        13 => Value::Stale(r.next_u64()),
        14 => Value::Zero,
        15 => Value::MemoryEnd(r.below(16) as u8),
        16 => Value::Raw(u64::MAX - r.below(16)),
        17 => Value::Raw(r.below(1 << 18)),
        18 => Value::Raw((1u64 << 32) - r.below(64)),
        _ => Value::Raw(r.next_u64()),
    }
}

impl Action {
    /// Draws one action; allocation and frees dominate, every export appears.
    ///
    /// The stream's format is stable: each action takes the same values from it as it always
    /// did. [`LoadMetadata`](Action::LoadMetadata), added later, takes none of its own: it is
    /// half of the draws that were all [`MemoryBytes`](Action::MemoryBytes), told apart by
    /// the rest of that draw's value; the bulk actions likewise are half of the draws that
    /// were all [`Reset`](Action::Reset).
    pub fn draw(r: &mut impl Rng) -> Action {
        let v = r.next_u64();
        match v % 100 {
            0..=29 => Action::Alloc(draw_size(r), r.next_u64() as u8),
            30..=49 => Action::Free(draw_value(r)),
            50..=54 => Action::Length(draw_value(r)),
            55..=56 => Action::LengthUnsafe(draw_value(r)),
            57..=61 => Action::LoadU8(draw_value(r)),
            62..=65 => Action::LoadU64(draw_value(r)),
            66..=71 => Action::StoreU8(draw_value(r), r.next_u64() as u8),
            72..=78 => Action::StoreU64(draw_value(r), r.next_u64()),
            79..=81 => Action::InputSet(draw_value(r), r.below(1 << 17)),
            82..=83 => Action::OutputSet(draw_value(r), r.below(1 << 17)),
            84..=87 => Action::InputLoadU8(r.below(1 << 17)),
            88..=91 => Action::InputLoadU64(r.below(1 << 17)),
            92..=95 => Action::ErrorSet(draw_value(r)),
            96 if (v / 100).is_multiple_of(2) => Action::Reset,
            96 => match (v / 200) % 3 {
                0 => Action::BulkAllocBytes(draw_size(r).min(1 << 16), r.next_u64() as u8),
                1 => Action::BulkRead(draw_value(r), r.below(1 << 10), r.below(1 << 12)),
                _ => Action::BulkWrite(
                    draw_value(r),
                    r.below(1 << 10),
                    r.below(1 << 12),
                    r.next_u64() as u8,
                ),
            },
            _ if (v / 100).is_multiple_of(2) => Action::MemoryBytes,
            _ => Action::LoadMetadata(v / 200),
        }
    }
}

/// What the model knows of the input or output range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// Set to these values (a range the model can check, or an empty one).
    Known(u64, u64),
    /// Set to a range the kernel may or may not have accepted.
    Unknown,
}

/// The model: what every live block must hold, and what the slots must say.
#[derive(Debug, Default)]
pub struct Shadow {
    live: BTreeMap<u64, Vec<u8>>,
    stale: Vec<u64>,
    input: Option<Range>,
    output: Option<Range>,
    error: u64,
    memory_bytes: u64,
}

fn block_fill(h: u64, len: u64, byte: u8) -> Vec<u8> {
    let mut v = vec![byte; len as usize];
    // Vary the bytes so shifted or swapped blocks are caught, not only lost ones.
    for (i, b) in v.iter_mut().enumerate().step_by(61) {
        *b = (h as u8) ^ (i as u8) ^ byte;
    }
    v
}

impl Shadow {
    /// Number of live blocks the model holds.
    pub fn live_blocks(&self) -> usize {
        self.live.len()
    }

    fn pick_live(&self, i: u64) -> Option<(u64, u64)> {
        if self.live.is_empty() {
            return None;
        }
        // Index into the map: O(n) but n stays in the thousands; cheap next to a wasm call.
        let k = (i % self.live.len() as u64) as usize;
        self.live.iter().nth(k).map(|(&h, v)| (h, v.len() as u64))
    }

    /// Resolves a [`Value`] to the number passed to the kernel.
    pub fn resolve(&self, v: Value, memory_size: u64) -> u64 {
        match v {
            Value::Live(i) => self.pick_live(i).map_or(i, |(h, _)| h),
            Value::LiveNear(i, k) => match self.pick_live(i) {
                Some((h, n)) => match k {
                    0..=8 => h + k as u64,
                    9 => h + n - 1,
                    _ => h + n + 1,
                },
                None => i,
            },
            Value::Stale(i) if !self.stale.is_empty() => {
                self.stale[(i % self.stale.len() as u64) as usize]
            }
            Value::Stale(i) => i,
            Value::Zero => 0,
            Value::MemoryEnd(k) => memory_size.wrapping_sub(k as u64),
            Value::Raw(x) => x,
        }
    }

    /// The live block holding byte `p`, with the byte's index in it.
    fn byte_at(&self, p: u64) -> Option<(u64, usize)> {
        let (&h, v) = self.live.range(..=p).next_back()?;
        (p - h < v.len() as u64).then_some((h, (p - h) as usize))
    }

    fn expect_bytes(&self, p: u64, n: u64) -> Option<Vec<u8>> {
        (0..n)
            .map(|k| {
                let (h, i) = self.byte_at(p.checked_add(k)?)?;
                Some(self.live[&h][i])
            })
            .collect()
    }

    fn forget_freed(&mut self, h: u64) {
        if self.stale.len() >= 256 {
            self.stale.swap_remove(0);
        }
        self.stale.push(h);
    }
}

/// Applies actions to a driver and checks every answer against the shadow model.
#[derive(Debug)]
pub struct Runner {
    /// The model.
    pub shadow: Shadow,
    /// Compare every live block's bytes with the model every this many actions (1: always).
    pub full_check_every: u64,
    /// Run the driver's invariant scanner after every action.
    pub check_invariants: bool,
    /// Actions applied so far.
    pub actions: u64,
    /// Live blocks above which allocation gives way to frees (keeps the model small).
    pub max_live: usize,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            shadow: Shadow::default(),
            full_check_every: 1,
            check_invariants: true,
            actions: 0,
            max_live: 2000,
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

impl Runner {
    /// Draws and applies `n` actions from `rng`; the first failure, with its action number.
    pub fn run(&mut self, d: &mut impl Driver, rng: &mut impl Rng, n: u64) -> Result<(), String> {
        for _ in 0..n {
            let a = Action::draw(rng);
            self.step(d, a)
                .map_err(|e| format!("action #{} {:?}: {}", self.actions, a, e))?;
        }
        self.verify_all(d)
    }

    /// Applies one action and checks the kernel's answers.
    pub fn step(&mut self, d: &mut impl Driver, a: Action) -> Result<(), String> {
        self.actions += 1;
        let size = d.memory_size();
        let s = &mut self.shadow;
        match a {
            Action::Alloc(..) | Action::InputSet(..) if s.live.len() >= self.max_live => {
                let h = s.resolve(Value::Live(self.actions), size);
                d.free(h);
                s.live.remove(&h);
                s.forget_freed(h);
                self.after_free(d, h)?;
            }
            Action::Alloc(n, byte) => {
                let h = d.alloc(n);
                if n == 0 || n > crate::MAX_ALLOC {
                    ensure!(h == 0, "alloc({n}) must fail, gave {h}");
                }
                if h != 0 {
                    ensure!(h % 8 == 0, "alloc({n}) gave unaligned {h}");
                    let end = h.checked_add(n).ok_or("block wraps")?;
                    ensure!(end <= d.memory_size(), "block {h}+{n} outside memory");
                    if let Some((&ph, pv)) = s.live.range(..=h).next_back() {
                        ensure!(ph + pv.len() as u64 <= h, "alloc({n})={h} overlaps {ph}");
                    }
                    if let Some((&nh, _)) = s.live.range(h..).next() {
                        ensure!(end <= nh, "alloc({n})={h} overlaps {nh}");
                    }
                    let got = d.length(h);
                    ensure!(got == n, "length(alloc({n})) = {got}");
                    let data = block_fill(h, n, byte);
                    d.write(h, &data);
                    s.live.insert(h, data);
                    s.stale.retain(|&x| x != h);
                }
            }
            Action::Free(v) => {
                let h = s.resolve(v, size);
                d.free(h);
                if s.live.remove(&h).is_some() {
                    s.forget_freed(h);
                    ensure!(d.length(h) == 0, "length after free({h}) is not 0");
                }
                self.after_free(d, h)?;
            }
            Action::Length(v) | Action::LengthUnsafe(v) => {
                let h = s.resolve(v, size);
                let want = s.live.get(&h).map_or(0, |b| b.len() as u64);
                let got = if matches!(a, Action::Length(_)) {
                    d.length(h)
                } else {
                    d.length_unsafe(h)
                };
                ensure!(got == want, "length({h}) = {got}, want {want}");
            }
            Action::LoadU8(v) => {
                let p = s.resolve(v, size);
                self.check_load(d, p, 1, size)?;
            }
            Action::LoadU64(v) => {
                let p = s.resolve(v, size);
                self.check_load(d, p, 8, size)?;
            }
            Action::LoadMetadata(k) => {
                let lo = size.saturating_sub(d.memory_bytes());
                let i = k / 4;
                let p = match k % 4 {
                    0 => lo + 8 * (i % 256),
                    1 => size.saturating_sub(8 * (1 + i % 512)),
                    2 => s
                        .pick_live(i)
                        .map_or(lo, |(h, n)| (h + n).next_multiple_of(8)),
                    _ => s.pick_live(i).map_or(lo, |(h, _)| h.saturating_sub(8)),
                };
                self.check_load(d, p, 8, size)?;
                self.check_load(d, p + (i >> 9) % 8, 1, size)?;
            }
            Action::StoreU8(v, x) => {
                let p = s.resolve(v, size);
                d.store_u8(p, x);
                if let Some((h, i)) = s.byte_at(p) {
                    s.live.get_mut(&h).expect("live")[i] = x;
                }
            }
            Action::StoreU64(v, x) => {
                let p = s.resolve(v, size);
                d.store_u64(p, x);
                let new = x.to_le_bytes();
                let covered: Vec<_> = (0..8u64)
                    .filter_map(|k| {
                        p.checked_add(k)
                            .and_then(|q| s.byte_at(q))
                            .map(|at| (k, at))
                    })
                    .collect();
                if covered.len() == 8 {
                    for (k, (h, i)) in covered {
                        s.live.get_mut(&h).expect("live")[i] = new[k as usize];
                    }
                } else if !covered.is_empty() {
                    // Part of the word is outside every live block: the kernel may refuse the
                    // whole store (it touches memory it will not write). Either all or none.
                    let old: Vec<u8> = covered.iter().map(|&(_, (h, i))| s.live[&h][i]).collect();
                    let now: Vec<u8> = covered
                        .iter()
                        .map(|&(_, (h, i))| d.read(h, s.live[&h].len() as u64)[i])
                        .collect();
                    let stored: Vec<u8> = covered.iter().map(|&(k, _)| new[k as usize]).collect();
                    ensure!(
                        now == old || now == stored,
                        "store_u64({p}) wrote part of a word"
                    );
                    for (&(_, (h, i)), b) in covered.iter().zip(now) {
                        s.live.get_mut(&h).expect("live")[i] = b;
                    }
                }
            }
            Action::InputSet(v, n) | Action::OutputSet(v, n) => {
                let (p, len, known) = match v {
                    Value::Live(i) if !s.live.is_empty() => {
                        let (h, l) = s.pick_live(i).expect("non-empty");
                        (h, n.min(l), true)
                    }
                    _ => (s.resolve(v, size), n, n == 0),
                };
                let range = if known {
                    Range::Known(p, len)
                } else {
                    Range::Unknown
                };
                if matches!(a, Action::InputSet(..)) {
                    d.input_set(p, len);
                    s.input = Some(range);
                } else {
                    d.output_set(p, len);
                    s.output = Some(range);
                }
            }
            Action::InputLoadU8(off) | Action::InputLoadU64(off) => {
                let w = if matches!(a, Action::InputLoadU8(_)) {
                    1
                } else {
                    8
                };
                let got = if w == 1 {
                    d.input_load_u8(off) as u64
                } else {
                    d.input_load_u64(off)
                };
                if let Some(Range::Known(p, len)) = s.input {
                    if off.checked_add(w).is_none_or(|e| e > len) {
                        ensure!(got == 0, "input_load past the input's end = {got}");
                    } else if let Some(b) = s.expect_bytes(p + off, w) {
                        let mut word = [0u8; 8];
                        word[..w as usize].copy_from_slice(&b);
                        let want = u64::from_le_bytes(word);
                        ensure!(got == want, "input_load({off}) = {got:#x}, want {want:#x}");
                    }
                }
            }
            Action::ErrorSet(v) => {
                let h = s.resolve(v, size);
                d.error_set(h);
                if h == 0 || s.live.contains_key(&h) {
                    s.error = h;
                }
                let got = d.error_get();
                ensure!(got == s.error, "error_get() = {got}, want {}", s.error);
            }
            Action::Reset => {
                d.reset();
                let old: Vec<u64> = s.live.keys().copied().collect();
                s.live.clear();
                for h in old {
                    s.forget_freed(h);
                }
                s.input = Some(Range::Known(0, 0));
                s.output = Some(Range::Known(0, 0));
                s.error = 0;
                ensure!(d.error_get() == 0, "error survives reset");
            }
            Action::BulkAllocBytes(n, byte) => {
                let data = block_fill(0, n, byte);
                match d.bulk_alloc_bytes(&data) {
                    None | Some(Err(crate::Error::OutOfMemory)) => {}
                    Some(Err(e)) => return Err(format!("alloc-bytes({n}) failed: {e:?}")),
                    Some(Ok(h)) if n == 0 => ensure!(h == 0, "alloc-bytes of nothing gave {h}"),
                    Some(Ok(h)) => {
                        ensure!(h % 8 == 0, "alloc-bytes({n}) gave unaligned {h}");
                        let end = h.checked_add(n).ok_or("block wraps")?;
                        ensure!(end <= d.memory_size(), "block {h}+{n} outside memory");
                        if let Some((&ph, pv)) = s.live.range(..=h).next_back() {
                            ensure!(
                                ph + pv.len() as u64 <= h,
                                "alloc-bytes({n})={h} overlaps {ph}"
                            );
                        }
                        if let Some((&nh, _)) = s.live.range(h..).next() {
                            ensure!(end <= nh, "alloc-bytes({n})={h} overlaps {nh}");
                        }
                        ensure!(d.length(h) == n, "length(alloc-bytes({n})) is wrong");
                        ensure!(
                            d.read(h, n) == data,
                            "alloc-bytes({n}) did not copy the bytes"
                        );
                        s.live.insert(h, data);
                        s.stale.retain(|&x| x != h);
                    }
                }
            }
            Action::BulkRead(v, offset, len) => {
                let h = s.resolve(v, size);
                let want = match s.live.get(&h) {
                    None => Err(crate::Error::InvalidHandle),
                    Some(c) => match offset.checked_add(len) {
                        Some(e) if e <= c.len() as u64 => {
                            Ok(c[offset as usize..e as usize].to_vec())
                        }
                        _ => Err(crate::Error::OutOfBounds),
                    },
                };
                if let Some(got) = d.bulk_read(h, offset, len) {
                    ensure!(
                        got == want,
                        "read({h}, {offset}, {len}) = {got:?}, want {want:?}"
                    );
                }
            }
            Action::BulkWrite(v, offset, len, byte) => {
                let h = s.resolve(v, size);
                let data = vec![byte; len as usize];
                let want = match s.live.get(&h) {
                    None => Err(crate::Error::InvalidHandle),
                    Some(c) => match offset.checked_add(len) {
                        Some(e) if e <= c.len() as u64 => Ok(()),
                        _ => Err(crate::Error::OutOfBounds),
                    },
                };
                if let Some(got) = d.bulk_write(h, offset, &data) {
                    ensure!(
                        got == want,
                        "write({h}, {offset}, {len}) = {got:?}, want {want:?}"
                    );
                    if got.is_ok() {
                        let c = s.live.get_mut(&h).expect("a live block");
                        c[offset as usize..(offset + len) as usize].copy_from_slice(&data);
                    }
                }
            }
            Action::MemoryBytes => {
                let m = d.memory_bytes();
                ensure!(
                    m >= s.memory_bytes,
                    "memory_bytes shrank: {} -> {m}",
                    s.memory_bytes
                );
                ensure!(m <= d.memory_size(), "memory_bytes {m} exceeds the memory");
                s.memory_bytes = m;
            }
        }
        self.check_slots(d)?;
        if self.check_invariants {
            d.check().map_err(|e| format!("invariant broken: {e}"))?;
        }
        if self.full_check_every > 0 && self.actions.is_multiple_of(self.full_check_every) {
            self.verify_all(d)?;
        }
        Ok(())
    }

    /// Loads `w` (1 or 8) bytes at `p` and checks the answer. Where the model knows every
    /// byte (they lie in live blocks) it is exact. Elsewhere the bytes are free memory, which
    /// holds whatever was last written there, or memory no plugin may touch (outside the
    /// heap, the allocator's metadata), which must read 0; so an answer other than 0 must be
    /// of bytes a plugin could also write. A store of the complement there must then read
    /// back, and the bytes are restored: a kernel that lets its metadata be read but not
    /// written fails here.
    fn check_load(&self, d: &mut impl Driver, p: u64, w: u64, size: u64) -> Result<(), String> {
        let load = |d: &mut _, p| {
            if w == 1 {
                Driver::load_u8(d, p) as u64
            } else {
                Driver::load_u64(d, p)
            }
        };
        let store = |d: &mut _, p, x: u64| {
            if w == 1 {
                Driver::store_u8(d, p, x as u8)
            } else {
                Driver::store_u64(d, p, x)
            }
        };
        let name = if w == 1 { "load_u8" } else { "load_u64" };
        let got = load(d, p);
        if let Some(want) = self.shadow.expect_bytes(p, w) {
            let mut word = [0u8; 8];
            word[..w as usize].copy_from_slice(&want);
            let want = u64::from_le_bytes(word);
            ensure!(got == want, "{name}({p}) = {got:#x}, want {want:#x}");
            return Ok(());
        }
        if got == 0 {
            return Ok(());
        }
        ensure!(
            p.checked_add(w).is_some_and(|e| e <= size),
            "{name}({p}) past memory end = {got:#x}"
        );
        let flip = !got & (u64::MAX >> (64 - 8 * w));
        store(d, p, flip);
        let back = load(d, p);
        store(d, p, got);
        ensure!(
            back == flip,
            "{name}({p}) = {got:#x}, but a store of {flip:#x} there reads back {back:#x}: the \
             kernel lets a plugin read memory it may not write (its metadata?)"
        );
        Ok(())
    }

    fn after_free(&mut self, d: &mut impl Driver, h: u64) -> Result<(), String> {
        let s = &mut self.shadow;
        if let Some(Range::Known(p, len)) = s.input
            && p == h
            && len > 0
        {
            ensure!(d.input_length() == 0, "input survives free of its block");
            s.input = Some(Range::Known(p, 0));
        }
        // A range inside a freed block stays set but its bytes are no longer modelled.
        for slot in [&mut s.input, &mut s.output] {
            if let Some(Range::Known(p, len)) = *slot
                && len > 0
                && s.live
                    .range(..=p)
                    .next_back()
                    .is_none_or(|(&b, v)| b + v.len() as u64 <= p)
            {
                *slot = Some(Range::Unknown);
            }
        }
        Ok(())
    }

    fn check_slots(&mut self, d: &mut impl Driver) -> Result<(), String> {
        let s = &self.shadow;
        if let Some(Range::Known(p, len)) = s.input {
            let (gp, gl) = (d.input_offset(), d.input_length());
            ensure!(
                (gp, gl) == (p, len),
                "input is ({gp}, {gl}), want ({p}, {len})"
            );
        }
        if let Some(Range::Known(p, len)) = s.output {
            let (gp, gl) = (d.output_offset(), d.output_length());
            ensure!(
                (gp, gl) == (p, len),
                "output is ({gp}, {gl}), want ({p}, {len})"
            );
        }
        Ok(())
    }

    /// Every live block still has its length and its bytes, and no two overlap.
    pub fn verify_all(&mut self, d: &mut impl Driver) -> Result<(), String> {
        let mut prev_end = 0;
        for (&h, want) in &self.shadow.live {
            ensure!(h >= prev_end, "blocks overlap at {h}");
            prev_end = h + want.len() as u64;
            let n = d.length(h);
            ensure!(
                n == want.len() as u64,
                "length({h}) = {n}, want {}",
                want.len()
            );
            let got = d.read(h, n);
            if got != *want {
                let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Err(format!("block {h} changed at byte {at}"));
            }
        }
        Ok(())
    }
}

//! The seeded generator and the allocation workloads, the same for every kernel.

use crate::RawKernel;
use wasmtime::{Result, ensure};

/// SplitMix64: small, fast, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A block size from 1 B to 64 KiB, biased small: a power of two `2^e` with `e`
    /// uniform in `0..=16`, then uniform in `1..=2^e` (half the sizes are at most 256 B).
    #[inline]
    pub fn biased_size(&mut self) -> u64 {
        let e = self.below(17);
        1 + self.below(1 << e)
    }
}

/// Random actions in the style of talc's benchmark: every action is one `alloc` or one
/// `free`; below `min_live` live blocks it allocates, at `2 * min_live` it frees, in
/// between it flips a coin.
#[derive(Debug)]
pub struct RandomActions {
    rng: Rng,
    min_live: usize,
    live: Vec<u64>,
}

impl RandomActions {
    /// Starts with no live block; [`RandomActions::fill`] brings it to `min_live`.
    pub fn new(seed: u64, min_live: usize) -> Self {
        RandomActions {
            rng: Rng(seed),
            min_live,
            live: Vec::with_capacity(2 * min_live + 1),
        }
    }

    /// Allocates up to `min_live` live blocks.
    pub fn fill(&mut self, k: &mut RawKernel) -> Result<()> {
        while self.live.len() < self.min_live {
            self.step(k)?;
        }
        Ok(())
    }

    /// One action.
    #[inline]
    pub fn step(&mut self, k: &mut RawKernel) -> Result<()> {
        let n = self.live.len();
        let alloc = n < self.min_live || (n < 2 * self.min_live && self.rng.below(2) == 0);
        if alloc {
            let size = self.rng.biased_size();
            let h = k.alloc(size)?;
            ensure!(h != 0, "alloc({size}) failed with {n} live blocks");
            self.live.push(h);
        } else {
            let i = self.rng.below(n as u64) as usize;
            k.free(self.live.swap_remove(i))?;
        }
        Ok(())
    }
}

/// Live blocks of small sizes (1 to 64 bytes), for the `length` and `free` latencies.
#[derive(Debug)]
pub struct LiveSet {
    /// The live handles and their sizes.
    pub blocks: Vec<(u64, u64)>,
    /// The generator, for picking blocks.
    pub rng: Rng,
}

impl LiveSet {
    /// `count` live blocks in `k`.
    pub fn new(k: &mut RawKernel, count: usize, seed: u64) -> Result<Self> {
        let mut rng = Rng(seed);
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let n = 1 + rng.below(64);
            let h = k.alloc(n)?;
            ensure!(h != 0, "alloc({n}) failed");
            blocks.push((h, n));
        }
        Ok(LiveSet { blocks, rng })
    }

    /// A random live block's index.
    #[inline]
    pub fn pick(&mut self) -> usize {
        self.rng.below(self.blocks.len() as u64) as usize
    }
}

/// What the churn workload measured.
#[derive(Debug, Clone, Copy)]
pub struct Churn {
    /// Most bytes live at once (sum of the requested sizes).
    pub peak_live: u64,
    /// Bytes of linear memory in the store right after instantiation.
    pub initial_bytes: u64,
    /// Bytes of linear memory in the store at the end.
    pub final_bytes: u64,
    /// `memory.grow` requests over the workload.
    pub grows: u64,
}

impl Churn {
    /// Memory grown over the workload.
    pub fn grown(&self) -> u64 {
        self.final_bytes - self.initial_bytes
    }
}

/// The churn workload of kernel-core's `churn_does_not_balloon_memory` test, from the host:
/// `actions` actions, at least 300 live blocks, a quarter of the sizes up to 64 KiB and the
/// rest up to 512 B; memory is measured by the store's limiter.
pub fn churn(k: &mut RawKernel, actions: usize) -> Result<Churn> {
    let start = k.meter();
    let mut rng = Rng(7);
    let mut live: Vec<(u64, u64)> = Vec::new();
    let (mut live_bytes, mut peak) = (0u64, 0u64);
    for _ in 0..actions {
        if live.len() < 300 || rng.below(2) == 0 {
            let max = if rng.below(4) == 0 { 65536 } else { 512 };
            let n = 1 + rng.below(max);
            let h = k.alloc(n)?;
            ensure!(h != 0, "alloc({n}) failed with {} live blocks", live.len());
            live.push((h, n));
            live_bytes += n;
            peak = peak.max(live_bytes);
        } else {
            let (h, n) = live.swap_remove(rng.below(live.len() as u64) as usize);
            k.free(h)?;
            live_bytes -= n;
        }
    }
    let end = k.meter();
    Ok(Churn {
        peak_live: peak,
        initial_bytes: start.bytes,
        final_bytes: end.bytes,
        grows: end.grows - start.grows,
    })
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn biased_sizes_span_1_byte_to_64_kib_and_are_mostly_small() {
        let mut rng = Rng(1);
        let sizes: Vec<u64> = (0..100_000).map(|_| rng.biased_size()).collect();
        assert!(sizes.iter().all(|&s| (1..=65536).contains(&s)));
        assert!(sizes.contains(&1));
        let small = sizes.iter().filter(|&&s| s <= 256).count();
        assert!(
            small > sizes.len() / 2,
            "{small} of {} at most 256 B",
            sizes.len()
        );
    }
}

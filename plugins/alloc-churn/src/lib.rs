//! `churn`: a deterministic stress test of the kernel allocator through the pdk's
//! `Memory` API.
//!
//! Input: ASCII decimal number of rounds (surrounding ASCII whitespace ignored);
//! empty input means 1000 rounds.
//!
//! Each round:
//! 1. allocates `1 + rng % 4` blocks. Block `id` (0, 1, 2, ... over the whole call)
//!    gets size `1 + rng % (1 << (rng % 17))`, i.e. 1 ..= 65536 bytes, log-uniformly
//!    distributed, filled with `pattern(id, j)`. The block is created by one of three
//!    paths, chosen by `id % 3`: `Memory::from_bytes`, `Memory::new`, or
//!    `memory::internal::memory_alloc` + `memory::internal::store`;
//! 2. frees `rng % 4` randomly chosen live blocks (`Memory::free`), then more until at
//!    most `MAX_LIVE` blocks are live;
//! 3. verifies every live block: the kernel's `length` of its offset (via
//!    `Memory::find`), its `length_unsafe` and `Memory::len` all equal the size, and the contents read
//!    back (via `Memory::to_vec` or `memory::internal::load`) equal the pattern.
//!
//! At the end every remaining block is freed and the output is
//! `{"rounds":R,"allocs":A,"frees":F,"checked_bytes":B}` where `B` is the total
//! number of content bytes compared over all rounds.

use extism_pdk::memory::internal;
use extism_pdk::{plugin_fn, Error, FnResult, Json, Memory};
use serde::Serialize;

const DEFAULT_ROUNDS: u32 = 1000;
const MAX_LIVE: usize = 24;
const SEED: u64 = 0x00C0_FFEE_D00D_F00D;

/// splitmix64: tiny, deterministic, good enough for picking sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Content byte `j` of block `id`.
fn pattern(id: u64, j: usize) -> u8 {
    let x = (id as u32)
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add((j as u32).wrapping_mul(0x85EB_CA6B));
    (x >> 24) as u8 ^ (j as u8)
}

fn pattern_vec(id: u64, size: usize) -> Vec<u8> {
    (0..size).map(|j| pattern(id, j)).collect()
}

struct Block {
    id: u64,
    mem: Memory,
    size: usize,
}

#[derive(Serialize)]
struct Summary {
    rounds: u32,
    allocs: u64,
    frees: u64,
    checked_bytes: u64,
}

fn parse_rounds(input: &[u8]) -> Result<u32, Error> {
    let text = std::str::from_utf8(input)
        .map_err(|_| Error::msg("churn: input is not a decimal number of rounds"))?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Ok(DEFAULT_ROUNDS);
    }
    text.parse::<u32>()
        .map_err(|_| Error::msg(format!("churn: invalid number of rounds: {text:?}")))
}

fn allocate(id: u64, size: usize) -> Result<Block, Error> {
    let data = pattern_vec(id, size);
    let mem = match id % 3 {
        0 => Memory::from_bytes(&data)?,
        1 => Memory::new(&data)?,
        _ => {
            let handle = internal::memory_alloc(size as u64);
            if handle.offset != 0 {
                internal::store(handle, &data);
            }
            Memory(handle)
        }
    };
    if mem.offset() == 0 {
        return Err(Error::msg(format!(
            "churn: block {id}: allocating {size} bytes returned offset 0"
        )));
    }
    Ok(Block { id, mem, size })
}

fn verify(block: &Block) -> Result<u64, Error> {
    let Block { id, mem, size } = block;
    let offset = mem.offset();
    if mem.len() != *size {
        return Err(Error::msg(format!(
            "churn: block {id} (kernel offset {offset}): Memory::len is {}, expected {size}",
            mem.len()
        )));
    }
    let kernel_len = Memory::find(offset).map(|m| m.len()).unwrap_or(0);
    if kernel_len != *size {
        return Err(Error::msg(format!(
            "churn: block {id} (kernel offset {offset}): kernel length is {kernel_len}, expected {size}"
        )));
    }
    let unsafe_len = internal::memory_length_unsafe(offset);
    if unsafe_len != *size as u64 {
        return Err(Error::msg(format!(
            "churn: block {id} (kernel offset {offset}): kernel length_unsafe is {unsafe_len}, expected {size}"
        )));
    }
    let data = if id % 2 == 0 {
        mem.to_vec()
    } else {
        let mut buf = vec![0u8; *size];
        internal::load(mem.0, &mut buf);
        buf
    };
    for (j, &got) in data.iter().enumerate() {
        let want = pattern(*id, j);
        if got != want {
            return Err(Error::msg(format!(
                "churn: block {id} (kernel offset {offset}, size {size}): mismatch at byte offset {j}: expected {want}, got {got}"
            )));
        }
    }
    Ok(*size as u64)
}

#[plugin_fn]
pub fn churn(input: Vec<u8>) -> FnResult<Json<Summary>> {
    let rounds = parse_rounds(&input)?;
    let mut rng = Rng(SEED);
    let mut live: Vec<Block> = Vec::new();
    let mut allocs: u64 = 0;
    let mut frees: u64 = 0;
    let mut checked_bytes: u64 = 0;

    for _ in 0..rounds {
        let n_alloc = 1 + rng.next() % 4;
        for _ in 0..n_alloc {
            let shift = rng.next() % 17;
            let size = 1 + (rng.next() % (1u64 << shift)) as usize;
            live.push(allocate(allocs, size)?);
            allocs += 1;
        }

        let n_free = rng.next() % 4;
        let mut freed = 0;
        while !live.is_empty() && (freed < n_free || live.len() > MAX_LIVE) {
            let victim = (rng.next() % live.len() as u64) as usize;
            live.swap_remove(victim).mem.free();
            frees += 1;
            freed += 1;
        }

        for block in &live {
            checked_bytes += verify(block)?;
        }
    }

    for block in live.drain(..) {
        block.mem.free();
        frees += 1;
    }

    Ok(Json(Summary {
        rounds,
        allocs,
        frees,
        checked_bytes,
    }))
}

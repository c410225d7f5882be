//! `cargo run -p kernel-core --release --features alloc --example latency`: the cost of
//! `length` and of a `length` + `free` + `alloc` round with 1k, 10k and 100k live blocks (the
//! same code the core module runs, natively over a `Vec`-backed memory). Flat means O(1).

use kernel_core::{Kernel, VecMemory};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    println!(
        "{:>8} {:>14} {:>20}",
        "blocks", "length ns", "length+free+alloc ns"
    );
    for n in [1_000u64, 10_000, 100_000] {
        let mut k = Kernel::new(VecMemory::new(1, 65536, 1024));
        let hs: Vec<u64> = (0..n).map(|i| k.alloc(1 + (i * 37) % 200)).collect();
        assert!(hs.iter().all(|&h| h != 0));
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut pick = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let rounds = 2_000_000;
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(k.length(hs[(pick() % n) as usize]));
        }
        let length_ns = t.elapsed().as_nanos() as f64 / rounds as f64;
        let mut hs = hs;
        let t = Instant::now();
        for _ in 0..rounds {
            let i = (pick() % n) as usize;
            let len = k.length(hs[i]);
            k.free(hs[i]);
            hs[i] = k.alloc(len);
        }
        let pair_ns = t.elapsed().as_nanos() as f64 / rounds as f64;
        println!("{n:>8} {length_ns:>14.1} {pair_ns:>20.1}");
    }
}

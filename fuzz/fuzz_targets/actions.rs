//! The fuzz target: fuzzer bytes drive the shared action generator (`kernel_core::testing`)
//! against a native kernel over a small, limited memory.
//!
//! The first byte chooses the memory: its page limit (1 to 32 pages, so `alloc` runs out of
//! memory often) and where the heap starts (0, 8, 1000 or 16 KiB, as data and stack below a
//! wasm heap). The rest is a stream of `u64`s from which `Action::draw` picks every export with
//! arbitrary arguments: huge sizes, values near `u64::MAX`, handles off by one, stale handles,
//! stores at any address, double frees, `input_set`/`output_set`/`error_set` of non-handles,
//! resets in the middle. After every action the runner checks each answer against its shadow
//! model, runs the allocator's invariant scanner, and compares every live block's length and
//! bytes with the model (`full_check_every: 1`). Any failure panics, which libFuzzer reports.
#![no_main]

use kernel_core::testing::{Action, ByteRng, Runner};
use kernel_core::{Kernel, VecMemory};
use libfuzzer_sys::fuzz_target;

/// Actions per input at most (inputs are short anyway: about 20 bytes per action).
const MAX_ACTIONS: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let max_pages = 1 + u64::from(cfg & 31);
    let heap_start = [0, 8, 1000, 16 * 1024][usize::from(cfg >> 5) & 3];
    let mut kernel = Kernel::new(VecMemory::new(1, max_pages, heap_start));
    let mut rng = ByteRng(rest);
    let mut runner = Runner {
        full_check_every: 1,
        check_invariants: true,
        max_live: 64,
        ..Runner::default()
    };
    while !rng.is_empty() && runner.actions < MAX_ACTIONS {
        let action = Action::draw(&mut rng);
        if let Err(e) = runner.step(&mut kernel, action) {
            panic!("action #{} {action:?}: {e}", runner.actions);
        }
    }
    if let Err(e) = runner.verify_all(&mut kernel) {
        panic!("after {} actions: {e}", runner.actions);
    }
});

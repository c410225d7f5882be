//! The kernel contract (KERNEL-ABI.md) as one suite of tests over any [`Driver`]: the native
//! [`Kernel`](crate::Kernel), the built core module and the component run the same tests.
//! [`contract_suite!`](crate::contract_suite) makes a `#[test]` of each for a kernel factory.
//!
//! Each test takes the factory rather than a kernel, because some compare with a fresh
//! kernel. After each mutating step the driver's own invariant check runs ([`Driver::check`]:
//! the scanner on the native kernel; nothing on a wasm kernel, whose lockstep twin checks it).

use crate::testing::Driver;
use alloc::vec::Vec;

fn checked(d: &mut impl Driver) {
    d.check().expect("invariants");
}

/// `alloc(0)` is `0`; every block has exactly the length asked for; nearby values are not
/// handles.
pub fn alloc_zero_is_null_and_lengths_are_exact<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    assert_eq!(d.alloc(0), 0);
    assert_eq!(d.length(0), 0);
    for n in [1, 7, 8, 9, 100, 4096, 65535, 65536, 65537, 200_000, 300_000] {
        let h = d.alloc(n);
        assert_ne!(h, 0);
        assert_eq!(d.length(h), n);
        assert_eq!(d.length_unsafe(h), n);
        for off in 1..=4 {
            assert_eq!(d.length(h + off), 0, "length(h + {off})");
        }
        checked(&mut d);
    }
    assert_eq!(d.length(0), 0);
}

/// A freed block is reused at once, and a small excess stays with it.
pub fn freed_block_is_reused_and_small_excess_not_split<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    let h = d.alloc(65535);
    let _guard = d.alloc(10);
    d.free(h);
    assert_eq!(d.length(h), 0);
    assert_eq!(d.alloc(65535), h);
    d.free(h);
    assert_eq!(d.alloc(65535 - 24), h);
    assert_eq!(d.length(h), 65535 - 24);
    checked(&mut d);
}

/// After `reset`, old handles are gone and the next allocation is a fresh kernel's first.
pub fn reset_gives_the_first_handle_of_a_fresh_kernel<D: Driver>(make: impl Fn() -> D) {
    for n in [1, 100, 65536, 3 * 65536 + 5] {
        let first = make().alloc(n);
        let mut d = make();
        let mut old = Vec::new();
        for i in 0..500 {
            old.push(d.alloc(1 + (i * 37) % 3000));
        }
        let h = d.alloc(n);
        d.reset();
        checked(&mut d);
        for h in old {
            assert_eq!(d.length(h), 0);
        }
        assert_eq!(d.length(h), 0);
        assert_eq!(d.alloc(n), first, "first alloc({n}) after reset");
    }
}

/// Words are little-endian.
pub fn loads_and_stores_are_little_endian<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    let p = d.alloc(16);
    d.store_u64(p, 999);
    assert_eq!(d.load_u8(p), 0xE7);
    assert_eq!(d.load_u8(p + 1), 0x03);
    for i in 0..8 {
        d.store_u8(p + 8 + i, i as u8);
    }
    assert_eq!(d.load_u64(p + 8), 0x0706_0504_0302_0100);
}

/// Loads far outside the heap read `0`, stores there are ignored, input loads past the end
/// read `0`; nothing traps.
pub fn out_of_bounds_never_traps<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    let h = d.alloc(8);
    for p in [
        u64::MAX,
        u64::MAX - 7,
        1 << 32,
        (1 << 32) - 1,
        (1 << 32) - 7,
    ] {
        assert_eq!(d.load_u8(p), 0);
        assert_eq!(d.load_u64(p), 0);
        d.store_u8(p, 1);
        d.store_u64(p, 1);
    }
    d.input_set(h, 8);
    assert_eq!(d.input_load_u8(8), 0);
    assert_eq!(d.input_load_u64(1), 0);
    assert_eq!(d.input_load_u64(u64::MAX), 0);
    checked(&mut d);
}

/// `error_set` of a block sets it, of a non-handle is ignored, of `0` clears it.
pub fn error_set_get_and_clear<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    let h = d.alloc(5);
    d.error_set(h);
    assert_eq!(d.error_get(), h);
    d.error_set(h + 1);
    assert_eq!(d.error_get(), h, "a non-handle is ignored");
    d.error_set(0);
    assert_eq!(d.error_get(), 0);
}

/// A block of `data`, set as the input.
fn set_input(d: &mut impl Driver, data: &[u8]) -> u64 {
    let h = d.alloc(data.len() as u64);
    d.write(h, data);
    d.input_set(h, data.len() as u64);
    h
}

/// Freeing the input's block empties the input.
pub fn freeing_the_input_empties_it<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    let h = set_input(&mut d, b"hello");
    assert_eq!(d.input_length(), 5);
    assert_eq!(d.input_load_u8(1), b'e');
    assert_eq!(d.input_load_u8(4), b'o');
    assert_eq!(d.input_load_u8(5), 0);
    assert_eq!(
        d.input_load_u64(0),
        0,
        "only 5 bytes: a word would pass the end"
    );
    let off = d.input_offset();
    d.free(off);
    assert_eq!(d.input_length(), 0);
    assert_eq!(d.length(h), 0);
}

/// A word load of the input must end inside it.
pub fn input_words_stop_at_the_input_end<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    set_input(&mut d, b"0123456789");
    assert_eq!(d.input_load_u64(2), u64::from_le_bytes(*b"23456789"));
    assert_eq!(d.input_load_u64(3), 0);
    assert_eq!(d.input_load_u64(u64::MAX - 3), 0);
}

/// Upstream defect (KERNEL-ABI.md): sizes that cannot fit return `0`, never a wrapped block.
pub fn alloc_size_wrap_returns_zero<D: Driver>(make: impl Fn() -> D) {
    let mut d = make();
    // Lays the heap out first (the component makes its arena at the first call).
    d.alloc(1);
    let before = d.memory_bytes();
    for n in [
        u64::MAX,
        u64::MAX - 12,
        u64::MAX - 7,
        1 << 63,
        1 << 32,
        crate::MAX_ALLOC + 1,
    ] {
        assert_eq!(d.alloc(n), 0, "alloc({n})");
    }
    assert_eq!(d.memory_bytes(), before, "refused sizes never grow memory");
    let a = d.alloc(8);
    let b = d.alloc(8);
    assert!(b >= a + 8, "no overlap after refused sizes");
    checked(&mut d);
}

/// One `#[test]` per contract test, in a module `$module`, for the kernel factory `$make` (an
/// expression of type `impl Fn() -> impl Driver`).
#[macro_export]
macro_rules! contract_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports, reason = "the factory may name items of the parent")]
            use super::*;
            $crate::contract_suite!(@tests $make;
                alloc_zero_is_null_and_lengths_are_exact
                freed_block_is_reused_and_small_excess_not_split
                reset_gives_the_first_handle_of_a_fresh_kernel
                loads_and_stores_are_little_endian
                out_of_bounds_never_traps
                error_set_get_and_clear
                freeing_the_input_empties_it
                input_words_stop_at_the_input_end
                alloc_size_wrap_returns_zero
            );
        }
    };
    (@tests $make:expr; $($test:ident)*) => {
        $(
            #[test]
            fn $test() {
                $crate::contract::$test($make);
            }
        )*
    };
}

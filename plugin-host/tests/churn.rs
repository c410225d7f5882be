//! Under load: creating and dropping 100,000 plugin instances keeps resident memory flat
//! (Extism's own runtime grows without bound in this loop: its issue #890). Alone in its
//! test binary, so that no other test moves the process's resident memory meanwhile.

use host_fixtures::runtime;
use host_fixtures::samples::sample;
use plugin_host::density::resident_bytes;
use plugin_host::{KernelKind, PluginPre};
use std::sync::Arc;
use std::time::Instant;

#[test]
fn creating_and_dropping_100000_instances_keeps_resident_memory_flat() {
    const WARM: usize = 2_000;
    const INSTANCES: usize = 100_000;
    for kernel in [KernelKind::Core, KernelKind::Component] {
        let pre = Arc::new(
            PluginPre::new(runtime(), sample("echo"), host_fixtures::options(kernel))
                .expect("echo"),
        );
        let cycle = |i: usize| {
            let mut p = pre.instantiate().expect("an instance");
            if i.is_multiple_of(100) {
                assert_eq!(p.call("echo", b"x").expect("a call"), b"x");
            }
        };
        (0..WARM).for_each(cycle);
        let before = resident_bytes().expect("VmRSS");
        let start = Instant::now();
        (0..INSTANCES).for_each(cycle);
        let after = resident_bytes().expect("VmRSS");
        let growth = after.saturating_sub(before);
        eprintln!(
            "{kernel}: {INSTANCES} instances created and dropped in {:.1} s; resident {:.1} -> {:.1} MiB",
            start.elapsed().as_secs_f64(),
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
        assert!(
            growth < 16 << 20,
            "{kernel}: resident memory grew by {growth} bytes over {INSTANCES} instances"
        );
    }
}

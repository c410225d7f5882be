//! The compilation cache (`RuntimeOptions::cache`): a second runtime on the same directory
//! loads what the first compiled (counted by `Runtime::cache_stats`, no timing); wasm bytes
//! and engine settings are part of the key; a corrupt, foreign or unwritable cache costs a
//! warning and a compilation, never a failure; only the kernel form a plugin uses is
//! compiled.

use host_fixtures::samples::sample;
use plugin_host::componentize::componentize;
use plugin_host::{
    CacheStats, ComposedPlugin, KernelKind, Plugin, PluginOptions, Runtime, RuntimeOptions,
};
use std::path::{Path, PathBuf};

const VOWELS: &[u8] = br#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#;

/// A fresh, empty directory of this test binary.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plugin-host-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn cached(dir: &Path, fuel: bool) -> Runtime {
    Runtime::new(RuntimeOptions {
        fuel,
        cache: Some(dir.to_path_buf()),
        ..RuntimeOptions::default()
    })
    .expect("runtime")
}

fn stats(runtime: &Runtime) -> CacheStats {
    runtime.cache_stats().expect("the runtime has a cache")
}

/// The cache's entries, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("reading the cache directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    v.sort();
    v
}

fn count_vowels(runtime: &Runtime, kernel: KernelKind) -> Vec<u8> {
    let options = PluginOptions {
        kernel,
        ..PluginOptions::default()
    };
    let mut plugin = Plugin::new(runtime, sample("count_vowels"), options).expect("loading");
    plugin
        .call("count_vowels", b"Hello, World!")
        .expect("calling")
}

/// Cache statistics: hits, misses, stores, warnings.
fn counts(hits: u64, misses: u64, stored: u64, warnings: u64) -> CacheStats {
    CacheStats {
        hits,
        misses,
        stored,
        warnings,
    }
}

#[test]
fn runtime_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Runtime>();
}

#[test]
fn no_cache_by_default() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    assert_eq!(runtime.cache_stats(), None);
    assert_eq!(count_vowels(&runtime, KernelKind::Core), VOWELS);
}

#[test]
fn a_second_runtime_loads_the_plugin_and_kernel_without_compiling() {
    let dir = temp_dir("second");
    let first = cached(&dir, false);
    assert_eq!(count_vowels(&first, KernelKind::Core), VOWELS);
    // The plugin and the core kernel, compiled and stored; the kernel component is not
    // compiled, since no plugin used it.
    assert_eq!(stats(&first), counts(0, 2, 2, 0));
    assert_eq!(entries(&dir).len(), 2);
    drop(first);

    let second = cached(&dir, false);
    assert_eq!(count_vowels(&second, KernelKind::Core), VOWELS);
    assert_eq!(stats(&second), counts(2, 0, 0, 0));
    // The same runtime, the same plugin again: the kernel is kept in memory, the plugin
    // comes from the cache once more.
    assert_eq!(count_vowels(&second, KernelKind::Core), VOWELS);
    assert_eq!(stats(&second).hits, 3);

    // The component backend: the kernel component is compiled on first use, then cached.
    assert_eq!(count_vowels(&second, KernelKind::Component), VOWELS);
    assert_eq!((stats(&second).hits, stats(&second).misses), (4, 1));
    assert_eq!(entries(&dir).len(), 3);
    let third = cached(&dir, false);
    assert_eq!(count_vowels(&third, KernelKind::Component), VOWELS);
    assert_eq!((stats(&third).hits, stats(&third).misses), (2, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn composed_plugins_and_given_kernels_are_cached_too() {
    let dir = temp_dir("composed");
    let component = componentize(sample("echo")).expect("componentize");
    let kernel = plugin_host::artifacts::KERNEL_CORE;
    for (round, want) in [(0, (0, 2)), (1, (2, 0))] {
        let runtime = cached(&dir, false);
        let mut plugin = ComposedPlugin::new(&runtime, &component, PluginOptions::default())
            .expect("composed plugin");
        assert_eq!(plugin.call("echo", b"hi").expect("call"), b"hi", "{round}");
        runtime.compile_kernel(kernel).expect("compile_kernel");
        let s = stats(&runtime);
        assert_eq!((s.hits, s.misses), want, "round {round}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wasm_bytes_and_engine_settings_are_part_of_the_key() {
    let dir = temp_dir("key");
    let wasm = sample("count_vowels");
    let run = |runtime: &Runtime, wasm: &[u8]| {
        let mut p = Plugin::new(runtime, wasm, PluginOptions::default()).expect("loading");
        p.call("count_vowels", b"Hello, World!").expect("calling")
    };
    let first = cached(&dir, false);
    assert_eq!(run(&first, wasm), VOWELS);
    let before = entries(&dir);
    assert_eq!(before.len(), 2);

    // One more custom section: the same code, other bytes, another key.
    let mut changed = wasm.to_vec();
    changed.extend_from_slice(&[0, 5, 4, b't', b'e', b's', b't']);
    let second = cached(&dir, false);
    assert_eq!(run(&second, &changed), VOWELS);
    let s = stats(&second);
    assert_eq!(
        (s.hits, s.misses),
        (1, 1),
        "the kernel hits, the plugin misses"
    );
    assert_eq!(entries(&dir).len(), 3);

    // Fuel on: another engine configuration, so neither the plugin nor the kernel hits.
    let fuel = cached(&dir, true);
    assert_eq!(run(&fuel, wasm), VOWELS);
    let s = stats(&fuel);
    assert_eq!((s.hits, s.misses, s.warnings), (0, 2, 0));
    let after = entries(&dir);
    assert_eq!(after.len(), 5);
    assert!(before.iter().all(|p| after.contains(p)));
    // And both configurations keep hitting their own entries.
    let s = stats(&{
        let r = cached(&dir, true);
        run(&r, wasm);
        r
    });
    assert_eq!((s.hits, s.misses), (2, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_or_foreign_entries_are_refused_with_a_warning() {
    let dir = temp_dir("corrupt");
    assert_eq!(count_vowels(&cached(&dir, false), KernelKind::Core), VOWELS);
    let files = entries(&dir);
    assert_eq!(files.len(), 2);
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    type Damage = (&'static str, fn(&mut Vec<u8>));
    let damages: [Damage; 4] = [
        ("one byte of the payload flipped", |b| {
            let i = b.len() / 2;
            b[i] ^= 1;
        }),
        ("truncated", |b| b.truncate(b.len() / 3)),
        ("empty", Vec::clear),
        ("not an entry at all", |b| *b = b"\0asm garbage".to_vec()),
    ];
    for (what, damage) in damages {
        for (f, original) in files.iter().zip(&originals) {
            let mut bytes = original.clone();
            damage(&mut bytes);
            std::fs::write(f, bytes).unwrap();
        }
        let runtime = cached(&dir, false);
        assert_eq!(count_vowels(&runtime, KernelKind::Core), VOWELS, "{what}");
        let s = stats(&runtime);
        assert_eq!(
            (s.hits, s.misses, s.stored, s.warnings),
            (0, 2, 2, 2),
            "{what}: both entries refused with a warning each, compiled and stored anew"
        );
        // Stored anew: the next runtime hits again, silently.
        let runtime = cached(&dir, false);
        assert_eq!(count_vowels(&runtime, KernelKind::Core), VOWELS, "{what}");
        let s = stats(&runtime);
        assert_eq!((s.hits, s.warnings), (2, 0), "{what}");
    }

    // A sound entry under another entry's name (a file copied or renamed): refused by the
    // key it carries, not loaded as the wrong code.
    std::fs::copy(&files[0], &files[1]).unwrap();
    let runtime = cached(&dir, false);
    assert_eq!(count_vowels(&runtime, KernelKind::Core), VOWELS);
    let s = stats(&runtime);
    assert_eq!((s.hits, s.misses, s.warnings), (1, 1, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_cache_directory_gives_a_warning_and_a_working_plugin() {
    // A directory that cannot be created: its parent is a file (even root cannot do this).
    let dir = temp_dir("unusable");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let runtime = cached(&file.join("cache"), false);
    assert_eq!(count_vowels(&runtime, KernelKind::Core), VOWELS);
    let s = stats(&runtime);
    assert_eq!((s.hits, s.misses, s.stored, s.warnings), (0, 2, 0, 1));

    // A directory that exists but takes no new files (even from root): nothing is stored,
    // one warning for all the failed writes.
    #[cfg(target_os = "linux")]
    {
        let runtime = cached(Path::new("/proc/self"), false);
        assert_eq!(count_vowels(&runtime, KernelKind::Core), VOWELS);
        assert_eq!(count_vowels(&runtime, KernelKind::Component), VOWELS);
        let s = stats(&runtime);
        assert_eq!((s.hits, s.misses, s.stored, s.warnings), (0, 4, 0, 1));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_plugins_keep_their_error_and_store_nothing() {
    let dir = temp_dir("invalid");
    let runtime = cached(&dir, false);
    let echo = sample("echo");
    let e = Plugin::new(&runtime, &echo[..echo.len() / 2], PluginOptions::default())
        .expect_err("a truncated module");
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with("the plugin is not a valid WebAssembly module: "),
        "{msg}"
    );
    assert_eq!(stats(&runtime).stored, 0);
    assert!(entries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

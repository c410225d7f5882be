//! The compilation cache: compiled plugins and kernels on disk, reused across processes
//! ([`RuntimeOptions::cache`](crate::RuntimeOptions::cache)).
//!
//! An entry is what wasmtime's `Module::serialize` / `Component::serialize` gives for one
//! wasm binary on one engine configuration, in a file named by its key:
//!
//! - **the key** is the SHA-256 of a domain string, the artifact kind (module or
//!   component), wasmtime's [`Engine::precompile_compatibility_hash`] (the target, every
//!   compiler flag, the tunables (fuel, epochs, memory layout), the wasm features and the
//!   full wasmtime version, `48.0.8`) fed whole into SHA-256, and the wasm bytes. A change
//!   of any of them is another file name, so a stale or foreign entry is never looked up;
//! - **the file** is a header (magic, the key again, the SHA-256 of key and payload) and
//!   the payload. It is written to a temporary file and renamed into place, so a reader
//!   sees a whole entry or none, even with processes writing the same entry at once.
//!
//! Loading an entry checks, before any byte reaches wasmtime's `unsafe` deserialization,
//! that the magic matches, that the key in the file is the key looked up (a file renamed or
//! copied under another name is refused), that the digest of key and payload matches (a
//! truncated or altered file is refused), and that wasmtime recognises the payload as an
//! artifact of the expected kind; wasmtime then checks again that the artifact's version and
//! engine settings match the engine. An entry that fails any check, or a cache directory
//! that cannot be read, created or written, costs one line on stderr and a compilation,
//! never a failure. The digest detects accidents, not an attacker: whoever can write the
//! cache directory can write an entry that passes, so the directory must be as trusted as
//! the program itself (it is created with mode 0700; the default one is in the user's home).
//!
//! Entries are never evicted; deleting the directory (or any file in it) is always safe.

use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled, Result};

/// The first bytes of every entry (and the format's version: a new format, a new magic).
const MAGIC: &[u8; 16] = b"ekh-cache-v1\n\0\0\0";
/// Magic, key, digest.
const HEADER: usize = MAGIC.len() + 32 + 32;
/// Entries' file names end with this.
const SUFFIX: &str = ".cwasm";

/// What a runtime's compilation cache did, for tests and diagnostics
/// ([`Runtime::cache_stats`](crate::Runtime::cache_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Artifacts loaded from the cache instead of compiled.
    pub hits: u64,
    /// Artifacts compiled (absent, refused or unreadable entries; a cache that cannot be
    /// used).
    pub misses: u64,
    /// Entries written.
    pub stored: u64,
    /// Warnings printed (each one line on stderr).
    pub warnings: u64,
}

/// The kinds of artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Module,
    Component,
    /// A classic plugin composed into a component ([`crate::componentize`]), keyed by the
    /// plugin's bytes and the composition's fingerprint, so that a hit skips composing too.
    Composed,
}

/// What the cache needs of `Module` and `Component`.
trait Artifact: Sized {
    const KIND: Kind;
    fn compile(engine: &Engine, wasm: &[u8]) -> Result<Self>;
    fn serialize(&self) -> Result<Vec<u8>>;
    /// # Safety
    ///
    /// `bytes` must be what `serialize` gave for an engine of the same configuration.
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Self>;
}

macro_rules! artifact {
    ($ty:ident, $kind:ident) => {
        impl Artifact for $ty {
            const KIND: Kind = Kind::$kind;
            fn compile(engine: &Engine, wasm: &[u8]) -> Result<Self> {
                $ty::new(engine, wasm)
            }
            fn serialize(&self) -> Result<Vec<u8>> {
                $ty::serialize(self)
            }
            unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Self> {
                // SAFETY: the caller guarantees that `bytes` is an artifact of this type
                // serialized by wasmtime for an engine of this configuration, which is the
                // contract of its `deserialize`.
                unsafe { $ty::deserialize(engine, bytes) }
            }
        }
    };
}

artifact!(Module, Module);
artifact!(Component, Component);

/// A `Hasher` that feeds everything it is given into SHA-256, so that wasmtime's
/// `impl Hash` of the engine's compilation settings becomes part of the key whole, not
/// folded into 64 bits. (`finish` is never used for the key.)
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }
}

/// A runtime's compilation cache: a directory and what the engine contributes to every key.
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// SHA-256 of the engine's compatibility hash.
    engine_digest: [u8; 32],
    /// Whether the directory could be made; if not, everything is compiled.
    usable: bool,
    /// Set after the first failed write: later writes are not tried (one warning).
    write_failed: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    warnings: AtomicU64,
}

impl CompileCache {
    /// The cache in `dir` for `engine`, creating the directory (mode 0700) if it is missing.
    /// A directory that cannot be made gives a warning and a cache that compiles everything.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> CompileCache {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let cache = CompileCache {
            dir: dir.to_path_buf(),
            engine_digest: h.0.finalize().into(),
            usable: true,
            write_failed: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
        };
        match create_dir(dir) {
            Ok(()) => cache,
            Err(e) => {
                cache.warn(&format!(
                    "cannot create {}: {e}; compiling without the cache",
                    dir.display()
                ));
                CompileCache {
                    usable: false,
                    ..cache
                }
            }
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            warnings: self.warnings.load(Ordering::Relaxed),
        }
    }

    /// `wasm` compiled as a module: from the cache, or compiled and stored.
    pub(crate) fn module(&self, engine: &Engine, wasm: &[u8]) -> Result<Module> {
        self.get(engine, wasm)
    }

    /// `wasm` compiled as a component: from the cache, or compiled and stored.
    pub(crate) fn component(&self, engine: &Engine, wasm: &[u8]) -> Result<Component> {
        self.get(engine, wasm)
    }

    /// The plugin `plugin` composed by `compose` (whose output depends on nothing but the
    /// plugin and `fingerprint`) and compiled: from the cache, or composed, compiled and
    /// stored.
    pub(crate) fn composed(
        &self,
        engine: &Engine,
        plugin: &[u8],
        fingerprint: &[u8],
        compose: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Component> {
        let key = [fingerprint, plugin].concat();
        self.get_with(engine, Kind::Composed, &key, || {
            Component::new(engine, compose()?)
        })
    }

    fn get<A: Artifact>(&self, engine: &Engine, wasm: &[u8]) -> Result<A> {
        self.get_with(engine, A::KIND, wasm, || A::compile(engine, wasm))
    }

    /// The artifact keyed by `kind` and `source`: loaded, or made by `make` and stored.
    fn get_with<A: Artifact>(
        &self,
        engine: &Engine,
        kind: Kind,
        source: &[u8],
        make: impl FnOnce() -> Result<A>,
    ) -> Result<A> {
        if !self.usable {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return make();
        }
        let key = self.key(kind, source);
        let path = self.path(&key);
        if let Some(artifact) = self.load::<A>(engine, &key, &path) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(artifact);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Compilation errors (an invalid plugin) are the caller's, unchanged; nothing is
        // stored for them.
        let artifact = make()?;
        if !self.write_failed.load(Ordering::Relaxed) {
            match artifact.serialize() {
                Ok(bytes) => self.store(&key, &path, &bytes),
                Err(e) => self.warn(&format!("cannot serialize a compiled artifact: {e}")),
            }
        }
        Ok(artifact)
    }

    /// The key of `wasm` compiled as `kind` on this engine.
    fn key(&self, kind: Kind, wasm: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"extism-kernel-host compilation cache key v1\0");
        h.update(match kind {
            Kind::Module => b"module\0",
            Kind::Component => b"compnt\0",
            Kind::Composed => b"compos\0",
        });
        h.update(self.engine_digest);
        h.update((wasm.len() as u64).to_le_bytes());
        h.update(wasm);
        h.finalize().into()
    }

    fn path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", hex(key)))
    }

    /// The entry for `key`, if there is a sound one; a warning for one that is not.
    fn load<A: Artifact>(&self, engine: &Engine, key: &[u8; 32], path: &Path) -> Option<A> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => {
                self.warn(&format!("cannot read {}: {e}; compiling", path.display()));
                return None;
            }
        };
        let payload = match check_entry(&bytes, key, A::KIND) {
            Ok(p) => p,
            Err(why) => {
                self.warn(&format!(
                    "ignoring {}: {why}; compiling it anew",
                    path.display()
                ));
                return None;
            }
        };
        // SAFETY: `check_entry` has verified that `payload` is, byte for byte, what this
        // cache stored for `key` (the key and the SHA-256 of key and payload in the header
        // match), and this cache stores only what `A::serialize` gave for an artifact that
        // wasmtime compiled itself on an engine whose compatibility hash is part of `key`:
        // an engine of this configuration and this wasmtime version. That is
        // `deserialize`'s contract (bytes from wasmtime's own serialization, for a
        // compatible engine); wasmtime checks the version and settings again and returns an
        // error, not undefined behaviour, when they differ. The remaining trust is in the
        // cache directory itself (see the module documentation).
        match unsafe { A::deserialize(engine, payload) } {
            Ok(a) => Some(a),
            Err(e) => {
                self.warn(&format!(
                    "ignoring {}: {e}; compiling it anew",
                    path.display()
                ));
                None
            }
        }
    }

    /// Writes the entry for `key`: a temporary file renamed into place.
    fn store(&self, key: &[u8; 32], path: &Path, payload: &[u8]) {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            hex(key),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut entry = Vec::with_capacity(HEADER + payload.len());
        entry.extend_from_slice(MAGIC);
        entry.extend_from_slice(key);
        entry.extend_from_slice(&digest(key, payload));
        entry.extend_from_slice(payload);
        let result = fs::write(&tmp, &entry).and_then(|()| fs::rename(&tmp, path));
        match result {
            Ok(()) => {
                self.stored.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                if !self.write_failed.swap(true, Ordering::Relaxed) {
                    self.warn(&format!(
                        "cannot write to {}: {e}; not storing compiled artifacts",
                        self.dir.display()
                    ));
                }
            }
        }
    }

    /// One line on stderr.
    fn warn(&self, message: &str) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "warning: compilation cache: {}",
            crate::error::one_line(message)
        );
    }
}

/// The payload of `entry` if it is a sound entry of `kind` stored for `key`; why not
/// otherwise.
fn check_entry<'a>(
    entry: &'a [u8],
    key: &[u8; 32],
    kind: Kind,
) -> std::result::Result<&'a [u8], &'static str> {
    if entry.len() < HEADER || &entry[..MAGIC.len()] != MAGIC {
        return Err("not a cache entry of this format");
    }
    let (stored_key, rest) = entry[MAGIC.len()..].split_at(32);
    let (stored_digest, payload) = rest.split_at(32);
    if stored_key != key {
        return Err("the entry belongs to another key");
    }
    if stored_digest != digest(key, payload) {
        return Err("its digest does not match (truncated or corrupt)");
    }
    let expected = match kind {
        Kind::Module => Precompiled::Module,
        Kind::Component | Kind::Composed => Precompiled::Component,
    };
    if Engine::detect_precompiled(payload) != Some(expected) {
        return Err("not a wasmtime artifact of the expected kind");
    }
    Ok(payload)
}

/// SHA-256 of key and payload: what an entry's header holds.
fn digest(key: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    h.update(payload);
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `create_dir_all`, with mode 0700 for what it creates on Unix.
fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

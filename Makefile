# Everything a fresh machine needs is installed by `make setup` (the other targets run it).
CARGO ?= cargo
WASM_TARGETS := wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2

.PHONY: setup build demo test test-js js-artifacts check bench bench-js bench-startup bench-startup-extism fuzz fuzz-setup fuzz-smoke miri clean

setup:
	@installed="$$(rustup target list --installed)"; \
	for t in $(WASM_TARGETS); do \
	  echo "$$installed" | grep -qx "$$t" || rustup target add "$$t"; \
	done

# Builds every wasm artifact (printing their sizes) and the host.
build: setup
	$(CARGO) run -q -p kernel-build --release -- target/wasm
	$(CARGO) build -p host-demo --release

# The main job: every sample plugin on both kernel forms, side by side.
demo: setup
	$(CARGO) run -q -p host-demo --release -- demo

# Native unit and property tests, the contract suite on both built forms, the plugin tests;
# then kernel-core's wasm32-only doc examples (`HeapAllocator` takes linear memory only) and
# the JavaScript host's tests (test-js).
test: setup
	$(CARGO) test --workspace
	$(CARGO) test --doc -p kernel-core --target wasm32-wasip1
	$(MAKE) test-js

# The JavaScript host (js/, see js/README.md) with Node's test runner: the kernel component
# and the composed sample plugins transpiled by jco (pinned in js/package-lock.json) into
# target/js, run by js/extism-host.js and compared with `host-demo call`. Needs Node 20 and
# npm (the registry, for `npm ci`, which runs again only when the lockfile changes).
JS_OUT := target/js
JS_SAMPLES := echo count_vowels fail alloc_churn host_fn http wasi_print wasi_files
JCO := js/node_modules/.bin/jco transpile --instantiation async --no-typescript --quiet

test-js: js-artifacts
	cd js && node --test test/*.test.mjs

js/node_modules/.package-lock.json: js/package.json js/package-lock.json
	cd js && npm ci --no-audit --no-fund

# The kernel component (kernel-build writes every artifact, the plain sample plugins too),
# each sample composed (`host-demo componentize`), and jco's output for each, in $(JS_OUT).
js-artifacts: setup js/node_modules/.package-lock.json
	$(CARGO) run -q -p kernel-build --release -- $(JS_OUT)/artifacts
	$(CARGO) build -q -p host-demo --release
	for s in $(JS_SAMPLES); do \
	  $(CARGO) run -q -p host-demo --release -- componentize sample:$$s -o $(JS_OUT)/$$s.component.wasm || exit 1; \
	done
	rm -rf $(JS_OUT)/kernel $(addprefix $(JS_OUT)/,$(JS_SAMPLES))
	$(JCO) $(JS_OUT)/artifacts/extism-kernel.component.wasm -o $(JS_OUT)/kernel --name kernel
	for s in $(JS_SAMPLES); do $(JCO) $(JS_OUT)/$$s.component.wasm -o $(JS_OUT)/$$s --name $$s || exit 1; done
	echo '{"type": "module"}' > $(JS_OUT)/package.json

check: setup
	$(CARGO) fmt --all --check
	$(CARGO) fmt --all --check --manifest-path plugins/Cargo.toml
	$(CARGO) clippy --manifest-path plugins/Cargo.toml --target wasm32-unknown-unknown --workspace --exclude plugin-wasi-print --exclude plugin-wasi-files -- -D warnings
	$(CARGO) clippy --manifest-path plugins/Cargo.toml --target wasm32-wasip1 -p plugin-wasi-print -p plugin-wasi-files -- -D warnings
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Criterion benchmarks of our kernel (core module and component) against upstream's (the
# `extism` 1.41.0 package's kernel, fetched through cargo at bench time, never committed),
# and of whole plugins on those kernels and composed with ours, then the report:
# docs/bench/REPORT.md and SVG plots beside it, the tables printed, the README's table
# refreshed. About 6 minutes; see bench/src/lib.rs.
bench: setup
	$(CARGO) build -p host-demo --release
	$(CARGO) bench -p kernel-bench
	$(CARGO) run -q -p kernel-bench --release --bin report
	$(MAKE) bench-js

# Composed plugins under jco (js/extism-host.js) against Extism's JS SDK, same plugins, one
# Node process (js/bench.mjs; both pinned in js/package-lock.json); the table goes to
# docs/bench/JS.md. About 2 minutes.
bench-js: js-artifacts
	node js/bench.mjs | tee docs/bench/JS.md

# Whole-process start-up of `host-demo call` (release): one count_vowels call per process,
# 20 runs each with the compilation cache off, cold and warm; medians. Part of `make bench`'s
# report too.
bench-startup: setup
	$(CARGO) build -p host-demo --release
	$(CARGO) run -q -p kernel-bench --release --bin startup

# The same, next to the same call through Extism's own runtime: a scratch program
# (bench/extism-startup/, copied to target/extism-startup/ and built there with its own
# lock file, never part of the workspace) on the `extism` 1.30.0 crate. Its first build
# takes several minutes (its own wasmtime). `make bench` then adds its row to the report.
EXTISM_STARTUP := $(or $(CARGO_TARGET_DIR),target)/extism-startup
bench-startup-extism: setup
	$(CARGO) build -p host-demo --release
	mkdir -p $(EXTISM_STARTUP)/src
	@for f in Cargo.toml.in:Cargo.toml Cargo.lock:Cargo.lock main.rs:src/main.rs; do \
	  from=bench/extism-startup/$${f%%:*}; to=$(EXTISM_STARTUP)/$${f#*:}; \
	  cmp -s $$from $$to || cp $$from $$to; \
	done
	env -u CARGO_TARGET_DIR $(CARGO) build --release --locked --manifest-path $(EXTISM_STARTUP)/Cargo.toml --target-dir $(EXTISM_STARTUP)/target
	$(CARGO) run -q -p kernel-bench --release --bin startup -- --extism $(EXTISM_STARTUP)/target/release/extism-startup

# The allocator's core logic under miri (nightly; slow, so not part of `make test`).
miri:
	rustup component add --toolchain nightly miri rust-src
	MIRIFLAGS=-Zmiri-strict-provenance $(CARGO) +nightly miri test -p kernel-core --lib -- --skip churn --skip seeded --skip proptest --skip length_and_free --skip metadata_growth --skip reset_cost --skip metadata_cannot --skip record_table --skip metadata_is_out --skip shadow_model

# libFuzzer targets (fuzz/, its own workspace; see fuzz/README.md): `actions` (the action
# generator against a native kernel), `artifacts` (the built core module and component in
# lockstep with native twins), `componentize` (wasm-smith modules through componentize) and
# `host_functions` (the Extism host functions given anything). Installs cargo-fuzz when
# missing. New inputs go to fuzz/corpus/TARGET (not in git); fuzz/seeds/TARGET is a small
# committed seed corpus; crashes land in fuzz/artifacts/TARGET.
FUZZ_TARGET ?= actions
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 60
# The three targets that run wasm are slower per input and share the smoke run's budget.
FUZZ_SMOKE_WASM_SECONDS ?= 40
# cargo-fuzz passes `-Z` flags to rustc: the toolchain `make setup` prepared (its wasm
# targets are the ones plugin-host's and host-fixtures' build scripts need; a nightly without
# them cannot build the fuzz workspace), with RUSTC_BOOTSTRAP=1 (stable ships the
# AddressSanitizer runtime too), so a machine that cannot download a toolchain still fuzzes.
# RUST_LIB_BACKTRACE=0: no backtrace captured in every anyhow/wasmtime error (componentize
# makes and drops many; with RUST_BACKTRACE=1 in the environment it ran at half the speed);
# panics keep theirs.
FUZZ_CARGO = RUSTC_BOOTSTRAP=1 RUST_LIB_BACKTRACE=0 $(CARGO)
FUZZ_FLAGS = -max_len=8192 -timeout=60 -print_final_stats=1
# $(call fuzz_run,TARGET,SECONDS)
fuzz_run = cd fuzz && mkdir -p corpus/$(1) && $(FUZZ_CARGO) fuzz run $(1) corpus/$(1) seeds/$(1) -- -max_total_time=$(2) $(FUZZ_FLAGS)

fuzz-setup:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

# FUZZ_SECONDS (default 600) of one target: FUZZ_TARGET (default actions).
fuzz: fuzz-setup setup
	$(call fuzz_run,$(FUZZ_TARGET),$(FUZZ_SECONDS))

# About four minutes of fuzzing, part of CI (.ci/run), after `make test`: `actions` for
# FUZZ_SMOKE_SECONDS, each other target for FUZZ_SMOKE_WASM_SECONDS. One build first (all
# targets share it; the first one builds wasmtime under the sanitizer, which takes a while).
fuzz-smoke: fuzz-setup setup
	cd fuzz && $(FUZZ_CARGO) fuzz build
	$(call fuzz_run,actions,$(FUZZ_SMOKE_SECONDS))
	$(call fuzz_run,artifacts,$(FUZZ_SMOKE_WASM_SECONDS))
	$(call fuzz_run,componentize,$(FUZZ_SMOKE_WASM_SECONDS))
	$(call fuzz_run,host_functions,$(FUZZ_SMOKE_WASM_SECONDS))

clean:
	$(CARGO) clean

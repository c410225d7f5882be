# Everything a fresh machine needs is installed by `make setup` (the other targets run it).
CARGO ?= cargo
WASM_TARGETS := wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2

.PHONY: setup build demo test test-js js-artifacts check bench bench-startup bench-startup-extism fuzz fuzz-setup fuzz-smoke miri clean

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
JS_SAMPLES := echo count_vowels fail alloc_churn host_fn http
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
# then the report: docs/bench/REPORT.md and SVG plots beside it, the tables printed, the
# README's table refreshed. About 5 minutes; see bench/src/lib.rs.
bench: setup
	$(CARGO) build -p host-demo --release
	$(CARGO) bench -p kernel-bench
	$(CARGO) run -q -p kernel-bench --release --bin report

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

# The kernel under libFuzzer (fuzz/, its own workspace): fuzzer bytes drive the shared action
# generator against a native kernel, with the shadow model and the invariant scanner after
# every action. Installs cargo-fuzz when missing. New inputs go to fuzz/corpus
# (not in git); fuzz/seeds is a small committed seed corpus; crashes land in fuzz/artifacts.
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 60
# cargo-fuzz passes `-Z` flags to rustc: nightly when it is installed, otherwise the stable
# toolchain with RUSTC_BOOTSTRAP=1 (stable ships the AddressSanitizer runtime too), so a
# machine that cannot download a toolchain still fuzzes.
FUZZ_CARGO = $(shell rustup toolchain list | grep -q '^nightly' && echo '$(CARGO) +nightly' || echo 'RUSTC_BOOTSTRAP=1 $(CARGO)')
FUZZ_RUN = cd fuzz && mkdir -p corpus/actions && $(FUZZ_CARGO) fuzz run actions corpus/actions seeds/actions --
FUZZ_FLAGS = -max_len=8192 -print_final_stats=1

fuzz-setup:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz: fuzz-setup
	$(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS)

# About a minute of fuzzing: part of CI (.ci/run), after `make test`.
fuzz-smoke: fuzz-setup
	$(FUZZ_RUN) -max_total_time=$(FUZZ_SMOKE_SECONDS) $(FUZZ_FLAGS)

clean:
	$(CARGO) clean

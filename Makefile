# Everything a fresh machine needs is installed by `make setup` (the other targets run it).
CARGO ?= cargo
WASM_TARGETS := wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2

.PHONY: setup build demo test check bench fuzz miri clean

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

# Native unit and property tests, the contract suite on both built forms, the plugin tests.
test: setup
	$(CARGO) test --workspace

check: setup
	$(CARGO) fmt --all --check
	$(CARGO) fmt --all --check --manifest-path plugins/Cargo.toml
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The allocator's core logic under miri (nightly; slow, so not part of `make test`).
miri:
	rustup component add --toolchain nightly miri rust-src
	MIRIFLAGS=-Zmiri-strict-provenance $(CARGO) +nightly miri test -p kernel-core --lib -- --skip churn --skip seeded --skip proptest --skip length_and_free --skip metadata_growth --skip reset_cost --skip metadata_cannot

clean:
	$(CARGO) clean

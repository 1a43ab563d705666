# meshwake: `make demo` (the main job) and `make test` (all tests) set up everything they need.
SHELL := /bin/bash
TOPOLOGY ?= demo/topologies/default.yaml
# Which build of the filter `make demo` and `make soak` run: wasm (default) or native.
BUILD ?= wasm
FILTER_MODULE = $(if $(filter native,$(BUILD)),target/libmeshwake.so,target/meshwake.wasm)
CARGO ?= cargo

.PHONY: all setup build test lint demo demo-scenarios bench soak fuzz oci deploy-gen clean

all: build

setup:
	@scripts/setup.sh test

## Build both filters: target/meshwake.wasm and the propagation-only target/meshwake-propagate.wasm
## (+ .sha256 each, and the no-op baseline) and the native Envoy dynamic module
## target/libmeshwake.so (+ .sha256; for Envoy 1.40 on x86_64 Linux).
build:
	@scripts/setup.sh base
	@scripts/build-wasm.sh
	@scripts/build-native.sh
	@ls -l target/meshwake.wasm target/meshwake-propagate.wasm target/libmeshwake.so

## Every test: lint, native and wasm unit tests, real-Envoy integration tests.
test:
	@scripts/test.sh

lint:
	@$(CARGO) fmt --all --check
	@$(CARGO) clippy -q --workspace --all-targets -- -D warnings
	@$(CARGO) clippy -q -p meshwake-filter --all-targets --features propagation-only,value-reads -- -D warnings

## The main job: a local mesh, a bad canary, and the impact analysis that names it (BUILD=native: the native filter).
demo: build
	@scripts/setup.sh demo
	@$(CARGO) build -q --release -p meshwake -p meshwake-demo-service
	@target/release/meshwake demo --topology $(TOPOLOGY) --wasm $(FILTER_MODULE)

## Every scenario topology of demo/topologies/ end to end, each with its expected verdict (~1 min each).
demo-scenarios: build
	@scripts/setup.sh demo
	@$(CARGO) build -q --release -p meshwake -p meshwake-demo-service
	@$(CARGO) test -q --release -p meshwake --test demo_scenarios -- --include-ignored --test-threads 1

## Package target/meshwake.wasm as an OCI image (Istio Wasm image spec) in target/oci/; pins digests in deploy/.
oci: build
	@scripts/setup.sh oci
	@bash scripts/oci.sh

## Regenerate envoy-config/ ready-to-use configs, the compose stack and Istio manifests.
deploy-gen:
	@python3 deploy/gen.py

## Side-by-side benchmark vs Envoy's OpenTelemetry tracer → docs/bench-latest.{md,json}. BENCH_SUSTAINED_S=60 sets the sustained phase.
bench:
	@scripts/bench.sh

## Fuzz every parser that sees outside bytes (cargo-fuzz/libFuzzer), FUZZ_SECONDS per target;
## AddressSanitizer with rustup's nightly when present (FUZZ_ASAN=0: without).
FUZZ_SECONDS ?= 60
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

## Mixed normal/hostile traffic with a flapping collector for SOAK_SECONDS; memory curve.
SOAK_SECONDS ?= 600
soak: build
	@MESHWAKE_BUILD=$(BUILD) SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

clean:
	rm -rf target/test-runs target/test-logs target/demo

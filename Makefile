# meshwake: `make demo` (the main job) and `make test` (all tests) set up everything they need.
SHELL := /bin/bash
TOPOLOGY ?= demo/topologies/default.yaml
CARGO ?= cargo

.PHONY: all setup build test lint demo bench soak fuzz oci deploy-gen clean

all: build

setup:
	@scripts/setup.sh test

## Build the optimized module: target/meshwake.wasm (+ .sha256) and target/meshwake-noop.wasm.
build:
	@scripts/setup.sh base
	@scripts/build-wasm.sh
	@ls -l target/meshwake.wasm

## Every test: lint, native and wasm unit tests, real-Envoy integration tests.
test:
	@scripts/test.sh

lint:
	@$(CARGO) fmt --all --check
	@$(CARGO) clippy -q --workspace --all-targets -- -D warnings

## The main job: a local mesh, a bad canary, and the impact analysis that names it.
demo: build
	@scripts/setup.sh demo
	@$(CARGO) build -q --release -p meshwake -p meshwake-demo-service
	@target/release/meshwake demo --topology $(TOPOLOGY)

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
	@SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

clean:
	rm -rf target/test-runs target/test-logs target/demo

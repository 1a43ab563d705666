# meshwake: `make demo` (the main job) and `make test` (all tests) set up everything they need.
SHELL := /bin/bash
TOPOLOGY ?= demo/topologies/default.yaml
CARGO ?= cargo

.PHONY: all setup build test lint demo bench soak fuzz oci clean

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

clean:
	rm -rf target/test-runs target/test-logs target/demo

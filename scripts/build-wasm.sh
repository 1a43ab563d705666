#!/usr/bin/env bash
# Builds the deployable modules target/meshwake.wasm and target/meshwake-propagate.wasm
# (+ .sha256 each) and the no-op baseline and probe modules.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
use_immediate_abort
out="$ROOT/target/wasm-build/wasm32-wasip1/wasm"
# The propagation-only module first: the same crate with a feature, so its cdylib is copied
# out before the full build writes the same file name.
wasm_cargo build -q --profile wasm -p meshwake-filter --features propagation-only
cp "$out/meshwake_filter.wasm" "$ROOT/target/meshwake-propagate.built.wasm"
wasm_cargo build -q --profile wasm -p meshwake-filter -p meshwake-noop -p meshwake-probe
opt() { # in out
  # shellcheck disable=SC2086 # the feature list is word-split on purpose
  wasm-opt -O3 $WASM_FEATURES \
    --strip-debug --strip-producers --strip-target-features "$1" -o "$2.tmp" >"$ROOT/target/wasm-opt.log" 2>&1 \
    || { tail -20 "$ROOT/target/wasm-opt.log" >&2; die "wasm-opt failed on $1"; }
  mv "$2.tmp" "$2"
}
# shellcheck disable=SC2086 # the export list is word-split on purpose
keep_exports "$out/meshwake_filter.wasm" "$ROOT/target/meshwake.linked.wasm" $MESHWAKE_EXPORTS
opt "$ROOT/target/meshwake.linked.wasm" "$ROOT/target/meshwake.wasm"
# shellcheck disable=SC2086
keep_exports "$ROOT/target/meshwake-propagate.built.wasm" "$ROOT/target/meshwake-propagate.linked.wasm" $PROPAGATE_EXPORTS
opt "$ROOT/target/meshwake-propagate.linked.wasm" "$ROOT/target/meshwake-propagate.wasm"
opt "$out/meshwake_noop.wasm" "$ROOT/target/meshwake-noop.wasm"
opt "$out/meshwake_probe.wasm" "$ROOT/target/meshwake-probe.wasm"
(cd "$ROOT/target" && sha256sum meshwake.wasm > meshwake.wasm.sha256 \
  && sha256sum meshwake-propagate.wasm > meshwake-propagate.wasm.sha256)

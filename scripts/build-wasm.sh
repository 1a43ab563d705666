#!/usr/bin/env bash
# Builds the deployable module target/meshwake.wasm (+ .sha256) and the no-op baseline module.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
wasm_cargo build -q --profile wasm -p meshwake-filter -p meshwake-noop
out="$ROOT/target/wasm-build/wasm32-wasip1/wasm"
opt() { # in out
  # Rust's wasm32 default features (bulk memory, sign-ext, ...) are all in V8.
  wasm-opt -O3 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    --strip-debug --strip-producers --strip-target-features "$1" -o "$2.tmp" >"$ROOT/target/wasm-opt.log" 2>&1 \
    || { tail -20 "$ROOT/target/wasm-opt.log" >&2; die "wasm-opt failed on $1"; }
  mv "$2.tmp" "$2"
}
opt "$out/meshwake_filter.wasm" "$ROOT/target/meshwake.wasm"
opt "$out/meshwake_noop.wasm" "$ROOT/target/meshwake-noop.wasm"
(cd "$ROOT/target" && sha256sum meshwake.wasm > meshwake.wasm.sha256)

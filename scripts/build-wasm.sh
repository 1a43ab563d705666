#!/usr/bin/env bash
# Builds the deployable module target/meshwake.wasm (+ .sha256) and the no-op baseline module.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# Panic strategy immediate-abort (Rust 1.91+): a panic is a bare trap, without the panic
# runtime, messages and locations: -46 KB (docs/adr/0005-module-size.md). The filters never
# panic by construction (docs/adr/0001-no-panics.md); the cost is that the panic hook's log
# line is not written. Unstable, so only on wasm_cargo's Debian-toolchain path (RUSTC_BOOTSTRAP);
# CARGO_ENCODED_RUSTFLAGS wins over the RUSTFLAGS wasm_cargo sets, so its flags are repeated.
if ! rustup target list --installed 2>/dev/null | grep -qx "${WASM_TARGET:-wasm32-wasip1}"; then
  CARGO_ENCODED_RUSTFLAGS="$(printf '%s\x1f' "--remap-path-prefix=$ROOT=/meshwake" \
    -Clink-self-contained=no -Lnative=/usr/lib/wasm32-wasi -Zunstable-options)-Cpanic=immediate-abort"
  export CARGO_ENCODED_RUSTFLAGS
fi
wasm_cargo build -q --profile wasm -p meshwake-filter -p meshwake-noop -p meshwake-probe
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
opt "$out/meshwake_probe.wasm" "$ROOT/target/meshwake-probe.wasm"
(cd "$ROOT/target" && sha256sum meshwake.wasm > meshwake.wasm.sha256)

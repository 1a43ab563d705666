#!/usr/bin/env bash
# Builds the deployable modules target/meshwake.wasm and target/meshwake-propagate.wasm
# (+ .sha256 each) and the no-op baseline and probe modules.
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
out="$ROOT/target/wasm-build/wasm32-wasip1/wasm"
# The propagation-only module first: the same crate with a feature, so its cdylib is copied
# out before the full build writes the same file name.
wasm_cargo build -q --profile wasm -p meshwake-filter --features propagation-only
cp "$out/meshwake_filter.wasm" "$ROOT/target/meshwake-propagate.built.wasm"
wasm_cargo build -q --profile wasm -p meshwake-filter -p meshwake-noop -p meshwake-probe
opt() { # in out
  # Rust's wasm32 default features (bulk memory, sign-ext, ...) are all in V8.
  wasm-opt -O3 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    --strip-debug --strip-producers --strip-target-features "$1" -o "$2.tmp" >"$ROOT/target/wasm-opt.log" 2>&1 \
    || { tail -20 "$ROOT/target/wasm-opt.log" >&2; die "wasm-opt failed on $1"; }
  mv "$2.tmp" "$2"
}
# Envoy calls every `proxy_on_*` callback a module exports, and each call is a crossing into
# the VM (per body chunk, per trailer block, per stream for `proxy_on_done`/`_delete`).
# meshwake's own dispatcher (filters/wasm/src/dispatch.rs) exports only the callbacks it
# implements (docs/adr/0006); wasm-metadce keeps exactly those, drops any other export and the
# code only they reached. tests/tests/module_hygiene.rs checks the exports of the built module.
MESHWAKE_EXPORTS="memory _initialize proxy_abi_version_0_2_1 proxy_on_memory_allocate
  proxy_on_context_create proxy_on_vm_start proxy_on_configure proxy_on_tick
  proxy_on_request_headers proxy_on_response_headers proxy_on_log
  proxy_on_http_call_response"
# The propagation-only build: the same without the response and stream-end callbacks (a
# stream is done after its request headers; ADR 0006, decision 11).
# shellcheck disable=SC2086 # word-split on purpose
PROPAGATE_EXPORTS=$(printf '%s\n' $MESHWAKE_EXPORTS | grep -vx -e proxy_on_response_headers -e proxy_on_log)
keep_exports() { # in out names...
  local in="$1" out="$2" graph="$ROOT/target/wasm-exports.graph.json"; shift 2
  { printf '['; local sep=""
    for e in "$@"; do printf '%s{"name":"%s","root":true,"export":"%s"}' "$sep" "$e" "$e"; sep=","; done
    printf ']\n'; } >"$graph"
  wasm-metadce --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    -f "$graph" "$in" -o "$out" >"$ROOT/target/wasm-metadce.log" 2>&1 \
    || { tail -20 "$ROOT/target/wasm-metadce.log" >&2; die "wasm-metadce failed on $in"; }
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

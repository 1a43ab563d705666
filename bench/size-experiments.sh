#!/usr/bin/env bash
# Module size experiments: builds target/meshwake.wasm variants in target/size-exp/ (their own
# target dir, so the shared build cache is untouched) and prints the size after wasm-opt -O3.
# Usage: bench/size-experiments.sh [variant...]; variants: s z 3 s-pia z-pia
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
out="$ROOT/target/size-exp"
mkdir -p "$out"
build() { # name, then env assignments
  local name="$1"; shift
  local dir="$out/$name"
  if ! env "$@" bash -c "source scripts/lib.sh; wasm_cargo build -q --profile wasm -p meshwake-filter --target-dir '$dir' \${EXTRA:-}" >"$out/$name.log" 2>&1; then
    echo "$name: build failed (see $out/$name.log)"; return 0
  fi
  local w="$dir/wasm32-wasip1/wasm/meshwake_filter.wasm"
  wasm-opt -O3 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    --strip-debug --strip-producers --strip-target-features "$w" -o "$out/$name.wasm" >/dev/null 2>&1
  printf '%s: %s bytes (before wasm-opt %s)\n' "$name" "$(stat -c %s "$out/$name.wasm")" "$(stat -c %s "$w")"
}
for v in "${@:-s z 3 s-pia z-pia}"; do
  for v1 in $v; do
    case "$v1" in
      s|z|3) build "$v1" CARGO_PROFILE_WASM_OPT_LEVEL="$v1" ;;
      # panic_immediate_abort is a panic strategy since Rust 1.91; CARGO_ENCODED_RUSTFLAGS
      # wins over the RUSTFLAGS wasm_cargo sets, so repeat its flags there.
      s-pia|z-pia) build "$v1" CARGO_PROFILE_WASM_OPT_LEVEL="${v1%-pia}" \
        CARGO_ENCODED_RUSTFLAGS="$(printf '%s\x1f' "--remap-path-prefix=$ROOT=/meshwake" \
          -Clink-self-contained=no -Lnative=/usr/lib/wasm32-wasi -Zunstable-options)-Cpanic=immediate-abort" ;;
    esac
  done
done

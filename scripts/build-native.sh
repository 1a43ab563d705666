#!/usr/bin/env bash
# Builds the native filter target/libmeshwake.so (+ .sha256): the Envoy dynamic module, for
# x86_64 Linux and the Envoy release pinned in scripts/lib.sh (the ABI is Envoy-version-bound:
# docs/adr/0009-native-dynamic-module.md). `filter_name: noop` in the same library is the
# do-nothing baseline for benchmarks.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# Same bytes from any checkout folder, so the sha256 reproduces.
RUSTFLAGS="--remap-path-prefix=$ROOT=/meshwake ${RUSTFLAGS:-}" \
  cargo build -q --profile native -p meshwake-native
cp "$ROOT/target/native/libmeshwake.so" "$ROOT/target/libmeshwake.so.tmp"
mv "$ROOT/target/libmeshwake.so.tmp" "$ROOT/target/libmeshwake.so"
(cd "$ROOT/target" && sha256sum libmeshwake.so > libmeshwake.so.sha256)

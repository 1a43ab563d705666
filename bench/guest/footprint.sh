#!/usr/bin/env bash
# What one request runs in the module, per callback: the functions, their size, how often
# each is entered. Instruction-cache misses follow the code a request touches, not the
# module's size (docs/adr/0006, "Why CPU and instructions disagree").
#   bench/guest/footprint.sh [full|propagation] [requests]
# Builds a copy of the module that keeps function names (target/footprint-build, apart from
# the shipped build), instruments it with binaryen's `wasm-opt --log-execution` (an import
# called at each function entry and loop head), and drives it with `fuel.py`'s mock host
# and plugin configuration of `bench/run.py`. Prints JSON (fuel.py --footprint).
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
mode="${1:-full}" requests="${2:-64}"
work="$ROOT/target/footprint"
mkdir -p "$work"
case "$mode" in
  full) features="" exports="$MESHWAKE_EXPORTS" ;;
  propagation) features="--features propagation-only" exports="$PROPAGATE_EXPORTS" ;;
  *) die "mode: full or propagation" ;;
esac
use_immediate_abort
# shellcheck disable=SC2086 # word-split on purpose
CARGO_PROFILE_WASM_STRIP=none wasm_cargo build -q --profile wasm -p meshwake-filter $features \
  --target-dir "$ROOT/target/footprint-build"
# shellcheck disable=SC2086
KEEP_NAMES=1 keep_exports "$ROOT/target/footprint-build/wasm32-wasip1/wasm/meshwake_filter.wasm" \
  "$work/linked.wasm" $exports
# shellcheck disable=SC2086
wasm-opt -O3 -g $WASM_FEATURES "$work/linked.wasm" -o "$work/names.wasm"
# shellcheck disable=SC2086
wasm-opt -g $WASM_FEATURES --log-execution "$work/names.wasm" -o "$work/logged.wasm"
wasm-dis "$work/logged.wasm" -o "$work/logged.wat"
wasm-objdump -x -j Code "$work/names.wasm" > "$work/sizes.txt"
python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
ids, fn, lines = {}, None, open(f"{work}/logged.wat").read().splitlines()
for i, line in enumerate(lines):
    m = re.match(r"\s*\(func \$(\S+)", line)
    if m:
        fn = m.group(1)
    if "(call $log_execution" in line:
        ids[re.search(r"i32.const (\d+)", lines[i + 1]).group(1)] = fn
sizes = {m.group(2): int(m.group(1)) for m in
         (re.search(r"size=(\d+) <(.+)>", l) for l in open(f"{work}/sizes.txt")) if m}
json.dump(ids, open(f"{work}/ids.json", "w"))
json.dump(sizes, open(f"{work}/sizes.json", "w"))
PY
venv="$ROOT/target/footprint/venv"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q wasmtime; } \
  || die "cannot install the wasmtime Python package"
config=$(python3 -c "import json, sys; sys.path.insert(0, 'bench'); import run; print(json.dumps(run.PLUGIN['$mode']))")
"$venv/bin/python" bench/guest/fuel.py "$work/logged.wasm" "$config" "$requests" --footprint "$work"

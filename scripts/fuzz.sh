#!/usr/bin/env bash
# `make fuzz`: builds the cargo-fuzz (libFuzzer) targets in fuzz/ and runs each for
# FUZZ_SECONDS (default 60). Usage: scripts/fuzz.sh [target...] (default: every target).
#
# cargo-fuzz needs nightly compiler flags: Debian's rustc (rustc-web) with RUSTC_BOOTSTRAP=1.
# Debian's rustc ships no sanitizer runtimes, so targets are built with `--sanitizer none`
# (the fuzzed crates are safe Rust; libFuzzer's coverage and Rust's panics/overflow checks
# still apply). FUZZ_ASAN=1 builds with AddressSanitizer using rustup's rustc instead,
# which has the runtime (useful for the C-derived YAML parser behind the demo topology).
#
# Corpora: fuzz/seeds/<target>/ (spec examples, committed, read-only) and
# fuzz/corpus-run/<target>/ (what the fuzzer found, kept between runs, not committed).
# A crash is written to fuzz/artifacts/<target>/ and makes the script fail; reproduce it
# with `fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>`.
# Output ends with a cargo-like `test result:` line, so `make test` counts it.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_MAX_LEN="${FUZZ_MAX_LEN:-70000}"

ensure_deb rustc-web cargo-web g++
if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
  say "installing cargo-fuzz into $TOOLS (takes a few minutes once)"
  cargo install -q --locked --root "$TOOLS" cargo-fuzz >/dev/null 2>&1 || die "cargo install cargo-fuzz failed"
fi

if [ "${FUZZ_ASAN:-0}" = 1 ]; then
  rustc_bin="$(rustup which rustc 2>/dev/null)" || die "FUZZ_ASAN=1 needs rustup's rustc"
  sanitizer=address
else
  rustc_bin=/usr/bin/rustc
  sanitizer=none
fi
fuzz_env=(env RUSTC="$rustc_bin" RUSTC_BOOTSTRAP=1 PATH="/usr/bin:$PATH")

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -nE 's/^name = "([a-z0-9_]+)"$/\1/p' fuzz/Cargo.toml | grep -vx meshwake-fuzz)
fi

say "fuzz: building ${#targets[@]} targets (sanitizer: $sanitizer)"
build_log="$ROOT/target/fuzz-build.log"
mkdir -p "$ROOT/target"
# --fuzz-dir: the crate is fuzz/ itself; -O: optimized with debug assertions.
if ! "${fuzz_env[@]}" "$TOOLS/bin/cargo-fuzz" build -O --sanitizer "$sanitizer" --fuzz-dir fuzz \
    >"$build_log" 2>&1; then
  grep -E "^error|-->" "$build_log" | head -20 >&2 || true
  tail -20 "$build_log" >&2
  die "fuzz targets failed to build (log: target/fuzz-build.log)"
fi
bin_dir="$ROOT/fuzz/target/x86_64-unknown-linux-gnu/release"

passed=0; failed=0; failures=()
for t in "${targets[@]}"; do
  bin="$bin_dir/$t"
  [ -x "$bin" ] || die "no fuzz target $t (have: $(cd fuzz/fuzz_targets && ls | sed 's/\.rs$//' | tr '\n' ' '))"
  corpus="fuzz/corpus-run/$t"; artifacts="fuzz/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$ROOT/target/fuzz-$t.log"
  # The run corpus first: libFuzzer writes new inputs to it, never to the seeds.
  if "$bin" "$corpus" "fuzz/seeds/$t" -max_total_time="$FUZZ_SECONDS" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -max_len="$FUZZ_MAX_LEN" \
      -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
    echo "test fuzz::$t ... ok (${runs:-?} runs in ${FUZZ_SECONDS}s, corpus $(ls "$corpus" | wc -l))"
    passed=$((passed + 1))
  else
    crash=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
    echo "test fuzz::$t ... FAILED"
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -5 | sed 's/^/    /'
    echo "    input: ${crash:-see $log}; reproduce: $bin ${crash:-<input>}"
    failed=$((failed + 1)); failures+=("$t")
  fi
done
status=ok; [ "$failed" -eq 0 ] || status=FAILED
echo "test result: $status. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out"
[ "$failed" -eq 0 ] || die "fuzz targets crashed: ${failures[*]}"

#!/usr/bin/env bash
# `make fuzz`: builds the cargo-fuzz (libFuzzer) targets in fuzz/ and runs each for
# FUZZ_SECONDS (default 60). Usage: scripts/fuzz.sh [target...] (default: every target).
#
# Sanitizer: AddressSanitizer when rustup's nightly toolchain is present (`rustup run nightly
# rustc`; it ships the ASan runtime): the fuzzed crates are safe Rust, but their dependencies
# (the C-derived YAML parser behind the demo topology, prost, serde_json) are not all.
# Otherwise, falling back: Debian's rustc (rustc-web) with RUSTC_BOOTSTRAP=1 for cargo-fuzz's
# nightly flags, which has no sanitizer runtime, so `--sanitizer none` (libFuzzer's coverage
# and Rust's panics/overflow checks still apply). FUZZ_ASAN=0 forces the fallback,
# FUZZ_ASAN=1 fails when nightly is missing. The two builds use separate target dirs
# (fuzz/target-asan/, fuzz/target/), so switching does not rebuild the other.
#
# Corpora: fuzz/seeds/<target>/ (spec examples, committed, read-only) and
# fuzz/corpus-run/<target>/ (what the fuzzer found, kept between runs, not committed).
# A crash is written to fuzz/artifacts/<target>/ and makes the script fail; reproduce it
# with `fuzz/target-asan/x86_64-unknown-linux-gnu/release/<target> <file>` (fuzz/target/...
# without ASan).
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

nightly_rustc() { rustup run nightly rustc --version >/dev/null 2>&1; }
if [ "${FUZZ_ASAN:-auto}" = 1 ] || { [ "${FUZZ_ASAN:-auto}" = auto ] && nightly_rustc; }; then
  nightly_rustc || die "FUZZ_ASAN=1 needs rustup's nightly toolchain (rustup run nightly rustc)"
  sanitizer=address
  target_dir="$ROOT/fuzz/target-asan"
  # rustup run puts nightly's cargo and rustc first on PATH for cargo-fuzz.
  fuzz_env=(rustup run nightly env RUSTC_BOOTSTRAP=1)
else
  sanitizer=none
  target_dir="$ROOT/fuzz/target"
  fuzz_env=(env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 PATH="/usr/bin:$PATH")
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -nE 's/^name = "([a-z0-9_]+)"$/\1/p' fuzz/Cargo.toml | grep -vx meshwake-fuzz)
fi

say "fuzz: building ${#targets[@]} targets (sanitizer: $sanitizer$([ $sanitizer = address ] && printf ', %s' "$(rustup run nightly rustc --version)"))"
build_log="$ROOT/target/fuzz-build.log"
mkdir -p "$ROOT/target"
# --fuzz-dir: the crate is fuzz/ itself; -O: optimized with debug assertions.
if ! "${fuzz_env[@]}" "$TOOLS/bin/cargo-fuzz" build -O --sanitizer "$sanitizer" --fuzz-dir fuzz --target-dir "$target_dir" \
    >"$build_log" 2>&1; then
  grep -E "^error|-->" "$build_log" | head -20 >&2 || true
  tail -20 "$build_log" >&2
  die "fuzz targets failed to build (log: target/fuzz-build.log)"
fi
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

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
    echo "test fuzz::$t ... ok (${runs:-?} runs in ${FUZZ_SECONDS}s, sanitizer $sanitizer, corpus $(ls "$corpus" | wc -l))"
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

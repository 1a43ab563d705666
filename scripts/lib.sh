# Shared helpers for meshwake's scripts. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# Built tools (wasm-bindgen-cli, cargo-fuzz) are cached per user, not per checkout: every
# fresh clone on the same machine reuses them; a fresh machine builds them once.
TOOLS="${MESHWAKE_TOOLS:-$HOME/.cache/meshwake/tools}"
ENVOY_VERSION="1.40.0"
ENVOY="$VENV/bin/envoy"
say() { printf 'meshwake: %s\n' "$*" >&2; }
die() { printf 'meshwake: ERROR: %s\n' "$*" >&2; exit 1; }
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# Install the Debian packages that are missing, one line per install.
ensure_deb() {
  local missing=()
  for p in "$@"; do have_deb "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ ! -f "$ROOT/target/.apt-updated" ]; then
    apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed; check the package mirror"
    mkdir -p "$ROOT/target" && touch "$ROOT/target/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || die "apt-get install ${missing[*]} failed; run it by hand to see why (are you root?)"
}
# The wasm target: an installed rustup target wins; else Debian's std source with -Zbuild-std.
wasm_cargo() { # args: extra cargo args...; uses $WASM_TARGET
  local target="${WASM_TARGET:-wasm32-wasip1}"
  if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    CARGO_TARGET_DIR="$ROOT/target/wasm-build" cargo "$@" --target "$target"
  else
    local lld
    lld="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
    [ -x "$lld" ] || die "rust-lld not found at $lld (rustup toolchain incomplete)"
    local std="std,panic_abort"
    [ "${WASM_TEST:-0}" = 1 ] && std="std,panic_abort,test"
    # Same bytes from any checkout folder, so the pinned sha256/OCI digests reproduce.
    local flags="--remap-path-prefix=$ROOT=/meshwake"
    [ "$target" = wasm32-wasip1 ] && flags="$flags -C link-self-contained=no -L native=/usr/lib/wasm32-wasi"
    env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR="$ROOT/target/wasm-build" \
      CARGO_TARGET_WASM32_WASIP1_LINKER="$lld" CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$lld" \
      RUSTFLAGS="$flags" \
      /usr/bin/cargo "$@" --target "$target" -Zbuild-std="$std"
  fi
}

# The wasm features binaryen is told the modules use (all in V8; `scripts/build-wasm.sh`).
WASM_FEATURES="--enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int
  --enable-mutable-globals --enable-multivalue --enable-reference-types"
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
keep_exports() { # in out names...: wasm-metadce keeping exactly these exports (and what they reach)
  local in="$1" out="$2" graph="$ROOT/target/wasm-exports.graph.json"; shift 2
  { printf '['; local sep=""
    for e in "$@"; do printf '%s{"name":"%s","root":true,"export":"%s"}' "$sep" "$e" "$e"; sep=","; done
    printf ']\n'; } >"$graph"
  # shellcheck disable=SC2086 # the feature list is word-split on purpose
  wasm-metadce $WASM_FEATURES ${KEEP_NAMES:+-g} \
    -f "$graph" "$in" -o "$out" >"$ROOT/target/wasm-metadce.log" 2>&1 \
    || { tail -20 "$ROOT/target/wasm-metadce.log" >&2; die "wasm-metadce failed on $in"; }
}

# Panic strategy immediate-abort (Rust 1.91+): a panic is a bare trap, without the panic
# runtime, messages and locations: -46 KB (docs/adr/0005-module-size.md). The filters never
# panic by construction (docs/adr/0001-no-panics.md); the cost is that the panic hook's log
# line is not written. Unstable, so only on wasm_cargo's Debian-toolchain path (RUSTC_BOOTSTRAP);
# CARGO_ENCODED_RUSTFLAGS wins over the RUSTFLAGS wasm_cargo sets, so its flags are repeated.
use_immediate_abort() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "${WASM_TARGET:-wasm32-wasip1}"; then
    CARGO_ENCODED_RUSTFLAGS="$(printf '%s\x1f' "--remap-path-prefix=$ROOT=/meshwake" \
      -Clink-self-contained=no -Lnative=/usr/lib/wasm32-wasi -Zunstable-options)-Cpanic=immediate-abort"
    export CARGO_ENCODED_RUSTFLAGS
  fi
}

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

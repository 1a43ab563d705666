#!/usr/bin/env python3
"""Checks every deployment file; run by scripts/test.d/deploy.sh with the project venv
(PyYAML + jsonschema). Prints one `test NAME ... ok|FAILED` line per check and a cargo-like
`test result:` line.

    .venv/bin/python deploy/validate.py [--registry]     # all checks (+ push/pull round trip)
    .venv/bin/python deploy/validate.py --dump-plugin-configs DIR
"""
import copy
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "deploy"))
import gen  # noqa: E402

ENVOY = os.environ.get("MESHWAKE_ENVOY", os.path.join(ROOT, ".venv/bin/envoy"))
WASM = os.path.join(ROOT, "target/meshwake.wasm")
SCHEMAS = os.environ.get("MESHWAKE_SCHEMAS", "/work/shared/schemas")
SCRATCH = os.path.join(ROOT, "target/deploy-test")
ISTIO_STAGES = ["base", "gateway", "overlays/1-canary", "overlays/2-percent", "overlays/3-mesh",
                "overlays/rollback"]


def rel(p):
    return os.path.relpath(p, ROOT)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


# ------------------------------------------------------------------------------ Envoy

def envoy_configs():
    """(name, yaml text ready for `envoy --mode validate`) for every Envoy config we ship."""
    out = []
    for d in ("envoy-config", "envoy-config/templates"):
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if f.endswith(".yaml"):
                out.append(os.path.join(ROOT, d, f))
    compose = load_yaml(os.path.join(ROOT, "deploy/compose/docker-compose.yaml"))
    for svc in compose["services"].values():
        for v in svc.get("volumes", []):
            src, dst = v.split(":")[0], v.split(":")[1]
            if dst == "/etc/envoy/envoy.yaml":
                out.append(os.path.normpath(os.path.join(ROOT, "deploy/compose", src)))
    rendered = []
    for path in out:
        text = open(path).read()
        text = text.replace(gen.WASM_PATH, WASM)
        # Templates: what tests/src/envoy.rs would fill in, with dummy ports.
        port = [20000]

        def fill(m):
            key = m.group(1)
            if key.endswith("_PORT"):
                port[0] += 1
                return str(port[0])
            return {"WASM_PATH": WASM, "WASM_RUNTIME": gen.WASM_RUNTIME,
                    "FAILURE_POLICY": "FAIL_CLOSED", "DIRECTION": "OUTBOUND",
                    "PLUGIN_CONFIG": json.dumps("{}")}[key]
        text = re.sub(r"\{\{\s*([A-Z_]+)\s*\}\}", fill, text)
        rendered.append((rel(path), text))
    return rendered


def check_envoy(name, text):
    os.makedirs(SCRATCH, exist_ok=True)
    path = os.path.join(SCRATCH, name.replace("/", "_"))
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([ENVOY, "--mode", "validate", "-c", path, "-l", "warning"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"envoy --mode validate {name}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"


def check_stats_tags():
    want = gen.stats_tags()
    telemetry = os.path.join(ROOT, "filters/telemetry/stats_tags.json")
    if os.path.exists(telemetry):
        assert want == json.load(open(telemetry))
    for name, text in envoy_configs():
        if name.endswith("templates/single.yaml"):
            continue  # the lead's test template, not generated here
        cfg = yaml.safe_load(text)
        assert cfg.get("stats_config", {}).get("stats_tags") == want, f"{name}: stats_tags differ"


def wasm_filters(cfg):
    """Every wasm filter config in an Envoy bootstrap."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if x.get("@type", "").endswith("filters.http.wasm.v3.Wasm"):
                found.append(x["config"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(cfg)
    return found


def check_wasm_blocks():
    for name, text in envoy_configs():
        cfg = yaml.safe_load(text)
        filters = wasm_filters(cfg)
        if name.endswith("bootstrap-stats-tags.yaml"):
            continue
        assert filters, f"{name}: no wasm filter"
        vms = {json.dumps(f["vm_config"], sort_keys=True) for f in filters}
        assert len(vms) == 1, f"{name}: filters do not share one VM config"
        for f in filters:
            vm = f["vm_config"]
            assert vm["vm_id"] == gen.VM_ID and vm["runtime"] == "envoy.wasm.runtime.v8", name
            assert "fail_open" not in f, f"{name}: fail_open is deprecated"
            if "templates/" not in name:
                assert f["failure_policy"] == "FAIL_RELOAD", name


# ------------------------------------------------------------------------------ compose

def check_compose_schema():
    schema = json.load(open(os.path.join(SCHEMAS, "compose-spec.json")))
    doc = load_yaml(os.path.join(ROOT, "deploy/compose/docker-compose.yaml"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(doc)
    base = os.path.join(ROOT, "deploy/compose")
    for name, svc in doc["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith(".") and "/data/" not in src and "target/" not in src:
                assert os.path.exists(os.path.join(base, src)), f"{name}: mount {src} missing"
        img = svc.get("image", "")
        assert ":" in img and not img.endswith(":latest"), f"{name}: image {img} not pinned"
        for dep in svc.get("depends_on", []):
            assert dep in doc["services"], f"{name} depends on unknown {dep}"
        nm = svc.get("network_mode", "")
        if nm.startswith("service:"):
            assert nm[8:] in doc["services"], f"{name}: {nm}"
    dockerfile = svc_build_dockerfile(doc)
    assert os.path.exists(os.path.join(base, dockerfile)), f"{dockerfile} missing"


def svc_build_dockerfile(doc):
    for svc in doc["services"].values():
        if "build" in svc:
            return os.path.relpath(os.path.join(ROOT, svc["build"]["dockerfile"]),
                                   os.path.join(ROOT, "deploy/compose"))
    raise AssertionError("no service builds the demo image")


def check_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian package prometheus)"
    r = subprocess.run([promtool, "check", "config", os.path.join(ROOT, "deploy/compose/prometheus.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    prom = load_yaml(os.path.join(ROOT, "deploy/compose/prometheus.yml"))
    compose = load_yaml(os.path.join(ROOT, "deploy/compose/docker-compose.yaml"))
    envoys = {n for n, s in compose["services"].items() if s.get("image", "").startswith("envoyproxy/")}
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "envoy")
    assert job["metrics_path"] == "/stats/prometheus"
    scraped = {t.split(":")[0] for sc in job["static_configs"] for t in sc["targets"]}
    assert scraped == envoys, f"scraped {scraped} != envoys {envoys}"


def check_otel_collector():
    cfg = load_yaml(os.path.join(ROOT, "deploy/compose/otel-collector.yaml"))
    for kind in ("receivers", "processors", "exporters"):
        for pipe in cfg["service"]["pipelines"].values():
            for c in pipe.get(kind, []):
                assert c in cfg[kind], f"pipeline uses undefined {kind[:-1]} {c}"
    assert cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "file" in cfg["exporters"] and "otlp/jaeger" in cfg["exporters"]


def check_grafana():
    dash = json.load(open(os.path.join(ROOT, "deploy/compose/grafana/dashboards/meshwake.json")))
    metrics, labels = set(), set()
    for p in dash["panels"]:
        for t in p["targets"]:
            m, l = gen.promql_names(t["expr"])
            metrics |= m
            labels |= l
    allow_m, allow_l = set(), set()
    for line in open(os.path.join(ROOT, "deploy/compose/grafana/metrics-used.txt")):
        if line.startswith("metric "):
            allow_m.add(line.split()[1])
        elif line.startswith("label "):
            allow_l.add(line.split()[1])
    assert metrics == allow_m, f"dashboard metrics {metrics} != metrics-used.txt {allow_m}"
    assert labels == allow_l, f"dashboard labels {labels} != metrics-used.txt {allow_l}"
    tags = {t["tag_name"] for t in gen.stats_tags()}
    assert labels <= tags | {"le"}, f"labels not produced by stats tags: {labels - tags}"
    for m in metrics:
        assert re.fullmatch(r"meshwake_(requests_total|request_duration_milliseconds_bucket)", m), m
    for d in ("datasources/prometheus.yaml", "dashboards/meshwake.yaml"):
        assert load_yaml(os.path.join(ROOT, "deploy/compose/grafana/provisioning", d))["apiVersion"] == 1


# ------------------------------------------------------------------------------ Istio

def crd_schemas():
    out = {}
    for d in yaml.safe_load_all(open(os.path.join(SCHEMAS, "istio-crds.yaml"))):
        if not d or d.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = d["spec"]["group"], d["spec"]["names"]["kind"]
        for v in d["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = to_json_schema(v["schema"]["openAPIV3Schema"], top=True)
    return out


def to_json_schema(s, top=False):
    """Kubernetes structural OpenAPI v3 -> JSON schema: `nullable`, `x-kubernetes-*` handled;
    unknown fields rejected (kubectl's strict field validation) unless preserve-unknown-fields."""
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "format"):
            continue
        if k == "properties":
            out[k] = {pk: to_json_schema(pv) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = to_json_schema(v) if isinstance(v, dict) else v
        elif k in ("anyOf", "oneOf", "allOf"):
            out[k] = [to_json_schema(x) for x in v]
        else:
            out[k] = v
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if "properties" in out and not s.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if top:
        out["properties"] = dict(out.get("properties", {}))
        out["properties"].update({
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": {
                             "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                             "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                             "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
                             "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}})
        out["required"] = sorted(set(out.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return out


def merge(dst, patch):
    """Strategic-merge for what our patches use: maps merge, everything else replaces."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def kustomize(dirpath):
    """A tiny kustomize: resources (files, dirs), namespace, labels, patches (target + inline
    patch or path, strategic-merge maps only). Enough for deploy/istio; anything else fails."""
    k = load_yaml(os.path.join(dirpath, "kustomization.yaml"))
    known = {"apiVersion", "kind", "resources", "namespace", "labels", "patches"}
    assert set(k) <= known, f"{rel(dirpath)}: unsupported kustomization fields {set(k) - known}"
    docs = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(dirpath, r))
        if os.path.isdir(p):
            docs += kustomize(p)
        else:
            docs += [d for d in yaml.safe_load_all(open(p)) if d]
    for pt in k.get("patches", []):
        body = yaml.safe_load(pt["patch"]) if "patch" in pt else load_yaml(os.path.join(dirpath, pt["path"]))
        tgt = pt.get("target", {})
        hits = 0
        for d in docs:
            if tgt.get("kind") and d["kind"] != tgt["kind"]:
                continue
            if tgt.get("name") and not re.fullmatch(tgt["name"], d["metadata"]["name"]):
                continue
            b = copy.deepcopy(body)
            b.pop("apiVersion", None), b.pop("kind", None)
            b.get("metadata", {}).pop("name", None)
            merge(d, b)
            hits += 1
        assert hits, f"{rel(dirpath)}: patch target {tgt} matched nothing"
    for lab in k.get("labels", []):
        for d in docs:
            d["metadata"].setdefault("labels", {}).update(lab["pairs"])
    if "namespace" in k:
        for d in docs:
            d["metadata"]["namespace"] = k["namespace"]
    return docs


def istio_rendered():
    return {stage: kustomize(os.path.join(ROOT, "deploy/istio", stage)) for stage in ISTIO_STAGES}


def check_istio_schema():
    schemas = crd_schemas()
    for stage, docs in istio_rendered().items():
        assert docs, stage
        for d in docs:
            key = (d["apiVersion"], d["kind"])
            assert key in schemas, f"{stage}: no CRD for {key}"
            try:
                jsonschema.Draft7Validator(schemas[key]).validate(d)
            except jsonschema.ValidationError as e:
                raise AssertionError(f"{stage}/{d['metadata']['name']}: {e.message} at {list(e.absolute_path)}")
            spec = d["spec"]
            if d["kind"] == "WasmPlugin":
                # The CRD's CEL rules we can check here.
                assert sum(x in spec for x in ("selector", "targetRef", "targetRefs")) <= 1, d["metadata"]
                assert re.match(r"^(oci|https?|file)://", spec["url"]), spec["url"]
                assert spec["failStrategy"] == "FAIL_OPEN" and spec["phase"] == "AUTHN"
                assert "*" not in json.dumps(spec.get("selector", {}))


def check_istio_stages():
    r = istio_rendered()
    names = lambda s: {d["metadata"]["name"] for d in r[s] if d["kind"] == "WasmPlugin"}  # noqa: E731
    sel = lambda s, n: next(d for d in r[s] if d["metadata"]["name"] == n)["spec"].get("selector")  # noqa: E731
    assert names("overlays/1-canary") == {"meshwake-inbound", "meshwake-outbound"}
    assert all(d["metadata"]["namespace"] == "meshwake-canary" for d in r["overlays/1-canary"])
    assert sel("overlays/2-percent", "meshwake-inbound") == {"matchLabels": {"meshwake.io/rollout": "enabled"}}
    assert sel("overlays/2-percent", "meshwake-outbound") == {"matchLabels": {"meshwake.io/rollout": "enabled"}}
    assert names("overlays/3-mesh") == {"meshwake-inbound", "meshwake-outbound", "meshwake-gateway"}
    assert sel("overlays/3-mesh", "meshwake-inbound") is None
    assert all(d["metadata"]["namespace"] == "istio-system" for d in r["overlays/3-mesh"])
    modes = {d["metadata"]["name"]: d["spec"]["match"][0]["mode"] for d in r["overlays/3-mesh"] if d["kind"] == "WasmPlugin"}
    assert modes == {"meshwake-inbound": "SERVER", "meshwake-outbound": "CLIENT", "meshwake-gateway": "CLIENT"}
    roles = {d["metadata"]["name"]: d["spec"]["pluginConfig"]["role"] for d in r["overlays/3-mesh"] if d["kind"] == "WasmPlugin"}
    assert roles == {"meshwake-inbound": "inbound", "meshwake-outbound": "outbound", "meshwake-gateway": "edge"}
    prio = {d["metadata"]["name"]: d["spec"]["priority"] for d in r["overlays/3-mesh"] if d["kind"] == "WasmPlugin"}
    assert prio["meshwake-gateway"] > prio["meshwake-outbound"]
    # Export cluster = Istio's name for the ServiceEntry host and port.
    se = next(d for d in r["overlays/3-mesh"] if d["kind"] == "ServiceEntry")
    cluster = f"outbound|{se['spec']['ports'][0]['number']}||{se['spec']['hosts'][0]}"
    for d in r["overlays/3-mesh"]:
        if d["kind"] == "WasmPlugin":
            assert d["spec"]["pluginConfig"]["export"]["cluster"] == cluster
    rb = [d for d in r["overlays/rollback"] if d["kind"] == "WasmPlugin"]
    assert len({(d["spec"]["url"], d["spec"]["sha256"]) for d in rb}) == 1


def check_pins():
    """The digests in the manifests are those of the current build (scripts/oci.sh pins them)."""
    module = hashlib.sha256(open(WASM, "rb").read()).hexdigest()
    digest_file = os.path.join(ROOT, "target/oci/manifest-digest")
    assert os.path.exists(digest_file), "target/oci missing: run scripts/oci.sh (make oci)"
    manifest = open(digest_file).read().strip().split(":")[1]
    idx = json.load(open(os.path.join(ROOT, "target/oci/index.json")))
    assert idx["manifests"][0]["digest"] == "sha256:" + manifest
    for stage in ("base", "gateway"):
        for d in kustomize(os.path.join(ROOT, "deploy/istio", stage)):
            if d["kind"] == "WasmPlugin":
                assert d["spec"]["sha256"] == manifest, \
                    f"{stage}/{d['metadata']['name']}: sha256 is not the build's manifest digest: run make oci"
                assert d["metadata"]["annotations"]["meshwake.io/module-sha256"] == module
    remote = load_yaml(os.path.join(ROOT, "envoy-config/wasm-remote.yaml"))
    assert wasm_filters(remote)[0]["vm_config"]["code"]["remote"]["sha256"] == module
    want = open(os.path.join(ROOT, "target/meshwake.wasm.sha256")).read().split()[0]
    assert want == module, "target/meshwake.wasm.sha256 is stale"


def check_oci_layout():
    lay = os.path.join(ROOT, "target/oci")
    assert json.load(open(os.path.join(lay, "oci-layout"))) == {"imageLayoutVersion": "1.0.0"}
    idx = json.load(open(os.path.join(lay, "index.json")))
    blob = lambda dg: open(os.path.join(lay, "blobs/sha256", dg.split(":")[1]), "rb").read()  # noqa: E731
    for m in idx["manifests"]:
        data = blob(m["digest"])
        assert hashlib.sha256(data).hexdigest() == m["digest"].split(":")[1] and len(data) == m["size"]
        man = json.loads(data)
        assert man["annotations"]["module.wasm.image/variant"] == "compat-smart"
        assert man["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        assert len(man["layers"]) == 1
        assert man["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert extract_plugin(blob(man["layers"][0]["digest"])) == open(WASM, "rb").read()


def extract_plugin(targz):
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(targz), mode="r:gz") as t:
        names = t.getnames()
        assert names == ["plugin.wasm"], names
        return t.extractfile("plugin.wasm").read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_registry_round_trip():
    """Push target/oci to Debian's docker-registry with skopeo, pull it back, compare."""
    registry, skopeo = shutil.which("docker-registry"), shutil.which("skopeo")
    assert registry and skopeo, "docker-registry / skopeo missing (make setup)"
    tmp = tempfile.mkdtemp(prefix="meshwake-registry-")
    port = free_port()
    cfg = os.path.join(tmp, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
                f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([registry, "serve", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "registry.log"), "w"))
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, open(os.path.join(tmp, "registry.log")).read()
                assert time.time() < deadline, "registry did not start"
                time.sleep(0.1)
        ref = f"docker://127.0.0.1:{port}/meshwake/meshwake:test"
        env = dict(os.environ, REGISTRY_AUTH_FILE=os.path.join(tmp, "auth.json"))
        run = lambda *a: subprocess.run(a, capture_output=True, text=True, env=env, timeout=60)  # noqa: E731
        r = run(skopeo, "copy", "-q", "--dest-tls-verify=false",
                f"oci:{ROOT}/target/oci:latest", ref)
        assert r.returncode == 0, r.stderr
        r = run(skopeo, "inspect", "--raw", "--tls-verify=false", ref)
        assert r.returncode == 0, r.stderr
        local = open(os.path.join(ROOT, "target/oci/manifest-digest")).read().strip()
        assert "sha256:" + hashlib.sha256(r.stdout.encode()).hexdigest() == local, \
            "registry manifest digest differs from the layout's (the WasmPlugin sha256 would not match)"
        back = os.path.join(tmp, "back")
        r = run(skopeo, "copy", "-q", "--src-tls-verify=false", ref, f"oci:{back}:test")
        assert r.returncode == 0, r.stderr
        idx = json.load(open(os.path.join(back, "index.json")))
        dg = idx["manifests"][0]["digest"]
        assert dg == local, f"pulled manifest {dg} != {local}"
        man = json.load(open(os.path.join(back, "blobs/sha256", dg.split(":")[1])))
        layer = open(os.path.join(back, "blobs/sha256", man["layers"][0]["digest"].split(":")[1]), "rb").read()
        assert extract_plugin(layer) == open(WASM, "rb").read(), "pulled plugin.wasm differs"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ plugin configs

def plugin_configs():
    """(name, JSON text) of every plugin configuration we ship."""
    out = []
    for name, text in envoy_configs():
        for i, f in enumerate(wasm_filters(yaml.safe_load(text))):
            out.append((f"envoy:{name}#{i}", f["configuration"]["value"]))
    for stage, docs in istio_rendered().items():
        for d in docs:
            if d["kind"] == "WasmPlugin":
                out.append((f"istio:{stage}/{d['metadata']['name']}", json.dumps(d["spec"]["pluginConfig"])))
    return out


def dump_plugin_configs(dirpath):
    shutil.rmtree(dirpath, ignore_errors=True)
    os.makedirs(dirpath)
    configs = plugin_configs()
    for i, (name, text) in enumerate(configs):
        with open(os.path.join(dirpath, f"{i:03}.json"), "w") as f:
            json.dump({"name": name, "config": text}, f)
    return len(configs)


def check_validators_reject_bad_input():
    """The schema checks are real: known-bad documents fail them."""
    schema = json.load(open(os.path.join(SCHEMAS, "compose-spec.json")))
    doc = load_yaml(os.path.join(ROOT, "deploy/compose/docker-compose.yaml"))
    bad = copy.deepcopy(doc)
    next(iter(bad["services"].values()))["volumes_typo"] = []
    assert not jsonschema.Draft7Validator(schema).is_valid(bad), "compose schema accepted an unknown key"
    schemas = crd_schemas()
    wp = next(d for d in kustomize(os.path.join(ROOT, "deploy/istio/base")) if d["kind"] == "WasmPlugin")
    v = jsonschema.Draft7Validator(schemas[("extensions.istio.io/v1alpha1", "WasmPlugin")])
    assert v.is_valid(wp)
    for mutate in (lambda s: s.update(phase="EARLY"), lambda s: s.update(sha256="xyz"),
                   lambda s: s.update(failStrategy="FAIL_SOMETIMES"), lambda s: s.update(fail_open=True),
                   lambda s: s["match"][0].update(mode="INBOUND"), lambda s: s.pop("url")):
        b = copy.deepcopy(wp)
        mutate(b["spec"])
        assert not v.is_valid(b), f"WasmPlugin schema accepted {b['spec']}"


def check_generated_fresh():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "deploy/gen.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def main(argv):
    if argv[:1] == ["--dump-plugin-configs"]:
        print(f"{dump_plugin_configs(argv[1])} plugin configurations written to {argv[1]}")
        return 0
    assert os.path.exists(WASM), "target/meshwake.wasm missing: run make build"
    tests = [("generated_files_up_to_date", check_generated_fresh),
             ("stats_tags_match_telemetry", check_stats_tags),
             ("wasm_blocks_share_vm_and_fail_reload", check_wasm_blocks)]
    tests += [(f"envoy_validate::{n}", (lambda n=n, t=t: check_envoy(n, t))) for n, t in envoy_configs()]
    tests += [("compose_schema", check_compose_schema), ("promtool_check_config", check_promtool),
              ("otel_collector_pipelines", check_otel_collector),
              ("grafana_dashboard_metrics_allow_list", check_grafana),
              ("istio_crd_schema", check_istio_schema),
              ("validators_reject_bad_input", check_validators_reject_bad_input), ("istio_rollout_stages", check_istio_stages),
              ("oci_layout_compat_variant", check_oci_layout), ("pinned_digests_match_build", check_pins)]
    if "--registry" in argv:
        tests.append(("oci_registry_push_pull_round_trip", check_registry_round_trip))
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"test deploy::{name} ... ok", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            print(f"test deploy::{name} ... FAILED\n    {e if isinstance(e, AssertionError) else traceback.format_exc()}", flush=True)
            failed += 1
    status = "ok" if failed == 0 else "FAILED"
    print(f"\ntest result: {status}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

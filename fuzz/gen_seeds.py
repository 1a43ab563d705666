#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/<target>/ from spec examples (run once; output committed).

Sources: W3C Trace Context Level 2 and its test suite, W3C Baggage, the B3 propagation README,
the proxy-wasm header map layout, the OTLP/HTTP examples, meshwake's own header formats
(docs/adr/0002-identity-header.md) and the shipped demo topologies."""
import json, os, shutil, struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "seeds")

def write(target, items):
    d = os.path.join(OUT, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, data in enumerate(items):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(data)

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
write("traceparent", [
    TP,
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",  # Level 2 random flag
    "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
    " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
    b"00-\xff\xfe651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
])
write("tracestate", [
    "congo=t61rcWkgMzE",
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "fw529a3039@dt=eyJ0eXAiOiJKV1QifQ,rojo=00f067aa0ba902b7",
    "rojo=00f067aa0ba902b7\x00congo=t61rcWkgMzE",  # two header lines
    ",, a=1 ,\t,b=2",
    ",".join("k%d=v" % i for i in range(33)),
    "a=1,a=2",
    "a=" + "x" * 257,
    "Upper=1",
    "meshwake=s:1,other=2",
])
write("baggage", [
    "userId=alice,serverNode=DF%2028,isProduction=false",
    "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
    "meshwake.tenant=a,userId=b\x00other=c",
    "k=%E2%82%AC%zz",
    ",".join("k%d=v" % i for i in range(181)),
    "k=" + "v" * 9000,
    b"k=\xff\xfe",
    "=v,k=,k",
])
write("b3_single", [
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "a3ce929d0e0e4736-00f067aa0ba902b7-d",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0",
    "0", "1", "d",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-extra",
    "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
])
write("b3_multi", [
    "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\nx-b3-spanid: e457b5a2e4d86bd1\n"
    "x-b3-parentspanid: 05e3ac9a4f6e3b90\nx-b3-sampled: 1\n",
    "x-b3-traceid: a3ce929d0e0e4736\nx-b3-spanid: 00f067aa0ba902b7\nx-b3-flags: 1\n",
    "x-b3-sampled: 0\n",
    "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\nx-b3-spanid: e457b5a2e4d86bd1\nx-b3-sampled: true\n",
    "x-b3-spanid: e457b5a2e4d86bd1\n",
])
write("identity_header", [
    "\x001;s=reviews;v=v2;n=bookinfo;w=reviews-v2",
    "\x001;s=cart;v=1.4.0+b7;n=shop;w=cart;x.rollout=canary;x.weight=10",
    "\x001;s=a%3Bb;v=v%3D1;n=n%2Cs;w=50%25;x.k%3B=%C3%A9%20",
    "\x011;s=reviews;v=v2;n=bookinfo;w=reviews-v2;sig=AAAAAAAAAAAAAAAAAAAAAA",
    "\x002;s=a;v=b",
    b"\x001;s=\xff\xfe;v=b",
    "\x001;s=a;v=b;s=c",
])
write("lineage", [
    "\x08\x00a@1, b@2 ,c@3",
    "\x08\x00+4,frontend@v1,checkout@v2",
    "\x02\x00a@1,b@2,c@3,d@4",
    "\x08\x00a%2Cb@v%3B1,x@%C3%A9",
    "\x08\x01a@1;sig=whatever",
    "\x08\x00+4294967296,a@1",
    b"\x08\x00a@\xff",
])
configs = [
    "", "{}",
    '{"role": "inbound"}',
    '{"role": "outbound", "identity": {"service": "checkout", "version": "v2"}}',
    '{"role": "edge", "sampling": {"ratio": 0.1}, "export": {"cluster": "outbound|4318||otel-collector.observability.svc.cluster.local"}}',
    json.dumps({"role": "inbound", "identity": {"service": "reviews", "version": "v2", "namespace": "shop", "hmac_key": "k", "cluster_patterns": ["{service}-{version}"], "lineage_max": 40}, "export": {"max_queue_spans": 0, "max_batch_spans": 99999, "flush_interval_ms": 1, "timeout_ms": -1}, "metrics": {"naming": "istio", "max_label_sets": 0}, "spans": {"routes": ["/users/{id}", "nope"]}, "context_recovery": {"slots": 0}, "resource": {"environment": "prod", "attributes": {"a": "b"}}, "propagation": {"extract": ["b3", "jaeger"], "inject": []}, "sampling": {"ratio": 7, "force_header": None}, "bogus": 1}),
    '{"role": 5, "export": "x", "metrics": {"enabled": "yes"}}',
    "[1,2]", "{\"role\":", b"\xff\xfe{}", "null", '{"export": {"max_queue_spans": 1e400}}',
]
write("config", configs)

def enc_map(pairs):
    out = struct.pack("<I", len(pairs))
    for k, v in pairs:
        out += struct.pack("<II", len(k), len(v))
    for k, v in pairs:
        out += k + b"\0" + v + b"\0"
    return out
REQ = [(b":method", b"GET"), (b":path", b"/users/42"), (b":authority", b"reviews:9080"),
       (b":scheme", b"http"), (b"traceparent", TP.encode()), (b"x-request-id", b"abc")]
write("header_map", [enc_map(REQ), enc_map([(b"X-Bin\xff", b"\xff\xfe")]), enc_map([]),
                     enc_map(REQ)[:-7], struct.pack("<I", 0xffffffff) + b"\x01\x02"])

# engine: [config, role, status] + request lines + "\n\n" + response lines + "\n\n" + slot
def eng(cfg, role, status, req, resp="", slot=b""):
    return bytes([cfg, role, status]) + req.encode() + b"\n\n" + resp.encode() + b"\n\n" + slot
base = ":method: GET\n:path: /users/42?x=1\n:authority: reviews:9080\n:scheme: http\nuser-agent: curl/8\nx-request-id: r-1\n"
write("engine", [
    eng(0, 0, 0, base + "traceparent: %s\ntracestate: congo=t61rcWkgMzE\nbaggage: userId=alice\n"
        "x-meshwake-peer: 1;s=frontend;v=v1;n=shop;w=frontend-v1\nx-meshwake-lineage: edge@v1,frontend@v1\n" % TP),
    eng(0, 1, 2, base, "x-meshwake-peer: 1;s=reviews;v=v2;n=shop;w=reviews-v2\nx-cluster: outbound|9080|v2|reviews.shop.svc.cluster.local\n"),
    eng(1, 2, 1, base + "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\n"
        "x-b3-traceid: a3ce929d0e0e4736\nx-b3-spanid: 00f067aa0ba902b7\nx-b3-sampled: 1\n"),
    eng(2, 2, 0, base + "traceparent: %s\nbaggage: meshwake.tenant=x,k=v\nx-meshwake-peer: 1;s=evil;v=v9\n" % TP),
    eng(3, 2, 4, base + "traceparent: 00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01\nx-force: 1\n"),
    eng(4, 0, 3, ":method: POST\n:path: /users/7\ncontent-type: application/grpc\n", "grpc-status: 14\n"),
    eng(0, 1, 0, base.replace("x-request-id: r-1\n", ""), "", b"\x01garbage-slot"),
    eng(1, 0, 0, base + "traceparent: %s\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
        "x-meshwake-peer: 1;s=a;v=b;sig=AAAA\n" % TP),
])

def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 2: return key + varint(len(payload)) + payload
    if wire == 0: return key + varint(payload)
    if wire == 1: return key + payload
def s(num, text): return field(num, 2, text.encode() if isinstance(text, str) else text)
def kv(k, v):
    val = s(1, v) if isinstance(v, str) else field(3, 0, v)
    return s(1, k) + s(2, val)
span = (s(1, bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")) + s(2, bytes.fromhex("00f067aa0ba902b7"))
        + s(5, "GET /users/{id}") + field(6, 0, 2) + field(7, 1, struct.pack("<Q", 1700000000000000000))
        + field(8, 1, struct.pack("<Q", 1700000000005000000))
        + s(9, kv("meshwake.role", "inbound")) + s(9, kv("http.response.status_code", 503))
        + s(9, kv("meshwake.peer.version", "v1")) + s(15, field(3, 0, 2)))
resource = s(1, kv("service.name", "reviews")) + s(1, kv("service.version", "v2"))
scope_spans = s(1, s(1, "meshwake") + s(2, "0.1.0")) + s(2, span)
rs = s(1, resource) + s(2, scope_spans)
req = s(1, rs)
write("otlp_proto", [req, b"", req[:-5], s(1, s(2, s(2, b"\xff\xff\xff")))])
otlp_json = {"resourceSpans": [{"resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "reviews"}},
    {"key": "service.version", "value": {"stringValue": "v2"}}]},
    "scopeSpans": [{"scope": {"name": "meshwake"}, "spans": [{
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
        "parentSpanId": "", "name": "GET /users/{id}", "kind": 2,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000005000000",
        "attributes": [{"key": "http.response.status_code", "value": {"intValue": "503"}},
                       {"key": "meshwake.role", "value": {"stringValue": "inbound"}}],
        "status": {"code": 2}}]}]}]}
write("otlp_json", [json.dumps(otlp_json), "{}", '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
                    '{"resourceSpans": 5}', b"\xff"])
topo_dir = os.path.join(ROOT, "demo", "topologies")
topos = [open(os.path.join(topo_dir, f), "rb").read() for f in sorted(os.listdir(topo_dir)) if f.endswith(".yaml")]
write("topology", topos + [b"services: {}\n", b"name: [\n", b"a: &a [*a]\n"])
# exporter: arbitrary-driven; a few byte strings are enough to start from.
write("exporter", [bytes(range(64)), b"\x07\x03\x01\x02" + b"\x00\x05\x01\x10\x02\x01\xc8\x00" * 8])

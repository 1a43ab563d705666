// Guest-only cost of a proxy-wasm module in V8 (Node), without Envoy: a mock host answers
// every import instantly, so the time per request is the module's own work (plus a JS call
// per host call, far cheaper than Envoy's). Usage:
//   node bench/guest/run.mjs <module.wasm> <plugin-config-json> [requests] [body-chunks]
// As Envoy does, only the callbacks the module exports are called; with body-chunks > 0,
// each request also has that many request and response body chunks (the last one ending
// the stream).
// Prints JSON: µs per request and host calls per request by name. `node --cpu-prof` on it
// gives a per-function profile when the module keeps its name section.
import { readFileSync } from "node:fs";

const [file, config = "{}", nArg = "200000", chunksArg = "0"] = process.argv.slice(2);
const N = Number(nArg);
const CHUNKS = Number(chunksArg);
const enc = new TextEncoder();
const dec = new TextDecoder();
let ex, mem;
// Views of the module's memory, made again only when it grows: growth detaches the old
// buffer, so a view of length 0 says so without the cost of the `memory.buffer` getter per
// host call (the mock's own work stays small next to the module's).
let u8view = new Uint8Array(0), dvview;
function views() {
  if (u8view.length === 0) {
    u8view = new Uint8Array(mem.buffer); dvview = new DataView(mem.buffer);
  }
}
const u8 = () => (views(), u8view);
const dv = () => (views(), dvview);
// Keys and paths are short ASCII: decoded without a TextDecoder call.
function str(p, n) {
  const b = u8();
  if (n > 64) return dec.decode(b.subarray(p, p + n));
  let s = "";
  for (let i = p; i < p + n; i++) s += String.fromCharCode(b[i]);
  return s;
}

function give(bytes, retPtr, retSize) {
  // As Envoy does: the guest allocates, the host copies in and hands back pointer and size.
  const p = ex.proxy_on_memory_allocate(bytes.length);
  u8().set(bytes, p);
  dv().setUint32(retPtr, p, true);
  dv().setUint32(retSize, bytes.length, true);
  return 0;
}
function serialize(pairs) {
  const parts = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + parts.length * 8;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const d = new DataView(out.buffer);
  d.setUint32(0, parts.length, true);
  let o = 4 + parts.length * 8;
  parts.forEach(([k, v], i) => {
    d.setUint32(4 + i * 8, k.length, true);
    d.setUint32(8 + i * 8, v.length, true);
    out.set(k, o); o += k.length + 1;
    out.set(v, o); o += v.length + 1;
  });
  return out;
}
const REQUEST = [
  [":authority", "bench"], [":path", "/api/v1/items/12345"], [":method", "GET"],
  [":scheme", "http"], ["user-agent", "meshwake-bench/1"], ["x-forwarded-proto", "http"],
  ["x-request-id", "6c0b3f0e-6a57-4d8e-9a0e-1c1f2a3b4c5d"],
  ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
];
const request = serialize(REQUEST);
const RESPONSE = [
  [":status", "200"], ["content-length", "2"], ["content-type", "text/plain"],
  ["date", "Tue, 25 Nov 2025 16:00:00 GMT"], ["server", "envoy"],
];
const response = serialize(RESPONSE);
// Names and values encoded once, as Envoy's are already bytes, and a name looked up by
// comparing bytes in the module's memory (no string made per call): the mock's cost stays out.
const values = (pairs) => pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
function lookup(pairs, kp, kn) {
  const b = u8();
  for (const [k, v] of pairs) {
    if (k.length !== kn) continue;
    let i = 0;
    while (i < kn && b[kp + i] === k[i]) i++;
    if (i === kn) return v;
  }
  return null;
}
const requestValues = values(REQUEST), responseValues = values(RESPONSE);
const callResponse = serialize([[":status", "200"], ["content-length", "0"]]);
const int64 = (v) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigInt64(0, BigInt(v), true); return b; };
const props = { "response\0code": int64(200), "response\0flags": int64(0), "request\0size": int64(0),
  "response\0size": int64(2), "xds\0listener_direction": int64(1) };
// The clock as two 32-bit halves: a BigInt per call would be the mock's largest cost.
let nowHi = 395812, nowLo = 0, token = 0, metricId = 0;
function tick() {
  nowLo += 1000;
  if (nowLo >= 0x100000000) { nowLo -= 0x100000000; nowHi += 1; }
}
function putNow(rp) {
  const d = dv();
  d.setUint32(rp, nowLo, true);
  d.setUint32(rp + 4, nowHi, true);
}
const pending = [];

const impl = {
  proxy_get_header_map_pairs: (t, rp, rs) => give(t === 0 ? request : t === 2 ? response : callResponse, rp, rs),
  proxy_get_header_map_value: (t, kp, kn, rp, rs) => {
    const v = lookup(t === 0 ? requestValues : t === 2 ? responseValues : [], kp, kn);
    return v ? give(v, rp, rs) : 1;
  },
  proxy_replace_header_map_value: () => 0,
  proxy_remove_header_map_value: () => 0,
  proxy_add_header_map_value: () => 0,
  proxy_get_buffer_bytes: (t, s, n, rp, rs) => t === 7 ? give(enc.encode(config), rp, rs) : 1,
  proxy_get_property: (p, n, rp, rs) => {
    const v = props[str(p, u8()[p + n - 1] === 0 ? n - 1 : n)];
    return v ? give(v, rp, rs) : 1;
  },
  proxy_get_current_time_nanoseconds: (rp) => { tick(); putNow(rp); return 0; },
  proxy_set_shared_data: () => 0,
  proxy_get_shared_data: () => 1,
  proxy_define_metric: (t, p, n, rp) => { dv().setUint32(rp, ++metricId, true); return 0; },
  proxy_increment_metric: () => 0,
  proxy_record_metric: () => 0,
  proxy_log: () => 0,
  proxy_set_tick_period_milliseconds: () => 0,
  proxy_set_effective_context: () => 0,
  proxy_http_call: (u, un, h, hn, b, bn, t, tn, ms, rp) => { dv().setUint32(rp, ++token, true); pending.push(token); return 0; },
};
const wasi = {
  random_get: (p, n) => { u8().fill(7, p, p + n); return 0; },
  clock_time_get: (id, prec, rp) => { putNow(rp); return 0; },
  fd_write: (fd, iov, n, rp) => { dv().setUint32(rp, 0, true); return 0; },
  environ_sizes_get: (a, b) => { dv().setUint32(a, 0, true); dv().setUint32(b, 0, true); return 0; },
  environ_get: () => 0,
  proc_exit: (c) => { throw new Error(`proc_exit ${c}`); },
};
const mod = new WebAssembly.Module(readFileSync(file));
const imports = {};
// Each import counted in its own slot, through a wrapper of fixed arity (the widest import,
// proxy_http_call, takes 10): rest parameters and a spread per call cost more than most imports.
const names = [];
const counts = new Float64Array(WebAssembly.Module.imports(mod).length);
for (const i of WebAssembly.Module.imports(mod)) {
  const src = i.module === "env" ? impl : wasi;
  const f = src[i.name] ?? (() => { throw new Error(`unexpected import ${i.module}.${i.name}`); });
  const slot = names.push(i.name) - 1;
  (imports[i.module] ??= {})[i.name] = (a, b, c, d, e, g, h, j, k, l) => {
    counts[slot]++;
    return f(a, b, c, d, e, g, h, j, k, l);
  };
}
const inst = new WebAssembly.Instance(mod, imports);
ex = inst.exports; mem = ex.memory;
ex._initialize?.();
ex.proxy_on_context_create(1, 0);
ex.proxy_on_vm_start(1, 0);
if (!ex.proxy_on_configure(1, config.length)) throw new Error("configure refused");

// Envoy skips a callback the module does not export (proxy-wasm-cpp-host context.cc); each
// export is looked up once (a lookup and a spread per call were the driver's largest cost).
const noop = () => 0;
const cb = (name) => ex[name] ?? noop;
const onCreate = cb("proxy_on_context_create"), onRequestHeaders = cb("proxy_on_request_headers");
const onRequestBody = cb("proxy_on_request_body"), onResponseBody = cb("proxy_on_response_body");
const onResponseHeaders = cb("proxy_on_response_headers"), onLog = cb("proxy_on_log");
const onDone = cb("proxy_on_done"), onDelete = cb("proxy_on_delete");
function body(f, id) {
  for (let c = 1; c <= CHUNKS; c++) f(id, 1024, c === CHUNKS ? 1 : 0);
}
function request1(id) {
  onCreate(id, 1);
  onRequestHeaders(id, 8, CHUNKS ? 0 : 1);
  if (CHUNKS) body(onRequestBody, id);
  onResponseHeaders(id, 5, 0);
  if (CHUNKS) body(onResponseBody, id);
  onLog(id);
  onDone(id);
  onDelete(id);
  if (id % 512 === 0) {
    ex.proxy_on_tick(1);
    while (pending.length) ex.proxy_on_http_call_response(1, pending.shift(), 2, 0, 0);
  }
}
let id = 2;
for (let i = 0; i < 20000; i++) request1(id++); // warm-up: let V8 tier up
counts.fill(0);
// Wall time, and this process's CPU time: on a shared box the process is often descheduled,
// which only the wall clock sees.
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
for (let i = 0; i < N; i++) request1(id++);
const ns = Number(process.hrtime.bigint() - t0);
const cpu = process.cpuUsage(c0);
const perReq = Object.fromEntries(names.map((k, i) => [k, counts[i]]).filter(([, v]) => v > 0)
  .map(([k, v]) => [k, +(v / N).toFixed(3)]));
console.log(JSON.stringify({ module: file, requests: N, us_per_request: +(ns / N / 1000).toFixed(3),
  cpu_us_per_request: +((cpu.user + cpu.system) / N).toFixed(3),
  memory_bytes: mem.buffer.byteLength, host_calls_per_request: perReq }));

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
const calls = {};
let ex, mem;
// Views of the module's memory, made again only when it grows (a new buffer): the mock's
// own work stays small next to the module's.
let viewsOf = null, u8view, dvview;
function views() {
  if (viewsOf !== mem.buffer) {
    viewsOf = mem.buffer; u8view = new Uint8Array(viewsOf); dvview = new DataView(viewsOf);
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
// Values encoded once, as Envoy's are already bytes: the mock's own cost stays out.
const values = (pairs) => new Map(pairs.map(([k, v]) => [k, enc.encode(v)]));
const requestValues = values(REQUEST), responseValues = values(RESPONSE);
const callResponse = serialize([[":status", "200"], ["content-length", "0"]]);
const int64 = (v) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigInt64(0, BigInt(v), true); return b; };
const props = { "response\0code": int64(200), "response\0flags": int64(0), "request\0size": int64(0),
  "response\0size": int64(2), "xds\0listener_direction": int64(1) };
let now = 1700000000000000000n, token = 0, metricId = 0;
const pending = [];

const impl = {
  proxy_get_header_map_pairs: (t, rp, rs) => give(t === 0 ? request : t === 2 ? response : callResponse, rp, rs),
  proxy_get_header_map_value: (t, kp, kn, rp, rs) => {
    const v = (t === 0 ? requestValues : t === 2 ? responseValues : new Map()).get(str(kp, kn));
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
  proxy_get_current_time_nanoseconds: (rp) => { now += 1000n; dv().setBigUint64(rp, now, true); return 0; },
  proxy_set_shared_data: () => 0,
  proxy_get_shared_data: () => 1,
  proxy_define_metric: (t, p, n, rp) => { dv().setUint32(rp, ++metricId, true); return 0; },
  proxy_increment_metric: () => 0,
  proxy_record_metric: () => 0,
  proxy_log: () => 0,
  proxy_set_tick_period_milliseconds: () => 0,
  proxy_set_effective_context: () => 0,
  proxy_http_call: (...a) => { const rp = a[a.length - 1]; dv().setUint32(rp, ++token, true); pending.push(token); return 0; },
};
const wasi = {
  random_get: (p, n) => { u8().fill(7, p, p + n); return 0; },
  clock_time_get: (id, prec, rp) => { dv().setBigUint64(rp, now, true); return 0; },
  fd_write: (fd, iov, n, rp) => { dv().setUint32(rp, 0, true); return 0; },
  environ_sizes_get: (a, b) => { dv().setUint32(a, 0, true); dv().setUint32(b, 0, true); return 0; },
  environ_get: () => 0,
  proc_exit: (c) => { throw new Error(`proc_exit ${c}`); },
};
const mod = new WebAssembly.Module(readFileSync(file));
const imports = {};
for (const i of WebAssembly.Module.imports(mod)) {
  const src = i.module === "env" ? impl : wasi;
  const f = src[i.name] ?? (() => { throw new Error(`unexpected import ${i.module}.${i.name}`); });
  (imports[i.module] ??= {})[i.name] = (...a) => { calls[i.name] = (calls[i.name] ?? 0) + 1; return f(...a); };
}
const inst = new WebAssembly.Instance(mod, imports);
ex = inst.exports; mem = ex.memory;
ex._initialize?.();
ex.proxy_on_context_create(1, 0);
ex.proxy_on_vm_start(1, 0);
if (!ex.proxy_on_configure(1, config.length)) throw new Error("configure refused");

// Envoy skips a callback the module does not export (proxy-wasm-cpp-host context.cc).
const call = (name, ...args) => ex[name]?.(...args);
function body(name, id) {
  for (let c = 1; c <= CHUNKS; c++) call(name, id, 1024, c === CHUNKS ? 1 : 0);
}
function request1(id) {
  call("proxy_on_context_create", id, 1);
  call("proxy_on_request_headers", id, 8, CHUNKS ? 0 : 1);
  body("proxy_on_request_body", id);
  call("proxy_on_response_headers", id, 5, 0);
  body("proxy_on_response_body", id);
  call("proxy_on_log", id);
  call("proxy_on_done", id);
  call("proxy_on_delete", id);
  if (id % 512 === 0) {
    ex.proxy_on_tick(1);
    while (pending.length) ex.proxy_on_http_call_response(1, pending.shift(), 2, 0, 0);
  }
}
let id = 2;
for (let i = 0; i < 20000; i++) request1(id++); // warm-up: let V8 tier up
for (const k of Object.keys(calls)) delete calls[k];
// Wall time, and this process's CPU time: on a shared box the process is often descheduled,
// which only the wall clock sees.
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
for (let i = 0; i < N; i++) request1(id++);
const ns = Number(process.hrtime.bigint() - t0);
const cpu = process.cpuUsage(c0);
const perReq = Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, +(v / N).toFixed(3)]));
console.log(JSON.stringify({ module: file, requests: N, us_per_request: +(ns / N / 1000).toFixed(3),
  cpu_us_per_request: +((cpu.user + cpu.system) / N).toFixed(3),
  memory_bytes: mem.buffer.byteLength, host_calls_per_request: perReq }));

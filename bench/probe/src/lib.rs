//! Benchmark probe: prices each proxy-wasm host call inside a real Envoy. The plugin
//! configuration is `op=count,...`; every request then makes `count` calls of each `op`
//! (see `Op`). `bench/run.py --phases hostcalls` compares each against the no-op filter,
//! so the filter's design can be driven by what a host call really costs.
use proxy_wasm::hostcalls as h;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Probe::default()) });
}}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    /// `proxy_get_header_map_pairs` on the request headers (all of them, one call).
    Pairs,
    /// `proxy_get_header_map_value` of a header the request has.
    GetHit,
    /// `proxy_get_header_map_value` of a header the request lacks.
    GetMiss,
    /// `proxy_replace_header_map_value` on the request.
    Set,
    /// `proxy_remove_header_map_value` of an absent header.
    Remove,
    /// `proxy_get_current_time_nanoseconds`.
    Time,
    /// `proxy_get_property` of an integer (`listener_direction`).
    Prop,
    /// `proxy_get_property` read at stream end (`response.code`).
    LogProp,
    /// `proxy_get_shared_data` of a present key.
    SharedGet,
    /// `proxy_set_shared_data`.
    SharedSet,
    /// `proxy_increment_metric` on a counter.
    Incr,
    /// `proxy_record_metric` on a histogram.
    Record,
    /// `proxy_get_property` of a whole attribute map (`response`) at stream end; logs the
    /// first result, to see whether the host serializes maps.
    LogMap,
    /// Pure guest compute: FNV-1a over 1 KiB (about 4,000 wasm instructions), to compare
    /// the engine's code speed in Envoy with V8 elsewhere (`bench/guest`).
    Spin,
    /// Allocate and free 256 bytes in the guest (a guest-only cost, for scale).
    Alloc,
    /// Count the body callbacks Envoy makes (counters `probe.request_body_calls` and
    /// `probe.response_body_calls`), to see how many chunks a benchmark's bodies arrive in.
    Bodies,
}

const OPS: &[(&str, Op)] = &[
    ("pairs", Op::Pairs),
    ("get_hit", Op::GetHit),
    ("get_miss", Op::GetMiss),
    ("set", Op::Set),
    ("remove", Op::Remove),
    ("time", Op::Time),
    ("prop", Op::Prop),
    ("log_prop", Op::LogProp),
    ("shared_get", Op::SharedGet),
    ("shared_set", Op::SharedSet),
    ("incr", Op::Incr),
    ("record", Op::Record),
    ("alloc", Op::Alloc),
    ("log_map", Op::LogMap),
    ("spin", Op::Spin),
    ("bodies", Op::Bodies),
];

#[derive(Default)]
struct Probe {
    plan: Rc<Vec<(Op, u32)>>,
    counter: u32,
    histogram: u32,
    body_calls: [u32; 2],
}

impl Context for Probe {}

impl RootContext for Probe {
    fn on_configure(&mut self, _: usize) -> bool {
        let raw = h::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        let mut plan = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, n) = item.split_once('=').unwrap_or((item, "1"));
            match (OPS.iter().find(|(k, _)| *k == name), n.parse::<u32>()) {
                (Some((_, op)), Ok(n)) => plan.push((*op, n)),
                _ => {
                    let _ = h::log(LogLevel::Error, &format!("probe: bad item {item:?}"));
                    return false;
                }
            }
        }
        self.plan = Rc::new(plan);
        self.counter = h::define_metric(MetricType::Counter, "probe.counter").unwrap_or(0);
        self.histogram = h::define_metric(MetricType::Histogram, "probe.histogram").unwrap_or(0);
        if self.plan.iter().any(|(op, _)| *op == Op::Bodies) {
            self.body_calls = ["probe.request_body_calls", "probe.response_body_calls"]
                .map(|n| h::define_metric(MetricType::Counter, n).unwrap_or(0));
        }
        let _ = h::set_shared_data("probe.key", Some(b"0123456789abcdef0123456789abcdef"), None);
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            plan: self.plan.clone(),
            counter: self.counter,
            histogram: self.histogram,
            body_calls: self.body_calls,
        }))
    }
}

struct Stream {
    plan: Rc<Vec<(Op, u32)>>,
    counter: u32,
    histogram: u32,
    /// Counters of request and response body callbacks (0: not counted).
    body_calls: [u32; 2],
}

impl Stream {
    fn count_body(&self, which: usize) -> proxy_wasm::types::Action {
        if let Some(&id) = self.body_calls.get(which).filter(|id| **id != 0) {
            let _ = h::increment_metric(id, 1);
        }
        proxy_wasm::types::Action::Continue
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        let rq = MapType::HttpRequestHeaders;
        for &(op, n) in self.plan.iter() {
            for i in 0..n {
                let _ = match op {
                    Op::Pairs => h::get_map_bytes(rq).map(|v| v.len()).unwrap_or(0),
                    Op::GetHit => h::get_map_value_bytes(rq, "traceparent")
                        .ok()
                        .flatten()
                        .map_or(0, |v| v.len()),
                    Op::GetMiss => h::get_map_value_bytes(rq, "x-b3-traceid")
                        .ok()
                        .flatten()
                        .map_or(0, |v| v.len()),
                    Op::Set => h::set_map_value_bytes(
                        rq,
                        "x-probe",
                        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                    )
                    .map_or(0, |_| 1),
                    Op::Remove => h::remove_map_value(rq, "x-absent").map_or(0, |_| 1),
                    Op::Time => h::get_current_time().map_or(0, |_| 1),
                    Op::Prop => h::get_property(vec!["listener_direction"])
                        .ok()
                        .flatten()
                        .map_or(0, |v| v.len()),
                    Op::SharedGet => h::get_shared_data("probe.key")
                        .ok()
                        .and_then(|(v, _)| v)
                        .map_or(0, |v| v.len()),
                    Op::SharedSet => h::set_shared_data(
                        if i % 2 == 0 { "probe.a" } else { "probe.b" },
                        Some(b"0123456789abcdef0123456789abcdef"),
                        None,
                    )
                    .map_or(0, |_| 1),
                    Op::Incr => h::increment_metric(self.counter, 1).map_or(0, |_| 1),
                    Op::Record => h::record_metric(self.histogram, u64::from(i)).map_or(0, |_| 1),
                    Op::Alloc => std::hint::black_box(vec![i as u8; 256]).len(),
                    Op::Spin => {
                        let buf = std::hint::black_box([i as u8; 1024]);
                        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                        for b in buf {
                            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                        }
                        std::hint::black_box(h) as usize
                    }
                    Op::LogProp | Op::LogMap | Op::Bodies => 0,
                };
            }
        }
        proxy_wasm::types::Action::Continue
    }

    fn on_http_request_body(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        self.count_body(0)
    }

    fn on_http_response_body(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        self.count_body(1)
    }

    fn on_log(&mut self) {
        for &(op, n) in self.plan.iter() {
            for i in 0..n {
                match op {
                    Op::LogProp => {
                        let _ = h::get_property(vec!["response", "code"]);
                    }
                    Op::LogMap => {
                        let r = h::get_property(vec!["response"]);
                        if i == 0 {
                            let _ = h::log(LogLevel::Warn, &format!("probe: response map {r:?}"));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

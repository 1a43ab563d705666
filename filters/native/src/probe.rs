//! `filter_name: probe`: a benchmark filter that makes `N` host callbacks of one kind per
//! request, so `bench/run.py --phases nativecalls` can price each callback inside Envoy:
//! (probe − probe with 0 calls) CPU per request ÷ N. The native counterpart of `bench/probe`
//! (wasm). Configuration: `OP=N`, e.g. `get_all=40` (see [`Op::parse`]). Not for production.
use crate::abi::ModuleBuffer;
use crate::abi::{self, AttributeId, FilterConfigEnvoyPtr, FilterEnvoyPtr, HeaderType};
use crate::host::{self, Headers};
use crate::stats::{self, Id};
use meshwake_telemetry::metrics::label;

/// Most calls of one kind per request.
const MAX_CALLS: u32 = 1000;

/// The callback a probe makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// No call: the baseline of the other ops.
    None,
    /// `get_headers_size` + `get_headers` of the request map (as the filter reads it).
    GetAll,
    /// `get_header` of a request header that is present (`traceparent`).
    GetOne,
    /// `get_header` of a request header that is absent.
    GetMiss,
    /// `set_header` on the request map (same name and value each time).
    SetRequest,
    /// `set_header` on the response map.
    SetResponse,
    /// `set_header` with a null value (remove) of an absent request header.
    Remove,
    /// `increment_counter` without labels.
    Count,
    /// `increment_counter` with the 13 request-metric labels.
    CountLabels,
    /// `record_histogram_value` without labels.
    Histogram,
    /// `record_histogram_value` with the 13 request-metric labels.
    HistogramLabels,
    /// `get_attribute_int(response.code)` at stream end.
    AttrInt,
    /// `get_attribute_string(request.protocol)` at stream end.
    AttrText,
}

impl Op {
    const NAMES: [(&'static str, Op); 13] = [
        ("none", Op::None),
        ("get_all", Op::GetAll),
        ("get_one", Op::GetOne),
        ("get_miss", Op::GetMiss),
        ("set_request", Op::SetRequest),
        ("set_response", Op::SetResponse),
        ("remove", Op::Remove),
        ("count", Op::Count),
        ("count_labels", Op::CountLabels),
        ("histogram", Op::Histogram),
        ("histogram_labels", Op::HistogramLabels),
        ("attr_int", Op::AttrInt),
        ("attr_text", Op::AttrText),
    ];

    /// `OP=N` → (op, N); anything else is the no-call probe (logged).
    fn parse(raw: &[u8]) -> (Op, u32) {
        let text = String::from_utf8_lossy(raw);
        let (name, n) = text.trim().split_once('=').unwrap_or((text.trim(), "1"));
        let op = Op::NAMES
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, op)| *op);
        match (op, n.parse::<u32>()) {
            (Some(op), Ok(n)) => (op, n.min(MAX_CALLS)),
            _ => {
                host::log(
                    abi::LogLevel::Error,
                    &format!("meshwake probe: bad plan `{text}` (OP=N); making no calls"),
                );
                (Op::None, 0)
            }
        }
    }
}

/// One probe configuration: what to call, how often, and the metrics it records into.
pub struct Plan {
    op: Op,
    calls: u32,
    plain_counter: Id,
    labelled_counter: Id,
    plain_histogram: Id,
    labelled_histogram: Id,
}

/// Label values of a typical request (what the full filter records in the benchmark).
const LABEL_VALUES: [&str; 13] = [
    "destination",
    "unknown",
    "unknown",
    "unknown",
    "unknown",
    "bench",
    "bench",
    "v1",
    "bench",
    "http",
    "200",
    "-",
    "-",
];

impl Plan {
    /// Parse the plan and define the probe's metrics (config creation, main thread).
    pub fn new(cfg: FilterConfigEnvoyPtr, raw: &[u8]) -> Plan {
        let (op, calls) = Op::parse(raw);
        let counter = abi::envoy_dynamic_module_callback_http_filter_config_define_counter;
        let histogram = abi::envoy_dynamic_module_callback_http_filter_config_define_histogram;
        Plan {
            op,
            calls,
            plain_counter: stats::define(cfg, counter, "meshwake.probe.plain", &[]),
            labelled_counter: stats::define(cfg, counter, "meshwake.probe.labelled", &label::ALL),
            plain_histogram: stats::define(cfg, histogram, "meshwake.probe.plain_ms", &[]),
            labelled_histogram: stats::define(
                cfg,
                histogram,
                "meshwake.probe.labelled_ms",
                &label::ALL,
            ),
        }
    }

    fn repeat(&self, mut f: impl FnMut()) {
        for _ in 0..self.calls {
            f();
        }
    }

    pub fn on_request_headers(&self, f: FilterEnvoyPtr) {
        let map = HeaderType::RequestHeader;
        match self.op {
            Op::GetAll => self.repeat(|| {
                std::hint::black_box(Headers::read(f, map));
            }),
            Op::GetOne => self.repeat(|| {
                std::hint::black_box(host::header(f, map, b"traceparent"));
            }),
            Op::GetMiss => self.repeat(|| {
                std::hint::black_box(host::header(f, map, b"x-absent"));
            }),
            Op::SetRequest => self.repeat(|| host::set_header(f, map, "x-probe", Some(b"1"))),
            Op::Remove => self.repeat(|| host::set_header(f, map, "x-absent", None)),
            _ => {}
        }
    }

    pub fn on_response_headers(&self, f: FilterEnvoyPtr) {
        if self.op == Op::SetResponse {
            let map = HeaderType::ResponseHeader;
            self.repeat(|| host::set_header(f, map, "x-probe", Some(b"1")));
        }
    }

    pub fn on_stream_complete(&self, f: FilterEnvoyPtr) {
        let mut labels = LABEL_VALUES.map(|v| ModuleBuffer::new(v.as_bytes()));
        match self.op {
            Op::Count => self.repeat(|| stats::count(f, self.plain_counter, 1)),
            Op::CountLabels => self.repeat(|| {
                stats::record(f, self.labelled_counter, true, &mut labels, 1);
            }),
            Op::Histogram => self.repeat(|| {
                stats::record(f, self.plain_histogram, false, &mut [], 1);
            }),
            Op::HistogramLabels => self.repeat(|| {
                stats::record(f, self.labelled_histogram, false, &mut labels, 1);
            }),
            Op::AttrInt => self.repeat(|| {
                std::hint::black_box(host::attribute_int(f, AttributeId::ResponseCode));
            }),
            Op::AttrText => self.repeat(|| {
                std::hint::black_box(host::attribute_text(f, AttributeId::RequestProtocol, 256));
            }),
            _ => {}
        }
    }
}

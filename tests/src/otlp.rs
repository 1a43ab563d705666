//! An OTLP/HTTP receiver for tests: decodes `ExportTraceServiceRequest` protobuf bodies
//! with the OpenTelemetry protocol crate (the real schema, not our encoder's opinion).
use crate::http::{Response, Server};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A received span with its resource.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub resource: Resource,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&any_value::Value> {
        find(&self.span.attributes, key)
    }
    pub fn attr_str(&self, key: &str) -> Option<String> {
        match self.attr(key)? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    }
    pub fn resource_str(&self, key: &str) -> Option<String> {
        match find(&self.resource.attributes, key)? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn trace_id_hex(&self) -> String {
        hex(&self.span.trace_id)
    }
    pub fn span_id_hex(&self) -> String {
        hex(&self.span.span_id)
    }
    pub fn parent_id_hex(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What the receiver answers; by default 200 forever.
#[derive(Clone)]
struct Plan {
    scripted: VecDeque<u16>,
}

/// An OTLP/HTTP receiver on a free port.
pub struct OtlpReceiver {
    pub server: Server,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    plan: Arc<Mutex<Plan>>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(Mutex::new(Plan {
            scripted: VecDeque::new(),
        }));
        let (s2, b2, p2) = (spans.clone(), bodies.clone(), plan.clone());
        let server = Server::start(move |req| {
            if req.method != "POST" || req.path != "/v1/traces" {
                return Response::new(404);
            }
            if let Some(code) = p2.lock().unwrap().scripted.pop_front() {
                return Response::new(code);
            }
            let ct = req.header("content-type").unwrap_or_default();
            if ct != "application/x-protobuf" {
                return Response::new(415);
            }
            let decoded = match ExportTraceServiceRequest::decode(req.body.as_slice()) {
                Ok(d) => d,
                Err(_) => return Response::new(400),
            };
            b2.lock().unwrap().push(req.body.clone());
            let mut out = s2.lock().unwrap();
            for rs in decoded.resource_spans {
                let resource = rs.resource.unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push(ReceivedSpan {
                            resource: resource.clone(),
                            span,
                        });
                    }
                }
            }
            Response::new(200)
                .with_header("content-type", "application/x-protobuf")
                .with_body(ExportTraceServiceResponse::default().encode_to_vec())
        });
        OtlpReceiver {
            server,
            spans,
            bodies,
            plan,
        }
    }
    pub fn port(&self) -> u16 {
        self.server.port()
    }
    /// Answer the next requests with these statuses (then 200 again).
    pub fn script(&self, statuses: &[u16]) {
        self.plan
            .lock()
            .unwrap()
            .scripted
            .extend(statuses.iter().copied());
    }
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
    /// Raw protobuf bodies accepted.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap().clone()
    }
    /// Wait until at least `n` spans arrived.
    pub fn wait_spans(&self, n: usize, secs: u64) -> Vec<ReceivedSpan> {
        crate::wait_for(secs, &format!("{n} spans at the OTLP receiver"), || {
            let s = self.spans();
            (s.len() >= n).then_some(s)
        })
    }
}

//! The whole per-request pipeline with arbitrary header pairs, as the glue drives it:
//! request headers (every role, several configurations), a context-recovery slot with
//! arbitrary bytes, response headers, stream end, then the span through the exporter and its
//! OTLP body decoded with the reference protobuf schema. Never panics; the body always decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_core::{Completion, Config, Engine, Role};
use meshwake_telemetry::{ExportConfig, Exporter};
use meshwake_trace_context::IdGenerator;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::sync::OnceLock;

/// Configurations that change which code runs: defaults, B3 both ways with an HMAC key,
/// edge trust off and on, spans off, low sampling, a route template.
const CONFIGS: &[&str] = &[
    "{}",
    r#"{"propagation":{"extract":["b3","b3multi","tracecontext"],"inject":["tracecontext","b3","b3multi"]},"identity":{"hmac_key":"k","lineage_max":2}}"#,
    r#"{"edge":{"trust_incoming_context":false}}"#,
    r#"{"edge":{"trust_incoming_context":true},"sampling":{"ratio":0.01,"force_header":"x-force"}}"#,
    r#"{"spans":{"enabled":false,"routes":["/users/{id}"]},"propagation":{"baggage":false}}"#,
];

fn engines() -> &'static Vec<Engine> {
    static E: OnceLock<Vec<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|c| Engine::new(Config::parse(c.as_bytes()).0, meshwake_fuzz::local_identity(), "fuzz").0)
            .collect()
    })
}

// Input: 3 bytes (configuration, role, status), then request header lines, a blank line,
// response header lines, a blank line, and the bytes of the context-recovery slot.
fuzz_target!(|data: &[u8]| {
    let [config, role, status, rest @ ..] = data else { return };
    let engines = engines();
    let Some(engine) = engines.get(usize::from(*config) % engines.len()) else { return };
    let role = [Role::Inbound, Role::Outbound, Role::Edge][usize::from(role % 3)];
    let (req, rest) = meshwake_fuzz::split_blank_line(rest);
    let (resp, slot) = meshwake_fuzz::split_blank_line(rest);
    let request = meshwake_fuzz::header_lines(req);
    let response = meshwake_fuzz::header_lines(resp);
    let status = [200u16, 404, 503, 0, 429, 504, 101, 999][usize::from(status % 8)];
    let mut ids = IdGenerator::new([7; 32]);
    let mut recall = |_kind: &str, key: &[u8]| {
        (!slot.is_empty()).then_some(())?;
        engine.recall_entry(slot, key, 1_000)
    };
    let (mut state, edits) = engine.on_request(role, &request, 1_000, &mut ids, &mut recall);
    let _ = engine.remember(&state);
    let resp_edits = engine.on_response(&mut state, &response, 2_000);
    for (name, value) in edits.set.iter().chain(&resp_edits.set) {
        // Header values we set must be valid HTTP field values, or Envoy rejects the message.
        assert!(
            value.as_bytes().iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)),
            "{name}: {value:?}"
        );
    }
    let c = Completion {
        end_ns: 3_000,
        status,
        upstream_cluster: response.iter().find(|(k, _)| k == "x-cluster").map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
        upstream_workload_meta: response.iter().find(|(k, _)| k == "x-workload").map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
        ..Default::default()
    };
    let (span, _labels) = engine.finish(state, &c);
    if let Some(span) = span {
        let mut ex = Exporter::new(ExportConfig { max_batch_spans: 1, ..Default::default() });
        let _ = ex.push(span);
        let batch = ex.poll(10_000_000_000, engine.resource(), engine.scope()).expect("a full batch is sent");
        let req = ExportTraceServiceRequest::decode(batch.body).expect("valid OTLP protobuf");
        assert_eq!(req.resource_spans.len(), 1);
    }
});

//! Span model, OTLP/protobuf encoding, export queue with batching and backoff, and metric label sets. No proxy-wasm dependency.

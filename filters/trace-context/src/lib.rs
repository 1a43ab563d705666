//! W3C Trace Context, W3C Baggage and B3 propagation, sampling and id generation. No proxy-wasm dependency.

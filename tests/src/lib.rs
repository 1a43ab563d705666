//! Test harness: Envoy processes on free loopback ports, upstream HTTP servers written in
//! the test, and an OTLP receiver that decodes what the filter exports.
//!
//! Everything started here is killed on drop, also when a test panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod envoy;
pub mod http;
pub mod mesh;
pub mod otlp;
pub mod paths;
pub mod prometheus;
pub mod stats_tags;

pub use envoy::{Build, Envoy, EnvoyOptions};
pub use http::{request, Request, Response, Server};
pub use otlp::OtlpReceiver;

/// A free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    // The probe socket is closed before the port is used, so the kernel may offer the same
    // port again to the next call (an Envoy's admin and listener then collide): a port
    // already handed out in this process is never handed out again.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or panic after `secs` seconds with `what`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

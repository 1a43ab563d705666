//! The module's callbacks: Envoy enters the VM through these exports only.
//!
//! Envoy calls every `proxy_on_*` a module exports and skips the others
//! (proxy-wasm-cpp-host `ContextBase`), so this exports just what meshwake does:
//! - per VM and plugin: `proxy_on_vm_start`, `proxy_on_configure`, `proxy_on_tick`,
//!   `proxy_on_http_call_response`, and `proxy_on_context_create`, which creates root
//!   contexts too;
//! - per stream: `proxy_on_context_create` (it names the stream's plugin),
//!   `proxy_on_request_headers`, `proxy_on_response_headers`, `proxy_on_log`.
//!
//! A stream's state is dropped in `proxy_on_log`, the last callback Envoy makes for an
//! HTTP stream (its access-log handler runs once the request is complete, before the
//! filter is destroyed), so neither `proxy_on_done` nor `proxy_on_delete` is exported:
//! one VM entry less per request than the SDK's dispatcher makes. A stream that never
//! reaches `proxy_on_log` would otherwise stay: the table holds at most [`MAX_STREAMS`]
//! and evicts (counted in `meshwake.streams_evicted`).
//!
//! A root context that Envoy deleted (a plugin reconfigured) gets no more ticks: one not
//! ticked for [`STALE_ROOT_MS`] is dropped by a live one's tick.
#![allow(unsafe_code)]
use crate::abi::CONTINUE;
use crate::http::Stream;
use crate::root::Root;
use meshwake_telemetry::cardinality::FxBuildHasher;
use std::cell::RefCell;
use std::collections::HashMap;

/// Streams in flight per VM (one VM per worker thread) whose state is kept.
pub const MAX_STREAMS: usize = 8192;

/// A root context silent this long (no tick) is taken for deleted.
pub const STALE_ROOT_MS: u64 = 60_000;

#[derive(Default)]
struct Vm {
    /// Root contexts (one per plugin configuration in this VM): few, scanned.
    roots: Vec<(u32, Root)>,
    /// Stream context id → its state.
    streams: HashMap<u32, Stream, FxBuildHasher>,
    /// The propagation-only build's one stream between its creation and its request
    /// headers (stream context id, root context id): it needs no table.
    #[cfg(feature = "propagation-only")]
    pending: Option<(u32, u32)>,
}

thread_local! {
    static VM: RefCell<Vm> = RefCell::new(Vm::default());
}

/// Run `f` on the VM's state; nothing if it is busy (a host re-entering a callback while
/// another runs: Envoy defers those, so this is only a guard).
fn with_vm<R: Default>(f: impl FnOnce(&mut Vm) -> R) -> R {
    VM.with(|vm| {
        vm.try_borrow_mut()
            .map(|mut vm| f(&mut vm))
            .unwrap_or_default()
    })
}

impl Vm {
    fn root(&mut self, id: u32) -> Option<&mut Root> {
        self.roots
            .iter_mut()
            .find(|(r, _)| *r == id)
            .map(|(_, r)| r)
    }

    /// Stream state and its plugin's root, both borrowed.
    fn stream(&mut self, id: u32) -> Option<(&mut Stream, &mut Root)> {
        let stream = self.streams.get_mut(&id)?;
        let root = self.roots.iter_mut().find(|(r, _)| *r == stream.root)?;
        Some((stream, &mut root.1))
    }

    fn new_stream(&mut self, id: u32, root_id: u32) {
        let Some(root) = self.root(root_id) else {
            return;
        };
        let stream = root.new_stream(root_id);
        if self.streams.len() >= MAX_STREAMS {
            // Not expected (every stream ends in `proxy_on_log`): keep the table bounded.
            let old = self.streams.keys().next().copied();
            if let Some(old) = old.and_then(|k| self.streams.remove(&k)) {
                if let Some(root) = self.root(old.root) {
                    root.stream_evicted();
                }
            }
        }
        if let Some(old) = self.streams.insert(id, stream) {
            // A context id Envoy reused without a log callback for the old stream.
            if let Some(root) = self.root(old.root) {
                root.stream_ended();
            }
        }
    }

    /// The stream's last callback: drop its state.
    #[cfg(not(feature = "propagation-only"))]
    fn request_headers(&mut self, id: u32) {
        if let Some((stream, root)) = self.stream(id) {
            stream.on_request_headers(root);
        }
    }

    /// Envoy creates a stream's context right before its request headers (its
    /// `Context::decodeHeaders` calls `onCreate` then `onRequestHeaders`), and nothing of
    /// the stream reaches this build after them: the pending pair is all it needs. A
    /// mismatch (not seen from Envoy) leaves the request as it came.
    #[cfg(feature = "propagation-only")]
    fn request_headers(&mut self, id: u32) {
        let Some((_, root_id)) = self.pending.take().filter(|(stream, _)| *stream == id) else {
            return;
        };
        if let Some(root) = self.root(root_id) {
            Stream::new(root_id).on_request_headers(root);
        }
    }

    fn end_stream(&mut self, id: u32) {
        if let Some(old) = self.streams.remove(&id) {
            if let Some(root) = self.root(old.root) {
                root.stream_ended();
            }
        }
    }

    fn tick(&mut self, root_id: u32) {
        let Some(i) = self.roots.iter().position(|(r, _)| *r == root_id) else {
            return;
        };
        let now = crate::host::now_ns();
        if let Some((_, root)) = self.roots.get_mut(i) {
            root.on_tick(now);
        }
        let stale = STALE_ROOT_MS * 1_000_000;
        let before = self.roots.len();
        self.roots
            .retain(|(r, root)| *r == root_id || now.saturating_sub(root.last_tick_ns()) < stale);
        if self.roots.len() < before {
            let live: Vec<u32> = self.roots.iter().map(|(r, _)| *r).collect();
            self.streams.retain(|_, s| live.contains(&s.root));
        }
    }
}

/// A root context (`root_context_id` 0) or a stream of root `root_context_id`.
#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    with_vm(|vm| {
        if root_context_id == 0 {
            if vm.root(context_id).is_none() {
                vm.roots.push((context_id, Root::default()));
            }
        } else {
            #[cfg(feature = "propagation-only")]
            {
                vm.pending = Some((context_id, root_context_id));
            }
            #[cfg(not(feature = "propagation-only"))]
            vm.new_stream(context_id, root_context_id);
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_config_size: usize) -> bool {
    log::info!("meshwake {} starting", crate::VERSION);
    true
}

/// Never refuses: a bad configuration becomes defaults plus log lines.
#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _config_size: usize) -> bool {
    with_vm(|vm| {
        if vm.root(root_context_id).is_none() {
            vm.roots.push((root_context_id, Root::default()));
        }
        if let Some(root) = vm.root(root_context_id) {
            root.configure();
        }
    });
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    with_vm(|vm| vm.tick(root_context_id))
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    root_context_id: u32,
    token: u32,
    num_headers: usize,
    body_size: usize,
    _num_trailers: usize,
) {
    with_vm(|vm| {
        if let Some(root) = vm.root(root_context_id) {
            root.on_http_call_response(token, num_headers, body_size);
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> u32 {
    with_vm(|vm| vm.request_headers(context_id));
    CONTINUE
}

#[cfg(not(feature = "propagation-only"))]
#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> u32 {
    with_vm(|vm| {
        if let Some((stream, root)) = vm.stream(context_id) {
            stream.on_response_headers(root);
        }
    });
    CONTINUE
}

/// The stream's last callback: record it, then drop its state.
#[cfg(not(feature = "propagation-only"))]
#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    with_vm(|vm| {
        if let Some((stream, root)) = vm.stream(context_id) {
            stream.on_log(root);
        }
        vm.end_stream(context_id);
    })
}

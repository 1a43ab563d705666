//! The meshwake proxy-wasm module. Thin glue: Envoy callbacks in, meshwake-core out.
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

/// Version of this module, which is also the deployment version of the filter itself.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("meshwake panic: {info}")).ok();
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        log::info!("meshwake {VERSION} starting");
        true
    }
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        log::info!("meshwake configuration: {}", String::from_utf8_lossy(&raw));
        true
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {}))
    }
}

struct Http {}
impl Context for Http {}
impl HttpContext for Http {
    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.set_http_response_header("x-meshwake", Some(concat!("meshwake/", env!("CARGO_PKG_VERSION"))));
        Action::Continue
    }
}

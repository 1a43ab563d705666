//! Hand-written bindings to the part of Envoy's dynamic-module C ABI this filter uses.
//!
//! Source: `source/extensions/dynamic_modules/abi/abi.h` of envoyproxy/envoy, the newest
//! stored version (`ENVOY_DYNAMIC_MODULES_ABI_VERSION "v0.1.0"`, with the config-level
//! callout and scheduler). Envoy 1.40 carries ABI `v0.2.0`; the header's policy is that a
//! module built for `v0.1.y` works with a `v0.2.x` host (Envoy logs a deprecation warning).
//! Only the types and callbacks the glue calls are declared; `tests/tests/native_abi.rs`
//! checks every imported `envoy_dynamic_module_callback_*` symbol against the Envoy binary.
//!
//! Structs passed by value (`envoy_buffer`, `module_buffer`) are `#[repr(C)]` pointer +
//! length pairs, exactly as in the header: on x86-64 a wrong layout can appear to work.
use std::ffi::c_void;

/// The ABI version this module is written against (see the module docs).
pub const ABI_VERSION: &[u8] = b"v0.1.0\0";

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, valid for the current event hook only.
    ///
    /// # Safety
    /// `ptr` must point at `length` readable bytes owned by Envoy for the returned lifetime.
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller (Envoy's contract for the current hook).
            unsafe { std::slice::from_raw_parts(self.ptr, self.length) }
        }
    }
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    /// A null buffer: for `set_header`, "remove the header".
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    pub fn new(b: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: b.as_ptr(),
            length: b.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`: a header owned by Envoy's map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    pub const NULL: EnvoyHttpHeader = EnvoyHttpHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
}

/// `envoy_dynamic_module_type_module_http_header`: a header the module passes to Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl ModuleHttpHeader {
    pub fn new(k: &[u8], v: &[u8]) -> ModuleHttpHeader {
        ModuleHttpHeader {
            key_ptr: k.as_ptr(),
            key_length: k.len(),
            value_ptr: v.as_ptr(),
            value_length: v.len(),
        }
    }
}

/// `envoy_dynamic_module_type_http_header_type`.
// Every value of the C enum, used or not, so the discriminants are checked against the header.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HeaderType {
    RequestHeader = 0,
    RequestTrailer = 1,
    ResponseHeader = 2,
    ResponseTrailer = 3,
}

/// `envoy_dynamic_module_type_log_level`.
// Every value of the C enum, used or not, so the discriminants are checked against the header.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
    Off = 6,
}

/// `envoy_dynamic_module_type_http_callout_init_result`.
// Every value of the C enum, used or not, so the discriminants are checked against the header.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CalloutInitResult {
    Success = 0,
    MissingRequiredHeaders = 1,
    ClusterNotFound = 2,
    DuplicateCalloutId = 3,
    CannotCreateRequest = 4,
}

/// `envoy_dynamic_module_type_http_callout_result`.
// Every value of the C enum, used or not, so the discriminants are checked against the header.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CalloutResult {
    Success = 0,
    Reset = 1,
    ExceedResponseBufferLimit = 2,
}

/// `envoy_dynamic_module_type_metrics_result`.
// Every value of the C enum, used or not, so the discriminants are checked against the header.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetricsResult {
    Success = 0,
    MetricNotFound = 1,
    InvalidLabels = 2,
    Frozen = 3,
}

/// `envoy_dynamic_module_type_metadata_source`.
// Every value of the C enum, used or not, so the discriminants are checked against the header.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetadataSource {
    Dynamic = 0,
    Route = 1,
    Cluster = 2,
    Host = 3,
    HostLocality = 4,
}

/// `envoy_dynamic_module_type_attribute_id`: only the values used, with their position in
/// the header's enum (it is append-only within an ABI minor version line).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AttributeId {
    /// `request.protocol`
    RequestProtocol = 10,
    /// `request.size`
    RequestSize = 13,
    /// `response.code`
    ResponseCode = 15,
    /// `response.flags`
    ResponseFlags = 17,
    /// `response.grpc_status`
    ResponseGrpcStatus = 18,
    /// `response.size`
    ResponseSize = 21,
    /// `upstream.address`
    UpstreamAddress = 41,
    /// `xds.cluster_name`
    XdsClusterName = 57,
    /// `xds.listener_direction`
    XdsListenerDirection = 59,
}

/// Status values of the header/body/trailer hooks: 0 is `Continue` in each of them.
pub const CONTINUE: u32 = 0;

pub type FilterConfigEnvoyPtr = *mut c_void;
pub type FilterEnvoyPtr = *mut c_void;
pub type ConfigSchedulerPtr = *mut c_void;

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_is_validation_mode() -> bool;

    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoyPtr,
        attribute_id: AttributeId,
        result: *mut u64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: FilterEnvoyPtr,
        metadata_source: MetadataSource,
        ns: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id_ptr: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        gauge_id_ptr: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        histogram_id_ptr: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: FilterConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_gauge(
        config: FilterConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_decrement_gauge(
        config: FilterConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: FilterConfigEnvoyPtr,
    ) -> ConfigSchedulerPtr;
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: ConfigSchedulerPtr,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: ConfigSchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: FilterConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;
}

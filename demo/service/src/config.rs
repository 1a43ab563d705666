//! Per-instance configuration: flags (or their environment variables), optionally overridden by a
//! JSON object (`--config-json`), parsed once into an immutable [`Config`].

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Flags of the demo service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "meshwake-demo-service", about, disable_version_flag = true)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed on stderr).
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Service name reported in responses.
    #[arg(long, env = "DEMO_SERVICE", default_value = "demo")]
    pub service: String,
    /// Deployment version reported in responses.
    #[arg(long, env = "DEMO_VERSION", default_value = "v1")]
    pub version: String,
    /// Median latency added to each request, in milliseconds.
    #[arg(long, env = "DEMO_LATENCY_MS_P50", default_value_t = 5.0)]
    pub latency_ms_p50: f64,
    /// Spread of the latency around the median, in milliseconds (log-normal).
    #[arg(long, env = "DEMO_LATENCY_JITTER_MS", default_value_t = 2.0)]
    pub latency_jitter_ms: f64,
    /// Probability of answering 500.
    #[arg(long, env = "DEMO_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Probability of hanging for --hang-ms, then answering 504.
    #[arg(long, env = "DEMO_TIMEOUT_RATE", default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// How long a "timeout" request hangs, in milliseconds.
    #[arg(long, env = "DEMO_HANG_MS", default_value_t = 5000)]
    pub hang_ms: u64,
    /// Downstream URL to call on each request (repeatable), e.g. http://payments/pay.
    #[arg(long = "call", env = "DEMO_CALLS", value_delimiter = ',')]
    pub calls: Vec<String>,
    /// Calls (among --call) whose failure this service absorbs: it answers 200 with a
    /// degraded marker (`"degraded"` in the body, header x-demo-degraded) instead of 502.
    #[arg(long = "fallback", env = "DEMO_FALLBACKS", value_delimiter = ',')]
    pub fallbacks: Vec<String>,
    /// Probability of closing the connection without answering (a crash mid-request).
    #[arg(long, env = "DEMO_RESET_RATE", default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Call downstreams in parallel instead of one after another.
    #[arg(long, env = "DEMO_PARALLEL", default_value_t = false)]
    pub parallel: bool,
    /// Outbound sidecar address: downstream connections go there, with the URL's host as Host.
    #[arg(long, env = "DEMO_OUTBOUND")]
    pub outbound: Option<SocketAddr>,
    /// Give up on a downstream call after this many milliseconds.
    #[arg(long, env = "DEMO_DOWNSTREAM_TIMEOUT_MS", default_value_t = 3000)]
    pub downstream_timeout_ms: u64,
    /// Extra request headers to forward downstream (repeatable), besides the trace headers.
    #[arg(
        long = "forward-header",
        env = "DEMO_FORWARD_HEADERS",
        value_delimiter = ','
    )]
    pub forward_headers: Vec<String>,
    /// Seed of the random source (default: from the clock), for reproducible runs.
    #[arg(long, env = "DEMO_SEED")]
    pub seed: Option<u64>,
    /// JSON object whose keys (the flag names with `_`) override the flags.
    #[arg(long, env = "DEMO_CONFIG_JSON")]
    pub config_json: Option<String>,
}

/// The configuration of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub service: String,
    pub version: String,
    pub latency_ms_p50: f64,
    pub latency_jitter_ms: f64,
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub hang_ms: u64,
    pub calls: Vec<String>,
    pub fallbacks: Vec<String>,
    pub reset_rate: f64,
    pub parallel: bool,
    pub outbound: Option<SocketAddr>,
    pub downstream_timeout_ms: u64,
    pub forward_headers: Vec<String>,
    pub seed: Option<u64>,
}

/// An invalid configuration.
#[derive(Debug)]
pub enum ConfigError {
    /// `--config-json` is not a JSON object of known keys with the right types.
    Json(serde_json::Error),
    /// A value is out of range.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(e) => write!(f, "invalid --config-json: {e}"),
            ConfigError::Invalid(m) => write!(f, "invalid configuration: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Builds the configuration from flags, applying `--config-json` on top, and validates it.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let json = args.config_json.clone();
        let mut config = Config {
            listen: args.listen,
            service: args.service,
            version: args.version,
            latency_ms_p50: args.latency_ms_p50,
            latency_jitter_ms: args.latency_jitter_ms,
            error_rate: args.error_rate,
            timeout_rate: args.timeout_rate,
            hang_ms: args.hang_ms,
            calls: args.calls,
            fallbacks: args.fallbacks,
            reset_rate: args.reset_rate,
            parallel: args.parallel,
            outbound: args.outbound,
            downstream_timeout_ms: args.downstream_timeout_ms,
            forward_headers: args.forward_headers,
            seed: args.seed,
        };
        if let Some(json) = json {
            let overrides: serde_json::Value =
                serde_json::from_str(&json).map_err(ConfigError::Json)?;
            let mut merged = serde_json::to_value(&config).map_err(ConfigError::Json)?;
            if let (Some(base), Some(over)) = (merged.as_object_mut(), overrides.as_object()) {
                for (k, v) in over {
                    base.insert(k.clone(), v.clone());
                }
            } else {
                return Err(ConfigError::Invalid(
                    "--config-json must be a JSON object".into(),
                ));
            }
            config = serde_json::from_value(merged).map_err(ConfigError::Json)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, p) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be within [0, 1], got {p}"
                )));
            }
        }
        for (name, ms) in [
            ("latency_ms_p50", self.latency_ms_p50),
            ("latency_jitter_ms", self.latency_jitter_ms),
        ] {
            if !ms.is_finite() || ms < 0.0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be a non-negative number, got {ms}"
                )));
            }
        }
        if let Some(f) = self.fallbacks.iter().find(|f| !self.calls.contains(f)) {
            return Err(ConfigError::Invalid(format!(
                "--fallback {f:?} is not one of the --call URLs"
            )));
        }
        for url in &self.calls {
            crate::downstream::Target::parse(url)
                .map_err(|e| ConfigError::Invalid(format!("--call {url:?}: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<Config, ConfigError> {
        let mut full = vec!["demo"];
        full.extend_from_slice(argv);
        Config::from_args(Args::parse_from(full))
    }

    #[test]
    fn flags_then_json_overrides() {
        let c = parse(&[
            "--service",
            "cart",
            "--call",
            "http://a/x",
            "--call",
            "http://b/y",
        ])
        .unwrap();
        assert_eq!(c.service, "cart");
        assert_eq!(c.calls, ["http://a/x", "http://b/y"]);
        let c = parse(&[
            "--service",
            "cart",
            "--config-json",
            r#"{"version":"v9","error_rate":0.5}"#,
        ])
        .unwrap();
        assert_eq!(
            (c.service.as_str(), c.version.as_str(), c.error_rate),
            ("cart", "v9", 0.5)
        );
    }

    #[rustfmt::skip]
    #[test]
    fn rejects_bad_values() {
        let cases: [&[&str]; 7] = [
            &["--error-rate", "1.5"],
            &["--reset-rate=-0.1"],
            &["--call", "http://a/x", "--fallback", "http://b/y"],
            &["--latency-ms-p50=-1"],
            &["--call", "ftp://x/"],
            &["--config-json", r#"{"nope":1}"#],
            &["--config-json", "[1]"],
        ];
        for argv in cases {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
    }
}

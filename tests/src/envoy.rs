//! An Envoy process started from a template in `tests/envoy/` (`*.yaml.tmpl`: YAML once filled).
//!
//! Placeholders `{{NAME}}` are filled from [`EnvoyOptions::vars`]; any `{{..._PORT}}` left
//! unset gets a free loopback port. Envoy's log goes to a file whose path a failing test prints.
//!
//! One harness, both builds: with `MESHWAKE_BUILD=native` every meshwake wasm filter of a
//! rendered template becomes the native dynamic module (`target/libmeshwake.so`) with the
//! same plugin JSON (see [`Build`]), so each suite runs unchanged against either build.
use crate::paths;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to start an Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// Template file name under `tests/envoy/`, or inline YAML when it contains a newline.
    pub template: String,
    /// Plugin configuration handed to the filter (a JSON string; may be empty).
    pub plugin_config: String,
    /// The wasm runtime: only `envoy.wasm.runtime.v8` is compiled into the PyPI Envoy.
    pub wasm_runtime: String,
    /// `FAIL_CLOSED` in tests so a dead VM shows up as failed requests.
    pub failure_policy: String,
    pub wasm_path: PathBuf,
    /// Extra placeholder values.
    pub vars: BTreeMap<String, String>,
    pub concurrency: u32,
    /// Name used for the scratch directory.
    pub name: String,
    /// Which build of the filter the meshwake filter blocks load.
    pub build: Build,
}

/// Envoy's Prometheus exposition names dynamic-module stats `envoy_<metrics_namespace>_...`
/// (only wasm's namespace is stripped): `envoy_dynamicmodulescustom_meshwake_requests_total`.
/// The documented Prometheus `metric_relabel_configs` rule (README, Stats) removes this
/// prefix, so both builds give the same series names.
pub const NATIVE_PROMETHEUS_PREFIX: &str = "envoy_dynamicmodulescustom_";

/// The build of the filter under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `target/meshwake.wasm` in Envoy's V8 (the templates as written).
    Wasm,
    /// `target/libmeshwake.so`, an Envoy dynamic module.
    Native,
}

impl Build {
    /// `MESHWAKE_BUILD=native` selects the native build; anything else (or unset) wasm.
    pub fn from_env() -> Build {
        match std::env::var("MESHWAKE_BUILD").as_deref() {
            Ok("native") => Build::Native,
            _ => Build::Wasm,
        }
    }

    /// The admin `/stats` namespace of the filter's stats (`<ns>.meshwake.spans.created`):
    /// wasm stats live under `wasmcustom`, dynamic-module stats under the module's
    /// `metrics_namespace`, which defaults to `dynamicmodulescustom`. Prometheus strips both.
    pub fn stat_namespace(self) -> &'static str {
        match self {
            Build::Wasm => "wasmcustom",
            Build::Native => "dynamicmodulescustom",
        }
    }
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            template: "single.yaml.tmpl".into(),
            plugin_config: "{}".into(),
            wasm_runtime: "envoy.wasm.runtime.v8".into(),
            failure_policy: "FAIL_CLOSED".into(),
            wasm_path: paths::meshwake_wasm(),
            vars: BTreeMap::new(),
            concurrency: 1,
            name: "envoy".into(),
            build: Build::from_env(),
        }
    }
}

impl EnvoyOptions {
    pub fn var(mut self, k: &str, v: impl ToString) -> Self {
        self.vars.insert(k.into(), v.to_string());
        self
    }
    pub fn plugin_config(mut self, c: impl Into<String>) -> Self {
        self.plugin_config = c.into();
        self
    }
    pub fn template(mut self, t: impl Into<String>) -> Self {
        self.template = t.into();
        self
    }
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = n.into();
        self
    }
    /// Fill the template; returns the YAML and the final variable map.
    pub fn render(&self) -> (String, BTreeMap<String, String>) {
        let mut text = if self.template.contains('\n') {
            self.template.clone()
        } else {
            let p = paths::root().join("tests/envoy").join(&self.template);
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut vars = self.vars.clone();
        vars.entry("PLUGIN_CONFIG".into())
            .or_insert_with(|| serde_json::to_string(&self.plugin_config).unwrap());
        vars.entry("WASM_RUNTIME".into())
            .or_insert_with(|| self.wasm_runtime.clone());
        vars.entry("FAILURE_POLICY".into())
            .or_insert_with(|| self.failure_policy.clone());
        vars.entry("WASM_PATH".into())
            .or_insert_with(|| self.wasm_path.display().to_string());
        vars.entry("DIRECTION".into())
            .or_insert_with(|| "OUTBOUND".into());
        // Unset ports get free ones; unknown placeholders are an error in the test, not in Envoy.
        let mut out = String::new();
        while let Some(start) = text.find("{{") {
            let end = text[start..]
                .find("}}")
                .map(|e| start + e)
                .expect("unclosed {{");
            let key = text[start + 2..end].trim().to_string();
            if !vars.contains_key(&key) {
                assert!(
                    key.ends_with("_PORT"),
                    "template placeholder {{{{{key}}}}} has no value"
                );
                vars.insert(key.clone(), crate::free_port().to_string());
            }
            out.push_str(&text[..start]);
            out.push_str(&vars[&key]);
            text = text[end + 2..].to_string();
        }
        out.push_str(&text);
        if self.build == Build::Native {
            out = to_native(&out, &self.wasm_path);
        }
        (out, vars)
    }
}

/// Replace each `envoy.filters.http.wasm` block loading `wasm` by the dynamic-module filter
/// with the same plugin configuration. Other wasm filters (the no-op, probes) are kept.
fn to_native(yaml: &str, wasm: &std::path::Path) -> String {
    let wasm = wasm.display().to_string();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if line.trim() != "- name: envoy.filters.http.wasm" {
            out.push_str(line);
            out.push('\n');
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| {
                let l = lines[j];
                !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent
            })
            .unwrap_or(lines.len());
        let block = &lines[i..end];
        let loads_meshwake = block.iter().any(|l| l.contains(&wasm));
        let value = block
            .iter()
            .skip_while(|l| !l.trim().starts_with("configuration:"))
            .find_map(|l| l.trim().strip_prefix("value: "));
        match (loads_meshwake, value) {
            (true, Some(value)) => {
                let p = " ".repeat(indent);
                out.push_str(&format!(
                    "{p}- name: envoy.filters.http.dynamic_modules\n\
                     {p}  typed_config:\n\
                     {p}    \"@type\": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter\n\
                     {p}    dynamic_module_config: {{ name: meshwake }}\n\
                     {p}    filter_name: meshwake\n\
                     {p}    filter_config:\n\
                     {p}      \"@type\": type.googleapis.com/google.protobuf.StringValue\n\
                     {p}      value: {value}\n"
                ));
            }
            _ => {
                for l in block {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        i = end;
    }
    out
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Option<Child>,
    pub build: Build,
    pub vars: BTreeMap<String, String>,
    pub dir: PathBuf,
    pub log_path: PathBuf,
}

impl Envoy {
    /// Start Envoy and wait until its admin `/ready` says LIVE.
    pub fn start(opts: EnvoyOptions) -> Envoy {
        let dir = paths::scratch_dir(&opts.name);
        let build = opts.build;
        let (yaml, vars) = opts.render();
        let cfg = dir.join("envoy.yaml");
        std::fs::write(&cfg, &yaml).unwrap();
        let log_path = dir.join("envoy.log");
        let child = Command::new(paths::envoy_bin())
            // Where `dynamic_module_config: {name: meshwake}` finds libmeshwake.so.
            .env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                paths::root().join("target"),
            )
            .arg("-c")
            .arg(&cfg)
            .args(["--concurrency", &opts.concurrency.to_string()])
            .arg("--use-dynamic-base-id")
            .args(["-l", "info", "--component-log-level", "wasm:debug"])
            // The log file is flushed on a timer (10 s by default): tests read it live.
            .args(["--file-flush-interval-msec", "50"])
            .arg("--log-path")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("envoy.stderr")).unwrap(),
            ))
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Envoy {
            child: Some(child),
            build,
            vars,
            dir,
            log_path,
        };
        envoy.wait_ready();
        envoy
    }

    fn wait_ready(&mut self) {
        let admin = self.admin_port();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "envoy exited ({status}) before ready; log {}:\n{}\n{}",
                    self.log_path.display(),
                    tail(&self.log(), 40),
                    std::fs::read_to_string(self.dir.join("envoy.stderr")).unwrap_or_default()
                );
            }
            if let Ok(r) = crate::http::request(admin, "GET", "/ready", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "envoy not ready in 60s; log {}",
                self.log_path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A port chosen for placeholder `name` (e.g. `LISTEN_PORT`).
    pub fn port(&self, name: &str) -> u16 {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("no port {name}"))
            .parse()
            .unwrap()
    }
    pub fn admin_port(&self) -> u16 {
        self.port("ADMIN_PORT")
    }
    pub fn listen_port(&self) -> u16 {
        self.port("LISTEN_PORT")
    }
    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
    /// Wait until the log contains `needle` (the log is flushed every 50 ms).
    pub fn wait_log(&self, needle: &str, secs: u64) -> String {
        crate::wait_for(
            secs,
            &format!("envoy log line containing {needle:?}"),
            || {
                let l = self.log();
                l.contains(needle).then_some(l)
            },
        )
    }
    /// `GET` on the admin interface.
    pub fn admin(&self, path: &str) -> String {
        crate::http::get(self.admin_port(), path, &[]).body_str()
    }
    /// All stats as `name: value` pairs (admin `/stats`), for counters and gauges.
    pub fn stats(&self) -> BTreeMap<String, String> {
        settle_stats();
        self.stats_now()
    }
    /// Like [`Envoy::stats`] without waiting for the filter to publish: for sampling gauges
    /// while traffic runs.
    pub fn stats_now(&self) -> BTreeMap<String, String> {
        self.admin("/stats")
            .lines()
            .filter_map(|l| {
                l.split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }
    /// The filter's own counters and gauges (`<namespace>.meshwake.*`) by short name.
    pub fn meshwake_counters(&self) -> BTreeMap<String, u64> {
        meshwake_only(self.stats(), self.build)
    }
    /// Like [`Envoy::meshwake_counters`] without waiting for the filter to publish.
    pub fn meshwake_counters_now(&self) -> BTreeMap<String, u64> {
        meshwake_only(self.stats_now(), self.build)
    }
    /// One of the filter's own counters or gauges by short name (`context_recovered` for
    /// `<namespace>.meshwake.context_recovered`, whichever build runs), 0 when absent.
    pub fn meshwake_stat(&self, short: &str) -> u64 {
        self.stat(&format!("{}.meshwake.{short}", self.build.stat_namespace()))
    }
    /// A counter or gauge value by exact stat name, 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    /// The Prometheus exposition from `/stats/prometheus`, as Prometheus stores it: for the
    /// native build after the documented relabel rule that strips Envoy's prefix for
    /// dynamic-module stats (see [`NATIVE_PROMETHEUS_PREFIX`]).
    pub fn prometheus(&self) -> String {
        settle_stats();
        let text = self.admin("/stats/prometheus");
        match self.build {
            Build::Wasm => text,
            Build::Native => text
                .lines()
                .map(|l| {
                    let l = l.replacen(&format!("# TYPE {NATIVE_PROMETHEUS_PREFIX}"), "# TYPE ", 1);
                    l.strip_prefix(NATIVE_PROMETHEUS_PREFIX)
                        .map_or(l.clone(), str::to_string)
                        + "\n"
                })
                .collect(),
        }
    }
    /// Fail the test with the log tail if Envoy died.
    pub fn assert_alive(&mut self) {
        if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "envoy died ({s}); log {}:\n{}",
                self.log_path.display(),
                tail(&self.log(), 40)
            );
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- envoy log: {} (last lines) ---\n{}",
                self.log_path.display(),
                tail(&self.log(), 30)
            );
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The filter sums its counters in the VM and publishes them on its tick (every 100 ms,
/// `STATS_PUBLISH_MS` in filters/wasm/src/root.rs): wait for more than one tick before a read.
fn settle_stats() {
    std::thread::sleep(std::time::Duration::from_millis(250));
}

fn meshwake_only(stats: BTreeMap<String, String>, build: Build) -> BTreeMap<String, u64> {
    let prefix = format!("{}.meshwake.", build.stat_namespace());
    stats
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.parse().ok()?)))
        .collect()
}

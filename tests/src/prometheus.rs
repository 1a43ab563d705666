//! A real Prometheus server (Debian's `prometheus`, installed by `scripts/setup.sh test`)
//! scraping Envoys' `/stats/prometheus`, and its HTTP query API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::{http, paths};

/// A running Prometheus, killed on drop.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `prometheus` binary (Debian package `prometheus`).
pub fn binary() -> PathBuf {
    let p = std::env::var_os("MESHWAKE_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        p.exists(),
        "{} missing: run scripts/setup.sh test (Debian package prometheus)",
        p.display()
    );
    p
}

impl Prometheus {
    /// Starts Prometheus scraping each of `admin_ports` (Envoy admin listeners) every second.
    pub fn start(name: &str, admin_ports: &[u16]) -> Prometheus {
        let dir = paths::scratch_dir(name);
        let targets: Vec<String> = admin_ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    \
             static_configs: [{{ targets: [{}] }}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = crate::mesh::mesh_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary())
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut prom = Prometheus { child, port, dir };
        crate::wait_for(60, "Prometheus ready", || {
            assert!(
                prom.child.try_wait().unwrap().is_none(),
                "prometheus exited:\n{}",
                prom.log()
            );
            let r = http::request(port, "GET", "/-/ready", &[], b"").ok()?;
            (r.status == 200).then_some(())
        });
        prom
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query` at the current time: the `data.result` array of a successful answer,
    /// or the error Prometheus gave (an invalid expression, ...).
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let r = http::request(self.port, "GET", &path, &[], b"").map_err(|e| e.to_string())?;
        let v: Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.body_str()))?;
        if v["status"] != "success" {
            return Err(format!("{} {}: {}", r.status, v["errorType"], v["error"]));
        }
        v["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no data.result in {v}"))
    }

    /// The value of every series of an instant vector, by the given label.
    pub fn values_by(&self, promql: &str, label: &str) -> Vec<(String, f64)> {
        let result = self
            .query(promql)
            .unwrap_or_else(|e| panic!("{promql}: {e}"));
        result
            .iter()
            .map(|s| {
                let value = s["value"][1].as_str().and_then(|v| v.parse().ok());
                (
                    s["metric"][label].as_str().unwrap_or_default().to_string(),
                    value.unwrap_or(f64::NAN),
                )
            })
            .collect()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! Container probes as the kubelet runs them: startup, liveness and readiness, each httpGet,
//! tcpSocket or exec, with Kubernetes' timing fields and defaults.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::{self, Container, ExecSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn field(self) -> &'static str {
        match self {
            Kind::Startup => "startupProbe",
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
        }
    }
}

/// The running tally of one probe of one container.
#[derive(Debug, Clone)]
pub struct Tally {
    pub kind: Kind,
    pub spec: Value,
    pub next: Instant,
    successes: u32,
    failures: u32,
    /// The probe's verdict: ready/alive/started.
    pub passing: bool,
}

fn seconds(spec: &Value, field: &str, default: u64) -> u64 {
    spec[field].as_u64().unwrap_or(default)
}

impl Tally {
    pub fn new(kind: Kind, spec: Value, started: Instant) -> Self {
        let delay = Duration::from_secs(seconds(&spec, "initialDelaySeconds", 0));
        // Liveness and startup assume success until proven otherwise; readiness the opposite.
        Tally { kind, next: started + delay, spec, successes: 0, failures: 0, passing: kind == Kind::Liveness }
    }

    pub fn period(&self) -> Duration {
        Duration::from_secs(seconds(&self.spec, "periodSeconds", 10).max(1))
    }

    /// Counts one result; returns whether the verdict changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        self.next = now + self.period();
        let before = self.passing;
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= seconds(&self.spec, "successThreshold", 1).max(1) as u32 {
                self.passing = true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= seconds(&self.spec, "failureThreshold", 3).max(1) as u32 {
                self.passing = false;
            }
        }
        before != self.passing
    }

    /// Failed for good: a liveness or startup probe over its failure threshold.
    pub fn fatal(&self) -> bool {
        matches!(self.kind, Kind::Liveness | Kind::Startup) && !self.passing && self.failures > 0
    }
}

/// The probes a container spec declares.
pub fn tallies(container: &Value, started: Instant) -> Vec<Tally> {
    let mut v = Vec::new();
    for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
        if container[kind.field()].is_object() {
            let mut t = Tally::new(kind, container[kind.field()].clone(), started);
            if kind == Kind::Startup {
                t.passing = false;
            }
            v.push(t);
        }
    }
    v
}

/// A port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &Value, container: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    container["ports"].as_array()?.iter().find(|p| p["name"] == name)?["containerPort"].as_u64().and_then(|n| u16::try_from(n).ok())
}

/// Runs one probe once. `pod_ip` is where httpGet and tcpSocket connect by default.
pub async fn run(spec: &Value, container_spec: &Value, pod_ip: &str, container: Option<Arc<Container>>) -> bool {
    let timeout = Duration::from_secs(seconds(spec, "timeoutSeconds", 1).max(1));
    let attempt = async {
        if let Some(http) = spec.get("httpGet") {
            let port = resolve_port(&http["port"], container_spec)?;
            let host = http["host"].as_str().filter(|h| !h.is_empty()).unwrap_or(pod_ip).to_string();
            let path = http["path"].as_str().unwrap_or("/");
            let mut s = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
            let req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut head = [0u8; 32];
            let n = s.read(&mut head).await.ok()?;
            let line = String::from_utf8_lossy(&head[..n]);
            let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
            return Some((200..400).contains(&code));
        }
        if let Some(tcp) = spec.get("tcpSocket") {
            let port = resolve_port(&tcp["port"], container_spec)?;
            let host = tcp["host"].as_str().filter(|h| !h.is_empty()).unwrap_or(pod_ip).to_string();
            return Some(tokio::net::TcpStream::connect((host.as_str(), port)).await.is_ok());
        }
        if let Some(exec) = spec.get("exec") {
            let argv: Vec<String> = exec["command"].as_array()?.iter().filter_map(|s| s.as_str().map(String::from)).collect();
            let container = container?;
            let proc = tokio::task::spawn_blocking(move || runtime::exec(&container, ExecSpec { argv, env: vec![], tty: false, cwd: None }))
                .await
                .ok()?
                .ok()?;
            let code = proc.wait().await.ok()?;
            return Some(code == 0);
        }
        None
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds_decide_the_verdict_like_the_kubelet() {
        let t0 = Instant::now();
        let mut r = Tally::new(Kind::Readiness, json!({"successThreshold": 2, "failureThreshold": 2}), t0);
        assert!(!r.passing, "readiness starts failing");
        assert!(!r.record(true, t0));
        assert!(r.record(true, t0), "two successes make it ready");
        assert!(!r.record(false, t0));
        assert!(r.record(false, t0), "two failures make it unready");
        let mut l = Tally::new(Kind::Liveness, json!({}), t0);
        assert!(l.passing, "liveness starts passing");
        l.record(false, t0);
        l.record(false, t0);
        assert!(!l.fatal());
        l.record(false, t0);
        assert!(l.fatal(), "three failures (the default) kill the container");
    }

    #[test]
    fn defaults_and_delays_set_the_schedule() {
        let t0 = Instant::now();
        let t = Tally::new(Kind::Readiness, json!({"initialDelaySeconds": 5}), t0);
        assert_eq!(t.next, t0 + Duration::from_secs(5));
        assert_eq!(t.period(), Duration::from_secs(10));
    }

    #[test]
    fn ports_resolve_by_number_or_by_name() {
        let c = json!({"ports": [{"name": "http", "containerPort": 8080}]});
        assert_eq!(resolve_port(&json!(80), &c), Some(80));
        assert_eq!(resolve_port(&json!("http"), &c), Some(8080));
        assert_eq!(resolve_port(&json!("9090"), &c), Some(9090));
        assert_eq!(resolve_port(&json!("nope"), &c), None);
        assert_eq!(resolve_port(&json!(70000), &c), None);
    }
}

//! The Service variables the kubelet puts in every container's environment
//! (`pkg/kubelet/envvars`): `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT`, one
//! `NAME_SERVICE_PORT_PORTNAME` per named port and Docker-link style `NAME_PORT*`, for the
//! Services of the pod's namespace (unless the pod sets `enableServiceLinks: false`) and always
//! for `kubernetes` in `default`, which in-cluster clients find the API server by.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proto::node::NetworkState;
use tokio::sync::watch;

/// The Services of the agent's newest network snapshot; None until the first arrives.
pub type Links = Option<Arc<Vec<LinkedService>>>;

/// The Services containers get variables for, as the network snapshots bring them.
pub struct ServiceView {
    links: watch::Receiver<Links>,
    gave_up: AtomicBool,
}

impl ServiceView {
    pub fn new(links: watch::Receiver<Links>) -> Self {
        ServiceView { links, gave_up: AtomicBool::new(false) }
    }

    /// The Services now. A container started before the agent's first snapshot would miss its
    /// Service variables for good, so the first call waits a little for it (the kubelet refuses
    /// to start containers until it has seen the Services once); after one wait in vain,
    /// containers start without them until a snapshot comes.
    pub async fn current(&self) -> Arc<Vec<LinkedService>> {
        let mut rx = self.links.clone();
        if let Some(links) = rx.borrow().clone() {
            return links;
        }
        if self.gave_up.load(Ordering::Relaxed) {
            return Arc::default();
        }
        match tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some)).await {
            Ok(Ok(links)) => links.clone().unwrap_or_default(),
            _ => {
                self.gave_up.store(true, Ordering::Relaxed);
                tracing::warn!("no network snapshot from the control plane yet: starting without Service variables");
                Arc::default()
            }
        }
    }
}

/// A Service with a cluster IP, as the variables need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedService {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: String,
    pub ports: Vec<LinkedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedPort {
    pub name: String,
    pub protocol: String,
    pub port: u32,
}

/// The Services of a network snapshot that get variables (headless ones have no cluster IP).
pub fn from_snapshot(state: &NetworkState) -> Vec<LinkedService> {
    state
        .services
        .iter()
        .filter(|s| !s.cluster_ip.is_empty() && !s.ports.is_empty())
        .map(|s| LinkedService {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            cluster_ip: s.cluster_ip.clone(),
            ports: s.ports.iter().map(|p| LinkedPort { name: p.name.clone(), protocol: p.protocol.clone(), port: p.port }).collect(),
        })
        .collect()
}

fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables for a pod in `namespace`, Services in name order.
pub fn variables(services: &[LinkedService], namespace: &str, enable_service_links: bool) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &LinkedService> = BTreeMap::new();
    for s in services.iter().filter(|s| s.namespace == "default" && s.name == "kubernetes") {
        chosen.insert(&s.name, s);
    }
    // A Service of the pod's own namespace wins over the master Service of the same name.
    for s in services.iter().filter(|s| enable_service_links && s.namespace == namespace) {
        chosen.insert(&s.name, s);
    }
    let mut out = Vec::new();
    for s in chosen.values() {
        let Some(first) = s.ports.first() else { continue };
        let prefix = env_name(&s.name);
        out.push((format!("{prefix}_SERVICE_HOST"), s.cluster_ip.clone()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in s.ports.iter().filter(|p| !p.name.is_empty()) {
            out.push((format!("{prefix}_SERVICE_PORT_{}", env_name(&p.name)), p.port.to_string()));
        }
        for (i, p) in s.ports.iter().enumerate() {
            let proto = if p.protocol.is_empty() { "tcp".to_string() } else { p.protocol.to_lowercase() };
            let url = format!("{proto}://{}:{}", s.cluster_ip, p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((port_prefix.clone(), url));
            out.push((format!("{port_prefix}_PROTO"), proto.clone()));
            out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), s.cluster_ip.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(namespace: &str, name: &str, ip: &str, ports: &[(&str, &str, u32)]) -> LinkedService {
        LinkedService {
            namespace: namespace.into(),
            name: name.into(),
            cluster_ip: ip.into(),
            ports: ports.iter().map(|(n, p, port)| LinkedPort { name: n.to_string(), protocol: p.to_string(), port: *port }).collect(),
        }
    }

    fn get<'a>(vars: &'a [(String, String)], k: &str) -> Option<&'a str> {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_service_gets_the_kubelets_host_port_and_docker_link_variables() {
        // The shape of the cases in Kubernetes' pkg/kubelet/envvars/envvars_test.go.
        let services = [
            svc("ns", "foo-bar", "1.2.3.4", &[("", "TCP", 8080), ("named", "UDP", 9090)]),
            svc("ns", "abc-123", "5.6.7.8", &[("http", "TCP", 80)]),
        ];
        let vars = variables(&services, "ns", true);
        let want = [
            ("ABC_123_SERVICE_HOST", "5.6.7.8"),
            ("ABC_123_SERVICE_PORT", "80"),
            ("ABC_123_SERVICE_PORT_HTTP", "80"),
            ("ABC_123_PORT", "tcp://5.6.7.8:80"),
            ("ABC_123_PORT_80_TCP", "tcp://5.6.7.8:80"),
            ("ABC_123_PORT_80_TCP_PROTO", "tcp"),
            ("ABC_123_PORT_80_TCP_PORT", "80"),
            ("ABC_123_PORT_80_TCP_ADDR", "5.6.7.8"),
            ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
            ("FOO_BAR_SERVICE_PORT", "8080"),
            ("FOO_BAR_SERVICE_PORT_NAMED", "9090"),
            ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
            ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
            ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
            ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
            ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
            ("FOO_BAR_PORT_9090_UDP", "udp://1.2.3.4:9090"),
            ("FOO_BAR_PORT_9090_UDP_PROTO", "udp"),
            ("FOO_BAR_PORT_9090_UDP_PORT", "9090"),
            ("FOO_BAR_PORT_9090_UDP_ADDR", "1.2.3.4"),
        ];
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn only_the_pods_namespace_and_the_master_service_are_linked() {
        let services = [
            svc("default", "kubernetes", "10.96.0.1", &[("https", "TCP", 443)]),
            svc("default", "web", "10.96.0.20", &[("", "TCP", 80)]),
            svc("team", "db", "10.96.0.30", &[("", "TCP", 5432)]),
        ];
        // (namespace, enableServiceLinks, present, absent)
        let cases: [(&str, bool, &[&str], &[&str]); 4] = [
            ("default", true, &["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT_HTTPS", "WEB_SERVICE_HOST"], &["DB_SERVICE_HOST"]),
            ("team", true, &["KUBERNETES_SERVICE_HOST", "DB_SERVICE_HOST"], &["WEB_SERVICE_HOST"]),
            ("team", false, &["KUBERNETES_SERVICE_HOST", "KUBERNETES_PORT_443_TCP"], &["DB_SERVICE_HOST"]),
            ("empty", true, &["KUBERNETES_SERVICE_PORT"], &["WEB_SERVICE_HOST", "DB_SERVICE_HOST"]),
        ];
        for (ns, links, present, absent) in cases {
            let vars = variables(&services, ns, links);
            for k in present {
                assert!(get(&vars, k).is_some(), "{k} for a pod in {ns} (links {links})");
            }
            for k in absent {
                assert!(get(&vars, k).is_none(), "no {k} for a pod in {ns} (links {links})");
            }
        }
        assert_eq!(get(&variables(&services, "default", true), "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    }

    #[test]
    fn a_service_named_kubernetes_in_the_pods_namespace_wins_over_the_masters() {
        let services = [svc("team", "kubernetes", "10.96.9.9", &[("", "TCP", 8443)]), svc("default", "kubernetes", "10.96.0.1", &[("https", "TCP", 443)])];
        let vars = variables(&services, "team", true);
        assert_eq!(get(&vars, "KUBERNETES_SERVICE_HOST"), Some("10.96.9.9"));
        assert_eq!(get(&variables(&services, "team", false), "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    }

    #[test]
    fn headless_services_and_services_without_ports_get_no_variables() {
        use proto::node::{ServicePortRules, ServiceRules};
        let rules = |name: &str, ip: &str, ports: u32| ServiceRules {
            namespace: "ns".into(),
            name: name.into(),
            cluster_ip: ip.into(),
            ports: (0..ports).map(|i| ServicePortRules { name: String::new(), protocol: "TCP".into(), port: 80 + i, ..Default::default() }).collect(),
            ..Default::default()
        };
        let state = NetworkState { services: vec![rules("headless", "", 1), rules("portless", "10.96.0.5", 0), rules("web", "10.96.0.6", 2)], ..Default::default() };
        let linked = from_snapshot(&state);
        assert_eq!(linked.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["web"]);
        assert_eq!(linked[0].ports.iter().map(|p| p.port).collect::<Vec<_>>(), [80, 81]);
    }
}

//! The names the cluster DNS answers for, built from Services and Endpoints as the Kubernetes DNS
//! specification (https://github.com/kubernetes/dns/blob/master/docs/specification.md) and
//! CoreDNS's kubernetes plugin have them:
//! - `SVC.NS.svc.DOMAIN`: A with the cluster IP; for headless Services, A with the ready
//!   endpoint addresses; for ExternalName Services, a CNAME.
//! - `HOSTNAME.SVC.NS.svc.DOMAIN`: A for headless endpoints with a hostname.
//! - `_PORT._PROTO.SVC.NS.svc.DOMAIN`: SRV for named ports.
//! Names under the domain that do not exist are NXDOMAIN; existing names asked for another type
//! (and the parents `NS.svc.DOMAIN`, `svc.DOMAIN`, `DOMAIN`) are answered with no records.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};

/// CoreDNS's default TTL for cluster records.
pub const TTL: u32 = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub a: Vec<Ipv4Addr>,
    pub cname: Option<String>,
    /// (port, target name)
    pub srv: Vec<(u16, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Not under the cluster domain: ask upstream.
    Forward,
    NxDomain,
    /// The name exists; these are its records (possibly none of the asked type).
    Found(&'a Entry),
    /// The name exists (as a parent of others) and has no records.
    Empty,
}

#[derive(Debug, Clone, Default)]
pub struct Records {
    domain: String,
    names: BTreeMap<String, Entry>,
    parents: BTreeSet<String>,
}

fn lower(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

fn ready_addresses(e: &Endpoints) -> impl Iterator<Item = (&str, Option<&str>)> {
    e.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).map(|a| (a.ip.as_str(), a.hostname.as_deref()))
}

impl Records {
    pub fn build(services: &[Service], endpoints: &[Endpoints], cluster_domain: &str) -> Records {
        let domain = lower(cluster_domain);
        let mut r = Records { domain: domain.clone(), ..Default::default() };
        let eps: BTreeMap<(&str, &str), &Endpoints> = endpoints
            .iter()
            .filter_map(|e| Some(((e.metadata.namespace.as_deref()?, e.metadata.name.as_deref()?), e)))
            .collect();
        r.parents.insert(domain.clone());
        r.parents.insert(format!("svc.{domain}"));
        for s in services {
            let (Some(ns), Some(name), Some(spec)) = (s.metadata.namespace.as_deref(), s.metadata.name.as_deref(), s.spec.as_ref()) else { continue };
            let base = format!("{}.{}.svc.{domain}", name.to_ascii_lowercase(), ns.to_ascii_lowercase());
            r.parents.insert(format!("{}.svc.{domain}", ns.to_ascii_lowercase()));
            let mut entry = Entry::default();
            if spec.type_.as_deref() == Some("ExternalName") {
                entry.cname = spec.external_name.as_deref().map(lower).filter(|n| !n.is_empty());
                r.names.insert(base, entry);
                continue;
            }
            let headless = spec.cluster_ip.as_deref() == Some("None");
            if headless {
                for (ip, hostname) in eps.get(&(ns, name)).map(|e| ready_addresses(e).collect::<Vec<_>>()).unwrap_or_default() {
                    let Ok(ip) = ip.parse::<Ipv4Addr>() else { continue };
                    if !entry.a.contains(&ip) {
                        entry.a.push(ip);
                    }
                    if let Some(h) = hostname.filter(|h| !h.is_empty()) {
                        r.names.entry(format!("{}.{base}", h.to_ascii_lowercase())).or_default().a.push(ip);
                    }
                }
            } else if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) {
                entry.a.push(ip);
            }
            for p in spec.ports.iter().flatten() {
                let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else { continue };
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                let srv_name = format!("_{}._{proto}.{base}", port_name.to_ascii_lowercase());
                let Ok(port) = u16::try_from(p.port) else { continue };
                r.names.entry(srv_name.clone()).or_default().srv.push((port, base.clone()));
                r.parents.insert(format!("_{proto}.{base}"));
            }
            r.names.insert(base, entry);
        }
        r
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn lookup(&self, name: &str) -> Answer<'_> {
        let name = lower(name);
        if name != self.domain && !name.ends_with(&format!(".{}", self.domain)) {
            return Answer::Forward;
        }
        if let Some(e) = self.names.get(&name) {
            return Answer::Found(e);
        }
        if self.parents.contains(&name) {
            return Answer::Empty;
        }
        Answer::NxDomain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})).unwrap()
    }

    fn records() -> Records {
        let services = vec![
            svc("default", "web", json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}, {"port": 81}]})),
            svc("default", "db", json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]})),
            svc("team", "docs", json!({"type": "ExternalName", "externalName": "Docs.Example.com."})),
        ];
        let endpoints: Vec<Endpoints> = vec![serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.0.5", "hostname": "db-0"}, {"ip": "10.244.1.6"}], "notReadyAddresses": [{"ip": "10.244.0.9"}]}],
        }))
        .unwrap()];
        Records::build(&services, &endpoints, "cluster.local")
    }

    fn a(r: &Records, name: &str) -> Vec<String> {
        match r.lookup(name) {
            Answer::Found(e) => e.a.iter().map(|ip| ip.to_string()).collect(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn a_service_name_resolves_to_its_cluster_ip_whatever_the_case_or_trailing_dot() {
        let r = records();
        assert_eq!(a(&r, "web.default.svc.cluster.local"), ["10.96.0.20"]);
        assert_eq!(a(&r, "WEB.Default.svc.cluster.local."), ["10.96.0.20"]);
    }

    #[test]
    fn a_headless_service_resolves_to_its_ready_endpoints_and_their_hostnames() {
        let r = records();
        assert_eq!(a(&r, "db.default.svc.cluster.local"), ["10.244.0.5", "10.244.1.6"]);
        assert_eq!(a(&r, "db-0.db.default.svc.cluster.local"), ["10.244.0.5"]);
    }

    #[test]
    fn named_ports_get_srv_records_pointing_at_the_service() {
        let r = records();
        let Answer::Found(e) = r.lookup("_http._tcp.web.default.svc.cluster.local") else { panic!() };
        assert_eq!(e.srv, [(80, "web.default.svc.cluster.local".to_string())]);
        assert_eq!(r.lookup("_tcp.web.default.svc.cluster.local"), Answer::Empty);
        assert_eq!(r.lookup("_pg._udp.db.default.svc.cluster.local"), Answer::NxDomain);
    }

    #[test]
    fn an_external_name_service_is_a_cname() {
        let r = records();
        let Answer::Found(e) = r.lookup("docs.team.svc.cluster.local") else { panic!() };
        assert_eq!(e.cname.as_deref(), Some("docs.example.com"));
    }

    #[test]
    fn missing_names_under_the_domain_are_nxdomain_and_parents_exist_empty() {
        let r = records();
        assert_eq!(r.lookup("nothing.default.svc.cluster.local"), Answer::NxDomain);
        assert_eq!(r.lookup("web.other.svc.cluster.local"), Answer::NxDomain);
        assert_eq!(r.lookup("web.default.svc.cluster.local.default.svc.cluster.local"), Answer::NxDomain);
        for parent in ["default.svc.cluster.local", "svc.cluster.local", "cluster.local", "team.svc.cluster.local"] {
            assert_eq!(r.lookup(parent), Answer::Empty, "{parent}");
        }
    }

    #[test]
    fn other_names_are_forwarded() {
        let r = records();
        for name in ["example.com", "local", "notcluster.local", "web"] {
            assert_eq!(r.lookup(name), Answer::Forward, "{name}");
        }
    }
}

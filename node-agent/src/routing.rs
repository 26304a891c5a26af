//! Keeps this node's routes and Service rules in line with the cluster's network snapshot
//! (`WatchNetwork`): a route to every other node's pod CIDR via that node's address (host-gateway
//! style, so pods on different nodes reach each other), IP forwarding on, and the nftables rules
//! of [`crate::proxy`]. It also publishes which pod addresses the rules currently send traffic
//! to, so a terminating pod is not told to stop while this node still routes requests to it.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;

use proto::node::NetworkState;
use tokio::sync::watch;

use crate::proxy::{self, Endpoint, Protocol, Proxy, ProxyState, Service, ServicePort};

/// Name of the nftables table the agent owns.
pub const TABLE: &str = "tinykube";
/// Routing protocol number the agent's routes are tagged with, so stale ones can be found
/// after a restart (`ip route show proto 77`).
const ROUTE_PROTO: &str = "77";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ip(#[from] crate::pods::network::Error),
    #[error("enabling IP forwarding: {0}")]
    Forwarding(std::io::Error),
    #[error(transparent)]
    Proxy(#[from] proxy::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The proxy's view of a snapshot. Entries that do not parse (a bad address) are skipped rather
/// than failing the whole node's rules.
pub fn proxy_state(state: &NetworkState, node: &str) -> ProxyState {
    let services = state
        .services
        .iter()
        .map(|s| Service {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            cluster_ip: s.cluster_ip.parse().ok(),
            client_ip_affinity_seconds: (s.client_ip_affinity_seconds > 0).then_some(s.client_ip_affinity_seconds),
            internal_local_only: s.internal_local_only,
            ports: s
                .ports
                .iter()
                .filter_map(|p| {
                    Some(ServicePort {
                        name: p.name.clone(),
                        protocol: match p.protocol.as_str() {
                            "TCP" => Protocol::Tcp,
                            "UDP" => Protocol::Udp,
                            _ => return None,
                        },
                        port: u16::try_from(p.port).ok().filter(|p| *p > 0)?,
                        node_port: u16::try_from(p.node_port).ok().filter(|p| *p > 0),
                        endpoints: p
                            .endpoints
                            .iter()
                            .filter_map(|e| {
                                Some(Endpoint {
                                    ip: e.ip.parse().ok()?,
                                    port: u16::try_from(e.port).ok().filter(|p| *p > 0)?,
                                    node_name: (!e.node_name.is_empty()).then(|| e.node_name.clone()),
                                    ready: e.ready,
                                    serving: e.serving,
                                    terminating: e.terminating,
                                })
                            })
                            .collect(),
                    })
                })
                .collect(),
        })
        .collect();
    ProxyState { node_name: node.to_string(), services }
}

/// Pod addresses the rules may send new connections to: the ready endpoints of each port, or the
/// serving terminating ones where none is ready (the proxy's fallback).
pub fn targeted_addresses(state: &ProxyState) -> HashSet<Ipv4Addr> {
    let mut out = HashSet::new();
    for s in state.services.iter().filter(|s| s.cluster_ip.is_some()) {
        for p in &s.ports {
            let ready: Vec<_> = p.endpoints.iter().filter(|e| e.ready).collect();
            let chosen = if ready.is_empty() { p.endpoints.iter().filter(|e| e.serving && e.terminating).collect() } else { ready };
            out.extend(chosen.iter().map(|e| e.ip));
        }
    }
    out
}

/// Routes wanted to other nodes' pod CIDRs: CIDR -> gateway.
pub fn desired_routes(state: &NetworkState, node: &str) -> BTreeMap<String, String> {
    state
        .nodes
        .iter()
        .filter(|n| n.name != node)
        .filter(|n| n.pod_cidr.parse::<ipnet::Ipv4Net>().is_ok() && n.internal_ip.parse::<Ipv4Addr>().is_ok())
        .map(|n| (n.pod_cidr.clone(), n.internal_ip.clone()))
        .collect()
}

/// `ip -batch` commands that turn `current` into `desired`.
pub fn route_commands(current: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (cidr, via) in desired {
        if current.get(cidr) != Some(via) {
            out.push_str(&format!("route replace {cidr} via {via} proto {ROUTE_PROTO}\n"));
        }
    }
    for cidr in current.keys().filter(|c| !desired.contains_key(*c)) {
        out.push_str(&format!("route del {cidr} proto {ROUTE_PROTO}\n"));
    }
    out
}

fn ip_batch(commands: &str) -> Result<()> {
    crate::pods::network::ip_batch(&[], commands).map_err(Error::Ip)
}

/// Routes this agent added earlier (by an earlier run, too).
fn our_routes() -> BTreeMap<String, String> {
    let Ok(out) = Command::new("ip").args(["-4", "route", "show", "proto", ROUTE_PROTO]).output() else { return BTreeMap::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let cidr = words.next()?.to_string();
            let via = words.skip_while(|w| *w != "via").nth(1)?.to_string();
            Some((cidr, via))
        })
        .collect()
}

pub struct Routing {
    node: String,
    proxy: Proxy,
    routes: Option<BTreeMap<String, String>>,
    forwarding: bool,
    targeted: watch::Sender<Arc<HashSet<Ipv4Addr>>>,
}

impl Routing {
    pub fn new(node: &str) -> Self {
        Routing { node: node.to_string(), proxy: Proxy::new(TABLE), routes: None, forwarding: false, targeted: watch::channel(Arc::default()).0 }
    }

    /// Addresses the rules send traffic to, updated after each successful apply.
    pub fn targeted(&self) -> watch::Receiver<Arc<HashSet<Ipv4Addr>>> {
        self.targeted.subscribe()
    }

    /// Applies one snapshot. Rules first: they are what Service traffic depends on, and the
    /// faster of the two.
    pub fn apply(&mut self, state: &NetworkState) -> Result<()> {
        if !self.forwarding {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(Error::Forwarding)?;
            self.forwarding = true;
        }
        let proxy_state = proxy_state(state, &self.node);
        self.proxy.apply(&proxy_state)?;
        self.targeted.send_replace(Arc::new(targeted_addresses(&proxy_state)));
        let current = self.routes.take().unwrap_or_else(our_routes);
        let desired = desired_routes(state, &self.node);
        let commands = route_commands(&current, &desired);
        if !commands.is_empty() {
            if let Err(e) = ip_batch(&commands) {
                // Look again next time rather than trusting a half-applied batch.
                return Err(e);
            }
        }
        self.routes = Some(desired);
        Ok(())
    }
}

/// Removes the rules and routes (for `node-agent --cleanup`).
pub fn cleanup() -> Result<()> {
    let routes = our_routes();
    if !routes.is_empty() {
        ip_batch(&route_commands(&routes, &BTreeMap::new()))?;
    }
    Proxy::new(TABLE).remove()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::node::{EndpointAddress, NodeRoute, ServicePortRules, ServiceRules};

    fn ep(ip: &str, ready: bool, terminating: bool) -> EndpointAddress {
        EndpointAddress { ip: ip.into(), port: 8080, node_name: "a".into(), ready, serving: ready || terminating, terminating }
    }

    fn state() -> NetworkState {
        NetworkState {
            generation: 1,
            nodes: vec![
                NodeRoute { name: "a".into(), internal_ip: "10.250.0.2".into(), pod_cidr: "10.244.0.0/24".into() },
                NodeRoute { name: "b".into(), internal_ip: "10.250.0.3".into(), pod_cidr: "10.244.1.0/24".into() },
                NodeRoute { name: "c".into(), internal_ip: "bogus".into(), pod_cidr: "10.244.2.0/24".into() },
            ],
            services: vec![ServiceRules {
                namespace: "default".into(),
                name: "web".into(),
                cluster_ip: "10.96.0.20".into(),
                client_ip_affinity_seconds: 0,
                internal_local_only: false,
                ports: vec![
                    ServicePortRules {
                        name: "http".into(),
                        protocol: "TCP".into(),
                        port: 80,
                        node_port: 30080,
                        endpoints: vec![ep("10.244.0.2", true, false), ep("10.244.0.3", false, false), ep("not-an-ip", true, false)],
                    },
                    ServicePortRules { name: "x".into(), protocol: "SCTP".into(), port: 9, node_port: 0, endpoints: vec![] },
                    ServicePortRules { name: "old".into(), protocol: "UDP".into(), port: 53, node_port: 0, endpoints: vec![ep("10.244.0.9", false, true)] },
                ],
            }],
        }
    }

    #[test]
    fn the_proxy_state_keeps_what_parses_and_drops_the_rest() {
        let p = proxy_state(&state(), "a");
        let s = &p.services[0];
        assert_eq!(s.cluster_ip, Some("10.96.0.20".parse().unwrap()));
        assert_eq!(s.ports.len(), 2, "SCTP is skipped");
        assert_eq!(s.ports[0].node_port, Some(30080));
        assert_eq!(s.ports[0].endpoints.len(), 2, "the bad address is skipped");
        assert_eq!(s.ports[1].node_port, None);
    }

    #[test]
    fn targeted_addresses_are_the_ready_ones_or_else_the_terminating_ones() {
        let got = targeted_addresses(&proxy_state(&state(), "a"));
        let want: HashSet<Ipv4Addr> = ["10.244.0.2", "10.244.0.9"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn routes_go_to_every_other_node_with_a_valid_address() {
        let routes = desired_routes(&state(), "a");
        assert_eq!(routes, BTreeMap::from([("10.244.1.0/24".to_string(), "10.250.0.3".to_string())]));
    }

    #[test]
    fn route_commands_replace_changed_routes_and_delete_stale_ones_only() {
        let current = BTreeMap::from([
            ("10.244.1.0/24".to_string(), "10.250.0.3".to_string()),
            ("10.244.2.0/24".to_string(), "10.250.0.4".to_string()),
            ("10.244.3.0/24".to_string(), "10.250.0.5".to_string()),
        ]);
        let desired = BTreeMap::from([
            ("10.244.1.0/24".to_string(), "10.250.0.3".to_string()),
            ("10.244.2.0/24".to_string(), "10.250.0.9".to_string()),
            ("10.244.4.0/24".to_string(), "10.250.0.6".to_string()),
        ]);
        assert_eq!(
            route_commands(&current, &desired),
            "route replace 10.244.2.0/24 via 10.250.0.9 proto 77\nroute replace 10.244.4.0/24 via 10.250.0.6 proto 77\nroute del 10.244.3.0/24 proto 77\n"
        );
        assert_eq!(route_commands(&desired, &desired), "");
    }
}

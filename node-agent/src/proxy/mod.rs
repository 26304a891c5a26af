//! The node's Service proxy (kube-proxy's job) in nftables: one table the agent owns, rewritten
//! whole in one `nft -f` transaction per change, so a failed apply leaves the previous rules and a
//! successful one never shows a half-state. The layout follows kube-proxy's nftables mode
//! (`pkg/proxy/nftables/proxier.go`): verdict maps from (cluster IP, protocol, port) and from
//! (protocol, node port) to a chain per Service port, which picks an endpoint chain with
//! `numgen random`, which DNATs. Service ports with no usable endpoint are rejected at once
//! (TCP reset / ICMP port unreachable) instead of timing out.

mod apply;
#[cfg(test)]
mod kernel_tests;
mod render;

pub use apply::{Error, Proxy, Result};
pub use render::render;

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// None for headless Services, which get no rules.
    pub cluster_ip: Option<Ipv4Addr>,
    /// sessionAffinity ClientIP with this timeout.
    pub client_ip_affinity_seconds: Option<u32>,
    /// internalTrafficPolicy Local: cluster IP traffic only to endpoints on this node.
    pub internal_local_only: bool,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyState {
    pub node_name: String,
    pub services: Vec<Service>,
}

/// The endpoints new connections may go to: the ready ones, or, when none is ready, those still
/// serving while they terminate (kube-proxy's fallback, so a Service whose every pod is shutting
/// down keeps answering while they can).
pub fn usable(endpoints: &[Endpoint]) -> Vec<&Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.iter().filter(|e| e.serving && e.terminating).collect()
}

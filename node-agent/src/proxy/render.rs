//! Renders a [`ProxyState`] into one nftables script. Pure and deterministic: equal states give
//! byte-equal scripts, so an unchanged state costs no `nft` run.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use super::{Endpoint, ProxyState, Service, usable};

/// FNV-1a: a stable, short name for chains and sets (nft names are limited and must be unique).
fn id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// A comment nft accepts: no quotes or backslashes, bounded length.
fn comment(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').take(120).collect()
}

/// The four verdict maps, keyed by their nft key text, valued by (verdict, comment).
#[derive(Default)]
struct Maps {
    /// nat: (cluster IP, protocol, port) -> the Service port's chain.
    ips: BTreeMap<String, (String, String)>,
    /// nat: (protocol, node port) -> the Service port's chain.
    node_ports: BTreeMap<String, (String, String)>,
    /// filter: the same keys for Service ports with nowhere to send to -> reject.
    ips_rejected: BTreeMap<String, (String, String)>,
    node_ports_rejected: BTreeMap<String, (String, String)>,
}

struct Port<'a> {
    key: String,
    service: &'a Service,
    proto: &'static str,
}

impl Port<'_> {
    fn endpoint_chain(&self, e: &Endpoint) -> String {
        format!("ep-{}", id(&[&self.key, &e.ip.to_string(), &e.port.to_string()]))
    }
    fn affinity_set(&self, e: &Endpoint) -> String {
        format!("aff-{}", id(&[&self.key, &e.ip.to_string(), &e.port.to_string()]))
    }
}

/// A chain that picks one of `eps`: an endpoint the client has affinity to first (when the
/// Service asks for ClientIP affinity), else a random one.
fn pick_chain(out: &mut String, name: &str, port: &Port, eps: &[&Endpoint]) {
    let _ = writeln!(out, "  chain {name} {{");
    if port.service.client_ip_affinity_seconds.is_some() {
        for e in eps {
            let _ = writeln!(out, "    ip saddr @{} goto {}", port.affinity_set(e), port.endpoint_chain(e));
        }
    }
    if let [only] = eps {
        let _ = writeln!(out, "    goto {}", port.endpoint_chain(only));
    } else {
        let arms: Vec<String> = eps.iter().enumerate().map(|(i, e)| format!("{i} : goto {}", port.endpoint_chain(e))).collect();
        let _ = writeln!(out, "    numgen random mod {} vmap {{ {} }}", eps.len(), arms.join(", "));
    }
    let _ = writeln!(out, "  }}");
}

fn write_map(out: &mut String, name: &str, key_type: &str, entries: &BTreeMap<String, (String, String)>) {
    let _ = writeln!(out, "  map {name} {{\n    type {key_type} : verdict");
    if !entries.is_empty() {
        let items: Vec<String> = entries.iter().map(|(k, (v, c))| format!("      {k} comment \"{c}\" : {v}")).collect();
        let _ = writeln!(out, "    elements = {{\n{}\n    }}", items.join(",\n"));
    }
    let _ = writeln!(out, "  }}");
}

/// Hooks and dispatch chains. Every connection our rules DNAT gets mark 0x4000 and is
/// masqueraded, not only node-port ones as kube-proxy does: then nothing depends on
/// br_netfilter, and the replies of hairpin traffic (a pod reaching itself through its Service),
/// of pod -> Service -> pod on one bridge, and of node-port traffic sent on to a pod on another
/// node all come back through this node's conntrack, which undoes the DNAT. Pods see the node's
/// address as the source of Service traffic. Source ports are kept where free, not picked at
/// random (kube-proxy's `fully-random`): measured here, random ports land new connections on
/// 4-tuples the backend still holds in TIME_WAIT (servers that close first, as HTTP/1.0 ones do),
/// and each such SYN stalls its client for a one-second retransmission (`bench service`).
const FIXED: &str = r#"  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
  }
  chain services-rejected {
    ip daddr . meta l4proto . th dport vmap @service-ips-rejected
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports-rejected
  }
  chain reject-service {
    meta l4proto tcp reject with tcp reset
    reject
  }
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }
  chain nat-postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    meta mark & 0x4000 == 0x4000 oifname != "lo" masquerade
  }
  chain filter-input {
    type filter hook input priority filter - 10; policy accept;
    ct state new jump services-rejected
  }
  chain filter-forward {
    type filter hook forward priority filter - 10; policy accept;
    ct state new jump services-rejected
  }
  chain filter-output {
    type filter hook output priority filter - 10; policy accept;
    ct state new jump services-rejected
  }
"#;

pub fn render(state: &ProxyState, table: &str) -> String {
    let mut maps = Maps::default();
    let mut sets = String::new();
    let mut chains = String::new();
    let mut services: Vec<&Service> = state.services.iter().filter(|s| s.cluster_ip.is_some()).collect();
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for s in services {
        let Some(ip) = s.cluster_ip else { continue };
        // Two ports with the same protocol and number would collide in the maps; validation
        // refuses them, and here the first one wins.
        let mut seen = HashSet::new();
        for p in s.ports.iter().filter(|p| seen.insert((p.protocol, p.port))) {
            let port = Port { key: format!("{}/{}/{}/{}", s.namespace, s.name, p.name, p.protocol.nft()), service: s, proto: p.protocol.nft() };
            let mut external = usable(&p.endpoints);
            external.sort_by_key(|e| (e.ip, e.port));
            external.dedup_by_key(|e| (e.ip, e.port));
            let internal: Vec<&Endpoint> = if s.internal_local_only {
                external.iter().copied().filter(|e| e.node_name.as_deref() == Some(state.node_name.as_str())).collect()
            } else {
                external.clone()
            };
            let note = comment(&port.key);
            let svc_chain = format!("svc-{}", id(&[&port.key]));
            let local_chain = format!("svl-{}", id(&[&port.key]));
            let ip_key = format!("{ip} . {} . {}", port.proto, p.port);
            let reject = ("goto reject-service".to_string(), note.clone());
            match (internal.is_empty(), internal.len() == external.len()) {
                (true, _) => maps.ips_rejected.insert(ip_key, reject.clone()),
                (false, true) => maps.ips.insert(ip_key, (format!("goto {svc_chain}"), note.clone())),
                (false, false) => maps.ips.insert(ip_key, (format!("goto {local_chain}"), note.clone())),
            };
            if let Some(np) = p.node_port {
                let np_key = format!("{} . {np}", port.proto);
                if external.is_empty() {
                    maps.node_ports_rejected.insert(np_key, reject);
                } else {
                    maps.node_ports.insert(np_key, (format!("goto {svc_chain}"), note));
                }
            }
            if external.is_empty() {
                continue;
            }
            pick_chain(&mut chains, &svc_chain, &port, &external);
            if !internal.is_empty() && internal.len() != external.len() {
                pick_chain(&mut chains, &local_chain, &port, &internal);
            }
            for e in &external {
                let _ = writeln!(chains, "  chain {} {{", port.endpoint_chain(e));
                if let Some(timeout) = s.client_ip_affinity_seconds {
                    let set = port.affinity_set(e);
                    let _ = writeln!(sets, "  set {set} {{\n    type ipv4_addr\n    flags dynamic,timeout\n    timeout {}s\n  }}", timeout.max(1));
                    let _ = writeln!(chains, "    update @{set} {{ ip saddr }}");
                }
                let _ = writeln!(chains, "    meta mark set meta mark or 0x4000");
                let _ = writeln!(chains, "    meta l4proto {} dnat to {}:{}", port.proto, e.ip, e.port);
                let _ = writeln!(chains, "  }}");
            }
        }
    }
    // Creating then deleting makes the delete valid whether or not the table exists; the whole
    // script is one transaction.
    let mut out = format!("table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n");
    out.push_str(&sets);
    write_map(&mut out, "service-ips", "ipv4_addr . inet_proto . inet_service", &maps.ips);
    write_map(&mut out, "service-nodeports", "inet_proto . inet_service", &maps.node_ports);
    write_map(&mut out, "service-ips-rejected", "ipv4_addr . inet_proto . inet_service", &maps.ips_rejected);
    write_map(&mut out, "service-nodeports-rejected", "inet_proto . inet_service", &maps.node_ports_rejected);
    out.push_str(FIXED);
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests;

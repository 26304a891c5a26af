//! ClusterIP and NodePort allocation for Services.
//!
//! The allocated sets live in memory and are rebuilt from the stored Services at start;
//! a reservation is released again unless the create/update that made it commits.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::api::error::Cause;

pub struct ServiceAllocator {
    state: Mutex<State>,
    base: u32,
    size: u32,
    pub node_ports: RangeInclusive<u16>,
}

#[derive(Default)]
struct State {
    ips: BTreeSet<u32>,
    ports: BTreeSet<u16>,
    next_ip: u32,
    next_port: u16,
}

/// What one write reserved; released on drop unless committed.
pub struct Allocation {
    alloc: Option<Arc<ServiceAllocator>>,
    ips: Vec<u32>,
    ports: Vec<u16>,
}

impl Allocation {
    pub fn none() -> Self {
        Allocation { alloc: None, ips: vec![], ports: vec![] }
    }
    pub fn commit(mut self) {
        self.ips.clear();
        self.ports.clear();
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if let Some(a) = &self.alloc {
            a.free(&self.ips, &self.ports);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid service CIDR {0:?}: want an IPv4 prefix like 10.96.0.0/12")]
pub struct BadCidr(String);

pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), BadCidr> {
    let (ip, len) = cidr.split_once('/').ok_or_else(|| BadCidr(cidr.into()))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| BadCidr(cidr.into()))?;
    let len: u8 = len.parse().map_err(|_| BadCidr(cidr.into()))?;
    if !(8..=30).contains(&len) {
        return Err(BadCidr(cidr.into()));
    }
    Ok((ip, len))
}

impl ServiceAllocator {
    pub fn new(service_cidr: &str, node_ports: RangeInclusive<u16>) -> Result<Arc<Self>, BadCidr> {
        let (ip, len) = parse_cidr(service_cidr)?;
        let size = 1u32 << (32 - len);
        let base = u32::from(ip) & !(size - 1);
        Ok(Arc::new(ServiceAllocator { state: Mutex::new(State::default()), base, size, node_ports }))
    }

    /// The n-th address of the range: 1 is the API server's `kubernetes` Service, 10 is cluster DNS.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn free(&self, ips: &[u32], ports: &[u16]) {
        let mut s = self.lock();
        for ip in ips {
            s.ips.remove(ip);
        }
        for p in ports {
            s.ports.remove(p);
        }
    }

    /// Marks what stored Services already hold.
    pub fn load(&self, services: &[Value]) {
        let mut s = self.lock();
        for svc in services {
            for (ip, _) in cluster_ips(svc) {
                s.ips.insert(u32::from(ip));
            }
            for p in node_ports(svc) {
                s.ports.insert(p);
            }
        }
    }

    /// Fills in clusterIP(s) and nodePorts of a Service being created (`old` = None) or updated.
    pub fn allocate(self: &Arc<Self>, svc: &mut Value, old: Option<&Value>) -> Result<Allocation, Vec<Cause>> {
        let mut a = Allocation { alloc: Some(self.clone()), ips: vec![], ports: vec![] };
        let mut causes = Vec::new();
        let spec = &mut svc["spec"];
        let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        if kind == "ExternalName" {
            return Ok(a);
        }
        // Cluster IP: kept on update, requested or picked on create.
        if old.is_none() {
            let requested = spec["clusterIP"].as_str().unwrap_or("").to_string();
            if requested == "None" {
                spec["clusterIPs"] = json!(["None"]);
            } else {
                match self.reserve_ip(&requested) {
                    Ok(ip) => {
                        a.ips.push(u32::from(ip));
                        spec["clusterIP"] = json!(ip.to_string());
                        spec["clusterIPs"] = json!([ip.to_string()]);
                    }
                    Err(msg) => causes.push(Cause::invalid("spec.clusterIPs[0]", &requested, msg)),
                }
            }
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
        let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
        let kept: BTreeSet<u16> = old.map(node_ports).unwrap_or_default().into_iter().collect();
        if let Some(ports) = spec["ports"].as_array_mut() {
            for (i, port) in ports.iter_mut().enumerate() {
                let requested = port["nodePort"].as_u64().unwrap_or(0);
                if !wants_node_ports {
                    continue;
                }
                if requested != 0 && kept.contains(&(requested as u16)) {
                    continue;
                }
                match self.reserve_port(requested) {
                    Ok(p) => {
                        a.ports.push(p);
                        port["nodePort"] = json!(p);
                    }
                    Err(msg) => causes.push(Cause::invalid(format!("spec.ports[{i}].nodePort"), requested, msg)),
                }
            }
        }
        if causes.is_empty() { Ok(a) } else { Err(causes) }
    }

    /// Frees what a deleted Service held.
    pub fn release(&self, svc: &Value) {
        let ips: Vec<u32> = cluster_ips(svc).into_iter().map(|(ip, _)| u32::from(ip)).collect();
        self.free(&ips, &node_ports(svc));
    }

    /// After an update committed: frees node ports the old version had and the new one dropped.
    pub fn release_dropped(&self, old: &Value, new: &Value) {
        let keep = node_ports(new);
        let dropped: Vec<u16> = node_ports(old).into_iter().filter(|p| !keep.contains(p)).collect();
        self.free(&[], &dropped);
    }

    fn reserve_ip(&self, requested: &str) -> Result<Ipv4Addr, String> {
        let mut s = self.lock();
        if !requested.is_empty() {
            let ip: Ipv4Addr = requested.parse().map_err(|_| "must be a valid IP address".to_string())?;
            let n = u32::from(ip);
            if n <= self.base || n >= self.base + self.size - 1 {
                return Err(format!("provided IP is not in the valid range. The range of valid IPs is {}/{}", Ipv4Addr::from(self.base), 32 - self.size.trailing_zeros()));
            }
            if !s.ips.insert(n) {
                return Err("provided IP is already allocated".into());
            }
            return Ok(ip);
        }
        // Dynamic addresses start above the low block that well-known Services (API, DNS) request.
        let first = 16.min(self.size - 2);
        let span = self.size - 1 - first;
        for i in 0..span {
            let n = self.base + first + (s.next_ip + i) % span;
            if !s.ips.contains(&n) {
                s.ips.insert(n);
                s.next_ip = (s.next_ip + i + 1) % span;
                return Ok(Ipv4Addr::from(n));
            }
        }
        Err("range is full".into())
    }

    fn reserve_port(&self, requested: u64) -> Result<u16, String> {
        let mut s = self.lock();
        let (lo, hi) = (*self.node_ports.start(), *self.node_ports.end());
        if requested != 0 {
            if requested < lo as u64 || requested > hi as u64 {
                return Err(format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"));
            }
            if !s.ports.insert(requested as u16) {
                return Err("provided port is already allocated".into());
            }
            return Ok(requested as u16);
        }
        let span = (hi - lo) as u32 + 1;
        for i in 0..span {
            let p = lo + ((s.next_port as u32 + i) % span) as u16;
            if !s.ports.contains(&p) {
                s.ports.insert(p);
                s.next_port = ((s.next_port as u32 + i + 1) % span) as u16;
                return Ok(p);
            }
        }
        Err("range is full".into())
    }
}

fn cluster_ips(svc: &Value) -> Vec<(Ipv4Addr, ())> {
    let spec = &svc["spec"];
    let mut out: Vec<(Ipv4Addr, ())> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).map(|ip| (ip, ())).collect())
        .unwrap_or_default();
    if out.is_empty() {
        if let Some(ip) = spec["clusterIP"].as_str().and_then(|s| s.parse().ok()) {
            out.push((ip, ()));
        }
    }
    out
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc["spec"]["ports"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["nodePort"].as_u64()).filter(|p| *p != 0).map(|p| p as u16).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(kind: &str, ip: &str, node_port: u64) -> Value {
        json!({"spec": {"type": kind, "clusterIP": ip, "ports": [{"port": 80, "nodePort": node_port}]}})
    }

    #[test]
    fn services_get_distinct_cluster_ips_and_node_ports_from_their_ranges() {
        let a = ServiceAllocator::new("10.96.0.0/12", 30000..=32767).unwrap();
        let (mut s1, mut s2) = (svc("NodePort", "", 0), svc("NodePort", "", 0));
        a.allocate(&mut s1, None).unwrap().commit();
        a.allocate(&mut s2, None).unwrap().commit();
        assert_ne!(s1["spec"]["clusterIP"], s2["spec"]["clusterIP"]);
        assert_ne!(s1["spec"]["ports"][0]["nodePort"], s2["spec"]["ports"][0]["nodePort"]);
        let p = s1["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&p));
        assert!(s1["spec"]["clusterIP"].as_str().unwrap().starts_with("10.96."));
    }

    #[test]
    fn a_taken_or_out_of_range_request_is_refused_with_the_field() {
        let a = ServiceAllocator::new("10.96.0.0/12", 30000..=32767).unwrap();
        a.allocate(&mut svc("NodePort", "10.96.0.10", 30080), None).unwrap().commit();
        let causes = a.allocate(&mut svc("NodePort", "10.96.0.10", 30080), None).err().unwrap();
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.clusterIPs[0]", "spec.ports[0].nodePort"]);
        assert!(causes[1].message.contains("already allocated"));
        let causes = a.allocate(&mut svc("NodePort", "192.168.0.1", 80), None).err().unwrap();
        assert!(causes[0].message.contains("not in the valid range"));
        assert!(causes[1].message.contains("30000-32767"));
    }

    #[test]
    fn an_uncommitted_allocation_is_given_back() {
        let a = ServiceAllocator::new("10.96.0.0/24", 30000..=30001).unwrap();
        drop(a.allocate(&mut svc("NodePort", "10.96.0.20", 30000), None).unwrap());
        a.allocate(&mut svc("NodePort", "10.96.0.20", 30000), None).unwrap().commit();
        a.release(&svc("NodePort", "10.96.0.20", 30000));
        a.allocate(&mut svc("NodePort", "10.96.0.20", 30000), None).unwrap().commit();
    }

    #[test]
    fn headless_services_get_no_address_and_cluster_ip_services_no_node_port() {
        let a = ServiceAllocator::new("10.96.0.0/12", 30000..=32767).unwrap();
        let mut h = svc("ClusterIP", "None", 0);
        a.allocate(&mut h, None).unwrap().commit();
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(h["spec"]["ports"][0]["nodePort"], 0);
    }
}

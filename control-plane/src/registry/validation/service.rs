//! Services (`ValidateService`, `ValidateServiceUpdate`), plus the node-port range check the
//! allocator makes, so one call gives every cause kubectl would print.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{labels, object_meta, object_meta_update};
use super::names::{is_valid_cidr, is_valid_ip, is_valid_port_num};
use super::{
    FieldPath, NameRule, dns1123_label, dns1123_subdomain, duplicate, duplicate_raw, forbidden, go_quote, invalid, invalid_raw,
    not_supported, opt, port_num_or_name, qualified_name, required,
};
use crate::api::error::Cause;

/// The API server's default `--service-node-port-range`.
pub const DEFAULT_NODE_PORT_RANGE: RangeInclusive<i32> = 30000..=32767;

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

pub fn service(s: &Service) -> Vec<Cause> {
    service_with_range(s, DEFAULT_NODE_PORT_RANGE)
}

/// `service` with the cluster's node-port range.
pub fn service_with_range(s: &Service, node_ports: RangeInclusive<i32>) -> Vec<Cause> {
    let mut errs = object_meta(&s.metadata, true, NameRule::Label1035);
    let empty = ServiceSpec::default();
    let spec = s.spec.as_ref().unwrap_or(&empty);
    let path = FieldPath::new("spec");
    let type_ = opt(&spec.type_);
    let cluster_ips = cluster_ips(spec);
    let headless = cluster_ips.len() == 1 && cluster_ips[0] == "None";
    let ports = spec.ports.as_deref().unwrap_or(&[]);

    if ports.is_empty() && !headless && type_ != "ExternalName" {
        errs.push(required(&path.child("ports")));
    }
    match type_ {
        "LoadBalancer" | "NodePort" if headless => {
            let detail = format!("may not be set to 'None' for {type_} services");
            errs.push(invalid(&path.child("clusterIPs").index(0), "None", detail));
        }
        "ExternalName" => {
            if !cluster_ips.is_empty() {
                errs.push(forbidden(&path.child("clusterIPs"), "may not be set for ExternalName services"));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                errs.push(forbidden(&path.child("ipFamilies"), "may not be set for ExternalName services"));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(forbidden(&path.child("ipFamilyPolicy"), "may not be set for ExternalName services"));
            }
            let cname = opt(&spec.external_name);
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(required(&path.child("externalName")));
            } else {
                errs.extend(dns1123_subdomain(cname, &path.child("externalName")));
            }
        }
        _ => {}
    }

    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(service_port(port, ports.len() > 1, &mut names, &path.child("ports").index(i)));
    }
    if let Some(sel) = &spec.selector {
        errs.extend(labels(sel, &path.child("selector")));
    }
    let affinity = opt(&spec.session_affinity);
    match affinity {
        "" => errs.push(required(&path.child("sessionAffinity"))),
        "ClientIP" => {
            let cfg = path.child("sessionAffinityConfig");
            let timeout = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds);
            match timeout {
                None => errs.push(super::required_detail(&cfg.child("clientIP").child("timeoutSeconds"), "when session affinity type is ClientIP")),
                Some(t) if t <= 0 || t > 86400 => {
                    errs.push(invalid_raw(&cfg.child("clientIP").child("timeoutSeconds"), t, "must be greater than 0 and less than 86400"))
                }
                _ => {}
            }
        }
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(forbidden(&path.child("sessionAffinityConfig"), "must not be set when session affinity is None"));
            }
        }
        other => errs.push(not_supported(&path.child("sessionAffinity"), other, &["ClientIP", "None"])),
    }
    if type_ != "ExternalName" {
        errs.extend(cluster_ip_fields(spec, &cluster_ips, headless, &path));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let p = path.child("externalIPs").index(i);
        let msgs = is_valid_ip(ip);
        if msgs.is_empty() {
            errs.extend(non_special_ip(ip, &p));
        } else {
            errs.extend(msgs.into_iter().map(|m| invalid(&p, ip, m)));
        }
    }
    match type_ {
        "" => errs.push(required(&path.child("type"))),
        t if !SERVICE_TYPES.contains(&t) => errs.push(not_supported(&path.child("type"), t, &SERVICE_TYPES)),
        _ => {}
    }
    let mut node_port_keys = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        let node_port = port.node_port.unwrap_or(0);
        if type_ == "ClusterIP" && node_port != 0 {
            errs.push(forbidden(&p.child("nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
        if node_port != 0 {
            if !node_port_keys.insert((opt(&port.protocol), node_port)) {
                errs.push(duplicate_raw(&p.child("nodePort"), node_port));
            }
            // The allocator's check, reported the way it reports it.
            if type_ != "ClusterIP" && !node_ports.contains(&node_port) {
                let detail = format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    node_ports.start(),
                    node_ports.end()
                );
                errs.push(invalid_raw(&p.child("nodePort"), node_port, detail));
            }
        }
        if !port_keys.insert((opt(&port.protocol), port.port)) {
            errs.push(duplicate_raw(&p, go_service_port_key(opt(&port.protocol), port.port)));
        }
    }
    let ranges = spec.load_balancer_source_ranges.as_deref().unwrap_or(&[]);
    if !ranges.is_empty() {
        let p = path.child("LoadBalancerSourceRanges");
        if type_ != "LoadBalancer" {
            errs.push(forbidden(&p, "may only be used when `type` is 'LoadBalancer'"));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.trim();
            errs.extend(is_valid_cidr(r).into_iter().map(|m| invalid(&p.index(i), r, m)));
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && type_ != "LoadBalancer" {
        errs.push(forbidden(&path.child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"));
    }
    if type_ == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        // Kubernetes reports this one without the `spec.` prefix.
        errs.push(required(&FieldPath::new("allocateLoadBalancerNodePorts")));
    }
    if let Some(class) = &spec.load_balancer_class {
        if type_ == "LoadBalancer" {
            errs.extend(qualified_name(class, &path.child("loadBalancerClass")));
        } else {
            errs.push(forbidden(&path.child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"));
        }
    }
    errs.extend(traffic_policies(spec, type_, &path));
    errs
}

/// `clusterIPs` as the strategy normalizes it: `[clusterIP]` when only `clusterIP` is given.
fn cluster_ips(spec: &ServiceSpec) -> Vec<String> {
    match (&spec.cluster_ips, opt(&spec.cluster_ip)) {
        (Some(ips), _) if !ips.is_empty() => ips.clone(),
        (_, "") => vec![],
        (_, ip) => vec![ip.to_string()],
    }
}

fn service_port(sp: &ServicePort, require_name: bool, names: &mut BTreeSet<String>, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let name = opt(&sp.name);
    if require_name && name.is_empty() {
        errs.push(required(&path.child("name")));
    } else if !name.is_empty() {
        errs.extend(dns1123_label(name, &path.child("name")));
        if !names.insert(name.to_string()) {
            errs.push(duplicate(&path.child("name"), name));
        }
    }
    errs.extend(is_valid_port_num(i64::from(sp.port)).into_iter().map(|m| invalid_raw(&path.child("port"), sp.port, m)));
    match opt(&sp.protocol) {
        "" => errs.push(required(&path.child("protocol"))),
        p if !PROTOCOLS.contains(&p) => errs.push(not_supported(&path.child("protocol"), p, &PROTOCOLS)),
        _ => {}
    }
    errs.extend(port_num_or_name(sp.target_port.as_ref().unwrap_or(&IntOrString::Int(0)), &path.child("targetPort")));
    if let Some(ap) = &sp.app_protocol {
        errs.extend(qualified_name(ap, &path.child("appProtocol")));
    }
    errs
}

/// Go's `%#v` of the `core.ServicePort` key used for duplicate detection.
fn go_service_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

fn cluster_ip_fields(spec: &ServiceSpec, ips: &[String], headless: bool, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let ips_path = path.child("clusterIPs");
    let shown = format!("[]string{{{}}}", ips.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", "));
    let cluster_ip = opt(&spec.cluster_ip);
    if !cluster_ip.is_empty() && !ips.is_empty() && ips[0] != cluster_ip {
        errs.push(invalid_raw(&ips_path, &shown, "first value must match `clusterIP`"));
    } else if cluster_ip.is_empty() && !ips.is_empty() {
        errs.push(invalid_raw(&ips_path, &shown, "must be empty when `clusterIP` is not specified"));
    }
    let mut seen = BTreeSet::new();
    for (i, fam) in spec.ip_families.iter().flatten().enumerate() {
        let p = path.child("ipFamilies").index(i);
        if fam != "IPv4" && fam != "IPv6" {
            errs.push(not_supported(&p, fam, &["IPv4", "IPv6"]));
        }
        if !seen.insert(fam.as_str()) {
            errs.push(duplicate(&p, fam));
        }
    }
    if let Some(policy) = &spec.ip_family_policy {
        let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !supported.contains(&policy.as_str()) {
            errs.push(not_supported(&path.child("ipFamilyPolicy"), policy, &supported));
        }
    }
    let mut bad = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                bad = true;
                errs.push(invalid_raw(&ips_path, &shown, "'None' must be the first and only value"));
            }
            continue;
        }
        let msgs = is_valid_ip(ip);
        bad |= !msgs.is_empty();
        errs.extend(msgs.into_iter().map(|m| invalid(&ips_path.index(i), ip, m)));
    }
    if ips.len() > 2 {
        errs.push(invalid_raw(&ips_path, &shown, "may only hold up to 2 values"));
    }
    if bad {
        return errs;
    }
    let is_v6 = |ip: &str| ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6());
    if ips.len() > 1 && is_v6(&ips[0]) == is_v6(&ips[1]) {
        errs.push(invalid_raw(&ips_path, &shown, "may specify no more than one IP for each IP family"));
    }
    if !headless {
        for (i, (ip, fam)) in ips.iter().zip(spec.ip_families.iter().flatten()).enumerate() {
            if fam == "IPv4" && is_v6(ip) {
                errs.push(invalid(&ips_path.index(i), ip, format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`")));
            }
            if fam == "IPv6" && !is_v6(ip) {
                errs.push(invalid(&ips_path.index(i), ip, format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`")));
            }
        }
    }
    errs
}

/// `ValidateNonSpecialIP`: no unspecified, loopback or link-local addresses.
pub(crate) fn non_special_ip(ip: &str, path: &FieldPath) -> Vec<Cause> {
    use std::net::IpAddr;
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return vec![invalid(path, ip, "must be a valid IP address")];
    };
    let mut errs = vec![];
    if addr.is_unspecified() {
        errs.push(invalid(path, ip, format!("may not be unspecified ({ip})")));
    }
    if addr.is_loopback() {
        errs.push(invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    let (link_local_unicast, link_local_multicast) = match addr {
        IpAddr::V4(v4) => (v4.is_link_local(), v4.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(v6) => ((v6.segments()[0] & 0xffc0) == 0xfe80, (v6.segments()[0] & 0xff0f) == 0xff02),
    };
    if link_local_unicast {
        errs.push(invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"));
    }
    if link_local_multicast {
        errs.push(invalid(path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"));
    }
    errs
}

fn traffic_policies(spec: &ServiceSpec, type_: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let externally_accessible =
        type_ == "LoadBalancer" || type_ == "NodePort" || (type_ == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    let etp = opt(&spec.external_traffic_policy);
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(invalid(&path.child("externalTrafficPolicy"), etp, "may only be set for externally-accessible services"));
        }
    } else if etp.is_empty() {
        errs.push(required(&path.child("externalTrafficPolicy")));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(not_supported(&path.child("externalTrafficPolicy"), etp, &["Cluster", "Local"]));
    }
    let hc = spec.health_check_node_port.unwrap_or(0);
    let needs_health_check = type_ == "LoadBalancer" && etp == "Local";
    if !needs_health_check {
        if hc != 0 {
            errs.push(invalid_raw(&path.child("healthCheckNodePort"), hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
        }
    } else if hc != 0 {
        errs.extend(is_valid_port_num(i64::from(hc)).into_iter().map(|m| invalid_raw(&path.child("healthCheckNodePort"), hc, m)));
    }
    // healthCheckNodePort is allocated after validation here, so a missing one is not an error.
    match &spec.internal_traffic_policy {
        None if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&type_) => errs.push(required(&path.child("internalTrafficPolicy"))),
        Some(p) if p != "Cluster" && p != "Local" => errs.push(not_supported(&path.child("internalTrafficPolicy"), p, &["Cluster", "Local"])),
        _ => {}
    }
    if let Some(td) = &spec.traffic_distribution
        && td != "PreferClose" {
            errs.push(not_supported(&path.child("trafficDistribution"), td, &["PreferClose"]));
        }
    errs
}

/// `ValidateServiceUpdate`: cluster IPs and families may not change once set (except to or from ExternalName).
pub fn service_update(new: &Service, old: &Service) -> Vec<Cause> {
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    let empty = ServiceSpec::default();
    let (ns, os) = (new.spec.as_ref().unwrap_or(&empty), old.spec.as_ref().unwrap_or(&empty));
    let external = opt(&ns.type_) == "ExternalName" || opt(&os.type_) == "ExternalName";
    let (new_ips, old_ips) = (cluster_ips(ns), cluster_ips(os));
    let headless = |ips: &[String]| ips.len() == 1 && ips[0] == "None";
    let ips_path = FieldPath::new("spec").child("clusterIPs");
    let shown = format!("[]string{{{}}}", new_ips.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", "));
    let both_headless = headless(&new_ips) && headless(&old_ips);
    if !external && !both_headless {
        if old_ips.len() == new_ips.len() {
            for (i, ip) in old_ips.iter().enumerate() {
                if *ip != new_ips[i] {
                    errs.push(invalid_raw(&ips_path.index(i), &shown, "may not change once set"));
                }
            }
        } else if old_ips.len() > new_ips.len() {
            if new_ips.is_empty() {
                errs.push(invalid_raw(&ips_path.index(0), &shown, "primary clusterIP can not be unset"));
            } else if new_ips[0] != old_ips[0] {
                errs.push(invalid_raw(&ips_path.index(0), &shown, "may not change once set"));
            }
            if new_ips.len() == 1 && opt(&ns.ip_family_policy) != "SingleStack" {
                let p = FieldPath::new("spec").child("ipFamilyPolicy");
                let v = ns.ip_family_policy.as_deref().map(go_quote).unwrap_or_else(|| "null".into());
                errs.push(invalid_raw(&p, v, "must be set to 'SingleStack' when releasing the secondary clusterIP"));
            }
        } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(invalid_raw(&ips_path.index(0), &shown, "may not change once set"));
        }
    }
    if opt(&os.type_) == "LoadBalancer" && opt(&ns.type_) == "LoadBalancer" && ns.load_balancer_class != os.load_balancer_class {
        let p = FieldPath::new("spec").child("loadBalancerClass");
        let v = ns.load_balancer_class.as_deref().map(go_quote).unwrap_or_else(|| "null".into());
        errs.push(invalid_raw(&p, v, "may not change once set"));
    }
    errs.extend(service(new));
    errs
}

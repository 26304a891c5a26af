//! The smaller kinds: Namespace, Node, Endpoints, Event, Lease, ConfigMap, Secret.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Node, Secret};

use super::meta::{object_meta, object_meta_update};
use super::names::{is_config_map_key, is_dns1123_subdomain, is_qualified_name, is_valid_cidr, is_valid_ip, is_valid_label_value, is_valid_port_num};
use super::service::non_special_ip;
use super::{
    FieldPath, NameRule, dns1123_label, duplicate, duplicate_raw, forbidden, go_quote, invalid, invalid_raw, not_supported, opt, qualified_name,
    required, required_detail, too_long,
};
use crate::api::error::Cause;

/// ConfigMaps and Secrets share the 1 MiB cap on their data.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

pub fn namespace(n: &Namespace) -> Vec<Cause> {
    let mut errs = object_meta(&n.metadata, false, NameRule::Label);
    let path = FieldPath::new("spec").child("finalizers");
    for f in n.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
        errs.extend(is_qualified_name(f).into_iter().map(|m| invalid(&path, f, m)));
        if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f.as_str()) {
            errs.push(invalid(&path, f, "name is neither a standard finalizer name nor is it fully qualified"));
        }
    }
    errs
}

pub fn node(n: &Node) -> Vec<Cause> {
    let mut errs = object_meta(&n.metadata, false, NameRule::Subdomain);
    errs.extend(node_common(n));
    let cidrs = n.spec.as_ref().and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let path = FieldPath::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(is_valid_cidr(c).into_iter().map(|m| invalid(&path.index(i), c, m)));
    }
    if cidrs.len() > 1 {
        let v6 = |c: &str| c.contains(':');
        if cidrs.len() > 2 || v6(&cidrs[0]) == v6(&cidrs[1]) {
            errs.push(invalid_raw(&path, format!("{cidrs:?}"), "may specify no more than one CIDR for each IP family"));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(c) {
                errs.push(duplicate(&path.index(i), c));
            }
        }
    }
    errs
}

/// Node updates: status may change freely, podCIDRs and providerID only from unset.
pub fn node_update(new: &Node, old: &Node) -> Vec<Cause> {
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    errs.extend(node_common(new));
    let mut seen = BTreeSet::new();
    for (i, a) in new.status.iter().flat_map(|s| s.addresses.iter().flatten()).enumerate() {
        if !seen.insert((a.type_.clone(), a.address.clone())) {
            let shown = format!("core.NodeAddress{{Type:{}, Address:{}}}", go_quote(&a.type_), go_quote(&a.address));
            errs.push(duplicate_raw(&FieldPath::new("status").child("addresses").index(i), shown));
        }
    }
    let spec = |n: &Node| n.spec.clone().unwrap_or_default();
    let (ns, os) = (spec(new), spec(old));
    let old_cidrs = os.pod_cidrs.unwrap_or_default();
    if !old_cidrs.is_empty() && ns.pod_cidrs.unwrap_or_default() != old_cidrs {
        errs.push(forbidden(&FieldPath::new("spec").child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"));
    }
    let old_provider = opt(&os.provider_id);
    if !old_provider.is_empty() && old_provider != opt(&ns.provider_id) {
        errs.push(forbidden(&FieldPath::new("spec").child("providerID"), "node updates may not change providerID except from \"\" to valid"));
    }
    if ns.external_id != os.external_id {
        errs.push(forbidden(&FieldPath::new("spec").child("externalID"), "may not be updated"));
    }
    errs
}

fn node_common(n: &Node) -> Vec<Cause> {
    let mut errs = vec![];
    // Kubernetes reports taints under `metadata.taints`.
    let taints_path = FieldPath::new("metadata").child("taints");
    let mut unique: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, t) in n.spec.iter().flat_map(|s| s.taints.iter().flatten()).enumerate() {
        let p = taints_path.index(i);
        errs.extend(qualified_name(&t.key, &p.child("key")));
        let value = opt(&t.value);
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(invalid(&p.child("value"), value, msgs.join(";")));
        }
        match t.effect.as_str() {
            "" => errs.push(required(&p.child("effect"))),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(not_supported(&p.child("effect"), other, &["NoSchedule", "PreferNoSchedule", "NoExecute"])),
        }
        if !unique.entry(t.effect.clone()).or_default().insert(t.key.clone()) {
            errs.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!(
                    "Duplicate value: core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}: taints must be unique by key and effect pair",
                    go_quote(&t.key),
                    go_quote(value),
                    go_quote(&t.effect)
                ),
                field: p.to_string(),
            });
        }
    }
    for (field, list) in [("capacity", n.status.as_ref().and_then(|s| s.capacity.as_ref())), ("allocatable", n.status.as_ref().and_then(|s| s.allocatable.as_ref()))] {
        for (k, q) in list.into_iter().flatten() {
            let p = FieldPath::new("status").child(field).child(k);
            match crate::registry::quantity::parse(&q.0) {
                Err(e) => errs.push(invalid(&p, &q.0, e)),
                Ok(v) if v.millis < 0 => errs.push(invalid(&p, &v.canonical(), super::IS_NEGATIVE_ERROR_MSG)),
                Ok(v) if k.contains('/') && !k.contains("kubernetes.io/") && v.millis % 1000 != 0 => {
                    errs.push(invalid(&p, &v.canonical(), "must be an integer"))
                }
                Ok(_) => {}
            }
        }
    }
    errs
}

pub fn endpoints(e: &Endpoints) -> Vec<Cause> {
    let mut errs = object_meta(&e.metadata, true, NameRule::Subdomain);
    let path = FieldPath::new("subsets");
    for (i, ss) in e.subsets.iter().flatten().enumerate() {
        let p = path.index(i);
        let (ready, not_ready) = (ss.addresses.as_deref().unwrap_or(&[]), ss.not_ready_addresses.as_deref().unwrap_or(&[]));
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(required_detail(&p, "must specify `addresses` or `notReadyAddresses`"));
        }
        for (field, list) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                let ap = p.child(field).index(j);
                errs.extend(is_valid_ip(&a.ip).into_iter().map(|m| invalid(&ap.child("ip"), &a.ip, m)));
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    errs.extend(dns1123_label(h, &ap.child("hostname")));
                }
                if let Some(n) = &a.node_name {
                    errs.extend(is_dns1123_subdomain(n).into_iter().map(|m| invalid(&ap.child("nodeName"), n, m)));
                }
                errs.extend(non_special_ip(&a.ip, &ap.child("ip")));
            }
        }
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        for (j, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(j);
            let name = opt(&port.name);
            if ports.len() > 1 && name.is_empty() {
                errs.push(required(&pp.child("name")));
            } else if !name.is_empty() {
                errs.extend(dns1123_label(name, &pp.child("name")));
            }
            errs.extend(is_valid_port_num(i64::from(port.port)).into_iter().map(|m| invalid_raw(&pp.child("port"), port.port, m)));
            match opt(&port.protocol) {
                "" => errs.push(required(&pp.child("protocol"))),
                "TCP" | "UDP" | "SCTP" => {}
                other => errs.push(not_supported(&pp.child("protocol"), other, &["SCTP", "TCP", "UDP"])),
            }
            if let Some(ap) = &port.app_protocol {
                errs.extend(qualified_name(ap, &pp.child("appProtocol")));
            }
        }
    }
    errs
}

/// core/v1 events get only the legacy checks (`legacyValidateEvent`); events.k8s.io adds more.
pub fn event(e: &Event) -> Vec<Cause> {
    let mut errs = vec![];
    let ns = opt(&e.metadata.namespace);
    let involved_ns = opt(&e.involved_object.namespace);
    let inv = FieldPath::new("involvedObject").child("namespace");
    if e.event_time.is_none() {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(invalid(&inv, involved_ns, "does not match event.namespace"));
            }
        } else if ns != involved_ns {
            errs.push(invalid(&inv, involved_ns, "does not match event.namespace"));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(invalid(&inv, involved_ns, "does not match event.namespace"));
        }
        let controller = opt(&e.reporting_component);
        if controller.is_empty() {
            errs.push(required(&FieldPath::new("reportingController")));
        }
        errs.extend(is_qualified_name(controller).into_iter().map(|m| invalid(&FieldPath::new("reportingController"), controller, m)));
        for (field, value, limit) in [("reportingInstance", opt(&e.reporting_instance), 128), ("action", opt(&e.action), 128), ("reason", opt(&e.reason), 128)] {
            if value.is_empty() {
                errs.push(required(&FieldPath::new(field)));
            }
            if value.len() > limit {
                errs.push(invalid(&FieldPath::new(field), "", format!("can have at most {limit} characters")));
            }
        }
        if opt(&e.message).len() > 1024 {
            errs.push(invalid(&FieldPath::new("message"), "", "can have at most 1024 characters"));
        }
    }
    errs.extend(is_dns1123_subdomain(ns).into_iter().map(|m| invalid(&FieldPath::new("namespace"), ns, m)));
    errs
}

pub fn lease(l: &Lease) -> Vec<Cause> {
    let mut errs = object_meta(&l.metadata, true, NameRule::Subdomain);
    let Some(spec) = &l.spec else { return errs };
    let path = FieldPath::new("spec");
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errs.push(invalid_raw(&path.child("leaseDurationSeconds"), d, "must be greater than 0"));
    }
    if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
        errs.push(invalid_raw(&path.child("leaseTransitions"), t, "must be greater than or equal to 0"));
    }
    if let Some(s) = &spec.strategy {
        let sp = path.child("strategy").child("strategy");
        if !s.contains('/') {
            if s != "OldestEmulationVersion" {
                errs.push(not_supported(&sp, s, &["OldestEmulationVersion"]));
            }
        } else {
            errs.extend(is_qualified_name(s).into_iter().map(|m| invalid(&sp, s, m)));
        }
    }
    if spec.preferred_holder.as_deref().is_some_and(|h| !h.is_empty()) && spec.strategy.as_deref().unwrap_or("").is_empty() {
        errs.push(forbidden(&path.child("preferredHolder"), "may only be specified if `strategy` is defined"));
    }
    errs
}

pub fn config_map(c: &ConfigMap) -> Vec<Cause> {
    let mut errs = object_meta(&c.metadata, true, NameRule::Subdomain);
    let mut total = 0;
    let binary = c.binary_data.as_ref();
    for (k, v) in c.data.iter().flatten() {
        let p = FieldPath::new("data").key(k);
        errs.extend(is_config_map_key(k).into_iter().map(|m| invalid(&p, k, m)));
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(invalid(&p, k, "duplicate of key present in binaryData"));
        }
        total += v.len();
    }
    for (k, v) in binary.into_iter().flatten() {
        let p = FieldPath::new("binaryData").key(k);
        errs.extend(is_config_map_key(k).into_iter().map(|m| invalid(&p, k, m)));
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(too_long(&FieldPath::new(""), MAX_SECRET_SIZE));
    }
    errs
}

pub fn config_map_update(new: &ConfigMap, old: &ConfigMap) -> Vec<Cause> {
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(forbidden(&FieldPath::new("immutable"), "field is immutable when `immutable` is set"));
        }
        if new.data != old.data {
            errs.push(forbidden(&FieldPath::new("data"), "field is immutable when `immutable` is set"));
        }
        if new.binary_data != old.binary_data {
            errs.push(forbidden(&FieldPath::new("binaryData"), "field is immutable when `immutable` is set"));
        }
    }
    errs.extend(config_map(new));
    errs
}

/// Expects `stringData` already merged into `data`, as the API server does before validating.
pub fn secret(s: &Secret) -> Vec<Cause> {
    let mut errs = object_meta(&s.metadata, true, NameRule::Subdomain);
    let data_path = FieldPath::new("data");
    let empty = BTreeMap::new();
    let data = s.data.as_ref().unwrap_or(&empty);
    let mut total = 0;
    for (k, v) in data {
        errs.extend(is_config_map_key(k).into_iter().map(|m| invalid(&data_path.key(k), k, m)));
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(too_long(&data_path, MAX_SECRET_SIZE));
    }
    let has = |k: &str| data.contains_key(k);
    let json_ok = |k: &str| data.get(k).map(|v| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&v.0));
    match opt(&s.type_) {
        "kubernetes.io/service-account-token" => {
            let name = s.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/service-account.name"));
            if name.is_none_or(|n| n.is_empty()) {
                errs.push(required(&FieldPath::new("metadata").child("annotations").key("kubernetes.io/service-account.name")));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if opt(&s.type_) == "kubernetes.io/dockercfg" { ".dockercfg" } else { ".dockerconfigjson" };
            match json_ok(key) {
                None => errs.push(required(&data_path.key(key))),
                Some(Err(e)) => errs.push(invalid(&data_path.key(key), "<secret contents redacted>", e)),
                Some(Ok(_)) => {}
            }
        }
        "kubernetes.io/basic-auth"
            if !has("username") && !has("password") => {
                errs.push(required(&data_path.key("username")));
                errs.push(required(&data_path.key("password")));
            }
        "kubernetes.io/ssh-auth"
            if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
                errs.push(required(&data_path.key("ssh-privatekey")));
            }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(required(&data_path.key(key)));
                }
            }
        }
        _ => {}
    }
    errs
}

pub fn secret_update(new: &Secret, old: &Secret) -> Vec<Cause> {
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    if new.type_ != old.type_ {
        errs.push(invalid(&FieldPath::new("type"), opt(&new.type_), super::FIELD_IMMUTABLE_ERROR_MSG));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(forbidden(&FieldPath::new("immutable"), "field is immutable when `immutable` is set"));
        }
        if new.data != old.data {
            errs.push(forbidden(&FieldPath::new("data"), "field is immutable when `immutable` is set"));
        }
    }
    errs.extend(secret(new));
    errs
}

//! Containers (`validateContainerCommon`, `validateContainers`, `validateInitContainers`): ports, env,
//! mounts, resources, probes and lifecycle handlers.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, LifecycleHandler, Probe, ResourceRequirements, SecurityContext, Volume};

use super::names::{is_config_map_key, is_dns1123_subdomain, is_http_header_name, is_qualified_name, is_relaxed_env_var_name, is_valid_port_name, is_valid_port_num};
use super::volume::local_descending_path;
use super::{
    FieldPath, dns1123_label, duplicate, forbidden, invalid, invalid_raw, nonnegative, not_found, not_supported, opt,
    port_num_or_name, required, required_detail,
};
use crate::api::error::Cause;
use crate::registry::quantity;

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// Regular containers: common checks, unique names, probes and lifecycle, no restartPolicy, host ports.
pub(crate) fn containers(list: &[Container], vols: &BTreeMap<&str, &Volume>, grace: Option<i64>, restart: &str, path: &FieldPath) -> Vec<Cause> {
    if list.is_empty() {
        return vec![required(path)];
    }
    let mut errs = vec![];
    let mut names = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        errs.extend(common(c, vols, restart, &p));
        if !names.insert(c.name.as_str()) {
            errs.push(duplicate(&p.child("name"), &c.name));
        }
        errs.extend(probes_and_lifecycle(c, grace, &p));
        if c.restart_policy.is_some() {
            errs.push(forbidden(&p.child("restartPolicy"), "may not be set for non-init containers"));
        }
    }
    errs.extend(host_port_conflicts(list, path));
    errs
}

/// Init containers: names unique across regular and init containers; only sidecars may have probes.
pub(crate) fn init_containers(list: &[Container], regular: &[Container], vols: &BTreeMap<&str, &Volume>, grace: Option<i64>, restart: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let mut names: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        errs.extend(common(c, vols, restart, &p));
        let mut sidecar = false;
        if let Some(rp) = &c.restart_policy {
            if rp != "Always" {
                errs.push(not_supported(&p.child("restartPolicy"), rp, &["Always"]));
            }
            sidecar = rp == "Always";
        }
        if names.contains(c.name.as_str()) {
            errs.push(duplicate(&p.child("name"), &c.name));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        errs.extend(host_port_conflicts(std::slice::from_ref(c), path));
        if sidecar {
            errs.extend(probes_and_lifecycle(c, grace, &p));
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            for (field, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    errs.push(forbidden(&p.child(field), msg));
                }
            }
        }
    }
    errs
}

fn probes_and_lifecycle(c: &Container, grace: Option<i64>, p: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    if let Some(l) = &c.lifecycle {
        if let Some(h) = &l.post_start {
            errs.extend(lifecycle_handler(h, grace, &p.child("lifecycle").child("postStart")));
        }
        if let Some(h) = &l.pre_stop {
            errs.extend(lifecycle_handler(h, grace, &p.child("lifecycle").child("preStop")));
        }
    }
    if let Some(pr) = &c.liveness_probe {
        let pp = p.child("livenessProbe");
        errs.extend(probe(pr, &pp));
        if pr.success_threshold.unwrap_or(0) != 1 {
            errs.push(invalid_raw(&pp.child("successThreshold"), pr.success_threshold.unwrap_or(0), "must be 1"));
        }
    }
    if let Some(pr) = &c.readiness_probe {
        let pp = p.child("readinessProbe");
        errs.extend(probe(pr, &pp));
        if let Some(t) = pr.termination_grace_period_seconds {
            errs.push(invalid_raw(&pp.child("terminationGracePeriodSeconds"), t, "must not be set for readinessProbes"));
        }
    }
    if let Some(pr) = &c.startup_probe {
        let pp = p.child("startupProbe");
        errs.extend(probe(pr, &pp));
        if pr.success_threshold.unwrap_or(0) != 1 {
            errs.push(invalid_raw(&pp.child("successThreshold"), pr.success_threshold.unwrap_or(0), "must be 1"));
        }
    }
    errs
}

/// What every container kind must satisfy.
pub(crate) fn common(c: &Container, vols: &BTreeMap<&str, &Volume>, _restart: &str, p: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let name_path = p.child("name");
    if c.name.is_empty() {
        errs.push(required(&name_path));
    } else {
        errs.extend(dns1123_label(&c.name, &name_path));
    }
    if opt(&c.image).is_empty() {
        errs.push(required(&p.child("image")));
    }
    match opt(&c.termination_message_policy) {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(required(&p.child("terminationMessagePolicy"))),
        other => errs.push(not_supported(&p.child("terminationMessagePolicy"), other, &["File", "FallbackToLogsOnError"])),
    }
    errs.extend(ports(c, &p.child("ports")));
    errs.extend(env(c.env.as_deref().unwrap_or(&[]), &p.child("env")));
    errs.extend(env_from(c.env_from.as_deref().unwrap_or(&[]), &p.child("envFrom")));
    errs.extend(volume_mounts(c, vols, &p.child("volumeMounts")));
    match opt(&c.image_pull_policy) {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(required(&p.child("imagePullPolicy"))),
        other => errs.push(not_supported(&p.child("imagePullPolicy"), other, &["Always", "IfNotPresent", "Never"])),
    }
    if let Some(r) = &c.resources {
        errs.extend(resources(r, &p.child("resources")));
    }
    if let Some(sc) = &c.security_context {
        errs.extend(security_context(sc, &p.child("securityContext")));
    }
    errs
}

fn ports(c: &Container, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(msgs.into_iter().map(|m| invalid(&p.child("name"), name, m)));
            } else if !names.insert(name) {
                errs.push(duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(required(&p.child("containerPort")));
        } else {
            let cp = port.container_port;
            errs.extend(is_valid_port_num(i64::from(cp)).into_iter().map(|m| invalid_raw(&p.child("containerPort"), cp, m)));
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            errs.extend(is_valid_port_num(i64::from(hp)).into_iter().map(|m| invalid_raw(&p.child("hostPort"), hp, m)));
        }
        match opt(&port.protocol) {
            "" => errs.push(required(&p.child("protocol"))),
            proto if !PROTOCOLS.contains(&proto) => errs.push(not_supported(&p.child("protocol"), proto, &PROTOCOLS)),
            _ => {}
        }
    }
    errs
}

/// Two containers may not claim the same protocol/hostIP/hostPort.
fn host_port_conflicts(list: &[Container], path: &FieldPath) -> Vec<Cause> {
    let mut seen = BTreeSet::new();
    let mut errs = vec![];
    for (ci, c) in list.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", opt(&port.protocol), opt(&port.host_ip));
            if !seen.insert(key.clone()) {
                errs.push(duplicate(&path.index(ci).child("ports").index(pi).child("hostPort"), &key));
            }
        }
    }
    errs
}

const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: [&str; 6] = ["limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu", "requests.ephemeral-storage", "requests.memory"];

/// Names follow the relaxed rule that is on by default since 1.32.
fn env(vars: &[EnvVar], path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(required(&p.child("name")));
        } else {
            errs.extend(is_relaxed_env_var_name(&ev.name).into_iter().map(|m| invalid(&p.child("name"), &ev.name, m)));
        }
        let Some(from) = &ev.value_from else { continue };
        let vp = p.child("valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            let fp = vp.child("fieldRef");
            if opt(&f.api_version).is_empty() {
                errs.push(required(&fp.child("apiVersion")));
            } else if f.field_path.is_empty() {
                errs.push(required(&fp.child("fieldPath")));
            } else if let Some((base, sub)) = split_subscript(&f.field_path) {
                match base {
                    "metadata.annotations" => errs.extend(is_qualified_name(&sub.to_lowercase()).into_iter().map(|m| invalid(&fp, &sub.to_lowercase(), m))),
                    "metadata.labels" => errs.extend(is_qualified_name(sub).into_iter().map(|m| invalid(&fp, sub, m))),
                    _ => errs.push(invalid(&fp, base, "does not support subscript")),
                }
            } else if !ENV_FIELD_PATHS.contains(&f.field_path.as_str()) {
                errs.push(not_supported(&fp.child("fieldPath"), &f.field_path, &ENV_FIELD_PATHS));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            let rp = vp.child("resourceFieldRef");
            if r.resource.is_empty() {
                errs.push(required(&rp.child("resource")));
            } else if !RESOURCE_FIELD_PATHS.contains(&r.resource.as_str()) && !r.resource.starts_with("requests.hugepages-") && !r.resource.starts_with("limits.hugepages-") {
                errs.push(not_supported(&rp.child("resource"), &r.resource, &RESOURCE_FIELD_PATHS));
            }
        }
        for (field, sel) in [
            ("configMapKeyRef", from.config_map_key_ref.as_ref().map(|s| (&s.name, &s.key))),
            ("secretKeyRef", from.secret_key_ref.as_ref().map(|s| (&s.name, &s.key))),
        ] {
            let Some((name, key)) = sel else { continue };
            sources += 1;
            let sp = vp.child(field);
            errs.extend(is_dns1123_subdomain(name).into_iter().map(|m| invalid(&sp.child("name"), name, m)));
            if key.is_empty() {
                errs.push(required(&sp.child("key")));
            } else {
                errs.extend(is_config_map_key(key).into_iter().map(|m| invalid(&sp.child("key"), key, m)));
            }
        }
        if sources == 0 {
            errs.push(invalid(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if !opt(&ev.value).is_empty() {
            errs.push(invalid(&vp, "", "may not be specified when `value` is not empty"));
        } else if sources > 1 {
            errs.push(invalid(&vp, "", "may not have more than one field specified at a time"));
        }
    }
    errs
}

/// `metadata.labels['app']` -> (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    Some((base, rest.strip_suffix("']")?))
}

fn env_from(list: &[EnvFromSource], path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for (i, ev) in list.iter().enumerate() {
        let p = path.index(i);
        if let Some(prefix) = ev.prefix.as_deref().filter(|s| !s.is_empty()) {
            errs.extend(is_relaxed_env_var_name(prefix).into_iter().map(|m| invalid(&p.child("prefix"), prefix, m)));
        }
        let mut sources = 0;
        for (field, name) in [
            ("configMapRef", ev.config_map_ref.as_ref().map(|r| r.name.as_str())),
            ("secretRef", ev.secret_ref.as_ref().map(|r| r.name.as_str())),
        ] {
            let Some(name) = name else { continue };
            sources += 1;
            let np = p.child(field).child("name");
            if name.is_empty() {
                errs.push(required(&np));
            } else {
                errs.extend(super::NameRule::Subdomain.check(name, true).into_iter().map(|m| invalid(&np, name, m)));
            }
        }
        if sources == 0 {
            errs.push(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"));
        } else if sources > 1 {
            errs.push(invalid(path, "", "may not have more than one field specified at a time"));
        }
    }
    errs
}

fn volume_mounts(c: &Container, vols: &BTreeMap<&str, &Volume>, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let mut mount_points = BTreeSet::new();
    let privileged = c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false);
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(required(&p.child("name")));
        }
        if !vols.contains_key(m.name.as_str()) {
            errs.push(not_found(&p.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(required(&p.child("mountPath")));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(invalid(&p.child("mountPath"), &m.mount_path, "must be unique"));
        }
        let sub_path = opt(&m.sub_path);
        let sub_path_expr = opt(&m.sub_path_expr);
        // Kubernetes reports these two without the mount's index.
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(sub_path, &path.child("subPath")));
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(invalid(&p.child("subPathExpr"), sub_path_expr, "subPathExpr and subPath are mutually exclusive"));
            }
            errs.extend(local_descending_path(sub_path_expr, &path.child("subPathExpr")));
        }
        if let Some(prop) = &m.mount_propagation {
            let pp = path.child("mountPropagation");
            if !["Bidirectional", "HostToContainer", "None"].contains(&prop.as_str()) {
                errs.push(not_supported(&pp, prop, &["Bidirectional", "HostToContainer", "None"]));
            }
            if prop == "Bidirectional" && !privileged {
                errs.push(forbidden(&pp, "Bidirectional mount propagation is available only to privileged containers"));
            }
        }
        if let Some(rro) = &m.recursive_read_only {
            let rp = path.child("recursiveReadOnly");
            match rro.as_str() {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if !m.read_only.unwrap_or(false) {
                        errs.push(forbidden(&rp, "may only be specified when readOnly is true"));
                    }
                    if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                        errs.push(forbidden(&rp, "may only be specified when mountPropagation is None or not specified"));
                    }
                }
                other => errs.push(not_supported(&rp, other, &["Disabled", "Enabled", "IfPossible"])),
            }
        }
    }
    errs
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Only native, non-hugepage resources (cpu, memory, ...) may request less than their limit.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

const STANDARD_RESOURCES: [&str; 17] = [
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage", "limits.cpu",
    "limits.memory", "limits.ephemeral-storage", "pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
    "configmaps", "persistentvolumeclaims", "storage",
];

fn container_resource_name(name: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs: Vec<Cause> = is_qualified_name(name).into_iter().map(|m| invalid(path, name, m)).collect();
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') {
        let standard = STANDARD_RESOURCES.contains(&name) || is_hugepages(name) || name.starts_with("requests.hugepages-");
        if !standard {
            errs.push(invalid(path, name, "must be a standard resource type or fully qualified"));
        }
        if !(["cpu", "memory", "ephemeral-storage"].contains(&name) || is_hugepages(name)) {
            errs.push(invalid(path, name, "must be a standard resource for containers"));
        }
    } else if !is_native(name) && (name.starts_with("requests.") || !is_qualified_name(&format!("requests.{name}")).is_empty()) {
        errs.push(invalid(path, name, "doesn't follow extended resource name standard"));
    }
    errs
}

/// Quantities must parse and be non-negative; extended resources must be whole numbers.
fn quantity_value(name: &str, value: &str, path: &FieldPath) -> (Option<quantity::Quantity>, Vec<Cause>) {
    match quantity::parse(value) {
        Err(e) => (None, vec![invalid(path, value, e)]),
        Ok(q) => {
            let mut errs = vec![];
            if q.millis < 0 {
                errs.push(invalid(path, &q.canonical(), super::IS_NEGATIVE_ERROR_MSG));
            }
            if !is_native(name) && q.millis % 1000 != 0 {
                errs.push(invalid(path, &q.canonical(), "must be an integer"));
            }
            (Some(q), errs)
        }
    }
}

/// `ValidateContainerResourceRequirements`.
pub(crate) fn resources(r: &ResourceRequirements, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let (mut cpu_or_mem, mut hugepages) = (false, false);
    let mut parsed_limits = BTreeMap::new();
    for (name, q) in limits {
        let p = lim_path.key(name);
        errs.extend(container_resource_name(name, &p));
        let (parsed, e) = quantity_value(name, &q.0, &p);
        errs.extend(e);
        if let Some(parsed) = parsed {
            parsed_limits.insert(name.as_str(), parsed);
        }
        hugepages |= is_hugepages(name);
        cpu_or_mem |= name == "cpu" || name == "memory";
    }
    for (name, q) in requests {
        let p = req_path.key(name);
        errs.extend(container_resource_name(name, &p));
        let (parsed, e) = quantity_value(name, &q.0, &p);
        errs.extend(e);
        match (parsed, parsed_limits.get(name.as_str())) {
            (Some(req), Some(lim)) => {
                if req.millis != lim.millis && !overcommit_allowed(name) {
                    errs.push(invalid(&req_path, &req.canonical(), format!("must be equal to {name} limit of {}", lim.canonical())));
                } else if req.millis > lim.millis {
                    errs.push(invalid(&req_path, &req.canonical(), format!("must be less than or equal to {name} limit of {}", lim.canonical())));
                }
            }
            (_, None) if !overcommit_allowed(name) && !limits.contains_key(name) => {
                errs.push(required_detail(&lim_path, "Limit must be set for non overcommitable resources"));
            }
            _ => {}
        }
        hugepages |= is_hugepages(name);
        cpu_or_mem |= name == "cpu" || name == "memory";
    }
    if hugepages && !cpu_or_mem {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
    errs
}

fn probe(p: &Probe, path: &FieldPath) -> Vec<Cause> {
    let (mut errs, first) = handler(
        [
            ("exec", p.exec.is_some()),
            ("httpGet", p.http_get.is_some()),
            ("tcpSocket", p.tcp_socket.is_some()),
            ("grpc", p.grpc.is_some()),
            ("sleep", false),
        ],
        path,
    );
    if let (Some(e), "exec") = (&p.exec, first)
        && e.command.as_deref().unwrap_or(&[]).is_empty() {
            errs.push(required(&path.child("exec").child("command")));
        }
    if let (Some(h), "httpGet") = (&p.http_get, first) {
        errs.extend(http_get(h, &path.child("httpGet")));
    }
    if let (Some(t), "tcpSocket") = (&p.tcp_socket, first) {
        errs.extend(port_num_or_name(&t.port, &path.child("tcpSocket").child("port")));
    }
    if let (Some(g), "grpc") = (&p.grpc, first) {
        let gp = path.child("grpc").child("port");
        errs.extend(is_valid_port_num(i64::from(g.port)).into_iter().map(|m| invalid_raw(&gp, g.port, m)));
    }
    for (field, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        errs.extend(nonnegative(i64::from(v.unwrap_or(0)), &path.child(field)));
    }
    if let Some(t) = p.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(invalid_raw(&path.child("terminationGracePeriodSeconds"), t, "must be greater than 0"));
    }
    errs
}

/// Exactly one handler: a second one is Forbidden, none at all is Required. Returns the one that
/// counts, the only one whose own fields Kubernetes goes on to check.
fn handler<'a>(present: [(&'a str, bool); 5], path: &FieldPath) -> (Vec<Cause>, &'a str) {
    let mut errs = vec![];
    let mut first = "";
    for (name, set) in present {
        if set {
            if first.is_empty() {
                first = name;
            } else {
                errs.push(forbidden(&path.child(name), "may not specify more than 1 handler type"));
            }
        }
    }
    if first.is_empty() {
        errs.push(required_detail(path, "must specify a handler type"));
    }
    (errs, first)
}

fn http_get(h: &k8s_openapi::api::core::v1::HTTPGetAction, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    if opt(&h.path).is_empty() {
        errs.push(required(&path.child("path")));
    }
    errs.extend(port_num_or_name(&h.port, &path.child("port")));
    let scheme = opt(&h.scheme);
    if scheme != "HTTP" && scheme != "HTTPS" {
        errs.push(not_supported(&path.child("scheme"), scheme, &["HTTP", "HTTPS"]));
    }
    for header in h.http_headers.iter().flatten() {
        errs.extend(is_http_header_name(&header.name).into_iter().map(|m| invalid(&path.child("httpHeaders"), &header.name, m)));
    }
    errs
}

fn lifecycle_handler(h: &LifecycleHandler, grace: Option<i64>, path: &FieldPath) -> Vec<Cause> {
    let (mut errs, first) = handler(
        [
            ("exec", h.exec.is_some()),
            ("httpGet", h.http_get.is_some()),
            ("tcpSocket", h.tcp_socket.is_some()),
            ("grpc", false),
            ("sleep", h.sleep.is_some()),
        ],
        path,
    );
    if let (Some(e), "exec") = (&h.exec, first)
        && e.command.as_deref().unwrap_or(&[]).is_empty() {
            errs.push(required(&path.child("exec").child("command")));
        }
    if let (Some(g), "httpGet") = (&h.http_get, first) {
        errs.extend(http_get(g, &path.child("httpGet")));
    }
    if let (Some(t), "tcpSocket") = (&h.tcp_socket, first) {
        errs.extend(port_num_or_name(&t.port, &path.child("tcpSocket").child("port")));
    }
    // Zero-second sleeps are allowed since 1.33 (PodLifecycleSleepActionAllowZero is beta).
    if let (Some(s), Some(g), "sleep") = (&h.sleep, grace, first)
        && (s.seconds < 0 || s.seconds > g) {
            errs.push(invalid_raw(&path.child("sleep"), s.seconds, format!("must be non-negative and less than terminationGracePeriodSeconds ({g})")));
        }
    errs
}

const MAX_ID: i64 = 0xffff_ffff;

pub(crate) fn id_range(value: Option<i64>, path: &FieldPath) -> Vec<Cause> {
    match value {
        Some(v) if !(0..=MAX_ID).contains(&v) => vec![invalid_raw(path, v, super::names::inclusive_range_error(0, MAX_ID))],
        _ => vec![],
    }
}

fn security_context(sc: &SecurityContext, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    errs.extend(id_range(sc.run_as_user, &path.child("runAsUser")));
    errs.extend(id_range(sc.run_as_group, &path.child("runAsGroup")));
    if let Some(pm) = &sc.proc_mount
        && pm != "Default" && pm != "Unmasked" {
            errs.push(not_supported(&path.child("procMount"), pm, &["Default", "Unmasked"]));
        }
    if let Some(sp) = &sc.seccomp_profile {
        errs.extend(seccomp_profile(sp, &path.child("seccompProfile")));
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errs.push(invalid_raw(path, "&core.SecurityContext{...}", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"));
        }
        if sc.capabilities.as_ref().and_then(|c| c.add.as_ref()).is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN")) {
            errs.push(invalid_raw(path, "&core.SecurityContext{...}", "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"));
        }
    }
    errs
}

pub(crate) fn seccomp_profile(sp: &k8s_openapi::api::core::v1::SeccompProfile, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(required_detail(&path.child("type"), "type is required when seccompProfile is set")),
        other => errs.push(not_supported(&path.child("type"), other, &["Localhost", "RuntimeDefault", "Unconfined"])),
    }
    if sp.type_ == "Localhost" {
        match &sp.localhost_profile {
            None => errs.push(required_detail(&path.child("localhostProfile"), "must be set when seccomp type is Localhost")),
            Some(p) => errs.extend(local_descending_path(p, &path.child("localhostProfile"))),
        }
    } else if sp.localhost_profile.is_some() {
        errs.push(invalid_raw(&path.child("localhostProfile"), "core.SeccompProfile{...}", "can only be set when seccomp type is Localhost"));
    }
    errs
}

/// Pods (not templates) refuse images with surrounding whitespace.
pub(crate) fn image_whitespace(list: &[Container], path: &FieldPath) -> Vec<Cause> {
    list.iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let image = opt(&c.image);
            (image.trim() != image).then(|| invalid(&path.index(i).child("image"), image, "must not have leading or trailing whitespace"))
        })
        .collect()
}

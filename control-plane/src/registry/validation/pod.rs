//! Pods and pod templates (`ValidatePodCreate`, `ValidatePodSpec`, `ValidatePodUpdate`,
//! `ValidatePodTemplateSpec`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec, Toleration};
use serde_json::Value;

use super::container::{containers, id_range, image_whitespace, init_containers, seccomp_profile};
use super::meta::{annotations, labels, object_meta_at, object_meta_update};
use super::names::{inclusive_range_error, is_dns1123_subdomain, is_qualified_name, is_valid_ip, is_valid_label_value};
use super::volume::volumes;
use super::{
    FieldPath, NameRule, dns1123_label, dns1123_subdomain, duplicate, forbidden, invalid, invalid_raw, not_supported, opt,
    qualified_name, required, required_detail,
};
use crate::api::error::Cause;

const MAX_INT32: i64 = i32::MAX as i64;

/// A pod on create.
pub fn pod(p: &Pod) -> Vec<Cause> {
    let mut errs = pod_metadata_and_spec(p);
    let spec_path = FieldPath::new("spec");
    if let Some(spec) = &p.spec {
        if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
            errs.push(forbidden(&spec_path.child("ephemeralContainers"), "cannot be set on create"));
        }
        if !opt(&spec.node_name).is_empty() && spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) {
            errs.push(forbidden(&spec_path.child("nodeName"), "cannot be set until all schedulingGates have been cleared"));
        }
    }
    errs
}

fn pod_metadata_and_spec(p: &Pod) -> Vec<Cause> {
    let spec_path = FieldPath::new("spec");
    let mut errs = object_meta_at(&p.metadata, true, NameRule::Subdomain, &FieldPath::new("metadata"));
    let empty = PodSpec::default();
    let spec = p.spec.as_ref().unwrap_or(&empty);
    errs.extend(pod_spec(spec, &spec_path, true));
    if opt(&spec.service_account_name).is_empty() {
        for (vi, v) in spec.volumes.iter().flatten().enumerate() {
            for (si, s) in v.projected.iter().flat_map(|p| p.sources.iter().flatten()).enumerate() {
                if s.service_account_token.is_some() {
                    let path = spec_path.child("volumes").index(vi).child("projected").child("sources").index(si).child("serviceAccountToken");
                    errs.push(forbidden(&path, "must not be specified when serviceAccountName is not set"));
                }
            }
        }
    }
    errs.extend(image_whitespace(&spec.containers, &spec_path.child("containers")));
    errs.extend(image_whitespace(spec.init_containers.as_deref().unwrap_or(&[]), &spec_path.child("initContainers")));
    errs
}

/// A pod template as embedded in workloads; `path` is where it sits (`spec.template`).
pub fn pod_template_spec(t: &PodTemplateSpec, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    if let Some(meta) = &t.metadata {
        // Kubernetes reports template labels at `<path>.labels`, not `<path>.metadata.labels`.
        if let Some(l) = &meta.labels {
            errs.extend(labels(l, &path.child("labels")));
        }
        if let Some(a) = &meta.annotations {
            errs.extend(annotations(a, &path.child("annotations")));
        }
    }
    let empty = PodSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&empty);
    errs.extend(pod_spec(spec, &path.child("spec"), false));
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        errs.push(forbidden(&path.child("spec").child("ephemeralContainers"), "ephemeral containers not allowed in pod template"));
    }
    errs
}

/// `ValidatePodSpec`; `is_pod` is false for templates, which may leave host ports to be defaulted.
pub(crate) fn pod_spec(spec: &PodSpec, path: &FieldPath, is_pod: bool) -> Vec<Cause> {
    let mut errs = vec![];
    let grace = spec.termination_grace_period_seconds;
    if grace.is_none() {
        errs.push(required(&path.child("terminationGracePeriodSeconds")));
    }
    let restart = opt(&spec.restart_policy);
    let (vols, verrs) = volumes(spec.volumes.as_deref().unwrap_or(&[]), &path.child("volumes"));
    errs.extend(verrs);
    errs.extend(containers(&spec.containers, &vols, grace, restart, &path.child("containers")));
    let inits = spec.init_containers.as_deref().unwrap_or(&[]);
    errs.extend(init_containers(inits, &spec.containers, &vols, grace, restart, &path.child("initContainers")));

    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let hp = port.host_port.unwrap_or(0);
                if (is_pod || hp != 0) && hp != port.container_port {
                    let p = path.child("containers").index(i).child("ports").index(j).child("hostPort");
                    errs.push(invalid_raw(&p, hp, "must match `containerPort` when `hostNetwork` is true"));
                }
            }
        }
    }
    match restart {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(&path.child("restartPolicy"))),
        other => errs.push(not_supported(&path.child("restartPolicy"), other, &["Always", "OnFailure", "Never"])),
    }
    let dns_policy = opt(&spec.dns_policy);
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(&path.child("dnsPolicy"))),
        other => errs.push(not_supported(&path.child("dnsPolicy"), other, &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"])),
    }
    if let Some(ns) = &spec.node_selector {
        errs.extend(labels(ns, &path.child("nodeSelector")));
    }
    errs.extend(pod_security_context(spec, &path.child("securityContext")));
    errs.extend(affinity(spec, &path.child("affinity")));
    errs.extend(dns_config(spec, dns_policy, &path.child("dnsConfig")));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(qualified_name(&g.condition_type, &path.child("readinessGates").index(i).child("conditionType")));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(qualified_name(&g.name, &p));
        if !gates.insert(g.name.as_str()) {
            errs.push(duplicate(&p, &g.name));
        }
    }
    errs.extend(topology_spread(spec, &path.child("topologySpreadConstraints")));
    for (field, value) in [("serviceAccountName", &spec.service_account_name), ("nodeName", &spec.node_name), ("priorityClassName", &spec.priority_class_name)] {
        let v = opt(value);
        if !v.is_empty() {
            errs.extend(is_dns1123_subdomain(v).into_iter().map(|m| invalid(&path.child(field), v, m)));
        }
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=MAX_INT32).contains(&ads) {
            errs.push(invalid_raw(&path.child("activeDeadlineSeconds"), ads, inclusive_range_error(1, MAX_INT32)));
        }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        let v = opt(value);
        if !v.is_empty() {
            errs.extend(dns1123_label(v, &path.child(field)));
        }
    }
    errs.extend(tolerations(spec.tolerations.as_deref().unwrap_or(&[]), &path.child("tolerations")));
    for (i, ha) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(is_valid_ip(&ha.ip).into_iter().map(|m| invalid(&p.child("ip"), &ha.ip, m)));
        for (j, h) in ha.hostnames.iter().flatten().enumerate() {
            errs.extend(dns1123_subdomain(h, &p.child("hostnames").index(j)));
        }
    }
    if let Some(rc) = &spec.runtime_class_name {
        errs.extend(is_dns1123_subdomain(rc).into_iter().map(|m| invalid(&path.child("runtimeClassName"), rc, m)));
    }
    if let Some(pp) = &spec.preemption_policy {
        match pp.as_str() {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(&path.child("preemptionPolicy"))),
            other => errs.push(not_supported(&path.child("preemptionPolicy"), other, &["PreemptLowerPriority", "Never"])),
        }
    }
    if let Some(os) = &spec.os
        && os.name != "linux" && os.name != "windows" {
            errs.push(not_supported(&path.child("os").child("name"), &os.name, &["linux", "windows"]));
        }
    errs
}

fn pod_security_context(spec: &PodSpec, path: &FieldPath) -> Vec<Cause> {
    let Some(sc) = &spec.security_context else { return vec![] };
    let mut errs = vec![];
    errs.extend(id_range(sc.fs_group, &path.child("fsGroup")));
    errs.extend(id_range(sc.run_as_user, &path.child("runAsUser")));
    errs.extend(id_range(sc.run_as_group, &path.child("runAsGroup")));
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        errs.extend(id_range(Some(*g), &path.child("supplementalGroups").index(i)));
    }
    if sc.fs_group_change_policy.as_deref().is_some_and(|p| p != "OnRootMismatch" && p != "Always") {
        errs.push(not_supported(&path.child("fsGroupChangePolicy"), opt(&sc.fs_group_change_policy), &["Always", "OnRootMismatch"]));
    }
    if let Some(sp) = &sc.seccomp_profile {
        errs.extend(seccomp_profile(sp, &path.child("seccompProfile")));
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(invalid_raw(&path.child("shareProcessNamespace"), true, "ShareProcessNamespace and HostPID cannot both be enabled"));
    }
    errs
}

fn affinity(spec: &PodSpec, path: &FieldPath) -> Vec<Cause> {
    let Some(a) = &spec.affinity else { return vec![] };
    let mut errs = vec![];
    if let Some(required_terms) = a.node_affinity.as_ref().and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref()) {
        let tp = path.child("nodeAffinity").child("requiredDuringSchedulingIgnoredDuringExecution").child("nodeSelectorTerms");
        if required_terms.node_selector_terms.is_empty() {
            errs.push(required_detail(&tp, "must have at least one node selector term"));
        }
        for (i, term) in required_terms.node_selector_terms.iter().enumerate() {
            for (j, req) in term.match_expressions.iter().flatten().enumerate() {
                let rp = tp.index(i).child("matchExpressions").index(j);
                let values = req.values.as_deref().unwrap_or(&[]);
                match req.operator.as_str() {
                    "In" | "NotIn" if values.is_empty() => {
                        errs.push(required_detail(&rp.child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
                    }
                    "Exists" | "DoesNotExist" if !values.is_empty() => {
                        errs.push(forbidden(&rp.child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
                    }
                    "Gt" | "Lt" if values.len() != 1 => {
                        errs.push(required_detail(&rp.child("values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"))
                    }
                    "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
                    op => errs.push(invalid(&rp.child("operator"), op, "not a valid selector operator")),
                }
                errs.extend(is_qualified_name(&req.key).into_iter().map(|m| invalid(&rp.child("key"), &req.key, m)));
                for (k, v) in values.iter().enumerate() {
                    errs.extend(is_valid_label_value(v).into_iter().map(|m| invalid(&rp.child("values").index(k), v, m)));
                }
            }
        }
    }
    let pod_terms = [
        ("podAffinity", a.pod_affinity.as_ref().map(|p| (&p.required_during_scheduling_ignored_during_execution, &p.preferred_during_scheduling_ignored_during_execution))),
        ("podAntiAffinity", a.pod_anti_affinity.as_ref().map(|p| (&p.required_during_scheduling_ignored_during_execution, &p.preferred_during_scheduling_ignored_during_execution))),
    ];
    for (field, terms) in pod_terms {
        let Some((req, pref)) = terms else { continue };
        let fp = path.child(field);
        for (i, t) in req.iter().flatten().enumerate() {
            let tp = fp.child("requiredDuringSchedulingIgnoredDuringExecution").index(i).child("topologyKey");
            if t.topology_key.is_empty() {
                errs.push(required_detail(&tp, "can not be empty"));
            }
            errs.extend(is_qualified_name(&t.topology_key).into_iter().map(|m| invalid(&tp, &t.topology_key, m)));
        }
        for (i, w) in pref.iter().flatten().enumerate() {
            let wp = fp.child("preferredDuringSchedulingIgnoredDuringExecution").index(i);
            if !(1..=100).contains(&w.weight) {
                errs.push(invalid_raw(&wp.child("weight"), w.weight, "must be in the range 1-100"));
            }
            let tp = wp.child("podAffinityTerm").child("topologyKey");
            if w.pod_affinity_term.topology_key.is_empty() {
                errs.push(required_detail(&tp, "can not be empty"));
            }
        }
    }
    errs
}

fn dns_config(spec: &PodSpec, policy: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    if policy == "None" {
        match &spec.dns_config {
            None => return vec![required_detail(path, "must provide `dnsConfig` when `dnsPolicy` is None")],
            Some(c) if c.nameservers.as_deref().unwrap_or(&[]).is_empty() => {
                return vec![required_detail(&path.child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None")];
            }
            _ => {}
        }
    }
    let Some(c) = &spec.dns_config else { return errs };
    let nameservers = c.nameservers.as_deref().unwrap_or(&[]);
    if nameservers.len() > 3 {
        errs.push(invalid_raw(&path.child("nameservers"), format!("{nameservers:?}"), "must not have more than 3 nameservers"));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(is_valid_ip(ns).into_iter().map(|m| invalid(&path.child("nameservers").index(i), ns, m)));
    }
    let searches = c.searches.as_deref().unwrap_or(&[]);
    if searches.len() > 32 {
        errs.push(invalid_raw(&path.child("searches"), format!("{searches:?}"), "must not have more than 32 search paths"));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(invalid_raw(&path.child("searches"), format!("{searches:?}"), "must not have more than 2048 characters (including spaces) in the search list"));
    }
    for (i, s) in searches.iter().enumerate() {
        if s != "." {
            let trimmed = s.strip_suffix('.').unwrap_or(s);
            // RelaxedDNSSearchValidation (beta, on in 1.33) also allows underscores.
            let check = trimmed.replace('_', "a");
            for m in is_dns1123_subdomain(&check) {
                errs.push(invalid(&path.child("searches").index(i), trimmed, m));
            }
        }
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if opt(&o.name).is_empty() {
            errs.push(required_detail(&path.child("options").index(i), "must not be empty"));
        }
    }
    errs
}

fn topology_spread(spec: &PodSpec, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let mut seen = BTreeSet::new();
    for (i, c) in spec.topology_spread_constraints.iter().flatten().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(invalid_raw(&p.child("maxSkew"), c.max_skew, "must be greater than zero"));
        }
        if c.topology_key.is_empty() {
            errs.push(required_detail(&p.child("topologyKey"), "can not be empty"));
        } else {
            errs.extend(qualified_name(&c.topology_key, &p.child("topologyKey")));
        }
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&c.when_unsatisfiable.as_str()) {
            errs.push(not_supported(&p.child("whenUnsatisfiable"), &c.when_unsatisfiable, &["DoNotSchedule", "ScheduleAnyway"]));
        }
        let pair = (c.topology_key.as_str(), c.when_unsatisfiable.as_str());
        if !seen.insert(pair) {
            errs.push(super::duplicate_raw(&p, format!("{{{:?}, {:?}}}", pair.0, pair.1)));
        }
    }
    errs
}

/// `ValidateTolerations`.
pub(crate) fn tolerations(list: &[Toleration], path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for (i, t) in list.iter().enumerate() {
        let p = path.index(i);
        let key = opt(&t.key);
        let op = opt(&t.operator);
        let effect = opt(&t.effect);
        let value = opt(&t.value);
        if !key.is_empty() {
            errs.extend(qualified_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(invalid(&p.child("operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(invalid(&p.child("effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid(&p.child("operator"), value, msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid(&p.child("operator"), value, "value must be empty when `operator` is 'Exists'"));
                }
            }
            other => errs.push(not_supported(&p.child("operator"), other, &["Equal", "Exists"])),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errs.push(not_supported(&p.child("effect"), effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]));
        }
    }
    errs
}

const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A pod update by a user: the spec is immutable except images, activeDeadlineSeconds (down only),
/// added tolerations, removed scheduling gates and, for gated pods, added nodeSelector entries.
pub fn pod_update(new: &Pod, old: &Pod) -> Vec<Cause> {
    let spec_path = FieldPath::new("spec");
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    errs.extend(pod_metadata_and_spec(new));
    let empty = PodSpec::default();
    let new_spec = new.spec.as_ref().unwrap_or(&empty);
    let old_spec = old.spec.as_ref().unwrap_or(&empty);

    let old_inits = old_spec.init_containers.as_deref().unwrap_or(&[]);
    let new_inits = new_spec.init_containers.as_deref().unwrap_or(&[]);
    for (field, n, o) in [("containers", &new_spec.containers[..], &old_spec.containers[..]), ("initContainers", new_inits, old_inits)] {
        let p = spec_path.child(field);
        if n.len() != o.len() {
            errs.push(forbidden(&p, "pod updates may not add or remove containers"));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            if opt(&c.image).is_empty() {
                errs.push(required(&p.index(i).child("image")));
            }
        }
    }

    match (new_spec.active_deadline_seconds, old_spec.active_deadline_seconds) {
        (Some(n), _) if !(0..=MAX_INT32).contains(&n) => {
            errs.push(invalid_raw(&spec_path.child("activeDeadlineSeconds"), n, inclusive_range_error(0, MAX_INT32)));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(invalid_raw(&spec_path.child("activeDeadlineSeconds"), n, "must be less than or equal to previous value"));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(invalid_raw(&spec_path.child("activeDeadlineSeconds"), "null", "must not update from a positive integer to nil value"));
        }
        _ => {}
    }

    let new_tol = new_spec.tolerations.as_deref().unwrap_or(&[]);
    let old_tol = old_spec.tolerations.as_deref().unwrap_or(&[]);
    let kept = old_tol.iter().all(|o| new_tol.iter().any(|n| Toleration { toleration_seconds: n.toleration_seconds, ..o.clone() } == *n));
    if !kept {
        errs.push(forbidden(&spec_path.child("tolerations"), "existing toleration can not be modified except its tolerationSeconds"));
    }

    let old_gates: BTreeSet<&str> = old_spec.scheduling_gates.iter().flatten().map(|g| g.name.as_str()).collect();
    for (i, g) in new_spec.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            let msg = format!("only deletion is allowed, but found new scheduling gate '{}'", g.name);
            errs.push(forbidden(&spec_path.child("schedulingGates").index(i).child("name"), &msg));
        }
    }

    if new_spec == old_spec {
        return errs;
    }
    let mut munged = new_spec.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old_spec.containers) {
        c.image = o.image.clone();
    }
    for (c, o) in munged.init_containers.iter_mut().flatten().zip(old_inits) {
        c.image = o.image.clone();
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged.scheduling_gates = old_spec.scheduling_gates.clone();
    munged.tolerations = old_spec.tolerations.clone();
    if old_spec.termination_grace_period_seconds.is_some_and(|g| g < 0) && munged.termination_grace_period_seconds == Some(1) {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    let gated = old_spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty());
    if gated && munged.node_selector != old_spec.node_selector {
        let old_sel = old_spec.node_selector.clone().unwrap_or_default();
        let new_sel = munged.node_selector.clone().unwrap_or_default();
        if old_sel.iter().any(|(k, v)| new_sel.get(k) != Some(v)) {
            errs.push(invalid_raw(
                &spec_path.child("nodeSelector"),
                format!("{new_sel:?}"),
                "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
            ));
        }
        munged.node_selector = old_spec.node_selector.clone();
    }
    if munged != *old_spec {
        let detail = format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}", spec_diff(old_spec, &munged));
        errs.push(forbidden(&spec_path, &detail));
    }
    errs
}

/// A short stand-in for the `cmp.Diff` Kubernetes appends: one `-`/`+` pair per changed spec field.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let (o, n) = (serde_json::to_value(old).unwrap_or(Value::Null), serde_json::to_value(new).unwrap_or(Value::Null));
    let empty = serde_json::Map::new();
    let (om, nm) = (o.as_object().unwrap_or(&empty), n.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (ov, nv) = (om.get(k), nm.get(k));
        if ov != nv {
            let show = |v: Option<&Value>| v.map(Value::to_string).unwrap_or_else(|| "nil".into());
            out.push_str(&format!("- \t{k}: {},\n+ \t{k}: {},\n", show(ov), show(nv)));
        }
    }
    out.push_str("  }\n");
    out
}

//! apps/v1 Deployments and ReplicaSets (`pkg/apis/apps/validation`, plus the apps/v1 strategies'
//! selector immutability).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{go_repr_selector, label_selector, object_meta, object_meta_update, selector_matches};
use super::names::is_valid_percent;
use super::pod::pod_template_spec;
use super::{FIELD_IMMUTABLE_ERROR_MSG, FieldPath, NameRule, forbidden, invalid, invalid_raw, nonnegative, not_supported, required, required_detail};
use crate::api::error::Cause;

pub fn deployment(d: &Deployment) -> Vec<Cause> {
    let mut errs = object_meta(&d.metadata, true, NameRule::Subdomain);
    let spec = d.spec.clone().unwrap_or_default();
    let path = FieldPath::new("spec");
    errs.extend(nonnegative(i64::from(spec.replicas.unwrap_or(0)), &path.child("replicas")));
    errs.extend(selector_and_template(given(&spec.selector), &spec.template, &path, "ReplicaSet"));
    errs.extend(strategy(spec.strategy.as_ref(), &path.child("strategy")));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(nonnegative(i64::from(min_ready), &path.child("minReadySeconds")));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(nonnegative(i64::from(limit), &path.child("revisionHistoryLimit")));
    }
    if let Some(pds) = spec.progress_deadline_seconds {
        errs.extend(nonnegative(i64::from(pds), &path.child("progressDeadlineSeconds")));
        if pds <= min_ready {
            errs.push(invalid_raw(&path.child("progressDeadlineSeconds"), pds, "must be greater than minReadySeconds"));
        }
    }
    errs
}

/// apps/v1 forbids changing the selector after creation.
pub fn deployment_update(new: &Deployment, old: &Deployment) -> Vec<Cause> {
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    errs.extend(deployment(new));
    let sel = |d: &Deployment| d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    errs.extend(selector_immutable(&sel(new), &sel(old)));
    errs
}

pub fn replica_set(rs: &ReplicaSet) -> Vec<Cause> {
    let mut errs = object_meta(&rs.metadata, true, NameRule::Subdomain);
    let spec = rs.spec.clone().unwrap_or_default();
    let path = FieldPath::new("spec");
    errs.extend(nonnegative(i64::from(spec.replicas.unwrap_or(0)), &path.child("replicas")));
    errs.extend(nonnegative(i64::from(spec.min_ready_seconds.unwrap_or(0)), &path.child("minReadySeconds")));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(selector_and_template(given(&spec.selector), &template, &path, "ReplicaSet"));
    errs
}

pub fn replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> Vec<Cause> {
    let mut errs = object_meta_update(&new.metadata, &old.metadata);
    errs.extend(replica_set(new));
    let sel = |r: &ReplicaSet| r.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    errs.extend(selector_immutable(&sel(new), &sel(old)));
    errs
}

/// A selector the client left out decodes as one with neither field; that is the Go nil selector.
fn given(sel: &LabelSelector) -> Option<&LabelSelector> {
    (sel.match_labels.is_some() || sel.match_expressions.is_some()).then_some(sel)
}

fn selector_immutable(new: &LabelSelector, old: &LabelSelector) -> Vec<Cause> {
    if new == old {
        return vec![];
    }
    vec![invalid_raw(&FieldPath::new("spec").child("selector"), go_repr_selector(new), FIELD_IMMUTABLE_ERROR_MSG)]
}

/// Selector present, non-empty and valid; template labels selected; template valid with restartPolicy Always.
/// As in Kubernetes, a selector that does not convert skips the template checks, and a missing one
/// selects nothing, so it also reports the label mismatch.
fn selector_and_template(selector: Option<&LabelSelector>, template: &PodTemplateSpec, path: &FieldPath, kind: &str) -> Vec<Cause> {
    let mut errs = vec![];
    let sel_path = path.child("selector");
    if let Some(sel) = selector {
        let sel_errs = label_selector(sel, &sel_path);
        let convertible = sel_errs.is_empty();
        errs.extend(sel_errs);
        let count = sel.match_labels.as_ref().map_or(0, |m| m.len()) + sel.match_expressions.as_ref().map_or(0, |m| m.len());
        if count == 0 {
            errs.push(invalid_raw(&sel_path, go_repr_selector(sel), "empty selector is invalid for deployment"));
        }
        if !convertible {
            errs.push(invalid_raw(&sel_path, go_repr_selector(sel), "invalid label selector"));
            return errs;
        }
    } else {
        errs.push(required(&sel_path));
    }
    let tpath = path.child("template");
    let template_labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    let selects = match selector {
        None => false,
        Some(sel) if sel.match_labels.as_ref().is_none_or(|m| m.is_empty()) && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty()) => true,
        Some(sel) => selector_matches(sel, &template_labels),
    };
    if !selects {
        let shown = format!(
            "map[string]string{{{}}}",
            template_labels.iter().map(|(k, v)| format!("{}:{}", super::go_quote(k), super::go_quote(v))).collect::<Vec<_>>().join(", ")
        );
        errs.push(invalid_raw(&tpath.child("metadata").child("labels"), shown, "`selector` does not match template `labels`"));
    }
    errs.extend(pod_template_spec(template, &tpath));
    let spec = template.spec.clone().unwrap_or_default();
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        errs.push(not_supported(&tpath.child("spec").child("restartPolicy"), restart, &["Always"]));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(forbidden(&tpath.child("spec").child("activeDeadlineSeconds"), &format!("activeDeadlineSeconds in {kind} is not Supported")));
    }
    errs
}

fn strategy(s: Option<&DeploymentStrategy>, path: &FieldPath) -> Vec<Cause> {
    let empty = DeploymentStrategy::default();
    let s = s.unwrap_or(&empty);
    let mut errs = vec![];
    match s.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if s.rolling_update.is_some() {
                errs.push(forbidden(&path.child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"));
            }
        }
        "RollingUpdate" => match &s.rolling_update {
            None => errs.push(required_detail(&path.child("rollingUpdate"), "this should be defaulted and never be nil")),
            Some(ru) => {
                let rp = path.child("rollingUpdate");
                let zero = IntOrString::Int(0);
                let unavailable = ru.max_unavailable.as_ref().unwrap_or(&zero);
                let surge = ru.max_surge.as_ref().unwrap_or(&zero);
                errs.extend(positive_int_or_percent(unavailable, &rp.child("maxUnavailable")));
                errs.extend(positive_int_or_percent(surge, &rp.child("maxSurge")));
                if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                    errs.push(invalid_raw(&rp.child("maxUnavailable"), show(unavailable), "may not be 0 when `maxSurge` is 0"));
                }
                if percent_value(unavailable).is_some_and(|v| v > 100) {
                    errs.push(invalid_raw(&rp.child("maxUnavailable"), show(unavailable), "must not be greater than 100%"));
                }
            }
        },
        other => {
            let rolling = if s.rolling_update.is_some() { "(...)" } else { "(nil)" };
            errs.push(Cause {
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment){rolling}}}: supported values: \"Recreate\", \"RollingUpdate\"",
                    super::go_quote(other)
                ),
                field: path.to_string(),
            });
        }
    }
    errs
}

fn show(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => super::go_quote(s),
    }
}

fn positive_int_or_percent(v: &IntOrString, path: &FieldPath) -> Vec<Cause> {
    match v {
        IntOrString::String(s) => is_valid_percent(s).into_iter().map(|m| invalid(path, s, m)).collect(),
        IntOrString::Int(n) => nonnegative(i64::from(*n), path),
    }
}

fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if is_valid_percent(s).is_empty() => s.trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

/// Like Go's `IntValue()`, a non-percent string counts as its integer value or 0.
fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => percent_value(v).unwrap_or_else(|| s.parse().unwrap_or(0)),
    }
}

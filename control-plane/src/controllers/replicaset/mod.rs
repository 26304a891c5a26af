//! ReplicaSet controller (`pkg/controller/replicaset`) as a pure decision over a snapshot.
//!
//! The caller lists the namespace's pods, runs [`reconcile`] and carries out the actions in order.
//! Upstream's expectations (don't act again until the informer has seen the last round of
//! creates/deletes) and the slow-start batching of creates are the caller's to apply; see
//! [`slow_start_batches`] and [`BURST_REPLICAS`].

pub(crate) mod ranking;
pub mod run;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};

pub use ranking::{POD_DELETION_COST, is_pod_active, is_pod_available, is_pod_ready, pods_to_delete, sort_active_pods};

/// Upstream `BurstReplicas`: at most this many creates or deletes per sync.
pub const BURST_REPLICAS: usize = 500;
/// Upstream `SlowStartInitialBatchSize`.
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

const REPLICA_FAILURE: &str = "ReplicaFailure";

pub struct RsSnapshot<'a> {
    pub rs: &'a ReplicaSet,
    /// Pods in the ReplicaSet's namespace: owned by it or orphans (others are ignored anyway).
    pub pods: Vec<&'a Pod>,
    pub now: Timestamp,
}

// The template is built once per sync and handed straight to the API; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RsAction {
    /// Create `count` copies of `template` (`generateName: "<rs>-"`, owner reference set).
    CreatePods { count: usize, template: Pod },
    /// Pod names, in the order to delete them.
    DeletePods(Vec<String>),
    /// Orphans matching the selector: add the ReplicaSet as their controller.
    Adopt(Vec<String>),
    /// Pods we control that no longer match the selector: drop our owner reference.
    Release(Vec<String>),
    /// Replace `.status` (already carries `observedGeneration`).
    UpdateStatus(ReplicaSetStatus),
}

/// One sync of upstream `syncReplicaSet`: claim pods, scale toward `spec.replicas`, then status.
pub fn reconcile(s: &RsSnapshot) -> Vec<RsAction> {
    let rs = s.rs;
    let (Some(spec), Some(rs_uid)) = (rs.spec.as_ref(), rs.metadata.uid.as_deref()) else {
        return Vec::new();
    };
    // Upstream refuses to sync an invalid selector at all.
    let Some(selector) = Selector::new(&spec.selector) else {
        return Vec::new();
    };
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();
    let namespace = rs.metadata.namespace.as_deref();

    let mut claimed: Vec<&Pod> = Vec::new();
    let (mut adopt, mut release) = (Vec::new(), Vec::new());
    for &pod in s.pods.iter().filter(|p| is_pod_active(p)) {
        if namespace.is_some() && pod.metadata.namespace.as_deref() != namespace {
            continue;
        }
        let matches = selector.matches(pod.metadata.labels.as_ref());
        let name = pod.metadata.name.clone().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid != rs_uid => {}
            Some(_) if matches => claimed.push(pod),
            Some(_) => {
                if !rs_deleting {
                    release.push(name);
                }
            }
            None => {
                if !rs_deleting && matches && pod.metadata.deletion_timestamp.is_none() {
                    adopt.push(name);
                    claimed.push(pod);
                }
            }
        }
    }

    let mut actions = Vec::new();
    if !adopt.is_empty() {
        actions.push(RsAction::Adopt(adopt));
    }
    if !release.is_empty() {
        actions.push(RsAction::Release(release));
    }
    if !rs_deleting {
        let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
        if claimed.len() < want {
            // Upstream refuses to create pods without labels: they could never be counted.
            if let Some(template) = pod_from_template(rs).filter(|p| p.metadata.labels.as_ref().is_some_and(|l| !l.is_empty())) {
                let count = (want - claimed.len()).min(BURST_REPLICAS);
                actions.push(RsAction::CreatePods { count, template });
            }
        } else if claimed.len() > want {
            let diff = (claimed.len() - want).min(BURST_REPLICAS);
            // Upstream ranks against pods of sibling ReplicaSets of the same Deployment; the
            // snapshot only has ours, so co-location counts this ReplicaSet's own pods.
            let doomed = pods_to_delete(&claimed, &claimed, diff, s.now);
            let names = doomed.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
            actions.push(RsAction::DeletePods(names));
        }
    }

    let mut status = calculate_status(rs, &claimed, s.now, None);
    if status_changed(rs, &status) {
        status.observed_generation = rs.metadata.generation;
        actions.push(RsAction::UpdateStatus(status));
    }
    actions
}

/// Upstream `calculateStatus`. `manage_error` is the error of the last create/delete round, which
/// sets (or, when `None`, clears) the `ReplicaFailure` condition.
pub fn calculate_status(rs: &ReplicaSet, pods: &[&Pod], now: Timestamp, manage_error: Option<&str>) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let template_labels = spec.and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.as_ref());
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);

    let (mut fully_labeled, mut ready, mut available) = (0i32, 0i32, 0i32);
    for pod in pods {
        if labels_superset(pod.metadata.labels.as_ref(), template_labels) {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }

    let has_failure = conditions(&status).iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let want = i64::from(spec.and_then(|s| s.replicas).unwrap_or(1));
            let reason = match (pods.len() as i64).cmp(&want) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            status.conditions.get_or_insert_with(Vec::new).push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.to_owned(),
                status: "True".to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message.to_owned()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => {
            if let Some(conds) = status.conditions.as_mut() {
                conds.retain(|c| c.type_ != REPLICA_FAILURE);
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
        }
        _ => {}
    }

    status.replicas = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    // These are `omitempty` upstream; keep zeros out of the object the same way.
    status.fully_labeled_replicas = non_zero(fully_labeled);
    status.ready_replicas = non_zero(ready);
    status.available_replicas = non_zero(available);
    status
}

/// Upstream `SlowStartBatch` batch sizes: 1, 2, 4, ... never more than what is left.
pub fn slow_start_batches(total: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut remaining, mut size) = (total, initial.max(1).min(total));
    while remaining > 0 {
        batches.push(size);
        remaining -= size;
        size = size.saturating_mul(2).min(remaining);
    }
    batches
}

/// The pod upstream `GetPodFromTemplate` builds for a ReplicaSet, minus the server-set fields.
pub fn pod_from_template(rs: &ReplicaSet) -> Option<Pod> {
    let template = rs.spec.as_ref()?.template.as_ref()?;
    let name = rs.metadata.name.as_deref()?;
    let meta = template.metadata.clone().unwrap_or_default();
    // The dash only goes in while the prefix is still a valid (DNS subdomain length) name.
    let generate_name = if name.len() < 253 { format!("{name}-") } else { name.to_owned() };
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: rs.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "ReplicaSet".to_owned(),
                name: name.to_owned(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    })
}

fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

fn conditions(status: &ReplicaSetStatus) -> &[ReplicaSetCondition] {
    status.conditions.as_deref().unwrap_or(&[])
}

fn non_zero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Upstream `updateReplicaSetStatus` skips the write when nothing it tracks moved.
fn status_changed(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    old.replicas != new.replicas
        || n(old.fully_labeled_replicas) != n(new.fully_labeled_replicas)
        || n(old.ready_replicas) != n(new.ready_replicas)
        || n(old.available_replicas) != n(new.available_replicas)
        || rs.metadata.generation.unwrap_or(0) != old.observed_generation.unwrap_or(0)
        || conditions(&old) != conditions(new)
}

/// `labels.SelectorFromSet(template).Matches(pod)`: every template label is on the pod.
fn labels_superset(have: Option<&BTreeMap<String, String>>, want: Option<&BTreeMap<String, String>>) -> bool {
    want.into_iter().flatten().all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// A validated `metav1.LabelSelector` (upstream `LabelSelectorAsSelector`).
struct Selector<'a> {
    sel: &'a LabelSelector,
}

impl<'a> Selector<'a> {
    fn new(sel: &'a LabelSelector) -> Option<Self> {
        for expr in sel.match_expressions.iter().flatten() {
            let n = expr.values.as_ref().map_or(0, Vec::len);
            let ok = match expr.operator.as_str() {
                "In" | "NotIn" => n > 0,
                "Exists" | "DoesNotExist" => n == 0,
                _ => false,
            };
            if !ok {
                return None;
            }
        }
        Some(Self { sel })
    }

    fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        let labels_ok = self.sel.match_labels.iter().flatten().all(|(k, v)| get(k) == Some(v));
        labels_ok
            && self.sel.match_expressions.iter().flatten().all(|e| {
                let value = get(&e.key);
                let listed = || value.is_some_and(|v| e.values.iter().flatten().any(|x| x == v));
                match e.operator.as_str() {
                    "In" => listed(),
                    "NotIn" => !listed(),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
mod tests;

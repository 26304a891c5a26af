//! Node liveness: a node whose agent stops heartbeating turns `Ready=Unknown`; one that
//! comes back turns `Ready=True` again. Only transitions are written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::api::ApiServer;
use crate::api::negotiate::Query;
use crate::api::object;
use crate::api::update::{Part, set_condition};
use crate::nodes::liveness::Liveness;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Unknown,
    Unchanged,
}

/// What the Ready condition should become, given the last heartbeat's age (None: no heartbeat
/// since this control plane started, which is `since_start` ago). Only a heartbeat makes a node
/// Ready; silence longer than `grace` makes a Ready node Unknown.
pub fn judge(ready_status: Option<&str>, since_heartbeat: Option<Duration>, since_start: Duration, grace: Duration) -> Verdict {
    let Some(since_heartbeat) = since_heartbeat else {
        return if ready_status == Some("True") && since_start > grace { Verdict::Unknown } else { Verdict::Unchanged };
    };
    let alive = since_heartbeat <= grace;
    match (ready_status, alive) {
        (Some("True"), true) => Verdict::Unchanged,
        (_, true) => Verdict::Ready,
        (Some("Unknown"), false) => Verdict::Unchanged,
        (_, false) => Verdict::Unknown,
    }
}

pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// The node's taints with the unreachable NoExecute taint added or removed; None if unchanged.
pub fn unreachable_taints(node: &Value, unreachable: bool) -> Option<Value> {
    let taints: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    let has = taints.iter().any(|t| t["key"] == UNREACHABLE_TAINT);
    match (has, unreachable) {
        (false, true) => {
            let mut t = taints;
            t.push(json!({"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": object::now()}));
            Some(json!(t))
        }
        (true, false) => Some(json!(taints.into_iter().filter(|t| t["key"] != UNREACHABLE_TAINT).collect::<Vec<_>>())),
        _ => None,
    }
}

/// How long a pod on an unreachable node may stay there: its own toleration of the taint
/// (none = forever), else the cluster default.
pub fn eviction_delay(pod: &Value, default: Duration) -> Option<Duration> {
    let tolerations = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    let matching = tolerations.iter().find(|t| {
        let key_ok = t["key"] == UNREACHABLE_TAINT || (t["key"].as_str().unwrap_or("").is_empty() && t["operator"] == "Exists");
        let effect_ok = t["effect"].as_str().is_none_or(|e| e.is_empty() || e == "NoExecute");
        key_ok && effect_ok
    });
    match matching {
        None => Some(default),
        Some(t) => t["tolerationSeconds"].as_i64().map(|s| Duration::from_secs(s.max(0) as u64)),
    }
}

fn ready_status(node: &Value) -> Option<&str> {
    node["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?["status"].as_str()
}

pub async fn run(api: Arc<ApiServer>, cache: Arc<crate::informer::Informer<Value>>, liveness: Arc<Liveness>, grace: Duration, eviction: Duration) {
    let Some(nodes) = api.registry.get("", "v1", "nodes") else { return };
    cache.wait_synced().await;
    let Some(pods) = api.registry.get("", "v1", "pods") else { return };
    let started = Instant::now();
    let mut unreachable_since: std::collections::HashMap<String, Instant> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        // From the informer's cache: no store reads or decoding on this frequent tick.
        for node in cache.list() {
            let node: &Value = &node;
            let name = object::name(&node).unwrap_or_default().to_string();
            // Taint and evict while the node stays unreachable.
            let unreachable = ready_status(node) == Some("Unknown");
            if let Some(taints) = unreachable_taints(node, unreachable) {
                let _ = api
                    .update_with(&nodes, None, &name, Part::Main, &Query::default(), |old| {
                        let mut new = old.clone();
                        new["spec"]["taints"] = taints.clone();
                        if taints.as_array().is_some_and(|t| t.is_empty()) {
                            if let Some(spec) = new["spec"].as_object_mut() {
                                spec.remove("taints");
                            }
                        }
                        Ok(new)
                    })
                    .await;
            }
            if unreachable {
                let since = *unreachable_since.entry(name.clone()).or_insert_with(Instant::now);
                evict(&api, &pods, &name, since.elapsed(), eviction).await;
            } else {
                unreachable_since.remove(&name);
            }
            let verdict = judge(ready_status(node), liveness.last(&name).map(|t| t.elapsed()), started.elapsed(), grace);
            if verdict == Verdict::Unchanged {
                continue;
            }
            let (status, reason, message) = match verdict {
                Verdict::Ready => ("True", "KubeletReady", "kubelet is posting ready status"),
                _ => ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
            };
            let result = api
                .update_with(&nodes, None, &name, Part::Status, &Query::default(), |old| {
                    let mut new = old.clone();
                    set_condition(&mut new, "Ready", status, Some(reason), Some(message));
                    for c in new["status"]["conditions"].as_array_mut().into_iter().flatten() {
                        if c["type"] == "Ready" && status == "True" {
                            c["lastHeartbeatTime"] = json!(object::now());
                        }
                    }
                    Ok(new)
                })
                .await;
            match result {
                Ok(_) => info!(node = %name, ready = status, "node readiness changed"),
                Err(e) => warn!(node = %name, error = %e, "updating node readiness failed"),
            }
        }
    }
}

/// Deletes the pods of an unreachable node whose toleration ran out, so their owners replace them.
async fn evict(api: &ApiServer, pods: &crate::registry::Resource, node: &str, unreachable_for: Duration, default: Duration) {
    let q = Query(std::iter::once(("fieldSelector".to_string(), format!("spec.nodeName={node}"))).collect());
    let Ok((items, _)) = api.list_objects(pods, None, &q).await else { return };
    for pod in items.iter().filter(|p| !object::is_deleting(p)) {
        if eviction_delay(pod, default).is_some_and(|d| unreachable_for >= d) {
            let (ns, name) = (object::namespace(pod).unwrap_or("default"), object::name(pod).unwrap_or(""));
            info!(pod = %format!("{ns}/{name}"), node, "evicting a pod from an unreachable node");
            let res = api.registry.get("", "v1", "pods");
            if let Some(res) = res {
                let _ = api.delete(&res, Some(ns), name, &Default::default()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unreachable_taint_follows_readiness() {
        let plain = json!({"spec": {}});
        let tainted = unreachable_taints(&plain, true).unwrap();
        assert_eq!(tainted[0]["key"], UNREACHABLE_TAINT);
        assert_eq!(tainted[0]["effect"], "NoExecute");
        assert!(unreachable_taints(&plain, false).is_none());
        let node = json!({"spec": {"taints": [tainted[0].clone(), {"key": "other", "effect": "NoSchedule"}]}});
        assert!(unreachable_taints(&node, true).is_none());
        assert_eq!(unreachable_taints(&node, false).unwrap(), json!([{"key": "other", "effect": "NoSchedule"}]));
    }

    #[test]
    fn pods_are_evicted_after_their_toleration_or_the_default() {
        let d = Duration::from_secs(5);
        let pod = |tol: Value| json!({"spec": {"tolerations": tol}});
        assert_eq!(eviction_delay(&pod(json!([])), d), Some(d));
        let t = json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]);
        assert_eq!(eviction_delay(&pod(t), d), Some(Duration::from_secs(60)));
        let forever = json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(eviction_delay(&pod(forever), d), None);
        let all = json!([{"operator": "Exists"}]);
        assert_eq!(eviction_delay(&pod(all), d), None);
        let other = json!([{"key": "x", "operator": "Exists"}]);
        assert_eq!(eviction_delay(&pod(other), d), Some(d));
    }

    #[test]
    fn readiness_follows_heartbeats_and_only_transitions_are_written() {
        let g = Duration::from_secs(3);
        let fresh = Duration::from_millis(500);
        let stale = Duration::from_secs(4);
        let cases = [
            (Some("True"), Some(fresh), fresh, Verdict::Unchanged),
            (Some("True"), Some(stale), stale, Verdict::Unknown),
            (Some("Unknown"), Some(stale), stale, Verdict::Unchanged),
            (Some("Unknown"), Some(fresh), stale, Verdict::Ready),
            (Some("False"), Some(fresh), stale, Verdict::Ready),
            (None, Some(stale), stale, Verdict::Unknown),
            // No heartbeat yet: a starting node is not made Ready, a Ready one keeps its grace.
            (Some("False"), None, stale, Verdict::Unchanged),
            (Some("True"), None, fresh, Verdict::Unchanged),
            (Some("True"), None, stale, Verdict::Unknown),
        ];
        for (status, age, since_start, want) in cases {
            assert_eq!(judge(status, age, since_start, g), want, "{status:?} {age:?}");
        }
    }
}

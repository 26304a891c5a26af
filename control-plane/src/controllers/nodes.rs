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

fn ready_status(node: &Value) -> Option<&str> {
    node["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?["status"].as_str()
}

pub async fn run(api: Arc<ApiServer>, liveness: Arc<Liveness>, grace: Duration) {
    let Some(nodes) = api.registry.get("", "v1", "nodes") else { return };
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Ok((items, _)) = api.list_objects(&nodes, None, &Query::default()).await else { continue };
        for node in items {
            let name = object::name(&node).unwrap_or_default().to_string();
            let verdict = judge(ready_status(&node), liveness.last(&name).map(|t| t.elapsed()), started.elapsed(), grace);
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

#[cfg(test)]
mod tests {
    use super::*;

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

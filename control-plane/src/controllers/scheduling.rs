//! The scheduler's loop: keeps a per-node view of what is bound where (including pods it has
//! just placed and is still binding: "assumed"), places each unscheduled pod with the pure
//! filter/score functions in `crate::scheduler`, and binds through the `binding` subresource.
//! A pod that fits nowhere gets `PodScheduled=False/Unschedulable` and a FailedScheduling event,
//! and is tried again once nodes or pods change, after a backoff (1 s doubling to 10 s, as
//! kube-scheduler's backoff queue): without it every change retried every waiting pod, and each
//! retry wrote its event again, so a few hundred unplaceable pods made a write storm.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::api::ApiServer;
use crate::api::negotiate::Query;
use crate::api::update::{Part, set_condition};
use crate::events::{Involved, Recorder};
use crate::informer::{Change, Informer, cache_key};
use crate::scheduler::{NodeInfo, schedule_one};

fn key(p: &Pod) -> String {
    cache_key(p.metadata.namespace.as_deref(), p.metadata.name.as_deref().unwrap_or(""))
}

fn wants_scheduling(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref()).unwrap_or("").is_empty()
        && p.metadata.deletion_timestamp.is_none()
        && spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|n| n == "default-scheduler")
        && !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

fn counts(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty())
        && !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// kube-scheduler's podInitialBackoffSeconds and podMaxBackoffSeconds.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A waiting pod is tried again after this long even if nothing it could depend on changed
/// (kube-scheduler's podMaxInUnschedulablePodsDuration is 5 minutes).
const MAX_WAIT_UNWOKEN: Duration = Duration::from_secs(60);

/// How long a pod that has failed `attempts` times in a row waits before its next try.
fn backoff(attempts: u32) -> Duration {
    INITIAL_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(8)).min(MAX_BACKOFF)
}

/// A pod that fit nowhere at its last try.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    attempts: u32,
    failed_at: Instant,
    /// Something changed since it failed (a node, or a pod that freed room).
    woken: bool,
}

impl Waiting {
    fn due(&self, now: Instant) -> bool {
        let waited = now.saturating_duration_since(self.failed_at);
        waited >= backoff(self.attempts) && (self.woken || waited >= MAX_WAIT_UNWOKEN)
    }
}

struct State {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods counted on a node (bound or assumed): uid -> (node, pod as counted).
    placed: HashMap<String, (String, Arc<Pod>)>,
    pending: BTreeSet<String>,
    unschedulable: HashMap<String, Waiting>,
    /// Failures in a row of pods not yet bound (kept while a pod is pending again).
    attempts: HashMap<String, u32>,
    start: usize,
}

impl State {
    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let i = *self.index.get(name)?;
        self.nodes.get_mut(i)
    }

    fn forget(&mut self, uid: &str) {
        if let Some((node, pod)) = self.placed.remove(uid) {
            if let Some(n) = self.node_mut(&node) {
                n.remove_pod(&pod);
            }
        }
    }

    fn count(&mut self, pod: Arc<Pod>, node: &str) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.forget(&uid);
        if let Some(n) = self.node_mut(node) {
            n.add_pod(&pod);
        }
        self.placed.insert(uid, (node.to_string(), pod));
    }

    fn upsert_node(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.index.get(&name) {
            Some(i) => self.nodes[*i].set_node(node.clone()),
            None => {
                self.index.insert(name, self.nodes.len());
                self.nodes.push(NodeInfo::new(node.clone()));
            }
        }
    }

    fn remove_node(&mut self, name: &str) {
        if let Some(i) = self.index.remove(name) {
            self.nodes.remove(i);
            self.index = self.nodes.iter().enumerate().map(|(i, n)| (n.node.metadata.name.clone().unwrap_or_default(), i)).collect();
        }
    }

    fn observe_pod(&mut self, pod: Arc<Pod>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if counts(&pod) {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            self.count(pod.clone(), &node);
        } else {
            self.forget(&uid);
        }
        let k = key(&pod);
        if wants_scheduling(&pod) {
            if !self.unschedulable.contains_key(&k) {
                self.pending.insert(k);
            }
        } else {
            self.drop_pod(&k);
        }
    }

    fn drop_pod(&mut self, k: &str) {
        self.pending.remove(k);
        self.unschedulable.remove(k);
        self.attempts.remove(k);
    }

    fn failed(&mut self, k: String, now: Instant) {
        let attempts = self.attempts.entry(k.clone()).or_default();
        *attempts += 1;
        self.unschedulable.insert(k, Waiting { attempts: *attempts, failed_at: now, woken: false });
    }

    fn wake(&mut self, k: &str) {
        if let Some(w) = self.unschedulable.get_mut(k) {
            w.woken = true;
        }
    }

    /// Something changed that may make waiting pods fit.
    fn wake_unschedulable(&mut self) {
        for w in self.unschedulable.values_mut() {
            w.woken = true;
        }
    }

    /// Moves the waiting pods whose time has come back to the queue.
    fn retry_due(&mut self, now: Instant) {
        let due: Vec<String> = self.unschedulable.iter().filter(|(_, w)| w.due(now)).map(|(k, _)| k.clone()).collect();
        for k in due {
            self.unschedulable.remove(&k);
            self.pending.insert(k);
        }
    }
}

enum Outcome {
    Bound,
    Failed(String),
}

pub async fn run(api: Arc<ApiServer>, pods: Arc<Informer<Pod>>, nodes: Arc<Informer<Node>>, recorder: Arc<Recorder>) {
    let mut pod_changes = pods.subscribe();
    let mut node_changes = nodes.subscribe();
    pods.wait_synced().await;
    nodes.wait_synced().await;
    let mut st = State {
        nodes: vec![],
        index: HashMap::new(),
        placed: HashMap::new(),
        pending: BTreeSet::new(),
        unschedulable: HashMap::new(),
        attempts: HashMap::new(),
        start: 0,
    };
    for n in nodes.list() {
        st.upsert_node(&n);
    }
    for p in pods.list() {
        st.observe_pod(p);
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String, Outcome)>();
    let Some(pod_res) = api.registry.get("", "v1", "pods") else { return };
    // Backoffs end on this tick; a wake-up alone never retries a pod early.
    let mut retry = tokio::time::interval(Duration::from_millis(250));
    loop {
        // Place everything pending before waiting for more changes.
        while let Some(k) = st.pending.pop_first() {
            let Some((ns, name)) = k.split_once('/') else { continue };
            let Some(pod) = pods.get(Some(ns), name).filter(|p| wants_scheduling(p)) else {
                st.attempts.remove(&k);
                continue;
            };
            match schedule_one(&pod, &st.nodes, st.start) {
                Ok(placement) => {
                    st.start = placement.next_start;
                    let node = st.nodes[placement.node].node.metadata.name.clone().unwrap_or_default();
                    // Assume it is there until the informer confirms (or the bind fails).
                    st.count(pod.clone(), &node);
                    let (api, res, tx, recorder) = (api.clone(), pod_res.clone(), done_tx.clone(), recorder.clone());
                    let (ns, name) = (ns.to_string(), name.to_string());
                    tokio::spawn(async move {
                        let body = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": node}});
                        let outcome = match api.bind(&res, Some(&ns), &name, &body).await {
                            Ok(_) => {
                                let who = Involved { api_version: "v1".into(), kind: "Pod".into(), namespace: ns.clone(), name: name.clone(), uid: pod.metadata.uid.clone().unwrap_or_default() };
                                recorder.emit(who, "Normal", "Scheduled", format!("Successfully assigned {ns}/{name} to {node}"));
                                Outcome::Bound
                            }
                            Err(e) => Outcome::Failed(e.message),
                        };
                        let _ = tx.send((format!("{ns}/{name}"), pod.metadata.uid.clone().unwrap_or_default(), outcome));
                    });
                }
                Err(message) => {
                    debug!(pod = %k, message, "unschedulable");
                    st.failed(k.clone(), Instant::now());
                    let (api, res, recorder) = (api.clone(), pod_res.clone(), recorder.clone());
                    let (ns, name) = (ns.to_string(), name.to_string());
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    tokio::spawn(async move {
                        let msg = message.clone();
                        let updated = api
                            .update_with(&res, Some(&ns), &name, Part::Status, &Query::default(), |old| {
                                let mut new = old.clone();
                                set_condition(&mut new, "PodScheduled", "False", Some("Unschedulable"), Some(&msg));
                                Ok(new)
                            })
                            .await;
                        if updated.is_ok() {
                            let who = Involved { api_version: "v1".into(), kind: "Pod".into(), namespace: ns, name, uid };
                            recorder.emit(who, "Warning", "FailedScheduling", message);
                        }
                    });
                }
            }
        }
        tokio::select! {
            change = pod_changes.recv() => match change {
                Ok(Change::Upsert { old, new }) => {
                    let freed = !counts(&new) && st.placed.contains_key(new.metadata.uid.as_deref().unwrap_or(""));
                    // A waiting pod whose own spec changed (tolerations, requests) may fit now.
                    let respecified = old.is_some_and(|o| o.spec != new.spec);
                    let k = key(&new);
                    st.observe_pod(new);
                    if freed {
                        st.wake_unschedulable();
                    } else if respecified {
                        st.wake(&k);
                    }
                }
                Ok(Change::Delete(p)) => {
                    // Only a pod that held room on a node can make room for others.
                    let held_room = st.placed.contains_key(p.metadata.uid.as_deref().unwrap_or(""));
                    st.forget(p.metadata.uid.as_deref().unwrap_or(""));
                    st.drop_pod(&key(&p));
                    if held_room { st.wake_unschedulable(); }
                }
                Ok(Change::Resync) | Err(_) => {
                    st.placed.clear();
                    for n in st.nodes.iter_mut() { let node = n.node.clone(); *n = NodeInfo::new(node); }
                    let listed = pods.list();
                    let present: std::collections::HashSet<String> = listed.iter().map(|p| key(p)).collect();
                    st.attempts.retain(|k, _| present.contains(k));
                    st.unschedulable.retain(|k, _| present.contains(k));
                    for p in listed { st.observe_pod(p); }
                    st.wake_unschedulable();
                }
            },
            change = node_changes.recv() => {
                // A node added or changed may take waiting pods; one removed cannot.
                match change {
                    Ok(Change::Upsert { new, .. }) => { st.upsert_node(&new); st.wake_unschedulable(); }
                    Ok(Change::Delete(n)) => st.remove_node(n.metadata.name.as_deref().unwrap_or("")),
                    _ => { for n in nodes.list() { st.upsert_node(&n); } st.wake_unschedulable(); }
                }
            }
            Some((k, uid, outcome)) = done_rx.recv() => {
                if let Outcome::Failed(message) = outcome {
                    info!(pod = %k, message, "binding failed; will retry after a backoff");
                    st.forget(&uid);
                    st.failed(k, Instant::now());
                    // The room it was assumed to take is free again.
                    st.wake_unschedulable();
                }
            }
            _ = retry.tick() => st.retry_due(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unschedulable_pods_back_off_from_one_second_doubling_to_ten() {
        let secs: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_waiting_pod_is_tried_again_once_its_backoff_is_over_and_something_changed_or_a_minute_passed() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (attempts, woken, waited, due)
        let cases = [
            (1, true, s(0), false),
            (1, true, s(1), true),
            (1, false, s(1), false),
            (3, true, s(3), false),
            (3, true, s(4), true),
            (9, true, s(9), false),
            (9, true, s(10), true),
            (1, false, s(59), false),
            (1, false, s(60), true),
        ];
        for (attempts, woken, waited, want) in cases {
            let w = Waiting { attempts, failed_at: t0, woken };
            assert_eq!(w.due(t0 + waited), want, "attempts {attempts}, woken {woken}, waited {waited:?}");
        }
    }
}

//! The scheduler's loop: keeps a per-node view of what is bound where (including pods it has
//! just placed and is still binding: "assumed"), places each unscheduled pod with the pure
//! filter/score functions in `crate::scheduler`, and binds through the `binding` subresource.
//! A pod that fits nowhere gets `PodScheduled=False/Unschedulable` and a FailedScheduling event,
//! and is tried again whenever nodes or pods change.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

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

struct State {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods counted on a node (bound or assumed): uid -> (node, pod as counted).
    placed: HashMap<String, (String, Arc<Pod>)>,
    pending: BTreeSet<String>,
    unschedulable: BTreeSet<String>,
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
            if !self.unschedulable.contains(&k) {
                self.pending.insert(k);
            }
        } else {
            self.pending.remove(&k);
            self.unschedulable.remove(&k);
        }
    }

    /// Something changed that may make waiting pods fit: try them again.
    fn retry_unschedulable(&mut self) {
        let waiting = std::mem::take(&mut self.unschedulable);
        self.pending.extend(waiting);
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
    let mut st = State { nodes: vec![], index: HashMap::new(), placed: HashMap::new(), pending: BTreeSet::new(), unschedulable: BTreeSet::new(), start: 0 };
    for n in nodes.list() {
        st.upsert_node(&n);
    }
    for p in pods.list() {
        st.observe_pod(p);
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String, Outcome)>();
    let Some(pod_res) = api.registry.get("", "v1", "pods") else { return };
    let mut retry = tokio::time::interval(Duration::from_secs(5));
    loop {
        // Place everything pending before waiting for more changes.
        while let Some(k) = st.pending.pop_first() {
            let Some((ns, name)) = k.split_once('/') else { continue };
            let Some(pod) = pods.get(Some(ns), name) else { continue };
            if !wants_scheduling(&pod) {
                continue;
            }
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
                    st.unschedulable.insert(k.clone());
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
                Ok(Change::Upsert { new, .. }) => {
                    let freed = !counts(&new) && st.placed.contains_key(new.metadata.uid.as_deref().unwrap_or(""));
                    st.observe_pod(new);
                    if freed { st.retry_unschedulable(); }
                }
                Ok(Change::Delete(p)) => {
                    st.forget(p.metadata.uid.as_deref().unwrap_or(""));
                    st.pending.remove(&key(&p));
                    st.unschedulable.remove(&key(&p));
                    st.retry_unschedulable();
                }
                Ok(Change::Resync) | Err(_) => {
                    st.placed.clear();
                    for n in st.nodes.iter_mut() { let node = n.node.clone(); *n = NodeInfo::new(node); }
                    for p in pods.list() { st.observe_pod(p); }
                    st.retry_unschedulable();
                }
            },
            change = node_changes.recv() => {
                match change {
                    Ok(Change::Upsert { new, .. }) => st.upsert_node(&new),
                    Ok(Change::Delete(n)) => st.remove_node(n.metadata.name.as_deref().unwrap_or("")),
                    _ => { for n in nodes.list() { st.upsert_node(&n); } }
                }
                st.retry_unschedulable();
            }
            Some((k, uid, outcome)) = done_rx.recv() => {
                if let Outcome::Failed(message) = outcome {
                    info!(pod = %k, message, "binding failed; will retry");
                    st.forget(&uid);
                    st.pending.insert(k);
                }
            }
            _ = retry.tick() => st.retry_unschedulable(),
        }
    }
}

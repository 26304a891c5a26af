//! The pod manager: runs the pods the control plane binds to this node as real containers,
//! one worker task per pod, and reports their status back.
//!
//! A pod's spec, sandbox namespaces and container state live under `DATA/run/pods/<uid>/` (a
//! tmpfs, see `run_dir`), its logs, volumes and writable layers under `DATA/pods/<uid>/`; a
//! restarted agent adopts running pods from there instead of killing them. Pods of an agent from
//! before that split keep everything in `DATA/pods/<uid>/` and are adopted from there.

pub mod backoff;
pub mod logs;
pub mod network;
pub mod probes;
pub mod rtnl;
pub mod run_dir;
pub mod service_env;
pub mod spec;
pub mod status;
pub mod warm;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::cgroups::CgroupManager;
use crate::images::ImageStore;

/// What every pod worker on this node shares.
pub struct NodeContext {
    pub node_name: String,
    pub node_ip: String,
    pub data_dir: PathBuf,
    /// The tmpfs for volatile state (see `run_dir`).
    pub run_dir: PathBuf,
    /// The mount namespace containers are cloned from; `None` where it could not be made (the
    /// state is not on a tmpfs of its own): containers then copy the agent's.
    pub mount_template: Option<Arc<crate::runtime::MountTemplate>>,
    /// This agent's group under the cgroup root (see `node_cgroup`).
    pub cgroup_parent: String,
    pub images: ImageStore,
    pub cgroups: Box<dyn CgroupManager>,
    pub network: Arc<network::PodNetwork>,
    /// Sandboxes made ahead of time for the next pods.
    pub warm: warm::WarmPool,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub reports: mpsc::Sender<Report>,
    /// Pod addresses this node's Service rules send traffic to (see `crate::routing`).
    pub targeted: watch::Receiver<Arc<HashSet<std::net::Ipv4Addr>>>,
    /// The Services containers get environment variables for.
    pub services: service_env::ServiceView,
    /// Registries that recently could not be reached, and since when: pulls of images held
    /// locally skip them for a while instead of waiting on the network at every start.
    pub unreachable: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

impl NodeContext {
    /// Where pods' specs, sandboxes and container state are.
    pub fn pods_dir(&self) -> PathBuf {
        self.run_dir.join("pods")
    }
    /// Where a pod's logs, volumes and writable layers are (and, for a pod an agent from before
    /// the tmpfs made, everything).
    pub fn disk_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("pods").join(uid)
    }
    /// Cgroup path of a pod (and, with a container name, of one of its containers).
    pub fn cgroup_path(&self, uid: &str, container: Option<&str>) -> String {
        let pod = format!("{}/pod{uid}", self.cgroup_parent);
        match container {
            Some(c) => format!("{pod}/{c}"),
            None => pod,
        }
    }
}

/// A status report for the control plane.
#[derive(Debug, Clone)]
pub struct Report {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub status: Value,
    /// Deletion finished: every process of the pod is gone.
    pub terminated: bool,
    /// Events since the last report, oldest first.
    pub events: Vec<Event>,
}

/// Something that happened to a pod, for `kubectl describe` (the kubelet's events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The cgroup group that holds a node agent's pods: `tinykube/NODE-HASH`, HASH naming the agent's
/// data directory. Node names repeat across clusters on one machine (every `up` has a `node-1`),
/// and an agent that stops removes its whole group: named by node alone, one cluster stopping
/// killed another's pods.
pub fn node_cgroup(data_dir: &std::path::Path, node_name: &str) -> String {
    use sha2::Digest;
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
    format!("tinykube/{node_name}-{}", crate::images::hex(&digest[..4]))
}

/// Removes every pod this node runs (containers, mounts, cgroups, addresses): for tearing a node
/// down for good, never on an ordinary agent restart.
pub fn cleanup_node(data_dir: &std::path::Path, node_name: &str) -> Result<(), String> {
    let run = run_dir::path(data_dir);
    // Pods of this agent, then any an agent from before the tmpfs left on disk.
    for pods in [run.join("pods"), data_dir.join("pods")] {
        for entry in std::fs::read_dir(pods).into_iter().flatten().flatten() {
            worker::remove_pod_dir(&entry.path());
        }
    }
    // Their links go with their namespaces; their address claims with the ipam directory below.
    for dir in [&run, data_dir] {
        warm::destroy_all(&dir.join("warm"), None);
    }
    network::PodNetwork::remove_stale_netns_links(data_dir);
    let cgroups = crate::cgroups::detect("tinykube").map_err(|e| e.to_string())?;
    if let Ok(Some(g)) = cgroups.open(&node_cgroup(data_dir, node_name)) {
        g.kill_all().map_err(|e| e.to_string())?;
        g.remove().map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_dir_all(data_dir.join("ipam"));
    let _ = std::fs::remove_dir_all(data_dir.join("pods"));
    run_dir::remove(data_dir);
    Ok(())
}

pub fn uid_of(pod: &Value) -> Option<&str> {
    pod["metadata"]["uid"].as_str().filter(|s| !s.is_empty())
}

pub struct PodManager {
    ctx: Arc<NodeContext>,
    /// Desired spec per pod uid; `None` tells the worker its pod is gone from the API.
    workers: HashMap<String, watch::Sender<Option<Arc<Value>>>>,
}

impl PodManager {
    /// Starts workers for the pods an earlier agent left (adoption after an agent restart).
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        let mut m = PodManager { ctx, workers: HashMap::new() };
        let dir = m.ctx.pods_dir();
        let _ = std::fs::create_dir_all(&dir);
        let on_disk = m.ctx.data_dir.join("pods");
        let mut found = HashSet::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().chain(std::fs::read_dir(&on_disk).into_iter().flatten()).flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            let spec = entry.path().join("pod.json");
            match std::fs::read(&spec).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
                Some(pod) if found.insert(uid.clone()) => {
                    info!(pod = %worker::pod_key(&pod), "adopting pod found on the node");
                    m.upsert(pod);
                }
                Some(_) => {}
                // The disk half of a pod whose state is on the tmpfs: adopted with it, or (the
                // machine restarted, the tmpfs is new) left from a pod that is gone.
                None if entry.path().starts_with(&on_disk) => {
                    if !dir.join(&uid).exists() {
                        worker::cleanup_leftovers(&m.ctx, &uid);
                    }
                }
                None => {
                    // A pod directory without its spec: half-created before a crash; remove it.
                    worker::cleanup_leftovers(&m.ctx, &uid);
                }
            }
        }
        m
    }

    pub fn upsert(&mut self, pod: Value) {
        let Some(uid) = uid_of(&pod).map(String::from) else { return };
        let pod = Arc::new(pod);
        if let Some(tx) = self.workers.get(&uid) {
            if tx.send(Some(pod.clone())).is_ok() {
                return;
            }
        }
        tracing::debug!(pod = %worker::pod_key(&pod), uid, "new pod: starting its worker");
        let (tx, rx) = watch::channel(Some(pod));
        let ctx = self.ctx.clone();
        tokio::spawn(worker::run(ctx, uid.clone(), rx));
        self.workers.insert(uid, tx);
    }

    pub fn delete(&mut self, pod: &Value) {
        if let Some(uid) = uid_of(pod) {
            if let Some(tx) = self.workers.remove(uid) {
                let _ = tx.send(None);
            }
        }
    }

    /// After the control plane's full list: pods this node runs that were not listed are gone.
    pub fn synced(&mut self, listed: &HashSet<String>) {
        let stale: Vec<String> = self.workers.keys().filter(|u| !listed.contains(*u)).cloned().collect();
        for uid in stale {
            warn!(uid, "pod no longer bound to this node; stopping it");
            if let Some(tx) = self.workers.remove(&uid) {
                let _ = tx.send(None);
            }
        }
        // Drop senders of workers that already finished.
        self.workers.retain(|_, tx| !tx.is_closed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cgroups_differ_between_data_dirs_and_not_between_spellings_of_one() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let name = node_cgroup(a.path(), "node-1");
        assert!(name.starts_with("tinykube/node-1-") && name.len() == "tinykube/node-1-".len() + 8, "{name}");
        assert_ne!(name, node_cgroup(b.path(), "node-1"), "two clusters' node-1 must not share a group");
        assert_eq!(name, node_cgroup(&a.path().join("."), "node-1"));
        assert_ne!(name, node_cgroup(a.path(), "node-2"));
    }
}

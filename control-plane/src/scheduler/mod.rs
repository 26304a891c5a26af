//! Scheduler plugins (`pkg/scheduler/framework/plugins`) as pure functions over node snapshots.
//!
//! [`filter`] and [`score`] take a raw pod for convenience; a scheduling loop should build one
//! [`PreparedPod`] per pod and call its methods for each node, which neither parses nor allocates
//! unless the node is rejected. [`schedule_one`] is that loop, with upstream's adaptive sampling.

mod filters;
mod resources;
mod scores;

use std::collections::HashMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};

pub use filters::{TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, tolerates};
pub use resources::{
    DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, Resources, parse_quantity_bytes, parse_quantity_millis, pod_requests,
    pod_requests_non_zero,
};
pub use scores::{MAX_NODE_SCORE, least_allocated, spread};

/// What the scheduler knows about one node. Keep it current with [`NodeInfo::add_pod`] /
/// [`NodeInfo::remove_pod`] for every pod bound to (or assumed on) the node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Node,
    /// `status.allocatable`, parsed once.
    pub allocatable: Resources,
    /// Sum of [`pod_requests`] of the node's pods.
    pub requested: Resources,
    /// Sum of [`pod_requests_non_zero`], which scoring uses.
    pub non_zero_requested: Resources,
    pub pod_count: usize,
    /// Controller owner UID -> number of its pods on the node.
    pub pods_by_owner: HashMap<String, usize>,
    /// The node's facts the filters read for every pod, taken out of `node` when it is set:
    /// reading them there costs a chain of cache misses per node (conditions and their types
    /// are separate allocations), which dominated scheduling 1,000 nodes.
    pub(crate) facts: NodeFacts,
}

/// See `NodeInfo::facts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeFacts {
    /// The `Ready` condition: `Some(true)` True, `None` Unknown, `Some(false)` anything else.
    pub ready: Option<bool>,
    /// `spec.unschedulable` (cordoned).
    pub cordoned: bool,
}

impl NodeFacts {
    fn of(node: &Node) -> Self {
        let ready = node.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        NodeFacts {
            ready: match ready.map(|c| c.status.as_str()) {
                Some("True") => Some(true),
                Some("Unknown") => None,
                _ => Some(false),
            },
            cordoned: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        }
    }
}

impl NodeInfo {
    pub fn new(node: Node) -> Self {
        let allocatable = allocatable_of(&node);
        Self {
            facts: NodeFacts::of(&node),
            node,
            allocatable,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pod_count: 0,
            pods_by_owner: HashMap::new(),
        }
    }

    /// Replaces the node object (labels, taints, allocatable may have changed), keeping its pods.
    pub fn set_node(&mut self, node: Node) {
        self.allocatable = allocatable_of(&node);
        self.facts = NodeFacts::of(&node);
        self.node = node;
    }

    pub fn add_pod(&mut self, pod: &Pod) {
        self.requested = self.requested.plus(&pod_requests(pod));
        self.non_zero_requested = self.non_zero_requested.plus(&pod_requests_non_zero(pod));
        self.pod_count += 1;
        if let Some(owner) = controller_uid(pod) {
            *self.pods_by_owner.entry(owner.to_owned()).or_default() += 1;
        }
    }

    pub fn remove_pod(&mut self, pod: &Pod) {
        self.requested = self.requested.minus(&pod_requests(pod));
        self.non_zero_requested = self.non_zero_requested.minus(&pod_requests_non_zero(pod));
        self.pod_count = self.pod_count.saturating_sub(1);
        if let Some(owner) = controller_uid(pod)
            && let Some(n) = self.pods_by_owner.get_mut(owner)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pods_by_owner.remove(owner);
            }
        }
    }
}

fn allocatable_of(node: &Node) -> Resources {
    Resources::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    let refs = pod.metadata.owner_references.as_ref()?;
    refs.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

/// Why a node was filtered out. Each maps to upstream's reason text (see [`Unfit::reasons`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    NodeNotReady,
    Unschedulable,
    /// `"Too many pods"`, `"Insufficient cpu"`, `"Insufficient memory"`,
    /// `"Insufficient ephemeral-storage"`: every shortfall at once, as upstream reports them.
    Resources(Vec<String>),
    NodeSelector,
    NodeAffinity,
    /// The first untolerated NoSchedule/NoExecute taint, as upstream prints it: `{key: value}`.
    Taint(String),
    NodeName,
    /// No pod slot left (and no other resource short).
    TooManyPods,
}

const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";

impl Unfit {
    /// Upstream's status reasons; the FitError histogram counts each separately.
    pub fn reasons(&self) -> Vec<String> {
        let one = |s: &str| vec![s.to_owned()];
        match self {
            Unfit::NodeNotReady => one(&format!("node(s) had untolerated taint {{{TAINT_NOT_READY}: }}")),
            Unfit::Unschedulable => one("node(s) were unschedulable"),
            Unfit::Resources(r) => r.clone(),
            Unfit::NodeSelector | Unfit::NodeAffinity => one(REASON_AFFINITY),
            Unfit::Taint(t) => one(&format!("node(s) had untolerated taint {t}")),
            Unfit::NodeName => one("node(s) didn't match the requested node name"),
            Unfit::TooManyPods => one("Too many pods"),
        }
    }
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reasons().join(", "))
    }
}

/// A pod with everything the plugins need parsed once, to run against many nodes.
pub struct PreparedPod<'a> {
    requests: Resources,
    non_zero_requests: Resources,
    owner_uid: Option<&'a str>,
    node_name: Option<&'a str>,
    tolerations: &'a [Toleration],
    affinity: filters::RequiredAffinity<'a>,
}

impl<'a> PreparedPod<'a> {
    pub fn new(pod: &'a Pod) -> Self {
        let spec = pod.spec.as_ref();
        Self {
            requests: pod_requests(pod),
            non_zero_requests: pod_requests_non_zero(pod),
            owner_uid: controller_uid(pod),
            node_name: spec.and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()),
            tolerations: spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]),
            affinity: filters::RequiredAffinity::new(pod),
        }
    }

    pub fn filter(&self, node: &NodeInfo) -> Result<(), Unfit> {
        filters::run(self, node)
    }

    pub fn score(&self, node: &NodeInfo) -> i64 {
        scores::run(self, node)
    }
}

/// Whether `pod` may run on `node`: the first failing filter, in upstream plugin order.
pub fn filter(pod: &Pod, node: &NodeInfo) -> Result<(), Unfit> {
    PreparedPod::new(pod).filter(node)
}

/// 0..=100, higher is better: LeastAllocated and, for pods with a controller, spreading of the
/// controller's pods, weighted 1:2 like upstream's NodeResourcesFit and PodTopologySpread.
pub fn score(pod: &Pod, node: &NodeInfo) -> i64 {
    PreparedPod::new(pod).score(node)
}

/// Upstream `FitError.Error()`: `"0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't
/// match Pod's node affinity/selector."`, the "count reason" entries sorted as strings.
pub fn failure_message(total_nodes: usize, reasons: &[Unfit]) -> String {
    let mut histogram: HashMap<String, usize> = HashMap::new();
    for reason in reasons.iter().flat_map(Unfit::reasons) {
        *histogram.entry(reason).or_default() += 1;
    }
    let mut entries: Vec<String> = histogram.into_iter().map(|(reason, n)| format!("{n} {reason}")).collect();
    entries.sort();
    let mut msg = format!("0/{total_nodes} nodes are available:");
    if !entries.is_empty() {
        msg.push(' ');
        msg.push_str(&entries.join(", "));
        msg.push('.');
    }
    msg
}

/// Upstream `numFeasibleNodesToFind` with the adaptive default percentage: all nodes below 100,
/// then 50% minus 1% per 125 nodes (at least 5%), never fewer than 100.
pub fn num_feasible_nodes_to_find(total_nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if total_nodes < MIN_FEASIBLE {
        return total_nodes;
    }
    let percentage = 50usize.saturating_sub(total_nodes / 125).max(5);
    (total_nodes * percentage / 100).max(MIN_FEASIBLE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Index into the `nodes` slice.
    pub node: usize,
    pub score: i64,
    /// Where the next pod's search should start, so successive pods look at different nodes.
    pub next_start: usize,
}

/// One scheduling cycle: filter nodes from `start` (wrapping) until enough feasible ones are
/// found, then take the best score (the first one on ties; upstream picks randomly among them).
/// The error is the FitError message for the pod's events and `PodScheduled` condition.
pub fn schedule_one(pod: &Pod, nodes: &[NodeInfo], start: usize) -> Result<Placement, String> {
    if nodes.is_empty() {
        return Err("no nodes available to schedule pods".to_owned());
    }
    let start = start % nodes.len();
    let p = PreparedPod::new(pod);
    let want = num_feasible_nodes_to_find(nodes.len());
    let (mut best, mut found, mut visited) = (None::<(usize, i64)>, 0, 0);
    for k in 0..nodes.len() {
        let i = (start + k) % nodes.len();
        visited = k + 1;
        if p.filter(&nodes[i]).is_err() {
            continue;
        }
        let s = p.score(&nodes[i]);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
        found += 1;
        if found >= want {
            break;
        }
    }
    match best {
        Some((node, score)) => Ok(Placement { node, score, next_start: (start + visited) % nodes.len() }),
        // Only the failure path collects reasons, so the common case stays allocation-free.
        None => {
            let reasons: Vec<Unfit> = nodes.iter().filter_map(|n| p.filter(n).err()).collect();
            Err(failure_message(nodes.len(), &reasons))
        }
    }
}

#[cfg(test)]
mod tests;

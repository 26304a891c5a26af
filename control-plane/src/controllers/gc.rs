//! Garbage collector (`pkg/controller/garbagecollector`) as a decision over an in-memory graph.
//!
//! The graph must hold every object of the kinds served, so an owner UID missing from it means the
//! owner is gone. [`decide`] mirrors one pass of upstream's `attemptToDeleteItem` over every node
//! plus `attemptToOrphan` for owners deleted with `propagationPolicy: Orphan`. Actions are
//! idempotent; run it again after the caller's informers have caught up.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
pub const FINALIZER_ORPHAN: &str = "orphan";

pub const BACKGROUND: &str = "Background";
pub const FOREGROUND: &str = "Foreground";
pub const ORPHAN: &str = "Orphan";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjRef {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub obj: ObjRef,
    pub owners: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcAction {
    /// Delete with this propagation policy (`Background`, `Foreground` or `Orphan`); send the UID
    /// as a precondition so a recreated namesake is not hit.
    Delete { obj: ObjRef, propagation: &'static str },
    /// Drop the owner references with these UIDs (upstream patches them out by UID).
    RemoveOwnerRefs { obj: ObjRef, owner_uids: Vec<String> },
    RemoveFinalizer { obj: ObjRef, finalizer: &'static str },
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Upstream `isDeletingDependents`: deleted in the foreground, waiting on its dependents.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_FOREGROUND)
    }
}

/// How an owner reference of a node resolves against the graph.
enum Owner<'g> {
    /// Present, and a valid owner for this dependent.
    Found(&'g Node),
    /// No such UID, or a namespaced owner in another namespace (such references never resolve).
    Absent,
    /// A cluster-scoped dependent pointing at a namespaced owner: upstream leaves it alone.
    Invalid,
}

struct Graph<'g> {
    by_uid: HashMap<&'g str, &'g Node>,
    /// owner UID -> (dependent, its reference to that owner)
    dependents: HashMap<&'g str, Vec<(&'g Node, &'g OwnerReference)>>,
}

impl<'g> Graph<'g> {
    fn new(nodes: &'g [Node]) -> Self {
        let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.obj.uid.as_str(), n)).collect();
        let mut graph = Self { by_uid, dependents: HashMap::new() };
        for node in nodes {
            for r in &node.owners {
                if let Owner::Found(owner) = graph.resolve(node, r) {
                    graph.dependents.entry(owner.obj.uid.as_str()).or_default().push((node, r));
                }
            }
        }
        graph
    }

    fn resolve(&self, dependent: &Node, r: &OwnerReference) -> Owner<'g> {
        let Some(&owner) = self.by_uid.get(r.uid.as_str()) else {
            return Owner::Absent;
        };
        match (&owner.obj.namespace, &dependent.obj.namespace) {
            (Some(_), None) => Owner::Invalid,
            (Some(o), Some(d)) if o != d => Owner::Absent,
            _ => Owner::Found(owner),
        }
    }

    fn dependents_of(&self, owner: &Node) -> &[(&'g Node, &'g OwnerReference)] {
        self.dependents.get(owner.obj.uid.as_str()).map_or(&[], Vec::as_slice)
    }
}

/// Every action the collector would take on this graph right now.
pub fn decide(graph: &[Node]) -> Vec<GcAction> {
    let g = Graph::new(graph);
    let mut actions = Vec::new();
    for node in graph {
        if node.deleting && node.has_finalizer(FINALIZER_ORPHAN) {
            orphan_dependents(&g, node, &mut actions);
        }
        attempt_to_delete(&g, node, &mut actions);
    }
    actions
}

/// Upstream `attemptToOrphanWorker`: strip this owner from every dependent, then let it go.
fn orphan_dependents(g: &Graph, owner: &Node, actions: &mut Vec<GcAction>) {
    for (dep, _) in g.dependents_of(owner) {
        actions.push(GcAction::RemoveOwnerRefs { obj: dep.obj.clone(), owner_uids: vec![owner.obj.uid.clone()] });
    }
    actions.push(GcAction::RemoveFinalizer { obj: owner.obj.clone(), finalizer: FINALIZER_ORPHAN });
}

/// Upstream `attemptToDeleteItem`.
fn attempt_to_delete(g: &Graph, item: &Node, actions: &mut Vec<GcAction>) {
    if item.deleting_dependents() {
        // processDeletingDependentsItem: the finalizer goes once nothing blocks it any more; the
        // blocking dependents themselves are handled by their own pass (their owner is "waiting").
        let blocked = g.dependents_of(item).iter().any(|(_, r)| r.block_owner_deletion == Some(true));
        if !blocked {
            actions.push(GcAction::RemoveFinalizer { obj: item.obj.clone(), finalizer: FINALIZER_FOREGROUND });
        }
        return;
    }
    if item.deleting || item.owners.is_empty() {
        return;
    }

    let (mut solid, mut dangling, mut waiting) = (0usize, Vec::new(), Vec::new());
    for r in &item.owners {
        match g.resolve(item, r) {
            Owner::Invalid => return,
            Owner::Absent => dangling.push(r.uid.clone()),
            Owner::Found(owner) if owner.deleting_dependents() => waiting.push(r.uid.clone()),
            Owner::Found(_) => solid += 1,
        }
    }

    if solid > 0 {
        // Keep the item for its live owners; references that can only block or dangle go.
        if !dangling.is_empty() || !waiting.is_empty() {
            dangling.extend(waiting);
            actions.push(GcAction::RemoveOwnerRefs { obj: item.obj.clone(), owner_uids: dangling });
        }
        return;
    }
    let propagation = if !waiting.is_empty() && !g.dependents_of(item).is_empty() {
        // An owner waits on us and we have dependents of our own: cascade in the foreground so
        // we stay around (and keep blocking the owner) until they are gone.
        FOREGROUND
    } else if item.has_finalizer(FINALIZER_ORPHAN) {
        ORPHAN
    } else if item.has_finalizer(FINALIZER_FOREGROUND) {
        FOREGROUND
    } else {
        BACKGROUND
    };
    actions.push(GcAction::Delete { obj: item.obj.clone(), propagation });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: Option<&str>, name: &str, uid: &str) -> ObjRef {
        let api_version = match kind {
            "ReplicaSet" | "Deployment" => "apps/v1",
            _ => "v1",
        };
        ObjRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner_ref(o: &ObjRef, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
            controller: Some(true),
            block_owner_deletion: block.then_some(true),
        }
    }

    fn node(o: &ObjRef, owners: Vec<OwnerReference>) -> Node {
        Node { obj: o.clone(), owners, deleting: false, finalizers: vec![] }
    }

    fn deleting(mut n: Node, finalizer: Option<&str>) -> Node {
        n.deleting = true;
        n.finalizers.extend(finalizer.map(String::from));
        n
    }

    fn delete(o: &ObjRef, propagation: &'static str) -> GcAction {
        GcAction::Delete { obj: o.clone(), propagation }
    }

    fn unown(o: &ObjRef, uids: &[&str]) -> GcAction {
        GcAction::RemoveOwnerRefs { obj: o.clone(), owner_uids: uids.iter().map(|s| s.to_string()).collect() }
    }

    fn unfinalize(o: &ObjRef, finalizer: &'static str) -> GcAction {
        GcAction::RemoveFinalizer { obj: o.clone(), finalizer }
    }

    #[test]
    fn decisions_match_upstream_garbage_collector_scenarios() {
        let rs = obj("ReplicaSet", Some("ns1"), "rs", "rs-uid");
        let rs2 = obj("ReplicaSet", Some("ns1"), "rs2", "rs2-uid");
        let pod = obj("Pod", Some("ns1"), "pod", "pod-uid");
        let pod2 = obj("Pod", Some("ns1"), "pod2", "pod2-uid");
        let deploy = obj("Deployment", Some("ns1"), "deploy", "deploy-uid");
        let pod_ns2 = obj("Pod", Some("ns2"), "podname2", "poduid2");
        let pod_ns1 = obj("Pod", Some("ns1"), "podname1", "poduid1");
        let k8s_node = obj("Node", None, "nodename", "nodeuid1");

        let cases: Vec<(&str, Vec<Node>, Vec<GcAction>)> = vec![
            ("an object without owners is left alone", vec![node(&pod, vec![])], vec![]),
            (
                // TestAttemptToDeleteItem: the pod's ReplicaSet does not exist.
                "a dependent whose only owner is gone is deleted in the background",
                vec![node(&pod, vec![owner_ref(&rs, true)])],
                vec![delete(&pod, BACKGROUND)],
            ),
            (
                "a dependent with a live owner is kept",
                vec![node(&rs, vec![]), node(&pod, vec![owner_ref(&rs, true)])],
                vec![],
            ),
            (
                "a dependent with one live and one dangling owner loses the dangling reference",
                vec![node(&rs, vec![]), node(&pod, vec![owner_ref(&rs, false), owner_ref(&rs2, false)])],
                vec![unown(&pod, &["rs2-uid"])],
            ),
            (
                "a dependent already being deleted is left to finish",
                vec![deleting(node(&pod, vec![owner_ref(&rs, true)]), None)],
                vec![],
            ),
            (
                "an orphan keeps the propagation its own finalizer asks for",
                vec![Node { finalizers: vec![FINALIZER_ORPHAN.into()], ..node(&rs, vec![owner_ref(&deploy, true)]) }],
                vec![delete(&rs, ORPHAN)],
            ),
            (
                // Foreground deletion: the owner waits on its blocking dependent, which is deleted.
                "dependents of a foreground-deleted owner are deleted and the owner keeps its finalizer",
                vec![deleting(node(&rs, vec![]), Some(FINALIZER_FOREGROUND)), node(&pod, vec![owner_ref(&rs, true)])],
                vec![delete(&pod, BACKGROUND)],
            ),
            (
                "a dependent with dependents of its own is deleted in the foreground",
                vec![
                    deleting(node(&deploy, vec![]), Some(FINALIZER_FOREGROUND)),
                    node(&rs, vec![owner_ref(&deploy, true)]),
                    node(&pod, vec![owner_ref(&rs, true)]),
                ],
                vec![delete(&rs, FOREGROUND)],
            ),
            (
                "a foreground-deleted owner without blocking dependents loses its finalizer",
                vec![deleting(node(&rs, vec![]), Some(FINALIZER_FOREGROUND)), node(&pod, vec![owner_ref(&rs, false)])],
                vec![unfinalize(&rs, FINALIZER_FOREGROUND), delete(&pod, BACKGROUND)],
            ),
            (
                "a foreground-deleted owner whose dependents are gone loses its finalizer",
                vec![deleting(node(&rs, vec![]), Some(FINALIZER_FOREGROUND))],
                vec![unfinalize(&rs, FINALIZER_FOREGROUND)],
            ),
            (
                "a blocking dependent still terminating keeps the owner's finalizer",
                vec![
                    deleting(node(&rs, vec![]), Some(FINALIZER_FOREGROUND)),
                    deleting(node(&pod, vec![owner_ref(&rs, true)]), None),
                ],
                vec![],
            ),
            (
                "a dependent with a live owner drops its reference to a foreground-deleted one",
                vec![
                    deleting(node(&rs, vec![]), Some(FINALIZER_FOREGROUND)),
                    node(&rs2, vec![]),
                    node(&pod, vec![owner_ref(&rs, true), owner_ref(&rs2, false)]),
                ],
                vec![unown(&pod, &["rs-uid"])],
            ),
            (
                "an owner deleted with orphan propagation releases its dependents, then its finalizer",
                vec![
                    deleting(node(&rs, vec![]), Some(FINALIZER_ORPHAN)),
                    node(&pod, vec![owner_ref(&rs, true)]),
                    node(&pod2, vec![owner_ref(&rs, false)]),
                ],
                vec![unown(&pod, &["rs-uid"]), unown(&pod2, &["rs-uid"]), unfinalize(&rs, FINALIZER_ORPHAN)],
            ),
            (
                // TestConflictingData "bad child in ns1 -> owner in ns2".
                "a reference to a namespaced owner in another namespace is treated as absent",
                vec![node(&pod_ns2, vec![]), node(&pod_ns1, vec![owner_ref(&pod_ns2, false)])],
                vec![delete(&pod_ns1, BACKGROUND)],
            ),
            (
                // TestConflictingData "good child in ns1 -> cluster-scoped owner".
                "a namespaced dependent of a live cluster-scoped owner is kept",
                vec![node(&k8s_node, vec![]), node(&pod_ns1, vec![owner_ref(&k8s_node, false)])],
                vec![],
            ),
            (
                // TestConflictingData "bad cluster-scoped child -> owner in ns1": not deleted.
                "a cluster-scoped dependent of a namespaced owner is left alone",
                vec![node(&pod_ns1, vec![]), node(&k8s_node, vec![owner_ref(&pod_ns1, false)])],
                vec![],
            ),
        ];
        for (name, graph, want) in cases {
            assert_eq!(decide(&graph), want, "{name}");
        }
    }
}

//! Score plugins: NodeResourcesFit with the LeastAllocated strategy (cpu and memory, weight 1 each)
//! and a per-node stand-in for the default pod topology spreading of a controller's pods.

use super::resources::Resources;
use super::{NodeInfo, PreparedPod};

pub const MAX_NODE_SCORE: i64 = 100;

/// Upstream default plugin weights: NodeResourcesFit 1, PodTopologySpread 2.
const FIT_WEIGHT: i64 = 1;
const SPREAD_WEIGHT: i64 = 2;

pub(super) fn run(p: &PreparedPod, info: &NodeInfo) -> i64 {
    let fit = least_allocated(&p.non_zero_requests, info);
    let Some(owner) = p.owner_uid else {
        // Upstream's default spreading only applies to pods with a controller.
        return fit;
    };
    let siblings = info.pods_by_owner.get(owner).copied().unwrap_or(0);
    (fit * FIT_WEIGHT + spread(siblings) * SPREAD_WEIGHT) / (FIT_WEIGHT + SPREAD_WEIGHT)
}

/// Fewer pods of the same controller on the node scores higher: 100, 50, 33, 25, ...
/// Upstream normalizes topology-spread counts across all nodes; a per-node score can't, so this
/// keeps the ordering (fewer is better) without the normalization.
pub fn spread(same_owner_pods: usize) -> i64 {
    MAX_NODE_SCORE / i64::try_from(same_owner_pods.saturating_add(1)).unwrap_or(i64::MAX)
}

/// Upstream `leastResourceScorer` over cpu and memory with weight 1 each, using the node's
/// requests with scheduler defaults for unset container requests. Resources the node has none of
/// are left out of the average.
pub fn least_allocated(pod_non_zero: &Resources, info: &NodeInfo) -> i64 {
    let requested = info.non_zero_requested.plus(pod_non_zero);
    let pairs = [
        (requested.milli_cpu, info.allocatable.milli_cpu),
        (requested.memory, info.allocatable.memory),
    ];
    let (mut score, mut weight) = (0, 0);
    for (requested, capacity) in pairs {
        if capacity == 0 {
            continue;
        }
        score += least_requested_score(requested, capacity);
        weight += 1;
    }
    if weight == 0 { 0 } else { score / weight }
}

fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    // i128: bytes of memory times 100 can leave i64 (and requested may be negative).
    let free = (i128::from(capacity) - i128::from(requested)) * i128::from(MAX_NODE_SCORE);
    i64::try_from(free / i128::from(capacity)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn node(name: &str, cpu: &str, memory: &str) -> Node {
        let mut alloc = json!({"pods": "110"});
        if !cpu.is_empty() {
            alloc["cpu"] = json!(cpu);
            alloc["memory"] = json!(memory);
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"allocatable": alloc, "capacity": alloc}})).unwrap()
    }

    /// `st.MakePod().Req(...)...`: one container per request map.
    fn pod(node: &str, reqs: &[(&str, &str)]) -> Pod {
        let containers: Vec<_> = reqs
            .iter()
            .enumerate()
            .map(|(i, (cpu, mem))| json!({"name": format!("c{i}"), "resources": {"requests": {"cpu": cpu, "memory": mem}}}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeName": node, "containers": containers}})).unwrap()
    }

    #[test]
    fn least_allocated_matches_upstream_scores() {
        // TestLeastAllocatedScoringStrategy (default resources cpu:1, memory:1).
        let empty = pod("", &[]);
        let two = pod("", &[("1000", "2000"), ("2000", "3000")]);
        let big = pod("", &[("3000", "0")]);
        type Case<'a> = (&'a str, &'a Pod, Vec<Node>, Vec<Pod>, Vec<i64>);
        let cases: Vec<Case> = vec![
            (
                "nothing scheduled, nothing requested",
                &empty,
                vec![node("node1", "4000", "10000"), node("node2", "4000", "10000")],
                vec![],
                vec![100, 100],
            ),
            (
                "nothing scheduled, resources requested, differently sized nodes",
                &two,
                vec![node("node1", "4000", "10000"), node("node2", "6000", "10000")],
                vec![],
                vec![37, 50],
            ),
            (
                "no resources requested, pods scheduled",
                &empty,
                vec![node("node1", "4000", "10000"), node("node2", "4000", "10000")],
                vec![pod("node1", &[]), pod("node1", &[]), pod("node2", &[]), pod("node2", &[])],
                vec![100, 100],
            ),
            (
                "no resources requested, pods scheduled with resources",
                &empty,
                vec![node("node1", "10000", "20000"), node("node2", "10000", "20000")],
                vec![
                    pod("node1", &[("3000", "0")]),
                    pod("node1", &[("3000", "0")]),
                    pod("node2", &[("3000", "0")]),
                    pod("node2", &[("3000", "5000")]),
                ],
                vec![70, 57],
            ),
            (
                "resources requested, pods scheduled with resources",
                &two,
                vec![node("node1", "10000", "20000"), node("node2", "10000", "20000")],
                vec![pod("node1", &[("3000", "0")]), pod("node2", &[("3000", "5000")])],
                vec![57, 45],
            ),
            (
                "resources requested, pods scheduled with resources, differently sized nodes",
                &two,
                vec![node("node1", "10000", "20000"), node("node2", "10000", "50000")],
                vec![pod("node1", &[("3000", "0")]), pod("node2", &[("3000", "5000")])],
                vec![57, 60],
            ),
            (
                "requested resources exceed node capacity",
                &big,
                vec![node("node1", "4000", "10000"), node("node2", "4000", "10000")],
                vec![pod("node1", &[("3000", "0")]), pod("node2", &[("3000", "5000")])],
                vec![50, 25],
            ),
            (
                "zero node resources, pods scheduled with resources",
                &empty,
                vec![node("node1", "", ""), node("node2", "", "")],
                vec![pod("node1", &[("3000", "0")]), pod("node2", &[("3000", "5000")])],
                vec![0, 0],
            ),
        ];
        for (name, incoming, nodes, existing, want) in cases {
            let infos: Vec<NodeInfo> = nodes
                .into_iter()
                .map(|n| {
                    let node_name = n.metadata.name.clone();
                    let mut info = NodeInfo::new(n);
                    for p in existing.iter().filter(|p| p.spec.as_ref().unwrap().node_name == node_name) {
                        info.add_pod(p);
                    }
                    info
                })
                .collect();
            let prepared = PreparedPod::new(incoming);
            let got: Vec<i64> = infos.iter().map(|i| least_allocated(&prepared.non_zero_requests, i)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn pods_of_a_controller_prefer_nodes_running_fewer_of_their_siblings() {
        assert_eq!([0, 1, 2, 3, 99].map(spread), [100, 50, 33, 25, 1]);
        let owned = |name: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}}))
            .unwrap()
        };
        let mut busy = NodeInfo::new(node("busy", "4", "8Gi"));
        let idle = NodeInfo::new(node("idle", "4", "8Gi"));
        busy.add_pod(&owned("a"));
        let incoming = owned("b");
        let p = PreparedPod::new(&incoming);
        assert!(run(&p, &idle) > run(&p, &busy));
        busy.remove_pod(&owned("a"));
        assert_eq!(run(&p, &idle), run(&p, &busy));
        // Without a controller only resources count.
        let lone = pod("", &[("100m", "100Mi")]);
        let p = PreparedPod::new(&lone);
        assert_eq!(run(&p, &idle), least_allocated(&p.non_zero_requests, &idle));
    }
}

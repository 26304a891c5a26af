use super::*;
use serde_json::{Value, json};

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn ready_node(mut v: Value) -> Node {
    v["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    serde_json::from_value(v).unwrap()
}

fn insufficient(names: &[&str]) -> Result<(), Unfit> {
    Err(Unfit::Resources(names.iter().map(|n| format!("Insufficient {n}")).collect()))
}

/// `newResourcePod(framework.Resource{MilliCPU, Memory, EphemeralStorage}...)`: one container each.
fn containers(usage: &[(i64, i64, i64)]) -> Value {
    usage
        .iter()
        .enumerate()
        .map(|(i, (cpu, mem, eph))| {
            json!({"name": format!("c{i}"), "resources": {"requests": {
                "cpu": format!("{cpu}m"), "memory": mem.to_string(), "ephemeral-storage": eph.to_string()}}})
        })
        .collect::<Vec<_>>()
        .into()
}

fn resource_pod(usage: &[(i64, i64, i64)], init: &[(i64, i64, i64)]) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": containers(usage), "initContainers": containers(init)}})
}

/// `makeAllocatableResources(milliCPU, memory, pods, _, storage, _)` on a Ready node holding `existing`.
fn node_with(milli_cpu: i64, memory: i64, pods: i64, storage: i64, existing: &[Value]) -> NodeInfo {
    let node = ready_node(json!({"metadata": {"name": "n"}, "status": {"allocatable": {
        "cpu": format!("{milli_cpu}m"), "memory": memory.to_string(), "pods": pods.to_string(),
        "ephemeral-storage": storage.to_string()}}}));
    let mut info = NodeInfo::new(node);
    for p in existing {
        info.add_pod(&pod(p.clone()));
    }
    info
}

#[test]
fn resource_fit_matches_upstream_enough_requests_cases() {
    // TestEnoughRequests / TestStorageRequests (cpu, memory, ephemeral-storage cases).
    let rp = |u: &[(i64, i64)]| resource_pod(&u.iter().map(|(c, m)| (*c, *m, 0)).collect::<Vec<_>>(), &[]);
    let ip = |u: &[(i64, i64)], i: &[(i64, i64)]| {
        resource_pod(&u.iter().map(|(c, m)| (*c, *m, 0)).collect::<Vec<_>>(), &i.iter().map(|(c, m)| (*c, *m, 0)).collect::<Vec<_>>())
    };
    let overhead = |mut p: Value, cpu: &str, mem: &str| {
        p["spec"]["overhead"] = json!({"cpu": cpu, "memory": mem});
        p
    };
    let pod_level = |mut p: Value, cpu: &str, mem: &str| {
        p["spec"]["resources"] = json!({"requests": {"cpu": cpu, "memory": mem}});
        p
    };
    let cases: Vec<(&str, Value, Value, Result<(), Unfit>)> = vec![
        ("no resources requested always fits", json!({"spec": {"containers": []}}), rp(&[(10, 20)]), Ok(())),
        ("too many resources fails", rp(&[(1, 1)]), rp(&[(10, 20)]), insufficient(&["cpu", "memory"])),
        ("too many resources fails due to init container cpu", ip(&[(1, 1)], &[(3, 1)]), rp(&[(8, 19)]), insufficient(&["cpu"])),
        ("too many resources fails due to highest init container cpu", ip(&[(1, 1)], &[(3, 1), (2, 1)]), rp(&[(8, 19)]), insufficient(&["cpu"])),
        ("too many resources fails due to init container memory", ip(&[(1, 1)], &[(1, 3)]), rp(&[(9, 19)]), insufficient(&["memory"])),
        ("too many resources fails due to highest init container memory", ip(&[(1, 1)], &[(1, 3), (1, 2)]), rp(&[(9, 19)]), insufficient(&["memory"])),
        ("init container fits because it's the max, not sum", ip(&[(1, 1)], &[(1, 1)]), rp(&[(9, 19)]), Ok(())),
        ("multiple init containers fit because it's the max, not sum", ip(&[(1, 1)], &[(1, 1), (1, 1)]), rp(&[(9, 19)]), Ok(())),
        ("both resources fit", rp(&[(1, 1)]), rp(&[(5, 5)]), Ok(())),
        ("one resource memory fits", rp(&[(2, 1)]), rp(&[(9, 5)]), insufficient(&["cpu"])),
        ("one resource cpu fits", rp(&[(1, 2)]), rp(&[(5, 19)]), insufficient(&["memory"])),
        ("equal edge case", rp(&[(5, 1)]), rp(&[(5, 19)]), Ok(())),
        ("equal edge case for init container", ip(&[(4, 1)], &[(5, 1)]), rp(&[(5, 19)]), Ok(())),
        ("resources + pod overhead fits", overhead(rp(&[(1, 1)]), "3m", "13"), rp(&[(5, 5)]), Ok(())),
        ("requests + overhead does not fit for memory", overhead(rp(&[(1, 1)]), "1m", "15"), rp(&[(5, 5)]), insufficient(&["memory"])),
        ("both pod-level and container-level resources fit", pod_level(rp(&[(1, 1)]), "1m", "2"), rp(&[(5, 5)]), Ok(())),
        ("pod-level cpu resource not fit", pod_level(rp(&[(1, 1)]), "7m", "2"), rp(&[(5, 5)]), insufficient(&["cpu"])),
        ("pod-level memory resource not fit", pod_level(rp(&[(1, 1)]), "3m", "2"), rp(&[(5, 19)]), insufficient(&["memory"])),
        ("empty storage requested, and pod fits", rp(&[(1, 1)]), rp(&[(2, 10)]), Ok(())),
        ("storage ephemeral local storage request exceeds allocatable", resource_pod(&[(0, 0, 25)], &[]), rp(&[(2, 2)]), insufficient(&["ephemeral-storage"])),
        ("ephemeral local storage is sufficient", resource_pod(&[(0, 0, 5)], &[]), resource_pod(&[(2, 2, 10)], &[]), Ok(())),
        ("pod fits", resource_pod(&[(0, 0, 10)], &[]), rp(&[(2, 2)]), Ok(())),
    ];
    for (name, incoming, existing, want) in cases {
        let info = node_with(10, 20, 32, 20, &[existing]);
        assert_eq!(filter(&pod(incoming), &info), want, "{name}");
    }
}

#[test]
fn a_full_node_rejects_even_pods_that_request_nothing() {
    // TestNotEnoughRequests: allocatable pods = 1 and one pod already there.
    let cases = [
        ("even without specified resources", json!({"spec": {"containers": []}}), (10, 20)),
        ("even if both resources fit", resource_pod(&[(1, 1, 0)], &[]), (5, 5)),
        ("even for equal edge case", resource_pod(&[(5, 1, 0)], &[]), (5, 19)),
        ("even for equal edge case due to init container", resource_pod(&[(5, 1, 0)], &[(5, 1, 0)]), (5, 19)),
    ];
    for (name, incoming, (cpu, mem)) in cases {
        let info = node_with(10, 20, 1, 0, &[resource_pod(&[(cpu, mem, 0)], &[])]);
        assert_eq!(filter(&pod(incoming), &info), Err(Unfit::TooManyPods), "{name}");
    }
    let info = node_with(10, 20, 1, 0, &[resource_pod(&[(10, 0, 0)], &[])]);
    let want = Err(Unfit::Resources(vec!["Too many pods".into(), "Insufficient cpu".into()]));
    assert_eq!(filter(&pod(resource_pod(&[(1, 0, 0)], &[])), &info), want);
}

#[test]
fn sidecar_requests_count_on_top_of_regular_containers() {
    // TestRestartableInitContainers: allocatable cpu 2m, one pod slot.
    let with_sidecar = |sidecar_m: i64| {
        pod(json!({"spec": {
            "containers": [{"name": "regular", "resources": {"requests": {"cpu": "1m"}}}],
            "initContainers": [{"name": "restartable-init", "restartPolicy": "Always", "resources": {"requests": {"cpu": format!("{sidecar_m}m")}}}],
        }}))
    };
    let info = node_with(2, 0, 1, 0, &[]);
    assert_eq!(filter(&with_sidecar(1), &info), Ok(()));
    assert_eq!(filter(&with_sidecar(2), &info), insufficient(&["cpu"]));
}

fn labeled_node(name: &str, labels: Value) -> NodeInfo {
    NodeInfo::new(ready_node(json!({"metadata": {"name": name, "labels": labels}, "status": {"allocatable": {"pods": "110"}}})))
}

fn with_required(terms: Value) -> Value {
    json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}})
}

fn expr(key: &str, op: &str, values: &[&str]) -> Value {
    if values.is_empty() { json!({"key": key, "operator": op}) } else { json!({"key": key, "operator": op, "values": values}) }
}

#[test]
fn node_affinity_and_selector_match_upstream_cases() {
    // TestNodeAffinity (Filter).
    let selector = |sel: Value| json!({"spec": {"containers": [], "nodeSelector": sel}});
    let name_in = |n: &str| expr("metadata.name", "In", &[n]);
    let mut both = with_required(json!([{"matchExpressions": [expr("foo", "Exists", &[])]}]));
    both["spec"]["nodeSelector"] = json!({"foo": "bar"});
    let aff = Err(Unfit::NodeAffinity);
    type Case<'a> = (&'a str, Value, &'a str, Value, Result<(), Unfit>);
    let cases: Vec<Case> = vec![
        ("missing labels", selector(json!({"foo": "bar"})), "", json!({}), Err(Unfit::NodeSelector)),
        ("same labels", selector(json!({"foo": "bar"})), "", json!({"foo": "bar"}), Ok(())),
        ("node labels are superset", selector(json!({"foo": "bar"})), "", json!({"foo": "bar", "baz": "blah"}), Ok(())),
        ("node labels are subset", selector(json!({"foo": "bar", "baz": "blah"})), "", json!({"foo": "bar"}), Err(Unfit::NodeSelector)),
        ("In matches", with_required(json!([{"matchExpressions": [expr("foo", "In", &["bar", "value2"])]}])), "", json!({"foo": "bar"}), Ok(())),
        ("Gt matches", with_required(json!([{"matchExpressions": [expr("kernel-version", "Gt", &["0204"])]}])), "", json!({"kernel-version": "0206"}), Ok(())),
        ("NotIn matches", with_required(json!([{"matchExpressions": [expr("mem-type", "NotIn", &["DDR", "DDR2"])]}])), "", json!({"mem-type": "DDR3"}), Ok(())),
        ("Exists matches", with_required(json!([{"matchExpressions": [expr("GPU", "Exists", &[])]}])), "", json!({"GPU": "NVIDIA-GRID-K1"}), Ok(())),
        ("affinity that doesn't match node's labels", with_required(json!([{"matchExpressions": [expr("foo", "In", &["value1", "value2"])]}])), "", json!({"foo": "bar"}), aff.clone()),
        ("empty MatchExpressions matches no objects", with_required(json!([{"matchExpressions": []}])), "", json!({"foo": "bar"}), aff.clone()),
        ("empty NodeSelectorTerms matches no objects", with_required(json!([])), "", json!({"foo": "bar"}), aff.clone()),
        ("no Affinity", json!({"spec": {"containers": []}}), "", json!({"foo": "bar"}), Ok(())),
        ("Affinity but nil NodeSelector", json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {}}}}), "", json!({"foo": "bar"}), Ok(())),
        ("multiple matchExpressions ANDed that match", with_required(json!([{"matchExpressions": [expr("GPU", "Exists", &[]), expr("GPU", "NotIn", &["AMD", "INTER"])]}])), "", json!({"GPU": "NVIDIA-GRID-K1"}), Ok(())),
        ("multiple matchExpressions ANDed that don't match", with_required(json!([{"matchExpressions": [expr("GPU", "Exists", &[]), expr("GPU", "In", &["AMD", "INTER"])]}])), "", json!({"GPU": "NVIDIA-GRID-K1"}), aff.clone()),
        (
            "multiple NodeSelectorTerms ORed",
            with_required(json!([{"matchExpressions": [expr("foo", "In", &["bar", "value2"])]}, {"matchExpressions": [expr("diffkey", "In", &["wrong", "value2"])]}])),
            "",
            json!({"foo": "bar"}),
            Ok(()),
        ),
        ("Affinity and nodeSelector both satisfied", both.clone(), "", json!({"foo": "bar"}), Ok(())),
        ("Affinity matches but nodeSelector does not", both, "", json!({"foo": "barrrrrr"}), Err(Unfit::NodeSelector)),
        ("invalid value in Affinity term", with_required(json!([{"matchExpressions": [expr("foo", "NotIn", &["invalid value: ___@#$%^"])]}])), "", json!({"foo": "bar"}), aff.clone()),
        ("matchFields In matches", with_required(json!([{"matchFields": [name_in("node1")]}])), "node1", json!({}), Ok(())),
        ("matchFields In does not match", with_required(json!([{"matchFields": [name_in("node1")]}])), "node2", json!({}), aff.clone()),
        (
            "two terms: matchFields does not match, but matchExpressions matches",
            with_required(json!([{"matchFields": [name_in("node1"), name_in("node2")]}, {"matchExpressions": [expr("foo", "In", &["bar"])]}])),
            "node2",
            json!({"foo": "bar"}),
            Ok(()),
        ),
        (
            "one term: matchFields does not match, but matchExpressions matches",
            with_required(json!([{"matchFields": [name_in("node1")], "matchExpressions": [expr("foo", "In", &["bar"])]}])),
            "node2",
            json!({"foo": "bar"}),
            aff.clone(),
        ),
        (
            "one term: both matchFields and matchExpressions match",
            with_required(json!([{"matchFields": [name_in("node1")], "matchExpressions": [expr("foo", "In", &["bar"])]}])),
            "node1",
            json!({"foo": "bar"}),
            Ok(()),
        ),
        (
            "two terms: both matchFields and matchExpressions do not match",
            with_required(json!([{"matchFields": [name_in("node1")]}, {"matchExpressions": [expr("foo", "In", &["not-match-to-bar"])]}])),
            "node2",
            json!({"foo": "bar"}),
            aff.clone(),
        ),
        ("two terms of node.Name affinity", with_required(json!([{"matchFields": [name_in("node1")]}, {"matchFields": [name_in("node2")]}])), "node2", json!({}), Ok(())),
        ("two conflicting match field requirements", with_required(json!([{"matchFields": [name_in("node1"), name_in("node2")]}])), "node2", json!({"foo": "bar"}), aff.clone()),
        ("DoesNotExist", with_required(json!([{"matchExpressions": [expr("gpu", "DoesNotExist", &[])]}])), "", json!({"foo": "bar"}), Ok(())),
        ("Lt on a non-numeric label", with_required(json!([{"matchExpressions": [expr("foo", "Lt", &["3"])]}])), "", json!({"foo": "bar"}), aff.clone()),
        ("Gt with two values is invalid", with_required(json!([{"matchExpressions": [expr("n", "Gt", &["1", "2"])]}])), "", json!({"n": "5"}), aff.clone()),
        ("matchFields NotIn", with_required(json!([{"matchFields": [expr("metadata.name", "NotIn", &["node1"])]}])), "node2", json!({}), Ok(())),
        ("matchFields with Exists is invalid", with_required(json!([{"matchFields": [expr("metadata.name", "Exists", &[])]}])), "node2", json!({}), aff),
    ];
    for (name, incoming, node_name, labels, want) in cases {
        let node_name = if node_name.is_empty() { "node" } else { node_name };
        assert_eq!(filter(&pod(incoming), &labeled_node(node_name, labels)), want, "{name}");
    }
}

fn tainted(taints: Value, unschedulable: bool) -> NodeInfo {
    NodeInfo::new(ready_node(json!({"metadata": {"name": "nodeA"}, "spec": {"taints": taints, "unschedulable": unschedulable},
        "status": {"allocatable": {"pods": "110"}}})))
}

fn tolerating(tolerations: Value) -> Pod {
    pod(json!({"metadata": {"name": "pod0"}, "spec": {"containers": [], "tolerations": tolerations}}))
}

#[test]
fn taints_must_be_tolerated_like_upstream_taint_toleration_cases() {
    // TestTaintTolerationFilter.
    let taint = |k: &str, v: &str, e: &str| json!({"key": k, "value": v, "effect": e});
    let tol = |k: &str, op: &str, v: &str, e: &str| json!({"key": k, "operator": op, "value": v, "effect": e});
    let untolerated = |s: &str| Err(Unfit::Taint(s.to_owned()));
    let cases: Vec<(&str, Value, Value, Result<(), Unfit>)> = vec![
        ("no tolerations, nonempty taints", json!([]), json!([taint("dedicated", "user1", "NoSchedule")]), untolerated("{dedicated: user1}")),
        ("dedicated node assigned to user1", json!([tol("dedicated", "Equal", "user1", "NoSchedule")]), json!([taint("dedicated", "user1", "NoSchedule")]), Ok(())),
        ("dedicated node assigned to someone else", json!([tol("dedicated", "Equal", "user2", "NoSchedule")]), json!([taint("dedicated", "user1", "NoSchedule")]), untolerated("{dedicated: user1}")),
        ("Exists tolerates any value", json!([{"key": "foo", "operator": "Exists", "effect": "NoSchedule"}]), json!([taint("foo", "bar", "NoSchedule")]), Ok(())),
        (
            "multiple tolerations cover multiple taints",
            json!([tol("dedicated", "Equal", "user2", "NoSchedule"), {"key": "foo", "operator": "Exists", "effect": "NoSchedule"}]),
            json!([taint("dedicated", "user2", "NoSchedule"), taint("foo", "bar", "NoSchedule")]),
            Ok(()),
        ),
        ("matching key and value but a different effect", json!([tol("foo", "Equal", "bar", "PreferNoSchedule")]), json!([taint("foo", "bar", "NoSchedule")]), untolerated("{foo: bar}")),
        ("empty toleration effect matches any effect", json!([{"key": "foo", "operator": "Equal", "value": "bar"}]), json!([taint("foo", "bar", "NoSchedule")]), Ok(())),
        ("PreferNoSchedule taints never filter", json!([tol("dedicated", "Equal", "user2", "NoSchedule")]), json!([taint("dedicated", "user1", "PreferNoSchedule")]), Ok(())),
        ("no tolerations, PreferNoSchedule taint", json!([]), json!([taint("dedicated", "user1", "PreferNoSchedule")]), Ok(())),
        ("NoExecute taints filter too", json!([]), json!([taint("evict", "", "NoExecute")]), untolerated("{evict: }")),
        ("an empty-key Exists toleration tolerates everything", json!([{"operator": "Exists"}]), json!([taint("a", "b", "NoExecute")]), Ok(())),
    ];
    for (name, tolerations, taints, want) in cases {
        assert_eq!(filter(&tolerating(tolerations), &tainted(taints, false)), want, "{name}");
    }
}

#[test]
fn cordoned_nodes_only_take_pods_tolerating_the_unschedulable_taint() {
    // TestNodeUnschedulable.
    let tolerates_cordon = json!([{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]);
    let cases = [
        (json!([]), false, Ok(())),
        (json!([]), true, Err(Unfit::Unschedulable)),
        (tolerates_cordon.clone(), true, Ok(())),
        (tolerates_cordon, false, Ok(())),
    ];
    for (i, (tolerations, cordoned, want)) in cases.into_iter().enumerate() {
        assert_eq!(filter(&tolerating(tolerations), &tainted(json!([]), cordoned)), want, "case {i}");
    }
}

#[test]
fn pods_naming_a_node_only_fit_that_node() {
    // TestNodeName.
    let named = |n: &str| pod(json!({"spec": {"containers": [], "nodeName": n}}));
    let node = labeled_node("foo", json!({}));
    assert_eq!(filter(&named(""), &node), Ok(()));
    assert_eq!(filter(&named("foo"), &node), Ok(()));
    assert_eq!(filter(&named("bar"), &node), Err(Unfit::NodeName));
}

#[test]
fn nodes_that_are_not_ready_take_only_pods_tolerating_it() {
    let node = |conditions: Value| {
        NodeInfo::new(
            serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": conditions, "allocatable": {"pods": "10"}}}))
                .unwrap(),
        )
    };
    let daemon = tolerating(json!([
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"},
    ]));
    let plain = tolerating(json!([]));
    for conditions in [json!([{"type": "Ready", "status": "False"}]), json!([{"type": "Ready", "status": "Unknown"}]), json!([])] {
        assert_eq!(filter(&plain, &node(conditions.clone())), Err(Unfit::NodeNotReady), "{conditions}");
        assert_eq!(filter(&daemon, &node(conditions.clone())), Ok(()), "{conditions}");
    }
    assert_eq!(filter(&plain, &node(json!([{"type": "Ready", "status": "True"}]))), Ok(()));
}

#[test]
fn fit_error_messages_count_reasons_and_sort_them_as_strings() {
    // TestFitError_Error and the scheduler's failed-scheduling events.
    let cpu = || Unfit::Resources(vec!["Insufficient cpu".into()]);
    let cpu_mem = || Unfit::Resources(vec!["Insufficient cpu".into(), "Insufficient memory".into()]);
    let cases: Vec<(usize, Vec<Unfit>, &str)> = vec![
        (3, vec![Unfit::NodeAffinity; 3], "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
        (
            3,
            vec![cpu(), Unfit::NodeAffinity, Unfit::NodeSelector],
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.",
        ),
        (100, vec![cpu_mem(); 100], "0/100 nodes are available: 100 Insufficient cpu, 100 Insufficient memory."),
        (
            2,
            vec![Unfit::Taint("{node-role.kubernetes.io/control-plane: }".into()), Unfit::Unschedulable],
            "0/2 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 1 node(s) were unschedulable.",
        ),
        (
            12,
            [vec![Unfit::NodeAffinity; 10], vec![cpu(); 2]].concat(),
            "0/12 nodes are available: 10 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.",
        ),
        (
            3,
            vec![Unfit::TooManyPods, Unfit::NodeNotReady, Unfit::NodeName],
            "0/3 nodes are available: 1 Too many pods, 1 node(s) didn't match the requested node name, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
        ),
        (0, vec![], "0/0 nodes are available:"),
    ];
    for (total, reasons, want) in cases {
        assert_eq!(failure_message(total, &reasons), want);
    }
}

#[test]
fn feasible_node_sampling_follows_the_adaptive_percentage() {
    let cases = [(0, 0), (50, 50), (99, 99), (100, 100), (150, 100), (1000, 420), (5000, 500), (6000, 300)];
    for (total, want) in cases {
        assert_eq!(num_feasible_nodes_to_find(total), want, "{total} nodes");
    }
}

fn cluster_node(i: usize, cpu: &str, memory: &str) -> NodeInfo {
    NodeInfo::new(ready_node(json!({"metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}")}},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}})))
}

fn replica(owner: usize, i: usize, cpu: &str, memory: &str) -> Pod {
    pod(json!({"metadata": {"name": format!("rs{owner}-{i}"), "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("rs{owner}"), "uid": format!("uid-{owner}"), "controller": true}]},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
}

#[test]
fn schedule_one_spreads_replicas_and_reports_why_nothing_fits() {
    let mut nodes: Vec<NodeInfo> = (0..3).map(|i| cluster_node(i, "1", "1Gi")).collect();
    let mut start = 0;
    let mut placed = Vec::new();
    for i in 0..3 {
        let p = replica(0, i, "100m", "100Mi");
        let at = schedule_one(&p, &nodes, start).unwrap();
        nodes[at.node].add_pod(&p);
        start = at.next_start;
        placed.push(at.node);
    }
    placed.sort();
    assert_eq!(placed, vec![0, 1, 2], "three replicas land on three nodes");

    let huge = replica(1, 0, "2", "100Mi");
    assert_eq!(schedule_one(&huge, &nodes, 0), Err("0/3 nodes are available: 3 Insufficient cpu.".to_owned()));
    assert_eq!(schedule_one(&huge, &[], 0), Err("no nodes available to schedule pods".to_owned()));
}

#[test]
fn scheduling_ten_thousand_pods_over_a_thousand_nodes_reports_throughput() {
    let mut nodes: Vec<NodeInfo> = (0..1000).map(|i| cluster_node(i, "32", "128Gi")).collect();
    let pods: Vec<Pod> = (0..10_000).map(|i| replica(i % 100, i, "100m", "128Mi")).collect();
    let started = std::time::Instant::now();
    let (mut start, mut scheduled) = (0, 0);
    for p in &pods {
        if let Ok(at) = schedule_one(p, &nodes, start) {
            nodes[at.node].add_pod(p);
            start = at.next_start;
            scheduled += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("scheduled {scheduled} pods over {} nodes in {secs:.2}s: {:.0} pods/s", nodes.len(), scheduled as f64 / secs);
}

#[test]
fn a_node_updated_in_place_is_filtered_by_its_new_readiness_and_cordon() {
    // The filters read facts taken from the node when it is set: an update must refresh them.
    let plain = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
    let not_ready: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"allocatable": {"pods": "10"},
        "conditions": [{"type": "Ready", "status": "False"}]}})).unwrap();
    let mut info = NodeInfo::new(not_ready);
    assert_eq!(filter(&plain, &info), Err(Unfit::NodeNotReady));
    info.set_node(ready_node(json!({"metadata": {"name": "n"}, "status": {"allocatable": {"pods": "10"}}})));
    assert_eq!(filter(&plain, &info), Ok(()));
    info.set_node(ready_node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}, "status": {"allocatable": {"pods": "10"}}})));
    assert_eq!(filter(&plain, &info), Err(Unfit::Unschedulable));
    info.set_node(serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"allocatable": {"pods": "10"},
        "conditions": [{"type": "Ready", "status": "Unknown"}]}})).unwrap());
    assert_eq!(filter(&plain, &info), Err(Unfit::NodeNotReady));
}

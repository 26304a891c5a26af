use serde_json::{Value, json};

use super::upstream_cases::CASES;
use super::*;

/// The `MergeItem` test struct of Kubernetes' patch_test.go, as a schema: lists named
/// `mergingList`, `mergeItemPtr` and `retainKeysMergingList` merge by `name` at any depth,
/// `mergingIntList` merges as a set.
fn merge_item_schema(path: &[&str]) -> ListStrategy {
    match path.last().copied() {
        Some("mergingList" | "mergeItemPtr" | "retainKeysMergingList") => {
            ListStrategy::Merge { key: Some("name") }
        }
        Some("mergingIntList") => ListStrategy::Merge { key: None },
        _ => ListStrategy::Atomic,
    }
}

fn directive_keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| {
                let mut found = directive_keys(v);
                if is_directive_key(k) {
                    found.push(k.clone());
                }
                found
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(directive_keys).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn kubernetes_patch_test_cases_apply_as_in_go() {
    let merger = Merger {
        strategy: &merge_item_schema,
    };
    let mut failures = Vec::new();
    for case in CASES {
        let parse = |s: &str| serde_json::from_str::<Value>(s).expect("fixture is valid JSON");
        let got = merger.apply(&parse(case.original), &parse(case.patch));
        match (got, case.error) {
            (Ok(got), "") if got == parse(case.expected) && directive_keys(&got).is_empty() => {}
            (Err(e), want) if !want.is_empty() && e.to_string().contains(want) => {}
            (got, _) => failures.push(format!(
                "{}: got {got:?}, want {}{}",
                case.description, case.expected, case.error
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

struct Case {
    name: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    expected: Value,
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let got = apply(case.kind, &case.original, &case.patch)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got, case.expected, "{}", case.name);
        assert!(
            directive_keys(&got).is_empty(),
            "{}: directives left in {got}",
            case.name
        );
    }
}

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}
    })
}

#[test]
fn kubectl_patches_apply_like_the_api_server() {
    run(vec![
        Case {
            name: "kubectl set image keeps the container's other fields",
            kind: "Deployment",
            original: deployment(json!([
                {"name": "web", "image": "demo/web:v1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "demo/proxy:v1"}
            ])),
            patch: json!({"spec": {"template": {"spec": {"containers": [{"image": "demo/web:v2", "name": "web"}]}}}}),
            expected: deployment(json!([
                {"name": "web", "image": "demo/web:v2", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "demo/proxy:v1"}
            ])),
        },
        Case {
            name: "kubectl apply removing an env var deletes it by name",
            kind: "Deployment",
            original: deployment(json!([
                {"name": "web", "image": "demo/web:v1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
            ])),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}], "name": "web"}]
            }}}}),
            expected: deployment(
                json!([{"name": "web", "image": "demo/web:v1", "env": [{"name": "A", "value": "1"}]}]),
            ),
        },
        Case {
            name: "kubectl apply adding an env var puts it where $setElementOrder says",
            kind: "Deployment",
            original: deployment(
                json!([{"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]}]),
            ),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}], "env": [{"name": "B", "value": "2"}], "name": "web"}]
            }}}}),
            expected: deployment(json!([{"name": "web", "env": [
                {"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}
            ]}])),
        },
        Case {
            name: "a merge-list element missing from the live list goes first when no order is given",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            patch: json!({"spec": {"containers": [{"name": "c", "image": "x"}]}}),
            expected: json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a"}, {"name": "b"}]}}),
        },
        Case {
            name: "kubectl annotate adds and overwrites annotations, a trailing dash sends null",
            kind: "ConfigMap",
            original: json!({"metadata": {"name": "c", "annotations": {"a": "1", "gone": "x"}}, "data": {"k": "v"}}),
            patch: json!({"metadata": {"annotations": {"a": "2", "b": "3", "gone": null}}}),
            expected: json!({"metadata": {"name": "c", "annotations": {"a": "2", "b": "3"}}, "data": {"k": "v"}}),
        },
        Case {
            name: "kubectl label on an object without labels creates the map",
            kind: "Namespace",
            original: json!({"metadata": {"name": "dev"}}),
            patch: json!({"metadata": {"labels": {"team": "a", "old": null}}}),
            expected: json!({"metadata": {"name": "dev", "labels": {"team": "a"}}}),
        },
        Case {
            name: "kubectl rollout restart annotates the pod template",
            kind: "Deployment",
            original: deployment(json!([{"name": "web"}])),
            patch: json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}}),
            expected: {
                let mut d = deployment(json!([{"name": "web"}]));
                d["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"});
                d
            },
        },
        Case {
            name: "kubectl scale patches the Scale subresource",
            kind: "Scale",
            original: json!({"kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 2}, "status": {"replicas": 2}}),
            patch: json!({"spec": {"replicas": 5}}),
            expected: json!({"kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 5}, "status": {"replicas": 2}}),
        },
        Case {
            name: "switching the deployment strategy to Recreate clears rollingUpdate via $retainKeys",
            kind: "Deployment",
            original: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}}),
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
            expected: json!({"spec": {"strategy": {"type": "Recreate"}}}),
        },
        Case {
            name: "changing a volume's source keeps only the fields named by $retainKeys",
            kind: "Pod",
            original: json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}}),
            patch: json!({"spec": {
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "tmp"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]
            }}),
            expected: json!({"spec": {"volumes": [{"name": "data", "configMap": {"name": "cfg"}}, {"name": "tmp", "emptyDir": {}}]}}),
        },
        Case {
            name: "finalizers merge as a set and $deleteFromPrimitiveList removes them",
            kind: "Pod",
            original: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b", "c"]}}),
            expected: json!({"metadata": {"finalizers": ["b", "c"]}}),
        },
        Case {
            name: "ownerReferences merge by uid",
            kind: "ReplicaSet",
            original: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "web", "controller": true}]}}),
            patch: json!({"metadata": {"ownerReferences": [{"uid": "1", "blockOwnerDeletion": true}]}}),
            expected: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "web", "controller": true, "blockOwnerDeletion": true}]}}),
        },
        Case {
            name: "service ports merge by port",
            kind: "Service",
            original: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}], "selector": {"app": "web"}}}),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            expected: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090, "protocol": "TCP"}], "selector": {"app": "web"}}}),
        },
        Case {
            name: "container ports merge by containerPort",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}]}}),
            patch: json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}),
            expected: json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}]}}),
        },
        Case {
            name: "node status conditions and addresses merge by type",
            kind: "Node",
            original: json!({"status": {
                "conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]
            }}),
            patch: json!({"status": {
                "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "DiskPressure"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "Hostname", "address": "n1"}]
            }}),
            expected: json!({"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}, {"type": "DiskPressure", "status": "False"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}]
            }}),
        },
        Case {
            name: "pod status podIPs merge by ip and conditions by type",
            kind: "Pod",
            original: json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}),
            patch: json!({"status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}], "conditions": [{"type": "Ready", "status": "True"}]}}),
            expected: json!({"status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "podIPs": [{"ip": "10.1.0.5"}]
            }}),
        },
        Case {
            name: "$patch: replace on a list makes the patch's elements the list",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}),
            patch: json!({"spec": {"containers": [{"name": "a", "image": "y"}, {"$patch": "replace"}]}}),
            expected: json!({"spec": {"containers": [{"name": "a", "image": "y"}]}}),
        },
        Case {
            name: "$patch: delete in a list element removes every element with that key",
            kind: "Pod",
            original: json!({"spec": {"imagePullSecrets": [{"name": "a"}, {"name": "b"}]}}),
            patch: json!({"spec": {"imagePullSecrets": [{"name": "a", "$patch": "delete"}]}}),
            expected: json!({"spec": {"imagePullSecrets": [{"name": "b"}]}}),
        },
        Case {
            name: "$patch: replace on a map replaces it",
            kind: "Pod",
            original: json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
            patch: json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            expected: json!({"spec": {"nodeSelector": {"c": "3"}}}),
        },
        Case {
            name: "$patch: delete on a map empties it",
            kind: "ConfigMap",
            original: json!({"data": {"a": "1"}}),
            patch: json!({"data": {"$patch": "delete"}}),
            expected: json!({"data": {}}),
        },
        Case {
            name: "lists without a merge strategy are replaced",
            kind: "Pod",
            original: json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["x", "y"]}]}}),
            patch: json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
            expected: json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
        },
        Case {
            name: "every list of an unknown kind is replaced",
            kind: "Widget",
            original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            patch: json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
            expected: json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
        },
        Case {
            name: "a new field keeps no nulls and no directives",
            kind: "Pod",
            original: json!({"spec": {}}),
            patch: json!({"spec": {"securityContext": {"runAsUser": 1, "fsGroup": null}, "nodeSelector": {"$patch": "delete"}}}),
            expected: json!({"spec": {"securityContext": {"runAsUser": 1}}}),
        },
        Case {
            name: "a null patch changes nothing",
            kind: "Pod",
            original: json!({"metadata": {"name": "p"}}),
            patch: Value::Null,
            expected: json!({"metadata": {"name": "p"}}),
        },
    ]);
}

#[test]
fn malformed_patches_are_rejected_with_kubernetes_messages() {
    let pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a"}], "imagePullSecrets": []}});
    let cases = [
        (
            json!({"spec": {"containers": [{"image": "x"}]}}),
            "does not contain declared merge key: name",
            500,
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
            "merging lists cannot yet be specified",
            500,
        ),
        (
            json!({"spec": {"$patch": "frobnicate"}}),
            "unknown patch type: frobnicate in map",
            500,
        ),
        (
            json!({"spec": {"$retainKeys": "containers"}}),
            "invalid patch format of retainKeys",
            400,
        ),
        (
            json!({"spec": {"$retainKeys": ["hostname"], "subdomain": "x"}}),
            "invalid patch format of retainKeys",
            400,
        ),
        (
            json!({"spec": {"$setElementOrder": []}}),
            "invalid patch format of setElementOrder list",
            400,
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            "invalid patch format of primitive list",
            400,
        ),
        (
            json!({"spec": {"imagePullSecrets": [[1]]}}),
            "lists of lists are not supported",
            422,
        ),
        (
            json!({"spec": {"containers": [[1]]}}),
            "list element types are not identical",
            500,
        ),
        (
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"name": "a"}]}}),
            "doesn't match $setElementOrder list",
            500,
        ),
        (json!([1]), "invalid JSON document", 400),
    ];
    for (patch, message, status) in cases {
        let err = apply("Pod", &pod, &patch).expect_err(message);
        assert!(
            err.to_string().contains(message),
            "{err} should mention {message}"
        );
        assert_eq!(err.status_code(), status, "{err}");
    }
}

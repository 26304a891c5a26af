//! Error cases ported from Kubernetes' `validation_test.go` files (TestValidatePodSpec,
//! TestValidateContainers, TestValidatePodUpdate, TestValidateDeployment, TestValidateService, ...):
//! each object is defaulted like the API server does, then must produce exactly the listed
//! (field, reason) pairs.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service};
use serde_json::{Value, json};

use super::*;
use crate::registry::defaults;

/// RFC 7386 merge: objects merge, `null` deletes, anything else replaces.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn with(base: Value, patch: Value) -> Value {
    let mut v = base;
    merge(&mut v, &patch);
    v
}

fn pairs(causes: &[Cause]) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = causes.iter().map(|c| (c.field.clone(), c.reason)).collect();
    v.sort();
    v.dedup();
    v
}

fn want(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = list.iter().map(|(f, r)| (f.to_string(), *r)).collect();
    v.sort();
    v.dedup();
    v
}

/// (case name, merge patch onto the base object, expected (field, reason) pairs)
type Case = (&'static str, Value, Vec<(&'static str, &'static str)>);

const REQ: &str = "FieldValueRequired";
const INV: &str = "FieldValueInvalid";
const NSUP: &str = "FieldValueNotSupported";
const DUP: &str = "FieldValueDuplicate";
const FORB: &str = "FieldValueForbidden";
const NFOUND: &str = "FieldValueNotFound";
const LONG: &str = "FieldValueTooLong";

fn base_pod() -> Value {
    json!({"metadata": {"name": "abc", "namespace": "ns"}, "spec": {"containers": [{"name": "ctr", "image": "image"}]}})
}

fn validate_pod(v: &Value) -> Vec<Cause> {
    let mut p: Pod = serde_json::from_value(v.clone()).expect("pod json");
    defaults::pod(&mut p);
    pod(&p)
}

#[test]
fn valid_pods_have_no_causes() {
    let valid = [
        base_pod(),
        with(base_pod(), json!({"spec": {"volumes": [{"name": "vol", "emptyDir": {}}], "containers": [{"name": "ctr", "image": "image",
            "ports": [{"name": "http", "containerPort": 8080}], "env": [{"name": "A", "value": "b"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "volumeMounts": [{"name": "vol", "mountPath": "/data"}],
            "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
            "livenessProbe": {"httpGet": {"port": "http"}}, "readinessProbe": {"exec": {"command": ["true"]}}}]}})),
        with(base_pod(), json!({"spec": {"initContainers": [{"name": "init", "image": "busybox"}], "restartPolicy": "OnFailure", "activeDeadlineSeconds": 30,
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}], "nodeName": "node-1", "hostname": "web", "subdomain": "svc"}})),
        with(base_pod(), json!({"spec": {"hostNetwork": true, "containers": [{"name": "ctr", "image": "image", "ports": [{"containerPort": 80}]}]}})),
    ];
    for (i, v) in valid.iter().enumerate() {
        assert_eq!(validate_pod(v), vec![], "case {i}");
    }
}

#[test]
fn pod_error_cases_from_validation_test() {
    let ctr = |extra: Value| with(json!({"name": "ctr", "image": "image"}), extra);
    let cases: Vec<Case> = vec![
        ("no containers", json!({"spec": {"containers": []}}), vec![("spec.containers", REQ)]),
        ("zero-length name", json!({"spec": {"containers": [ctr(json!({"name": ""}))]}}), vec![("spec.containers[0].name", REQ)]),
        ("name > 63 characters", json!({"spec": {"containers": [ctr(json!({"name": "a".repeat(64)}))]}}), vec![("spec.containers[0].name", INV)]),
        ("name not a DNS label", json!({"spec": {"containers": [ctr(json!({"name": "a.b.c"}))]}}), vec![("spec.containers[0].name", INV)]),
        ("name not unique", json!({"spec": {"containers": [ctr(json!({})), ctr(json!({}))]}}), vec![("spec.containers[1].name", DUP)]),
        ("zero-length image", json!({"spec": {"containers": [ctr(json!({"image": ""}))]}}), vec![("spec.containers[0].image", REQ)]),
        ("image with leading whitespace", json!({"spec": {"containers": [ctr(json!({"image": " image"}))]}}), vec![("spec.containers[0].image", INV)]),
        ("invalid termination message policy", json!({"spec": {"containers": [ctr(json!({"terminationMessagePolicy": "Unknown"}))]}}), vec![("spec.containers[0].terminationMessagePolicy", NSUP)]),
        ("invalid image pull policy", json!({"spec": {"containers": [ctr(json!({"imagePullPolicy": "Sometimes"}))]}}), vec![("spec.containers[0].imagePullPolicy", NSUP)]),
        ("port name too long", json!({"spec": {"containers": [ctr(json!({"ports": [{"name": "abcdefghijklmnopqrstuvwxyz", "containerPort": 80}]}))]}}), vec![("spec.containers[0].ports[0].name", INV)]),
        ("zero container port", json!({"spec": {"containers": [ctr(json!({"ports": [{"containerPort": 0}]}))]}}), vec![("spec.containers[0].ports[0].containerPort", REQ)]),
        ("container port too big", json!({"spec": {"containers": [ctr(json!({"ports": [{"containerPort": 65536}]}))]}}), vec![("spec.containers[0].ports[0].containerPort", INV)]),
        ("host port too big", json!({"spec": {"containers": [ctr(json!({"ports": [{"containerPort": 80, "hostPort": 65536}]}))]}}), vec![("spec.containers[0].ports[0].hostPort", INV)]),
        ("invalid protocol", json!({"spec": {"containers": [ctr(json!({"ports": [{"containerPort": 80, "protocol": "ICMP"}]}))]}}), vec![("spec.containers[0].ports[0].protocol", NSUP)]),
        ("duplicate port names", json!({"spec": {"containers": [ctr(json!({"ports": [{"name": "p", "containerPort": 80}, {"name": "p", "containerPort": 81}]}))]}}), vec![("spec.containers[0].ports[1].name", DUP)]),
        ("host port conflict", json!({"spec": {"containers": [ctr(json!({"ports": [{"containerPort": 80, "hostPort": 80}]})), ctr(json!({"name": "two", "ports": [{"containerPort": 81, "hostPort": 80}]}))]}}), vec![("spec.containers[1].ports[0].hostPort", DUP)]),
        ("empty env name", json!({"spec": {"containers": [ctr(json!({"env": [{"name": "", "value": "x"}]}))]}}), vec![("spec.containers[0].env[0].name", REQ)]),
        ("env name with =", json!({"spec": {"containers": [ctr(json!({"env": [{"name": "a=b"}]}))]}}), vec![("spec.containers[0].env[0].name", INV)]),
        ("env valueFrom without source", json!({"spec": {"containers": [ctr(json!({"env": [{"name": "a", "valueFrom": {}}]}))]}}), vec![("spec.containers[0].env[0].valueFrom", INV)]),
        ("env fieldRef unsupported path", json!({"spec": {"containers": [ctr(json!({"env": [{"name": "a", "valueFrom": {"fieldRef": {"fieldPath": "metadata.whoops"}}}]}))]}}), vec![("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", NSUP)]),
        ("envFrom without source", json!({"spec": {"containers": [ctr(json!({"envFrom": [{"prefix": "P_"}]}))]}}), vec![("spec.containers[0].envFrom", INV)]),
        ("mount of unknown volume", json!({"spec": {"containers": [ctr(json!({"volumeMounts": [{"name": "missing", "mountPath": "/a"}]}))]}}), vec![("spec.containers[0].volumeMounts[0].name", NFOUND)]),
        ("duplicate mount path", json!({"spec": {"volumes": [{"name": "v"}], "containers": [ctr(json!({"volumeMounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/a"}]}))]}}), vec![("spec.containers[0].volumeMounts[1].mountPath", INV)]),
        ("absolute subPath", json!({"spec": {"volumes": [{"name": "v"}], "containers": [ctr(json!({"volumeMounts": [{"name": "v", "mountPath": "/a", "subPath": "/abs"}]}))]}}), vec![("spec.containers[0].volumeMounts.subPath", INV)]),
        ("duplicate volume names", json!({"spec": {"volumes": [{"name": "v"}, {"name": "v"}]}}), vec![("spec.volumes[1].name", DUP)]),
        ("volume name not a DNS label", json!({"spec": {"volumes": [{"name": "V_1"}]}}), vec![("spec.volumes[0].name", INV)]),
        ("two volume sources", json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}}), vec![("spec.volumes[0].hostPath", FORB)]),
        ("hostPath with backsteps", json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/a/../b"}}]}}), vec![("spec.volumes[0].hostPath.path", INV)]),
        ("secret volume without name", json!({"spec": {"volumes": [{"name": "v", "secret": {}}]}}), vec![("spec.volumes[0].secret.secretName", REQ)]),
        ("bad restart policy", json!({"spec": {"restartPolicy": "Sometimes"}}), vec![("spec.restartPolicy", NSUP)]),
        ("bad dns policy", json!({"spec": {"dnsPolicy": "Anything"}}), vec![("spec.dnsPolicy", NSUP)]),
        ("dnsPolicy None without dnsConfig", json!({"spec": {"dnsPolicy": "None"}}), vec![("spec.dnsConfig", REQ)]),
        ("zero activeDeadlineSeconds", json!({"spec": {"activeDeadlineSeconds": 0}}), vec![("spec.activeDeadlineSeconds", INV)]),
        ("bad nodeName", json!({"spec": {"nodeName": "Node_1"}}), vec![("spec.nodeName", INV)]),
        ("bad hostname", json!({"spec": {"hostname": "Host.Name"}}), vec![("spec.hostname", INV)]),
        ("bad nodeSelector label", json!({"spec": {"nodeSelector": {"a/b/c": "x"}}}), vec![("spec.nodeSelector", INV)]),
        ("probe without handler", json!({"spec": {"containers": [ctr(json!({"livenessProbe": {"periodSeconds": 5}}))]}}), vec![("spec.containers[0].livenessProbe", REQ)]),
        ("probe with two handlers", json!({"spec": {"containers": [ctr(json!({"readinessProbe": {"exec": {"command": ["x"]}, "tcpSocket": {"port": 80}}}))]}}), vec![("spec.containers[0].readinessProbe.tcpSocket", FORB)]),
        ("liveness successThreshold not 1", json!({"spec": {"containers": [ctr(json!({"livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}}))]}}), vec![("spec.containers[0].livenessProbe.successThreshold", INV)]),
        ("negative periodSeconds", json!({"spec": {"containers": [ctr(json!({"readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": -1}}))]}}), vec![("spec.containers[0].readinessProbe.periodSeconds", INV)]),
        ("exec probe without command", json!({"spec": {"containers": [ctr(json!({"readinessProbe": {"exec": {}}}))]}}), vec![("spec.containers[0].readinessProbe.exec.command", REQ)]),
        ("httpGet bad port name", json!({"spec": {"containers": [ctr(json!({"livenessProbe": {"httpGet": {"port": "Not_Valid"}}}))]}}), vec![("spec.containers[0].livenessProbe.httpGet.port", INV)]),
        ("requests above limits", json!({"spec": {"containers": [ctr(json!({"resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "200m"}}}))]}}), vec![("spec.containers[0].resources.requests", INV)]),
        ("unknown resource name", json!({"spec": {"containers": [ctr(json!({"resources": {"limits": {"disk": "10G"}}}))]}}), vec![("spec.containers[0].resources.limits[disk]", INV), ("spec.containers[0].resources.requests[disk]", INV)]),
        ("malformed quantity", json!({"spec": {"containers": [ctr(json!({"resources": {"requests": {"memory": "lots"}}}))]}}), vec![("spec.containers[0].resources.requests[memory]", INV)]),
        ("negative quantity", json!({"spec": {"containers": [ctr(json!({"resources": {"requests": {"memory": "-1Mi"}}}))]}}), vec![("spec.containers[0].resources.requests[memory]", INV)]),
        ("extended resource without limit", json!({"spec": {"containers": [ctr(json!({"resources": {"requests": {"example.com/gpu": "1"}}}))]}}), vec![("spec.containers[0].resources.limits", REQ)]),
        ("init container name clashes", json!({"spec": {"initContainers": [ctr(json!({}))]}}), vec![("spec.initContainers[0].name", DUP)]),
        ("init container with probe", json!({"spec": {"initContainers": [ctr(json!({"name": "init", "livenessProbe": {"tcpSocket": {"port": 80}}}))]}}), vec![("spec.initContainers[0].livenessProbe", FORB)]),
        ("init container restartPolicy Never", json!({"spec": {"initContainers": [ctr(json!({"name": "init", "restartPolicy": "Never"}))]}}), vec![("spec.initContainers[0].restartPolicy", NSUP)]),
        ("regular container restartPolicy", json!({"spec": {"containers": [ctr(json!({"restartPolicy": "Always"}))]}}), vec![("spec.containers[0].restartPolicy", FORB)]),
        ("host network port mismatch", json!({"spec": {"hostNetwork": true, "containers": [ctr(json!({"ports": [{"containerPort": 80, "hostPort": 81}]}))]}}), vec![("spec.containers[0].ports[0].hostPort", INV)]),
        ("toleration without key must be Exists", json!({"spec": {"tolerations": [{"operator": "Equal", "value": "bar"}]}}), vec![("spec.tolerations[0].operator", INV)]),
        ("tolerationSeconds needs NoExecute", json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 10}]}}), vec![("spec.tolerations[0].effect", INV)]),
        ("runAsUser out of range", json!({"spec": {"securityContext": {"runAsUser": -1}}}), vec![("spec.securityContext.runAsUser", INV)]),
        ("ephemeral containers on create", json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}}), vec![("spec.ephemeralContainers", FORB)]),
        ("metadata name not a subdomain", json!({"metadata": {"name": "Bad_Name"}}), vec![("metadata.name", INV)]),
        ("metadata name missing", json!({"metadata": {"name": null}}), vec![("metadata.name", REQ)]),
        ("namespace missing", json!({"metadata": {"namespace": null}}), vec![("metadata.namespace", REQ)]),
        ("bad label key", json!({"metadata": {"labels": {"bad key": "v"}}}), vec![("metadata.labels", INV)]),
        ("bad label value", json!({"metadata": {"labels": {"k": "-v"}}}), vec![("metadata.labels", INV)]),
        ("annotations too large", json!({"metadata": {"annotations": {"a": "x".repeat(256 * 1024)}}}), vec![("metadata.annotations", LONG)]),
        ("unqualified non-standard finalizer", json!({"metadata": {"finalizers": ["custom"]}}), vec![("metadata.finalizers[0]", INV)]),
    ];
    for (name, patch, expected) in cases {
        let got = validate_pod(&with(base_pod(), patch));
        assert_eq!(pairs(&got), want(&expected), "{name}: {got:#?}");
    }
}

#[test]
fn pod_messages_read_like_kubectl_output() {
    let got = validate_pod(&with(base_pod(), json!({"metadata": {"name": "Bad"}})));
    assert_eq!(
        got[0].describe(),
        "metadata.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let got = validate_pod(&with(base_pod(), json!({"spec": {"containers": [{"name": "ctr", "image": "i", "resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "0.2"}}}]}})));
    assert_eq!(got[0].describe(), "spec.containers[0].resources.requests: Invalid value: \"200m\": must be less than or equal to cpu limit of 100m");
    let got = validate_pod(&with(base_pod(), json!({"spec": {"restartPolicy": "Sometimes"}})));
    assert_eq!(got[0].describe(), "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
    let got = validate_pod(&with(base_pod(), json!({"metadata": {"name": null}})));
    assert_eq!(got[0].describe(), "metadata.name: Required value: name or generateName is required");
    let got = validate_pod(&with(base_pod(), json!({"spec": {"containers": [{"name": "ctr", "image": "i", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}})));
    assert_eq!(got[0].describe(), "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"");
}

#[test]
fn generate_name_stands_in_for_the_name_and_may_end_with_a_dash() {
    let v = with(base_pod(), json!({"metadata": {"name": null, "generateName": "web-"}}));
    assert_eq!(validate_pod(&v), vec![]);
    let v = with(base_pod(), json!({"metadata": {"name": null, "generateName": "Web-"}}));
    assert_eq!(pairs(&validate_pod(&v)), want(&[("metadata.generateName", INV)]));
}

fn defaulted_pod(v: Value) -> Pod {
    let mut p: Pod = serde_json::from_value(v).expect("pod json");
    defaults::pod(&mut p);
    p.metadata.resource_version = Some("1".into());
    p
}

#[test]
fn pod_updates_allow_only_images_deadlines_and_added_tolerations() {
    let old = defaulted_pod(with(base_pod(), json!({"spec": {"activeDeadlineSeconds": 100, "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}})));
    let ok = [
        json!({"spec": {"containers": [{"name": "ctr", "image": "image:v2", "imagePullPolicy": "Always"}]}}),
        json!({"spec": {"activeDeadlineSeconds": 50}}),
        json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}, {"key": "b", "operator": "Exists"}]}}),
        json!({"metadata": {"labels": {"new": "label"}}}),
    ];
    for patch in ok {
        let new = defaulted_pod(with(serde_json::to_value(&old).unwrap(), patch.clone()));
        assert_eq!(pod_update(&new, &old), vec![], "{patch}");
    }
    let bad: Vec<(Value, Vec<(&str, &'static str)>)> = vec![
        (json!({"spec": {"restartPolicy": "Never"}}), vec![("spec", FORB)]),
        (json!({"spec": {"containers": [{"name": "ctr", "image": "image", "ports": [{"containerPort": 80}]}]}}), vec![("spec", FORB)]),
        (json!({"spec": {"containers": [{"name": "ctr", "image": "image"}, {"name": "two", "image": "image"}]}}), vec![("spec.containers", FORB)]),
        (json!({"spec": {"containers": [{"name": "ctr", "image": ""}]}}), vec![("spec.containers[0].image", REQ)]),
        (json!({"spec": {"activeDeadlineSeconds": 200}}), vec![("spec.activeDeadlineSeconds", INV)]),
        (json!({"spec": {"activeDeadlineSeconds": null}}), vec![("spec.activeDeadlineSeconds", INV)]),
        (json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]}}), vec![("spec.tolerations", FORB)]),
        (json!({"metadata": {"name": "other"}}), vec![("metadata.name", INV)]),
    ];
    for (patch, expected) in bad {
        let new = defaulted_pod(with(serde_json::to_value(&old).unwrap(), patch.clone()));
        let got = pod_update(&new, &old);
        assert_eq!(pairs(&got), want(&expected), "{patch}: {got:#?}");
    }
    let new = defaulted_pod(with(serde_json::to_value(&old).unwrap(), json!({"spec": {"restartPolicy": "Never"}})));
    let msg = &pod_update(&new, &old)[0].message;
    assert!(msg.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{msg}");
    assert!(msg.contains("restartPolicy"), "{msg}");
}

fn base_deployment() -> Value {
    json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "ctr", "image": "nginx"}]}}}})
}

fn defaulted_deployment(v: Value) -> Deployment {
    let mut d: Deployment = serde_json::from_value(v).expect("deployment json");
    defaults::deployment(&mut d);
    d
}

#[test]
fn deployment_error_cases_from_validation_test() {
    assert_eq!(deployment(&defaulted_deployment(base_deployment())), vec![]);
    let cases: Vec<Case> = vec![
        ("missing selector", json!({"spec": {"selector": null}}), vec![("spec.selector", REQ), ("spec.template.metadata.labels", INV)]),
        ("selector does not match", json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}), vec![("spec.template.metadata.labels", INV)]),
        ("bad selector operator", json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Like"}]}}}), vec![("spec.selector.matchExpressions[0].operator", INV), ("spec.selector", INV)]),
        ("negative replicas", json!({"spec": {"replicas": -1}}), vec![("spec.replicas", INV)]),
        ("negative revisionHistoryLimit", json!({"spec": {"revisionHistoryLimit": -2}}), vec![("spec.revisionHistoryLimit", INV)]),
        ("unknown strategy", json!({"spec": {"strategy": {"type": "Blue"}}}), vec![("spec.strategy", NSUP)]),
        ("rollingUpdate with Recreate", json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}), vec![("spec.strategy.rollingUpdate", FORB)]),
        ("maxSurge not a percent", json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "20Percent"}}}}), vec![("spec.strategy.rollingUpdate.maxSurge", INV)]),
        ("maxSurge and maxUnavailable zero", json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}}}), vec![("spec.strategy.rollingUpdate.maxUnavailable", INV)]),
        ("maxUnavailable over 100%", json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": "110%"}}}}), vec![("spec.strategy.rollingUpdate.maxUnavailable", INV)]),
        ("negative maxUnavailable", json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": -1}}}}), vec![("spec.strategy.rollingUpdate.maxUnavailable", INV)]),
        ("progress deadline not above minReady", json!({"spec": {"progressDeadlineSeconds": 600, "minReadySeconds": 600}}), vec![("spec.progressDeadlineSeconds", INV)]),
        ("template restartPolicy Never", json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}), vec![("spec.template.spec.restartPolicy", NSUP)]),
        ("template activeDeadlineSeconds", json!({"spec": {"template": {"spec": {"activeDeadlineSeconds": 10}}}}), vec![("spec.template.spec.activeDeadlineSeconds", FORB)]),
        ("template container without image", json!({"spec": {"template": {"spec": {"containers": [{"name": "ctr", "image": ""}]}}}}), vec![("spec.template.spec.containers[0].image", REQ)]),
        ("template label invalid", json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "x": "-bad"}}}}}), vec![("spec.template.labels", INV)]),
        ("name not a subdomain", json!({"metadata": {"name": "Web"}}), vec![("metadata.name", INV)]),
    ];
    for (name, patch, expected) in cases {
        let got = deployment(&defaulted_deployment(with(base_deployment(), patch)));
        assert_eq!(pairs(&got), want(&expected), "{name}: {got:#?}");
    }
    // A merge patch cannot empty a map, so build the empty-selector case directly.
    let mut empty = base_deployment();
    empty["spec"]["selector"] = json!({"matchLabels": {}});
    assert_eq!(pairs(&deployment(&defaulted_deployment(empty))), want(&[("spec.selector", INV)]));
}

#[test]
fn deployment_messages_match_the_api_server() {
    let d = defaulted_deployment(with(base_deployment(), json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}})));
    assert_eq!(deployment(&d)[0].describe(), "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0");
    let d = defaulted_deployment(with(base_deployment(), json!({"spec": {"selector": {"matchLabels": {"app": "x"}}}})));
    assert_eq!(
        deployment(&d)[0].describe(),
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
    );
}

#[test]
fn deployment_and_replica_set_selectors_are_immutable() {
    let old = defaulted_deployment(base_deployment());
    let new = defaulted_deployment(with(base_deployment(), json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}}, "template": {"metadata": {"labels": {"tier": "x"}}}}})));
    let got = deployment_update(&new, &old);
    assert_eq!(pairs(&got), want(&[("spec.selector", INV)]));
    assert_eq!(
        got[0].describe(),
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    let scaled = defaulted_deployment(with(base_deployment(), json!({"spec": {"replicas": 5}})));
    assert_eq!(deployment_update(&scaled, &old), vec![]);

    let rs = |v: Value| {
        let mut r: ReplicaSet = serde_json::from_value(v).unwrap();
        defaults::replica_set(&mut r);
        r
    };
    let old_rs = rs(base_deployment());
    assert_eq!(replica_set(&old_rs), vec![]);
    let new_rs = rs(with(base_deployment(), json!({"spec": {"selector": {"matchLabels": {"app": "web2"}}, "template": {"metadata": {"labels": {"app": "web2"}}}}})));
    assert_eq!(pairs(&replica_set_update(&new_rs, &old_rs)), want(&[("spec.selector", INV)]));
    assert_eq!(pairs(&replica_set(&rs(with(base_deployment(), json!({"spec": {"replicas": -1}}))))), want(&[("spec.replicas", INV)]));
}

fn base_service() -> Value {
    json!({"metadata": {"name": "svc", "namespace": "ns"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})
}

fn defaulted_service(v: Value) -> Service {
    let mut s: Service = serde_json::from_value(v).expect("service json");
    defaults::service(&mut s);
    s
}

#[test]
fn service_error_cases_from_validation_test() {
    assert_eq!(service(&defaulted_service(base_service())), vec![]);
    let valid = [
        json!({"spec": {"clusterIP": "None", "ports": null}}),
        json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
        json!({"spec": {"type": "ExternalName", "externalName": "example.com.", "selector": null}}),
        json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000}}),
        json!({"spec": {"ports": [{"name": "a", "port": 80, "targetPort": "http"}, {"name": "b", "port": 80, "protocol": "UDP"}]}}),
    ];
    for patch in valid {
        let got = service(&defaulted_service(with(base_service(), patch.clone())));
        assert_eq!(got, vec![], "{patch}");
    }
    let cases: Vec<Case> = vec![
        ("missing ports", json!({"spec": {"ports": null}}), vec![("spec.ports", REQ)]),
        ("missing port name with several ports", json!({"spec": {"ports": [{"port": 80}, {"name": "b", "port": 81}]}}), vec![("spec.ports[0].name", REQ)]),
        ("invalid port name", json!({"spec": {"ports": [{"name": "INVALID", "port": 80}]}}), vec![("spec.ports[0].name", INV)]),
        ("port zero", json!({"spec": {"ports": [{"port": 0}]}}), vec![("spec.ports[0].port", INV), ("spec.ports[0].targetPort", INV)]),
        ("port too big", json!({"spec": {"ports": [{"port": 65536, "targetPort": 80}]}}), vec![("spec.ports[0].port", INV)]),
        ("bad protocol", json!({"spec": {"ports": [{"port": 80, "protocol": "INVALID"}]}}), vec![("spec.ports[0].protocol", NSUP)]),
        ("bad targetPort name", json!({"spec": {"ports": [{"port": 80, "targetPort": "Not_Valid"}]}}), vec![("spec.ports[0].targetPort", INV)]),
        ("targetPort too big", json!({"spec": {"ports": [{"port": 80, "targetPort": 65536}]}}), vec![("spec.ports[0].targetPort", INV)]),
        ("duplicate port names", json!({"spec": {"ports": [{"name": "p", "port": 80}, {"name": "p", "port": 81}]}}), vec![("spec.ports[1].name", DUP)]),
        ("duplicate port and protocol", json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}), vec![("spec.ports[1]", DUP)]),
        ("invalid type", json!({"spec": {"type": "Fancy"}}), vec![("spec.type", NSUP)]),
        ("nodePort on ClusterIP", json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}}), vec![("spec.ports[0].nodePort", FORB)]),
        ("nodePort out of range", json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}}), vec![("spec.ports[0].nodePort", INV)]),
        ("duplicate nodePorts", json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}}), vec![("spec.ports[1].nodePort", DUP)]),
        ("invalid clusterIP", json!({"spec": {"clusterIP": "invalid"}}), vec![("spec.clusterIPs[0]", INV)]),
        ("headless NodePort", json!({"spec": {"type": "NodePort", "clusterIP": "None"}}), vec![("spec.clusterIPs[0]", INV)]),
        ("two IPs of one family", json!({"spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "10.0.0.2"]}}), vec![("spec.clusterIPs", INV)]),
        ("bad session affinity", json!({"spec": {"sessionAffinity": "Sticky"}}), vec![("spec.sessionAffinity", NSUP)]),
        ("client IP timeout too long", json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}}}), vec![("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV)]),
        ("bad selector value", json!({"spec": {"selector": {"app": "-web"}}}), vec![("spec.selector", INV)]),
        ("ExternalName without name", json!({"spec": {"type": "ExternalName"}}), vec![("spec.externalName", REQ)]),
        ("ExternalName with clusterIP", json!({"spec": {"type": "ExternalName", "externalName": "a.b", "clusterIP": "10.0.0.1"}}), vec![("spec.clusterIPs", FORB)]),
        ("loopback external IP", json!({"spec": {"externalIPs": ["127.0.0.1"]}}), vec![("spec.externalIPs[0]", INV)]),
        ("source ranges need LoadBalancer", json!({"spec": {"loadBalancerSourceRanges": ["10.0.0.0/8"]}}), vec![("spec.LoadBalancerSourceRanges", FORB)]),
        ("healthCheckNodePort needs Local LB", json!({"spec": {"healthCheckNodePort": 31000}}), vec![("spec.healthCheckNodePort", INV)]),
        ("externalTrafficPolicy on internal service", json!({"spec": {"externalTrafficPolicy": "Local"}}), vec![("spec.externalTrafficPolicy", INV)]),
        ("name must be a DNS-1035 label", json!({"metadata": {"name": "1svc"}}), vec![("metadata.name", INV)]),
        ("bad appProtocol", json!({"spec": {"ports": [{"port": 80, "appProtocol": "a/b/c"}]}}), vec![("spec.ports[0].appProtocol", INV)]),
    ];
    for (name, patch, expected) in cases {
        let got = service(&defaulted_service(with(base_service(), patch)));
        assert_eq!(pairs(&got), want(&expected), "{name}: {got:#?}");
    }
}

#[test]
fn node_port_range_is_a_parameter_and_its_message_is_the_allocators() {
    let s = defaulted_service(with(base_service(), json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}})));
    assert_eq!(
        service(&s)[0].describe(),
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    assert_eq!(service_with_range(&s, 8000..=9000), vec![]);
    let dup = defaulted_service(with(base_service(), json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}})));
    assert_eq!(
        service(&dup)[0].message,
        "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
    );
}

#[test]
fn service_cluster_ip_is_immutable_once_set() {
    let old = defaulted_service(with(base_service(), json!({"spec": {"clusterIP": "10.0.0.10"}})));
    let changed = defaulted_service(with(base_service(), json!({"spec": {"clusterIP": "10.0.0.11"}})));
    assert_eq!(pairs(&service_update(&changed, &old)), want(&[("spec.clusterIPs[0]", INV)]));
    let same = defaulted_service(with(base_service(), json!({"spec": {"clusterIP": "10.0.0.10", "ports": [{"port": 8080}]}})));
    assert_eq!(service_update(&same, &old), vec![]);
    let to_external = defaulted_service(with(base_service(), json!({"spec": {"type": "ExternalName", "externalName": "x.y", "clusterIP": null, "clusterIPs": null}})));
    assert_eq!(service_update(&to_external, &old), vec![]);
}

#[test]
fn namespaces_nodes_endpoints_events_leases_config_maps_and_secrets() {
    let ns = |v: Value| serde_json::from_value::<Namespace>(v).unwrap();
    assert_eq!(namespace(&ns(json!({"metadata": {"name": "team-a"}}))), vec![]);
    assert_eq!(pairs(&namespace(&ns(json!({"metadata": {"name": "team.a"}})))), want(&[("metadata.name", INV)]));
    assert_eq!(pairs(&namespace(&ns(json!({"metadata": {"name": "a", "namespace": "b"}})))), want(&[("metadata.namespace", FORB)]));

    let node_of = |v: Value| serde_json::from_value::<Node>(v).unwrap();
    assert_eq!(node(&node_of(json!({"metadata": {"name": "node-1.example.com"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}))), vec![]);
    let bad = node_of(json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}, {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/33"]},
        "status": {"capacity": {"cpu": "-1"}}}));
    assert_eq!(
        pairs(&node(&bad)),
        want(&[("metadata.taints[0].effect", NSUP), ("metadata.taints[2]", DUP), ("spec.podCIDRs[0]", INV), ("status.capacity.cpu", INV)])
    );

    let ep = |v: Value| {
        let mut e: Endpoints = serde_json::from_value(v).unwrap();
        defaults::endpoints(&mut e);
        e
    };
    assert_eq!(endpoints(&ep(json!({"metadata": {"name": "svc", "namespace": "ns"}, "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}))), vec![]);
    let bad = ep(json!({"metadata": {"name": "svc", "namespace": "ns"}, "subsets": [{"ports": [{"port": 80}, {"name": "b", "port": 0}]}, {"addresses": [{"ip": "127.0.0.1"}]}]}));
    assert_eq!(pairs(&endpoints(&bad)), want(&[("subsets[0]", REQ), ("subsets[0].ports[0].name", REQ), ("subsets[0].ports[1].port", INV), ("subsets[1].addresses[0].ip", INV)]));

    let ev = |v: Value| serde_json::from_value::<Event>(v).unwrap();
    let good = ev(json!({"metadata": {"name": "e", "namespace": "ns"}, "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p"}}));
    assert_eq!(event(&good), vec![]);
    let mismatch = ev(json!({"metadata": {"name": "e", "namespace": "ns"}, "involvedObject": {"kind": "Pod", "namespace": "other"}}));
    assert_eq!(pairs(&event(&mismatch)), want(&[("involvedObject.namespace", INV)]));
    let new_style = ev(json!({"metadata": {"name": "e", "namespace": "ns"}, "eventTime": "2024-01-01T00:00:00.000000Z", "involvedObject": {"namespace": "ns"}}));
    assert_eq!(pairs(&event(&new_style)), want(&[("reportingController", REQ), ("reportingController", INV), ("reportingInstance", REQ), ("action", REQ), ("reason", REQ)]));

    let l = |v: Value| serde_json::from_value::<Lease>(v).unwrap();
    assert_eq!(lease(&l(json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}))), vec![]);
    let bad = l(json!({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "a"}}));
    assert_eq!(pairs(&lease(&bad)), want(&[("spec.leaseDurationSeconds", INV), ("spec.leaseTransitions", INV), ("spec.preferredHolder", FORB)]));

    let cm = |v: Value| serde_json::from_value::<ConfigMap>(v).unwrap();
    assert_eq!(config_map(&cm(json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"key.name": "v", "KEY_2": "w"}}))), vec![]);
    let bad = cm(json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"a/b": "v", "dup": "x"}, "binaryData": {"dup": "eA=="}}));
    assert_eq!(pairs(&config_map(&bad)), want(&[("data[a/b]", INV), ("data[dup]", INV)]));
    let big = cm(json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "x".repeat(1024 * 1024 + 1)}}));
    assert_eq!(pairs(&config_map(&big)), want(&[("", LONG)]));
    let frozen = cm(json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}, "immutable": true}));
    let edited = cm(json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "w"}, "immutable": true}));
    assert_eq!(pairs(&config_map_update(&edited, &frozen)), want(&[("data", FORB)]));

    let sec = |v: Value| {
        let mut s: Secret = serde_json::from_value(v).unwrap();
        defaults::secret(&mut s);
        s
    };
    assert_eq!(secret(&sec(json!({"metadata": {"name": "s", "namespace": "ns"}, "data": {"password": "aHVudGVyMg=="}}))), vec![]);
    let tls = sec(json!({"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}));
    assert_eq!(pairs(&secret(&tls)), want(&[("data[tls.key]", REQ)]));
    let docker = sec(json!({"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm90IGpzb24="}}));
    assert_eq!(pairs(&secret(&docker)), want(&[("data[.dockerconfigjson]", INV)]));
    let sa = sec(json!({"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/service-account-token"}));
    assert_eq!(pairs(&secret(&sa)), want(&[("metadata.annotations[kubernetes.io/service-account.name]", REQ)]));
    let retyped = sec(json!({"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/basic-auth", "data": {"username": "eA=="}}));
    assert_eq!(pairs(&secret_update(&retyped, &sec(json!({"metadata": {"name": "s", "namespace": "ns"}}))))[0], ("type".to_string(), INV));
}

#[test]
fn object_meta_rules_per_kind() {
    let meta = |v: Value| serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(v).unwrap();
    assert_eq!(object_meta(&meta(json!({"name": "a.b", "namespace": "ns"})), true, NameRule::Subdomain), vec![]);
    assert_eq!(pairs(&object_meta(&meta(json!({"name": "a.b"})), false, NameRule::Label)), want(&[("metadata.name", INV)]));
    assert_eq!(object_meta(&meta(json!({"name": "Any Thing"})), false, NameRule::Path), vec![]);
    assert_eq!(pairs(&object_meta(&meta(json!({"name": "a/b"})), false, NameRule::Path)), want(&[("metadata.name", INV)]));
    let owners = meta(json!({"name": "a", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r1", "uid": "1", "controller": true},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r2", "uid": "2", "controller": true},
        {"apiVersion": "", "kind": "", "name": "", "uid": ""}]}));
    assert_eq!(
        pairs(&object_meta(&owners, false, NameRule::Subdomain)),
        want(&[("metadata.ownerReferences", INV), ("metadata.ownerReferences.apiVersion", INV), ("metadata.ownerReferences.kind", INV), ("metadata.ownerReferences.name", INV), ("metadata.ownerReferences.uid", INV)])
    );
    let both = meta(json!({"name": "a", "finalizers": ["orphan", "foregroundDeletion"]}));
    assert_eq!(pairs(&object_meta(&both, false, NameRule::Subdomain)), want(&[("metadata.finalizers", INV)]));
}

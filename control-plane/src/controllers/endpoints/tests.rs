//! Cases after `pkg/controller/endpoint/endpoints_controller_test.go`.

use super::*;
use serde_json::{Value, json};

fn service(spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": "foo", "namespace": "ns", "labels": {"app": "foo"}}, "spec": spec})).unwrap()
}

/// A running pod `name` at `ip` with label app=foo and one container port "http" 8080.
fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "foo"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

fn with(mut p: Pod, f: impl FnOnce(&mut Value)) -> Pod {
    let mut v = serde_json::to_value(&p).unwrap();
    f(&mut v);
    p = serde_json::from_value(v).unwrap();
    p
}

fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
}

fn tcp_80_to(target: Value) -> Value {
    json!({"selector": {"app": "foo"}, "ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": target}]})
}

#[test]
fn a_service_without_selector_is_left_to_whoever_writes_its_endpoints() {
    let svc = service(json!({"ports": [{"port": 80}]}));
    let p = pod("a", "10.0.0.1", true);
    assert_eq!(reconcile(&svc, None, &[&p]), Action::Nothing);
}

#[test]
fn ready_and_not_ready_pods_go_to_their_own_lists() {
    let svc = service(tcp_80_to(json!(8080)));
    let (a, b, c) = (pod("a", "10.0.0.2", true), pod("b", "10.0.0.1", true), pod("c", "10.0.0.3", false));
    let subsets = desired_subsets(&svc, &[&a, &b, &c]);
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"], "sorted by address");
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
    let port = &subsets[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("web"), 8080, Some("TCP")));
    let addr = &subsets[0].addresses.as_ref().unwrap()[0];
    assert_eq!(addr.node_name.as_deref(), Some("node-1"));
    assert_eq!(addr.target_ref.as_ref().unwrap().name.as_deref(), Some("b"));
}

#[test]
fn pods_that_do_not_belong_are_left_out() {
    let svc = service(tcp_80_to(json!(8080)));
    let cases: Vec<(&str, Pod)> = vec![
        ("no address yet", with(pod("a", "10.0.0.1", false), |v| v["status"]["podIP"] = json!(null))),
        ("being deleted", with(pod("a", "10.0.0.1", true), |v| v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"))),
        ("other labels", with(pod("a", "10.0.0.1", true), |v| v["metadata"]["labels"]["app"] = json!("bar"))),
        ("other namespace", with(pod("a", "10.0.0.1", true), |v| v["metadata"]["namespace"] = json!("other"))),
        ("finished, never restarts", with(pod("a", "10.0.0.1", false), |v| {
            v["spec"]["restartPolicy"] = json!("Never");
            v["status"]["phase"] = json!("Failed");
        })),
        ("succeeded, restarts on failure", with(pod("a", "10.0.0.1", false), |v| {
            v["spec"]["restartPolicy"] = json!("OnFailure");
            v["status"]["phase"] = json!("Succeeded");
        })),
    ];
    for (why, p) in cases {
        assert!(desired_subsets(&svc, &[&p]).is_empty(), "{why}");
    }
}

#[test]
fn a_failed_pod_that_restarts_on_failure_stays_as_not_ready() {
    let svc = service(tcp_80_to(json!(8080)));
    let p = with(pod("a", "10.0.0.1", false), |v| {
        v["spec"]["restartPolicy"] = json!("OnFailure");
        v["status"]["phase"] = json!("Failed");
    });
    let subsets = desired_subsets(&svc, &[&p]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.1"]);
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready_even_terminating_ones() {
    let mut spec = tcp_80_to(json!(8080));
    spec["publishNotReadyAddresses"] = json!(true);
    let svc = service(spec);
    let a = pod("a", "10.0.0.1", false);
    let b = with(pod("b", "10.0.0.2", true), |v| v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"));
    let subsets = desired_subsets(&svc, &[&a, &b]);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn a_named_target_port_resolves_per_pod_and_pods_without_it_are_skipped() {
    let svc = service(tcp_80_to(json!("http")));
    let a = pod("a", "10.0.0.1", true);
    let b = with(pod("b", "10.0.0.2", true), |v| v["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090));
    let c = with(pod("c", "10.0.0.3", true), |v| v["spec"]["containers"][0]["ports"][0]["name"] = json!("other"));
    let subsets = desired_subsets(&svc, &[&a, &b, &c]);
    let by_port: BTreeMap<i32, Vec<&str>> = subsets.iter().map(|s| (s.ports.as_ref().unwrap()[0].port, ips(&s.addresses))).collect();
    assert_eq!(by_port, BTreeMap::from([(8080, vec!["10.0.0.1"]), (9090, vec!["10.0.0.2"])]));
}

#[test]
fn a_named_port_must_match_the_protocol_too() {
    let svc = service(json!({"selector": {"app": "foo"}, "ports": [{"port": 53, "protocol": "UDP", "targetPort": "http"}]}));
    assert!(desired_subsets(&svc, &[&pod("a", "10.0.0.1", true)]).is_empty());
}

#[test]
fn a_missing_or_zero_target_port_means_the_service_port() {
    let svc = service(json!({"selector": {"app": "foo"}, "ports": [{"port": 80}]}));
    let subsets = desired_subsets(&svc, &[&pod("a", "10.0.0.1", true)]);
    let port = &subsets[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.port, port.protocol.as_deref(), port.name.as_deref()), (80, Some("TCP"), None));
    let svc = service(tcp_80_to(json!(0)));
    assert_eq!(desired_subsets(&svc, &[&pod("a", "10.0.0.1", true)])[0].ports.as_ref().unwrap()[0].port, 80);
}

#[test]
fn every_service_port_is_listed_in_one_subset() {
    let svc = service(json!({"selector": {"app": "foo"}, "ports": [
        {"name": "b", "port": 81, "targetPort": 8081}, {"name": "a", "port": 80, "targetPort": 8080},
    ]}));
    let subsets = desired_subsets(&svc, &[&pod("a", "10.0.0.1", true), &pod("b", "10.0.0.2", false)]);
    assert_eq!(subsets.len(), 1);
    let names: Vec<_> = subsets[0].ports.iter().flatten().map(|p| p.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.2"]);
}

#[test]
fn an_empty_selector_selects_every_pod_of_the_namespace() {
    let svc = service(json!({"selector": {}, "ports": [{"port": 80}]}));
    let p = with(pod("a", "10.0.0.1", true), |v| v["metadata"]["labels"] = json!({"x": "y"}));
    assert_eq!(ips(&desired_subsets(&svc, &[&p])[0].addresses), ["10.0.0.1"]);
}

#[test]
fn a_headless_service_without_ports_still_lists_its_pods_and_is_labelled() {
    let svc = service(json!({"selector": {"app": "foo"}, "clusterIP": "None"}));
    let subsets = desired_subsets(&svc, &[&pod("a", "10.0.0.1", true)]);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    assert!(subsets[0].ports.is_none());
    assert_eq!(desired_labels(&svc).get(HEADLESS_LABEL).map(String::as_str), Some(""));
    // A service with a cluster IP and no ports lists nothing.
    let svc = service(json!({"selector": {"app": "foo"}}));
    assert!(desired_subsets(&svc, &[&pod("a", "10.0.0.1", true)]).is_empty());
}

#[test]
fn the_hostname_is_set_only_for_pods_in_the_services_subdomain() {
    let svc = service(json!({"selector": {"app": "foo"}, "clusterIP": "None", "ports": [{"port": 80}]}));
    let mine = with(pod("a", "10.0.0.1", true), |v| {
        v["spec"]["hostname"] = json!("web-0");
        v["spec"]["subdomain"] = json!("foo");
    });
    let other = with(pod("b", "10.0.0.2", true), |v| {
        v["spec"]["hostname"] = json!("web-1");
        v["spec"]["subdomain"] = json!("bar");
    });
    let subsets = desired_subsets(&svc, &[&mine, &other]);
    let hosts: Vec<_> = subsets[0].addresses.iter().flatten().map(|a| a.hostname.as_deref()).collect();
    assert_eq!(hosts, [Some("web-0"), None]);
}

#[test]
fn unchanged_endpoints_are_not_written_again_and_changed_labels_are() {
    let svc = service(tcp_80_to(json!(8080)));
    let p = pod("a", "10.0.0.1", true);
    let Action::Write { labels, subsets } = reconcile(&svc, None, &[&p]) else { panic!("a missing Endpoints is written") };
    let mut current = Endpoints { subsets: Some(subsets), ..Default::default() };
    current.metadata.labels = Some(labels);
    assert_eq!(reconcile(&svc, Some(&current), &[&p]), Action::Nothing);
    current.metadata.labels = Some(BTreeMap::from([("app".to_string(), "old".to_string())]));
    assert!(matches!(reconcile(&svc, Some(&current), &[&p]), Action::Write { .. }));
}

#[test]
fn a_service_with_no_matching_pods_gets_empty_endpoints() {
    let svc = service(tcp_80_to(json!(8080)));
    assert_eq!(reconcile(&svc, None, &[]), Action::Write { labels: desired_labels(&svc), subsets: vec![] });
}

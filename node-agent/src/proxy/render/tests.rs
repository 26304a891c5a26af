use super::*;
use crate::proxy::{Protocol, ServicePort};

fn ep(ip: &str, ready: bool) -> Endpoint {
    Endpoint { ip: ip.parse().unwrap(), port: 8080, node_name: Some("a".into()), ready, serving: ready, terminating: false }
}

fn web(endpoints: Vec<Endpoint>) -> Service {
    Service {
        namespace: "default".into(),
        name: "web".into(),
        cluster_ip: Some("10.96.0.20".parse().unwrap()),
        client_ip_affinity_seconds: None,
        internal_local_only: false,
        ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: Some(30080), endpoints }],
    }
}

fn state(services: Vec<Service>) -> ProxyState {
    ProxyState { node_name: "a".into(), services }
}

fn count(script: &str, needle: &str) -> usize {
    script.matches(needle).count()
}

#[test]
fn each_ready_endpoint_gets_a_dnat_chain_picked_at_random() {
    let s = render(&state(vec![web(vec![ep("10.244.0.2", true), ep("10.244.1.3", true), ep("10.244.0.9", false)])]), "t");
    assert!(s.contains("dnat to 10.244.0.2:8080") && s.contains("dnat to 10.244.1.3:8080"), "{s}");
    assert!(!s.contains("10.244.0.9"), "not-ready endpoints get no traffic:\n{s}");
    assert_eq!(count(&s, "numgen random mod 2 vmap"), 1);
    assert!(s.contains("10.96.0.20 . tcp . 80 comment \"default/web/http/tcp\" : goto svc-"), "{s}");
    assert!(s.contains("tcp . 30080 comment \"default/web/http/tcp\" : goto svc-"), "{s}");
}

#[test]
fn a_single_endpoint_is_a_plain_goto() {
    let s = render(&state(vec![web(vec![ep("10.244.0.2", true)])]), "t");
    assert_eq!(count(&s, "numgen"), 0);
    assert_eq!(count(&s, "dnat to"), 1);
}

#[test]
fn a_port_without_endpoints_is_rejected_in_filter_and_not_natted() {
    let s = render(&state(vec![web(vec![ep("10.244.0.9", false)])]), "t");
    let rejected = s.split("map service-ips-rejected").nth(1).unwrap();
    assert!(rejected.contains("10.96.0.20 . tcp . 80"), "{s}");
    let natted = s.split("map service-ips {").nth(1).unwrap().split("  }").next().unwrap();
    assert!(!natted.contains("10.96.0.20"), "{s}");
    assert!(s.split("map service-nodeports-rejected").nth(1).unwrap().contains("tcp . 30080"));
    assert_eq!(count(&s, "dnat to"), 0);
}

#[test]
fn terminating_endpoints_serve_only_when_nothing_is_ready() {
    let terminating = Endpoint { ready: false, serving: true, terminating: true, ..ep("10.244.0.7", false) };
    let s = render(&state(vec![web(vec![terminating.clone()])]), "t");
    assert!(s.contains("dnat to 10.244.0.7:8080"), "{s}");
    let s = render(&state(vec![web(vec![terminating, ep("10.244.0.2", true)])]), "t");
    assert!(!s.contains("10.244.0.7"), "{s}");
}

#[test]
fn headless_services_get_no_rules() {
    let mut svc = web(vec![ep("10.244.0.2", true)]);
    svc.cluster_ip = None;
    let s = render(&state(vec![svc]), "t");
    assert_eq!(count(&s, "dnat"), 0);
    assert!(!s.contains("30080"));
}

#[test]
fn client_ip_affinity_remembers_the_source_per_endpoint_with_the_timeout() {
    let mut svc = web(vec![ep("10.244.0.2", true), ep("10.244.0.3", true)]);
    svc.client_ip_affinity_seconds = Some(60);
    let s = render(&state(vec![svc]), "t");
    assert_eq!(count(&s, "flags dynamic,timeout"), 2);
    assert_eq!(count(&s, "timeout 60s"), 2);
    assert_eq!(count(&s, "update @aff-"), 2);
    assert_eq!(count(&s, "ip saddr @aff-"), 2);
    // The affinity checks come before the random pick.
    let svc_chain = s.split("chain svc-").nth(1).unwrap();
    assert!(svc_chain.find("ip saddr @aff-").unwrap() < svc_chain.find("numgen").unwrap());
}

#[test]
fn internal_traffic_policy_local_sends_cluster_ip_traffic_to_this_nodes_endpoints_only() {
    let mut svc = web(vec![ep("10.244.0.2", true), Endpoint { node_name: Some("b".into()), ..ep("10.244.1.3", true) }]);
    svc.internal_local_only = true;
    let s = render(&state(vec![svc.clone()]), "t");
    assert!(s.contains("10.96.0.20 . tcp . 80 comment \"default/web/http/tcp\" : goto svl-"), "{s}");
    let local = s.split("chain svl-").nth(1).unwrap().split("  }").next().unwrap();
    assert!(!local.contains("numgen"), "one local endpoint: {local}");
    // Node ports still use every endpoint.
    assert!(s.contains("tcp . 30080 comment \"default/web/http/tcp\" : goto svc-"), "{s}");
    // No local endpoint at all: cluster IP traffic is refused.
    svc.ports[0].endpoints.retain(|e| e.node_name.as_deref() == Some("b"));
    let s = render(&state(vec![svc]), "t");
    assert!(s.split("map service-ips-rejected").nth(1).unwrap().contains("10.96.0.20"), "{s}");
}

#[test]
fn duplicate_endpoints_and_duplicate_ports_collapse() {
    let mut svc = web(vec![ep("10.244.0.2", true), ep("10.244.0.2", true)]);
    let dup = svc.ports[0].clone();
    svc.ports.push(dup);
    let s = render(&state(vec![svc]), "t");
    assert_eq!(count(&s, "dnat to"), 1);
    assert_eq!(count(&s, "10.96.0.20 . tcp . 80"), 1);
}

#[test]
fn rendering_is_deterministic_whatever_the_input_order() {
    let a = web(vec![ep("10.244.0.2", true), ep("10.244.0.3", true)]);
    let mut b = a.clone();
    b.name = "api".into();
    b.cluster_ip = Some("10.96.0.21".parse().unwrap());
    b.ports[0].node_port = None;
    let mut reversed = a.clone();
    reversed.ports[0].endpoints.reverse();
    assert_eq!(render(&state(vec![a.clone(), b.clone()]), "t"), render(&state(vec![b, reversed]), "t"));
}

#[test]
fn names_with_odd_characters_only_reach_comments_and_are_sanitised() {
    let mut svc = web(vec![ep("10.244.0.2", true)]);
    svc.name = "we\"b; drop".into();
    let s = render(&state(vec![svc]), "t");
    assert!(s.contains("comment \"default/web;drop/http/tcp\""), "{s}");
}

#[test]
fn an_empty_state_is_a_table_with_empty_maps_replacing_the_old_one() {
    let s = render(&state(vec![]), "tinykube");
    assert!(s.starts_with("table ip tinykube {}\ndelete table ip tinykube\ntable ip tinykube {\n"));
    assert!(s.contains("map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n  }"));
}

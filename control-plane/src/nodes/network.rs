//! What every node needs to route pod traffic and proxy Services, published as one snapshot:
//! each node's pod CIDR and address, and each Service with its endpoints resolved per port.
//! Agents turn it into routes and nftables rules; the control plane rebuilds it whenever a
//! Service, an Endpoints or a Node changes, and sends it only when it differs.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use proto::node::{EndpointAddress, NetworkState, NodeRoute, ServicePortRules, ServiceRules};
use tokio::sync::{broadcast, watch};

use crate::informer::{Change, Informer, cache_key};

/// Kubernetes' default ClientIP affinity timeout (3 hours).
const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

fn node_route(node: &Node) -> Option<NodeRoute> {
    let cidr = node.spec.as_ref()?.pod_cidr.clone().filter(|c| !c.is_empty())?;
    let ip = node.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP")?.address.clone();
    Some(NodeRoute { name: node.metadata.name.clone()?, internal_ip: ip, pod_cidr: cidr })
}

/// The endpoints of one Service port: addresses of subsets that carry a port of the same name
/// (the Endpoints controller names them after the Service's ports) and protocol.
fn port_endpoints(endpoints: Option<&Endpoints>, name: &str, protocol: &str) -> Vec<EndpointAddress> {
    let mut out = Vec::new();
    for subset in endpoints.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        let Some(port) = subset.ports.iter().flatten().find(|p| p.name.as_deref().unwrap_or("") == name && p.protocol.as_deref().unwrap_or("TCP") == protocol) else {
            continue;
        };
        let Ok(number) = u32::try_from(port.port) else { continue };
        for (list, ready) in [(&subset.addresses, true), (&subset.not_ready_addresses, false)] {
            for a in list.iter().flatten() {
                out.push(EndpointAddress { ip: a.ip.clone(), port: number, node_name: a.node_name.clone().unwrap_or_default(), ready, serving: ready, terminating: false });
            }
        }
    }
    out.sort_by(|a, b| (&a.ip, a.port).cmp(&(&b.ip, b.port)));
    out.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    out
}

fn service_rules(service: &Service, endpoints: Option<&Endpoints>) -> Option<ServiceRules> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let cluster_ip = spec.cluster_ip.clone().filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()).unwrap_or_default();
    let node_ports = matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer"));
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if protocol != "TCP" && protocol != "UDP" {
                return None;
            }
            let name = p.name.clone().unwrap_or_default();
            Some(ServicePortRules {
                endpoints: port_endpoints(endpoints, &name, &protocol),
                name,
                protocol,
                port: u32::try_from(p.port).ok()?,
                node_port: if node_ports { p.node_port.and_then(|n| u32::try_from(n).ok()).unwrap_or(0) } else { 0 },
            })
        })
        .collect();
    Some(ServiceRules {
        namespace: service.metadata.namespace.clone().unwrap_or_default(),
        name: service.metadata.name.clone()?,
        cluster_ip,
        client_ip_affinity_seconds: affinity.unwrap_or(0),
        internal_local_only: spec.internal_traffic_policy.as_deref() == Some("Local"),
        ports,
    })
}

/// The snapshot for a set of objects (generation left at 0). Sorted, so equal inputs compare equal.
pub fn network_state(nodes: &[Arc<Node>], services: &[Arc<Service>], endpoints: &[Arc<Endpoints>]) -> NetworkState {
    let by_key: HashMap<String, &Endpoints> =
        endpoints.iter().map(|e| (cache_key(e.metadata.namespace.as_deref(), e.metadata.name.as_deref().unwrap_or("")), e.as_ref())).collect();
    let mut nodes: Vec<NodeRoute> = nodes.iter().filter_map(|n| node_route(n)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut services: Vec<ServiceRules> = services
        .iter()
        .filter_map(|s| {
            let key = cache_key(s.metadata.namespace.as_deref(), s.metadata.name.as_deref().unwrap_or(""));
            service_rules(s, by_key.get(&key).copied())
        })
        .collect();
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    NetworkState { generation: 0, nodes, services }
}

/// Keeps the latest snapshot in a watch channel each agent stream follows.
pub struct NetworkPublisher {
    pub state: watch::Receiver<Arc<NetworkState>>,
}

fn changed<K>(r: Result<Change<K>, broadcast::error::RecvError>) -> bool {
    !matches!(r, Err(broadcast::error::RecvError::Closed))
}

impl NetworkPublisher {
    pub fn start(nodes: Arc<Informer<Node>>, services: Arc<Informer<Service>>, endpoints: Arc<Informer<Endpoints>>) -> Self {
        let (tx, rx) = watch::channel(Arc::new(NetworkState::default()));
        tokio::spawn(async move {
            let (mut n, mut s, mut e) = (nodes.subscribe(), services.subscribe(), endpoints.subscribe());
            nodes.wait_synced().await;
            services.wait_synced().await;
            endpoints.wait_synced().await;
            let mut generation = 0;
            loop {
                // Changes that arrived together are folded into one snapshot.
                while n.try_recv().is_ok() || s.try_recv().is_ok() || e.try_recv().is_ok() {}
                let mut next = network_state(&nodes.list(), &services.list(), &endpoints.list());
                tx.send_if_modified(|cur| {
                    next.generation = cur.generation;
                    if generation > 0 && **cur == next {
                        return false;
                    }
                    generation += 1;
                    next.generation = generation;
                    *cur = Arc::new(next);
                    true
                });
                let alive = tokio::select! {
                    r = n.recv() => changed(r),
                    r = s.recv() => changed(r),
                    r = e.recv() => changed(r),
                };
                if !alive {
                    return;
                }
            }
        });
        NetworkPublisher { state: rx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn web_service(spec: serde_json::Value) -> Arc<Service> {
        obj(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
    }

    fn web_endpoints() -> Arc<Endpoints> {
        obj(json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
            "addresses": [{"ip": "10.244.1.3", "nodeName": "b"}, {"ip": "10.244.0.2", "nodeName": "a"}],
            "notReadyAddresses": [{"ip": "10.244.0.9", "nodeName": "a"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        }]}))
    }

    #[test]
    fn nodes_without_a_pod_cidr_or_address_get_no_route() {
        let nodes = [
            obj(json!({"metadata": {"name": "b"}, "spec": {"podCIDR": "10.244.1.0/24"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.250.0.3"}]}})),
            obj(json!({"metadata": {"name": "a"}, "spec": {"podCIDR": "10.244.0.0/24"}, "status": {"addresses": [{"type": "Hostname", "address": "a"}, {"type": "InternalIP", "address": "10.250.0.2"}]}})),
            obj(json!({"metadata": {"name": "c"}, "spec": {}, "status": {"addresses": [{"type": "InternalIP", "address": "10.250.0.4"}]}})),
            obj(json!({"metadata": {"name": "d"}, "spec": {"podCIDR": "10.244.3.0/24"}})),
        ];
        let state = network_state(&nodes, &[], &[]);
        let routes: Vec<_> = state.nodes.iter().map(|n| (n.name.as_str(), n.internal_ip.as_str(), n.pod_cidr.as_str())).collect();
        assert_eq!(routes, [("a", "10.250.0.2", "10.244.0.0/24"), ("b", "10.250.0.3", "10.244.1.0/24")]);
    }

    #[test]
    fn each_service_port_gets_the_endpoints_of_its_name_and_protocol_with_readiness() {
        let svc = web_service(json!({"clusterIP": "10.96.0.20", "type": "NodePort", "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            {"name": "sctp", "port": 9, "protocol": "SCTP"},
        ]}));
        let state = network_state(&[], &[svc], &[web_endpoints()]);
        let s = &state.services[0];
        assert_eq!((s.cluster_ip.as_str(), s.client_ip_affinity_seconds, s.internal_local_only), ("10.96.0.20", 0, false));
        assert_eq!(s.ports.len(), 2, "SCTP is not proxied");
        let http = &s.ports[0];
        assert_eq!((http.port, http.node_port, http.protocol.as_str()), (80, 30080, "TCP"));
        let eps: Vec<_> = http.endpoints.iter().map(|e| (e.ip.as_str(), e.port, e.ready, e.node_name.as_str())).collect();
        assert_eq!(eps, [("10.244.0.2", 8080, true, "a"), ("10.244.0.9", 8080, false, "a"), ("10.244.1.3", 8080, true, "b")]);
        assert_eq!(s.ports[1].endpoints[0].port, 53);
    }

    #[test]
    fn cluster_ip_services_have_no_node_ports_and_headless_ones_no_cluster_ip() {
        let svc = web_service(json!({"clusterIP": "10.96.0.20", "type": "ClusterIP", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
        assert_eq!(network_state(&[], &[svc], &[]).services[0].ports[0].node_port, 0);
        let svc = web_service(json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}));
        assert_eq!(network_state(&[], &[svc], &[web_endpoints()]).services[0].cluster_ip, "");
        let svc = web_service(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(network_state(&[], &[svc], &[]).services.is_empty());
    }

    #[test]
    fn client_ip_affinity_defaults_to_three_hours_and_local_policy_is_passed_on() {
        let svc = web_service(json!({"clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP", "internalTrafficPolicy": "Local", "ports": [{"port": 80}]}));
        let s = &network_state(&[], &[svc], &[]).services[0];
        assert_eq!((s.client_ip_affinity_seconds, s.internal_local_only), (10_800, true));
        let svc = web_service(json!({"clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 80}]}));
        assert_eq!(network_state(&[], &[svc], &[]).services[0].client_ip_affinity_seconds, 60);
    }

    #[test]
    fn an_unnamed_port_matches_the_unnamed_endpoint_port() {
        let svc = web_service(json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}));
        let eps = obj(json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{"addresses": [{"ip": "10.244.0.2"}], "ports": [{"port": 8080}]}]}));
        assert_eq!(network_state(&[], &[svc], &[eps]).services[0].ports[0].endpoints[0].port, 8080);
    }
}

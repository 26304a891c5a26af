//! The Endpoints controller: for every Service with a selector, an Endpoints object of the same
//! name listing the addresses of the matching pods, ready ones under `addresses` and the others
//! under `notReadyAddresses`. A port of `pkg/controller/endpoint/endpoints_controller.go`.
//!
//! A pod that is being deleted leaves the Endpoints at once (unless the Service publishes
//! not-ready addresses), before its containers are told to stop: that ordering is what lets a
//! rolling update drop no request.

pub mod run;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::replicaset::ranking::is_pod_ready;

/// Label Kubernetes puts on the Endpoints of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Whether a pod belongs in the Endpoints at all (ready or not): it has an address, it is not
/// being deleted (unless terminating pods are asked for), and it will not run again.
/// `ShouldPodBeInEndpoints` upstream.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("").is_empty() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => phase != "Failed" && phase != "Succeeded",
        Some("OnFailure") => phase != "Succeeded",
        _ => true,
    }
}

/// The container port a Service port sends to on this pod: the number itself, or the port with
/// that name and protocol in any container. `podutil.FindPort` upstream.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(if *n == 0 { port.port } else { *n }),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                (p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol).then_some(p.container_port)
            })
        }
    }
}

fn address_of(service: &Service, pod: &Pod) -> EndpointAddress {
    let spec = pod.spec.as_ref();
    let hostname = spec.and_then(|s| s.hostname.clone()).filter(|h| {
        !h.is_empty() && spec.and_then(|s| s.subdomain.as_deref()) == service.metadata.name.as_deref() && pod.metadata.namespace == service.metadata.namespace
    });
    EndpointAddress {
        ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    }
}

fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else { return false };
    let labels = pod.metadata.labels.as_ref();
    pod.metadata.namespace == service.metadata.namespace
        && selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether this controller manages the Service's Endpoints: only Services with a selector do;
/// the others' Endpoints belong to whoever wrote them.
pub fn manages(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|s| s.selector.is_some())
}

/// The subsets the Service's Endpoints should hold, given every pod of its namespace.
pub fn desired_subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let Some(spec) = service.spec.as_ref() else { return vec![] };
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    // (address, ready) -> ports, repacked below into one subset per distinct port set.
    let mut by_address: BTreeMap<(String, String, bool), (EndpointAddress, Vec<EndpointPort>)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(service, p)) {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let address = address_of(service, pod);
        let ready = publish_not_ready || is_pod_ready(pod);
        let key = (address.ip.clone(), pod.metadata.uid.clone().unwrap_or_default(), ready);
        if ports.is_empty() {
            // A headless Service may have no ports; its pods are still listed (for DNS).
            if headless {
                by_address.entry(key).or_insert_with(|| (address, vec![]));
            }
            continue;
        }
        for port in ports {
            let Some(number) = find_port(pod, port) else { continue };
            let endpoint_port = EndpointPort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            };
            by_address.entry(key.clone()).or_insert_with(|| (address.clone(), vec![])).1.push(endpoint_port);
        }
    }
    repack(by_address.into_iter().map(|((_, _, ready), (address, ports))| (address, ready, ports)))
}

fn port_key(p: &EndpointPort) -> (String, i32, String) {
    (p.name.clone().unwrap_or_default(), p.port, p.protocol.clone().unwrap_or_default())
}

/// Groups addresses with the same set of ports into one subset, sorted so that equal inputs give
/// byte-equal objects (no needless writes). `endpoints.RepackSubsets` upstream.
fn repack(entries: impl Iterator<Item = (EndpointAddress, bool, Vec<EndpointPort>)>) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<Vec<(String, i32, String)>, (Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for (address, ready, mut ports) in entries {
        ports.sort_by_key(port_key);
        ports.dedup_by_key(|p| port_key(p));
        let key: Vec<_> = ports.iter().map(port_key).collect();
        let group = groups.entry(key).or_insert_with(|| (ports, vec![], vec![]));
        if ready { group.1.push(address) } else { group.2.push(address) }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            let by_ip = |a: &EndpointAddress| (a.ip.clone(), a.target_ref.as_ref().and_then(|r| r.uid.clone()));
            ready.sort_by_key(by_ip);
            not_ready.sort_by_key(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// The labels the Endpoints carries: the Service's, plus the headless marker.
pub fn desired_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// What to do for one Service, given its current Endpoints (if any).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Nothing,
    /// Create or replace the Endpoints with these labels and subsets.
    Write { labels: BTreeMap<String, String>, subsets: Vec<EndpointSubset> },
}

pub fn reconcile(service: &Service, current: Option<&Endpoints>, pods: &[&Pod]) -> Action {
    if !manages(service) {
        return Action::Nothing;
    }
    let subsets = desired_subsets(service, pods);
    let labels = desired_labels(service);
    if let Some(cur) = current {
        let cur_subsets = cur.subsets.clone().unwrap_or_default();
        if cur_subsets == subsets && cur.metadata.labels.clone().unwrap_or_default() == labels {
            return Action::Nothing;
        }
    }
    Action::Write { labels, subsets }
}

#[cfg(test)]
mod tests;

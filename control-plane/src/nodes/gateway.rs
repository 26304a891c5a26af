//! The gRPC service node agents talk to: registration and heartbeats.

use std::sync::Arc;
use std::time::Duration;

use proto::node::node_service_server::NodeService;
use proto::node::{
    HeartbeatRequest, HeartbeatResponse, NetworkState, PodEvent, WatchNetworkRequest, PodReport, RegisterRequest, RegisterResponse, ReportAck, WatchPodsRequest, pod_event,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, instrument};

use super::ipam::NodeIpam;
use super::liveness::Liveness;
use crate::api::ApiServer;
use crate::api::error::ApiError;
use crate::api::negotiate::Query;
use crate::api::object;
use crate::api::handlers::DeleteOptions;
use crate::api::update::{Part, set_condition};
use super::router::Routed;
use crate::informer::Informer;

pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);
/// Where agents serve logs and exec (the kubelet's port).
pub const AGENT_PORT: u16 = 10250;

pub struct NodeGateway {
    pub api: Arc<ApiServer>,
    /// Every pod, kept current; each node's stream starts from this cache filtered by `spec.nodeName`.
    pub pods: Arc<Informer<Value>>,
    /// Hands each pod change to the streams of the node it names.
    pub router: Arc<super::router::PodRouter>,
    /// Pod CIDRs handed out, read from the Node objects once.
    pub cidrs: tokio::sync::Mutex<Option<std::collections::BTreeSet<String>>>,
    pub liveness: Arc<Liveness>,
    pub ipam: NodeIpam,
    /// Signs each node's serving certificate.
    pub pki: crate::pki::Pki,
    /// The latest routes-and-Services snapshot for agents (see `super::network`).
    pub network: tokio::sync::watch::Receiver<Arc<NetworkState>>,
    /// One event recorder per node (its events come from "kubelet" on that host).
    pub recorders: std::sync::Mutex<std::collections::HashMap<String, Arc<crate::events::Recorder>>>,
}

fn to_status(e: ApiError) -> Status {
    match e.code {
        400 | 422 => Status::invalid_argument(e.message),
        404 => Status::not_found(e.message),
        409 => Status::already_exists(e.message),
        _ => Status::internal(e.message),
    }
}

/// Checks a node name as Kubernetes does (a DNS-1123 subdomain).
fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn map(m: &std::collections::HashMap<String, String>) -> Value {
    let mut out = Map::new();
    let mut keys: Vec<_> = m.keys().collect();
    keys.sort();
    for k in keys {
        out.insert(k.clone(), json!(m[k]));
    }
    Value::Object(out)
}

impl NodeGateway {
    fn node_status(r: &RegisterRequest) -> Value {
        let info = r.info.clone().unwrap_or_default();
        json!({
            "capacity": map(&r.capacity),
            "allocatable": map(&r.allocatable),
            "addresses": r.addresses.iter().map(|a| json!({"type": a.r#type, "address": a.address})).collect::<Vec<_>>(),
            "nodeInfo": {
                "machineID": info.machine_id, "systemUUID": info.machine_id, "bootID": info.boot_id,
                "kernelVersion": info.kernel_version, "osImage": info.os_image,
                "containerRuntimeVersion": info.container_runtime_version, "kubeletVersion": info.kubelet_version,
                "kubeProxyVersion": "", "operatingSystem": info.operating_system, "architecture": info.architecture,
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": AGENT_PORT}},
            "conditions": [],
        })
    }
}

/// Sets the Ready condition and stamps every condition's heartbeat time.
fn set_ready(status: &mut Value, ready: bool) {
    let mut wrapper = json!({"status": status.clone()});
    if ready {
        set_condition(&mut wrapper, "Ready", "True", Some("KubeletReady"), Some("kubelet is posting ready status"));
    } else {
        set_condition(&mut wrapper, "Ready", "False", Some("KubeletNotReady"), Some("the node agent is starting"));
    }
    for c in wrapper["status"]["conditions"].as_array_mut().into_iter().flatten() {
        c["lastHeartbeatTime"] = json!(object::now());
    }
    *status = wrapper["status"].take();
}

impl NodeGateway {
    /// Records a report's kubelet events as Events about the pod, from the kubelet on its node.
    fn record_events(&self, r: &PodReport) {
        if r.events.is_empty() {
            return;
        }
        let recorder = self
            .recorders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.node_name.clone())
            .or_insert_with(|| crate::events::Recorder::new(self.api.clone(), "kubelet", &r.node_name))
            .clone();
        let involved = crate::events::Involved {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        };
        for e in &r.events {
            let type_ = if e.r#type == "Warning" { "Warning" } else { "Normal" };
            let message: String = e.message.chars().take(1024).collect();
            recorder.emit(involved.clone(), type_, &e.reason, message);
        }
    }
}

#[tonic::async_trait]
impl NodeService for NodeGateway {
    #[instrument(skip_all, fields(node = %req.get_ref().node_name))]
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let r = req.into_inner();
        if !valid_node_name(&r.node_name) {
            return Err(Status::invalid_argument(format!(
                "invalid node name {:?}: must be a lowercase RFC 1123 subdomain", r.node_name
            )));
        }
        let nodes = self.api.registry.get("", "v1", "nodes").ok_or_else(|| Status::internal("nodes not registered"))?;
        let mut cidrs = self.cidrs.lock().await;
        if cidrs.is_none() {
            let (existing, _) = self.api.list_objects(&nodes, None, &Query::default()).await.map_err(to_status)?;
            *cidrs = Some(existing.iter().filter_map(|n| n["spec"]["podCIDR"].as_str().map(String::from)).collect());
        }
        let taken = cidrs.as_mut().expect("just filled");
        let mine = match self.api.get_object(&nodes, None, &r.node_name).await {
            Ok((n, _)) => Some(n),
            Err(e) if e.code == 404 => None,
            Err(e) => return Err(to_status(e)),
        };
        let mine = mine.as_ref();
        let pod_cidr = match mine.and_then(|n| n["spec"]["podCIDR"].as_str()).filter(|s| !s.is_empty()) {
            Some(c) => c.to_string(),
            None => {
                let c = self
                    .ipam
                    .next_free(taken.iter().map(String::as_str))
                    .ok_or_else(|| Status::resource_exhausted("the cluster's pod range has no free block"))?;
                taken.insert(c.clone());
                c
            }
        };
        let mut labels = json!({
            "kubernetes.io/hostname": r.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": crate::api::discovery::go_arch(),
        });
        for (k, v) in &r.labels {
            labels[k] = json!(v);
        }
        // Ready comes with the first heartbeat, which the agent sends once it can run pods.
        let mut status = Self::node_status(&r);
        set_ready(&mut status, false);
        let q = Query::default();
        if mine.is_none() {
            let body = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": r.node_name, "labels": labels},
                "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
                "status": status,
            });
            match self.api.create(&nodes, None, body, &q).await {
                Ok(_) => info!(pod_cidr, "node registered"),
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(to_status(e)),
            }
        } else {
            let pc = pod_cidr.clone();
            self.api
                .update_with(&nodes, None, &r.node_name, Part::Main, &q, |old| {
                    let mut new = old.clone();
                    for (k, v) in labels.as_object().into_iter().flatten() {
                        new["metadata"]["labels"][k] = v.clone();
                    }
                    new["spec"]["podCIDR"] = json!(pc);
                    new["spec"]["podCIDRs"] = json!([pc]);
                    Ok(new)
                })
                .await
                .map_err(to_status)?;
            let st = status.clone();
            self.api
                .update_with(&nodes, None, &r.node_name, Part::Status, &q, |old| {
                    let mut new = old.clone();
                    new["status"] = st.clone();
                    Ok(new)
                })
                .await
                .map_err(to_status)?;
            info!(pod_cidr, "node re-registered");
        }
        let ips: Vec<std::net::IpAddr> = r.addresses.iter().filter_map(|a| a.address.parse().ok()).collect();
        let (serving_cert, serving_key) =
            self.pki.issue_node_cert(&r.node_name, &ips).map_err(|e| Status::internal(format!("issuing the node certificate: {e}")))?;
        Ok(Response::new(RegisterResponse {
            serving_cert,
            serving_key,
            agent_port: AGENT_PORT as u32,
            pod_cidr,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
            cluster_dns: self.api.services.nth(10).to_string(),
            cluster_domain: "cluster.local".into(),
        }))
    }

    type WatchPodsStream = ReceiverStream<Result<PodEvent, Status>>;

    #[instrument(skip_all, fields(node = %req.get_ref().node_name))]
    async fn watch_pods(&self, req: Request<WatchPodsRequest>) -> Result<Response<Self::WatchPodsStream>, Status> {
        let node = req.into_inner().node_name;
        let pods = self.pods.clone();
        // Subscribe before listing so nothing between the list and the first change is missed
        // (a pod in both is sent twice, which the agent takes as the same upsert).
        let mut changes = self.router.subscribe(&node);
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            pods.wait_synced().await;
            if send_all(&pods, &node, &tx).await.is_err() {
                return;
            }
            while let Some(change) = changes.recv().await {
                let event = match change {
                    Routed::Upsert(p) => Some(event(pod_event::Kind::Upsert, &p)),
                    Routed::Delete(p) => Some(event(pod_event::Kind::Delete, &p)),
                    Routed::Resync => {
                        if send_all(&pods, &node, &tx).await.is_err() {
                            return;
                        }
                        None
                    }
                };
                if let Some(ev) = event {
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    #[instrument(skip_all, fields(pod = %format!("{}/{}", req.get_ref().namespace, req.get_ref().name)))]
    async fn report_pod(&self, req: Request<PodReport>) -> Result<Response<ReportAck>, Status> {
        let r = req.into_inner();
        let res = self.api.registry.get("", "v1", "pods").ok_or_else(|| Status::internal("pods not registered"))?;
        if r.terminated {
            let opts = DeleteOptions { grace_period: Some(0), precondition_uid: Some(r.uid.clone()), ..Default::default() };
            let deleted = self.api.delete(&res, Some(&r.namespace), &r.name, &opts).await;
            self.record_events(&r);
            return match deleted {
                Ok(_) => Ok(Response::new(ReportAck {})),
                // Already gone, or replaced by a pod of the same name: nothing left to do.
                Err(e) if e.code == 404 || e.code == 409 => Ok(Response::new(ReportAck {})),
                Err(e) => Err(to_status(e)),
            };
        }
        let status: Value = serde_json::from_slice(&r.status).map_err(|e| Status::invalid_argument(format!("pod status is not JSON: {e}")))?;
        let t0 = std::time::Instant::now();
        let uid = r.uid.clone();
        let result = self
            .api
            .update_with(&res, Some(&r.namespace), &r.name, Part::Status, &Query::default(), |old| {
                if object::uid(old) != Some(uid.as_str()) {
                    return Err(ApiError::conflict("", "pods", &r.name, "the pod was replaced"));
                }
                let mut new = old.clone();
                new["status"] = status.clone();
                Ok(new)
            })
            .await;
        tracing::debug!(pod = %r.name, took_us = t0.elapsed().as_micros() as u64, "pod status written");
        // Events after the status, so their writes don't go ahead of it in the store's queue.
        self.record_events(&r);
        match result {
            Ok(_) => Ok(Response::new(ReportAck {})),
            Err(e) if e.code == 404 || e.code == 409 => Ok(Response::new(ReportAck {})),
            Err(e) => Err(to_status(e)),
        }
    }

    type WatchNetworkStream = ReceiverStream<Result<NetworkState, Status>>;

    #[instrument(skip_all, fields(node = %req.get_ref().node_name))]
    async fn watch_network(&self, req: Request<WatchNetworkRequest>) -> Result<Response<Self::WatchNetworkStream>, Status> {
        tracing::debug!(node = %req.get_ref().node_name, "network watch started");
        let mut state = self.network.clone();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                // Only the latest snapshot matters: one that was superseded before it left is skipped.
                let current = (**state.borrow_and_update()).clone();
                if current.generation > 0 && tx.send(Ok(current)).await.is_err() {
                    return;
                }
                if state.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type HeartbeatStream = ReceiverStream<Result<HeartbeatResponse, Status>>;

    async fn heartbeat(&self, req: Request<Streaming<HeartbeatRequest>>) -> Result<Response<Self::HeartbeatStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let liveness = self.liveness.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                match inbound.message().await {
                    Ok(Some(hb)) => {
                        if hb.ready {
                            liveness.beat(&hb.node_name);
                        }
                        seq += 1;
                        if tx.send(Ok(HeartbeatResponse { sequence: seq })).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Agents that stop or restart drop their stream; liveness notices the silence.
                        tracing::debug!(error = %e, "heartbeat stream ended");
                        break;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn bound_to(pod: &Value, node: &str) -> bool {
    super::router::node_of(pod) == Some(node)
}

fn event(kind: pod_event::Kind, pod: &Value) -> PodEvent {
    PodEvent { kind: kind as i32, pod: serde_json::to_vec(pod).unwrap_or_default() }
}

/// The node's whole pod list, then SYNCED.
async fn send_all(pods: &Informer<Value>, node: &str, tx: &mpsc::Sender<Result<PodEvent, Status>>) -> Result<(), ()> {
    for p in pods.list().iter().filter(|p| bound_to(p, node)) {
        tx.send(Ok(event(pod_event::Kind::Upsert, p))).await.map_err(|_| ())?;
    }
    tx.send(Ok(PodEvent { kind: pod_event::Kind::Synced as i32, pod: vec![] })).await.map_err(|_| ())
}

pub use proto::auth::token_interceptor;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_registrations_and_reports_are_refused_and_reports_for_unknown_pods_ignored() {
        let api = crate::informer::tests::test_api();
        crate::bootstrap::ensure(&api, 6443).await.unwrap();
        let res = api.registry.get("", "v1", "pods").unwrap();
        let pods = crate::informer::Informer::<Value>::start(api.clone(), res);
        let dir = tempfile::tempdir().unwrap();
        let gw = NodeGateway {
            api: api.clone(),
            router: super::super::router::PodRouter::start(pods.clone()),
            pods,
            cidrs: Default::default(),
            liveness: Default::default(),
            ipam: NodeIpam::new("10.244.0.0/16").unwrap(),
            pki: crate::pki::Pki::load_or_create(dir.path(), &[]).unwrap(),
            network: tokio::sync::watch::channel(Default::default()).1,
            recorders: Default::default(),
        };
        let bad_name = gw.register(Request::new(RegisterRequest { node_name: "Bad_Node".into(), ..Default::default() })).await;
        assert_eq!(bad_name.unwrap_err().code(), tonic::Code::InvalidArgument);
        let report = |status: &[u8], terminated| PodReport {
            namespace: "default".into(),
            name: "ghost".into(),
            uid: "u".into(),
            status: status.to_vec(),
            terminated,
            ..Default::default()
        };
        let not_json = gw.report_pod(Request::new(report(b"{oops", false))).await;
        assert_eq!(not_json.unwrap_err().code(), tonic::Code::InvalidArgument);
        // A pod the API no longer has (deleted, or replaced) is nothing to act on.
        assert!(gw.report_pod(Request::new(report(b"{}", false))).await.is_ok());
        assert!(gw.report_pod(Request::new(report(b"", true))).await.is_ok());
        let ok = gw
            .register(Request::new(RegisterRequest { node_name: "n1".into(), ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.pod_cidr, "10.244.0.0/24");
        assert!(ok.serving_cert.contains("BEGIN CERTIFICATE"));

        // Events in a report become Events about the pod, from the kubelet on that node; an
        // overlong message is cut.
        let event = |reason: &str, message: String| proto::node::KubeletEvent { r#type: "Normal".into(), reason: reason.into(), message };
        let with_events = PodReport {
            events: vec![event("Pulling", "Pulling image \"demo/web:v1\"".into()), event("Started", "x".repeat(5000))],
            node_name: "n1".into(),
            ..report(b"{}", false)
        };
        gw.report_pod(Request::new(with_events)).await.unwrap();
        let events = api.registry.get("", "v1", "events").unwrap();
        let found = loop {
            let (items, _) = api.list_objects(&events, Some("default"), &Query::default()).await.unwrap();
            if items.len() == 2 {
                break items;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let pulling = found.iter().find(|e| e["reason"] == "Pulling").unwrap();
        assert_eq!((pulling["involvedObject"]["name"].as_str(), pulling["source"]["component"].as_str(), pulling["source"]["host"].as_str()), (Some("ghost"), Some("kubelet"), Some("n1")));
        let started = found.iter().find(|e| e["reason"] == "Started").unwrap();
        assert_eq!(started["message"].as_str().unwrap().len(), 1024);
    }

    #[test]
    fn node_names_must_be_dns_subdomains() {
        for ok in ["node-1", "a.b.c", "n0"] {
            assert!(valid_node_name(ok), "{ok}");
        }
        for bad in ["", "Node1", "-a", "a-", "a..b", "a_b", &"x".repeat(254)] {
            assert!(!valid_node_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_registered_node_reports_ready_with_a_heartbeat_time() {
        let r = RegisterRequest { node_name: "n".into(), ..Default::default() };
        let mut status = NodeGateway::node_status(&r);
        set_ready(&mut status, true);
        let ready = &status["conditions"][0];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert!(ready["lastHeartbeatTime"].is_string());
    }
}

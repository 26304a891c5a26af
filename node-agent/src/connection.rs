//! The agent's link to the control plane: register, heartbeat, receive this node's pods, report
//! their status. Every stream is re-established with back-off whenever the link breaks; pods keep
//! running meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::node::node_service_client::NodeServiceClient;
use proto::node::{NetworkState, WatchNetworkRequest, HeartbeatRequest, NodeAddress, PodReport, RegisterRequest, RegisterResponse, WatchPodsRequest, pod_event};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use proto::auth::with_token;
use tracing::{info, warn};

use crate::pods::{NodeContext, PodManager, Report};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid server address {0:?}: {1}")]
    Address(String, String),
    #[error("the control plane refused the node: {0}")]
    Refused(String),
    #[error("setting up the node: {0}")]
    Setup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: String,
    pub node_name: String,
    pub node_ip: String,
    pub data_dir: PathBuf,
    pub ca_file: PathBuf,
    pub token_file: PathBuf,
    /// Archives of images to import at start (offline images).
    pub preload: Vec<PathBuf>,
    /// Pod sandboxes kept ready ahead of time (0: none).
    pub warm_sandboxes: usize,
}

pub struct Link {
    cfg: Config,
    token: String,
    channel: Channel,
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.clone(), source })
}

impl Link {
    pub fn new(cfg: Config) -> Result<Self> {
        let ca = read(&cfg.ca_file)?;
        let token = read(&cfg.token_file)?.trim().to_string();
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("kubernetes");
        let endpoint = Endpoint::from_shared(cfg.server.clone())
            .map_err(|e| Error::Address(cfg.server.clone(), e.to_string()))?
            .tls_config(tls)
            .map_err(|e| Error::Address(cfg.server.clone(), e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        // One channel for everything; tonic reconnects it as needed.
        let channel = endpoint.connect_lazy();
        Ok(Link { cfg, token, channel })
    }

    fn client(&self) -> NodeServiceClient<Channel> {
        NodeServiceClient::new(self.channel.clone())
    }

    fn with_token<T>(&self, msg: T) -> tonic::Request<T> {
        with_token(&self.token, msg)
    }

    fn register_request(&self) -> RegisterRequest {
        let capacity = crate::machine::capacity(&self.cfg.data_dir);
        RegisterRequest {
            node_name: self.cfg.node_name.clone(),
            addresses: vec![
                NodeAddress { r#type: "InternalIP".into(), address: self.cfg.node_ip.clone() },
                NodeAddress { r#type: "Hostname".into(), address: self.cfg.node_name.clone() },
            ],
            allocatable: capacity.clone(),
            capacity,
            info: Some(crate::machine::info()),
            labels: Default::default(),
        }
    }

    async fn register(&self) -> Result<RegisterResponse, tonic::Status> {
        Ok(self.client().register(self.with_token(self.register_request())).await?.into_inner())
    }

    /// Runs until the process ends. Errors the control plane will never accept (a bad token or
    /// node name) end it; everything else is retried.
    pub async fn run(self) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        let mut manager: Option<PodManager> = None;
        let (reports_tx, reports_rx) = mpsc::channel(1024);
        tokio::spawn(report_loop(self.client(), self.token.clone(), self.cfg.node_name.clone(), reports_rx));
        let routing = crate::routing::Routing::new(&self.cfg.node_name);
        let (links_tx, links_rx) = tokio::sync::watch::channel(None);
        let views = ClusterViews { targeted: routing.targeted(), services: links_rx };
        tokio::spawn(network_loop(self.client(), self.token.clone(), self.cfg.node_name.clone(), routing, links_tx));
        loop {
            match self.session(&mut manager, &reports_tx, &views).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(status) if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::InvalidArgument) => {
                    return Err(Error::Refused(status.message().to_string()));
                }
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    return Err(Error::Setup(status.message().to_string()));
                }
                Err(status) => warn!(node = %self.cfg.node_name, error = %status, retry_in = ?backoff, "control plane link down"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn start_manager(&self, assigned: &RegisterResponse, reports: &mpsc::Sender<Report>, views: &ClusterViews) -> Result<PodManager, String> {
        let images = crate::images::ImageStore::open(&self.cfg.data_dir.join("images")).map_err(|e| e.to_string())?;
        for archive in &self.cfg.preload {
            let imported = images.import_archive(archive).map_err(|e| format!("importing {}: {e}", archive.display()))?;
            info!(archive = %archive.display(), images = imported.len(), "images preloaded");
        }
        let cgroups = crate::cgroups::detect("tinykube").map_err(|e| e.to_string())?;
        let run_dir = crate::pods::run_dir::prepare(&self.cfg.data_dir).map_err(|e| format!("preparing the agent's state directory: {e}"))?;
        crate::pods::run_dir::prepare_disk(&self.cfg.data_dir).map_err(|e| format!("preparing the pods' disk directory: {e}"))?;
        crate::pods::run_dir::move_in(&self.cfg.data_dir, "ipam").map_err(|e| format!("moving address claims to {}: {e}", run_dir.display()))?;
        let network = Arc::new(crate::pods::network::PodNetwork::setup(&assigned.pod_cidr, &run_dir).map_err(|e| e.to_string())?);
        // Warm sandboxes of an agent from before the tmpfs (their claims just moved in), and
        // /run/netns entries of older agents still.
        crate::pods::warm::destroy_all(&self.cfg.data_dir.join("warm"), Some(&network));
        crate::pods::network::PodNetwork::remove_stale_netns_links(&self.cfg.data_dir);
        let warm = crate::pods::warm::WarmPool::start(&run_dir, self.cfg.warm_sandboxes, network.clone());
        let mount_template = match crate::runtime::MountTemplate::create(&run_dir) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                warn!(error = %e, "no mount template: containers copy the agent's mounts, and start slower as pods accumulate");
                None
            }
        };
        let ctx = Arc::new(NodeContext {
            node_name: self.cfg.node_name.clone(),
            node_ip: self.cfg.node_ip.clone(),
            data_dir: self.cfg.data_dir.clone(),
            run_dir,
            mount_template,
            cgroup_parent: crate::pods::node_cgroup(&self.cfg.data_dir, &self.cfg.node_name),
            images,
            cgroups,
            network,
            warm,
            cluster_dns: assigned.cluster_dns.clone(),
            cluster_domain: assigned.cluster_domain.clone(),
            reports: reports.clone(),
            targeted: views.targeted.clone(),
            services: crate::pods::service_env::ServiceView::new(views.services.clone()),
            unreachable: Default::default(),
        });
        self.serve_agent(assigned)?;
        Ok(PodManager::new(ctx))
    }

    /// Starts AgentService (logs, exec) on the node address, with the certificate the control
    /// plane issued for this node.
    fn serve_agent(&self, assigned: &RegisterResponse) -> Result<(), String> {
        let addr: std::net::SocketAddr = format!("{}:{}", self.cfg.node_ip, assigned.agent_port)
            .parse()
            .map_err(|e| format!("agent address {}:{}: {e}", self.cfg.node_ip, assigned.agent_port))?;
        let identity = tonic::transport::Identity::from_pem(&assigned.serving_cert, &assigned.serving_key);
        let service = proto::node::agent_service_server::AgentServiceServer::with_interceptor(
            crate::service::Agent { data_dir: self.cfg.data_dir.clone() },
            crate::service::token_interceptor(self.token.clone()),
        );
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        std_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        let server = tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| e.to_string())?
            .add_service(service);
        tokio::spawn(async move {
            if let Err(e) = server.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)).await {
                warn!(error = %e, "agent service stopped");
            }
        });
        info!(%addr, "agent service listening");
        Ok(())
    }

    /// One connection: register, then heartbeat and follow this node's pods until a stream breaks.
    async fn session(&self, manager: &mut Option<PodManager>, reports: &mpsc::Sender<Report>, views: &ClusterViews) -> Result<(), tonic::Status> {
        let assigned = self.register().await?;
        info!(node = %self.cfg.node_name, pod_cidr = %assigned.pod_cidr, "registered");
        if manager.is_none() {
            let m = self.start_manager(&assigned, reports, views).map_err(tonic::Status::failed_precondition)?;
            *manager = Some(m);
        }
        let manager = manager.as_mut().expect("just set");
        let interval = Duration::from_millis(assigned.heartbeat_interval_ms.clamp(100, 60_000) as u64);
        let beats = heartbeats(self.cfg.node_name.clone(), interval);
        let mut acks = self.client().heartbeat(self.with_token(beats)).await?.into_inner();
        let mut pods = self.client().watch_pods(self.with_token(WatchPodsRequest { node_name: self.cfg.node_name.clone() })).await?.into_inner();
        let mut listed: Option<HashSet<String>> = Some(HashSet::new());
        loop {
            tokio::select! {
                ack = acks.message() => {
                    if ack?.is_none() {
                        return Err(tonic::Status::unavailable("heartbeat stream closed by the control plane"));
                    }
                }
                ev = pods.message() => {
                    let Some(ev) = ev? else { return Err(tonic::Status::unavailable("pod stream closed by the control plane")) };
                    let pod: serde_json::Value = serde_json::from_slice(&ev.pod).unwrap_or_default();
                    match pod_event::Kind::try_from(ev.kind) {
                        Ok(pod_event::Kind::Upsert) => {
                            if let (Some(l), Some(uid)) = (listed.as_mut(), crate::pods::uid_of(&pod)) {
                                l.insert(uid.to_string());
                            }
                            manager.upsert(pod);
                        }
                        Ok(pod_event::Kind::Delete) => manager.delete(&pod),
                        Ok(pod_event::Kind::Synced) => {
                            // A later SYNCED (after a resync) starts a new list.
                            let l = listed.take().unwrap_or_default();
                            manager.synced(&l);
                            listed = Some(HashSet::new());
                            let _ = l;
                        }
                        Err(_) => warn!(kind = ev.kind, "unknown pod event kind"),
                    }
                }
            }
        }
    }
}

type Targeted = tokio::sync::watch::Receiver<Arc<std::collections::HashSet<std::net::Ipv4Addr>>>;

/// What the agent's pods need to know of the cluster's network, from its snapshots.
struct ClusterViews {
    /// Pod addresses this node's Service rules send traffic to.
    targeted: Targeted,
    /// The Services containers get variables for; None until the first snapshot.
    services: tokio::sync::watch::Receiver<crate::pods::service_env::Links>,
}

/// Follows the cluster's network snapshots and applies each to this node (routes, Service
/// rules). Only the newest snapshot matters, so one that fails to apply is retried until a newer
/// one arrives. Runs for the life of the process, reconnecting on its own.
async fn network_loop(
    mut client: NodeServiceClient<Channel>,
    token: String,
    node: String,
    routing: crate::routing::Routing,
    links: tokio::sync::watch::Sender<crate::pods::service_env::Links>,
) {
    let routing = Arc::new(std::sync::Mutex::new(routing));
    let mut backoff = Duration::from_millis(100);
    loop {
        let stream = client.watch_network(with_token(&token, WatchNetworkRequest { node_name: node.clone() })).await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(e) => {
                warn!(node = %node, error = %e, retry_in = ?backoff, "network watch failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let mut failed: Option<NetworkState> = None;
        loop {
            let next = tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(state)) => state,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(node = %node, error = %e, "network watch ended");
                        break;
                    }
                },
                _ = tokio::time::sleep(Duration::from_secs(1)), if failed.is_some() => failed.take().expect("checked"),
            };
            let linked = crate::pods::service_env::from_snapshot(&next);
            links.send_if_modified(|old| {
                let changed = old.as_deref() != Some(&linked);
                if changed {
                    *old = Some(Arc::new(linked));
                }
                changed
            });
            let routing = routing.clone();
            let generation = next.generation;
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || {
                let r = routing.lock().unwrap_or_else(|p| p.into_inner()).apply(&next);
                r.map_err(|e| (e, next))
            })
            .await;
            match result {
                Ok(Ok(())) => tracing::debug!(generation, took = ?started.elapsed(), "network applied"),
                Ok(Err((e, state))) => {
                    warn!(node = %node, generation, error = %e, "applying the network failed; will retry");
                    failed = Some(state);
                }
                Err(e) => warn!(error = %e, "network apply task failed"),
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Delivers the newest status of each pod, retrying until the control plane has it.
async fn report_loop(mut client: NodeServiceClient<Channel>, token: String, node: String, mut rx: mpsc::Receiver<Report>) {
    let mut pending: BTreeMap<String, Report> = BTreeMap::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(r) => {
                    pending.insert(r.uid.clone(), r);
                }
                None => return,
            }
        }
        while let Ok(r) = rx.try_recv() {
            // A newer report replaces an undelivered older one, keeping its events; a termination
            // is never replaced.
            match pending.get_mut(&r.uid) {
                Some(p) if p.terminated => p.events.extend(r.events),
                Some(p) => {
                    let mut events = std::mem::take(&mut p.events);
                    events.extend(r.events.iter().cloned());
                    *p = Report { events, ..r };
                }
                None => {
                    pending.insert(r.uid.clone(), r);
                }
            }
        }
        let batch: Vec<Report> = pending.values().cloned().collect();
        for r in batch {
            let req = PodReport {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
                status: serde_json::to_vec(&r.status).unwrap_or_default(),
                terminated: r.terminated,
                events: r
                    .events
                    .iter()
                    .map(|e| proto::node::KubeletEvent { r#type: if e.warning { "Warning" } else { "Normal" }.into(), reason: e.reason.into(), message: e.message.clone() })
                    .collect(),
                node_name: node.clone(),
            };
            let sent = std::time::Instant::now();
            match client.report_pod(with_token(&token, req)).await {
                Ok(_) => {
                    tracing::debug!(pod = %format!("{}/{}", r.namespace, r.name), took_us = sent.elapsed().as_micros() as u64, "status reported");
                    pending.remove(&r.uid);
                }
                Err(e) => {
                    warn!(pod = %format!("{}/{}", r.namespace, r.name), error = %e, "reporting pod status failed; will retry");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

/// An endless stream of heartbeats, one per `interval`.
fn heartbeats(node: String, interval: Duration) -> impl tokio_stream::Stream<Item = HeartbeatRequest> {
    let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(interval));
    tokio_stream::StreamExt::map(ticks, move |_| HeartbeatRequest { node_name: node.clone(), ready: true, message: String::new() })
}

//! Assembles a control plane: store, PKI, API server over HTTPS, node gateway over gRPC, controllers.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use control_plane::api::{self, ApiServer};
use control_plane::nodes::gateway::{NodeGateway, token_interceptor};
use control_plane::nodes::ipam::NodeIpam;
use control_plane::nodes::liveness::Liveness;
use control_plane::pki::Pki;
use control_plane::registry::Registry;
use control_plane::registry::allocator::ServiceAllocator;
use control_plane::events::Recorder;
use control_plane::informer::Informer;
use control_plane::{bootstrap, controllers, store, tls};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use control_plane::nodes::network::NetworkPublisher;
use proto::node::node_service_server::NodeServiceServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub store_url: String,
    pub api_listen: Vec<SocketAddr>,
    pub grpc_listen: Vec<SocketAddr>,
    pub service_cidr: String,
    pub cluster_cidr: String,
    pub node_port_range: RangeInclusive<u16>,
    pub extra_sans: Vec<String>,
    pub node_grace: Duration,
    pub pod_eviction: Duration,
    /// The address nodes and pods reach the API server at (the `kubernetes` Service's endpoint).
    pub advertise: Option<std::net::IpAddr>,
    /// Where the cluster DNS server listens (UDP and TCP); the `kube-dns` Service points here.
    pub dns_listen: Option<SocketAddr>,
}

pub struct Running {
    pub api: Arc<ApiServer>,
    pub pki: Pki,
    pub api_port: u16,
    pub grpc_port: u16,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Nodes whose Ready condition is True.
    pub async fn ready_nodes(&self) -> usize {
        let Some(nodes) = self.api.registry.get("", "v1", "nodes") else { return 0 };
        let Ok((items, _)) = self.api.list_objects(&nodes, None, &Default::default()).await else { return 0 };
        items
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count()
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn bind_all(addrs: &[SocketAddr], what: &str) -> Result<Vec<tokio::net::TcpListener>> {
    let mut out = Vec::new();
    let mut port = 0;
    for a in addrs {
        // Every address shares the first one's port, also when that port was picked by the kernel.
        let a = if a.port() == 0 && port != 0 { SocketAddr::new(a.ip(), port) } else { *a };
        let l = tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding the {what} listener on {a}"))?;
        port = l.local_addr()?.port();
        out.push(l);
    }
    Ok(out)
}

pub async fn start(cfg: ServerConfig) -> Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let store = store::open(&cfg.store_url, &cfg.data_dir).context("opening the store")?;
    let pki = Pki::load_or_create(&cfg.data_dir, &cfg.extra_sans).context("loading the cluster PKI")?;
    let services = ServiceAllocator::new(&cfg.service_cidr, cfg.node_port_range.clone()).context("--service-cidr")?;
    let ipam = NodeIpam::new(&cfg.cluster_cidr).context("--cluster-cidr")?;
    let api = Arc::new(ApiServer {
        store,
        registry: Arc::new(Registry::new()),
        services,
        admin_token: Some(pki.admin_token.clone()),
        nodes: Some(control_plane::api::remote::NodeConnector::new(pki.ca_cert_pem.clone(), pki.node_token.clone())),
    });
    if let Some(svc) = api.registry.get("", "v1", "services") {
        let (existing, _) = api.list_objects(&svc, None, &Default::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        api.services.load(&existing);
    }
    let api_listeners = bind_all(&cfg.api_listen, "API").await?;
    let api_port = api_listeners[0].local_addr()?.port();
    bootstrap::ensure(&api, api_port).await.map_err(|e| anyhow::anyhow!("bootstrapping: {e}"))?;
    if let Some(ip) = cfg.advertise {
        bootstrap::publish_endpoints(&api, ip, api_port, cfg.dns_listen).await.map_err(|e| anyhow::anyhow!("publishing the built-in endpoints: {e}"))?;
    }

    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let tls_config = pki.server_config().context("building the TLS configuration")?;
    for l in api_listeners {
        let app = api::app(api.clone());
        let mut rx = rx.clone();
        let cfg = tls_config.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            if let Err(e) = tls::serve(l, cfg, app, stop).await {
                tracing::error!(error = %e, "API listener failed");
            }
        }));
    }

    let liveness = Arc::new(Liveness::default());
    let pod_res = api.registry.get("", "v1", "pods").context("pods not registered")?;
    let pods = control_plane::informer::Informer::<serde_json::Value>::start(api.clone(), pod_res);
    let router = control_plane::nodes::router::PodRouter::start(pods.clone());
    let informer = |group: &str, plural: &str| api.registry.get(group, "v1", plural).with_context(|| format!("{plural} not registered"));
    let nodes = Informer::<Node>::start(api.clone(), informer("", "nodes")?);
    let services = Informer::<Service>::start(api.clone(), informer("", "services")?);
    let endpoints = Informer::<Endpoints>::start(api.clone(), informer("", "endpoints")?);
    let network = NetworkPublisher::start(nodes.clone(), services.clone(), endpoints.clone()).state;
    let gateway = NodeGateway { api: api.clone(), pods, router, cidrs: Default::default(), liveness: liveness.clone(), ipam, pki: pki.clone(), network, recorders: Default::default() };
    let service = NodeServiceServer::with_interceptor(gateway, token_interceptor(pki.node_token.clone()));
    let identity = tonic::transport::Identity::from_pem(&pki.server_cert_pem, &pki.server_key_pem);
    let grpc_listeners = bind_all(&cfg.grpc_listen, "node gateway").await?;
    let grpc_port = grpc_listeners.first().map(|l| l.local_addr().map(|a| a.port())).transpose()?.unwrap_or(0);
    for l in grpc_listeners {
        let service = service.clone();
        let identity = identity.clone();
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let server = tonic::transport::Server::builder()
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map(|mut b| b.add_service(service));
            // Pod assignments and reports are small messages on long-lived streams: without
            // TCP_NODELAY, Nagle holds each behind the peer's delayed ACK (40 ms here).
            let incoming = tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
            match server {
                Ok(router) => {
                    let stop = async move {
                        let _ = rx.wait_for(|v| *v).await;
                    };
                    if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                        tracing::error!(error = %e, "node gateway failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "node gateway TLS setup failed"),
            }
        }));
    }

    tasks.push(tokio::spawn(controllers::namespace::run(api.clone())));
    let typed_pods = Informer::<Pod>::start(api.clone(), informer("", "pods")?);
    let rss = Informer::<ReplicaSet>::start(api.clone(), informer("apps", "replicasets")?);
    let deployments = Informer::<Deployment>::start(api.clone(), informer("apps", "deployments")?);
    let recorder = |component: &str| Recorder::new(api.clone(), component, "");
    let node_cache = Informer::<serde_json::Value>::start(api.clone(), informer("", "nodes")?);
    tasks.push(tokio::spawn(controllers::nodes::run(api.clone(), node_cache, liveness, cfg.node_grace, cfg.pod_eviction)));
    tasks.push(tokio::spawn(controllers::scheduling::run(api.clone(), typed_pods.clone(), nodes.clone(), recorder("default-scheduler"))));
    tasks.push(tokio::spawn(controllers::replicaset::run::run(api.clone(), rss.clone(), typed_pods.clone(), recorder("replicaset-controller"))));
    tasks.push(tokio::spawn(controllers::deployment::run::run(api.clone(), deployments.clone(), rss.clone(), typed_pods.clone(), recorder("deployment-controller"))));
    if let Some(addr) = cfg.dns_listen {
        tasks.push(start_dns(addr, services.clone(), endpoints.clone(), rx.clone()).await?);
    }
    tasks.push(tokio::spawn(controllers::endpoints::run::run(api.clone(), services, endpoints, typed_pods.clone())));
    tasks.push(tokio::spawn(controllers::garbage_collector::run(api.clone(), deployments.clone(), rss.clone(), typed_pods.clone())));

    info!(api_port, grpc_port, data_dir = %cfg.data_dir.display(), "control plane serving");
    Ok(Running { api, pki, api_port, grpc_port, shutdown, tasks })
}

/// Cluster DNS on `addr` (UDP and TCP), answering from the Service and Endpoints informers and
/// forwarding other names to the host's resolvers.
async fn start_dns(addr: SocketAddr, services: Arc<Informer<Service>>, endpoints: Arc<Informer<Endpoints>>, mut stop: watch::Receiver<bool>) -> Result<JoinHandle<()>> {
    use control_plane::dns::{self, Records};
    let udp = tokio::net::UdpSocket::bind(addr).await.with_context(|| format!("binding cluster DNS on udp {addr}"))?;
    let tcp = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding cluster DNS on tcp {addr}"))?;
    let upstreams = dns::upstreams_from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let (tx, records) = watch::channel(Arc::new(Records::build(&[], &[], CLUSTER_DOMAIN)));
    tokio::spawn(async move {
        let (mut s, mut e) = (services.subscribe(), endpoints.subscribe());
        services.wait_synced().await;
        endpoints.wait_synced().await;
        loop {
            while s.try_recv().is_ok() || e.try_recv().is_ok() {}
            let svcs: Vec<Service> = services.list().iter().map(|s| (**s).clone()).collect();
            let eps: Vec<Endpoints> = endpoints.list().iter().map(|e| (**e).clone()).collect();
            if tx.send(Arc::new(Records::build(&svcs, &eps, CLUSTER_DOMAIN))).is_err() {
                return;
            }
            use tokio::sync::broadcast::error::RecvError::Closed;
            let closed = tokio::select! {
                r = s.recv() => matches!(r, Err(Closed)),
                r = e.recv() => matches!(r, Err(Closed)),
            };
            if closed {
                return;
            }
        }
    });
    info!(%addr, upstreams = ?upstreams, "cluster DNS serving");
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        if let Err(e) = dns::serve(udp, tcp, records, upstreams, shutdown).await {
            tracing::error!(error = %e, "cluster DNS failed");
        }
    }))
}

const CLUSTER_DOMAIN: &str = "cluster.local";

//! The agent's link to the control plane: register, then heartbeat; reconnect with back-off
//! whenever the link breaks, for as long as the agent runs.

use std::path::PathBuf;
use std::time::Duration;

use proto::node::node_service_client::NodeServiceClient;
use proto::node::{HeartbeatRequest, NodeAddress, RegisterRequest, RegisterResponse};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid server address {0:?}: {1}")]
    Address(String, String),
    #[error("the control plane refused the node: {0}")]
    Refused(String),
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
}

pub struct Link {
    cfg: Config,
    token: String,
    endpoint: Endpoint,
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
            .tcp_nodelay(true);
        Ok(Link { cfg, token, endpoint })
    }

    fn with_token<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Ok(v) = format!("Bearer {}", self.token).parse() {
            req.metadata_mut().insert("authorization", v);
        }
        req
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

    async fn register(&self, client: &mut NodeServiceClient<Channel>) -> Result<RegisterResponse, tonic::Status> {
        Ok(client.register(self.with_token(self.register_request())).await?.into_inner())
    }

    /// Runs until the process ends. Errors the control plane will never accept (a bad token or
    /// node name) end it; everything else is retried.
    pub async fn run(self) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.session().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(status) if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::InvalidArgument) => {
                    return Err(Error::Refused(status.message().to_string()));
                }
                Err(status) => warn!(node = %self.cfg.node_name, error = %status, retry_in = ?backoff, "control plane link down"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection: register, then heartbeat until the stream breaks.
    async fn session(&self) -> Result<(), tonic::Status> {
        let channel = self.endpoint.connect().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut client = NodeServiceClient::new(channel);
        let assigned = self.register(&mut client).await?;
        info!(node = %self.cfg.node_name, pod_cidr = %assigned.pod_cidr, "registered");
        let interval = Duration::from_millis(assigned.heartbeat_interval_ms.clamp(100, 60_000) as u64);
        let name = self.cfg.node_name.clone();
        let beats = async_stream(name, interval);
        let mut responses = client.heartbeat(self.with_token(beats)).await?.into_inner();
        while let Some(_ack) = responses.message().await? {}
        Err(tonic::Status::unavailable("heartbeat stream closed by the control plane"))
    }
}

/// An endless stream of heartbeats, one per `interval`.
fn async_stream(node: String, interval: Duration) -> impl tokio_stream::Stream<Item = HeartbeatRequest> {
    let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(interval));
    tokio_stream::StreamExt::map(ticks, move |_| HeartbeatRequest { node_name: node.clone(), ready: true, message: String::new() })
}

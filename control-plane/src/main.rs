//! `control-plane`: serve the Kubernetes API for a cluster, or run a whole dev cluster with `up`.

mod host_packages;
mod server;
mod up;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

/// The API server allocates for every object it decodes and encodes; glibc's allocator spent a
/// fifth of the CPU in its free lists under a create burst.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "control-plane", version, about = "tinykube control plane: a Kubernetes API server, controllers and scheduler")]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane only (node agents join with `node-agent --server ...`).
    Serve(ServeArgs),
    /// Run an all-in-one dev cluster in the foreground: control plane plus N node agents, each in
    /// its own network namespace. Ctrl-C or SIGTERM stops everything and removes what it made.
    Up(UpArgs),
}

#[derive(Args, Clone)]
pub struct ClusterArgs {
    /// Where the cluster keeps its state, certificates and kubeconfig.
    #[arg(long, default_value = "/var/lib/tinykube")]
    pub data_dir: PathBuf,
    /// Store URL: "embedded" (default: redb in the data dir), "embedded:///path/state.redb", or "memory".
    #[arg(long, default_value = "embedded")]
    pub store: String,
    /// Range Service cluster IPs come from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// Range pod addresses come from; each node gets a /24 of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// NodePort range, FIRST-LAST.
    #[arg(long, default_value = "30000-32767")]
    pub node_port_range: String,
    /// Seconds without heartbeats before a node is marked Ready=Unknown.
    #[arg(long, default_value_t = 3)]
    pub node_grace_seconds: u64,
    /// Seconds pods stay on an unreachable node before they are evicted (unless they tolerate
    /// the node.kubernetes.io/unreachable taint for longer).
    #[arg(long, default_value_t = 5)]
    pub pod_eviction_seconds: u64,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Address(es) the HTTPS API listens on.
    #[arg(long = "listen", default_value = "0.0.0.0:6443")]
    listen: Vec<SocketAddr>,
    /// Address(es) the gRPC node gateway listens on.
    #[arg(long = "grpc-listen", default_value = "0.0.0.0:6444")]
    grpc_listen: Vec<SocketAddr>,
    /// Extra names or IPs for the serving certificate (the addresses agents and clients use).
    #[arg(long = "advertise-address")]
    advertise: Vec<String>,
    /// Write an admin kubeconfig here (server URL from --kubeconfig-server).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    kubeconfig_server: String,
    /// Serve cluster DNS (the kube-dns Service) on this address, e.g. 10.0.0.1:53; pods must be
    /// able to reach it. Without it, pods get no cluster DNS.
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
}

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Number of node agents to start.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// API port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// The node-agent binary (default: next to this one).
    #[arg(long)]
    pub agent_binary: Option<PathBuf>,
    /// Network the node "hosts" share, a /24 (default: a free 10.250.X.0/24 picked per data dir).
    #[arg(long)]
    pub node_cidr: Option<String>,
}

pub fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = s.split_once('-').with_context(|| format!("--node-port-range {s:?}: want FIRST-LAST"))?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || a > b {
        bail!("--node-port-range {s:?}: FIRST must be at least 1 and not above LAST");
    }
    Ok(a..=b)
}

impl ClusterArgs {
    pub fn server_config(&self, api_listen: Vec<SocketAddr>, grpc_listen: Vec<SocketAddr>, sans: Vec<String>, dns_listen: Option<SocketAddr>) -> Result<server::ServerConfig> {
        // The first address given that is an IP is where pods find the API server.
        let advertise = sans.iter().find_map(|s| s.parse().ok()).or(dns_listen.map(|d| d.ip()));
        Ok(server::ServerConfig {
            data_dir: self.data_dir.clone(),
            store_url: self.store.clone(),
            api_listen,
            grpc_listen,
            service_cidr: self.service_cidr.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            node_port_range: parse_port_range(&self.node_port_range)?,
            extra_sans: sans,
            node_grace: Duration::from_secs(self.node_grace_seconds.max(1)),
            pod_eviction: Duration::from_secs(self.pod_eviction_seconds),
            advertise,
            dns_listen,
        })
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,h2=warn,hyper=warn,tower=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM and SIGINT, listened for from the start so a signal during startup is not lost
/// (the default action would kill the process before it cleans up).
pub struct Shutdown {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    pub fn listen() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Shutdown {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let result = match Shutdown::listen() {
        Ok(shutdown) => match cli.command {
            Command::Serve(args) => serve(args, shutdown).await,
            Command::Up(args) => up::run(args, shutdown).await,
        },
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("control-plane: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(args: ServeArgs, mut shutdown: Shutdown) -> Result<()> {
    let cfg = args.cluster.server_config(args.listen, args.grpc_listen, args.advertise, args.dns_listen)?;
    let running = server::start(cfg).await?;
    if let Some(path) = &args.kubeconfig {
        running.pki.write_kubeconfig(path, &args.kubeconfig_server).context("writing the kubeconfig")?;
    }
    shutdown.wait().await;
    running.stop().await;
    Ok(())
}

//! `node-agent`: joins a control plane and runs this node's pods.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use node_agent::connection::{Config, Link};

#[derive(Parser)]
#[command(name = "node-agent", version, about = "tinykube node agent: joins a control plane and runs this node's pods")]
struct Cli {
    /// The control plane's node gateway, e.g. https://10.250.0.1:6444.
    #[arg(long)]
    server: String,
    /// This node's name (a DNS-1123 subdomain). Default: the host name.
    #[arg(long)]
    node_name: Option<String>,
    /// The address other nodes and the control plane reach this node at.
    #[arg(long)]
    node_ip: String,
    /// Where the agent keeps images, containers and state.
    #[arg(long, default_value = "/var/lib/tinykube-agent")]
    data_dir: PathBuf,
    /// The cluster CA certificate (PEM).
    #[arg(long)]
    ca_file: PathBuf,
    /// File holding the node bootstrap token.
    #[arg(long)]
    token_file: PathBuf,
    /// OCI image archives to import at start, for nodes without registry access.
    #[arg(long = "preload-images")]
    preload_images: Vec<PathBuf>,
    /// Build the demo images (demo/busybox, demo/web:v1, demo/web:v2) from this static busybox and import them.
    #[arg(long)]
    demo_images_from: Option<PathBuf>,
    /// Remove every pod this node runs (containers, mounts, cgroups) and exit: for taking a node
    /// down for good. An ordinary restart of the agent keeps pods running.
    #[arg(long)]
    cleanup: bool,
    /// Pod sandboxes (namespaces with their network wired) kept ready ahead of time, so new pods
    /// start without waiting for them; 0 makes each pod's sandbox when it starts.
    #[arg(long, default_value_t = node_agent::pods::warm::DEFAULT_SIZE as u16, value_parser = clap::value_parser!(u16).range(0..=64))]
    warm_sandboxes: u16,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
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

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    if let Err(e) = run(cli).await {
        eprintln!("node-agent: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let node_name = match cli.node_name {
        Some(n) => n,
        None => nix::unistd::gethostname().context("reading the host name")?.to_string_lossy().to_lowercase(),
    };
    if cli.cleanup {
        node_agent::pods::cleanup_node(&cli.data_dir, &node_name).map_err(|e| anyhow::anyhow!("cleaning up node {node_name}: {e}"))?;
        return node_agent::routing::cleanup().with_context(|| format!("removing node {node_name}'s routes and Service rules"));
    }
    if cli.node_ip.parse::<std::net::IpAddr>().is_err() {
        anyhow::bail!("--node-ip {:?} is not an IP address", cli.node_ip);
    }
    std::fs::create_dir_all(&cli.data_dir).with_context(|| format!("creating {}", cli.data_dir.display()))?;
    let mut preload = cli.preload_images.clone();
    if let Some(busybox) = &cli.demo_images_from {
        let archive = cli.data_dir.join("demo-images.tar");
        if !archive.exists() {
            node_agent::images::build_demo_archive(busybox, &archive)
                .with_context(|| format!("building the demo images from {}", busybox.display()))?;
        }
        preload.push(archive);
    }
    let link = Link::new(Config {
        preload,
        server: cli.server,
        node_name,
        node_ip: cli.node_ip,
        data_dir: cli.data_dir,
        ca_file: cli.ca_file,
        token_file: cli.token_file,
        warm_sandboxes: usize::from(cli.warm_sandboxes),
    })?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = link.run() => r.context("control plane link")?,
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping"),
    }
    Ok(())
}

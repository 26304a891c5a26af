//! `control-plane up`: an all-in-one dev cluster on this machine.
//!
//! Each node agent runs in its own network namespace with its own address on a bridge, so a
//! multi-node cluster behaves like several hosts. Everything made here is removed on exit.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use control_plane::cluster::net::{ClusterNetwork, NetConfig, cluster_id_for, run_in_netns};

use crate::UpArgs;
use crate::host_packages;
use crate::server;

fn step(msg: &str) {
    println!("[up] {msg}");
}

/// A 10.250.X.0/24 that no route on this host covers yet, starting from one derived from `id`.
fn pick_node_cidr(id: &str) -> Result<String> {
    let out = Command::new("ip").args(["-4", "route", "show", "table", "all"]).output().context("running `ip route`")?;
    let routes = String::from_utf8_lossy(&out.stdout);
    let start = u8::from_str_radix(&id[..2], 16).unwrap_or(0) as u16;
    for k in 0..256u16 {
        let x = (start + k) % 256;
        let prefix = format!("10.250.{x}.");
        if !routes.lines().any(|l| l.split_whitespace().any(|w| w.starts_with(&prefix))) {
            return Ok(format!("10.250.{x}.0/24"));
        }
    }
    bail!("no free 10.250.X.0/24 for the node network; pass --node-cidr")
}

/// Node agents started by `up`; dropping this stops them.
struct Agents {
    children: Vec<(String, Child, PathBuf)>,
}

impl Agents {
    fn stop(&mut self) {
        for (_, child, _) in &self.children {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child, pid_file) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
            let _ = fs::remove_file(&*pid_file);
            tracing::debug!(node = %name, "agent stopped");
        }
        self.children.clear();
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        self.stop();
    }
}

fn agent_binary(args: &UpArgs) -> Result<PathBuf> {
    if let Some(p) = &args.agent_binary {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().context("finding this executable")?;
    let p = me.with_file_name("node-agent");
    if !p.exists() {
        bail!("node-agent not found next to {} (build it with `cargo build`, or pass --agent-binary)", me.display());
    }
    Ok(p)
}

pub async fn run(args: UpArgs, mut shutdown: crate::Shutdown) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("`control-plane up` must run as root: it creates network namespaces, bridges and routes");
    }
    if args.nodes > 200 {
        bail!("--nodes {}: at most 200 nodes fit the node network", args.nodes);
    }
    host_packages::ensure(&step);
    let t0 = Instant::now();
    fs::create_dir_all(&args.cluster.data_dir).with_context(|| format!("creating {}", args.cluster.data_dir.display()))?;
    let dir = fs::canonicalize(&args.cluster.data_dir)?;
    let agent = agent_binary(&args)?;
    let id = cluster_id_for(&dir);
    let node_cidr = match &args.node_cidr {
        Some(c) => c.clone(),
        None => pick_node_cidr(&id)?,
    };

    step(&format!("network: bridge and blackhole routes for {node_cidr}, {}, {}", args.cluster.cluster_cidr, args.cluster.service_cidr));
    let parse = |s: &str| s.parse::<ipnet::Ipv4Net>().with_context(|| format!("{s:?} is not an IPv4 CIDR"));
    let mut net = ClusterNetwork::create(NetConfig {
        cluster_id: id.clone(),
        node_cidr: parse(&node_cidr)?,
        blackhole: vec![parse(&args.cluster.cluster_cidr)?, parse(&args.cluster.service_cidr)?, parse(&node_cidr)?],
        state_file: dir.join("network.json"),
    })
    .context("setting up the node network")?;
    let gateway = net.gateway();

    step("control plane: store, certificates, API server, node gateway");
    let mut cluster = args.cluster.clone();
    cluster.data_dir = dir.clone();
    let api_listen = vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port), SocketAddr::new(IpAddr::V4(gateway), args.port)];
    let grpc_listen = vec![SocketAddr::new(IpAddr::V4(gateway), 0)];
    let running = server::start(cluster.server_config(api_listen, grpc_listen, vec![gateway.to_string()], Some(SocketAddr::new(IpAddr::V4(gateway), 53)))?).await?;
    let kubeconfig = dir.join("kubeconfig");
    let server_url = format!("https://127.0.0.1:{}", running.api_port);
    running.pki.write_kubeconfig(&kubeconfig, &server_url).context("writing the kubeconfig")?;

    let nodes_dir = dir.join("nodes");
    fs::create_dir_all(&nodes_dir)?;
    let mut agents = Agents { children: Vec::new() };
    let mut netns_paths = Vec::new();
    for i in 1..=args.nodes {
        let name = format!("node-{i}");
        let node = net.add_node(&name).with_context(|| format!("creating the network namespace of {name}"))?;
        let node_dir = nodes_dir.join(&name);
        fs::create_dir_all(&node_dir)?;
        let log = fs::File::create(nodes_dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(&agent);
        cmd.arg("--server")
            .arg(format!("https://{gateway}:{}", running.grpc_port))
            .args(["--node-name", &name])
            .args(["--node-ip", &node.address.to_string()])
            .arg("--data-dir")
            .arg(&node_dir)
            .arg("--ca-file")
            .arg(dir.join("pki/ca.crt"))
            .arg("--token-file")
            .arg(dir.join("pki/node.token"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Demo images come from the host's static busybox (Debian's busybox-static).
        if host_packages::static_busybox_present() {
            cmd.args(["--demo-images-from", "/bin/busybox"]);
        }
        // How to start this agent again by hand (after killing it, say): its netns and argv.
        let argv: Vec<String> = std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect();
        let args = serde_json::json!({"netns": node.netns, "argv": argv});
        fs::write(nodes_dir.join(format!("{name}.args")), serde_json::to_vec_pretty(&args)?)?;
        run_in_netns(&mut cmd, &node.netns_path)?;
        netns_paths.push(node.netns_path.clone());
        let child = cmd.spawn().with_context(|| format!("starting {}", agent.display()))?;
        let pid_file = nodes_dir.join(format!("{name}.pid"));
        fs::write(&pid_file, format!("{}\n", child.id()))?;
        step(&format!("node {name}: agent pid {} in netns {} at {}", child.id(), node.netns, node.address));
        agents.children.push((name, child, pid_file));
    }

    let ready = wait_ready(&running, args.nodes, Duration::from_secs(30)).await;
    match ready {
        Ok(()) => step(&format!("cluster ready in {} ms", t0.elapsed().as_millis())),
        Err(e) => step(&format!("warning: {e:#}")),
    }
    println!();
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get nodes");
    println!();
    step("running; press Ctrl-C (or send SIGTERM) to stop and clean up");

    shutdown.wait().await;
    step("stopping node agents");
    agents.stop();
    step("removing the nodes' pods (containers, mounts, cgroups)");
    for (i, netns) in (1..=args.nodes).zip(&netns_paths) {
        let name = format!("node-{i}");
        let mut cmd = Command::new(&agent);
        cmd.args(["--cleanup", "--node-name", &name, "--node-ip", "0.0.0.0", "--server", "https://unused", "--ca-file", "/dev/null", "--token-file", "/dev/null", "--data-dir"])
            .arg(nodes_dir.join(&name));
        // In the node's namespace: the agent's routes and Service rules are there.
        run_in_netns(&mut cmd, netns)?;
        let status = cmd.status();
        if !status.is_ok_and(|s| s.success()) {
            step(&format!("warning: cleaning up {name} failed; see above"));
        }
    }
    step("stopping the control plane");
    running.stop().await;
    step("removing network namespaces, links and routes");
    net.teardown().context("removing the node network")?;
    step("stopped");
    Ok(())
}

/// Waits until `n` nodes are Ready.
async fn wait_ready(running: &server::Running, n: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = running.ready_nodes().await;
        if ready >= n as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {n} nodes became Ready within {}s; see the logs in nodes/", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Service benchmark against a running `control-plane up --nodes N`: requests per second through a
//! ClusterIP and a NodePort against the same pods by their own addresses, and the time from an
//! Endpoints change in the API to the rules on a node. The load runs inside node-1's network
//! namespace (where pod, cluster and node addresses all route), so every packet stays inside the
//! cluster's namespaces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::ms;

/// Concurrent clients (BENCH_CONNECTIONS overrides).
fn connections() -> usize {
    std::env::var("BENCH_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}
const ROUND: Duration = Duration::from_secs(4);
const CHANGES: usize = 40;
const ROUNDS: usize = 3;

/// Runs `f` on a new thread inside the network namespace at `netns`.
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> Result<std::thread::JoinHandle<T>> {
    let ns = std::fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    Ok(std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the node's namespace");
        f()
    }))
}

fn get(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = Vec::with_capacity(256);
    s.read_to_end(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

/// Requests per second from CONNECTIONS sequential clients, each cycling through `targets`.
/// Requests per second from the clients, each cycling through `targets`, and how many requests
/// failed or took over 100 ms (a lost SYN costs a one-second retransmission).
fn rps(targets: Vec<SocketAddr>) -> (f64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let slow = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..connections())
        .map(|i| {
            let (stop, done, failed, slow, targets) = (stop.clone(), done.clone(), failed.clone(), slow.clone(), targets.clone());
            std::thread::spawn(move || {
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let counter = if get(targets[n % targets.len()]) { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if started.elapsed() > Duration::from_millis(100) {
                        slow.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(ROUND);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    (done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64(), failed.load(Ordering::Relaxed), slow.load(Ordering::Relaxed))
}

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_yaml::from_str(s).expect("valid benchmark manifest")
}

const BACKENDS: [&str; 3] = ["bench-direct", "bench-clusterip", "bench-nodeport"];

/// A Deployment of two demo/web pods behind a NodePort Service named `name`: its cluster IP, node
/// port and ready pod addresses.
async fn web_backend(deployments: &Api<Deployment>, services: &Api<Service>, endpoints: &Api<Endpoints>, name: &str) -> Result<(std::net::Ipv4Addr, u16, Vec<std::net::Ipv4Addr>)> {
    let pp = PostParams::default();
    deployments
        .create(&pp, &yaml(&format!(
            "metadata: {{name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - {{name: web, image: demo/web:v1, ports: [{{containerPort: 80}}], readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}}}\n",
        )))
        .await?;
    let svc = services.create(&pp, &yaml(&format!("metadata: {{name: {name}}}\nspec: {{type: NodePort, selector: {{app: {name}}}, ports: [{{port: 80}}]}}\n"))).await?;
    let spec = svc.spec.context("service without spec")?;
    let cluster_ip: std::net::Ipv4Addr = spec.cluster_ip.context("no cluster IP")?.parse()?;
    let node_port = spec.ports.and_then(|p| p.first().and_then(|p| p.node_port)).context("no node port")? as u16;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ips: Vec<_> = endpoints
            .get_opt(name)
            .await?
            .and_then(|e| e.subsets)
            .into_iter()
            .flatten()
            .flat_map(|s| s.addresses.into_iter().flatten())
            .filter_map(|a| a.ip.parse().ok())
            .collect();
        if ips.len() == 2 {
            return Ok((cluster_ip, node_port, ips));
        }
        if Instant::now() > deadline {
            bail!("{name} did not get 2 ready endpoints");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn service(dir: &str) -> Result<()> {
    let dir = PathBuf::from(dir);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(dir.join("kubeconfig")).context("reading DIR/kubeconfig")?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let args: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("nodes/node-1.args")).context("reading DIR/nodes/node-1.args")?)?;
    let netns = Path::new("/run/netns").join(args["netns"].as_str().context("no netns in node-1.args")?);
    let node: Node = Api::<Node>::all(client.clone()).get("node-1").await?;
    let node_ip: std::net::Ipv4Addr = node
        .status
        .and_then(|s| s.addresses)
        .and_then(|a| a.into_iter().find(|a| a.type_ == "InternalIP"))
        .context("node-1 has no InternalIP")?
        .address
        .parse()?;

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    // Each path gets its own two pods: backends keep closed connections in TIME_WAIT, and
    // connections of different paths reusing one 4-tuple (with different TCP timestamp offsets)
    // would stall each other for a SYN retransmission.
    for name in BACKENDS {
        let _ = deployments.delete(name, &DeleteParams::default()).await;
        let _ = services.delete(name, &DeleteParams::default()).await;
    }
    let _ = services.delete("bench-lat", &DeleteParams::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut backends = Vec::new();
    for name in BACKENDS {
        backends.push(web_backend(&deployments, &services, &endpoints, name).await?);
    }
    let [(_, _, direct_ips), (cluster_ip, _, _), (_, node_port, _)] = <[_; 3]>::try_from(backends).map_err(|_| anyhow::anyhow!("three backends"))?;
    let pod_ips = direct_ips;

    println!("Service benchmark: {} sequential HTTP/1.0 clients in node-1's namespace, {}s per round, {ROUNDS} rounds", connections(), ROUND.as_secs());
    let direct: Vec<SocketAddr> = pod_ips.iter().map(|ip| SocketAddr::from((*ip, 80))).collect();
    let via_cluster_ip = vec![SocketAddr::from((cluster_ip, 80))];
    let via_node_port = vec![SocketAddr::from((node_ip, node_port))];
    let results = in_netns(&netns, move || {
        // Rounds rotate the order, so no path always runs last (on the fullest conntrack table).
        let mut totals = [(0.0, 0, 0); 3];
        let targets = [&direct, &via_cluster_ip, &via_node_port];
        for round in 0..ROUNDS {
            for k in 0..3 {
                let i = (round + k) % 3;
                let (rate, failed, slow) = rps(targets[i].clone());
                totals[i].0 += rate / ROUNDS as f64;
                totals[i].1 += failed;
                totals[i].2 += slow;
            }
        }
        totals
    })?
    .join()
    .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    println!("{:<30} {:>10} {:>8} {:>8} {:>8}", "", "req/s", "ratio", "failed", ">100ms");
    for (name, (rate, failed, slow)) in [("pod IPs directly", results[0]), ("ClusterIP", results[1]), ("NodePort", results[2])] {
        println!("{name:<30} {rate:>10.0} {:>8.2} {failed:>8} {slow:>8}", rate / results[0].0);
    }

    // Endpoint change -> rules: a Service without selector whose Endpoints the benchmark writes,
    // pointing at a listener it runs on node-1's address; a connection to the cluster IP is
    // refused while there is no endpoint and accepted once the rule is in.
    let lat = services.create(&pp, &yaml("metadata: {name: bench-lat}\nspec: {ports: [{port: 9000, targetPort: 19000}]}\n")).await?;
    let lat_ip: std::net::Ipv4Addr = lat.spec.and_then(|s| s.cluster_ip).context("no cluster IP")?.parse()?;
    let target = SocketAddr::from((lat_ip, 9000));
    let listen = SocketAddr::from((node_ip, 19000));
    let stop = Arc::new(AtomicBool::new(false));
    let accepter = {
        let stop = stop.clone();
        in_netns(&netns, move || {
            let l = TcpListener::bind(listen).expect("binding the benchmark listener on node-1");
            l.set_nonblocking(true).expect("nonblocking");
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        })?
    };
    let (ask, asked) = std::sync::mpsc::channel::<bool>();
    let (tell, told) = std::sync::mpsc::channel::<Instant>();
    let prober = in_netns(&netns, move || {
        // For each request: wait until connecting succeeds (true) or is refused (false).
        for want in asked {
            let seen = loop {
                let ok = TcpStream::connect_timeout(&target, Duration::from_millis(100)).is_ok();
                if ok == want {
                    break Instant::now();
                }
                std::thread::sleep(Duration::from_micros(200));
            };
            if tell.send(seen).is_err() {
                return;
            }
        }
    })?;
    let body = |with: bool| {
        let subsets = if with { serde_json::json!([{"addresses": [{"ip": node_ip.to_string()}], "ports": [{"port": 19000}]}]) } else { serde_json::json!([]) };
        serde_json::json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "bench-lat"}, "subsets": subsets})
    };
    let _ = endpoints.create(&pp, &serde_json::from_value(body(false))?).await;
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for i in 0..CHANGES {
        let with = i % 2 == 0;
        let t0 = Instant::now();
        endpoints.patch("bench-lat", &PatchParams::default(), &Patch::Merge(body(with))).await?;
        ask.send(with)?;
        let seen = told.recv_timeout(Duration::from_secs(10)).context("the rule change never showed on node-1")?;
        if with { &mut added } else { &mut removed }.push(seen.saturating_duration_since(t0));
    }
    drop(ask);
    stop.store(true, Ordering::Relaxed);
    let _ = prober.join();
    let _ = accepter.join();
    for (what, samples) in [("endpoint added -> connections accepted", &mut added), ("endpoint removed -> connections refused", &mut removed)] {
        samples.sort();
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        println!("{what:<42} p50 {}, p99 {} ({} changes)", ms(pct(0.5)), ms(pct(0.99)), samples.len());
    }

    for name in BACKENDS {
        let _ = deployments.delete(name, &DeleteParams::default()).await;
        let _ = services.delete(name, &DeleteParams::default()).await;
    }
    let _ = services.delete("bench-lat", &DeleteParams::default()).await;
    Ok(())
}

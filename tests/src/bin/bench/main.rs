//! The project's benchmarks, side by side with a peer in the same run where one can run here.
//!
//! `bench sched [NODES] [PODS]`: create-to-bound throughput over fake nodes (register and heartbeat
//! only), then the scheduler's throughput on a backlog of pending pods (`bench_backlog`).
//! `bench node KUBECONFIG`: against a running `control-plane up`: pod start latency, a 100-pod
//! burst on one node, and self-heal time. No peer can run on this machine for these (no
//! kube-scheduler or kubelet packages); their figures are reported against the issues' targets.
//!
//! `cargo run --release -p e2e --bin bench -- api`: creates/s and latency through the HTTPS API on the
//! embedded store, and write-to-watcher delivery latency; the peer is etcd (the store real Kubernetes
//! uses) doing the same puts and watch through its HTTP/JSON gateway. Needs `etcd` (Debian's etcd-server).

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

mod bench_backlog;
mod bench_cluster;
mod bench_service;

/// The allocator `control-plane` uses, for the scheduler this process runs in `bench sched`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_port(port: u16) -> Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("nothing listening on 127.0.0.1:{port}")
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `total` operations from `concurrency` tasks and times each.
async fn load<F, Fut>(total: usize, concurrency: usize, op: F) -> Result<Stats>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        stats.latencies.extend(t.await??);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn cm(name: String) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name);
    c.data = Some([("payload".to_string(), "x".repeat(256))].into());
    c
}

/// Paced writes; returns, per write, the time from sending it to the watcher seeing it.
async fn watch_latency<W, Fut>(count: usize, per_sec: usize, write: W, seen: Arc<Mutex<HashMap<String, Instant>>>) -> Result<Stats>
where
    W: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut sent = HashMap::new();
    let gap = Duration::from_secs_f64(1.0 / per_sec as f64);
    let start = Instant::now();
    for i in 0..count {
        let name = format!("w-{i}");
        sent.insert(name.clone(), Instant::now());
        write(name).await?;
        let due = start + gap * (i as u32 + 1);
        tokio::time::sleep_until(due.into()).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let mut stats = Stats { elapsed: start.elapsed(), ..Default::default() };
    for (name, t0) in sent {
        let t1 = seen.get(&name).with_context(|| format!("watcher never saw {name}"))?;
        stats.latencies.push(t1.saturating_duration_since(t0));
    }
    Ok(stats)
}

async fn bench_ours(creates: usize, concurrency: usize) -> Result<(Stats, Stats)> {
    let dir = tempfile::tempdir()?;
    let (port, grpc) = (free_port()?, free_port()?);
    let kubeconfig = dir.path().join("kubeconfig");
    let _cp = Proc(
        Command::new(e2e::bin("control-plane"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--grpc-listen", &format!("127.0.0.1:{grpc}"), "--data-dir"])
            .arg(dir.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--kubeconfig-server", &format!("https://127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting control-plane serve (build with --release first)")?,
    );
    wait_port(port).await?;
    for _ in 0..100 {
        if kubeconfig.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let warm = api.clone();
    load(200, concurrency, move |i| {
        let api = warm.clone();
        async move { api.create(&PostParams::default(), &cm(format!("warm-{i}"))).await.map(|_| ()).map_err(Into::into) }
    })
    .await?;
    let a = api.clone();
    let creates = load(creates, concurrency, move |i| {
        let api = a.clone();
        async move { api.create(&PostParams::default(), &cm(format!("c-{i}"))).await.map(|_| ()).map_err(Into::into) }
    })
    .await?;

    let seen = Arc::new(Mutex::new(HashMap::new()));
    let rv = api.list_metadata(&Default::default()).await?.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            if let WatchEvent::Added(o) = ev {
                if let Some(n) = o.metadata.name {
                    s.lock().unwrap_or_else(|p| p.into_inner()).insert(n, Instant::now());
                }
            }
        }
    });
    let w = api.clone();
    let watch = watch_latency(1000, 500, |name| {
        let api = w.clone();
        async move { api.create(&PostParams::default(), &cm(name)).await.map(|_| ()).map_err(Into::into) }
    }, seen)
    .await?;
    Ok((creates, watch))
}

type HttpClient = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn etcd_post(client: &HttpClient, port: u16, path: &str, body: serde_json::Value) -> Result<()> {
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("etcd {path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

async fn bench_etcd(creates: usize, concurrency: usize) -> Result<(Stats, Stats)> {
    let dir = tempfile::tempdir()?;
    let (port, peer) = (free_port()?, free_port()?);
    let _etcd = Proc(
        Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{port}"), "--advertise-client-urls", &format!("http://127.0.0.1:{port}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}"), "--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}"), "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?,
    );
    wait_port(port).await?;
    let client: HttpClient = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let value = serde_json::to_string(&cm("x".into()))?;
    let put = {
        let (client, value) = (client.clone(), value.clone());
        move |key: String| {
            let (client, value) = (client.clone(), value.clone());
            async move { etcd_post(&client, port, "/v3/kv/put", serde_json::json!({"key": b64(&key), "value": b64(&value)})).await }
        }
    };
    // Kubernetes writes with a transaction guarding on non-existence; a plain put is the peer's best case.
    for i in 0..200 {
        put(format!("/registry/configmaps/default/warm-{i}")).await?;
    }
    let p = put.clone();
    let creates = load(creates, concurrency, move |i| p(format!("/registry/configmaps/default/c-{i}"))).await?;

    let seen = Arc::new(Mutex::new(HashMap::new()));
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}/v3/watch"))
        .body(Full::new(Bytes::from(serde_json::to_vec(&serde_json::json!({
            "create_request": {"key": b64("/registry/configmaps/default/w-"), "range_end": b64("/registry/configmaps/default/w.")}
        }))?)))?;
    let resp = client.request(req).await?;
    let s = seen.clone();
    tokio::spawn(async move {
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
                let now = Instant::now();
                for ev in v["result"]["events"].as_array().into_iter().flatten() {
                    let key = ev["kv"]["key"].as_str().and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok());
                    if let Some(key) = key.and_then(|k| String::from_utf8(k).ok()) {
                        let name = key.rsplit('/').next().unwrap_or_default().to_string();
                        s.lock().unwrap_or_else(|p| p.into_inner()).insert(name, now);
                    }
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let w = put.clone();
    let watch = watch_latency(1000, 500, move |name| w(format!("/registry/configmaps/default/{name}")), seen).await?;
    Ok((creates, watch))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("api") => {}
        Some("sched") => {
            let nodes = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
            let pods = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
            bench_cluster::sched(nodes, pods).await?;
            return bench_backlog::sched_backlog(nodes, pods).await;
        }
        Some("node") => return bench_cluster::node(args.get(1).map(String::as_str).unwrap_or("/tmp/tinykube/kubeconfig")).await,
        Some("deploy") => {
            let nodes = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(100);
            let replicas = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
            return bench_cluster::deploy(nodes, replicas).await;
        }
        Some("service") => return bench_service::service(args.get(1).map(String::as_str).unwrap_or("/tmp/tinykube")).await,
        _ => bail!("usage: bench api [CREATES] [CONCURRENCY] | bench sched [NODES] [PODS] | bench node KUBECONFIG | bench deploy [NODES] [REPLICAS] | bench service UP_DATA_DIR"),
    }
    let creates: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    let concurrency: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(64);
    println!("API benchmark: {creates} creates from {concurrency} concurrent clients; watch delivery of 1000 writes at 500/s");
    let (ours, ours_watch) = bench_ours(creates, concurrency).await?;
    let (etcd, etcd_watch) = bench_etcd(creates, concurrency).await?;
    println!("{:<34} {:>14} {:>14} {:>8}", "", "tinykube API", "etcd (peer)", "ratio");
    let row = |name: &str, a: String, b: String, r: f64| println!("{name:<34} {a:>14} {b:>14} {r:>8.2}");
    row("creates/s (higher is better)", format!("{:.0}", ours.rate()), format!("{:.0}", etcd.rate()), ours.rate() / etcd.rate());
    for (label, p) in [("create latency p50", 0.5), ("create latency p99", 0.99)] {
        row(label, ms(ours.pct(p)), ms(etcd.pct(p)), ours.pct(p).as_secs_f64() / etcd.pct(p).as_secs_f64());
    }
    for (label, p) in [("write->watcher p50", 0.5), ("write->watcher p99", 0.99)] {
        row(label, ms(ours_watch.pct(p)), ms(etcd_watch.pct(p)), ours_watch.pct(p).as_secs_f64() / etcd_watch.pct(p).as_secs_f64());
    }
    Ok(())
}

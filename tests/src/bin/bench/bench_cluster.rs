//! Scheduler and node benchmarks (see `bench.rs` for the entry point).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use proto::node::node_service_client::NodeServiceClient;
use proto::node::{HeartbeatRequest, NodeAddress, RegisterRequest};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::{Stats, load, ms};

pub(crate) fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "demo/busybox", "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"], "resources": {"requests": {"cpu": "10m", "memory": "1Mi"}}}],
        },
    }))
    .expect("a valid pod")
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn is_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A control plane (`serve`) with `nodes` fake nodes: they register and heartbeat, and with
/// `kwok` they also report every pod bound to them Running and Ready (and gone once deleted),
/// like KWOK's fake kubelets.
struct FakeCluster {
    _dir: tempfile::TempDir,
    _cp: crate::Proc,
    client: kube::Client,
}

async fn fake_cluster(nodes: usize, kwok: bool) -> Result<FakeCluster> {
    let dir = tempfile::tempdir()?;
    let (port, grpc) = (crate::free_port()?, crate::free_port()?);
    let kubeconfig = dir.path().join("kubeconfig");
    let cp = crate::Proc(
        std::process::Command::new(e2e::bin("control-plane"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--grpc-listen", &format!("127.0.0.1:{grpc}"), "--data-dir"])
            .arg(dir.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--kubeconfig-server", &format!("https://127.0.0.1:{port}")])
            // 1,000 nodes need more than a /16's 256 node blocks.
            .args(["--cluster-cidr", "10.128.0.0/12"])
            .env("RUST_LOG", "warn")
            .spawn()
            .context("starting control-plane serve")?,
    );
    crate::wait_port(port).await?;
    crate::wait_port(grpc).await?;
    let ca = std::fs::read_to_string(dir.path().join("pki/ca.crt"))?;
    let token = std::fs::read_to_string(dir.path().join("pki/node.token"))?.trim().to_string();
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{grpc}"))?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("kubernetes"))?
        .connect()
        .await?;
    let t = Instant::now();
    // Registered 50 at a time, as a fleet of agents starting together would.
    let mut registrations = futures::stream::iter((0..nodes).map(|i| fake_node(channel.clone(), token.clone(), i, kwok)))
        .buffer_unordered(50);
    while let Some(r) = registrations.next().await {
        r?;
    }
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)?;
    let node_api: Api<Node> = Api::all(client.clone());
    loop {
        let ready = node_api.list(&ListParams::default()).await?.items.iter().filter(|n| {
            n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        }).count();
        if ready == nodes {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("only {ready} of {nodes} fake nodes became Ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{nodes} fake nodes registered and Ready in {}", ms(t.elapsed()));
    Ok(FakeCluster { _dir: dir, _cp: cp, client })
}

/// Registers fake node `i`, keeps it heartbeating, and with `kwok` runs its fake kubelet.
async fn fake_node(channel: tonic::transport::Channel, token: String, i: usize, kwok: bool) -> Result<()> {
    let name = format!("fake-{i:04}");
    let mut client = NodeServiceClient::new(channel);
    let capacity: HashMap<String, String> = [("cpu", "64"), ("memory", "256Gi"), ("pods", "110")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    client
        .register(proto::auth::with_token(&token, RegisterRequest {
            node_name: name.clone(),
            addresses: vec![NodeAddress { r#type: "InternalIP".into(), address: format!("10.{}.{}.{}", 200, i / 250, i % 250 + 1) }],
            allocatable: capacity.clone(),
            capacity,
            info: None,
            labels: Default::default(),
        }))
        .await?;
    let beat_name = name.clone();
    let beats = tokio_stream::StreamExt::map(tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(Duration::from_secs(1))), move |_| {
        HeartbeatRequest { node_name: beat_name.clone(), ready: true, message: String::new() }
    });
    let mut acks = client.heartbeat(proto::auth::with_token(&token, beats)).await?.into_inner();
    tokio::spawn(async move { while let Ok(Some(_)) = acks.message().await {} });
    if kwok {
        tokio::spawn(kwok_node(client, token, name));
    }
    Ok(())
}

/// A fake kubelet: every pod bound to the node is reported Running and Ready at once; a pod
/// being deleted is reported gone.
async fn kwok_node(mut client: NodeServiceClient<tonic::transport::Channel>, token: String, node: String) {
    let Ok(stream) = client.watch_pods(proto::auth::with_token(&token, proto::node::WatchPodsRequest { node_name: node.clone() })).await else { return };
    let mut stream = stream.into_inner();
    let mut reported = std::collections::HashSet::new();
    while let Ok(Some(ev)) = stream.message().await {
        let Ok(pod) = serde_json::from_slice::<serde_json::Value>(&ev.pod) else { continue };
        let (Some(ns), Some(name), Some(uid)) = (pod["metadata"]["namespace"].as_str(), pod["metadata"]["name"].as_str(), pod["metadata"]["uid"].as_str()) else { continue };
        let terminated = pod["metadata"]["deletionTimestamp"].is_string();
        if !terminated && !reported.insert(uid.to_string()) {
            continue;
        }
        let now = jiff::Timestamp::now().to_string();
        let ready = |t: &str| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": now});
        let containers: Vec<_> = pod["spec"]["containers"].as_array().into_iter().flatten().map(|c| serde_json::json!({
            "name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": now}},
        })).collect();
        let status = serde_json::json!({
            "phase": "Running", "startTime": now, "hostIP": "10.200.0.1",
            "conditions": [ready("PodScheduled"), ready("Initialized"), ready("ContainersReady"), ready("Ready")],
            "containerStatuses": containers,
        });
        let report = proto::node::PodReport {
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
            status: serde_json::to_vec(&status).unwrap_or_default(),
            terminated,
            node_name: node.clone(),
            ..Default::default()
        };
        let _ = client.report_pod(proto::auth::with_token(&token, report)).await;
    }
}

/// Scheduler throughput: `nodes` fake nodes (they register and heartbeat; they run nothing),
/// then `pods` pods created as fast as the API takes them; time until every one is bound.
pub async fn sched(nodes: usize, pods: usize) -> Result<()> {
    let cluster = fake_cluster(nodes, false).await?;
    let client = cluster.client.clone();
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rv = api.list_metadata(&ListParams::default()).await?.metadata.resource_version.unwrap_or_default();
    // The load generator shares the machine's two cores with the cluster, so it does as little
    // as it can: it watches only bound pods (each arrives once, when bound) and sends bodies
    // serialized ahead of time without decoding the replies.
    let mut stream = api.watch(&WatchParams::default().fields("spec.nodeName!="), &rv).await?.boxed();
    let bound = Arc::new(Mutex::new(None::<Instant>));
    let b = bound.clone();
    let watcher = tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        while let Some(Ok(ev)) = stream.next().await {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
                if seen.insert(p.metadata.name.unwrap_or_default()) && seen.len() == pods {
                    *b.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    return;
                }
            }
        }
    });
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..pods).map(|i| serde_json::to_vec(&pod(&format!("s-{i}"), None))).collect::<Result<_, _>>()?);
    let start = Instant::now();
    let created = load(pods, 64, move |i| {
        let (client, bodies) = (client.clone(), bodies.clone());
        async move {
            let req = http::Request::post("/api/v1/namespaces/default/pods").header("content-type", "application/json").body(bodies[i].clone())?;
            client.request_text(req).await.map(|_| ()).map_err(Into::into)
        }
    })
    .await?;
    let _ = tokio::time::timeout(Duration::from_secs(120), watcher).await;
    let done = bound.lock().unwrap_or_else(|e| e.into_inner()).context("not every pod was bound within 2 minutes")?;
    let total = done - start;
    println!("{pods} pods created in {} ({:.0}/s) and all bound {} after the first create", ms(created.elapsed), created.rate(), ms(total));
    println!("scheduling throughput, create to bound: {:.0} pods/s over {nodes} nodes", pods as f64 / total.as_secs_f64());
    Ok(())
}

/// A Deployment of `replicas` on `nodes` fake kubelets (KWOK-like): time until every replica is
/// available, then a rollout to a new template until it completes.
pub async fn deploy(nodes: usize, replicas: i32) -> Result<()> {
    let cluster = fake_cluster(nodes, true).await?;
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let deployment = |image: &str| -> Result<k8s_openapi::api::apps::v1::Deployment> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": "big"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "big"}},
                "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [{"name": "c", "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "1Mi"}}}]}},
            },
        }))?)
    };
    let wait = |what: &'static str| {
        let api = api.clone();
        async move {
            let t = Instant::now();
            loop {
                let d = api.get("big").await?;
                let st = d.status.unwrap_or_default();
                let generation = d.metadata.generation.unwrap_or(0);
                if st.observed_generation == Some(generation) && st.updated_replicas == Some(replicas) && st.available_replicas == Some(replicas) && st.replicas == Some(replicas) {
                    return Ok::<_, anyhow::Error>(t.elapsed());
                }
                if t.elapsed() > Duration::from_secs(300) {
                    bail!("{what}: not done after 5 minutes: {st:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let t = Instant::now();
    api.create(&PostParams::default(), &deployment("demo/web:v1")?).await?;
    wait("converge").await?;
    println!("Deployment of {replicas} replicas on {nodes} fake nodes: all available {} after its creation", ms(t.elapsed()));
    let t = Instant::now();
    api.patch("big", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "demo/web:v2"}]}}}}))).await?;
    wait("rollout").await?;
    println!("rolling update of {replicas} replicas (maxSurge/maxUnavailable 25%): complete {} after the image change", ms(t.elapsed()));
    Ok(())
}

/// Pods started one at a time for the start latency figures.
const START_SAMPLES: usize = 50;

/// On a real `control-plane up` cluster (root): pod start latency on a node, a burst of pods,
/// and self-heal time of a Deployment.
pub async fn node(kubeconfig: &str) -> Result<()> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // 1. Bound (nodeName set at create) to Running, one pod at a time, seen through one watch
    // as a client (or kubectl get -w) keeps it.
    let (mut lat, mut after_ack) = (Stats::default(), Stats::default());
    let rv = api.list_metadata(&ListParams::default()).await?.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default().labels("bench=yes"), &rv).await?.boxed();
    for i in 0..START_SAMPLES {
        let name = format!("lat-{i}");
        let t0 = Instant::now();
        let (w0, trace) = (jiff::Timestamp::now(), std::env::var_os("BENCH_TRACE").is_some());
        api.create(&PostParams::default(), &pod(&name, Some("node-1"))).await?;
        let created = t0.elapsed();
        // One deadline for the whole wait: a pod stuck in ErrImagePull keeps sending events.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let Some(ev) = tokio::time::timeout_at(deadline, stream.next()).await.with_context(|| format!("{name} not Running after 30 s"))? else {
                bail!("the watch ended before {name} was Running");
            };
            let p = match ev {
                Ok(WatchEvent::Modified(p)) if p.metadata.name.as_deref() == Some(name.as_str()) => p,
                Ok(WatchEvent::Error(e)) => bail!("the watch failed: {e}"),
                _ => continue,
            };
            if let Some(why) = waiting_on_error(&p) {
                bail!("{name} cannot start: {why}");
            }
            if is_running(&p) {
                lat.latencies.push(t0.elapsed());
                after_ack.latencies.push(t0.elapsed().saturating_sub(created));
                if trace {
                    println!("{name}: create sent {w0}, create returned +{}, Running seen +{}", ms(created), ms(t0.elapsed()));
                }
                break;
            }
        }
    }
    drop(stream);
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("bench=yes")).await?;
    println!("pod bound -> Running on a real node: p50 {} p99 {} (n={})", ms(lat.pct(0.5)), ms(lat.pct(0.99)), lat.latencies.len());
    println!("  the same from the create's acknowledgement (the bind committed): p50 {} p99 {}", ms(after_ack.pct(0.5)), ms(after_ack.pct(0.99)));
    wait_gone(&api).await?;
    // 2. A burst of 100 pods bound to one node.
    let t0 = Instant::now();
    let a = api.clone();
    load(100, 16, move |i| {
        let api = a.clone();
        async move { api.create(&PostParams::default(), &pod(&format!("burst-{i}"), Some("node-1"))).await.map(|_| ()).map_err(Into::into) }
    })
    .await?;
    loop {
        let running = api.list(&ListParams::default().labels("bench=yes")).await?.items.iter().filter(|p| is_running(p)).count();
        if running == 100 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("only {running} of 100 pods Running after 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("100 pods on one node all Running {} after the first create", ms(t0.elapsed()));
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("bench=yes")).await?;
    wait_gone(&api).await?;
    // 3. Self-heal: delete a pod of a ReplicaSet, time until a replacement is Ready.
    let rs_api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "heal"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "heal"}},
                 "template": {"metadata": {"labels": {"app": "heal"}}, "spec": {"terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "demo/busybox", "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}},
    }))?;
    rs_api.create(&PostParams::default(), &rs).await?;
    let heal = ListParams::default().labels("app=heal");
    let ready_names = |pods: &[Pod]| pods.iter().filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none()).map(|p| p.metadata.name.clone().unwrap_or_default()).collect::<Vec<_>>();
    let mut heals = Stats::default();
    for _ in 0..20 {
        let before = loop {
            let names = ready_names(&api.list(&heal).await?.items);
            if names.len() == 3 {
                break names;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let t0 = Instant::now();
        api.delete(&before[0], &DeleteParams::default()).await?;
        loop {
            let names = ready_names(&api.list(&heal).await?.items);
            if names.len() == 3 && !names.contains(&before[0]) {
                heals.latencies.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("no replacement within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!("self-heal, pod deleted -> replacement Ready: p50 {} p99 {} (n={})", ms(heals.pct(0.5)), ms(heals.pct(0.99)), heals.latencies.len());
    rs_api.delete("heal", &DeleteParams::default()).await?;
    Ok(())
}

/// The waiting reason and message of a container that will not start without help
/// (a missing image, a bad command), so the benchmark stops instead of waiting it out.
fn waiting_on_error(p: &Pod) -> Option<String> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        matches!(reason, "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "CreateContainerError" | "RunContainerError")
            .then(|| format!("{reason}: {}", w.message.as_deref().unwrap_or("")))
    })
}

async fn wait_gone(api: &Api<Pod>) -> Result<()> {
    for _ in 0..600 {
        if api.list(&ListParams::default().labels("bench=yes")).await?.items.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("benchmark pods not gone after 30 s")
}

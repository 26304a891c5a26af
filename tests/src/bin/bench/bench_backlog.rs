//! Scheduler throughput on a backlog: scheduling isolated from pod creation, which bounds the
//! end-to-end figure (`bench_cluster::sched`). kube-scheduler's scheduler_perf creates pods while
//! its scheduler runs, but there creation outpaces scheduling, so what it measures is the
//! scheduler; here the pods are written first. The API server, the embedded store, a pod and a
//! node informer, the scheduler and its event recorder run in this process as in `control-plane
//! serve` (the scheduler never goes through HTTP there either): `nodes` Ready nodes and `pods`
//! pending pods are written, then the scheduler starts and is timed until its informer has seen
//! every pod bound. Each binding is the real one, a read and a compare-and-swap committed with
//! fsync; the `Scheduled` Events it emits are written alongside, not waited for (the scheduler
//! does not wait for them either). `serve` also runs more informers and controllers that decode
//! each binding, so this is the scheduler's own rate, not the whole control plane's.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use control_plane::api::ApiServer;
use control_plane::api::negotiate::Query;
use control_plane::api::update::Part;
use control_plane::events::Recorder;
use control_plane::informer::{Change, Informer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::ms;

fn node(i: usize) -> (Value, Value) {
    let name = format!("fake-{i:04}");
    let resources = json!({"cpu": "64", "memory": "256Gi", "pods": "110"});
    let obj = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}});
    let status = json!({
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": jiff::Timestamp::now().to_string()}],
    });
    (obj, status)
}

/// Runs `f` over `0..n`, 64 at a time, and fails on the first error.
async fn write_all<F, Fut>(n: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut writes = futures::stream::iter((0..n).map(f)).buffer_unordered(64);
    while let Some(r) = writes.next().await {
        r.map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

pub async fn sched_backlog(nodes: usize, pods: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = control_plane::store::embedded::EmbeddedStore::open(&dir.path().join("state.redb"))?;
    let api = Arc::new(ApiServer {
        store: Arc::new(store),
        registry: Arc::new(control_plane::registry::Registry::new()),
        services: control_plane::registry::allocator::ServiceAllocator::new("10.96.0.0/12", 30000..=32767).map_err(|e| anyhow!("{e:?}"))?,
        admin_token: None,
        nodes: None,
    });
    control_plane::bootstrap::ensure(&api, 6443).await.map_err(|e| anyhow!(e.message))?;
    let node_res = api.registry.get("", "v1", "nodes").context("nodes are served")?;
    let pod_res = api.registry.get("", "v1", "pods").context("pods are served")?;
    let q = Query::default();
    write_all(nodes, |i| {
        let (api, res, q) = (api.clone(), node_res.clone(), q.clone());
        async move {
            let (obj, status) = node(i);
            let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
            api.create(&res, None, obj, &q).await.map_err(|e| e.message)?;
            let set = |old: &Value| {
                let mut n = old.clone();
                n["status"] = status.clone();
                Ok(n)
            };
            api.update_with(&res, None, &name, Part::Status, &q, set).await.map(drop).map_err(|e| e.message)
        }
    })
    .await?;
    let body = |i: usize| serde_json::to_value(super::bench_cluster::pod(&format!("s-{i}"), None));
    let bodies: Vec<Value> = (0..pods).map(body).collect::<Result<_, _>>()?;
    write_all(pods, |i| {
        let (api, res, q, body) = (api.clone(), pod_res.clone(), q.clone(), bodies[i].clone());
        async move { api.create(&res, Some("default"), body, &q).await.map(drop).map_err(|e| e.message) }
    })
    .await?;

    let pod_informer = Informer::<Pod>::start(api.clone(), pod_res);
    let node_informer = Informer::<Node>::start(api.clone(), node_res);
    pod_informer.wait_synced().await;
    node_informer.wait_synced().await;
    let mut changes = pod_informer.subscribe();
    let recorder = Recorder::new(api.clone(), "default-scheduler", "");
    println!("{nodes} Ready nodes and {pods} pending pods written; starting the scheduler");
    let start = Instant::now();
    let scheduler = tokio::spawn(control_plane::controllers::scheduling::run(api.clone(), pod_informer.clone(), node_informer, recorder));
    let mut bound = HashSet::new();
    let deadline = start + Duration::from_secs(120);
    while bound.len() < pods {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, changes.recv()).await {
            Ok(Ok(Change::Upsert { new, .. })) => {
                if new.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty()) {
                    bound.insert(new.metadata.name.clone().unwrap_or_default());
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("the pod informer's notifications: {e}"),
            Err(_) => anyhow::bail!("only {} of {pods} pods were bound within 2 minutes", bound.len()),
        }
    }
    let took = start.elapsed();
    scheduler.abort();
    println!("{pods} pending pods all bound in {} by the scheduler", ms(took));
    println!("scheduling throughput, backlog: {:.0} pods/s over {nodes} nodes", pods as f64 / took.as_secs_f64());
    Ok(())
}

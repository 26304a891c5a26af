//! The Deployment controller's loop: Deployment, ReplicaSet and Pod events to a work queue;
//! `reconcile` per Deployment; its actions carried out through the API server in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tracing::instrument;

use super::{Action, Snapshot, reconcile, requeue_after, status_after_hash_collision};
use crate::api::ApiServer;
use crate::api::handlers::DeleteOptions;
use crate::api::negotiate::Query;
use crate::api::update::Part;
use crate::events::{Involved, Recorder};
use crate::informer::{Change, Informer, cache_key};
use crate::workqueue::{WorkQueue, run_workers};

fn controller_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, kind: &str) -> Option<String> {
    let owner = meta.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true) && o.kind == kind)?;
    Some(cache_key(meta.namespace.as_deref(), &owner.name))
}

pub async fn run(api: Arc<ApiServer>, deployments: Arc<Informer<Deployment>>, rss: Arc<Informer<ReplicaSet>>, pods: Arc<Informer<Pod>>, recorder: Arc<Recorder>) {
    let queue = WorkQueue::new();
    let all = {
        let deployments = deployments.clone();
        move |queue: &WorkQueue| {
            for d in deployments.list() {
                queue.add(cache_key(d.metadata.namespace.as_deref(), d.metadata.name.as_deref().unwrap_or("")));
            }
        }
    };
    {
        let (queue, all) = (queue.clone(), all.clone());
        let mut changes = deployments.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(Change::Upsert { new, .. }) | Ok(Change::Delete(new)) => {
                        queue.add(cache_key(new.metadata.namespace.as_deref(), new.metadata.name.as_deref().unwrap_or("")))
                    }
                    _ => all(&queue),
                }
            }
        });
    }
    {
        let (queue, all) = (queue.clone(), all.clone());
        let mut changes = rss.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(Change::Upsert { new: rs, .. }) | Ok(Change::Delete(rs)) => {
                        if let Some(k) = controller_of(&rs.metadata, "Deployment") {
                            queue.add(k);
                        }
                    }
                    _ => all(&queue),
                }
            }
        });
    }
    {
        // Recreate waits for old pods to be gone: pod changes wake the owning Deployment.
        let (queue, rss) = (queue.clone(), rss.clone());
        let mut changes = pods.subscribe();
        tokio::spawn(async move {
            loop {
                if let Ok(Change::Delete(p)) = changes.recv().await {
                    let Some(rs_key) = controller_of(&p.metadata, "ReplicaSet") else { continue };
                    let Some((ns, name)) = rs_key.split_once('/') else { continue };
                    if let Some(d) = rss.get(Some(ns), name).and_then(|rs| controller_of(&rs.metadata, "Deployment")) {
                        queue.add(d);
                    }
                }
            }
        });
    }
    deployments.wait_synced().await;
    rss.wait_synced().await;
    pods.wait_synced().await;
    all(&queue);
    let ctx = Arc::new((api, deployments, rss, pods, recorder));
    run_workers(queue, 4, "deployment", move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx.0, &ctx.1, &ctx.2, &ctx.3, &ctx.4, &key).await }
    })
    .await;
}

#[instrument(skip_all, fields(object.ref = %key))]
async fn sync(
    api: &Arc<ApiServer>,
    deployments: &Informer<Deployment>,
    rss: &Informer<ReplicaSet>,
    pods: &Informer<Pod>,
    recorder: &Arc<Recorder>,
    key: &str,
) -> Result<Option<Duration>, String> {
    let (ns, name) = key.split_once('/').ok_or("bad key")?;
    let Some(d) = deployments.get(Some(ns), name) else { return Ok(None) };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let owned: Vec<Arc<ReplicaSet>> = rss
        .list_namespace(ns)
        .into_iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid && o.controller == Some(true)))
        .collect();
    let in_ns = pods.list_namespace(ns);
    let mut pods_by_rs: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for rs in &owned {
        let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
        let mine: Vec<&Pod> = in_ns.iter().filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.uid == rs_uid)).map(|p| p.as_ref()).collect();
        pods_by_rs.insert(rs_uid, mine);
    }
    let snapshot = Snapshot { deployment: &d, replica_sets: owned.iter().map(|r| r.as_ref()).collect(), pods_by_rs, now: jiff::Timestamp::now() };
    let actions = reconcile(&snapshot);
    let again = requeue_after(&snapshot);
    let rs_res = api.registry.get("apps", "v1", "replicasets").ok_or("replicasets not served")?;
    let d_res = api.registry.get("apps", "v1", "deployments").ok_or("deployments not served")?;
    let involved = Involved { api_version: "apps/v1".into(), kind: "Deployment".into(), namespace: ns.into(), name: name.into(), uid: uid.clone() };
    let q = Query::default();
    for action in actions {
        match action {
            Action::CreateReplicaSet(rs) => {
                let body = to_value(&rs)?;
                match api.create(&rs_res, Some(ns), body, &q).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {
                        // Someone else's ReplicaSet has the name this template hashes to.
                        let status = serde_json::to_value(status_after_hash_collision(&d)).map_err(|e| e.to_string())?;
                        write_status(api, &d_res, ns, name, status).await?;
                        return Ok(Some(Duration::ZERO));
                    }
                    Err(e) => return Err(e.message),
                }
            }
            Action::UpdateReplicaSet(rs) => {
                let rs_name = rs.metadata.name.clone().unwrap_or_default();
                let body = to_value(&rs)?;
                api.update(&rs_res, Some(ns), &rs_name, Part::Main, body, &q).await.map_err(|e| e.message)?;
            }
            Action::DeleteReplicaSet { name: rs_name, uid: rs_uid } => {
                let opts = DeleteOptions { precondition_uid: Some(rs_uid), ..Default::default() };
                match api.delete(&rs_res, Some(ns), &rs_name, &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.message),
                }
            }
            Action::UpdateDeploymentStatus(status) => {
                let status = serde_json::to_value(&status).map_err(|e| e.to_string())?;
                write_status(api, &d_res, ns, name, status).await?;
            }
            Action::UpdateDeploymentAnnotations(annotations) => {
                api.update_with(&d_res, Some(ns), name, Part::Main, &q, |old| {
                    // The action carries the complete annotation map.
                    let mut new = old.clone();
                    new["metadata"]["annotations"] = serde_json::to_value(&annotations).unwrap_or_default();
                    Ok(new)
                })
                .await
                .map_err(|e| e.message)?;
            }
            Action::Event { type_, reason, message } => recorder.emit(involved.clone(), &type_, &reason, message),
        }
    }
    Ok(again)
}

async fn write_status(api: &ApiServer, res: &Arc<crate::registry::Resource>, ns: &str, name: &str, status: Value) -> Result<(), String> {
    match api
        .update_with(res, Some(ns), name, Part::Status, &Query::default(), |old| {
            let mut new = old.clone();
            new["status"] = status.clone();
            Ok(new)
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e.message),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

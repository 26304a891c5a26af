//! The ReplicaSet controller's loop: informer events to a work queue, `reconcile` per
//! ReplicaSet, its actions carried out through the API server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tracing::{debug, instrument};

use super::{RsAction, RsSnapshot, reconcile, slow_start_batches};
use crate::api::ApiServer;
use crate::api::handlers::DeleteOptions;
use crate::api::negotiate::Query;
use crate::api::patch::PatchType;
use crate::api::update::Part;
use crate::events::{Involved, Recorder};
use crate::informer::{Change, Informer, cache_key};
use crate::workqueue::{WorkQueue, run_workers};

/// Writes this controller made that its pod informer has not seen yet, as a store revision per
/// ReplicaSet (Kubernetes' "expectations"): until the informer has caught up with it, the
/// ReplicaSet is not resized again, so it never over-creates or over-deletes.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, (u64, Instant)>>,
}

const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

impl Expectations {
    fn expect(&self, rs: &str, revision: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = p.entry(rs.to_string()).or_insert((0, Instant::now()));
        entry.0 = entry.0.max(revision);
        entry.1 = Instant::now();
    }

    /// Whether the informer reflects every write made for `rs` (it has seen revision `seen`).
    fn satisfied(&self, rs: &str, seen: u64) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some((watermark, since)) = p.get(rs) else { return true };
        if seen >= *watermark || since.elapsed() > EXPECTATION_TIMEOUT {
            p.remove(rs);
            return true;
        }
        false
    }
}

fn revision_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn owner_key(pod: &Pod) -> Option<String> {
    let owner = pod.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true) && o.kind == "ReplicaSet")?;
    Some(cache_key(pod.metadata.namespace.as_deref(), &owner.name))
}

pub async fn run(api: Arc<ApiServer>, rss: Arc<Informer<ReplicaSet>>, pods: Arc<Informer<Pod>>, recorder: Arc<Recorder>) {
    let queue = WorkQueue::new();
    let expectations = Arc::new(Expectations::default());
    {
        let (queue, rss) = (queue.clone(), rss.clone());
        let mut changes = rss.subscribe();
        tokio::spawn(async move {
            rss.wait_synced().await;
            loop {
                match changes.recv().await {
                    Ok(Change::Upsert { new, .. }) | Ok(Change::Delete(new)) => {
                        queue.add(cache_key(new.metadata.namespace.as_deref(), new.metadata.name.as_deref().unwrap_or("")))
                    }
                    _ => {
                        for rs in rss.list() {
                            queue.add(cache_key(rs.metadata.namespace.as_deref(), rs.metadata.name.as_deref().unwrap_or("")));
                        }
                    }
                }
            }
        });
    }
    {
        let (queue, rss, pods) = (queue.clone(), rss.clone(), pods.clone());
        let mut changes = pods.subscribe();
        tokio::spawn(async move {
            loop {
                let pod = match changes.recv().await {
                    Ok(Change::Upsert { new, .. }) => new,
                    Ok(Change::Delete(p)) => p,
                    _ => {
                        for rs in rss.list() {
                            queue.add(cache_key(rs.metadata.namespace.as_deref(), rs.metadata.name.as_deref().unwrap_or("")));
                        }
                        continue;
                    }
                };
                match owner_key(&pod) {
                    Some(k) => queue.add(k),
                    // An orphan may be adopted by any ReplicaSet of its namespace.
                    None => {
                        for rs in rss.list_namespace(pod.metadata.namespace.as_deref().unwrap_or("")) {
                            queue.add(cache_key(rs.metadata.namespace.as_deref(), rs.metadata.name.as_deref().unwrap_or("")));
                        }
                    }
                }
            }
        });
    }
    rss.wait_synced().await;
    pods.wait_synced().await;
    let ctx = Arc::new((api, rss, pods, recorder, expectations));
    run_workers(queue, 4, "replicaset", move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx.0, &ctx.1, &ctx.2, &ctx.3, &ctx.4, &key).await }
    })
    .await;
}

#[instrument(skip_all, fields(object.ref = %key))]
async fn sync(
    api: &Arc<ApiServer>,
    rss: &Informer<ReplicaSet>,
    pods: &Informer<Pod>,
    recorder: &Arc<Recorder>,
    expectations: &Expectations,
    key: &str,
) -> Result<Option<Duration>, String> {
    let (ns, name) = key.split_once('/').ok_or("bad key")?;
    let Some(rs) = rss.get(Some(ns), name) else { return Ok(None) };
    let in_ns = pods.list_namespace(ns);
    let ready = expectations.satisfied(key, pods.seen_revision());
    let snapshot = RsSnapshot { rs: &rs, pods: in_ns.iter().map(|p| p.as_ref()).collect(), now: jiff::Timestamp::now() };
    let actions = reconcile(&snapshot);
    let pod_res = api.registry.get("", "v1", "pods").ok_or("pods not served")?;
    let rs_res = api.registry.get("apps", "v1", "replicasets").ok_or("replicasets not served")?;
    let involved = Involved::of("apps/v1", "ReplicaSet", &serde_json::to_value(rs.as_ref()).unwrap_or_default());
    let q = Query::default();
    let mut again = None;
    for action in actions {
        match action {
            RsAction::CreatePods { count, template } if ready => {
                let body = serde_json::to_value(&template).map_err(|e| e.to_string())?;
                let mut remaining = count;
                for batch in slow_start_batches(count, 1) {
                    let creates = (0..batch).map(|_| api.create(&pod_res, Some(ns), body.clone(), &q));
                    let results = join_all(creates).await;
                    let mut created = 0;
                    let mut failure = None;
                    for r in results {
                        match r {
                            Ok((pod, _)) => {
                                created += 1;
                                expectations.expect(key, revision_of(&pod));
                                let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
                                recorder.emit(involved.clone(), "Normal", "SuccessfulCreate", format!("Created pod: {pod_name}"));
                            }
                            Err(e) => failure = Some(e.message),
                        }
                    }
                    remaining -= created;
                    if let Some(msg) = failure {
                        recorder.emit(involved.clone(), "Warning", "FailedCreate", format!("Error creating: {msg}"));
                        return Err(msg);
                    }
                }
                debug!(count, remaining, "created pods");
            }
            RsAction::DeletePods(names) if ready => {
                let opts = DeleteOptions::default();
                let deletes = names.iter().map(|n| api.delete(&pod_res, Some(ns), n, &opts));
                let results = join_all(deletes).await;
                for (n, r) in names.iter().zip(results) {
                    match r {
                        Ok((_, pod)) => {
                            // Seeing the deletion (or the terminating mark) is enough: terminating pods
                            // no longer count, so waiting for them to vanish would stall the ReplicaSet.
                            expectations.expect(key, revision_of(&pod));
                            recorder.emit(involved.clone(), "Normal", "SuccessfulDelete", format!("Deleted pod: {n}"));
                        }
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e.message),
                    }
                }
            }
            RsAction::CreatePods { .. } | RsAction::DeletePods(_) => again = Some(Duration::from_millis(100)),
            RsAction::Adopt(names) | RsAction::Release(names) if names.is_empty() => {}
            RsAction::Adopt(names) => {
                let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": rs.metadata.uid, "controller": true, "blockOwnerDeletion": true});
                for n in names {
                    let patch = json!({"metadata": {"ownerReferences": [owner]}});
                    let _ = api.patch(&pod_res, Some(ns), &n, Part::Main, PatchType::Merge, patch, &q).await;
                }
            }
            RsAction::Release(names) => {
                let uid = rs.metadata.uid.clone().unwrap_or_default();
                for n in names {
                    let _ = api
                        .update_with(&pod_res, Some(ns), &n, Part::Main, &q, |old| {
                            let mut new = old.clone();
                            if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                                refs.retain(|r| r["uid"] != uid.as_str());
                            }
                            Ok(new)
                        })
                        .await;
                }
            }
            RsAction::UpdateStatus(status) => {
                let status = serde_json::to_value(&status).map_err(|e| e.to_string())?;
                let result = api
                    .update_with(&rs_res, Some(ns), name, Part::Status, &q, |old| {
                        let mut new: Value = old.clone();
                        new["status"] = status.clone();
                        Ok(new)
                    })
                    .await;
                match result {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e.message),
                }
            }
        }
    }
    // Pods turn available minReadySeconds after they turn ready: look again then.
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready > 0 {
        again = again.or(Some(Duration::from_secs(min_ready as u64)));
    }
    Ok(again)
}

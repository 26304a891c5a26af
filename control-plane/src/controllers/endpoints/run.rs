//! Runs the Endpoints controller: Services, Endpoints and pods from informers; one key per Service.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde_json::json;
use tracing::{debug, instrument};

use super::{Action, reconcile};
use crate::api::ApiServer;
use crate::api::negotiate::Query;
use crate::api::update::Part;
use crate::informer::{Change, Informer, cache_key};
use crate::workqueue::{WorkQueue, run_workers};

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    cache_key(meta.namespace.as_deref(), meta.name.as_deref().unwrap_or(""))
}

/// Services of the pod's namespace whose selector matches the pod as it is or as it was.
fn services_for(services: &Informer<Service>, pods: &[&Pod]) -> Vec<String> {
    let Some(ns) = pods.first().and_then(|p| p.metadata.namespace.as_deref()) else { return vec![] };
    services
        .list_namespace(ns)
        .iter()
        .filter(|s| pods.iter().any(|p| super::selects(s, p)))
        .map(|s| key_of(&s.metadata))
        .collect()
}

fn enqueue_all(queue: &WorkQueue, services: &Informer<Service>) {
    for s in services.list() {
        queue.add(key_of(&s.metadata));
    }
}

/// Queues the key of every object that changes (same namespace and name as its Service).
async fn follow<K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>(
    mut changes: tokio::sync::broadcast::Receiver<Change<K>>,
    queue: Arc<WorkQueue>,
    services: Arc<Informer<Service>>,
) {
    loop {
        match changes.recv().await {
            Ok(Change::Upsert { new, .. }) | Ok(Change::Delete(new)) => queue.add(key_of(new.metadata())),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            _ => enqueue_all(&queue, &services),
        }
    }
}

pub async fn run(api: Arc<ApiServer>, services: Arc<Informer<Service>>, endpoints: Arc<Informer<Endpoints>>, pods: Arc<Informer<Pod>>) {
    let queue = WorkQueue::new();
    // A Service's own changes, and someone else changing an Endpoints this controller manages
    // (it gets put back), queue that Service.
    tokio::spawn(follow(services.subscribe(), queue.clone(), services.clone()));
    tokio::spawn(follow(endpoints.subscribe(), queue.clone(), services.clone()));
    {
        let (queue, services) = (queue.clone(), services.clone());
        let mut changes = pods.subscribe();
        tokio::spawn(async move {
            loop {
                let keys = match changes.recv().await {
                    Ok(Change::Upsert { old, new }) => match old {
                        Some(old) => services_for(&services, &[&new, &old]),
                        None => services_for(&services, &[&new]),
                    },
                    Ok(Change::Delete(p)) => services_for(&services, &[&p]),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {
                        enqueue_all(&queue, &services);
                        continue;
                    }
                };
                for k in keys {
                    queue.add(k);
                }
            }
        });
    }
    services.wait_synced().await;
    endpoints.wait_synced().await;
    pods.wait_synced().await;
    enqueue_all(&queue, &services);
    let ctx = Arc::new((api, services, endpoints, pods));
    run_workers(queue, 2, "endpoints", move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx.0, &ctx.1, &ctx.2, &ctx.3, &key).await }
    })
    .await;
}

#[instrument(skip_all, fields(service = %key))]
async fn sync(api: &ApiServer, services: &Informer<Service>, endpoints: &Informer<Endpoints>, pods: &Informer<Pod>, key: &str) -> Result<Option<Duration>, String> {
    let (ns, name) = key.split_once('/').ok_or("bad key")?;
    let res = api.registry.get("", "v1", "endpoints").ok_or("endpoints not served")?;
    let q = Query::default();
    let current = endpoints.get(Some(ns), name);
    let Some(service) = services.get(Some(ns), name) else {
        if current.is_some() {
            match api.delete(&res, Some(ns), name, &Default::default()).await {
                Ok(_) => debug!("deleted the endpoints of a deleted service"),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e.message),
            }
        }
        return Ok(None);
    };
    let in_ns = pods.list_namespace(ns);
    let refs: Vec<&Pod> = in_ns.iter().map(|p| p.as_ref()).collect();
    let Action::Write { labels, subsets } = reconcile(&service, current.as_deref(), &refs) else { return Ok(None) };
    let subsets = serde_json::to_value(&subsets).map_err(|e| e.to_string())?;
    let labels = serde_json::to_value(&labels).map_err(|e| e.to_string())?;
    if current.is_none() {
        let body = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets});
        match api.create(&res, Some(ns), body, &q).await {
            Ok(_) => return Ok(None),
            // Created meanwhile (the informer had not caught up): update it instead.
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e.message),
        }
    }
    let result = api
        .update_with(&res, Some(ns), name, Part::Main, &q, |old| {
            let mut new = old.clone();
            new["metadata"]["labels"] = labels.clone();
            new["subsets"] = subsets.clone();
            Ok(new)
        })
        .await;
    match result {
        Ok(_) => Ok(None),
        // Deleted meanwhile: the delete event queues this key again and the next pass creates it.
        Err(e) if e.code == 404 => Ok(Some(Duration::from_millis(10))),
        Err(e) => Err(e.message),
    }
}

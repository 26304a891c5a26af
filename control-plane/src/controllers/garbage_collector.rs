//! The garbage collector's loop: builds the ownership graph of the kinds that own things here
//! (Deployments, ReplicaSets, Pods) from their informers and carries out `gc::decide`.
//! Owner references to kinds outside the graph are left alone, never taken as "owner gone".

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::{debug, warn};

use super::gc::{self, GcAction, Node, ObjRef};
use crate::api::ApiServer;
use crate::api::handlers::DeleteOptions;
use crate::api::negotiate::Query;
use crate::api::object;
use crate::api::update::Part;
use crate::informer::Informer;

const KINDS: &[&str] = &["Deployment", "ReplicaSet", "Pod"];

fn node(api_version: &str, kind: &str, meta: &ObjectMeta) -> Node {
    Node {
        obj: ObjRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        },
        owners: meta.owner_references.clone().unwrap_or_default().into_iter().filter(|o| KINDS.contains(&o.kind.as_str())).collect(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    }
}

pub async fn run(api: Arc<ApiServer>, deployments: Arc<Informer<Deployment>>, rss: Arc<Informer<ReplicaSet>>, pods: Arc<Informer<Pod>>) {
    let mut d_changes = deployments.subscribe();
    let mut r_changes = rss.subscribe();
    let mut p_changes = pods.subscribe();
    deployments.wait_synced().await;
    rss.wait_synced().await;
    pods.wait_synced().await;
    loop {
        let mut graph = Vec::new();
        graph.extend(deployments.list().iter().map(|d| node("apps/v1", "Deployment", &d.metadata)));
        graph.extend(rss.list().iter().map(|r| node("apps/v1", "ReplicaSet", &r.metadata)));
        graph.extend(pods.list().iter().map(|p| node("v1", "Pod", &p.metadata)));
        for action in gc::decide(&graph) {
            if let Err(e) = execute(&api, &action).await {
                warn!(?action, error = %e, "garbage collection step failed; will retry");
            }
        }
        // Wake on any change (batched: changes arriving together are handled in one pass),
        // and every few seconds in case a step failed.
        tokio::select! {
            _ = d_changes.recv() => {}
            _ = r_changes.recv() => {}
            _ = p_changes.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while d_changes.try_recv().is_ok() || r_changes.try_recv().is_ok() || p_changes.try_recv().is_ok() {}
    }
}

async fn execute(api: &ApiServer, action: &GcAction) -> Result<(), String> {
    let obj = match action {
        GcAction::Delete { obj, .. } | GcAction::RemoveOwnerRefs { obj, .. } | GcAction::RemoveFinalizer { obj, .. } => obj,
    };
    let group = obj.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let res = api.registry.by_kind(group, &obj.kind).ok_or_else(|| format!("{} not served", obj.kind))?;
    let ns = obj.namespace.as_deref();
    let q = Query::default();
    debug!(?action, "garbage collecting");
    let result = match action {
        GcAction::Delete { propagation, .. } => {
            let opts = DeleteOptions { propagation: Some(propagation.to_string()), precondition_uid: Some(obj.uid.clone()), ..Default::default() };
            api.delete(&res, ns, &obj.name, &opts).await.map(|_| ())
        }
        GcAction::RemoveOwnerRefs { owner_uids, .. } => api
            .update_with(&res, ns, &obj.name, Part::Main, &q, |old| {
                let mut new = old.clone();
                if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| !owner_uids.iter().any(|u| r["uid"] == u.as_str()));
                    if refs.is_empty() {
                        object::meta_mut(&mut new).remove("ownerReferences");
                    }
                }
                Ok(new)
            })
            .await
            .map(|_| ()),
        GcAction::RemoveFinalizer { finalizer, .. } => api
            .update_with(&res, ns, &obj.name, Part::Main, &q, |old| {
                let mut new = old.clone();
                let list: Vec<String> = object::finalizers(old).into_iter().filter(|f| f != finalizer).collect();
                object::set_finalizers(&mut new, &list);
                Ok(new)
            })
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Ok(()),
        // Gone already, or replaced (uid precondition): nothing to do.
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.message),
    }
}

//! The garbage collector's loop: builds the ownership graph of the kinds that own things here
//! (Deployments, ReplicaSets, Pods) from their informers and carries out `gc::decide`.
//! Owner references to kinds outside the graph are left alone, never taken as "owner gone".

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

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
use crate::informer::{Change, Informer};

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

/// Whether a change can alter the ownership graph, i.e. give `gc::decide` something new to do.
/// Most changes cannot (a status update, a new pod without owners), and rebuilding the graph of
/// every object for each of them would cost O(objects) per write.
fn changes_graph<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(change: &Change<K>, kind: &str) -> bool {
    match change {
        Change::Upsert { old: Some(old), new } => node("", kind, old.metadata()) != node("", kind, new.metadata()),
        Change::Upsert { old: None, new } => {
            let n = node("", kind, new.metadata());
            !n.owners.is_empty() || n.deleting || !n.finalizers.is_empty()
        }
        // Its dependents may now be orphans; a resync may hide anything.
        Change::Delete(_) | Change::Resync => true,
    }
}

/// Drains what is queued on `rx`; true if any of it (or a lost message) can alter the graph.
fn drain<K: k8s_openapi::Metadata<Ty = ObjectMeta> + Clone>(rx: &mut broadcast::Receiver<Change<K>>, kind: &str) -> bool {
    let mut any = false;
    loop {
        match rx.try_recv() {
            Ok(c) => any |= changes_graph(&c, kind),
            Err(broadcast::error::TryRecvError::Lagged(_)) => any = true,
            Err(_) => return any,
        }
    }
}

fn received<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(c: Result<Change<K>, broadcast::error::RecvError>, kind: &str) -> bool {
    match c {
        Ok(c) => changes_graph(&c, kind),
        Err(broadcast::error::RecvError::Lagged(_)) => true,
        // The informer is gone: the process is shutting down. Don't spin on it.
        Err(broadcast::error::RecvError::Closed) => false,
    }
}

pub async fn run(api: Arc<ApiServer>, deployments: Arc<Informer<Deployment>>, rss: Arc<Informer<ReplicaSet>>, pods: Arc<Informer<Pod>>) {
    let mut d_changes = deployments.subscribe();
    let mut r_changes = rss.subscribe();
    let mut p_changes = pods.subscribe();
    deployments.wait_synced().await;
    rss.wait_synced().await;
    pods.wait_synced().await;
    let mut dirty = true;
    loop {
        if dirty {
            let mut graph = Vec::new();
            graph.extend(deployments.list().iter().map(|d| node("apps/v1", "Deployment", &d.metadata)));
            graph.extend(rss.list().iter().map(|r| node("apps/v1", "ReplicaSet", &r.metadata)));
            graph.extend(pods.list().iter().map(|p| node("v1", "Pod", &p.metadata)));
            for action in gc::decide(&graph) {
                if let Err(e) = execute(&api, &action).await {
                    warn!(?action, error = %e, "garbage collection step failed; will retry");
                }
            }
        }
        // Wake on any change (batched: changes arriving together are handled in one pass),
        // and every few seconds in case a step failed.
        let first = tokio::select! {
            c = d_changes.recv() => received(c, "Deployment"),
            c = r_changes.recv() => received(c, "ReplicaSet"),
            c = p_changes.recv() => received(c, "Pod"),
            _ = tokio::time::sleep(Duration::from_secs(5)) => true,
        };
        if first {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        dirty = first | drain(&mut d_changes, "Deployment") | drain(&mut r_changes, "ReplicaSet") | drain(&mut p_changes, "Pod");
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    fn pod(owner: Option<&str>, deleting: bool, finalizers: &[&str], phase: &str) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.uid = Some("u".into());
        p.metadata.owner_references = owner.map(|uid| vec![OwnerReference { kind: "ReplicaSet".into(), uid: uid.into(), ..Default::default() }]);
        p.metadata.deletion_timestamp = deleting.then(|| Time(jiff::Timestamp::UNIX_EPOCH));
        p.metadata.finalizers = (!finalizers.is_empty()).then(|| finalizers.iter().map(|f| f.to_string()).collect());
        p.status = Some(k8s_openapi::api::core::v1::PodStatus { phase: Some(phase.into()), ..Default::default() });
        p
            .into()
    }

    #[test]
    fn only_changes_to_owners_deletion_or_finalizers_wake_the_collector() {
        let up = |old: Option<Arc<Pod>>, new: Arc<Pod>| Change::Upsert { old, new };
        let cases: Vec<(&str, Change<Pod>, bool)> = vec![
            ("a new pod without owners", up(None, pod(None, false, &[], "Pending")), false),
            ("a new pod with an owner", up(None, pod(Some("rs"), false, &[], "Pending")), true),
            ("a new pod with a finalizer", up(None, pod(None, false, &["x"], "Pending")), true),
            ("a status update", up(Some(pod(Some("rs"), false, &[], "Pending")), pod(Some("rs"), false, &[], "Running")), false),
            ("an owner released", up(Some(pod(Some("rs"), false, &[], "Running")), pod(None, false, &[], "Running")), true),
            ("deletion begun", up(Some(pod(None, false, &[], "Running")), pod(None, true, &[], "Running")), true),
            ("a finalizer removed", up(Some(pod(None, true, &["x"], "Running")), pod(None, true, &[], "Running")), true),
            ("a deletion", Change::Delete(pod(None, false, &[], "Running")), true),
            ("a resync", Change::Resync, true),
        ];
        for (what, change, want) in cases {
            assert_eq!(changes_graph(&change, "Pod"), want, "{what}");
        }
    }
}

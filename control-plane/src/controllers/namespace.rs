//! Namespace deletion: empties a terminating namespace, then lets it go.
//!
//! Deleting a namespace marks it (deletionTimestamp, phase Terminating) because of its
//! `kubernetes` finalizer; this controller deletes every object inside, and once nothing is
//! left removes the finalizer, which completes the deletion.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tracing::{info, instrument, warn};

use crate::api::ApiServer;
use crate::api::error::ApiError;
use crate::api::handlers::DeleteOptions;
use crate::api::negotiate::Query;
use crate::api::object;
use crate::api::update::Part;

pub async fn run(api: Arc<ApiServer>) {
    let Some(ns_res) = api.registry.get("", "v1", "namespaces") else { return };
    loop {
        // Level-triggered: each pass looks at every namespace; watch events only wake us early.
        let rev = match api.list_objects(&ns_res, None, &Query::default()).await {
            Ok((items, rev)) => {
                for ns in items.iter().filter(|n| object::is_deleting(n)) {
                    if let Err(e) = reconcile(&api, ns).await {
                        warn!(namespace = object::name(ns).unwrap_or(""), error = %e, "namespace cleanup failed; will retry");
                    }
                }
                rev
            }
            Err(e) => {
                warn!(error = %e, "listing namespaces failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut watch = match api.store.watch(&ns_res.prefix(None), rev) {
            Ok(w) => w,
            Err(_) => continue,
        };
        // Re-check at least every second while something is terminating (its pods may take time).
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
    }
}

#[instrument(skip_all, fields(namespace = object::name(ns).unwrap_or("")))]
async fn reconcile(api: &Arc<ApiServer>, ns: &Value) -> Result<(), ApiError> {
    let name = object::name(ns).unwrap_or_default().to_string();
    let ns_res = api.registry.get("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces"))?;
    if ns["status"]["phase"] != "Terminating" {
        api.update_with(&ns_res, None, &name, Part::Status, &Query::default(), |old| {
            let mut new = old.clone();
            new["status"]["phase"] = json!("Terminating");
            Ok(new)
        })
        .await?;
    }
    let mut remaining = 0;
    let opts = DeleteOptions { propagation: Some("Background".into()), ..Default::default() };
    for res in api.registry.all().iter().filter(|r| r.namespaced) {
        let (items, _) = api.list_objects(res, Some(&name), &Query::default()).await?;
        for item in items {
            remaining += 1;
            if object::is_deleting(&item) {
                continue;
            }
            let item_name = object::name(&item).unwrap_or_default().to_string();
            match api.delete(res, Some(&name), &item_name, &opts).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(());
    }
    info!("namespace is empty; finalizing");
    api.finalize_namespace(&ns_res, &name, json!({"spec": {"finalizers": []}}), &Query::default()).await?;
    Ok(())
}

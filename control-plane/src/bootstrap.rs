//! Objects every cluster starts with: the system namespaces and the `kubernetes` Service.

use serde_json::json;

use crate::api::ApiServer;
use crate::api::error::ApiError;
use crate::api::negotiate::Query;

pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates what is missing; existing objects are left as they are (a restart keeps user changes).
pub async fn ensure(api: &ApiServer, api_port: u16) -> Result<(), ApiError> {
    let q = Query::default();
    let ns_res = api.registry.get("", "v1", "namespaces").ok_or_else(|| ApiError::internal("namespaces not registered"))?;
    for ns in SYSTEM_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match api.create(&ns_res, None, body, &q).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let svc_res = api.registry.get("", "v1", "services").ok_or_else(|| ApiError::internal("services not registered"))?;
    if api.get_object(&svc_res, Some("default"), "kubernetes").await.is_ok() {
        return Ok(());
    }
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": api.services.nth(1).to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
            "sessionAffinity": "None",
        },
    });
    match api.create(&svc_res, Some("default"), body, &q).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

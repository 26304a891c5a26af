//! Objects every cluster starts with: the system namespaces, the `kubernetes` Service and the
//! `kube-dns` Service, and the Endpoints of both (they have no selector: the control plane itself
//! is behind them, so it writes their addresses at every start).

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
    let dns = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": api.services.nth(10).to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
            "sessionAffinity": "None",
        },
    });
    create_service_if_missing(api, &svc_res, "kube-system", "kube-dns", dns).await?;
    let kubernetes = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": api.services.nth(1).to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
            "sessionAffinity": "None",
        },
    });
    create_service_if_missing(api, &svc_res, "default", "kubernetes", kubernetes).await
}

/// Looked up first: creating again would be refused for its already-allocated cluster IP
/// before the name clash could be seen.
async fn create_service_if_missing(api: &ApiServer, res: &std::sync::Arc<crate::registry::Resource>, ns: &str, name: &str, body: serde_json::Value) -> Result<(), ApiError> {
    if api.get_object(res, Some(ns), name).await.is_ok() {
        return Ok(());
    }
    match api.create(res, Some(ns), body, &Query::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Points the `kubernetes` Service at the API server and `kube-dns` at the cluster DNS server.
pub async fn publish_endpoints(api: &ApiServer, advertise: std::net::IpAddr, api_port: u16, dns: Option<std::net::SocketAddr>) -> Result<(), ApiError> {
    write_endpoints(api, "default", "kubernetes", advertise, &[("https", api_port, "TCP")]).await?;
    if let Some(dns) = dns {
        write_endpoints(api, "kube-system", "kube-dns", dns.ip(), &[("dns", dns.port(), "UDP"), ("dns-tcp", dns.port(), "TCP")]).await?;
    }
    Ok(())
}

async fn write_endpoints(api: &ApiServer, ns: &str, name: &str, ip: std::net::IpAddr, ports: &[(&str, u16, &str)]) -> Result<(), ApiError> {
    let res = api.registry.get("", "v1", "endpoints").ok_or_else(|| ApiError::internal("endpoints not registered"))?;
    let ports: Vec<_> = ports.iter().map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto})).collect();
    let subsets = json!([{"addresses": [{"ip": ip.to_string()}], "ports": ports}]);
    let q = Query::default();
    let body = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}, "subsets": subsets});
    match api.create(&res, Some(ns), body, &q).await {
        Ok(_) => return Ok(()),
        Err(e) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    api.update_with(&res, Some(ns), name, crate::api::update::Part::Main, &q, |old| {
        let mut new = old.clone();
        new["subsets"] = subsets.clone();
        Ok(new)
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cluster_starts_with_kube_dns_and_endpoints_for_the_built_in_services() {
        let api = crate::informer::tests::test_api();
        ensure(&api, 6443).await.unwrap();
        ensure(&api, 6443).await.unwrap();
        let svc = api.registry.get("", "v1", "services").unwrap();
        let (dns, _) = api.get_object(&svc, Some("kube-system"), "kube-dns").await.unwrap();
        assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
        let ip: std::net::IpAddr = "10.250.0.1".parse().unwrap();
        publish_endpoints(&api, ip, 6443, Some("10.250.0.1:53".parse().unwrap())).await.unwrap();
        // A restart on another port rewrites the address.
        publish_endpoints(&api, ip, 7443, Some("10.250.0.1:53".parse().unwrap())).await.unwrap();
        let eps = api.registry.get("", "v1", "endpoints").unwrap();
        let (k, _) = api.get_object(&eps, Some("default"), "kubernetes").await.unwrap();
        assert_eq!(k["subsets"][0]["ports"][0]["port"], 7443);
        assert_eq!(k["subsets"][0]["addresses"][0]["ip"], "10.250.0.1");
        let (d, _) = api.get_object(&eps, Some("kube-system"), "kube-dns").await.unwrap();
        assert_eq!(d["subsets"][0]["ports"].as_array().unwrap().len(), 2);
    }
}

//! The HTTP surface, driven through `app()` without a port: status codes and `Status` bodies
//! for good and bad requests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ApiServer, MAX_BODY, app};

async fn server(token: Option<&str>) -> Arc<ApiServer> {
    let api = Arc::new(ApiServer {
        store: Arc::new(crate::store::memory::MemoryStore::new()),
        registry: Arc::new(crate::registry::Registry::new()),
        services: crate::registry::allocator::ServiceAllocator::new("10.96.0.0/12", 30000..=32767).unwrap(),
        admin_token: token.map(String::from),
        nodes: None,
    });
    crate::bootstrap::ensure(&api, 6443).await.unwrap();
    api
}

async fn call(api: &Arc<ApiServer>, method: &str, uri: &str, ctype: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, ctype)
        .header(header::AUTHORIZATION, "Bearer t0k")
        .body(body.into())
        .unwrap();
    let resp = app(api.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn cm(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}).to_string()
}

#[tokio::test]
async fn requests_without_the_token_are_refused_except_health_and_version() {
    let api = server(Some("t0k")).await;
    for (path, want) in [("/api/v1/pods", 401), ("/healthz", 200), ("/version", 200), ("/readyz", 200)] {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        let resp = app(api.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path}");
    }
}

#[tokio::test]
async fn create_get_conflict_and_not_found_answer_with_kubernetes_status() {
    let api = server(Some("t0k")).await;
    let (s, obj) = call(&api, "POST", "/api/v1/namespaces/default/configmaps", "application/json", cm("a")).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(obj["metadata"]["resourceVersion"].is_string());
    let (s, st) = call(&api, "POST", "/api/v1/namespaces/default/configmaps", "application/json", cm("a")).await;
    assert_eq!((s.as_u16(), st["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(st["kind"], "Status");
    let (s, st) = call(&api, "GET", "/api/v1/namespaces/default/configmaps/zzz", "application/json", Body::empty()).await;
    assert_eq!((s.as_u16(), st["reason"].as_str(), st["details"]["name"].as_str()), (404, Some("NotFound"), Some("zzz")));
    let mut stale = obj.clone();
    stale["data"]["a"] = json!("c");
    let (s, _) = call(&api, "PUT", "/api/v1/namespaces/default/configmaps/a", "application/json", stale.to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, st) = call(&api, "PUT", "/api/v1/namespaces/default/configmaps/a", "application/json", stale.to_string()).await;
    assert_eq!((s.as_u16(), st["reason"].as_str()), (409, Some("Conflict")));
}

#[tokio::test]
async fn malformed_oversized_and_unsupported_bodies_are_refused_and_nothing_is_stored() {
    let api = server(Some("t0k")).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let cases: Vec<(&str, Body, u16)> = vec![
        ("application/json", Body::from("{not json"), 400),
        ("application/json", Body::from(""), 400),
        ("application/json", Body::from("[1,2]"), 400),
        ("application/yaml", Body::from("a: [unclosed"), 400),
        ("application/vnd.kubernetes.protobuf", Body::from("garbage"), 400),
        ("application/json", Body::from(json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string()), 400),
        ("application/json", Body::from(json!({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}}).to_string()), 400),
        ("application/json", Body::from(json!({"kind": "ConfigMap", "metadata": {"name": "Bad Name"}}).to_string()), 422),
        ("application/json", Body::from(json!({"kind": "ConfigMap", "metadata": {}}).to_string()), 422),
        ("application/json", Body::from(json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": "nope"}).to_string()), 400),
        ("application/json", Body::from(vec![b' '; MAX_BODY + 10]), 413),
    ];
    for (ctype, body, want) in cases {
        let (s, st) = call(&api, "POST", path, ctype, body).await;
        assert_eq!(s.as_u16(), want, "{ctype}: {st}");
        assert_eq!(st["kind"], "Status", "{st}");
    }
    let (_, list) = call(&api, "GET", path, "application/json", Body::empty()).await;
    assert_eq!(list["items"], json!([]), "nothing invalid was stored");
    let (s, _) = call(&api, "POST", "/api/v1/namespaces/nope/configmaps", "application/json", cm("x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patches_of_every_type_apply_and_bad_ones_are_refused() {
    let api = server(Some("t0k")).await;
    let path = "/api/v1/namespaces/default/configmaps";
    call(&api, "POST", path, "application/json", cm("p")).await;
    let obj = format!("{path}/p");
    let (s, o) = call(&api, "PATCH", &obj, "application/merge-patch+json", r#"{"data":{"b":"2"}}"#).await;
    assert_eq!((s.as_u16(), o["data"]["b"].as_str()), (200, Some("2")));
    let (s, o) = call(&api, "PATCH", &obj, "application/json-patch+json", r#"[{"op":"remove","path":"/data/a"}]"#).await;
    assert_eq!((s.as_u16(), o["data"].get("a")), (200, None));
    let (s, o) = call(&api, "PATCH", &obj, "application/strategic-merge-patch+json", r#"{"metadata":{"labels":{"x":"y"}}}"#).await;
    assert_eq!((s.as_u16(), o["metadata"]["labels"]["x"].as_str()), (200, Some("y")));
    for (ctype, body, want) in [
        ("text/plain", "{}", 415),
        ("application/merge-patch+json", "{oops", 400),
        ("application/json-patch+json", r#"[{"op":"test","path":"/data/b","value":"9"}]"#, 422),
        ("application/merge-patch+json", r#"{"metadata":{"name":"other"}}"#, 400),
    ] {
        let (s, st) = call(&api, "PATCH", &obj, ctype, body).await;
        assert_eq!(s.as_u16(), want, "{ctype} {body}: {st}");
    }
    let (s, _) = call(&api, "PATCH", &format!("{path}/missing"), "application/merge-patch+json", "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_status_errors() {
    let api = server(Some("t0k")).await;
    for (method, path, want) in [
        ("GET", "/api/v1/widgets", 404),
        ("GET", "/apis/nope/v1", 404),
        ("GET", "/nothing", 404),
        ("POST", "/api/v1/namespaces/default/configmaps/x", 405),
        ("GET", "/api/v1/namespaces/default/pods/x/bogus", 404),
        ("GET", "/api/v1/namespaces/default/pods?labelSelector=a%20in%20(", 400),
        ("GET", "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3Dx", 400),
        ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=abc", 400),
        ("DELETE", "/api/v1/namespaces/default/configmaps/x?propagationPolicy=Sideways", 400),
    ] {
        let (s, st) = call(&api, method, path, "application/json", Body::empty()).await;
        assert_eq!(s.as_u16(), want, "{method} {path}: {st}");
        assert_eq!(st["kind"], "Status", "{method} {path}");
    }
}

#[tokio::test]
async fn deletecollection_removes_only_what_the_selector_matches() {
    let api = server(Some("t0k")).await;
    let path = "/api/v1/namespaces/default/configmaps";
    for (name, app_label) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let body = json!({"kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": app_label}}}).to_string();
        call(&api, "POST", path, "application/json", body).await;
    }
    let (s, _) = call(&api, "DELETE", &format!("{path}?labelSelector=app%3Dx"), "application/json", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = call(&api, "GET", path, "application/json", Body::empty()).await;
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["c"]);
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let api = server(Some("t0k")).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let body = json!({"kind": "ConfigMap", "metadata": {"name": "f", "finalizers": ["example.com/hold"]}}).to_string();
    call(&api, "POST", path, "application/json", body).await;
    let (s, o) = call(&api, "DELETE", &format!("{path}/f"), "application/json", Body::empty()).await;
    assert!(s.is_success());
    assert!(o["metadata"]["deletionTimestamp"].is_string());
    let (s, _) = call(&api, "GET", &format!("{path}/f"), "application/json", Body::empty()).await;
    assert_eq!(s, StatusCode::OK, "still there while the finalizer holds it");
    let (s, _) = call(&api, "PATCH", &format!("{path}/f"), "application/merge-patch+json", r#"{"metadata":{"finalizers":null}}"#).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&api, "GET", &format!("{path}/f"), "application/json", Body::empty()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "gone once the last finalizer is removed");
}

#[tokio::test]
async fn logs_and_exec_refuse_bad_requests_with_a_status() {
    let api = server(Some("t0k")).await;
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}});
    let (s, _) = call(&api, "POST", "/api/v1/namespaces/default/pods", "application/json", pod.to_string()).await;
    assert_eq!(s, StatusCode::CREATED);
    for (method, path, want) in [
        ("GET", "/api/v1/namespaces/default/pods/p/log", "a container name must be specified for pod p, choose one of: [a b]"),
        ("GET", "/api/v1/namespaces/default/pods/p/log?container=zz", "container zz is not valid for pod p"),
        ("GET", "/api/v1/namespaces/default/pods/p/log?container=a", "pod p does not have a host assigned"),
        ("GET", "/api/v1/namespaces/default/pods/p/log?container=a&tailLines=many", "invalid value for tailLines"),
        ("GET", "/api/v1/namespaces/default/pods/p/log?container=a&sinceTime=yesterday", "is not an RFC 3339 time"),
        ("POST", "/api/v1/namespaces/default/pods/p/exec?container=zz&command=ls", "container zz is not valid for pod p"),
        ("POST", "/api/v1/namespaces/default/pods/p/exec?container=a&command=ls", "pod p does not have a host assigned"),
    ] {
        let (s, st) = call(&api, method, path, "application/json", Body::empty()).await;
        assert_eq!(s.as_u16(), 400, "{path}: {st}");
        assert!(st["message"].as_str().unwrap_or("").contains(want), "{path}: {st}");
    }
    let (s, st) = call(&api, "GET", "/api/v1/namespaces/default/pods/ghost/log", "application/json", Body::empty()).await;
    assert_eq!((s.as_u16(), st["reason"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn a_created_pod_runs_as_its_namespaces_default_service_account_unless_it_names_one() {
    let api = server(Some("t0k")).await;
    let pod = |name: &str, spec_extra: Value| {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        spec.as_object_mut().unwrap().extend(spec_extra.as_object().unwrap().clone());
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}).to_string()
    };
    let cases = [("plain", json!({}), "default"), ("named", json!({"serviceAccountName": "builder"}), "builder"), ("legacy", json!({"serviceAccount": "old"}), "old")];
    for (name, extra, want) in cases {
        let (s, obj) = call(&api, "POST", "/api/v1/namespaces/default/pods", "application/json", pod(name, extra)).await;
        assert_eq!(s, StatusCode::CREATED, "{obj}");
        assert_eq!((obj["spec"]["serviceAccountName"].as_str(), obj["spec"]["serviceAccount"].as_str()), (Some(want), Some(want)), "{name}");
    }
    let (s, st) = call(&api, "POST", "/api/v1/namespaces/default/pods", "application/json", pod("typo", json!({"serviceAccountName": 5}))).await;
    assert_eq!(s.as_u16(), 400, "a wrongly typed account is refused, not replaced by the default: {st}");
    assert!(st["message"].as_str().unwrap_or("").contains("serviceAccountName"), "{st}");
}

//! The Kubernetes API server: routing, authentication and the dispatch of verbs.

pub mod discovery;
pub mod error;
pub mod handlers;
pub mod negotiate;
pub mod object;
pub mod openapi;
pub mod openapi_v2;
pub mod patch;
pub mod protobuf;
pub mod remote;
pub mod path;
pub mod selectors;
pub mod table;
pub mod update;
pub mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::registry::Registry;
use crate::registry::allocator::ServiceAllocator;
use crate::store::DynStore;
use error::{ApiError, Result};
use handlers::DeleteOptions;
use negotiate::{Accept, Query, Shape, decode_body, include_object, json_response, render_object};
use patch::PatchType;
use path::Target;
use update::{Part, ScaleChange};

/// Largest request body accepted (Kubernetes uses 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct ApiServer {
    pub store: DynStore,
    pub registry: Arc<Registry>,
    pub services: Arc<ServiceAllocator>,
    /// Bearer token of the admin user; `None` turns authentication off (unit tests only).
    pub admin_token: Option<String>,
    /// Connections to node agents for logs and exec; `None` in servers without nodes (tests).
    pub nodes: Option<Arc<remote::NodeConnector>>,
}

pub type Shared = Arc<ApiServer>;

pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/version", get(|| async { axum::Json(discovery::version()) }))
        .route("/api", get(|| async { axum::Json(discovery::core_versions()) }))
        .route("/apis", get(|State(s): State<Shared>| async move { axum::Json(discovery::group_list(&s.registry)) }))
        .route("/openapi/v2", get(|State(s): State<Shared>| async move {
            ([(header::CONTENT_TYPE, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")], openapi_v2::protobuf(&s.registry))
        }))
        .route("/openapi/v3", get(|State(s): State<Shared>| async move { axum::Json(openapi::index(&s.registry)) }))
        .route("/openapi/v3/{*rest}", get(openapi_doc))
        .route("/api/{*rest}", any(dispatch_core))
        .route("/apis/{*rest}", any(dispatch_groups))
        .fallback(|| async { ApiError { code: 404, reason: "NotFound", message: "the server could not find the requested resource".into(), details: None, retry_after_seconds: None } })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn ok() -> &'static str {
    "ok"
}

async fn openapi_doc(State(s): State<Shared>, axum::extract::Path(rest): axum::extract::Path<String>) -> Response {
    match openapi::group_version_doc(&s.registry, &rest) {
        Some(doc) => axum::Json(doc).into_response(),
        None => ApiError::not_found("", "openapi", &rest).into_response(),
    }
}

const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

async fn authenticate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.admin_token {
        let path = req.uri().path();
        let public = PUBLIC_PATHS.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let valid = presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes()));
        if !public && !valid {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dispatch_core(State(s): State<Shared>, req: Request) -> Response {
    dispatch(s, true, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch_groups(State(s): State<Shared>, req: Request) -> Response {
    dispatch(s, false, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn read_body(body: Body) -> Result<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(format!("the request body is larger than the limit of {MAX_BODY} bytes")))
}

async fn dispatch(s: Shared, core: bool, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let rest = path.strip_prefix(if core { "/api/" } else { "/apis/" }).unwrap_or("");
    let q = Query::parse(parts.uri.query());
    let accept = Accept::from_headers(&parts.headers);

    // `/apis/GROUP`: the group document.
    if !core && !rest.trim_matches('/').contains('/') && parts.method == Method::GET {
        return discovery::group(&s.registry, rest.trim_matches('/'))
            .map(|d| axum::Json(d).into_response())
            .ok_or_else(|| ApiError::not_found("", "groups", rest));
    }
    let target = path::parse(&s.registry, core, rest)?;
    let method = parts.method.clone();
    let watch = |explicit: bool| explicit || q.flag("watch");
    match target {
        Target::GroupVersion { group, version } if method == Method::GET => {
            Ok(axum::Json(discovery::resource_list(&s.registry, &group, &version)).into_response())
        }
        Target::Collection { resource, namespace, watch: w } => {
            let ns = namespace.as_deref();
            match method {
                Method::GET if watch(w) => s.watch(&resource, ns, None, &q, accept).await,
                Method::GET => {
                    let (items, rev) = s.list_objects(&resource, ns, &q).await?;
                    let body = if accept.shape == Shape::Table {
                        table::table(resource.kind, &items, include_object(&q), json!({"resourceVersion": rev.to_string()}), jiff::Timestamp::now())
                    } else if accept.shape == Shape::Metadata {
                        let items: Vec<Value> = items.iter().map(|o| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})).collect();
                        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rev.to_string()}, "items": items})
                    } else {
                        json!({
                            "kind": format!("{}List", resource.kind),
                            "apiVersion": resource.api_version(),
                            "metadata": {"resourceVersion": rev.to_string()},
                            "items": items.into_iter().map(object::strip_type).collect::<Vec<_>>(),
                        })
                    };
                    Ok(json_response(200, &body, &[]))
                }
                Method::POST => {
                    let body = decode_body(&parts.headers, &read_body(body).await?)?;
                    let (obj, warnings) = s.create(&resource, ns, body, &q).await?;
                    Ok(json_response(201, &render_object(accept, resource.kind, obj, include_object(&q)), &warnings))
                }
                Method::DELETE => {
                    let raw = read_body(body).await?;
                    let opts_body = if raw.iter().all(u8::is_ascii_whitespace) { None } else { Some(decode_body(&parts.headers, &raw)?) };
                    let opts = DeleteOptions::from_request(&q, opts_body.as_ref())?;
                    let list = s.delete_collection(&resource, ns, &q, &opts).await?;
                    Ok(json_response(200, &list, &[]))
                }
                _ => Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource"))),
            }
        }
        Target::Object { resource, namespace, name, subresource, watch: w } => {
            let ns = namespace.as_deref();
            let sub = subresource.as_deref();
            let res = &resource;
            let with_body = |raw: bytes::Bytes| decode_body(&parts.headers, &raw);
            let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let render = |obj: Value| render_object(accept, res.kind, obj, include_object(&q));
            match (method, sub) {
                (Method::GET, None) if watch(w) => s.watch(res, ns, Some(&name), &q, accept).await,
                (Method::GET, None | Some("status")) => {
                    let (obj, _) = s.get_object(res, ns, &name).await?;
                    Ok(json_response(200, &render(obj), &[]))
                }
                (Method::PUT, None | Some("status")) => {
                    let part = if sub == Some("status") { Part::Status } else { Part::Main };
                    let body = with_body(read_body(body).await?)?;
                    let (obj, warnings) = s.update(res, ns, &name, part, body, &q).await?;
                    Ok(json_response(200, &render(obj), &warnings))
                }
                (Method::PATCH, None | Some("status")) => {
                    let part = if sub == Some("status") { Part::Status } else { Part::Main };
                    let ty = PatchType::from_content_type(&content_type)?;
                    let raw = read_body(body).await?;
                    let patch = decode_patch(ty, &raw)?;
                    let (obj, warnings) = s.patch(res, ns, &name, part, ty, patch, &q).await?;
                    Ok(json_response(200, &render(obj), &warnings))
                }
                (Method::DELETE, None) => {
                    let raw = read_body(body).await?;
                    let opts_body = if raw.iter().all(u8::is_ascii_whitespace) { None } else { Some(with_body(raw)?) };
                    let opts = DeleteOptions::from_request(&q, opts_body.as_ref())?;
                    let (code, obj) = s.delete(res, ns, &name, &opts).await?;
                    Ok(json_response(code, &render(obj), &[]))
                }
                (Method::GET, Some("scale")) => Ok(json_response(200, &s.get_scale(res, ns, &name).await?, &[])),
                (Method::PUT, Some("scale")) => {
                    let body = with_body(read_body(body).await?)?;
                    Ok(json_response(200, &s.write_scale(res, ns, &name, ScaleChange::Replace(body), &q).await?, &[]))
                }
                (Method::PATCH, Some("scale")) => {
                    let ty = PatchType::from_content_type(&content_type)?;
                    let patch = decode_patch(ty, &read_body(body).await?)?;
                    Ok(json_response(200, &s.write_scale(res, ns, &name, ScaleChange::Patch(ty, patch), &q).await?, &[]))
                }
                (Method::POST, Some("binding")) => {
                    let body = with_body(read_body(body).await?)?;
                    Ok(json_response(201, &s.bind(res, ns, &name, &body).await?, &[]))
                }
                (Method::PUT, Some("finalize")) => {
                    let body = with_body(read_body(body).await?)?;
                    Ok(json_response(200, &s.finalize_namespace(res, &name, body, &q).await?, &[]))
                }
                (Method::GET, Some("log")) => s.logs(ns.unwrap_or("default"), &name, &q).await,
                (Method::GET | Method::POST, Some("exec")) => {
                    let mut parts = parts;
                    match <axum::extract::ws::WebSocketUpgrade as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &()).await {
                        Ok(ws) => s.exec(ns.unwrap_or("default"), &name, parts.uri.query(), ws).await,
                        Err(_) => {
                            // A plain request (kubectl's SPDY fallback): report a bad pod or container first.
                            let container = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                                .find(|(k, _)| k == "container")
                                .map(|(_, v)| v.into_owned());
                            s.check_exec_target(ns.unwrap_or("default"), &name, container.as_deref()).await?;
                            Err(ApiError::bad_request("exec needs a WebSocket upgrade (v5.channel.k8s.io); SPDY is not supported"))
                        }
                    }
                }
                (_, Some("log" | "exec" | "attach" | "portforward")) => {
                    Err(ApiError::unavailable(format!("{} is not available for pod {name}: its node has no running container for it", sub.unwrap_or(""))))
                }
                _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
            }
        }
        _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
    }
}

/// Patch bodies: JSON, except server-side apply, which kubectl sends as YAML.
fn decode_patch(ty: PatchType, raw: &[u8]) -> Result<Value> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the patch is empty"));
    }
    if ty == PatchType::Apply {
        let v: serde_yaml::Value = serde_yaml::from_slice(raw).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return serde_json::to_value(v).map_err(|e| ApiError::bad_request(e.to_string()));
    }
    serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

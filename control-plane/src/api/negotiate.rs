//! Content negotiation: request bodies in JSON or YAML, responses as objects, Tables or
//! PartialObjectMetadata, as the client's Accept header asks.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::table::{self, IncludeObject};

/// Query parameters, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Query(form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|v| v.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?} is not an integer"))))
            .transpose()
    }
    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Object,
    Table,
    Metadata,
}

/// What the client wants back, from its Accept header.
#[derive(Debug, Clone, Copy)]
pub struct Accept {
    pub shape: Shape,
}

impl Accept {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let raw = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        // Clients list alternatives in preference order; the first we can serve wins.
        for alt in raw.split(',') {
            let alt = alt.trim();
            if alt.contains("as=Table") && alt.contains("g=meta.k8s.io") {
                return Accept { shape: Shape::Table };
            }
            if alt.contains("as=PartialObjectMetadata") && alt.contains("g=meta.k8s.io") {
                return Accept { shape: Shape::Metadata };
            }
            if alt.starts_with("application/json") || alt.starts_with("*/*") || alt.is_empty() {
                return Accept { shape: Shape::Object };
            }
        }
        Accept { shape: Shape::Object }
    }
}

/// Decodes a request body by its Content-Type (JSON, or YAML as kubectl may send).
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if ctype.contains("yaml") {
        let v: serde_yaml::Value =
            serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        serde_json::to_value(v).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else if ctype.contains("protobuf") {
        // kubectl 1.32+ typed clients (`kubectl create deployment`, `run`, `expose`) send protobuf.
        super::protobuf::decode(body).map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
    }
}

pub fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], serde_json::to_vec(body).unwrap_or_default()).into_response();
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = text.parse() {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// Renders one object in the shape asked for.
pub fn render_object(accept: Accept, kind: &str, obj: Value, include: IncludeObject) -> Value {
    match accept.shape {
        Shape::Object => obj,
        Shape::Metadata => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
        Shape::Table => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            table::table(kind, &[obj], include, json!({"resourceVersion": rv}), jiff::Timestamp::now())
        }
    }
}

pub fn include_object(q: &Query) -> IncludeObject {
    match q.get("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Shape {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        Accept::from_headers(&h).shape
    }

    #[test]
    fn kubectl_get_asks_for_a_table_and_gets_one() {
        assert_eq!(accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"), Shape::Table);
        assert_eq!(accept("application/json"), Shape::Object);
        assert_eq!(accept("application/vnd.kubernetes.protobuf, application/json"), Shape::Object);
        assert_eq!(accept("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"), Shape::Metadata);
    }

    #[test]
    fn yaml_bodies_decode_and_garbage_is_a_bad_request() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/yaml".parse().unwrap());
        assert_eq!(decode_body(&h, b"a: 1\nb: [x]\n").unwrap(), json!({"a": 1, "b": ["x"]}));
        assert_eq!(decode_body(&h, b"a: [").unwrap_err().code, 400);
        assert_eq!(decode_body(&HeaderMap::new(), b"{nope").unwrap_err().code, 400);
        assert_eq!(decode_body(&HeaderMap::new(), b"  ").unwrap_err().code, 400);
    }
}

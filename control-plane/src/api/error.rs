//! Kubernetes `Status` errors: every failure the API returns is one of these, so
//! kubectl and client libraries print the same messages they print for a real cluster.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// One bad field inside a 422 Invalid answer (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueDuplicate`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    pub message: String,
    /// JSON path of the field, as Kubernetes writes it: `spec.template.spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause { reason: "FieldValueRequired", message: "Required value".into(), field: field.into() }
    }
    /// `Invalid value: <value>: <detail>` as Kubernetes' field.Invalid prints it.
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {}", quote_value(&value.to_string()), detail),
            field: field.into(),
        }
    }
    pub fn not_supported(field: impl Into<String>, value: impl std::fmt::Display, supported: &[&str]) -> Self {
        let list = supported.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: \"{value}\": supported values: {list}"),
            field: field.into(),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Cause { reason: "FieldValueDuplicate", message: format!("Duplicate value: \"{value}\""), field: field.into() }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause { reason: "FieldValueForbidden", message: format!("Forbidden: {}", detail.into()), field: field.into() }
    }
    /// The line Kubernetes prints for this cause inside the Status message.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn quote_value(v: &str) -> String {
    if v.parse::<f64>().is_ok() || v == "true" || v == "false" || v == "null" {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

/// An API failure, rendered as a `meta.k8s.io/v1 Status`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Details>,
    pub retry_after_seconds: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None, retry_after_seconds: None }
    }
    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Details { name: name.into(), group: group.into(), kind: kind.into(), causes: vec![] });
        self
    }
    /// `deployments.apps "web" not found`
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(group, plural))).with_details(group, plural, name)
    }
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(group, plural)))
            .with_details(group, plural, name)
    }
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(group, plural)))
            .with_details(group, plural, name)
    }
    /// 422 with one cause per bad field: `Deployment.apps "web" is invalid: [spec.selector: Required value, ...]`
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list = causes.iter().map(Cause::describe).collect::<Vec<_>>();
        let joined = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let mut e = Self::new(422, "Invalid", format!("{} \"{name}\" is invalid: {joined}", qualified(group, kind)))
            .with_details(group, kind, name);
        if let Some(d) = e.details.as_mut() {
            d.causes = causes;
        }
        e
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    pub fn status(&self) -> serde_json::Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = serde_json::to_value(d).unwrap_or_default();
        }
        v
    }
}

/// `deployments.apps` for grouped resources, `pods` for the core group.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut resp = (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(s) = self.retry_after_seconds {
            if let Ok(h) = s.to_string().parse() {
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, h);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_cause_in_the_message_like_kubernetes() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![Cause::required("spec.selector"), Cause::invalid("metadata.name", "Web", "a lowercase RFC 1123 subdomain")],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain]"
        );
        assert_eq!(e.status()["details"]["causes"][0]["field"], "spec.selector");
    }

    #[test]
    fn not_found_names_the_core_resource_without_a_group() {
        assert_eq!(ApiError::not_found("", "pods", "x").message, "pods \"x\" not found");
        assert_eq!(ApiError::not_found("apps", "deployments", "x").message, "deployments.apps \"x\" not found");
    }
}

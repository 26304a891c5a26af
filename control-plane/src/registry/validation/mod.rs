//! Validation as the API server runs it after defaulting (`pkg/apis/core/validation`,
//! `pkg/apis/apps/validation`, ...): every function returns the causes of a 422 answer, with the
//! field paths, reasons and messages Kubernetes prints, so kubectl users read the same text.
//!
//! Objects are expected to have gone through `crate::registry::defaults` first; like Kubernetes,
//! fields that defaulting always fills (`restartPolicy`, `protocol`, ...) are reported as
//! `Required value` when empty.

mod apps;
mod container;
mod kinds;
mod meta;
pub mod names;
mod pod;
mod service;
mod volume;

#[cfg(test)]
mod tests;

use crate::api::error::Cause;

pub use apps::{deployment, deployment_update, replica_set, replica_set_update};
pub use kinds::{config_map, config_map_update, endpoints, event, lease, namespace, node, node_update, secret, secret_update};
pub use meta::{label_selector, labels, object_meta, object_meta_update, selector_matches};
pub use names::{
    is_c_identifier, is_config_map_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_env_var_name,
    is_http_header_name, is_path_segment_name, is_qualified_name, is_relaxed_env_var_name, is_valid_cidr, is_valid_ip,
    is_valid_label_value, is_valid_percent, is_valid_port_name, is_valid_port_num,
};
pub use pod::{pod, pod_template_spec, pod_update};
pub use service::{DEFAULT_NODE_PORT_RANGE, service, service_update, service_with_range};

/// Which rule an object's `metadata.name` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: Pod, Node, ConfigMap, Secret, Endpoints, Event, Lease, Deployment, ReplicaSet.
    Subdomain,
    /// DNS-1123 label: Namespace.
    Label,
    /// DNS-1035 label (must start with a letter): Service, as `ValidateServiceName` requires.
    Label1035,
    /// Any path segment (no `/`, `%`, `.` or `..`): RBAC roles and other free-form names.
    Path,
}

impl NameRule {
    /// `prefix` is true for `generateName`, whose trailing dash is fine because a suffix follows.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && self != NameRule::Path && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Subdomain => names::is_dns1123_subdomain(name),
            NameRule::Label => names::is_dns1123_label(name),
            NameRule::Label1035 => names::is_dns1035_label(name),
            NameRule::Path => names::is_path_segment_name(name, prefix),
        }
    }
}

/// A field path written the way Kubernetes writes it: `spec.containers[0].ports[1].name`, `data[key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(root: &str) -> Self {
        FieldPath(root.to_string())
    }
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() { FieldPath(name.to_string()) } else { FieldPath(format!("{}.{name}", self.0)) }
    }
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{k}]", self.0))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// Constructors for the error kinds `Cause` has no helper for, and for values that Go prints
// unquoted (numbers) or as `%#v` structs.

fn cause(reason: &'static str, path: &FieldPath, message: String) -> Cause {
    Cause { reason, message, field: path.to_string() }
}

pub(crate) use crate::api::selectors::go_quote;

pub(crate) fn required(path: &FieldPath) -> Cause {
    Cause::required(path.as_str())
}

pub(crate) fn required_detail(path: &FieldPath, detail: &str) -> Cause {
    cause("FieldValueRequired", path, format!("Required value: {detail}"))
}

/// `Invalid value: "text": detail` — strings are always quoted, as Go does.
pub(crate) fn invalid(path: &FieldPath, value: &str, detail: impl std::fmt::Display) -> Cause {
    cause("FieldValueInvalid", path, format!("Invalid value: {}: {detail}", go_quote(value)))
}

/// `Invalid value: 5: detail` for numbers and booleans, or a preformatted `%#v` rendering.
pub(crate) fn invalid_raw(path: &FieldPath, value: impl std::fmt::Display, detail: impl std::fmt::Display) -> Cause {
    cause("FieldValueInvalid", path, format!("Invalid value: {value}: {detail}"))
}

pub(crate) fn not_supported(path: &FieldPath, value: &str, supported: &[&str]) -> Cause {
    Cause::not_supported(path.as_str(), value, supported)
}

pub(crate) fn duplicate(path: &FieldPath, value: &str) -> Cause {
    cause("FieldValueDuplicate", path, format!("Duplicate value: {}", go_quote(value)))
}

pub(crate) fn duplicate_raw(path: &FieldPath, value: impl std::fmt::Display) -> Cause {
    cause("FieldValueDuplicate", path, format!("Duplicate value: {value}"))
}

pub(crate) fn forbidden(path: &FieldPath, detail: &str) -> Cause {
    Cause::forbidden(path.as_str(), detail)
}

pub(crate) fn not_found(path: &FieldPath, value: &str) -> Cause {
    cause("FieldValueNotFound", path, format!("Not found: {}", go_quote(value)))
}

pub(crate) fn too_long(path: &FieldPath, max: usize) -> Cause {
    cause("FieldValueTooLong", path, format!("Too long: must have at most {max} bytes"))
}

pub(crate) const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";
pub(crate) const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";

pub(crate) fn nonnegative(value: i64, path: &FieldPath) -> Vec<Cause> {
    if value < 0 { vec![invalid_raw(path, value, IS_NEGATIVE_ERROR_MSG)] } else { vec![] }
}

/// `ValidateDNS1123Label` on a field.
pub(crate) fn dns1123_label(value: &str, path: &FieldPath) -> Vec<Cause> {
    names::is_dns1123_label(value).into_iter().map(|m| invalid(path, value, m)).collect()
}

pub(crate) fn dns1123_subdomain(value: &str, path: &FieldPath) -> Vec<Cause> {
    names::is_dns1123_subdomain(value).into_iter().map(|m| invalid(path, value, m)).collect()
}

pub(crate) fn qualified_name(value: &str, path: &FieldPath) -> Vec<Cause> {
    names::is_qualified_name(value).into_iter().map(|m| invalid(path, value, m)).collect()
}

pub(crate) fn port_num_or_name(port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString, path: &FieldPath) -> Vec<Cause> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(n) => names::is_valid_port_num(i64::from(*n)).into_iter().map(|m| invalid_raw(path, n, m)).collect(),
        IntOrString::String(s) => names::is_valid_port_name(s).into_iter().map(|m| invalid(path, s, m)).collect(),
    }
}

/// Empty strings count as unset, as they do for Go's non-pointer fields.
pub(crate) fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

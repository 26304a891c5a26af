//! The API resources this server knows, and each kind's typed admission:
//! decode into the real k8s-openapi type (wrong field types are refused), default, validate.

pub mod allocator;
pub mod defaults;
pub use proto::quantity;
pub mod validation;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::Metadata;
use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::api::error::Cause;
use validation::NameRule;

/// One API resource (a kind served under a group/version with a plural name).
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// `status` subresource: the main resource ignores status changes, `/status` ignores the rest.
    pub has_status: bool,
    /// `scale` subresource (autoscaling/v1 Scale over spec.replicas).
    pub has_scale: bool,
    /// Other subresources served for this kind (`log`, `exec`, `binding`, `finalize`, ...).
    pub extra_subresources: &'static [&'static str],
    /// `metadata.generation` starts at 1 and grows with every spec change.
    pub tracks_generation: bool,
    admit: Box<dyn Admit>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }
    pub fn group_version(&self) -> (&'static str, &'static str) {
        (self.group, self.version)
    }
    /// Store key prefix of this resource, optionally narrowed to one namespace.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{group}/{}/{ns}/", self.plural),
            _ => format!("/registry/{group}/{}/", self.plural),
        }
    }
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }
    /// Decode, default and validate an incoming object (and its predecessor on update).
    pub fn admit(&self, obj: Value, old: Option<&Value>) -> Result<Admitted, AdmitError> {
        self.admit.admit(obj, old)
    }
}

pub struct Admitted {
    pub object: Value,
    /// Paths of fields in the input that the kind does not have (strict field validation refuses them).
    pub unknown_fields: Vec<String>,
}

#[derive(Debug)]
pub enum AdmitError {
    /// The body does not decode into the kind (HTTP 400).
    Decode(String),
    /// Decoded, but invalid (HTTP 422).
    Invalid(Vec<Cause>),
}

trait Admit: Send + Sync {
    fn admit(&self, obj: Value, old: Option<&Value>) -> Result<Admitted, AdmitError>;
}

struct Typed<K> {
    namespaced: bool,
    name_rule: fn() -> NameRule,
    default: fn(&mut K),
    validate: fn(&K) -> Vec<Cause>,
    validate_update: fn(&K, &K) -> Vec<Cause>,
}

fn decode<K: DeserializeOwned>(v: &Value) -> Result<K, AdmitError> {
    serde_path_to_error::deserialize::<_, K>(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." { AdmitError::Decode(inner.to_string()) } else { AdmitError::Decode(format!("{path}: {inner}")) }
    })
}

impl<K> Admit for Typed<K>
where
    K: DeserializeOwned + Serialize + Metadata<Ty = ObjectMeta> + Send + Sync,
{
    fn admit(&self, obj: Value, old: Option<&Value>) -> Result<Admitted, AdmitError> {
        let mut typed: K = decode(&obj)?;
        let canonical = serde_json::to_value(&typed).map_err(|e| AdmitError::Decode(e.to_string()))?;
        let mut unknown_fields = Vec::new();
        unknown_paths(&obj, &canonical, "", &mut unknown_fields);
        (self.default)(&mut typed);
        let mut causes = validation::object_meta(typed.metadata(), self.namespaced, (self.name_rule)());
        causes.extend((self.validate)(&typed));
        if let Some(old) = old {
            let old: K = decode(old)?;
            causes.extend(validation::object_meta_update(typed.metadata(), old.metadata()));
            causes.extend((self.validate_update)(&typed, &old));
        }
        if !causes.is_empty() {
            return Err(AdmitError::Invalid(causes));
        }
        let object = serde_json::to_value(&typed).map_err(|e| AdmitError::Decode(e.to_string()))?;
        Ok(Admitted { object, unknown_fields })
    }
}

/// Fields present (and not null) in `input` that did not survive decoding into the typed object.
fn unknown_paths(input: &Value, canonical: &Value, path: &str, out: &mut Vec<String>) {
    match (input, canonical) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    None if !v.is_null() => out.push(p),
                    Some(bv) => unknown_paths(v, bv, &p, out),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_paths(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn none<K>(_: &K) -> Vec<Cause> {
    Vec::new()
}
fn none2<K>(_: &K, _: &K) -> Vec<Cause> {
    Vec::new()
}
fn keep<K>(_: &mut K) {}

/// The set of served resources, looked up by group/version and plural (or kind).
pub struct Registry {
    resources: Vec<Arc<Resource>>,
    by_path: BTreeMap<(String, String, String), Arc<Resource>>,
}

impl Registry {
    pub fn new() -> Self {
        let mut r = Registry { resources: Vec::new(), by_path: BTreeMap::new() };
        for res in builtin() {
            r.add(res);
        }
        r
    }

    fn add(&mut self, res: Resource) {
        let res = Arc::new(res);
        self.by_path.insert((res.group.into(), res.version.into(), res.plural.into()), res.clone());
        self.resources.push(res);
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.by_path.get(&(group.to_string(), version.to_string(), plural.to_string())).cloned()
    }

    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<Resource>> {
        self.resources.iter().find(|r| r.group == group && r.kind == kind).cloned()
    }

    pub fn all(&self) -> &[Arc<Resource>] {
        &self.resources
    }

    /// Group/versions served, core ("", "v1") first.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for r in &self.resources {
            if !out.contains(&r.group_version()) {
                out.push(r.group_version());
            }
        }
        out
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn builtin() -> Vec<Resource> {
    fn subdomain() -> NameRule {
        NameRule::Subdomain
    }
    fn label() -> NameRule {
        NameRule::Label
    }
    fn path() -> NameRule {
        NameRule::Path
    }
    fn label1035() -> NameRule {
        NameRule::Label1035
    }
    macro_rules! resource {
        ($ty:ty, group: $g:expr, kind: $k:expr, plural: $p:expr, singular: $s:expr, namespaced: $ns:expr, short: $short:expr,
         categories: $cat:expr, status: $st:expr, scale: $sc:expr, extra: $ex:expr, generation: $gen:expr,
         name: $name:expr, default: $def:expr, validate: $val:expr, update: $upd:expr) => {
            Resource {
                group: $g,
                version: "v1",
                kind: $k,
                plural: $p,
                singular: $s,
                namespaced: $ns,
                short_names: $short,
                categories: $cat,
                has_status: $st,
                has_scale: $sc,
                extra_subresources: $ex,
                tracks_generation: $gen,
                admit: Box::new(Typed::<$ty> {
                    namespaced: $ns,
                    name_rule: $name,
                    default: $def,
                    validate: $val,
                    validate_update: $upd,
                }),
            }
        };
    }
    vec![
        resource!(core::Namespace, group: "", kind: "Namespace", plural: "namespaces", singular: "namespace", namespaced: false,
            short: &["ns"], categories: &[], status: true, scale: false, extra: &["finalize"], generation: false,
            name: label, default: defaults::namespace, validate: validation::namespace, update: none2),
        resource!(core::Node, group: "", kind: "Node", plural: "nodes", singular: "node", namespaced: false,
            short: &["no"], categories: &[], status: true, scale: false, extra: &[], generation: false,
            name: subdomain, default: defaults::node, validate: validation::node, update: validation::node_update),
        resource!(core::Pod, group: "", kind: "Pod", plural: "pods", singular: "pod", namespaced: true,
            short: &["po"], categories: &["all"], status: true, scale: false, extra: &["log", "exec", "binding", "attach", "portforward"], generation: false,
            name: subdomain, default: defaults::pod, validate: validation::pod, update: validation::pod_update),
        resource!(core::Service, group: "", kind: "Service", plural: "services", singular: "service", namespaced: true,
            short: &["svc"], categories: &["all"], status: true, scale: false, extra: &[], generation: false,
            name: label1035, default: defaults::service, validate: validation::service, update: validation::service_update),
        resource!(core::Endpoints, group: "", kind: "Endpoints", plural: "endpoints", singular: "endpoints", namespaced: true,
            short: &["ep"], categories: &[], status: false, scale: false, extra: &[], generation: false,
            name: subdomain, default: defaults::endpoints, validate: validation::endpoints, update: none2),
        resource!(core::Event, group: "", kind: "Event", plural: "events", singular: "event", namespaced: true,
            short: &["ev"], categories: &[], status: false, scale: false, extra: &[], generation: false,
            name: subdomain, default: keep, validate: validation::event, update: none2),
        resource!(core::ConfigMap, group: "", kind: "ConfigMap", plural: "configmaps", singular: "configmap", namespaced: true,
            short: &["cm"], categories: &[], status: false, scale: false, extra: &[], generation: false,
            name: subdomain, default: keep, validate: validation::config_map, update: validation::config_map_update),
        resource!(core::Secret, group: "", kind: "Secret", plural: "secrets", singular: "secret", namespaced: true,
            short: &[], categories: &[], status: false, scale: false, extra: &[], generation: false,
            name: subdomain, default: defaults::secret, validate: validation::secret, update: validation::secret_update),
        resource!(core::ServiceAccount, group: "", kind: "ServiceAccount", plural: "serviceaccounts", singular: "serviceaccount", namespaced: true,
            short: &["sa"], categories: &[], status: false, scale: false, extra: &[], generation: false,
            name: subdomain, default: keep, validate: none, update: none2),
        resource!(apps::Deployment, group: "apps", kind: "Deployment", plural: "deployments", singular: "deployment", namespaced: true,
            short: &["deploy"], categories: &["all"], status: true, scale: true, extra: &[], generation: true,
            name: subdomain, default: defaults::deployment, validate: validation::deployment, update: validation::deployment_update),
        resource!(apps::ReplicaSet, group: "apps", kind: "ReplicaSet", plural: "replicasets", singular: "replicaset", namespaced: true,
            short: &["rs"], categories: &["all"], status: true, scale: true, extra: &[], generation: true,
            name: subdomain, default: defaults::replica_set, validate: validation::replica_set, update: validation::replica_set_update),
        resource!(coordination::Lease, group: "coordination.k8s.io", kind: "Lease", plural: "leases", singular: "lease", namespaced: true,
            short: &[], categories: &[], status: false, scale: false, extra: &[], generation: false,
            name: path, default: keep, validate: validation::lease, update: none2),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_separate_groups_namespaces_and_resources() {
        let reg = Registry::new();
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.key(Some("default"), "web"), "/registry/apps/deployments/default/web");
        let ns = reg.get("", "v1", "namespaces").unwrap();
        assert_eq!(ns.key(Some("ignored"), "default"), "/registry/core/namespaces/default");
        assert_eq!(deploy.api_version(), "apps/v1");
    }

    #[test]
    fn a_wrong_field_type_is_a_decode_error_naming_the_field() {
        let reg = Registry::new();
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let body = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","namespace":"default"},"spec":{"replicas":"three"}});
        match deploy.admit(body, None) {
            Err(AdmitError::Decode(msg)) => assert!(msg.contains("spec.replicas"), "{msg}"),
            other => panic!("expected a decode error, got {:?}", other.err()),
        }
    }

    #[test]
    fn unknown_fields_are_reported_with_their_paths() {
        let reg = Registry::new();
        let cm = reg.get("", "v1", "configmaps").unwrap();
        let body = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default","bogus":1},"data":{"a":"b"},"extra":{"y":2}});
        let admitted = cm.admit(body, None).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(admitted.unknown_fields, ["metadata.bogus", "extra"]);
        assert_eq!(admitted.object["data"]["a"], "b");
    }
}

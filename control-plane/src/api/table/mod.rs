//! Server-side table printing: the `meta.k8s.io/v1` `Table` the API server returns when a client sends
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, which is how `kubectl get` learns its columns.
//!
//! Ports `pkg/printers/internalversion/printers.go` (column definitions and print functions) and the
//! table assembly of `pkg/printers/tablegenerator.go` / the API server's `asTable`. As the real API
//! server does, rows always carry the wide (priority 1) cells; kubectl hides them unless `-o wide`.
//! Objects are read in their stored v1 JSON form.

mod cluster;
mod docs;
mod format;
mod network;
mod pod;
mod workloads;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub use format::human_duration;

/// Which form of each object a table row carries (the `includeObject` table option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object; the `object` field is left out.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (what the server sends by default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an empty value means the default.
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Self::None),
            "" | "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// One `metav1.TableColumnDefinition`.
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Column {
    const fn new(name: &'static str, ty: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty,
            format: "",
            description,
            priority: 0,
        }
    }

    /// The NAME column every printer starts with.
    const fn name() -> Self {
        Self {
            name: "Name",
            ty: "string",
            format: "name",
            description: docs::NAME,
            priority: 0,
        }
    }

    const fn age() -> Self {
        Self::new("Age", "string", docs::CREATION_TIMESTAMP)
    }

    /// A column only `kubectl get -o wide` shows.
    const fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

/// The printer Kubernetes registers for a kind: its columns and the function filling one row.
fn printer(kind: &str) -> (&'static [Column], CellsFn) {
    match kind {
        "Pod" => (pod::COLUMNS, pod::cells),
        "Deployment" => (workloads::DEPLOYMENT_COLUMNS, workloads::deployment),
        "ReplicaSet" => (workloads::REPLICA_SET_COLUMNS, workloads::replica_set),
        "ReplicationController" => (workloads::RC_COLUMNS, workloads::replication_controller),
        "DaemonSet" => (workloads::DAEMON_SET_COLUMNS, workloads::daemon_set),
        "StatefulSet" => (workloads::STATEFUL_SET_COLUMNS, workloads::stateful_set),
        "Job" => (workloads::JOB_COLUMNS, workloads::job),
        "CronJob" => (workloads::CRON_JOB_COLUMNS, workloads::cron_job),
        "ControllerRevision" => (
            workloads::CONTROLLER_REVISION_COLUMNS,
            workloads::controller_revision,
        ),
        "Service" => (network::SERVICE_COLUMNS, network::service),
        "Endpoints" => (network::ENDPOINTS_COLUMNS, network::endpoints),
        "EndpointSlice" => (network::ENDPOINT_SLICE_COLUMNS, network::endpoint_slice),
        "Node" => (cluster::NODE_COLUMNS, cluster::node),
        "Namespace" => (cluster::NAMESPACE_COLUMNS, cluster::namespace),
        "Event" => (cluster::EVENT_COLUMNS, cluster::event),
        "ConfigMap" => (cluster::CONFIG_MAP_COLUMNS, cluster::config_map),
        "Secret" => (cluster::SECRET_COLUMNS, cluster::secret),
        "ServiceAccount" => (cluster::SERVICE_ACCOUNT_COLUMNS, cluster::service_account),
        "Lease" => (cluster::LEASE_COLUMNS, cluster::lease),
        "RoleBinding" | "ClusterRoleBinding" => {
            (cluster::binding_columns(kind), cluster::role_binding)
        }
        "PriorityClass" => (cluster::PRIORITY_CLASS_COLUMNS, cluster::priority_class),
        // Built-in kinds Kubernetes registers no printer for go through the API server's default
        // table convertor (k8s.io/apiserver/pkg/registry/rest/table.go), which prints CREATED AT.
        "Role" | "ClusterRole" | "LimitRange" | "CustomResourceDefinition" => {
            (CREATED_AT_COLUMNS, created_at_cells)
        }
        // Anything else is a custom resource: its CRD has no additionalPrinterColumns here, and the
        // apiextensions server then serves NAME + AGE (a "date" column holding the elapsed time).
        _ => (AGE_COLUMNS, age_cells),
    }
}

const AGE_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Age", "date", docs::CREATION_TIMESTAMP),
];

fn age_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![format::name(obj), format::age(obj, now)]
}

const CREATED_AT_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Created At", "date", docs::CREATION_TIMESTAMP),
];

fn created_at_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    // Go formats the zero time too, so an unset timestamp prints as year 1.
    let created = format::time_at(obj, &["metadata", "creationTimestamp"]).map_or_else(
        || "0001-01-01T00:00:00Z".to_owned(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    vec![format::name(obj), Value::from(created)]
}

/// Column definitions for a kind (NAME + AGE for kinds without a printer, as served for custom resources).
pub fn columns(kind: &str) -> Vec<Value> {
    printer(kind).0.iter().map(Column::to_json).collect()
}

/// One row's cells for an object of that kind, in column order (wide columns included).
pub fn cells(kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    (printer(kind).1)(obj, now)
}

/// The whole `meta.k8s.io/v1` `Table` for a list of objects of one kind.
///
/// `metadata` takes `resourceVersion`, `continue` and `remainingItemCount` from `list_meta`.
pub fn table(
    kind: &str,
    items: &[Value],
    include: IncludeObject,
    list_meta: Value,
    now: Timestamp,
) -> Value {
    let (columns, cells) = printer(kind);
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells(item, now)));
            if let Some(conditions) = row_conditions(kind, item) {
                row.insert("conditions".into(), conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    let metadata = item.get("metadata").cloned().unwrap_or_else(|| json!({}));
                    row.insert(
                        "object".into(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".into(), item.clone());
                }
            }
            Value::Object(row)
        })
        .collect();

    let mut metadata = Map::new();
    for key in ["resourceVersion", "continue", "remainingItemCount"] {
        match list_meta.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(value) => {
                metadata.insert(key.into(), value.clone());
            }
        }
    }

    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns.iter().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// `TableRow.conditions`: only pods set them, marking finished pods as Completed.
fn row_conditions(kind: &str, obj: &Value) -> Option<Value> {
    if kind != "Pod" {
        return None;
    }
    let (reason, message) = match format::str_at(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn column_names(kind: &str) -> Vec<String> {
        columns(kind)
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_printer_fills_one_cell_per_column_even_for_garbage_objects() {
        let kinds = [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "ReplicationController",
            "DaemonSet",
            "StatefulSet",
            "Job",
            "CronJob",
            "ControllerRevision",
            "Service",
            "Endpoints",
            "EndpointSlice",
            "Node",
            "Namespace",
            "Event",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Lease",
            "RoleBinding",
            "ClusterRoleBinding",
            "PriorityClass",
            "ClusterRole",
            "Widget",
        ];
        let garbage = [
            json!(null),
            json!(42),
            json!("pod"),
            json!([1, 2]),
            json!({}),
            json!({"metadata": 7, "spec": [], "status": "x"}),
            json!({"metadata": {"name": 5, "creationTimestamp": true, "labels": []},
                   "spec": {"containers": {"a": 1}, "initContainers": [null, 3], "replicas": "three",
                            "ports": [{"port": "x", "nodePort": -1}], "selector": {"matchExpressions": [7]}},
                   "status": {"containerStatuses": [null, {"state": 5, "lastState": {"terminated": 1}}],
                              "initContainerStatuses": [{"state": {"terminated": {"exitCode": "x"}}}],
                              "conditions": "no", "addresses": [1]},
                   "subsets": [{"addresses": 1, "ports": [{"port": 1e30}]}],
                   "endpoints": [{"addresses": [1]}], "subjects": [1], "involvedObject": [], "series": 2}),
        ];
        for kind in kinds {
            let width = columns(kind).len();
            for obj in &garbage {
                assert_eq!(cells(kind, obj, now()).len(), width, "{kind} {obj}");
            }
        }
    }

    #[test]
    fn column_definitions_carry_every_field_of_table_column_definition() {
        let cols = columns("Pod");
        assert_eq!(
            cols[0],
            json!({"name": "Name", "type": "string", "format": "name", "description": docs::NAME, "priority": 0})
        );
        assert_eq!(cols[5]["name"], "IP");
        assert_eq!(cols[5]["priority"], 1);
    }

    #[test]
    fn column_sets_match_what_kubectl_prints_for_each_kind() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Pod",
                &[
                    "Name",
                    "Ready",
                    "Status",
                    "Restarts",
                    "Age",
                    "IP",
                    "Node",
                    "Nominated Node",
                    "Readiness Gates",
                ],
            ),
            (
                "Deployment",
                &[
                    "Name",
                    "Ready",
                    "Up-to-date",
                    "Available",
                    "Age",
                    "Containers",
                    "Images",
                    "Selector",
                ],
            ),
            (
                "ReplicaSet",
                &[
                    "Name",
                    "Desired",
                    "Current",
                    "Ready",
                    "Age",
                    "Containers",
                    "Images",
                    "Selector",
                ],
            ),
            (
                "Service",
                &[
                    "Name",
                    "Type",
                    "Cluster-IP",
                    "External-IP",
                    "Port(s)",
                    "Age",
                    "Selector",
                ],
            ),
            (
                "Node",
                &[
                    "Name",
                    "Status",
                    "Roles",
                    "Age",
                    "Version",
                    "Internal-IP",
                    "External-IP",
                    "OS-Image",
                    "Kernel-Version",
                    "Container-Runtime",
                ],
            ),
            ("Endpoints", &["Name", "Endpoints", "Age"]),
            ("Namespace", &["Name", "Status", "Age"]),
            (
                "Event",
                &[
                    "Last Seen",
                    "Type",
                    "Reason",
                    "Object",
                    "Subobject",
                    "Source",
                    "Message",
                    "First Seen",
                    "Count",
                    "Name",
                ],
            ),
            ("Lease", &["Name", "Holder", "Age"]),
            ("ConfigMap", &["Name", "Data", "Age"]),
            ("Secret", &["Name", "Type", "Data", "Age"]),
            ("ClusterRole", &["Name", "Created At"]),
            ("Widget", &["Name", "Age"]),
        ];
        for (kind, want) in cases {
            assert_eq!(column_names(kind), *want, "{kind}");
        }
        let event_priorities: Vec<i64> = columns("Event")
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(event_priorities, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn kinds_without_a_printer_get_name_and_age_or_created_at() {
        let obj = json!({"metadata": {"name": "w1", "creationTimestamp": "2025-06-01T11:55:00Z"}});
        assert_eq!(cells("Widget", &obj, now()), [json!("w1"), json!("5m")]);
        assert_eq!(
            cells("Widget", &json!({"metadata": {"name": "w2"}}), now()),
            [json!("w2"), json!("<unknown>")]
        );
        assert_eq!(
            cells("ClusterRole", &obj, now()),
            [json!("w1"), json!("2025-06-01T11:55:00Z")]
        );
        assert_eq!(columns("Widget")[1]["type"], "date");
    }

    #[test]
    fn table_wraps_rows_with_partial_object_metadata_by_default() {
        let pod = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                         "creationTimestamp": "2025-06-01T11:59:00Z"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Succeeded"}
        });
        let t = table(
            "Pod",
            std::slice::from_ref(&pod),
            IncludeObject::default(),
            json!({"resourceVersion": "42", "continue": ""}),
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert_eq!(t["columnDefinitions"], Value::Array(columns("Pod")));
        let row = &t["rows"][0];
        assert_eq!(row["cells"], Value::Array(cells("Pod", &pod, now())));
        assert_eq!(
            row["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]})
        );
        assert_eq!(
            row["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
    }

    #[test]
    fn table_include_object_controls_the_row_object() {
        let cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
        let meta = json!({"resourceVersion": "9", "continue": "tok", "remainingItemCount": 3});
        let full = table(
            "ConfigMap",
            std::slice::from_ref(&cm),
            IncludeObject::Object,
            meta.clone(),
            now(),
        );
        assert_eq!(full["rows"][0]["object"], cm);
        assert_eq!(full["metadata"], meta);
        let none = table(
            "ConfigMap",
            std::slice::from_ref(&cm),
            IncludeObject::None,
            json!(null),
            now(),
        );
        assert_eq!(none["rows"][0], json!({"cells": ["cfg", 1, "<unknown>"]}));
        assert_eq!(none["metadata"], json!({}));
        let empty = table("ConfigMap", &[], IncludeObject::None, json!({}), now());
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn include_object_parses_the_query_parameter() {
        assert_eq!(IncludeObject::from_param(""), Some(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::from_param("Metadata"),
            Some(IncludeObject::Metadata)
        );
        assert_eq!(
            IncludeObject::from_param("Object"),
            Some(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::from_param("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::from_param("object"), None);
    }
}

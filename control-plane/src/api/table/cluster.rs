//! Printers for Node, Namespace, Event, ConfigMap, Secret, ServiceAccount, Lease, role bindings and
//! PriorityClass.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::format::{
    age, at, bool_at, int_at, list_at, map_len, name, opt_int_at, since, str_at, time_at,
};
use super::{Column, docs};

pub(super) const NODE_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Status", "string", "The status of the node"),
    Column::new("Roles", "string", "The roles of the node"),
    Column::age(),
    Column::new("Version", "string", docs::NODE_KUBELET_VERSION),
    Column::new("Internal-IP", "string", docs::NODE_ADDRESSES).wide(),
    Column::new("External-IP", "string", docs::NODE_ADDRESSES).wide(),
    Column::new("OS-Image", "string", docs::NODE_OS_IMAGE).wide(),
    Column::new("Kernel-Version", "string", docs::NODE_KERNEL_VERSION).wide(),
    Column::new("Container-Runtime", "string", docs::NODE_CONTAINER_RUNTIME).wide(),
];

const LABEL_NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_LABEL_ROLE: &str = "kubernetes.io/role";

pub(super) fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition shows; with duplicates the last one wins, as in Go's condition map.
    let ready = list_at(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }

    let mut roles = BTreeSet::new();
    if let Some(labels) = at(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key
                .strip_prefix(LABEL_NODE_ROLE_PREFIX)
                .filter(|r| !r.is_empty())
            {
                roles.insert(role);
            } else if key == NODE_LABEL_ROLE {
                roles.extend(value.as_str().filter(|v| !v.is_empty()));
            }
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");

    let info = |field: &str| match str_at(obj, &["status", "nodeInfo", field]) {
        "" => Value::from("<unknown>"),
        v => Value::from(v),
    };
    vec![
        name(obj),
        Value::from(status.join(",")),
        Value::from(if roles.is_empty() {
            "<none>".to_owned()
        } else {
            roles
        }),
        age(obj, now),
        Value::from(str_at(obj, &["status", "nodeInfo", "kubeletVersion"])),
        Value::from(node_address(obj, "InternalIP")),
        Value::from(node_address(obj, "ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// The first address of that type, or `<none>`.
fn node_address<'a>(obj: &'a Value, address_type: &str) -> &'a str {
    list_at(obj, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == address_type)
        .map_or("<none>", |a| str_at(a, &["address"]))
}

pub(super) const NAMESPACE_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Status", "string", "The status of the namespace"),
    Column::age(),
];

pub(super) fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        Value::from(str_at(obj, &["status", "phase"])),
        age(obj, now),
    ]
}

pub(super) const EVENT_COLUMNS: &[Column] = &[
    Column::new("Last Seen", "string", docs::EVENT_LAST_TIMESTAMP),
    Column::new("Type", "string", docs::EVENT_TYPE),
    Column::new("Reason", "string", docs::EVENT_REASON),
    Column::new("Object", "string", docs::EVENT_INVOLVED_OBJECT),
    Column::new("Subobject", "string", docs::EVENT_FIELD_PATH).wide(),
    Column::new("Source", "string", docs::EVENT_SOURCE).wide(),
    Column::new("Message", "string", docs::EVENT_MESSAGE),
    Column::new("First Seen", "string", docs::EVENT_FIRST_TIMESTAMP).wide(),
    Column::new("Count", "string", docs::EVENT_COUNT).wide(),
    Column {
        priority: 1,
        ..Column::name()
    },
];

/// Field names of the two Event APIs, which the API server converts to one internal type.
struct EventFields {
    involved_object: &'static str,
    message: &'static str,
    source: &'static str,
    first_timestamp: &'static str,
    last_timestamp: &'static str,
    count: &'static str,
    reporting_controller: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    involved_object: "involvedObject",
    message: "message",
    source: "source",
    first_timestamp: "firstTimestamp",
    last_timestamp: "lastTimestamp",
    count: "count",
    reporting_controller: "reportingComponent",
};

const EVENTS_API_EVENT: EventFields = EventFields {
    involved_object: "regarding",
    message: "note",
    source: "deprecatedSource",
    first_timestamp: "deprecatedFirstTimestamp",
    last_timestamp: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    reporting_controller: "reportingController",
};

pub(super) fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
    let f = if str_at(obj, &["apiVersion"]).starts_with("events.k8s.io/") {
        &EVENTS_API_EVENT
    } else {
        &CORE_EVENT
    };

    let first_seen = match time_at(obj, &[f.first_timestamp]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(obj, &["eventTime"]), now),
    };
    let mut last_seen = match time_at(obj, &[f.last_timestamp]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(obj, &[f.count]);
    if let Some(series) = at(obj, &["series"]).filter(|s| s.is_object()) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }

    let kind = str_at(obj, &[f.involved_object, "kind"]).to_lowercase();
    let target = match str_at(obj, &[f.involved_object, "name"]) {
        "" => kind,
        involved => format!("{kind}/{involved}"),
    };
    let component = first_non_empty(
        str_at(obj, &[f.source, "component"]),
        str_at(obj, &[f.reporting_controller]),
    );
    let host = first_non_empty(
        str_at(obj, &[f.source, "host"]),
        str_at(obj, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };

    vec![
        Value::from(last_seen),
        Value::from(str_at(obj, &["type"])),
        Value::from(str_at(obj, &["reason"])),
        Value::from(target),
        Value::from(str_at(obj, &[f.involved_object, "fieldPath"])),
        Value::from(source),
        Value::from(str_at(obj, &[f.message]).trim()),
        Value::from(first_seen),
        Value::from(count),
        name(obj),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

pub(super) const CONFIG_MAP_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Data", "string", docs::CONFIG_MAP_DATA),
    Column::age(),
];

pub(super) fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
    vec![name(obj), Value::from(entries), age(obj, now)]
}

pub(super) const SECRET_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Type", "string", docs::SECRET_TYPE),
    Column::new("Data", "string", docs::SECRET_DATA),
    Column::age(),
];

pub(super) fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        Value::from(str_at(obj, &["type"])),
        Value::from(map_len(obj, &["data"])),
        age(obj, now),
    ]
}

pub(super) const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[Column::name(), Column::age()];

pub(super) fn service_account(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), age(obj, now)]
}

pub(super) const LEASE_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Holder", "string", docs::LEASE_HOLDER),
    Column::age(),
];

pub(super) fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        Value::from(str_at(obj, &["spec", "holderIdentity"])),
        age(obj, now),
    ]
}

const ROLE_BINDING_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Role", "string", docs::ROLE_BINDING_ROLE_REF),
    Column::age(),
    Column::new("Users", "string", "Users in the roleBinding").wide(),
    Column::new("Groups", "string", "Groups in the roleBinding").wide(),
    Column::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    )
    .wide(),
];

const CLUSTER_ROLE_BINDING_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Role", "string", docs::CLUSTER_ROLE_BINDING_ROLE_REF),
    Column::age(),
    Column::new("Users", "string", "Users in the clusterRoleBinding").wide(),
    Column::new("Groups", "string", "Groups in the clusterRoleBinding").wide(),
    Column::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    )
    .wide(),
];

pub(super) fn binding_columns(kind: &str) -> &'static [Column] {
    if kind == "ClusterRoleBinding" {
        CLUSTER_ROLE_BINDING_COLUMNS
    } else {
        ROLE_BINDING_COLUMNS
    }
}

/// RoleBinding and ClusterRoleBinding print alike.
pub(super) fn role_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let role_ref = format!(
        "{}/{}",
        str_at(obj, &["roleRef", "kind"]),
        str_at(obj, &["roleRef", "name"])
    );
    // rbac.SubjectsStrings; subjects of other kinds are not shown.
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list_at(obj, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]).to_owned();
        match str_at(subject, &["kind"]) {
            "ServiceAccount" => service_accounts.push(format!(
                "{}/{subject_name}",
                str_at(subject, &["namespace"])
            )),
            "User" => users.push(subject_name),
            "Group" => groups.push(subject_name),
            _ => {}
        }
    }
    vec![
        name(obj),
        Value::from(role_ref),
        age(obj, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(service_accounts.join(", ")),
    ]
}

pub(super) const PRIORITY_CLASS_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Value", "integer", docs::PRIORITY_CLASS_VALUE),
    Column::new(
        "Global-Default",
        "boolean",
        docs::PRIORITY_CLASS_GLOBAL_DEFAULT,
    ),
    Column::age(),
    Column::new(
        "PreemptionPolicy",
        "string",
        docs::PRIORITY_CLASS_PREEMPTION_POLICY,
    ),
];

pub(super) fn priority_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        Value::from(opt_int_at(obj, &["value"]).unwrap_or(0)),
        Value::from(bool_at(obj, &["globalDefault"])),
        age(obj, now),
        Value::from(str_at(obj, &["preemptionPolicy"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn ago(secs: i64) -> String {
        now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    }

    fn just_created() -> String {
        now()
            .checked_add(jiff::SignedDuration::from_millis(1900))
            .unwrap()
            .to_string()
    }

    const DAY: i64 = 86400;

    fn narrow(cells: Vec<Value>) -> Vec<Value> {
        cells[..5].to_vec()
    }

    fn strs<const N: usize>(cells: [&str; N]) -> Vec<Value> {
        cells.map(Value::from).to_vec()
    }

    #[test]
    fn node_status_shows_ready_and_scheduling_disabled() {
        // TestPrintNodeStatus.
        let ready = |status: &str| json!({"type": "Ready", "status": status});
        let cases = [
            ("foo1", false, json!([ready("True")]), "Ready"),
            (
                "foo2",
                true,
                json!([ready("True")]),
                "Ready,SchedulingDisabled",
            ),
            (
                "foo3",
                false,
                json!([ready("True"), ready("True")]),
                "Ready",
            ),
            ("foo4", false, json!([ready("False")]), "NotReady"),
            (
                "foo5",
                true,
                json!([ready("False")]),
                "NotReady,SchedulingDisabled",
            ),
            (
                "foo6",
                false,
                json!([{"type": "InvalidValue", "status": "True"}]),
                "Unknown",
            ),
            ("foo7", false, json!([{}]), "Unknown"),
            (
                "foo8",
                true,
                json!([{"type": "InvalidValue", "status": "True"}]),
                "Unknown,SchedulingDisabled",
            ),
            ("foo9", true, json!([{}]), "Unknown,SchedulingDisabled"),
            ("foo10", false, json!([ready("Unknown")]), "NotReady"),
        ];
        for (node_name, unschedulable, conditions, want) in cases {
            let n = json!({"metadata": {"name": node_name}, "spec": {"unschedulable": unschedulable},
                           "status": {"conditions": conditions}});
            assert_eq!(
                narrow(node(&n, now())),
                strs([node_name, want, "<none>", "<unknown>", ""])
            );
        }
    }

    #[test]
    fn node_roles_come_from_role_labels() {
        // TestPrintNodeRole.
        let n = json!({"metadata": {"name": "foo10", "labels": {
            "node-role.kubernetes.io/master": "", "node-role.kubernetes.io/control-plane": "",
            "node-role.kubernetes.io/proxy": "", "kubernetes.io/role": "node", "node-role.kubernetes.io/": "x"}}});
        assert_eq!(node(&n, now())[2], "control-plane,master,node,proxy");
        let n = json!({"metadata": {"name": "foo11", "labels": {"kubernetes.io/role": "node"}}});
        assert_eq!(node(&n, now())[2], "node");
        assert_eq!(
            node(&json!({"metadata": {"name": "foo9"}}), now())[2],
            "<none>"
        );
    }

    #[test]
    fn node_wide_cells_show_addresses_and_system_info() {
        // TestPrintNodeOSImage, TestPrintNodeKernelVersion, TestPrintNodeContainerRuntimeVersion,
        // TestPrintNodeInternalIP and TestPrintNodeExternalIP.
        let wide = |status: Value| {
            node(
                &json!({"metadata": {"name": "foo1"}, "status": status}),
                now(),
            )[5..]
                .to_vec()
        };
        let ext = json!([{"type": "ExternalIP", "address": "1.1.1.1"}]);
        assert_eq!(
            wide(json!({"nodeInfo": {"osImage": "fake-os-image"}, "addresses": ext})),
            strs([
                "<none>",
                "1.1.1.1",
                "fake-os-image",
                "<unknown>",
                "<unknown>"
            ])
        );
        assert_eq!(
            wide(json!({"nodeInfo": {"kernelVersion": "fake-kernel-version"}, "addresses": ext})),
            strs([
                "<none>",
                "1.1.1.1",
                "<unknown>",
                "fake-kernel-version",
                "<unknown>"
            ])
        );
        assert_eq!(
            wide(json!({"nodeInfo": {"containerRuntimeVersion": "foo://1.2.3"}, "addresses": ext})),
            strs(["<none>", "1.1.1.1", "<unknown>", "<unknown>", "foo://1.2.3"])
        );
        assert_eq!(
            wide(json!({"addresses": [{"type": "InternalIP", "address": "1.1.1.1"}]}))[..2],
            strs(["1.1.1.1", "<none>"])
        );
        assert_eq!(
            wide(
                json!({"addresses": [{"type": "ExternalIP", "address": "2.2.2.2"},
                                      {"type": "InternalIP", "address": "3.3.3.3"},
                                      {"type": "ExternalIP", "address": "4.4.4.4"}]})
            )[..2],
            strs(["3.3.3.3", "2.2.2.2"])
        );
    }

    #[test]
    fn a_kubelet_registered_node_prints_like_kubectl_get_nodes() {
        let n = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": ago(2 * DAY + 3 * 3600),
                         "labels": {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "node-1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}},
        });
        assert_eq!(
            node(&n, now()),
            strs([
                "node-1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "2d3h",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "containerd://1.7.13",
            ])
        );
    }

    #[test]
    fn namespaces_print_their_phase() {
        // TestPrintNamespace.
        let ns = json!({"metadata": {"name": "namespace1", "creationTimestamp": just_created()},
                        "status": {"phase": "FooStatus"}});
        assert_eq!(
            namespace(&ns, now()),
            strs(["namespace1", "FooStatus", "0s"])
        );
        assert_eq!(
            namespace(&json!({"metadata": {"name": "namespace2"}}), now()),
            strs(["namespace2", "", "<unknown>"])
        );
        let terminating = json!({"metadata": {"name": "old", "creationTimestamp": ago(5 * 365 * DAY)},
                                 "status": {"phase": "Terminating"}});
        assert_eq!(
            namespace(&terminating, now()),
            strs(["old", "Terminating", "5y"])
        );
    }

    fn core_event(name: &str, extra: Value) -> Value {
        let mut e = json!({
            "metadata": {"name": name},
            "source": {"component": "kubelet", "host": "Node1"},
            "involvedObject": {"kind": "Deployment", "name": "Deployment Name", "fieldPath": "spec.containers{foo}"},
            "reason": "Event Reason",
            "message": "Message Data",
            "type": "Warning",
        });
        if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
            e.extend(extra.clone());
        }
        e
    }

    fn event_row(last: &str, first: &str, count: i64, name: &str) -> Vec<Value> {
        vec![
            json!(last),
            json!("Warning"),
            json!("Event Reason"),
            json!("deployment/Deployment Name"),
            json!("spec.containers{foo}"),
            json!("kubelet, Node1"),
            json!("Message Data"),
            json!(first),
            json!(count),
            json!(name),
        ]
    }

    #[test]
    fn events_print_like_kubernetes_print_event() {
        // TestPrintEvent.
        let basic = json!({
            "metadata": {"name": "event1"},
            "source": {"component": "kubelet"},
            "involvedObject": {"kind": "Pod", "name": "Pod Name", "fieldPath": "spec.containers{foo}"},
            "reason": "Event Reason", "message": "Message Data",
            "firstTimestamp": ago(3 * DAY), "lastTimestamp": ago(2 * DAY), "count": 6, "type": "Normal",
        });
        assert_eq!(
            event(&basic, now()),
            [
                json!("2d"),
                json!("Normal"),
                json!("Event Reason"),
                json!("pod/Pod Name"),
                json!("spec.containers{foo}"),
                json!("kubelet"),
                json!("Message Data"),
                json!("3d"),
                json!(6),
                json!("event1")
            ]
        );
        let cases = [
            (
                core_event(
                    "event2",
                    json!({"firstTimestamp": ago(3 * DAY), "lastTimestamp": ago(2 * DAY), "count": 6}),
                ),
                event_row("2d", "3d", 6, "event2"),
            ),
            (
                core_event(
                    "event3",
                    json!({"eventTime": ago(3 * DAY), "lastTimestamp": ago(3 * DAY), "count": 1}),
                ),
                event_row("3d", "3d", 1, "event3"),
            ),
            (
                core_event(
                    "event4",
                    json!({"eventTime": ago(3 * DAY), "firstTimestamp": ago(3 * DAY), "count": 1}),
                ),
                event_row("3d", "3d", 1, "event4"),
            ),
            (
                core_event("event5", json!({"eventTime": ago(3 * DAY), "count": 1})),
                event_row("3d", "3d", 1, "event5"),
            ),
            (
                core_event(
                    "event6",
                    json!({"eventTime": ago(3 * DAY),
                                            "series": {"count": 2, "lastObservedTime": ago(2 * DAY)}}),
                ),
                event_row("2d", "3d", 2, "event6"),
            ),
            (
                core_event("event7", json!({"eventTime": ago(3 * DAY)})),
                event_row("3d", "3d", 1, "event7"),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(event(&e, now()), want, "{e}");
        }

        // Basic event, with empty Source: reportingComponent/reportingInstance stand in.
        let mut reported = core_event(
            "event2",
            json!({"firstTimestamp": ago(3 * DAY), "lastTimestamp": ago(2 * DAY), "count": 6,
                                                       "reportingComponent": "kubelet", "reportingInstance": "test"}),
        );
        reported["source"] = json!({});
        assert_eq!(event(&reported, now())[5], "kubelet, test");
    }

    #[test]
    fn events_from_the_events_api_print_the_same_columns() {
        let e = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17f", "namespace": "default"},
            "eventTime": ago(300), "reportingController": "default-scheduler", "reportingInstance": "sched-1",
            "action": "Binding", "reason": "Scheduled", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "note": "Successfully assigned default/web to node-1\n",
        });
        assert_eq!(
            event(&e, now()),
            [
                json!("5m"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web"),
                json!(""),
                json!("default-scheduler, sched-1"),
                json!("Successfully assigned default/web to node-1"),
                json!("5m"),
                json!(1),
                json!("web.17f")
            ]
        );
        let unnamed = json!({"involvedObject": {"kind": "Node"}});
        assert_eq!(
            event(&unnamed, now())[..4],
            [json!("<unknown>"), json!(""), json!(""), json!("node")]
        );
    }

    #[test]
    fn secrets_and_config_maps_count_their_data_keys() {
        // TestPrintSecret.
        let s = json!({"metadata": {"name": "secret1", "creationTimestamp": just_created()},
                       "type": "kubernetes.io/service-account-token", "data": {"token": "c2VjcmV0IGRhdGE="}});
        assert_eq!(
            secret(&s, now()),
            [
                json!("secret1"),
                json!("kubernetes.io/service-account-token"),
                json!(1),
                json!("0s")
            ]
        );
        let s = json!({"metadata": {"name": "secret1", "creationTimestamp": just_created()},
                       "type": "kubernetes.io/service-account-token"});
        assert_eq!(secret(&s, now())[2], 0);
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(90)},
                        "data": {"ca.crt": "..."}, "binaryData": {"blob": "AAE="}});
        assert_eq!(
            config_map(&cm, now()),
            [json!("kube-root-ca.crt"), json!(2), json!("90s")]
        );
    }

    #[test]
    fn service_accounts_and_leases_print_name_holder_and_age() {
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": just_created()}, "secrets": [{"name": "s"}]});
        assert_eq!(service_account(&sa, now()), strs(["default", "0s"]));
        let l = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(600)},
                       "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        assert_eq!(lease(&l, now()), strs(["node-1", "node-1", "10m"]));
        assert_eq!(
            lease(&json!({"metadata": {"name": "free"}}), now()),
            strs(["free", "", "<unknown>"])
        );
    }

    #[test]
    fn role_bindings_list_subjects_by_kind() {
        let rb = json!({
            "metadata": {"name": "read-pods", "creationTimestamp": ago(60)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [
                {"kind": "User", "name": "jane"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
                {"kind": "Other", "name": "x"}],
        });
        assert_eq!(
            role_binding(&rb, now()),
            strs([
                "read-pods",
                "Role/pod-reader",
                "60s",
                "jane, bob",
                "devs",
                "ci/builder"
            ])
        );
        assert_eq!(
            binding_columns("ClusterRoleBinding")[3].description,
            "Users in the clusterRoleBinding"
        );
    }

    #[test]
    fn priority_classes_print_value_and_global_default() {
        let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": ago(30 * DAY)},
                        "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            priority_class(&pc, now()),
            [
                json!("system-node-critical"),
                json!(2000001000),
                json!(false),
                json!("30d"),
                json!("PreemptLowerPriority")
            ]
        );
    }
}

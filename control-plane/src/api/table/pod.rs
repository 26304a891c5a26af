//! `printPod`: READY, the computed STATUS reason and RESTARTS with the time of the last restart.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::Value;

use super::format::{age, at, bool_at, int_at, list_at, name, opt_bool_at, since, str_at, time_at};
use super::{Column, docs};

pub(super) const COLUMNS: &[Column] = &[
    Column::name(),
    Column::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Column::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    Column::age(),
    Column::new("IP", "string", docs::POD_IP).wide(),
    Column::new("Node", "string", docs::POD_NODE_NAME).wide(),
    Column::new("Nominated Node", "string", docs::POD_NOMINATED_NODE_NAME).wide(),
    Column::new("Readiness Gates", "string", docs::POD_READINESS_GATES).wide(),
];

/// `node.NodeUnreachablePodReason`: set by the node lifecycle controller on pods of a lost node.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

pub(super) fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let status = at(pod, &["status"]).unwrap_or(&Value::Null);
    let init_specs = list_at(pod, &["spec", "initContainers"]);

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total_containers = list_at(pod, &["spec", "containers"]).len();
    let mut ready_containers = 0usize;
    // `None` plays Go's zero time, which sorts before every real time.
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_init_restart: Option<Timestamp> = None;

    let phase = str_at(status, &["phase"]);
    let mut reason = match str_at(status, &["reason"]) {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    for condition in list_at(status, &["conditions"]) {
        if str_at(condition, &["type"]) == "PodScheduled"
            && str_at(condition, &["reason"]) == "SchedulingGated"
        {
            reason = "SchedulingGated".to_owned();
        }
    }

    // Later entries win on duplicate names, as with Go's map assignment.
    let mut init_by_name: HashMap<&str, &Value> = HashMap::new();
    for container in init_specs {
        init_by_name.insert(str_at(container, &["name"]), container);
        if is_restartable(Some(container)) {
            total_containers += 1;
        }
    }

    let mut initializing = false;
    for (i, container) in list_at(status, &["initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts = restarts.saturating_add(int_at(container, &["restartCount"]));
        let finished = last_finished_at(container);
        last_restart = last_restart.max(finished);
        let restartable = is_restartable(init_by_name.get(str_at(container, &["name"])).copied());
        if restartable {
            restartable_init_restarts =
                restartable_init_restarts.saturating_add(int_at(container, &["restartCount"]));
            last_restartable_init_restart = last_restartable_init_restart.max(finished);
        }

        let terminated = at(container, &["state", "terminated"]);
        let waiting_reason = at(container, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if restartable && opt_bool_at(container, &["started"]) == Some(true) {
            if bool_at(container, &["ready"]) {
                ready_containers += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            // Initialization failed.
            match str_at(t, &["reason"]) {
                "" if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                "" => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
                r => format!("Init:{r}"),
            }
        } else if let Some(r) = waiting_reason.filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || is_pod_initialized(status) {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        let mut error_reason = String::new();
        for container in list_at(status, &["containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(int_at(container, &["restartCount"]));
            last_restart = last_restart.max(last_finished_at(container));

            let waiting_reason =
                at(container, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r.to_owned();
            } else if let Some(t) = at(container, &["state", "terminated"]) {
                reason = match str_at(t, &["reason"]) {
                    "" if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    "" => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                    r => r.to_owned(),
                };
                if int_at(t, &["exitCode"]) != 0 {
                    error_reason.clone_from(&reason);
                }
            } else if bool_at(container, &["ready"])
                && at(container, &["state", "running"]).is_some()
            {
                has_running = true;
                ready_containers += 1;
            }
        }

        // A pod whose last-listed container completed is still Running while another one runs.
        if reason == "Completed" {
            if has_running && has_ready_condition(status) {
                reason = "Running".to_owned();
            } else if !error_reason.is_empty() {
                reason = error_reason;
            } else if has_running {
                reason = "NotReady".to_owned();
            }
        }
    }

    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some();
    if deleting && str_at(status, &["reason"]) == NODE_UNREACHABLE_POD_REASON {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match last_restart {
        Some(last) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(last), now)),
        _ => restarts.to_string(),
    };

    vec![
        name(pod),
        Value::from(format!("{ready_containers}/{total_containers}")),
        Value::from(reason),
        Value::from(restarts_cell),
        age(pod, now),
        Value::from(or_none(pod_ip(status))),
        Value::from(or_none(str_at(pod, &["spec", "nodeName"]))),
        Value::from(or_none(str_at(status, &["nominatedNodeName"]))),
        Value::from(readiness_gates(pod, status)),
    ]
}

/// `podutil.IsRestartableInitContainer`: a sidecar, i.e. an init container with restartPolicy Always.
fn is_restartable(container: Option<&Value>) -> bool {
    container.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

/// When the previous run of a container ended (`lastState.terminated.finishedAt`).
fn last_finished_at(container_status: &Value) -> Option<Timestamp> {
    time_at(container_status, &["lastState", "terminated", "finishedAt"])
}

fn condition_is_true(status: &Value, condition_type: &str) -> bool {
    list_at(status, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == condition_type)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn is_pod_initialized(status: &Value) -> bool {
    condition_is_true(status, "Initialized")
}

/// `hasPodReadyCondition` looks at every Ready condition, not only the first.
fn has_ready_condition(status: &Value) -> bool {
    list_at(status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True")
}

fn pod_ip(status: &Value) -> &str {
    // The v1 API mirrors podIP into podIPs[0]; stored objects may carry only one of them.
    match list_at(status, &["podIPs"]).first() {
        Some(first) => str_at(first, &["ip"]),
        None => str_at(status, &["podIP"]),
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// READINESS GATES: how many of the pod's readiness gates have a True condition, as "n/m".
fn readiness_gates(pod: &Value, status: &Value) -> String {
    let gates = list_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let passing = gates
        .iter()
        .filter(|gate| condition_is_true(status, str_at(gate, &["conditionType"])))
        .count();
    format!("{passing}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    /// RFC 3339 time `secs` seconds before `now()`.
    fn ago(secs: i64) -> String {
        now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    }

    fn running(ready: bool, restarts: i64) -> Value {
        json!({"ready": ready, "restartCount": restarts, "state": {"running": {}}})
    }

    fn restarted(mut status: Value, secs_ago: i64) -> Value {
        status["lastState"] = json!({"terminated": {"finishedAt": ago(secs_ago)}});
        status
    }

    /// A pod with `containers` nameless containers and the given status.
    fn pod(name: &str, containers: usize, init: usize, status: Value) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {"containers": vec![json!({}); containers], "initContainers": vec![json!({}); init]},
            "status": status,
        })
    }

    /// Pod cells without the wide ones.
    fn row(p: &Value) -> Vec<Value> {
        cells(p, now())[..5].to_vec()
    }

    fn expect(name: &str, ready: &str, status: &str, restarts: &str) -> Vec<Value> {
        [name, ready, status, restarts, "<unknown>"]
            .map(Value::from)
            .to_vec()
    }

    #[test]
    fn pod_status_follows_the_kubernetes_print_pod_cases() {
        // TestPrintPod in pkg/printers/internalversion/printers_test.go.
        let cases = vec![
            (
                pod(
                    "test1",
                    2,
                    0,
                    json!({"phase": "podPhase", "containerStatuses": [running(true, 3), {"restartCount": 3}]}),
                ),
                expect("test1", "1/2", "podPhase", "6"),
            ),
            (
                pod(
                    "test2",
                    2,
                    0,
                    json!({"phase": "podPhase", "containerStatuses": [
                    running(true, 3),
                    {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]}),
                ),
                expect("test2", "1/2", "ContainerWaitingReason", "6"),
            ),
            (
                pod(
                    "test3",
                    2,
                    0,
                    json!({"phase": "podPhase", "containerStatuses": [
                    {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3},
                    {"state": {"terminated": {"reason": "ContainerTerminatedReason"}}, "restartCount": 3}]}),
                ),
                expect("test3", "0/2", "ContainerWaitingReason", "6"),
            ),
            (
                pod(
                    "test4",
                    2,
                    0,
                    json!({"phase": "podPhase", "containerStatuses": [
                    running(true, 3), {"ready": true, "restartCount": 3}]}),
                ),
                expect("test4", "1/2", "podPhase", "6"),
            ),
            (
                pod(
                    "test5",
                    2,
                    0,
                    json!({"reason": "podReason", "phase": "podPhase", "containerStatuses": [
                    running(true, 3), {"ready": true, "restartCount": 3}]}),
                ),
                expect("test5", "1/2", "podReason", "6"),
            ),
            (
                pod(
                    "test6",
                    2,
                    0,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                    running(true, 3)]}),
                ),
                expect("test6", "1/2", "NotReady", "6"),
            ),
            (
                pod(
                    "test6",
                    2,
                    0,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                    running(true, 3)],
                    "conditions": [{"type": "Ready", "status": "True"}]}),
                ),
                expect("test6", "1/2", "Running", "6"),
            ),
            (
                pod(
                    "test7",
                    1,
                    1,
                    json!({"phase": "podPhase",
                    "initContainerStatuses": [restarted(running(false, 3), 10)],
                    "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}]}),
                ),
                expect("test7", "0/1", "Init:0/1", "3 (10s ago)"),
            ),
            (
                pod(
                    "test8",
                    1,
                    2,
                    json!({"phase": "podPhase",
                    "initContainerStatuses": [restarted(running(false, 3), 10), {"state": {"waiting": {}}}],
                    "containerStatuses": [{"state": {"waiting": {}}}]}),
                ),
                expect("test8", "0/1", "Init:0/2", "3 (10s ago)"),
            ),
            (
                pod(
                    "test9",
                    1,
                    2,
                    json!({"phase": "podPhase",
                    "initContainerStatuses": [{"state": {"terminated": {}}}, restarted(running(false, 3), 10)],
                    "containerStatuses": [{"state": {"waiting": {}}}]}),
                ),
                expect("test9", "0/1", "Init:1/2", "3 (10s ago)"),
            ),
            (
                pod(
                    "test10",
                    1,
                    2,
                    json!({"phase": "podPhase",
                    "initContainerStatuses": [
                        restarted(json!({"restartCount": 2, "state": {"terminated": {}}}), 120),
                        restarted(running(false, 3), 10)],
                    "containerStatuses": [{"state": {"waiting": {}}}]}),
                ),
                expect("test10", "0/1", "Init:1/2", "5 (10s ago)"),
            ),
            (
                pod(
                    "test11",
                    1,
                    1,
                    json!({"phase": "Running",
                    "initContainerStatuses": [restarted(json!({"restartCount": 2, "state": {"terminated": {}}}), 120)],
                    "containerStatuses": [restarted(running(false, 4), 20)]}),
                ),
                expect("test11", "0/1", "Running", "4 (20s ago)"),
            ),
            (
                pod(
                    "test12",
                    1,
                    0,
                    json!({"phase": "Running",
                    "containerStatuses": [restarted(running(true, 3), 5 * 86400)]}),
                ),
                expect("test12", "1/1", "Running", "3 (5d ago)"),
            ),
            (
                pod(
                    "test13",
                    2,
                    0,
                    json!({"phase": "Running",
                    "containerStatuses": [running(true, 0), restarted(running(true, 3), 10 * 86400)]}),
                ),
                expect("test13", "2/2", "Running", "3 (10d ago)"),
            ),
            (
                pod(
                    "test14",
                    2,
                    0,
                    json!({"phase": "Running", "containerStatuses": [
                    restarted(running(true, 6), 5 * 86400), restarted(running(true, 3), 20 * 86400)]}),
                ),
                expect("test14", "2/2", "Running", "9 (5d ago)"),
            ),
            (
                pod(
                    "test15",
                    2,
                    0,
                    json!({"phase": "podPhase", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                expect("test15", "0/2", "SchedulingGated", "0"),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(row(&p), want, "{p}");
        }
    }

    fn sidecar_pod(
        name: &str,
        phase: &str,
        init_statuses: Value,
        statuses: Value,
        initialized: &str,
    ) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {
                "initContainers": [
                    {"name": "restartable-init-1", "restartPolicy": "Always"},
                    {"name": "restartable-init-2", "restartPolicy": "Always"}],
                "containers": [{}]},
            "status": {"phase": phase, "initContainerStatuses": init_statuses, "containerStatuses": statuses,
                       "conditions": [{"type": "Initialized", "status": initialized}]},
        })
    }

    #[test]
    fn sidecar_containers_count_towards_ready_and_restarts_like_kubernetes() {
        // TestPrintPodWithRestartableInitContainer.
        let waiting = json!({"ready": false, "restartCount": 0, "state": {"waiting": {}}});
        let cases = vec![
            (
                sidecar_pod(
                    "test1",
                    "Pending",
                    json!([
                        restarted(json!({"name": "restartable-init-1", "restartCount": 3, "state": {"running": {}}, "started": false}), 10),
                        {"name": "restartable-init-2", "state": {"waiting": {}}, "started": false}]),
                    json!([waiting]),
                    "False",
                ),
                expect("test1", "0/3", "Init:0/2", "3 (10s ago)"),
            ),
            (
                sidecar_pod(
                    "test1",
                    "Pending",
                    json!([
                        restarted(json!({"name": "restartable-init-1", "restartCount": 3, "state": {"running": {}}, "started": true}), 10),
                        {"name": "restartable-init-2", "state": {"running": {}}, "started": false}]),
                    json!([waiting]),
                    "False",
                ),
                expect("test1", "0/3", "Init:1/2", "3 (10s ago)"),
            ),
            (
                sidecar_pod(
                    "test2",
                    "Running",
                    json!([
                        restarted(json!({"name": "restartable-init-1", "restartCount": 3, "state": {"running": {}}, "started": true}), 10),
                        {"name": "restartable-init-2", "state": {"running": {}}, "started": true}]),
                    json!([restarted(running(true, 4), 20)]),
                    "True",
                ),
                expect("test2", "1/3", "Running", "7 (10s ago)"),
            ),
            (
                sidecar_pod(
                    "test3",
                    "Succeeded",
                    json!([
                        restarted(json!({"name": "restartable-init-1", "restartCount": 3,
                            "state": {"terminated": {"reason": "Error", "exitCode": 137}}, "started": false}), 10),
                        {"name": "restartable-init-2", "state": {"terminated": {"reason": "Error", "exitCode": 137}}, "started": false}]),
                    json!([restarted(
                        json!({"restartCount": 4, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}),
                        20
                    )]),
                    "True",
                ),
                expect("test3", "0/3", "Completed", "7 (10s ago)"),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(row(&p), want, "{p}");
        }
    }

    #[test]
    fn statuses_for_containers_missing_from_the_spec_are_tolerated() {
        // TestPrintPodWithRestartableInitContainer, last case.
        let p = json!({
            "metadata": {"name": "test4"},
            "spec": {
                "initContainers": [{"name": "init1", "image": "initimage"},
                                   {"name": "sidecar1", "image": "sidecarimage", "restartPolicy": "Always"}],
                "containers": [{"name": "container1", "image": "containerimage"}]},
            "status": {"phase": "Running",
                       "initContainerStatuses": [{"name": "initinvalid"}, {"name": "init1"}, {"name": "sidecar1"}],
                       "containerStatuses": [{"name": "containerinvalid"}, {"name": "container1"}]},
        });
        assert_eq!(row(&p), expect("test4", "0/2", "Init:0/2", "0"));
    }

    #[test]
    fn wide_cells_show_ip_node_nominated_node_and_readiness_gates() {
        // TestPrintPodwide.
        let gated = |ips: Value| {
            json!({
                "metadata": {"name": "test1"},
                "spec": {"containers": [{}, {}], "nodeName": "test1",
                         "readinessGates": [{"conditionType": "condition1"}, {"conditionType": "condition2"},
                                            {"conditionType": "condition3"}]},
                "status": {"conditions": [{"type": "condition1", "status": "False"},
                                          {"type": "condition2", "status": "True"}],
                           "phase": "podPhase", "podIPs": ips,
                           "containerStatuses": [running(true, 3), {"restartCount": 3}],
                           "nominatedNodeName": "node1"},
            })
        };
        let want = [
            "test1",
            "1/2",
            "podPhase",
            "6",
            "<unknown>",
            "1.1.1.1",
            "test1",
            "node1",
            "1/3",
        ]
        .map(Value::from);
        assert_eq!(cells(&gated(json!([{"ip": "1.1.1.1"}])), now()), want);
        assert_eq!(
            cells(
                &gated(json!([{"ip": "1.1.1.1"}, {"ip": "2001:db8::"}])),
                now()
            ),
            want
        );

        let bare = json!({
            "metadata": {"name": "test2"},
            "spec": {"containers": [{}, {}], "nodeName": ""},
            "status": {"phase": "podPhase", "containerStatuses": [
                running(true, 3), {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]},
        });
        assert_eq!(
            cells(&bare, now()),
            [
                "test2",
                "1/2",
                "ContainerWaitingReason",
                "6",
                "<unknown>",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]
            .map(Value::from)
        );
        let legacy_ip = json!({"metadata": {"name": "p"}, "status": {"podIP": "10.0.0.9"}});
        assert_eq!(cells(&legacy_ip, now())[5], "10.0.0.9");
    }

    #[test]
    fn pod_phase_is_printed_for_pods_not_being_terminated() {
        // TestPrintNonTerminatedPod.
        for phase in ["Running", "Pending", "Unknown", "Succeeded", "Failed"] {
            let p = pod(
                "p",
                2,
                0,
                json!({"phase": phase, "containerStatuses": [running(true, 3), {"restartCount": 3}]}),
            );
            assert_eq!(row(&p), expect("p", "1/2", phase, "6"));
        }
    }

    /// A realistic single-container pod in `state`, created 90s ago.
    fn kubelet_pod(state: Value, ready: bool, restarts: i64) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-7d4b9c8f5-x2x9k", "namespace": "default", "creationTimestamp": ago(90)},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}], "nodeName": "node-1"},
            "status": {"phase": "Pending", "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
                       "containerStatuses": [{"name": "web", "image": "nginx:1.27", "ready": ready,
                                              "restartCount": restarts, "state": state}]},
        })
    }

    #[test]
    fn container_states_surface_as_the_pod_status() {
        let cases = [
            (
                json!({"waiting": {"reason": "ContainerCreating"}}),
                "ContainerCreating",
            ),
            (
                json!({"waiting": {"reason": "ErrImagePull", "message": "pull failed"}}),
                "ErrImagePull",
            ),
            (
                json!({"waiting": {"reason": "ImagePullBackOff"}}),
                "ImagePullBackOff",
            ),
            (
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                "CrashLoopBackOff",
            ),
            (
                json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
                "OOMKilled",
            ),
            (
                json!({"terminated": {"reason": "Completed", "exitCode": 0}}),
                "Completed",
            ),
            (
                json!({"terminated": {"reason": "Error", "exitCode": 1}}),
                "Error",
            ),
            (json!({"terminated": {"exitCode": 2}}), "ExitCode:2"),
            (
                json!({"terminated": {"exitCode": 137, "signal": 9}}),
                "Signal:9",
            ),
            // An empty waiting reason leaves the phase in place.
            (json!({"waiting": {}}), "Pending"),
        ];
        for (state, want) in cases {
            let p = kubelet_pod(state, false, 0);
            assert_eq!(cells(&p, now())[2], want, "{p}");
            assert_eq!(cells(&p, now())[4], "90s");
        }
    }

    #[test]
    fn a_crash_looping_container_shows_restarts_with_the_last_restart_time() {
        let mut p = kubelet_pod(json!({"waiting": {"reason": "CrashLoopBackOff"}}), false, 3);
        p["status"]["containerStatuses"][0]["lastState"] =
            json!({"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": ago(12)}});
        assert_eq!(
            cells(&p, now()),
            [
                "web-7d4b9c8f5-x2x9k",
                "0/1",
                "CrashLoopBackOff",
                "3 (12s ago)",
                "90s",
                "10.244.1.7",
                "node-1",
                "<none>",
                "<none>"
            ]
            .map(Value::from)
        );
        // Without a finish time only the count is known.
        p["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 1}});
        assert_eq!(cells(&p, now())[3], "3");
    }

    #[test]
    fn failed_init_containers_show_an_init_prefixed_reason() {
        let init = |state: Value| {
            json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i"}], "containers": [{}]},
                   "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": state}]}})
        };
        let cases = [
            (
                json!({"terminated": {"reason": "Error", "exitCode": 1}}),
                "Init:Error",
            ),
            (json!({"terminated": {"exitCode": 3}}), "Init:ExitCode:3"),
            (
                json!({"terminated": {"exitCode": 3, "signal": 15}}),
                "Init:Signal:15",
            ),
            (
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                "Init:CrashLoopBackOff",
            ),
            (
                json!({"waiting": {"reason": "PodInitializing"}}),
                "Init:0/1",
            ),
            (json!({"running": {}}), "Init:0/1"),
            (
                json!({"terminated": {"reason": "Completed", "exitCode": 0}}),
                "Pending",
            ),
        ];
        for (state, want) in cases {
            assert_eq!(cells(&init(state.clone()), now())[2], want, "{state}");
        }
    }

    #[test]
    fn deleted_pods_show_terminating_unless_finished_or_on_a_lost_node() {
        let deleting = |phase: &str, reason: Option<&str>| {
            let mut p = kubelet_pod(json!({"running": {}}), true, 0);
            p["metadata"]["deletionTimestamp"] = json!(ago(5));
            p["status"]["phase"] = json!(phase);
            if let Some(r) = reason {
                p["status"]["reason"] = json!(r);
            }
            cells(&p, now())[2].clone()
        };
        assert_eq!(deleting("Running", None), "Terminating");
        assert_eq!(deleting("Pending", None), "Terminating");
        assert_eq!(deleting("Running", Some("NodeLost")), "Unknown");
        assert_eq!(deleting("Succeeded", None), "Succeeded");
        assert_eq!(deleting("Failed", None), "Failed");
    }

    #[test]
    fn a_running_ready_pod_prints_like_kubectl_get_pods() {
        let mut p = kubelet_pod(json!({"running": {"startedAt": ago(80)}}), true, 0);
        p["status"]["phase"] = json!("Running");
        assert_eq!(
            cells(&p, now()),
            [
                "web-7d4b9c8f5-x2x9k",
                "1/1",
                "Running",
                "0",
                "90s",
                "10.244.1.7",
                "node-1",
                "<none>",
                "<none>"
            ]
            .map(Value::from)
        );
    }
}

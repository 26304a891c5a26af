//! Printers for workload controllers: Deployment, ReplicaSet, ReplicationController, DaemonSet,
//! StatefulSet, Job, CronJob and ControllerRevision.

use jiff::Timestamp;
use serde_json::Value;

use super::format::{
    age, at, format_label_selector, format_labels, human, int_at, label_selector_string, list_at,
    name, opt_bool_at, opt_int_at, since, str_at, template_container_cells, time_at,
};
use super::{CONTAINERS_DESC, Column, IMAGES_DESC, docs};

/// `spec.replicas` as the API server stores it: the v1 default of 1 applies when it is unset.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// CONTAINERS, IMAGES and SELECTOR (a `metav1.LabelSelector` at `spec.selector`).
fn template_cells(obj: &Value, template: &[&str], selector: &[&str]) -> [Value; 3] {
    let [names, images] = template_container_cells(obj, template);
    [
        names,
        images,
        Value::from(format_label_selector(at(obj, selector))),
    ]
}

pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Ready", "string", "Number of the pod with ready state"),
    Column::new("Up-to-date", "string", docs::DEPLOY_UPDATED),
    Column::new("Available", "string", docs::DEPLOY_AVAILABLE),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
    Column::new("Selector", "string", docs::DEPLOY_SELECTOR).wide(),
];

pub(super) fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ready = int_at(obj, &["status", "readyReplicas"]);
    let [names, images] = template_container_cells(obj, &["spec", "template"]);
    // printDeployment uses the raw selector string, "<invalid>" when it does not parse.
    let selector = label_selector_string(at(obj, &["spec", "selector"]))
        .unwrap_or_else(|| "<invalid>".to_owned());
    vec![
        name(obj),
        Value::from(format!("{ready}/{}", desired_replicas(obj))),
        Value::from(int_at(obj, &["status", "updatedReplicas"])),
        Value::from(int_at(obj, &["status", "availableReplicas"])),
        age(obj, now),
        names,
        images,
        Value::from(selector),
    ]
}

pub(super) const REPLICA_SET_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Desired", "integer", docs::RS_SPEC_REPLICAS),
    Column::new("Current", "integer", docs::RS_STATUS_REPLICAS),
    Column::new("Ready", "integer", docs::RS_STATUS_READY),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
    Column::new("Selector", "string", docs::RS_SPEC_SELECTOR).wide(),
];

pub(super) fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        name(obj),
        Value::from(desired_replicas(obj)),
        Value::from(int_at(obj, &["status", "replicas"])),
        Value::from(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
    ];
    cells.extend(template_cells(
        obj,
        &["spec", "template"],
        &["spec", "selector"],
    ));
    cells
}

pub(super) const RC_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Desired", "integer", docs::RC_SPEC_REPLICAS),
    Column::new("Current", "integer", docs::RC_STATUS_REPLICAS),
    Column::new("Ready", "integer", docs::RC_STATUS_READY),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
    Column::new("Selector", "string", docs::RC_SPEC_SELECTOR).wide(),
];

pub(super) fn replication_controller(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = template_container_cells(obj, &["spec", "template"]);
    vec![
        name(obj),
        Value::from(desired_replicas(obj)),
        Value::from(int_at(obj, &["status", "replicas"])),
        Value::from(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
        names,
        images,
        // A replication controller selects by a plain label map.
        Value::from(format_labels(at(obj, &["spec", "selector"]))),
    ]
}

pub(super) const DAEMON_SET_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Desired", "integer", docs::DS_DESIRED),
    Column::new("Current", "integer", docs::DS_CURRENT),
    Column::new("Ready", "integer", docs::DS_READY),
    Column::new("Up-to-date", "integer", docs::DS_UPDATED),
    Column::new("Available", "integer", docs::DS_AVAILABLE),
    Column::new("Node Selector", "string", docs::POD_NODE_SELECTOR),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
    Column::new("Selector", "string", docs::DS_SELECTOR).wide(),
];

pub(super) fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let status = |field: &str| Value::from(int_at(obj, &["status", field]));
    let mut cells = vec![
        name(obj),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        Value::from(format_labels(at(
            obj,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(obj, now),
    ];
    cells.extend(template_cells(
        obj,
        &["spec", "template"],
        &["spec", "selector"],
    ));
    cells
}

pub(super) const STATEFUL_SET_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Ready", "string", "Number of the pod with ready state"),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
];

pub(super) fn stateful_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = template_container_cells(obj, &["spec", "template"]);
    let ready = int_at(obj, &["status", "readyReplicas"]);
    vec![
        name(obj),
        Value::from(format!("{ready}/{}", desired_replicas(obj))),
        age(obj, now),
        names,
        images,
    ]
}

pub(super) const JOB_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Status", "string", "Status of the job."),
    Column::new("Completions", "string", docs::JOB_SUCCEEDED),
    Column::new("Duration", "string", "Time required to complete the job."),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
    Column::new("Selector", "string", docs::JOB_SELECTOR).wide(),
];

/// `hasJobCondition`: the first condition of that type decides.
fn has_job_condition(obj: &Value, condition_type: &str) -> bool {
    list_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == condition_type)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

pub(super) fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match opt_int_at(obj, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(obj, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(obj, &["status", "startTime"]),
        time_at(obj, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human(now.duration_since(start)),
        (Some(start), Some(end)) => human(end.duration_since(start)),
    };
    let status = if has_job_condition(obj, "Complete") {
        "Complete"
    } else if has_job_condition(obj, "Failed") {
        "Failed"
    } else if at(obj, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has_job_condition(obj, "Suspended") {
        "Suspended"
    } else if has_job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else if has_job_condition(obj, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let mut cells = vec![
        name(obj),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        age(obj, now),
    ];
    cells.extend(template_cells(
        obj,
        &["spec", "template"],
        &["spec", "selector"],
    ));
    cells
}

pub(super) const CRON_JOB_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Schedule", "string", docs::CRON_SCHEDULE),
    Column::new("Timezone", "string", docs::CRON_TIME_ZONE),
    Column::new("Suspend", "boolean", docs::CRON_SUSPEND),
    Column::new("Active", "integer", docs::CRON_ACTIVE),
    Column::new("Last Schedule", "string", docs::CRON_LAST_SCHEDULE),
    Column::age(),
    Column::new("Containers", "string", CONTAINERS_DESC).wide(),
    Column::new("Images", "string", IMAGES_DESC).wide(),
    Column::new("Selector", "string", docs::JOB_SELECTOR).wide(),
];

pub(super) fn cron_job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match time_at(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_owned(),
    };
    let time_zone = at(obj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    // printBoolPtr: the Suspend column is typed boolean but its cell is a string.
    let suspend = match opt_bool_at(obj, &["spec", "suspend"]) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let template = ["spec", "jobTemplate", "spec", "template"];
    let selector = ["spec", "jobTemplate", "spec", "selector"];
    let mut cells = vec![
        name(obj),
        Value::from(str_at(obj, &["spec", "schedule"])),
        Value::from(time_zone),
        Value::from(suspend),
        Value::from(list_at(obj, &["status", "active"]).len()),
        Value::from(last_schedule),
        age(obj, now),
    ];
    cells.extend(template_cells(obj, &template, &selector));
    cells
}

pub(super) const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    Column::name(),
    Column::new("Controller", "string", "Controller of the object"),
    Column::new("Revision", "string", docs::CONTROLLER_REVISION_REVISION),
    Column::age(),
];

pub(super) fn controller_revision(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| at(r, &["controller"]).and_then(Value::as_bool) == Some(true))
        .map_or_else(|| "<none>".to_owned(), controller_name);
    vec![
        name(obj),
        Value::from(controller),
        Value::from(int_at(obj, &["revision"])),
        age(obj, now),
    ]
}

/// `formatResourceName` with kind: "kind.group/name" in lower case, e.g. "daemonset.apps/fluentd".
fn controller_name(owner: &Value) -> String {
    let kind = str_at(owner, &["kind"]);
    let api_version = str_at(owner, &["apiVersion"]);
    let group = match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    };
    let name = str_at(owner, &["name"]);
    let group_kind = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    if group_kind.is_empty() {
        return name.to_owned();
    }
    format!("{}/{name}", group_kind.to_lowercase())
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

    /// Kubernetes' tests create objects 1.9s in the future, which prints as "0s".
    fn just_created() -> String {
        now()
            .checked_add(jiff::SignedDuration::from_millis(1900))
            .unwrap()
            .to_string()
    }

    fn two_containers(prefix: &str) -> Value {
        json!({"spec": {"containers": [
            {"name": format!("fake-{prefix}container1"), "image": format!("fake-{prefix}image1")},
            {"name": format!("fake-{prefix}container2"), "image": format!("fake-{prefix}image2")}]}})
    }

    fn strs(cells: &[&str]) -> Vec<Value> {
        cells.iter().map(|s| Value::from(*s)).collect()
    }

    #[test]
    fn deployment_prints_ready_of_desired_and_the_wide_template_cells() {
        // TestPrintDeployment.
        let d = json!({
            "metadata": {"name": "test1", "creationTimestamp": just_created()},
            "spec": {"replicas": 5, "template": two_containers(""), "selector": {"matchLabels": {"foo": "bar"}}},
            "status": {"replicas": 10, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 4},
        });
        assert_eq!(
            deployment(&d, now()),
            [
                json!("test1"),
                json!("0/5"),
                json!(2),
                json!(1),
                json!("0s"),
                json!("fake-container1,fake-container2"),
                json!("fake-image1,fake-image2"),
                json!("foo=bar"),
            ]
        );
    }

    #[test]
    fn a_rolled_out_deployment_prints_like_kubectl_get_deployments() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(3 * 86400 + 4 * 3600)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3},
        });
        assert_eq!(
            deployment(&d, now()),
            [
                json!("web"),
                json!("3/3"),
                json!(3),
                json!(3),
                json!("3d4h"),
                json!("nginx"),
                json!("nginx:1.27"),
                json!("app=web")
            ]
        );
        let unset = json!({"metadata": {"name": "fresh"}, "spec": {}});
        assert_eq!(deployment(&unset, now())[1], "0/1");
    }

    #[test]
    fn replica_sets_print_desired_current_ready_and_label_selector() {
        let rs = json!({
            "metadata": {"name": "web-7d4b9c8f5", "creationTimestamp": ago(600)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c8f5"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                          {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2},
        });
        assert_eq!(
            replica_set(&rs, now()),
            [
                json!("web-7d4b9c8f5"),
                json!(3),
                json!(3),
                json!(2),
                json!("10m"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=web,pod-template-hash=7d4b9c8f5"),
            ]
        );
        let empty = json!({"metadata": {"name": "x"}, "spec": {"replicas": 0}});
        assert_eq!(
            replica_set(&empty, now())[1..],
            [
                json!(0),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn replication_controllers_print_their_map_selector() {
        let rc = json!({
            "metadata": {"name": "rc1"},
            "spec": {"replicas": 2, "selector": {"app": "a"}, "template": two_containers("")},
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        assert_eq!(
            replication_controller(&rc, now()),
            [
                json!("rc1"),
                json!(2),
                json!(2),
                json!(1),
                json!("<unknown>"),
                json!("fake-container1,fake-container2"),
                json!("fake-image1,fake-image2"),
                json!("app=a")
            ]
        );
    }

    #[test]
    fn daemon_sets_print_scheduling_counts_and_node_selector() {
        // TestPrintDaemonSet.
        let ds = json!({
            "metadata": {"name": "test1", "creationTimestamp": just_created()},
            "spec": {"template": two_containers(""), "selector": {"matchLabels": {"foo": "bar"}}},
            "status": {"currentNumberScheduled": 2, "desiredNumberScheduled": 3, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 0},
        });
        assert_eq!(
            daemon_set(&ds, now()),
            [
                json!("test1"),
                json!(3),
                json!(2),
                json!(1),
                json!(2),
                json!(0),
                json!("<none>"),
                json!("0s"),
                json!("fake-container1,fake-container2"),
                json!("fake-image1,fake-image2"),
                json!("foo=bar"),
            ]
        );
        let pinned = json!({"metadata": {"name": "ds"},
                            "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}});
        assert_eq!(daemon_set(&pinned, now())[6], "kubernetes.io/os=linux");
    }

    #[test]
    fn stateful_sets_print_ready_of_desired() {
        let ss = json!({
            "metadata": {"name": "db", "creationTimestamp": ago(45)},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}}},
            "status": {"readyReplicas": 2},
        });
        assert_eq!(
            stateful_set(&ss, now()),
            strs(&["db", "2/3", "45s", "pg", "postgres:16"])
        );
    }

    #[test]
    fn jobs_print_status_completions_and_duration() {
        // TestPrintJob, with the Status column of current Kubernetes.
        let base = json!({
            "metadata": {"name": "job1", "creationTimestamp": just_created()},
            "spec": {"completions": 2, "template": two_containers("job-"),
                     "selector": {"matchLabels": {"job-label": "job-lable-value"}}},
            "status": {"succeeded": 1},
        });
        assert_eq!(
            job(&base, now()),
            strs(&[
                "job1",
                "Running",
                "1/2",
                "",
                "0s",
                "fake-job-container1,fake-job-container2",
                "fake-job-image1,fake-job-image2",
                "job-label=job-lable-value"
            ])
        );

        let mut parallel = base.clone();
        parallel["spec"] = json!({"parallelism": 2});
        parallel["status"] = json!({"succeeded": 0, "startTime": ago(600)});
        assert_eq!(
            job(&parallel, now())[1..4],
            strs(&["Running", "0/1 of 2", "10m"])
        );

        let mut done = base.clone();
        done["status"] = json!({"succeeded": 2, "startTime": ago(3600), "completionTime": ago(3600 - 200),
                                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                               {"type": "Complete", "status": "True"}]});
        assert_eq!(job(&done, now())[1..4], strs(&["Complete", "2/2", "3m20s"]));

        let with = |conditions: Value, deleting: bool| {
            let mut j = base.clone();
            j["status"]["conditions"] = conditions;
            if deleting {
                j["metadata"]["deletionTimestamp"] = json!(ago(1));
            }
            job(&j, now())[1].clone()
        };
        assert_eq!(
            with(json!([{"type": "Failed", "status": "True"}]), true),
            "Failed"
        );
        assert_eq!(
            with(json!([{"type": "Suspended", "status": "True"}]), true),
            "Terminating"
        );
        assert_eq!(
            with(json!([{"type": "Suspended", "status": "True"}]), false),
            "Suspended"
        );
        assert_eq!(
            with(json!([{"type": "FailureTarget", "status": "True"}]), false),
            "FailureTarget"
        );
        assert_eq!(
            with(json!([{"type": "Complete", "status": "False"}]), false),
            "Running"
        );
    }

    #[test]
    fn cron_jobs_print_schedule_suspend_active_and_last_schedule() {
        let cj = json!({
            "metadata": {"name": "backup", "creationTimestamp": ago(7200)},
            "spec": {"schedule": "*/5 * * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": ago(120)},
        });
        assert_eq!(
            cron_job(&cj, now()),
            [
                json!("backup"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("2m"),
                json!("120m"),
                json!("b"),
                json!("busybox"),
                json!("<none>")
            ]
        );
        let bare = json!({"metadata": {"name": "c"}, "spec": {"timeZone": "Etc/UTC"}});
        assert_eq!(
            cron_job(&bare, now())[2..6],
            [
                json!("Etc/UTC"),
                json!("<unset>"),
                json!(0),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn controller_revisions_name_their_controller_with_kind_and_group() {
        // TestFormatResourceName through ownerReferences.
        let rev = |owner: Value| {
            let cr = json!({"metadata": {"name": "r", "ownerReferences": [owner]}, "revision": 3});
            controller_revision(&cr, now())
        };
        assert_eq!(
            rev(
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "controller": true})
            ),
            [
                json!("r"),
                json!("daemonset.apps/fluentd"),
                json!(3),
                json!("<unknown>")
            ]
        );
        assert_eq!(
            rev(json!({"apiVersion": "v1", "kind": "Kind", "name": "name", "controller": true}))[1],
            "kind/name"
        );
        assert_eq!(rev(json!({"name": "name", "controller": true}))[1], "name");
        assert_eq!(
            rev(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x"}))[1],
            "<none>"
        );
    }
}

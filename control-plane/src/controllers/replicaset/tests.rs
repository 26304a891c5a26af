use super::*;
use serde_json::{Value, json};

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

/// Upstream test helper `newReplicaSet`: template labels `name=foo,type=production`.
fn rs_json(replicas: i32, selector: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "foobar", "namespace": "default", "uid": "rs-uid", "generation": 1, "resourceVersion": "18"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {"name": "foo", "type": "production"}},
                "spec": {"containers": [{"name": "c", "image": "foo/bar"}], "nodeSelector": {"baz": "blah"}},
            },
        },
    })
}

fn rs(replicas: i32, selector: Value) -> ReplicaSet {
    serde_json::from_value(rs_json(replicas, selector)).unwrap()
}

/// Upstream test helper `newPod`: labels = the selector's matchLabels, Running pods are Ready.
fn pod_for(name: &str, rs: &ReplicaSet, phase: &str, owned: bool) -> Pod {
    let labels = rs.spec.as_ref().unwrap().selector.match_labels.clone();
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [], "nodeName": "node-1"},
        "status": {"phase": phase},
    });
    if phase == "Running" {
        v["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    }
    if owned {
        v["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "foobar", "uid": "rs-uid", "controller": true}]);
    }
    serde_json::from_value(v).unwrap()
}

fn counts(s: &ReplicaSetStatus) -> [i32; 4] {
    let n = |v: Option<i32>| v.unwrap_or(0);
    [s.replicas, n(s.fully_labeled_replicas), n(s.ready_replicas), n(s.available_replicas)]
}

#[test]
fn status_counts_fully_labeled_ready_and_available_pods() {
    // TestCalculateStatus.
    let not_fully = rs(1, json!({"name": "foo"}));
    let fully = rs(2, json!({"name": "foo", "type": "production"}));
    let mut long_min_ready = rs(1, json!({"name": "foo", "type": "production"}));
    long_min_ready.spec.as_mut().unwrap().min_ready_seconds = Some(3600);

    let cases: Vec<(&str, &ReplicaSet, Vec<Pod>, [i32; 4])> = vec![
        ("1 fully labelled pod", &fully, vec![pod_for("pod1", &fully, "Running", true)], [1, 1, 1, 1]),
        ("1 not fully labelled pod", &not_fully, vec![pod_for("pod1", &not_fully, "Running", true)], [1, 0, 1, 1]),
        (
            "2 fully labelled pods",
            &fully,
            vec![pod_for("pod1", &fully, "Running", true), pod_for("pod2", &fully, "Running", true)],
            [2, 2, 2, 2],
        ),
        (
            "2 not fully labelled pods",
            &not_fully,
            vec![pod_for("pod1", &not_fully, "Running", true), pod_for("pod2", &not_fully, "Running", true)],
            [2, 0, 2, 2],
        ),
        (
            "1 fully labelled pod, 1 not fully labelled pod",
            &not_fully,
            vec![pod_for("pod1", &not_fully, "Running", true), pod_for("pod2", &fully, "Running", true)],
            [2, 1, 2, 2],
        ),
        ("1 non-ready pod", &fully, vec![pod_for("pod1", &fully, "Pending", true)], [1, 1, 0, 0]),
        ("1 ready but non-available pod", &long_min_ready, vec![pod_for("pod1", &long_min_ready, "Running", true)], [1, 1, 1, 0]),
    ];
    for (name, rs, pods, want) in cases {
        let pods: Vec<&Pod> = pods.iter().collect();
        assert_eq!(counts(&calculate_status(rs, &pods, now(), None)), want, "{name}");
    }
}

#[test]
fn status_sets_and_clears_the_replica_failure_condition() {
    // TestCalculateStatusConditions.
    let plain = rs(2, json!({"name": "foo"}));
    let mut failing = rs(10, json!({"name": "foo"}));
    failing.status = Some(ReplicaSetStatus {
        conditions: Some(vec![ReplicaSetCondition { type_: REPLICA_FAILURE.into(), status: "True".into(), ..Default::default() }]),
        ..Default::default()
    });
    let p = |n: &str, rs: &ReplicaSet| pod_for(n, rs, "Running", true);
    let err = Some("fake manageReplicasErr");
    type Case<'a> = (&'a str, &'a ReplicaSet, Vec<Pod>, Option<&'a str>, Option<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("error and no failure condition, diff < 0", &plain, vec![p("pod1", &plain)], err, Some(("FailedCreate", "fake manageReplicasErr"))),
        (
            "error and no failure condition, diff > 0",
            &plain,
            vec![p("pod1", &plain), p("pod2", &plain), p("pod3", &plain)],
            err,
            Some(("FailedDelete", "fake manageReplicasErr")),
        ),
        ("no error clears the failure condition", &failing, vec![p("pod1", &failing)], None, None),
        ("error keeps the existing failure condition", &failing, vec![p("pod1", &failing)], err, Some(("", ""))),
        ("no error and no condition", &plain, vec![p("pod1", &plain)], None, None),
    ];
    for (name, rs, pods, error, want) in cases {
        let pods: Vec<&Pod> = pods.iter().collect();
        let status = calculate_status(rs, &pods, now(), error);
        let got = status.conditions.unwrap_or_default();
        match want {
            None => assert!(got.is_empty(), "{name}: {got:?}"),
            Some((reason, message)) => {
                assert_eq!(got.len(), 1, "{name}");
                assert_eq!(got[0].type_, REPLICA_FAILURE, "{name}");
                assert_eq!(got[0].reason.as_deref().unwrap_or(""), reason, "{name}");
                assert_eq!(got[0].message.as_deref().unwrap_or(""), message, "{name}");
            }
        }
    }
}

#[test]
fn slow_start_batches_double_until_the_remainder() {
    assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
    assert_eq!(slow_start_batches(1, 1), vec![1]);
    assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
    assert_eq!(slow_start_batches(16, 1), vec![1, 2, 4, 8, 1]);
    assert_eq!(slow_start_batches(5, 4), vec![4, 1]);

    // TestSlowStartBatch: a batch with a failure ends the run; (count, callLimit) -> (successes, calls).
    for (count, limit, want_ok, want_calls) in [(10, 0, 0, 1), (10, 10, 10, 10), (10, 5, 5, 7)] {
        let (mut calls, mut ok) = (0, 0);
        for batch in slow_start_batches(count, SLOW_START_INITIAL_BATCH_SIZE) {
            let succeeded = (0..batch).filter(|_| {
                calls += 1;
                calls <= limit
            });
            let n = succeeded.count();
            ok += n;
            if n < batch {
                break;
            }
        }
        assert_eq!((ok, calls), (want_ok, want_calls), "count={count} limit={limit}");
    }
}

fn settled_status(rs: &mut ReplicaSet, replicas: i32) {
    rs.status = Some(ReplicaSetStatus {
        replicas,
        fully_labeled_replicas: non_zero(replicas),
        ready_replicas: non_zero(replicas),
        available_replicas: non_zero(replicas),
        observed_generation: Some(1),
        ..Default::default()
    });
}

#[test]
fn a_settled_replica_set_needs_no_action() {
    // TestSyncReplicaSetDoesNothing.
    let mut r = rs(2, json!({"name": "foo", "type": "production"}));
    settled_status(&mut r, 2);
    let pods = [pod_for("pod0", &r, "Running", true), pod_for("pod1", &r, "Running", true)];
    let actions = reconcile(&RsSnapshot { rs: &r, pods: pods.iter().collect(), now: now() });
    assert_eq!(actions, vec![]);
}

#[test]
fn missing_replicas_are_created_from_the_template_up_to_the_burst_limit() {
    for (replicas, have, want_count) in [(2, 1, 1), (100, 0, 100), (1000, 0, BURST_REPLICAS)] {
        let r = rs(replicas, json!({"name": "foo", "type": "production"}));
        let pods: Vec<Pod> = (0..have).map(|i| pod_for(&format!("pod{i}"), &r, "Running", true)).collect();
        let actions = reconcile(&RsSnapshot { rs: &r, pods: pods.iter().collect(), now: now() });
        let Some(RsAction::CreatePods { count, template }) = actions.first() else {
            panic!("expected a create first, got {actions:?}");
        };
        assert_eq!(*count, want_count);
        assert_eq!(template.metadata.generate_name.as_deref(), Some("foobar-"));
        assert_eq!(template.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(template.metadata.labels.as_ref().unwrap()["type"], "production");
        let owner = &template.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("ReplicaSet", "foobar", "rs-uid"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(template.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("foo/bar"));
        let Some(RsAction::UpdateStatus(status)) = actions.last() else { panic!("expected a status update") };
        assert_eq!((status.replicas, status.observed_generation), (have, Some(1)));
    }
}

#[test]
fn surplus_replicas_are_deleted_least_valuable_first() {
    let mut r = rs(1, json!({"name": "foo", "type": "production"}));
    settled_status(&mut r, 3);
    let mut unassigned = pod_for("unassigned", &r, "Pending", true);
    unassigned.spec.as_mut().unwrap().node_name = None;
    let pending = pod_for("pending", &r, "Pending", true);
    let running = pod_for("running", &r, "Running", true);
    let pods = vec![&running, &pending, &unassigned];
    let actions = reconcile(&RsSnapshot { rs: &r, pods, now: now() });
    assert_eq!(actions[0], RsAction::DeletePods(vec!["unassigned".into(), "pending".into()]));
}

#[test]
fn orphans_matching_the_selector_are_adopted_and_mismatched_pods_released() {
    let mut r = rs(2, json!({"name": "foo", "type": "production"}));
    settled_status(&mut r, 2);
    let orphan = pod_for("orphan", &r, "Running", false);
    let owned = pod_for("owned", &r, "Running", true);
    let mut relabeled = pod_for("relabeled", &r, "Running", true);
    relabeled.metadata.labels = Some(BTreeMap::from([("name".into(), "other".into())]));
    let mut foreign = pod_for("foreign", &r, "Running", false);
    foreign.metadata.owner_references =
        Some(vec![OwnerReference { uid: "other-uid".into(), controller: Some(true), ..Default::default() }]);
    let mut orphan_other_labels = pod_for("unrelated", &r, "Running", false);
    orphan_other_labels.metadata.labels = None;

    let pods = vec![&orphan, &owned, &relabeled, &foreign, &orphan_other_labels];
    let actions = reconcile(&RsSnapshot { rs: &r, pods, now: now() });
    assert_eq!(actions, vec![RsAction::Adopt(vec!["orphan".into()]), RsAction::Release(vec!["relabeled".into()])]);
}

#[test]
fn a_deleting_replica_set_neither_adopts_releases_nor_scales() {
    let mut r = rs(5, json!({"name": "foo", "type": "production"}));
    settled_status(&mut r, 1);
    r.metadata.deletion_timestamp = Some(Time(now()));
    let owned = pod_for("owned", &r, "Running", true);
    let orphan = pod_for("orphan", &r, "Running", false);
    let mut relabeled = pod_for("relabeled", &r, "Running", true);
    relabeled.metadata.labels = None;
    let actions = reconcile(&RsSnapshot { rs: &r, pods: vec![&owned, &orphan, &relabeled], now: now() });
    assert_eq!(actions, vec![]);
}

#[test]
fn terminating_and_finished_pods_do_not_count_toward_replicas() {
    let mut r = rs(2, json!({"name": "foo", "type": "production"}));
    settled_status(&mut r, 2);
    let a = pod_for("a", &r, "Running", true);
    let b = pod_for("b", &r, "Running", true);
    let mut terminating = pod_for("terminating", &r, "Running", true);
    terminating.metadata.deletion_timestamp = Some(Time(now()));
    let done = pod_for("done", &r, "Succeeded", true);
    let failed = pod_for("failed", &r, "Failed", true);
    let actions = reconcile(&RsSnapshot { rs: &r, pods: vec![&a, &terminating, &b, &done, &failed], now: now() });
    assert_eq!(actions, vec![]);
}

#[test]
fn an_invalid_selector_stops_the_sync() {
    let mut v = rs_json(3, json!({"name": "foo"}));
    v["spec"]["selector"]["matchExpressions"] = json!([{"key": "name", "operator": "In", "values": []}]);
    let r: ReplicaSet = serde_json::from_value(v).unwrap();
    assert_eq!(reconcile(&RsSnapshot { rs: &r, pods: vec![], now: now() }), vec![]);
}

#[test]
fn selector_expressions_follow_label_selector_semantics() {
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned()), ("tier".to_owned(), "fe".to_owned())]);
    let cases = [
        (json!({"matchLabels": {"app": "web"}}), true),
        (json!({"matchLabels": {"app": "db"}}), false),
        (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}), true),
        (json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}), false),
        (json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}), true),
        (json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}), true),
        (json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}), false),
        (json!({}), true),
    ];
    for (sel, want) in cases {
        let sel: LabelSelector = serde_json::from_value(sel.clone()).unwrap();
        let s = Selector::new(&sel).unwrap();
        assert_eq!(s.matches(Some(&labels)), want, "{sel:?}");
    }
}

//! Cases ported from pkg/controller/deployment/util/deployment_util_test.go.

use super::*;
use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn rolling(
    replicas: Option<i32>,
    surge: Option<IntOrString>,
    unavailable: Option<IntOrString>,
) -> Deployment {
    Deployment {
        spec: Some(DeploymentSpec {
            replicas,
            strategy: Some(DeploymentStrategy {
                type_: Some(ROLLING_UPDATE.into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: surge,
                    max_unavailable: unavailable,
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn recreate(replicas: Option<i32>) -> Deployment {
    Deployment {
        spec: Some(DeploymentSpec {
            replicas,
            strategy: Some(DeploymentStrategy {
                type_: Some(RECREATE.into()),
                rolling_update: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

/// generateDeployment(image).
fn generate_deployment(image: &str) -> Deployment {
    let labels: BTreeMap<String, String> = [("name".to_string(), image.to_string())].into();
    Deployment {
        metadata: ObjectMeta {
            name: Some(image.into()),
            annotations: Some(BTreeMap::new()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: image.into(),
                        image: Some(image.into()),
                        image_pull_policy: Some("Always".into()),
                        termination_message_path: Some("/dev/termination-log".into()),
                        ..Default::default()
                    }],
                    dns_policy: Some("ClusterFirst".into()),
                    termination_grace_period_seconds: Some(30),
                    restart_policy: Some("Always".into()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// generateRS(deployment): same template, zero replicas.
fn generate_rs(d: &Deployment, name: &str) -> ReplicaSet {
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(name.into()),
            labels: labels.clone(),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            selector: LabelSelector {
                match_labels: labels,
                match_expressions: None,
            },
            template: Some(template),
            ..Default::default()
        }),
        status: None,
    }
}

fn with_counts(mut rs: ReplicaSet, spec: i32, status: i32) -> ReplicaSet {
    set_rs_replicas(&mut rs, spec);
    rs.status = Some(ReplicaSetStatus {
        replicas: status,
        ..Default::default()
    });
    rs
}

#[test]
fn replica_counts_sum_spec_and_status_replicas() {
    let rs1 = with_counts(generate_rs(&generate_deployment("foo-rs"), "rs1"), 1, 2);
    let rs2 = with_counts(generate_rs(&generate_deployment("bar-rs"), "rs2"), 2, 3);
    let rs3 = with_counts(
        generate_rs(&generate_deployment("unsynced-rs"), "rs3"),
        3,
        0,
    );
    let cases: Vec<(&str, Vec<&ReplicaSet>, i32, i32)> = vec![
        ("scaling down rs1", vec![&rs1], 1, 2),
        ("scaling down rs1 and rs2", vec![&rs1, &rs2], 3, 5),
        ("scaling up rs3", vec![&rs3], 3, 0),
        (
            "scaling down rs1 and rs2 and scaling up rs3",
            vec![&rs1, &rs2, &rs3],
            6,
            5,
        ),
    ];
    for (name, sets, count, actual) in cases {
        assert_eq!(
            get_replica_count_for_replica_sets(sets.iter().copied()),
            count,
            "{name}"
        );
        assert_eq!(
            get_actual_replica_count_for_replica_sets(sets.iter().copied()),
            actual,
            "{name}"
        );
    }
}

#[test]
#[allow(clippy::type_complexity)]
fn resolve_fenceposts_matches_upstream_table() {
    let cases: &[(Option<&str>, Option<&str>, i32, Option<(i32, i32)>)] = &[
        (Some("0%"), Some("0%"), 0, Some((0, 1))),
        (Some("39%"), Some("39%"), 10, Some((4, 3))),
        (Some("oops"), Some("39%"), 10, None),
        (Some("55%"), Some("urg"), 10, None),
        (None, Some("39%"), 10, Some((0, 3))),
        (Some("39%"), None, 10, Some((4, 0))),
        (None, None, 10, Some((0, 1))),
    ];
    for (n, (surge, unavailable, desired, expected)) in cases.iter().enumerate() {
        let surge = surge.map(pct);
        let unavailable = unavailable.map(pct);
        let got = resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), *desired).ok();
        assert_eq!(got, *expected, "case {n}");
    }
}

#[test]
fn int_or_percent_rounds_surge_up_and_unavailable_down() {
    assert_eq!(get_value_from_int_or_percent(&pct("25%"), 10, true), Ok(3));
    assert_eq!(get_value_from_int_or_percent(&pct("25%"), 10, false), Ok(2));
    assert_eq!(
        get_value_from_int_or_percent(&IntOrString::Int(7), 10, false),
        Ok(7)
    );
    assert_eq!(
        get_value_from_int_or_percent(&pct("7"), 10, false),
        Err(Error::NotAPercentage)
    );
}

#[test]
fn new_rs_new_replicas_matches_upstream_table() {
    // (name, strategy, deployment replicas, new RS replicas, maxSurge, expected); one other RS of 5.
    let cases = [
        (
            "can not scale up - to newRSReplicas",
            ROLLING_UPDATE,
            1,
            5,
            1,
            5,
        ),
        ("scale up - to depReplicas", ROLLING_UPDATE, 6, 2, 10, 6),
        ("recreate - to depReplicas", RECREATE, 3, 1, 1, 3),
    ];
    let base = generate_deployment("nginx");
    let rs5 = with_counts(generate_rs(&base, "rs5"), 5, 0);
    for (name, strategy, dep_replicas, new_replicas, surge, expected) in cases {
        let mut d = base.clone();
        if let Some(spec) = d.spec.as_mut() {
            spec.replicas = Some(dep_replicas);
            spec.strategy = Some(DeploymentStrategy {
                type_: Some(strategy.into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(surge)),
                }),
            });
        }
        let new_rc = with_counts(generate_rs(&base, "new"), new_replicas, 0);
        assert_eq!(
            new_rs_new_replicas(&d, &[&rs5], &new_rc),
            Ok(expected),
            "{name}"
        );
    }
    let mut unknown = base.clone();
    if let Some(s) = unknown.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy {
            type_: Some("Canary".into()),
            rolling_update: None,
        });
    }
    assert!(new_rs_new_replicas(&unknown, &[], &rs5).is_err());
}

fn plain_cond(type_: &str, status: &str, reason: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        ..Default::default()
    }
}

#[test]
fn conditions_get_set_and_remove_like_upstream() {
    let progressing = plain_cond(PROGRESSING, "False", "ForSomeReason");
    let progressing2 = plain_cond(PROGRESSING, "True", "BecauseItIs");
    let available = plain_cond(AVAILABLE, "True", "AwesomeController");
    let full = DeploymentStatus {
        conditions: Some(vec![progressing.clone(), available.clone()]),
        ..Default::default()
    };

    assert!(
        get_condition(&full, AVAILABLE).is_some(),
        "condition exists"
    );
    assert!(
        get_condition(&full, REPLICA_FAILURE).is_none(),
        "condition does not exist"
    );

    let mut s = DeploymentStatus::default();
    set_condition(&mut s, available.clone());
    assert_eq!(
        s.conditions,
        Some(vec![available.clone()]),
        "set for the first time"
    );
    let mut s = DeploymentStatus {
        conditions: Some(vec![progressing.clone()]),
        ..Default::default()
    };
    set_condition(&mut s, available.clone());
    assert_eq!(s, full, "simple set");
    let mut s = DeploymentStatus {
        conditions: Some(vec![progressing.clone()]),
        ..Default::default()
    };
    set_condition(&mut s, progressing2.clone());
    assert_eq!(s.conditions, Some(vec![progressing2]), "overwrite");

    let mut s = DeploymentStatus::default();
    remove_condition(&mut s, PROGRESSING);
    assert_eq!(s, DeploymentStatus::default(), "remove from empty status");
    let mut s = DeploymentStatus {
        conditions: Some(vec![progressing]),
        ..Default::default()
    };
    remove_condition(&mut s, PROGRESSING);
    assert_eq!(s, DeploymentStatus::default(), "simple remove");
    let mut s = full.clone();
    remove_condition(&mut s, REPLICA_FAILURE);
    assert_eq!(s, full, "doesn't remove anything");
}

#[test]
fn set_condition_keeps_transition_time_when_only_the_reason_changes() {
    let t0 = ts("2020-01-01T00:00:00Z");
    let t1 = ts("2020-01-01T00:05:00Z");
    let mut s = DeploymentStatus::default();
    set_condition(
        &mut s,
        new_condition(PROGRESSING, "True", NEW_REPLICA_SET_REASON, "a", t0),
    );
    set_condition(
        &mut s,
        new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED_REASON, "b", t1),
    );
    let c = get_condition(&s, PROGRESSING).expect("condition");
    assert_eq!(c.last_transition_time, Some(Time(t0)));
    assert_eq!(c.last_update_time, Some(Time(t1)));
}

fn with_status(
    mut d: Deployment,
    current: i32,
    updated: i32,
    ready: i32,
    available: i32,
) -> Deployment {
    d.status = Some(DeploymentStatus {
        replicas: Some(current),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        ..Default::default()
    });
    d
}

#[test]
fn deployment_complete_matches_upstream_table() {
    let dep = |desired, current, updated, available, max_unavailable, max_surge| {
        with_status(
            rolling(
                Some(desired),
                Some(IntOrString::Int(max_surge)),
                Some(IntOrString::Int(max_unavailable)),
            ),
            current,
            updated,
            0,
            available,
        )
    };
    let cases = [
        (
            "not complete: min but not all pods become available",
            dep(5, 5, 5, 4, 1, 0),
            false,
        ),
        (
            "not complete: min availability is not honored",
            dep(5, 5, 5, 3, 1, 0),
            false,
        ),
        ("complete", dep(5, 5, 5, 5, 0, 0), true),
        (
            "not complete: all pods are available but not updated",
            dep(5, 5, 4, 5, 0, 0),
            false,
        ),
        (
            "not complete: still running old pods",
            dep(1, 2, 1, 1, 0, 1),
            false,
        ),
        (
            "not complete: one replica deployment never comes up",
            dep(1, 1, 1, 0, 1, 1),
            false,
        ),
    ];
    for (name, d, expected) in cases {
        assert_eq!(
            deployment_complete(&d, d.status.as_ref().expect("status")),
            expected,
            "{name}"
        );
    }
    let mut stale = dep(5, 5, 5, 5, 0, 0);
    stale.metadata.generation = Some(2);
    assert!(
        !deployment_complete(&stale, stale.status.as_ref().expect("status")),
        "unobserved generation"
    );
}

#[test]
fn deployment_progressing_matches_upstream_table() {
    let dep = |c, u, r, a| with_status(Deployment::default(), c, u, r, a);
    let st = |c, u, r, a| {
        with_status(Deployment::default(), c, u, r, a)
            .status
            .unwrap_or_default()
    };
    let cases = [
        (
            "progressing: updated pods",
            dep(10, 4, 4, 4),
            st(10, 6, 4, 4),
            true,
        ),
        ("not progressing", dep(10, 4, 4, 4), st(10, 4, 4, 4), false),
        (
            "progressing: old pods removed",
            dep(10, 4, 6, 6),
            st(8, 4, 6, 6),
            true,
        ),
        (
            "not progressing: less new pods",
            dep(10, 7, 3, 3),
            st(10, 6, 3, 3),
            false,
        ),
        (
            "progressing: less overall but more new pods",
            dep(10, 4, 7, 7),
            st(8, 8, 5, 5),
            true,
        ),
        (
            "progressing: more ready pods",
            dep(10, 10, 9, 8),
            st(10, 10, 10, 8),
            true,
        ),
        (
            "progressing: more available pods",
            dep(10, 10, 10, 9),
            st(10, 10, 10, 10),
            true,
        ),
    ];
    for (name, d, new_status, expected) in cases {
        assert_eq!(deployment_progressing(&d, &new_status), expected, "{name}");
    }
}

#[test]
fn deployment_timed_out_matches_upstream_table() {
    let at = |min: i64, sec: i64| {
        ts("2016-01-01T00:00:00Z")
            .checked_add(jiff::SignedDuration::from_secs(min * 60 + sec))
            .expect("time")
    };
    let dep = |reason: &str, pds: Option<i32>, from: Option<Timestamp>| Deployment {
        spec: Some(DeploymentSpec {
            progress_deadline_seconds: pds,
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            conditions: Some(vec![DeploymentCondition {
                type_: PROGRESSING.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                last_update_time: from.map(Time),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cases = [
        (
            "nil progressDeadlineSeconds - no timeout",
            dep("", None, Some(at(1, 9))),
            at(1, 20),
            false,
        ),
        (
            "infinite progressDeadlineSeconds - no timeout",
            dep("", Some(i32::MAX), Some(at(1, 9))),
            at(1, 20),
            false,
        ),
        (
            "10s deadline, 11s since progress",
            dep("", Some(10), Some(at(1, 9))),
            at(1, 20),
            true,
        ),
        (
            "10s deadline, 9s since progress",
            dep("", Some(10), Some(at(1, 11))),
            at(1, 20),
            false,
        ),
        (
            "previous status was a complete deployment",
            dep(NEW_RS_AVAILABLE_REASON, Some(10), None),
            at(1, 20),
            false,
        ),
    ];
    for (name, d, now, expected) in cases {
        assert_eq!(
            deployment_timed_out(&d, d.status.as_ref().expect("status"), now),
            expected,
            "{name}"
        );
    }
}

#[test]
fn max_unavailable_matches_upstream_table() {
    let dep =
        |replicas, mu: IntOrString| rolling(Some(replicas), Some(IntOrString::Int(1)), Some(mu));
    let cases = [
        ("less than replicas", dep(10, IntOrString::Int(5)), 5),
        ("equal replicas", dep(10, IntOrString::Int(10)), 10),
        ("greater than replicas", dep(5, IntOrString::Int(10)), 5),
        ("replicas is 0", dep(0, IntOrString::Int(10)), 0),
        ("Recreate strategy", recreate(None), 0),
        ("less than replicas with percents", dep(10, pct("50%")), 5),
        ("equal replicas with percents", dep(10, pct("100%")), 10),
        (
            "greater than replicas with percents",
            dep(5, pct("100%")),
            5,
        ),
    ];
    for (name, d, expected) in cases {
        assert_eq!(max_unavailable(&d), expected, "{name}");
    }
}

#[test]
fn min_available_matches_upstream_table() {
    let dep =
        |replicas, mu: IntOrString| rolling(Some(replicas), Some(IntOrString::Int(1)), Some(mu));
    let cases = [
        (
            "replicas greater than maxUnavailable",
            dep(10, IntOrString::Int(5)),
            5,
        ),
        (
            "replicas equal maxUnavailable",
            dep(10, IntOrString::Int(10)),
            0,
        ),
        (
            "replicas less than maxUnavailable",
            dep(5, IntOrString::Int(10)),
            0,
        ),
        ("replicas is 0", dep(0, IntOrString::Int(10)), 0),
        ("Recreate strategy", recreate(Some(10)), 0),
        ("greater with percents", dep(10, pct("60%")), 4),
        ("equal with percents", dep(10, pct("100%")), 0),
        ("less with percents", dep(5, pct("100%")), 0),
    ];
    for (name, d, expected) in cases {
        assert_eq!(min_available(&d), expected, "{name}");
    }
}

#[test]
fn non_negative_int32_annotations_match_upstream_table() {
    let max_plus_one = (i64::from(i32::MAX) + 1).to_string();
    let u32_plus_one = (u64::from(u32::MAX) + 1).to_string();
    let cases: Vec<(&str, Option<&str>, Option<i32>)> = vec![
        ("invalid empty", None, None),
        ("invalid", Some("invalid"), None),
        ("invalid negative", Some("-1"), None),
        ("valid zero", Some("0"), Some(0)),
        ("valid", Some("13"), Some(13)),
        ("valid max", Some("2147483647"), Some(i32::MAX)),
        ("invalid max out of range", Some(&max_plus_one), None),
        ("invalid max out of range 2", Some(&u32_plus_one), None),
    ];
    for (name, value, expected) in cases {
        let mut rs = generate_rs(&generate_deployment("nginx"), "rs");
        let mut annotations = BTreeMap::from([("foo".to_string(), "2".to_string())]);
        if let Some(v) = value {
            annotations.insert("test".into(), v.into());
        }
        rs.metadata.annotations = Some(annotations);
        assert_eq!(
            get_non_negative_int32_annotation(&rs, "test"),
            expected,
            "{name}"
        );
    }
}

#[test]
fn annotation_utils_match_upstream() {
    let mut d = generate_deployment("nginx");
    let mut rs = generate_rs(&d, "rs");
    d.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_ANNOTATION.into(), "1".into());

    // SetNewReplicaSetAnnotations with a 5-character history limit keeps the last two revisions.
    for i in 10..20 {
        let next = (i + 1).to_string();
        set_new_replica_set_annotations(&d, &mut rs, &next, true, 5);
        let a = rs.metadata.annotations.as_ref().expect("annotations");
        if i >= 12 {
            assert_eq!(
                a.get(REVISION_HISTORY_ANNOTATION),
                Some(&format!("{},{}", i - 1, i)),
                "history at {i}"
            );
        }
        assert_eq!(a.get(REVISION_ANNOTATION), Some(&next), "revision at {i}");
    }

    assert!(set_replicas_annotations(&mut rs, 10, 11));
    let a = rs.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(
        a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("10")
    );
    assert_eq!(
        a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("11")
    );

    rs.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESIRED_REPLICAS_ANNOTATION.into(), "1".into());
    rs.status = Some(ReplicaSetStatus {
        available_replicas: Some(1),
        ..Default::default()
    });
    set_rs_replicas(&mut rs, 1);
    assert!(is_saturated(&d, Some(&rs)));
}

#[test]
fn new_replica_set_annotations_copy_the_deployment_but_not_its_revision() {
    let mut d = generate_deployment("nginx");
    d.metadata.annotations = Some(BTreeMap::from([
        ("team".to_string(), "a".to_string()),
        (REVISION_ANNOTATION.to_string(), "7".to_string()),
        (LAST_APPLIED_CONFIG_ANNOTATION.to_string(), "{}".to_string()),
    ]));
    let mut rs = generate_rs(&d, "rs");
    assert!(set_new_replica_set_annotations(
        &d,
        &mut rs,
        "3",
        false,
        MAX_REV_HISTORY_LENGTH_IN_CHARS
    ));
    let a = rs.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(a.get("team").map(String::as_str), Some("a"));
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert!(!a.contains_key(LAST_APPLIED_CONFIG_ANNOTATION));
    assert!(
        !a.contains_key(REVISION_HISTORY_ANNOTATION),
        "a fresh RS has no history"
    );
    assert_eq!(
        a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("1")
    );
    // A lower revision never replaces a higher one.
    assert!(!set_new_replica_set_annotations(
        &d,
        &mut rs,
        "2",
        true,
        MAX_REV_HISTORY_LENGTH_IN_CHARS
    ));
}

#[test]
fn rollback_copies_replica_set_annotations_to_the_deployment() {
    let mut d = generate_deployment("nginx");
    d.metadata.annotations = Some(BTreeMap::from([
        ("old".to_string(), "x".to_string()),
        (REVISION_ANNOTATION.to_string(), "4".to_string()),
    ]));
    let mut rs = generate_rs(&d, "rs");
    rs.metadata.annotations = Some(BTreeMap::from([
        ("kubernetes.io/change-cause".to_string(), "v1".to_string()),
        (REVISION_ANNOTATION.to_string(), "1".to_string()),
    ]));
    set_deployment_annotations_to(&mut d, &rs);
    let expected = BTreeMap::from([
        ("kubernetes.io/change-cause".to_string(), "v1".to_string()),
        (REVISION_ANNOTATION.to_string(), "4".to_string()),
    ]);
    assert_eq!(d.metadata.annotations, Some(expected));
}

#[test]
fn replicas_annotations_need_update_matches_upstream_table() {
    let rs_with = |annotations: Option<[(&str, &str); 2]>| ReplicaSet {
        metadata: ObjectMeta {
            annotations: annotations.map(|a| {
                a.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let cases = [
        ("annotations nil", rs_with(None), true),
        (
            "desiredReplicas update",
            rs_with(Some([
                (DESIRED_REPLICAS_ANNOTATION, "8"),
                (MAX_REPLICAS_ANNOTATION, "20"),
            ])),
            true,
        ),
        (
            "maxReplicas update",
            rs_with(Some([
                (DESIRED_REPLICAS_ANNOTATION, "10"),
                (MAX_REPLICAS_ANNOTATION, "16"),
            ])),
            true,
        ),
        (
            "needn't update",
            rs_with(Some([
                (DESIRED_REPLICAS_ANNOTATION, "10"),
                (MAX_REPLICAS_ANNOTATION, "20"),
            ])),
            false,
        ),
    ];
    for (name, rs, expected) in cases {
        assert_eq!(
            replicas_annotations_need_update(&rs, 10, 20),
            expected,
            "{name}"
        );
    }
}

#[test]
#[allow(clippy::type_complexity)]
fn replica_set_fraction_matches_upstream_table() {
    // (name, deployment replicas, deployment status replicas, maxSurge, rs replicas, max-replicas annotation, expected)
    let cases: &[(&str, i32, i32, i32, i32, Option<&str>, i32)] = &[
        (
            "empty deployment always scales to 0",
            0,
            0,
            0,
            10,
            None,
            -10,
        ),
        (
            "unsynced deployment does not scale when max-replicas is missing",
            10,
            0,
            0,
            5,
            None,
            0,
        ),
        (
            "unsynced deployment does not scale when max-replicas is 0",
            10,
            0,
            0,
            5,
            Some("0"),
            0,
        ),
        (
            "scale up by 1/5 when max-replicas is missing",
            120,
            100,
            0,
            50,
            None,
            10,
        ),
        (
            "scale up by 1/5 when max-replicas is 0",
            120,
            100,
            0,
            50,
            Some("0"),
            10,
        ),
        ("scale up by 1/5", 120, 0, 0, 50, Some("100"), 10),
        (
            "scale up with maxSurge by about 1/5",
            120,
            0,
            10,
            50,
            Some("110"),
            9,
        ),
        ("scale down by 1/6", 10, 0, 0, 6, Some("12"), -1),
        (
            "scale down with maxSurge by about 1/6",
            100,
            0,
            10,
            50,
            Some("130"),
            -8,
        ),
    ];
    for (name, replicas, status_replicas, surge, rs_replicas_, annotation, expected) in cases {
        let mut d = rolling(
            Some(*replicas),
            Some(IntOrString::Int(*surge)),
            Some(IntOrString::Int(1)),
        );
        d.status = Some(DeploymentStatus {
            replicas: Some(*status_replicas),
            ..Default::default()
        });
        let mut rs = generate_rs(&generate_deployment("nginx"), "rs");
        set_rs_replicas(&mut rs, *rs_replicas_);
        rs.metadata.annotations = annotation
            .map(|v| BTreeMap::from([(MAX_REPLICAS_ANNOTATION.to_string(), v.to_string())]));
        assert_eq!(get_replica_set_fraction(&rs, &d), *expected, "{name}");
    }
}

#[test]
fn get_proportion_is_bounded_by_what_is_left_to_distribute() {
    let d = rolling(
        Some(10),
        Some(IntOrString::Int(0)),
        Some(IntOrString::Int(1)),
    );
    let mut rs = generate_rs(&generate_deployment("nginx"), "rs");
    set_rs_replicas(&mut rs, 5);
    set_replicas_annotations(&mut rs, 5, 5);
    // Fraction is 5*10/5 - 5 = 5.
    assert_eq!(get_proportion(Some(&rs), &d, 5, 0), 5);
    assert_eq!(get_proportion(Some(&rs), &d, 5, 3), 2, "only 2 left");
    assert_eq!(get_proportion(Some(&rs), &d, 5, 5), 0, "nothing left");
    assert_eq!(get_proportion(None, &d, 5, 0), 0, "no replica set");
    let d_down = rolling(
        Some(2),
        Some(IntOrString::Int(0)),
        Some(IntOrString::Int(1)),
    );
    // Fraction is round(5*2/5) - 5 = -3, bounded by -2 still to remove.
    assert_eq!(get_proportion(Some(&rs), &d_down, -2, 0), -2);
    let mut empty = rs.clone();
    set_rs_replicas(&mut empty, 0);
    assert_eq!(
        get_proportion(Some(&empty), &d, 5, 0),
        0,
        "never scale up from zero"
    );
}

#[test]
fn find_new_and_old_replica_sets_match_upstream_tables() {
    let now = ts("2020-01-01T00:00:00Z");
    let later = ts("2020-01-01T00:01:00Z");
    let before = ts("2019-12-31T23:59:00Z");
    let deployment = generate_deployment("nginx");
    let mut new_rs = generate_rs(&deployment, "new");
    set_rs_replicas(&mut new_rs, 1);
    new_rs
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), "hash".into());
    new_rs.metadata.creation_timestamp = Some(Time(later));
    let mut new_rs_dup = generate_rs(&deployment, "new-dup");
    new_rs_dup.metadata.creation_timestamp = Some(Time(now));
    let mut old_deployment = generate_deployment("nginx");
    if let Some(c) = old_deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|s| s.containers.first_mut())
    {
        c.name = "nginx-old-1".into();
    }
    let mut old_rs = generate_rs(&old_deployment, "old");
    old_rs.metadata.creation_timestamp = Some(Time(before));

    let name = |rs: Option<&ReplicaSet>| rs.map(|r| rs_name(r).to_string());
    assert_eq!(
        name(find_new_replica_set(&deployment, &[&new_rs, &old_rs])),
        Some("new".into()),
        "different hash label"
    );
    assert_eq!(
        name(find_new_replica_set(
            &deployment,
            &[&new_rs, &old_rs, &new_rs_dup]
        )),
        Some("new-dup".into()),
        "oldest wins"
    );
    assert_eq!(
        name(find_new_replica_set(&deployment, &[&old_rs])),
        None,
        "no new RS"
    );

    let names = |v: Vec<&ReplicaSet>| {
        let mut n: Vec<String> = v.into_iter().map(|r| rs_name(r).to_string()).collect();
        n.sort();
        n
    };
    let (required, all) = find_old_replica_sets(&deployment, &[&new_rs, &old_rs]);
    assert_eq!(
        (names(required), names(all)),
        (vec![], vec!["old".to_string()]),
        "old RSs"
    );
    let (required, all) = find_old_replica_sets(&deployment, &[&old_rs]);
    assert_eq!(
        (names(required), names(all)),
        (vec![], vec!["old".to_string()]),
        "no new RS"
    );
    let (required, all) = find_old_replica_sets(&deployment, &[&old_rs, &new_rs, &new_rs_dup]);
    assert_eq!(
        (names(required), names(all)),
        (
            vec!["new".to_string()],
            vec!["new".to_string(), "old".to_string()]
        ),
        "only the oldest new RS is new"
    );
    let (required, all) = find_old_replica_sets(&deployment, &[&new_rs]);
    assert!(required.is_empty() && all.is_empty(), "empty old RSs");
}

#[test]
fn revisions_are_read_like_upstream() {
    let with_rev = |v: Option<&str>| ReplicaSet {
        metadata: ObjectMeta {
            annotations: v
                .map(|v| BTreeMap::from([(REVISION_ANNOTATION.to_string(), v.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    };
    let (none, one, three, five, bad) = (
        with_rev(None),
        with_rev(Some("1")),
        with_rev(Some("3")),
        with_rev(Some("5")),
        with_rev(Some("x")),
    );
    assert_eq!(revision(&none), Some(0));
    assert_eq!(revision(&bad), None);
    assert_eq!(max_revision([&one, &five, &bad, &three]), 5);
    assert_eq!(last_revision([&one, &five, &bad, &three]), 3);
    assert_eq!(last_revision([&five]), 0);
}

#[test]
fn selectors_match_labels_and_expressions() {
    let labels = BTreeMap::from([
        ("app".to_string(), "web".to_string()),
        ("tier".to_string(), "fe".to_string()),
    ]);
    let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    };
    let sel = |ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>| LabelSelector {
        match_labels: Some(
            ml.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: Some(me),
    };
    let cases = [
        (sel(&[("app", "web")], vec![]), true),
        (sel(&[("app", "db")], vec![]), false),
        (sel(&[], vec![req("tier", "In", &["fe", "be"])]), true),
        (sel(&[], vec![req("tier", "NotIn", &["fe"])]), false),
        (sel(&[], vec![req("zone", "NotIn", &["a"])]), true),
        (sel(&[], vec![req("app", "Exists", &[])]), true),
        (sel(&[], vec![req("app", "DoesNotExist", &[])]), false),
        (sel(&[], vec![req("app", "Bogus", &[])]), false),
        (LabelSelector::default(), true),
    ];
    for (n, (s, expected)) in cases.into_iter().enumerate() {
        assert_eq!(selector_matches(&s, &labels), expected, "case {n}");
    }
    assert!(selector_is_empty(&LabelSelector::default()));
}

#[test]
fn go_style_sort_tolerates_inconsistent_comparators() {
    let mut v = vec![3, 1, 2, 5, 4];
    sort_by_less(&mut v, |a, b| a < b);
    assert_eq!(v, vec![1, 2, 3, 4, 5]);
    let mut w = vec![1, 2, 3, 4];
    sort_by_less(&mut w, |_, _| true);
    assert_eq!(w.len(), 4);
}

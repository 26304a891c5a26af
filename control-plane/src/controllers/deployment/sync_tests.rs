//! Tests for sync.go's logic (TestScale, TestDeploymentController_cleanupDeployment[Order]) and
//! the helpers shared by the other phase tests (newDeployment / rs from the upstream tests).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::controllers::deployment::{Action, Ctx, Snapshot, reconcile};

pub(crate) fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn base_time() -> Timestamp {
    Timestamp::from_second(1_463_702_400).unwrap_or(Timestamp::UNIX_EPOCH) // 2016-05-20T00:00:00Z
}

/// newDeployment from deployment_controller_test.go: RollingUpdate, surge 0 / unavailable 0
/// unless given, one "foo/bar" container.
pub(crate) fn new_deployment(
    name: &str,
    replicas: i32,
    revision_history_limit: Option<i32>,
    max_surge: Option<IntOrString>,
    max_unavailable: Option<IntOrString>,
    selector: &[(&str, &str)],
) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            annotations: Some(BTreeMap::new()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(selector)),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some(ROLLING_UPDATE.into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(max_surge.unwrap_or(int(0))),
                    max_unavailable: Some(max_unavailable.unwrap_or(int(0))),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(selector)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        image: Some("foo/bar".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            revision_history_limit,
            ..Default::default()
        }),
        status: None,
    }
}

/// rs from deployment_controller_test.go; `created` is seconds after base_time, 0 for none.
pub(crate) fn rs(name: &str, replicas: i32, selector: &[(&str, &str)], created: i64) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(name.trim_start_matches("foo-").to_string()),
            namespace: Some("default".into()),
            creation_timestamp: (created != 0).then(|| {
                Time(
                    base_time()
                        .checked_add(jiff::SignedDuration::from_secs(created))
                        .unwrap_or(base_time()),
                )
            }),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(selector)),
                match_expressions: None,
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// A working context over exactly these objects (no defaulting, no selector filtering).
pub(crate) fn ctx_for(d: &Deployment, rss: Vec<ReplicaSet>) -> Ctx<'_> {
    Ctx {
        d: d.clone(),
        rss,
        pods_by_rs: BTreeMap::new(),
        now: base_time(),
        rollout_status_synced: false,
        original: d,
        actions: Vec::new(),
    }
}

/// (name, replicas) of every ReplicaSet update recorded so far, in order.
#[derive(Debug)]
pub(crate) struct UpdatedSizes(pub Vec<(String, i32)>);

impl From<&Ctx<'_>> for UpdatedSizes {
    fn from(ctx: &Ctx<'_>) -> Self {
        UpdatedSizes(
            ctx.actions
                .iter()
                .filter_map(|a| match a {
                    Action::UpdateReplicaSet(rs) => {
                        Some((rs_name(rs).to_string(), rs_replicas(rs)))
                    }
                    _ => None,
                })
                .collect(),
        )
    }
}

#[test]
fn scale_matches_upstream_proportional_scaling_table() {
    let (new_ts, old_ts, older_ts): (i64, i64, i64) = (3, 2, 1);
    let dep = |replicas: i32, surge: Option<i32>| {
        new_deployment("foo", replicas, None, surge.map(int), None, &[])
    };
    let updated_template = |replicas: i32| {
        let mut d = new_deployment("foo", replicas, None, None, None, &[("foo", "bar")]);
        if let Some(l) = d
            .spec
            .as_mut()
            .and_then(|s| s.template.metadata.as_mut())
            .and_then(|m| m.labels.as_mut())
        {
            l.insert("another".into(), "label".into());
        }
        d
    };
    struct Case {
        name: &'static str,
        deployment: Deployment,
        old_deployment: Deployment,
        new_rs: Option<(&'static str, i32, i64)>,
        old_rss: Vec<(&'static str, i32, i64)>,
        expected_new: Option<i32>,
        expected_old: Vec<i32>,
        wasnt_updated: &'static [&'static str],
        desired_annotations: &'static [(&'static str, i32)],
        new_rs_unavailable: bool,
    }
    let case =
        |name, deployment, old_deployment, new_rs, old_rss, expected_new, expected_old| Case {
            name,
            deployment,
            old_deployment,
            new_rs,
            old_rss,
            expected_new,
            expected_old,
            wasnt_updated: &[],
            desired_annotations: &[],
            new_rs_unavailable: false,
        };
    let cases = vec![
        case(
            "normal scaling event: 10 -> 12",
            dep(12, None),
            dep(10, None),
            Some(("foo-v1", 10, new_ts)),
            vec![],
            Some(12),
            vec![],
        ),
        case(
            "normal scaling event: 10 -> 5",
            dep(5, None),
            dep(10, None),
            Some(("foo-v1", 10, new_ts)),
            vec![],
            Some(5),
            vec![],
        ),
        case(
            "proportional scaling: 5 -> 10",
            dep(10, None),
            dep(5, None),
            Some(("foo-v2", 2, new_ts)),
            vec![("foo-v1", 3, old_ts)],
            Some(4),
            vec![6],
        ),
        case(
            "proportional scaling: 5 -> 3",
            dep(3, None),
            dep(5, None),
            Some(("foo-v2", 2, new_ts)),
            vec![("foo-v1", 3, old_ts)],
            Some(1),
            vec![2],
        ),
        case(
            "proportional scaling: 9 -> 4",
            dep(4, None),
            dep(9, None),
            Some(("foo-v2", 8, new_ts)),
            vec![("foo-v1", 1, old_ts)],
            Some(4),
            vec![0],
        ),
        case(
            "proportional scaling: 7 -> 10",
            dep(10, None),
            dep(7, None),
            Some(("foo-v3", 2, new_ts)),
            vec![("foo-v2", 3, old_ts), ("foo-v1", 2, older_ts)],
            Some(3),
            vec![4, 3],
        ),
        case(
            "proportional scaling: 13 -> 8",
            dep(8, None),
            dep(13, None),
            Some(("foo-v3", 2, new_ts)),
            vec![("foo-v2", 8, old_ts), ("foo-v1", 3, older_ts)],
            Some(1),
            vec![5, 2],
        ),
        case(
            "leftover distribution: 3 -> 4 scales up the new RS",
            dep(4, None),
            dep(3, None),
            Some(("foo-v3", 1, new_ts)),
            vec![("foo-v2", 1, old_ts), ("foo-v1", 1, older_ts)],
            Some(2),
            vec![1, 1],
        ),
        case(
            "leftover distribution: 3 -> 2 scales down the oldest RS",
            dep(2, None),
            dep(3, None),
            Some(("foo-v3", 1, new_ts)),
            vec![("foo-v2", 1, old_ts), ("foo-v1", 1, older_ts)],
            Some(1),
            vec![1, 0],
        ),
        case(
            "proportional scaling (no new rs): 4 -> 5",
            dep(5, None),
            dep(4, None),
            None,
            vec![("foo-v2", 2, old_ts), ("foo-v1", 2, older_ts)],
            None,
            vec![3, 2],
        ),
        case(
            "proportional scaling: 6 -> 0",
            dep(0, None),
            dep(6, None),
            Some(("foo-v3", 3, new_ts)),
            vec![("foo-v2", 2, old_ts), ("foo-v1", 1, older_ts)],
            Some(0),
            vec![0, 0],
        ),
        Case {
            wasnt_updated: &["foo-v2", "foo-v1"],
            ..case(
                "proportional scaling: 0 -> 6",
                dep(6, None),
                dep(6, None),
                Some(("foo-v3", 0, new_ts)),
                vec![("foo-v2", 0, old_ts), ("foo-v1", 0, older_ts)],
                Some(6),
                vec![0, 0],
            )
        },
        Case {
            wasnt_updated: &["foo-v3", "foo-v1"],
            desired_annotations: &[("foo-v2", 3)],
            ..case(
                "failed rs update",
                dep(5, None),
                dep(5, None),
                Some(("foo-v3", 2, new_ts)),
                vec![("foo-v2", 1, old_ts), ("foo-v1", 1, older_ts)],
                Some(2),
                vec![2, 1],
            )
        },
        case(
            "deployment with surge pods",
            dep(20, Some(2)),
            dep(10, Some(2)),
            Some(("foo-v2", 6, new_ts)),
            vec![("foo-v1", 6, old_ts)],
            Some(11),
            vec![11],
        ),
        case(
            "change both surge and size",
            dep(50, Some(6)),
            dep(10, Some(3)),
            Some(("foo-v2", 5, new_ts)),
            vec![("foo-v1", 8, old_ts)],
            Some(22),
            vec![34],
        ),
        case(
            "change both size and template",
            updated_template(14),
            new_deployment("foo", 10, None, None, None, &[("foo", "bar")]),
            None,
            vec![("foo-v2", 7, new_ts), ("foo-v1", 3, old_ts)],
            None,
            vec![10, 4],
        ),
        Case {
            new_rs_unavailable: true,
            ..case(
                "saturated but broken new replica set does not affect old pods",
                new_deployment("foo", 2, None, Some(int(1)), Some(int(1)), &[]),
                new_deployment("foo", 2, None, Some(int(1)), Some(int(1)), &[]),
                Some(("foo-v2", 2, new_ts)),
                vec![("foo-v1", 1, old_ts)],
                Some(2),
                vec![1],
            )
        },
    ];

    for c in cases {
        let annotate = |mut r: ReplicaSet| {
            let desired = c
                .desired_annotations
                .iter()
                .find(|(n, _)| *n == rs_name(&r))
                .map_or(d_replicas(&c.old_deployment), |(_, v)| *v);
            set_replicas_annotations(&mut r, desired, desired + max_surge(&c.old_deployment));
            // Everything is available unless the case says otherwise (the saturation check).
            let available = if c.new_rs_unavailable && Some(rs_name(&r)) == c.new_rs.map(|n| n.0) {
                0
            } else {
                rs_replicas(&r)
            };
            r.status = Some(ReplicaSetStatus {
                replicas: rs_replicas(&r),
                available_replicas: Some(available),
                ..Default::default()
            });
            r
        };
        let mut rss: Vec<ReplicaSet> = c
            .old_rss
            .iter()
            .map(|(n, r, t)| annotate(rs(n, *r, &[], *t)))
            .collect();
        let old_idx: Vec<usize> = (0..rss.len()).collect();
        let new_idx = c.new_rs.map(|(n, r, t)| {
            rss.push(annotate(rs(n, r, &[], t)));
            rss.len() - 1
        });
        let initial: Vec<(String, i32)> = rss
            .iter()
            .map(|r| (rs_name(r).to_string(), rs_replicas(r)))
            .collect();
        let mut ctx = ctx_for(&c.deployment, rss);
        scale(&mut ctx, new_idx, &old_idx);

        let mut name_to_size: BTreeMap<String, i32> = initial.into_iter().collect();
        for (name, size) in UpdatedSizes::from(&ctx).0 {
            if !c.wasnt_updated.contains(&name.as_str()) {
                name_to_size.insert(name, size);
            }
        }
        if let (Some(expected), Some((name, _, _))) = (c.expected_new, c.new_rs) {
            assert_eq!(name_to_size[name], expected, "{}: new RS", c.name);
        }
        for ((name, _, _), expected) in c.old_rss.iter().zip(&c.expected_old) {
            assert_eq!(name_to_size[*name], *expected, "{}: old RS {name}", c.name);
        }
    }
}

fn rs_with_status(name: &str, spec: i32, status: i32) -> ReplicaSet {
    let mut r = rs(name, spec, &[("foo", "bar")], 0);
    r.status = Some(ReplicaSetStatus {
        replicas: status,
        ..Default::default()
    });
    r
}

fn deleted_names(ctx: &Ctx) -> Vec<String> {
    ctx.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteReplicaSet { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn cleanup_deployment_matches_upstream_table() {
    let mut already_deleted = rs_with_status("foo-1", 0, 0);
    already_deleted.metadata.deletion_timestamp = Some(Time(base_time()));
    let cases: Vec<(Vec<ReplicaSet>, i32, usize)> = vec![
        (
            vec![
                rs_with_status("foo-1", 0, 0),
                rs_with_status("foo-2", 0, 0),
                rs_with_status("foo-3", 0, 0),
            ],
            1,
            2,
        ),
        // Only RSs with spec.replicas = status.replicas = 0 are deleted.
        (
            vec![
                rs_with_status("foo-1", 0, 0),
                rs_with_status("foo-2", 0, 1),
                rs_with_status("foo-3", 1, 0),
                rs_with_status("foo-4", 1, 1),
            ],
            0,
            1,
        ),
        (
            vec![rs_with_status("foo-1", 0, 0), rs_with_status("foo-2", 0, 0)],
            0,
            2,
        ),
        (
            vec![rs_with_status("foo-1", 1, 1), rs_with_status("foo-2", 1, 1)],
            0,
            0,
        ),
        (vec![already_deleted], 0, 0),
        // Unlimited history.
        (
            vec![
                rs_with_status("foo-1", 0, 0),
                rs_with_status("foo-2", 0, 0),
                rs_with_status("foo-3", 0, 0),
            ],
            i32::MAX,
            0,
        ),
    ];
    for (n, (old_rss, limit, expected)) in cases.into_iter().enumerate() {
        let d = new_deployment("foo", 1, Some(limit), None, None, &[("foo", "bar")]);
        let idx: Vec<usize> = (0..old_rss.len()).collect();
        let mut ctx = ctx_for(&d, old_rss);
        cleanup_deployment(&mut ctx, &idx);
        assert_eq!(deleted_names(&ctx).len(), expected, "case {n}");
    }
}

#[test]
fn cleanup_deployment_deletes_lowest_revisions_first() {
    let rev_rs = |name: &str, replicas: i32, created: i64, revision: &str| {
        let mut r = rs(name, replicas, &[("foo", "bar")], created);
        if !revision.is_empty() {
            r.metadata.annotations =
                Some([(REVISION_ANNOTATION.to_string(), revision.to_string())].into());
        }
        r.status = Some(ReplicaSetStatus {
            replicas,
            ..Default::default()
        });
        r
    };
    // Creation order is always foo-1 < foo-2 < foo-3 < foo-4.
    let cases: Vec<(Vec<ReplicaSet>, i32, Vec<&str>)> = vec![
        (
            vec![rev_rs("foo-1", 0, 60, "1"), rev_rs("foo-2", 0, 120, "2")],
            1,
            vec!["foo-1"],
        ),
        (
            vec![rev_rs("foo-1", 0, 60, "2"), rev_rs("foo-2", 0, 120, "1")],
            1,
            vec!["foo-2"],
        ),
        (
            vec![rev_rs("foo-1", 0, 60, "1"), rev_rs("foo-2", 0, 120, "")],
            1,
            vec!["foo-2"],
        ),
        (
            vec![rev_rs("foo-1", 0, 60, ""), rev_rs("foo-2", 0, 120, "2")],
            1,
            vec!["foo-1"],
        ),
        (
            vec![
                rev_rs("foo-1", 1, 60, "1"),
                rev_rs("foo-2", 0, 120, "2"),
                rev_rs("foo-3", 0, 180, "3"),
            ],
            1,
            vec!["foo-2"],
        ),
        (
            vec![
                rev_rs("foo-1", 1, 60, "1"),
                rev_rs("foo-2", 1, 120, "2"),
                rev_rs("foo-3", 0, 180, "3"),
            ],
            1,
            vec![],
        ),
        (
            vec![
                rev_rs("foo-1", 0, 60, "3"),
                rev_rs("foo-2", 0, 120, "1"),
                rev_rs("foo-3", 0, 180, "4"),
                rev_rs("foo-4", 0, 240, "2"),
            ],
            2,
            vec!["foo-2", "foo-4"],
        ),
    ];
    for (n, (old_rss, limit, expected)) in cases.into_iter().enumerate() {
        let d = new_deployment("foo", 1, Some(limit), None, None, &[("foo", "bar")]);
        let idx: Vec<usize> = (0..old_rss.len()).collect();
        let mut ctx = ctx_for(&d, old_rss);
        cleanup_deployment(&mut ctx, &idx);
        let mut got = deleted_names(&ctx);
        got.sort();
        assert_eq!(got, expected, "case {n}");
    }
}

// ---- whole-pass behaviour ---------------------------------------------------------------------

fn web(replicas: i32) -> Deployment {
    let mut d = new_deployment(
        "web",
        replicas,
        Some(10),
        Some(int(1)),
        Some(int(0)),
        &[("app", "web")],
    );
    d.metadata.generation = Some(1);
    if let Some(s) = d.spec.as_mut() {
        s.progress_deadline_seconds = Some(600);
    }
    d
}

fn run(d: &Deployment, rss: &[ReplicaSet]) -> Vec<Action> {
    let s = Snapshot {
        deployment: d,
        replica_sets: rss.iter().collect(),
        pods_by_rs: BTreeMap::new(),
        now: base_time(),
    };
    reconcile(&s)
}

#[test]
fn first_pass_creates_the_new_replica_set_like_upstream() {
    let d = web(3);
    let actions = run(&d, &[]);
    let Some(Action::CreateReplicaSet(rs)) = actions.first() else {
        panic!("expected a create first: {actions:?}")
    };
    let hash = compute_hash(&d.spec.as_ref().expect("spec").template, None);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY)),
        Some(&hash)
    );
    let spec = rs.spec.as_ref().expect("spec");
    assert_eq!(
        spec.selector
            .match_labels
            .as_ref()
            .and_then(|l| l.get(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY)),
        Some(&hash)
    );
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    assert_eq!(
        template_labels
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("web")
    );
    assert_eq!(
        spec.replicas,
        Some(3),
        "without old pods the new RS starts at full size"
    );
    let owner = &rs.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("Deployment", "web", Some(true), Some(true))
    );
    let a = rs.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("1"));
    assert_eq!(
        a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("4")
    );
    assert!(actions.contains(&Action::Event {
        type_: "Normal".into(),
        reason: "ScalingReplicaSet".into(),
        message: format!("Scaled up replica set web-{hash} from 0 to 3"),
    }));
    assert!(actions.contains(&Action::UpdateDeploymentAnnotations(
        [(REVISION_ANNOTATION.into(), "1".into())].into()
    )));
    let status = actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(s) => Some(s),
        _ => None,
    });
    let progressing = status
        .and_then(|s| get_condition(s, PROGRESSING))
        .expect("Progressing");
    assert_eq!(progressing.reason.as_deref(), Some(NEW_REPLICA_SET_REASON));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
}

#[test]
fn an_old_replica_set_with_the_current_template_is_reused_with_a_bumped_revision() {
    // kubectl rollout undo: the Deployment's template is set back to revision 1's.
    let d = web(2);
    let template = d.spec.as_ref().expect("spec").template.clone();
    let mut v1 = rs("web-v1", 0, &[("app", "web")], 10);
    if let Some(s) = v1.spec.as_mut() {
        s.template = Some(template);
    }
    v1.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "1".to_string())].into());
    v1.metadata.labels = Some(labels(&[("app", "web")]));
    let mut v2 = rs("web-v2", 2, &[("app", "web")], 20);
    v2.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into());
    v2.metadata.labels = Some(labels(&[("app", "web")]));
    if let Some(s) = v2.spec.as_mut() {
        s.template = Some(PodTemplateSpec::default());
    }
    let actions = run(&d, &[v1, v2]);
    let Some(Action::UpdateReplicaSet(updated)) = actions.first() else {
        panic!("{actions:?}")
    };
    assert_eq!(updated.metadata.name.as_deref(), Some("web-v1"));
    let a = updated.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert_eq!(
        a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_)))
    );
}

#[test]
fn a_name_taken_by_another_template_bumps_the_collision_count() {
    let d = web(1);
    let hash = compute_hash(&d.spec.as_ref().expect("spec").template, None);
    let mut squatter = rs(&format!("web-{hash}"), 0, &[("app", "web")], 10);
    squatter.metadata.labels = Some(labels(&[("app", "web")]));
    if let Some(s) = squatter.spec.as_mut() {
        s.template = Some(PodTemplateSpec::default());
    }
    let actions = run(&d, &[squatter]);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_)))
    );
    let status = actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(status.and_then(|s| s.collision_count), Some(1));
}

#[test]
fn an_empty_selector_only_warns_and_observes_the_generation() {
    let mut d = web(1);
    if let Some(s) = d.spec.as_mut() {
        s.selector = LabelSelector::default();
    }
    let actions = run(&d, &[]);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(
        matches!(&actions[0], Action::Event { type_, reason, .. } if type_ == "Warning" && reason == "SelectingAll")
    );
    assert!(
        matches!(&actions[1], Action::UpdateDeploymentStatus(s) if s.observed_generation == Some(1))
    );
}

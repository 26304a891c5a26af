//! Port of progress.go: the Progressing condition during a rollout and when to re-check it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};

use super::Ctx;
use super::sync::calculate_status;
use super::util::*;

/// syncRolloutStatus: status plus Progressing (complete / progressing / timed out) and any
/// ReplicaFailure condition promoted from the ReplicaSets.
pub(crate) fn sync_rollout_status(ctx: &mut Ctx, all_rss: &[usize], new_rs: Option<usize>) {
    ctx.rollout_status_synced = true;
    let mut new_status = calculate_status(ctx, all_rss, new_rs);
    let d = &ctx.d;
    if !has_progress_deadline(d) {
        remove_condition(&mut new_status, PROGRESSING);
    }

    // With a single active RS this is a resync of a finished rollout: no progress to estimate.
    let d_status = d.status.clone().unwrap_or_default();
    let current = get_condition(&d_status, PROGRESSING);
    let is_complete_deployment = new_status.replicas == new_status.updated_replicas
        && current.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
    let new_rs_name = new_rs
        .and_then(|i| ctx.rss.get(i))
        .map(|rs| quote(rs_name(rs)));
    let d_name = quote(d.metadata.name.as_deref().unwrap_or(""));
    let now = ctx.now;

    if has_progress_deadline(d) && !is_complete_deployment {
        if deployment_complete(d, &new_status) {
            let msg = match &new_rs_name {
                Some(rs) => format!("ReplicaSet {rs} has successfully progressed."),
                None => format!("Deployment {d_name} has successfully progressed."),
            };
            set_condition(
                &mut new_status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, &msg, now),
            );
        } else if deployment_progressing(d, &new_status) {
            let msg = match &new_rs_name {
                Some(rs) => format!("ReplicaSet {rs} is progressing."),
                None => format!("Deployment {d_name} is progressing."),
            };
            let mut condition =
                new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED_REASON, &msg, now);
            // Progress refreshes lastUpdateTime even when the reason is unchanged, which
            // SetDeploymentCondition alone would skip; lastTransitionTime stays while True.
            if let Some(current) = current {
                if current.status == "True" {
                    condition.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut new_status, PROGRESSING);
            }
            set_condition(&mut new_status, condition);
        } else if deployment_timed_out(d, &new_status, now) {
            let msg = match &new_rs_name {
                Some(rs) => format!("ReplicaSet {rs} has timed out progressing."),
                None => format!("Deployment {d_name} has timed out progressing."),
            };
            set_condition(
                &mut new_status,
                new_condition(PROGRESSING, "False", TIMED_OUT_REASON, &msg, now),
            );
        }
    }

    match get_replica_failures(ctx, all_rss, new_rs)
        .into_iter()
        .next()
    {
        Some(failure) => set_condition(&mut new_status, failure),
        None => remove_condition(&mut new_status, REPLICA_FAILURE),
    }
    ctx.d.status = Some(new_status);
}

/// getReplicaFailures: ReplicaFailure conditions of the new RS, else of any RS.
fn get_replica_failures(
    ctx: &Ctx,
    all_rss: &[usize],
    new_rs: Option<usize>,
) -> Vec<DeploymentCondition> {
    let failures = |idx: &[usize]| -> Vec<DeploymentCondition> {
        ctx.refs(idx)
            .into_iter()
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .filter(|c| c.type_ == REPLICA_FAILURE)
            .map(replica_set_to_deployment_condition)
            .collect()
    };
    let from_new = failures(&new_rs.into_iter().collect::<Vec<_>>());
    if !from_new.is_empty() {
        return from_new;
    }
    failures(all_rss)
}

/// requeueStuckDeployment: None when no progress check is due (-1 upstream), zero for "now",
/// else the time until the Progressing condition's lastUpdateTime passes the deadline.
pub(crate) fn requeue_stuck_deployment(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let status = d.status.clone().unwrap_or_default();
    let current = get_condition(&status, PROGRESSING)?;
    if !has_progress_deadline(d) {
        return None;
    }
    if deployment_complete(d, new_status) || current.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let deadline = SignedDuration::from_secs(i64::from(progress_deadline_seconds(d)));
    let after = match current.last_update_time.as_ref() {
        Some(t) => {
            t.0.duration_since(now)
                .checked_add(deadline)
                .unwrap_or(SignedDuration::MIN)
        }
        None => SignedDuration::MIN,
    };
    if after < SignedDuration::from_secs(1) {
        return Some(Duration::ZERO);
    }
    after.try_into().ok()
}

/// With minReadySeconds, the earliest moment a ready pod of this Deployment turns available.
pub(crate) fn next_pod_available_after(ctx: &Ctx, now: Timestamp) -> Option<Duration> {
    let min_ready = ctx
        .d
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    ctx.pods_by_rs
        .values()
        .flatten()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let ready = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?;
            if ready.status != "True" {
                return None;
            }
            let since = ready.last_transition_time.as_ref()?.0;
            let at = since
                .checked_add(SignedDuration::from_secs(i64::from(min_ready)))
                .ok()?;
            Duration::try_from(at.duration_since(now))
                .ok()
                .filter(|d| !d.is_zero())
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::{Snapshot, reconcile, with_defaults};
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn status(replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..Default::default()
        }
    }

    /// currentDeployment from progress_test.go (Recreate, always observed).
    fn current_deployment(
        pds: Option<i32>,
        replicas: i32,
        status_replicas: i32,
        updated: i32,
        available: i32,
        conditions: Vec<DeploymentCondition>,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("progress-test".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                progress_deadline_seconds: pds,
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some(RECREATE.into()),
                    rolling_update: None,
                }),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                conditions: Some(conditions),
                ..status(status_replicas, updated, available)
            }),
        }
    }

    fn cond(status: &str, reason: &str, at: Option<Timestamp>) -> DeploymentCondition {
        DeploymentCondition {
            type_: PROGRESSING.into(),
            status: status.into(),
            reason: Some(reason.into()),
            last_update_time: at.map(Time),
            last_transition_time: at.map(Time),
            message: None,
        }
    }

    #[test]
    fn requeue_stuck_deployment_matches_upstream_table() {
        let failed = vec![cond("False", TIMED_OUT_REASON, None)];
        let stuck = vec![cond("True", "", Some(ts("2017-02-15T18:49:00Z")))];
        let base = ts("2017-02-15T18:49:00Z");
        let cases: Vec<(
            &str,
            Deployment,
            DeploymentStatus,
            Timestamp,
            Option<Duration>,
        )> = vec![
            (
                "nil progressDeadlineSeconds",
                current_deployment(None, 4, 3, 3, 2, vec![]),
                status(3, 3, 2),
                base,
                None,
            ),
            (
                "infinite progressDeadlineSeconds",
                current_deployment(Some(i32::MAX), 4, 3, 3, 2, vec![]),
                status(3, 3, 2),
                base,
                None,
            ),
            (
                "no progressing condition",
                current_deployment(Some(60), 4, 3, 3, 2, vec![]),
                status(3, 3, 2),
                base,
                None,
            ),
            (
                "complete deployment",
                current_deployment(Some(60), 3, 3, 3, 3, vec![]),
                status(3, 3, 3),
                base,
                None,
            ),
            (
                "already failed deployment",
                current_deployment(Some(60), 3, 3, 3, 0, failed),
                status(3, 3, 0),
                base,
                None,
            ),
            (
                "stuck deployment - 30s",
                current_deployment(Some(60), 3, 3, 3, 1, stuck.clone()),
                status(3, 3, 1),
                ts("2017-02-15T18:49:30Z"),
                Some(Duration::from_secs(30)),
            ),
            (
                "stuck deployment - 1s",
                current_deployment(Some(60), 3, 3, 3, 1, stuck.clone()),
                status(3, 3, 1),
                ts("2017-02-15T18:49:59Z"),
                Some(Duration::from_secs(1)),
            ),
            (
                "less than a second => now",
                current_deployment(Some(60), 3, 3, 3, 1, stuck.clone()),
                status(3, 3, 1),
                ts("2017-02-15T18:49:59.000000001Z"),
                Some(Duration::ZERO),
            ),
            (
                "failed deployment - now",
                current_deployment(Some(60), 3, 3, 3, 1, stuck.clone()),
                status(3, 3, 1),
                ts("2017-02-15T18:50:00Z"),
                Some(Duration::ZERO),
            ),
            (
                "1s after deadline",
                current_deployment(Some(60), 3, 3, 3, 1, stuck.clone()),
                status(3, 3, 1),
                ts("2017-02-15T18:50:01Z"),
                Some(Duration::ZERO),
            ),
            (
                "60s after deadline",
                current_deployment(Some(60), 3, 3, 3, 1, stuck),
                status(3, 3, 1),
                ts("2017-02-15T18:51:00Z"),
                Some(Duration::ZERO),
            ),
        ];
        for (name, d, new_status, now, expected) in cases {
            assert_eq!(
                requeue_stuck_deployment(&d, &new_status, now),
                expected,
                "{name}"
            );
        }
    }

    fn rs_with_available(name: &str, spec: i32, status: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(spec),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: status,
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    /// Runs syncRolloutStatus directly on a working context like TestSyncRolloutStatus does.
    fn run_sync_rollout_status(
        d: &Deployment,
        all: Vec<ReplicaSet>,
        new_rs: Option<ReplicaSet>,
        now: Timestamp,
    ) -> DeploymentStatus {
        let mut rss = all;
        rss.extend(new_rs.clone());
        let refs: Vec<&ReplicaSet> = rss.iter().collect();
        let snapshot = Snapshot {
            deployment: d,
            replica_sets: vec![],
            pods_by_rs: Default::default(),
            now,
        };
        let mut ctx = Ctx::new(&snapshot);
        ctx.d = d.clone();
        ctx.rss = refs.into_iter().cloned().collect();
        let all_idx: Vec<usize> = (0..ctx.rss.len()).collect();
        let new_idx = new_rs.map(|_| ctx.rss.len() - 1);
        sync_rollout_status(&mut ctx, &all_idx, new_idx);
        ctx.d.status.unwrap_or_default()
    }

    #[test]
    fn sync_rollout_status_matches_upstream_table() {
        let test_time = ts("2017-02-15T18:49:00Z");
        let now = ts("2017-02-15T19:49:00Z");
        let failed_timed_out = cond("False", TIMED_OUT_REASON, None);
        let new_rs_available = cond("True", NEW_RS_AVAILABLE_REASON, Some(test_time));
        let replica_set_updated = cond("True", REPLICA_SET_UPDATED_REASON, Some(test_time));
        // (name, deployment, old RSs, new RS, expected (status, reason) or None, lastUpdate kept, lastTransition kept)
        type Case = (
            &'static str,
            Deployment,
            Vec<ReplicaSet>,
            Option<ReplicaSet>,
            Option<(&'static str, &'static str)>,
            bool,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "no progress deadline removes Progressing",
                current_deployment(None, 3, 2, 2, 2, vec![replica_set_updated.clone()]),
                vec![rs_with_available("bar", 0, 1, 1)],
                Some(rs_with_available("foo", 3, 2, 2)),
                None,
                false,
                false,
            ),
            (
                "only one active RS: no estimation",
                current_deployment(Some(60), 3, 3, 3, 3, vec![new_rs_available.clone()]),
                vec![rs_with_available("bar", 3, 3, 3)],
                None,
                Some(("True", NEW_RS_AVAILABLE_REASON)),
                true,
                true,
            ),
            (
                "progressing keeps lastTransitionTime of Progressing=True",
                current_deployment(Some(60), 3, 2, 2, 2, vec![replica_set_updated.clone()]),
                vec![rs_with_available("bar", 0, 1, 1)],
                Some(rs_with_available("foo", 3, 2, 2)),
                Some(("True", REPLICA_SET_UPDATED_REASON)),
                false,
                true,
            ),
            (
                "progressing updates everything after Progressing=False",
                current_deployment(Some(60), 3, 2, 2, 2, vec![failed_timed_out.clone()]),
                vec![rs_with_available("bar", 0, 1, 1)],
                Some(rs_with_available("foo", 3, 2, 2)),
                Some(("True", REPLICA_SET_UPDATED_REASON)),
                false,
                false,
            ),
            (
                "progressing creates the condition",
                current_deployment(Some(60), 3, 2, 2, 2, vec![]),
                vec![rs_with_available("bar", 0, 1, 1)],
                Some(rs_with_available("foo", 3, 2, 2)),
                Some(("True", REPLICA_SET_UPDATED_REASON)),
                false,
                false,
            ),
            (
                "complete keeps lastTransitionTime of Progressing=True",
                current_deployment(Some(60), 3, 3, 3, 3, vec![replica_set_updated.clone()]),
                vec![],
                Some(rs_with_available("foo", 3, 3, 3)),
                Some(("True", NEW_RS_AVAILABLE_REASON)),
                false,
                true,
            ),
            (
                "complete updates everything after Progressing=False",
                current_deployment(Some(60), 3, 3, 3, 3, vec![failed_timed_out.clone()]),
                vec![],
                Some(rs_with_available("foo", 3, 3, 3)),
                Some(("True", NEW_RS_AVAILABLE_REASON)),
                false,
                false,
            ),
            (
                "complete creates the condition",
                current_deployment(Some(60), 3, 3, 3, 3, vec![]),
                vec![],
                Some(rs_with_available("foo", 3, 3, 3)),
                Some(("True", NEW_RS_AVAILABLE_REASON)),
                false,
                false,
            ),
            (
                "complete without a new RS",
                current_deployment(Some(60), 0, 3, 3, 3, vec![replica_set_updated.clone()]),
                vec![rs_with_available("foo", 0, 0, 0)],
                None,
                Some(("True", NEW_RS_AVAILABLE_REASON)),
                false,
                false,
            ),
            (
                "timed out when the deadline passed",
                current_deployment(Some(60), 3, 2, 2, 2, vec![replica_set_updated.clone()]),
                vec![],
                Some(rs_with_available("foo", 3, 2, 2)),
                Some(("False", TIMED_OUT_REASON)),
                false,
                false,
            ),
            (
                "existing timed out condition is kept",
                current_deployment(Some(60), 3, 2, 2, 2, vec![failed_timed_out.clone()]),
                vec![],
                Some(rs_with_available("foo", 3, 2, 2)),
                Some(("False", TIMED_OUT_REASON)),
                true,
                true,
            ),
        ];
        for (name, d, all, new_rs, expected, keep_update, keep_transition) in cases {
            let before = get_condition(d.status.as_ref().expect("status"), PROGRESSING).cloned();
            let status = run_sync_rollout_status(&d, all, new_rs, now);
            let got = get_condition(&status, PROGRESSING);
            match (expected, got) {
                (None, None) => {}
                (Some((s, r)), Some(c)) => {
                    assert_eq!(
                        (c.status.as_str(), c.reason.as_deref()),
                        (s, Some(r)),
                        "{name}"
                    );
                    if keep_update {
                        let before = before.as_ref().expect("previous condition");
                        assert_eq!(
                            c.last_update_time, before.last_update_time,
                            "{name}: lastUpdateTime"
                        );
                    }
                    if keep_transition {
                        let before = before.as_ref().expect("previous condition");
                        assert_eq!(
                            c.last_transition_time, before.last_transition_time,
                            "{name}: lastTransitionTime"
                        );
                    }
                }
                (e, g) => panic!("{name}: expected {e:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn requeue_after_waits_for_the_progress_deadline_plus_a_second() {
        let mut d = with_defaults(&current_deployment(Some(60), 3, 3, 3, 1, vec![]));
        d.metadata.generation = Some(1);
        if let Some(spec) = d.spec.as_mut() {
            spec.selector.match_labels = Some([("app".to_string(), "web".to_string())].into());
        }
        let start = ts("2017-02-15T18:49:00Z");
        let s = Snapshot {
            deployment: &d,
            replica_sets: vec![],
            pods_by_rs: Default::default(),
            now: start,
        };
        // The first pass records a Progressing condition stamped `start`.
        let status = reconcile(&s).into_iter().find_map(|a| match a {
            crate::controllers::deployment::Action::UpdateDeploymentStatus(st) => Some(st),
            _ => None,
        });
        d.status = status;
        let later = ts("2017-02-15T18:49:20Z");
        let s = Snapshot {
            deployment: &d,
            replica_sets: vec![],
            pods_by_rs: Default::default(),
            now: later,
        };
        assert_eq!(
            crate::controllers::deployment::requeue_after(&s),
            Some(Duration::from_secs(41))
        );
    }
}

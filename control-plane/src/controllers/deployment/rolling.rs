//! Port of rolling.go: the RollingUpdate strategy.

use super::sync::{
    all_of, cleanup_deployment, get_all_replica_sets_and_sync_revision,
    scale_replica_set_and_record_event, sync_rollout_status,
};
use super::util::*;
use super::{Ctx, Step};

/// rolloutRolling: scale up the new RS if possible, else scale down old ones; each pass makes
/// one kind of move and lets the ReplicaSet controller catch up before the next.
pub(crate) fn rollout_rolling(ctx: &mut Ctx) -> Step {
    let (new_rs, old_rss) = get_all_replica_sets_and_sync_revision(ctx, true)?;
    let all_rss = all_of(&old_rss, new_rs);
    let Some(new_rs) = new_rs else {
        // Unreachable upstream (creation either succeeds or returns an error).
        return Ok(());
    };

    if reconcile_new_replica_set(ctx, &all_rss, new_rs)? {
        sync_rollout_status(ctx, &all_rss, Some(new_rs));
        return Ok(());
    }

    let active_old: Vec<usize> = old_rss
        .iter()
        .copied()
        .filter(|&i| rs_replicas(&ctx.rss[i]) > 0)
        .collect();
    if reconcile_old_replica_sets(ctx, &all_rss, active_old, new_rs) {
        sync_rollout_status(ctx, &all_rss, Some(new_rs));
        return Ok(());
    }

    let status = ctx.d.status.clone().unwrap_or_default();
    if deployment_complete(&ctx.d, &status) {
        cleanup_deployment(ctx, &old_rss);
    }
    sync_rollout_status(ctx, &all_rss, Some(new_rs));
    Ok(())
}

/// reconcileNewReplicaSet: grow the new RS within maxSurge, or shrink it if oversized.
pub(crate) fn reconcile_new_replica_set(
    ctx: &mut Ctx,
    all_rss: &[usize],
    new_rs: usize,
) -> Step<bool> {
    let replicas = d_replicas(&ctx.d);
    let current = rs_replicas(&ctx.rss[new_rs]);
    if current == replicas {
        return Ok(false);
    }
    if current > replicas {
        return Ok(scale_replica_set_and_record_event(ctx, new_rs, replicas));
    }
    let new_replicas = new_rs_new_replicas(&ctx.d, &ctx.refs(all_rss), &ctx.rss[new_rs])?;
    Ok(scale_replica_set_and_record_event(
        ctx,
        new_rs,
        new_replicas,
    ))
}

/// reconcileOldReplicaSets: scale old RSs down as far as maxUnavailable allows, counting the
/// new RS's unavailable pods against the budget so a broken new template cannot eat the old
/// RSs (rolling.go explains the 10 replicas / maxUnavailable 2 / maxSurge 3 example).
pub(crate) fn reconcile_old_replica_sets(
    ctx: &mut Ctx,
    all_rss: &[usize],
    mut old_rss: Vec<usize>,
    new_rs: usize,
) -> bool {
    let old_pods = get_replica_count_for_replica_sets(ctx.refs(&old_rss));
    if old_pods == 0 {
        return false;
    }
    let all_pods = get_replica_count_for_replica_sets(ctx.refs(all_rss));
    let min_available = d_replicas(&ctx.d).saturating_sub(max_unavailable(&ctx.d));
    let new = &ctx.rss[new_rs];
    let new_rs_unavailable = rs_replicas(new).saturating_sub(rs_available(new));
    let max_scaled_down = all_pods
        .saturating_sub(min_available)
        .saturating_sub(new_rs_unavailable);
    if max_scaled_down <= 0 {
        return false;
    }

    // Unhealthy replicas go first: they cost no availability and would otherwise block the
    // rollout until the deadline (kubernetes#16737).
    let cleanup_count = cleanup_unhealthy_replicas(ctx, &mut old_rss, max_scaled_down);
    let all: Vec<usize> = old_rss.iter().copied().chain([new_rs]).collect();
    let scaled_down = scale_down_old_replica_sets_for_rolling_update(ctx, &all, &mut old_rss);
    cleanup_count + scaled_down > 0
}

/// cleanupUnhealthyReplicas: removes old RSs' unavailable replicas, oldest RS first, up to
/// `max_cleanup` in total. The ReplicaSet controller deletes not-ready pods first.
pub(crate) fn cleanup_unhealthy_replicas(
    ctx: &mut Ctx,
    old_rss: &mut [usize],
    max_cleanup: i32,
) -> i32 {
    let rss = &ctx.rss;
    sort_by_less(old_rss, |a, b| by_creation_timestamp(&rss[*a], &rss[*b]));
    let mut total = 0;
    for &i in old_rss.iter() {
        if total >= max_cleanup {
            break;
        }
        let rs = &ctx.rss[i];
        let (replicas, available) = (rs_replicas(rs), rs_available(rs));
        if replicas == 0 || replicas == available {
            continue;
        }
        let count = max_cleanup
            .saturating_sub(total)
            .min(replicas.saturating_sub(available));
        let new_count = replicas.saturating_sub(count);
        if new_count > replicas {
            // Upstream errors out here (more available than desired); nothing to clean.
            break;
        }
        scale_replica_set_and_record_event(ctx, i, new_count);
        total = total.saturating_add(count);
    }
    total
}

/// scaleDownOldReplicaSetsForRollingUpdate: scale old RSs down (oldest first) by as much as the
/// available pods above minAvailable allow.
pub(crate) fn scale_down_old_replica_sets_for_rolling_update(
    ctx: &mut Ctx,
    all_rss: &[usize],
    old_rss: &mut [usize],
) -> i32 {
    let min_available = d_replicas(&ctx.d).saturating_sub(max_unavailable(&ctx.d));
    let available = get_available_replica_count_for_replica_sets(ctx.refs(all_rss));
    if available <= min_available {
        return 0;
    }
    let rss = &ctx.rss;
    sort_by_less(old_rss, |a, b| by_creation_timestamp(&rss[*a], &rss[*b]));
    let total_to_scale_down = available.saturating_sub(min_available);
    let mut total = 0;
    for &i in old_rss.iter() {
        if total >= total_to_scale_down {
            break;
        }
        let replicas = rs_replicas(&ctx.rss[i]);
        if replicas == 0 {
            continue;
        }
        let count = replicas.min(total_to_scale_down.saturating_sub(total));
        scale_replica_set_and_record_event(ctx, i, replicas.saturating_sub(count));
        total = total.saturating_add(count);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::sync::tests::{
        UpdatedSizes, ctx_for, int, new_deployment, rs,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn reconcile_new_replica_set_matches_upstream_table() {
        // (deployment replicas, maxSurge, old, new, expected new size or None for no scaling)
        let cases: &[(i32, IntOrString, i32, i32, Option<i32>)] = &[
            (10, int(0), 10, 0, None),
            (10, int(2), 10, 0, Some(2)),
            (10, int(2), 5, 0, Some(7)),
            (10, int(2), 10, 2, None),
            (10, int(2), 2, 11, Some(10)),
        ];
        for (n, (replicas, surge, old, new, expected)) in cases.iter().enumerate() {
            let d = new_deployment(
                "foo",
                *replicas,
                None,
                Some(surge.clone()),
                Some(int(0)),
                &[("foo", "bar")],
            );
            let mut ctx = ctx_for(
                &d,
                vec![rs("foo-v2", *new, &[], 0), rs("foo-v1", *old, &[], 0)],
            );
            let scaled = reconcile_new_replica_set(&mut ctx, &[0, 1], 0).expect("no error");
            let sizes = UpdatedSizes::from(&ctx);
            match expected {
                None => assert!(
                    !scaled && sizes.0.is_empty(),
                    "case {n}: unexpected scaling {sizes:?}"
                ),
                Some(e) => {
                    assert!(scaled, "case {n}: expected scaling");
                    assert_eq!(sizes.0, vec![("foo-v2".to_string(), *e)], "case {n}");
                }
            }
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn reconcile_old_replica_sets_matches_upstream_table() {
        // (replicas, maxUnavailable, old, new, ready old, ready new, scale expected, old size after)
        let cases: &[(i32, i32, i32, i32, i32, i32, bool, i32)] = &[
            (10, 0, 10, 0, 10, 0, true, 9),
            (10, 2, 10, 0, 10, 0, true, 8),
            // unhealthy replicas of old RSs are cleaned up
            (10, 2, 10, 0, 8, 0, true, 8),
            // one unhealthy replica cleaned up and one ready pod scaled down
            (10, 2, 10, 0, 9, 0, true, 8),
            // the new RS's unavailable pods don't make us scale down old RSs further
            (10, 2, 8, 2, 8, 0, false, 8),
        ];
        for (n, &(replicas, max_unavail, old, new, ready_old, ready_new, expect, old_after)) in
            cases.iter().enumerate()
        {
            let d = new_deployment(
                "foo",
                replicas,
                None,
                Some(int(0)),
                Some(int(max_unavail)),
                &[("foo", "new")],
            );
            let mut new_rs = rs("foo-new", new, &[("foo", "new")], 0);
            new_rs
                .status
                .get_or_insert_with(Default::default)
                .available_replicas = Some(ready_new);
            let mut old_rs = rs("foo-old", old, &[("foo", "old")], 0);
            old_rs
                .status
                .get_or_insert_with(Default::default)
                .available_replicas = Some(ready_old);
            let mut ctx = ctx_for(&d, vec![old_rs, new_rs]);
            let scaled = reconcile_old_replica_sets(&mut ctx, &[0, 1], vec![0], 1);
            assert_eq!(scaled, expect, "case {n}");
            assert_eq!(rs_replicas(&ctx.rss[0]), old_after, "case {n}");
        }
    }

    #[test]
    fn cleanup_unhealthy_replicas_matches_upstream_table() {
        // (old replicas, ready pods, max cleanup, expected cleanup count)
        for (old, ready, max, expected) in
            [(10, 8, 1, 1), (10, 8, 3, 2), (10, 8, 0, 0), (10, 10, 3, 0)]
        {
            let d = new_deployment("foo", 10, None, Some(int(2)), Some(int(2)), &[]);
            let mut old_rs = rs("foo-v2", old, &[], 0);
            old_rs
                .status
                .get_or_insert_with(Default::default)
                .available_replicas = Some(ready);
            let mut ctx = ctx_for(&d, vec![old_rs]);
            assert_eq!(
                cleanup_unhealthy_replicas(&mut ctx, &mut [0], max),
                expected,
                "{old}/{ready}/{max}"
            );
        }
    }

    #[test]
    fn scale_down_old_replica_sets_for_rolling_update_matches_upstream_table() {
        // (replicas, maxUnavailable, ready pods, old replicas, expected old size or None)
        let cases = [
            (10, 0, 10, 10, Some(9)),
            (10, 2, 10, 10, Some(8)),
            (10, 2, 8, 10, None),
            (10, 2, 10, 0, None),
            (10, 2, 1, 10, None),
        ];
        for (replicas, max_unavail, ready, old, expected) in cases {
            let d = new_deployment(
                "foo",
                replicas,
                None,
                Some(int(0)),
                Some(int(max_unavail)),
                &[("foo", "bar")],
            );
            let mut old_rs = rs("foo-v2", old, &[], 0);
            old_rs
                .status
                .get_or_insert_with(Default::default)
                .available_replicas = Some(ready);
            let mut ctx = ctx_for(&d, vec![old_rs]);
            let scaled = scale_down_old_replica_sets_for_rolling_update(&mut ctx, &[0], &mut [0]);
            let sizes = UpdatedSizes::from(&ctx);
            match expected {
                None => assert!(
                    scaled == 0 && sizes.0.is_empty(),
                    "{replicas}/{max_unavail}/{ready}/{old}"
                ),
                Some(e) => assert_eq!(
                    sizes.0,
                    vec![("foo-v2".to_string(), e)],
                    "{replicas}/{max_unavail}/{ready}/{old}"
                ),
            }
        }
    }
}

//! Port of recreate.go: the Recreate strategy (all old pods gone before any new one starts).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::sync::{
    all_of, cleanup_deployment, get_all_replica_sets_and_sync_revision,
    scale_replica_set_and_record_event, sync_rollout_status,
};
use super::util::*;
use super::{Ctx, Step};

pub(crate) fn rollout_recreate(ctx: &mut Ctx) -> Step {
    // Not creating the new RS yet, so nothing scales up before the old RSs are down.
    let (mut new_rs, mut old_rss) = get_all_replica_sets_and_sync_revision(ctx, false)?;
    let mut all_rss = all_of(&old_rss, new_rs);
    let active_old: Vec<usize> = old_rss
        .iter()
        .copied()
        .filter(|&i| rs_replicas(&ctx.rss[i]) > 0)
        .collect();

    if scale_down_old_replica_sets_for_recreate(ctx, &active_old) {
        sync_rollout_status(ctx, &all_rss, new_rs);
        return Ok(());
    }

    let new_uid = new_rs.and_then(|i| ctx.rss[i].metadata.uid.clone());
    if old_pods_running(new_uid.as_deref(), &ctx.refs(&old_rss), &ctx.pods_by_rs) {
        sync_rollout_status(ctx, &all_rss, new_rs);
        return Ok(());
    }

    if new_rs.is_none() {
        (new_rs, old_rss) = get_all_replica_sets_and_sync_revision(ctx, true)?;
        all_rss = all_of(&old_rss, new_rs);
    }

    if let Some(i) = new_rs {
        let replicas = d_replicas(&ctx.d);
        scale_replica_set_and_record_event(ctx, i, replicas);
    }

    let status = ctx.d.status.clone().unwrap_or_default();
    if deployment_complete(&ctx.d, &status) {
        cleanup_deployment(ctx, &old_rss);
    }
    sync_rollout_status(ctx, &all_rss, new_rs);
    Ok(())
}

/// scaleDownOldReplicaSetsForRecreate: every active old RS goes to 0 at once.
fn scale_down_old_replica_sets_for_recreate(ctx: &mut Ctx, old_rss: &[usize]) -> bool {
    let mut scaled = false;
    for &i in old_rss {
        if rs_replicas(&ctx.rss[i]) == 0 {
            continue;
        }
        scaled |= scale_replica_set_and_record_event(ctx, i, 0);
    }
    scaled
}

/// oldPodsRunning: old RSs still report pods, or a non-terminal pod of an old RS exists.
/// Pods in phase Unknown count: they may well still be running.
pub(crate) fn old_pods_running(
    new_rs_uid: Option<&str>,
    old_rss: &[&k8s_openapi::api::apps::v1::ReplicaSet],
    pods_by_rs: &BTreeMap<String, Vec<&Pod>>,
) -> bool {
    if get_actual_replica_count_for_replica_sets(old_rss.iter().copied()) > 0 {
        return true;
    }
    pods_by_rs
        .iter()
        .filter(|(uid, _)| new_rs_uid != Some(uid.as_str()))
        .flat_map(|(_, pods)| pods.iter())
        .any(|pod| {
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("");
            !matches!(phase, "Failed" | "Succeeded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::sync::tests::{ctx_for, new_deployment, rs};
    use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::PodStatus;

    fn pod(phase: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rs_with_status(name: &str, spec: i32, status: i32) -> ReplicaSet {
        let mut r = rs(name, spec, &[], 0);
        r.status = Some(ReplicaSetStatus {
            replicas: status,
            ..Default::default()
        });
        r
    }

    #[test]
    fn scale_down_old_replica_sets_sets_every_old_replica_set_to_zero() {
        let d = new_deployment("foo", 3, None, None, None, &[("foo", "bar")]);
        let mut ctx = ctx_for(&d, vec![rs("foo-0", 3, &[], 0), rs("foo-1", 2, &[], 1)]);
        assert!(scale_down_old_replica_sets_for_recreate(&mut ctx, &[0, 1]));
        assert!(ctx.rss.iter().all(|r| rs_replicas(r) == 0));
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn old_pods_running_matches_upstream_table() {
        let (running, pending, unknown, failed, succeeded) = (
            pod("Running"),
            pod("Pending"),
            pod("Unknown"),
            pod("Failed"),
            pod("Succeeded"),
        );
        let empty = Pod::default();
        let zero = rs_with_status("rs-1", 0, 0);
        fn map<'p>(entries: Vec<(&str, Vec<&'p Pod>)>) -> BTreeMap<String, Vec<&'p Pod>> {
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        }
        let cases: Vec<(&str, Vec<ReplicaSet>, BTreeMap<String, Vec<&Pod>>, bool)> = vec![
            ("no old RSs", vec![], BTreeMap::new(), false),
            (
                "old RSs with running pods",
                vec![
                    rs("foo-some-uid", 0, &[], 0),
                    rs("foo-other-uid", 0, &[], 0),
                ],
                map(vec![
                    ("some-uid", vec![&empty, &empty]),
                    ("other-uid", vec![&empty, &empty]),
                ]),
                true,
            ),
            (
                "old RSs without pods but with non-zero status replicas",
                vec![rs_with_status("rs-1", 0, 1)],
                BTreeMap::new(),
                true,
            ),
            (
                "old RSs without pods or non-zero status replicas",
                vec![zero.clone()],
                BTreeMap::new(),
                false,
            ),
            (
                "only terminal pods",
                vec![zero.clone()],
                map(vec![("uid-1", vec![&failed, &succeeded])]),
                false,
            ),
            (
                "pod in unknown phase",
                vec![zero.clone()],
                map(vec![("uid-1", vec![&unknown])]),
                true,
            ),
            (
                "pending pod",
                vec![zero.clone()],
                map(vec![("uid-1", vec![&pending])]),
                true,
            ),
            (
                "running pod",
                vec![zero.clone()],
                map(vec![("uid-1", vec![&running])]),
                true,
            ),
            (
                "terminal and pending pods",
                vec![zero],
                map(vec![
                    ("uid-1", vec![&failed, &succeeded]),
                    ("uid-2", vec![]),
                    ("uid-3", vec![&pending]),
                ]),
                true,
            ),
        ];
        for (name, olds, pods, expected) in cases {
            let refs: Vec<&ReplicaSet> = olds.iter().collect();
            assert_eq!(old_pods_running(None, &refs, &pods), expected, "{name}");
        }
    }

    #[test]
    fn pods_of_the_new_replica_set_do_not_block_the_recreate() {
        let running = pod("Running");
        let pods: BTreeMap<String, Vec<&Pod>> = [("new-uid".to_string(), vec![&running])].into();
        assert!(!old_pods_running(Some("new-uid"), &[], &pods));
        assert!(old_pods_running(Some("other"), &[], &pods));
    }
}

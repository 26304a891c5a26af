//! Port of sync.go and syncDeployment from deployment_controller.go: revision bookkeeping, the
//! new ReplicaSet, proportional scaling, history cleanup and status calculation.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::hash::compute_hash;
use super::util::*;
use super::{Ctx, Halt, Step, progress, recreate, rolling};

/// syncDeployment after the Deployment and its objects were listed.
pub(crate) fn sync_deployment(ctx: &mut Ctx) -> Step {
    let selector = ctx
        .d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    if selector_is_empty(&selector) {
        ctx.event(
            "Warning",
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        let generation = ctx.d.metadata.generation.unwrap_or(0);
        let status = ctx.status_mut();
        if status.observed_generation.unwrap_or(0) < generation {
            status.observed_generation = Some(generation);
        }
        return Ok(());
    }
    if ctx.d.metadata.deletion_timestamp.is_some() {
        return sync_status_only(ctx);
    }
    // Pausing/resuming records an Unknown Progressing condition so that time spent paused
    // never counts against progressDeadlineSeconds.
    check_paused_conditions(ctx);
    if ctx.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        return sync(ctx);
    }
    if is_scaling_event(ctx)? {
        return sync(ctx);
    }
    match strategy_type(&ctx.d) {
        RECREATE => recreate::rollout_recreate(ctx),
        ROLLING_UPDATE => rolling::rollout_rolling(ctx),
        other => Err(Halt::Invalid(Error::UnsupportedStrategy(other.to_string()))),
    }
}

/// syncStatusOnly: for Deployments being deleted.
fn sync_status_only(ctx: &mut Ctx) -> Step {
    let (new_rs, old_rss) = get_all_replica_sets_and_sync_revision(ctx, false)?;
    sync_deployment_status(ctx, &all_of(&old_rss, new_rs), new_rs);
    Ok(())
}

/// sync: scaling events and paused Deployments; scales but never rolls out.
pub(crate) fn sync(ctx: &mut Ctx) -> Step {
    let (new_rs, old_rss) = get_all_replica_sets_and_sync_revision(ctx, false)?;
    scale(ctx, new_rs, &old_rss);
    // Rollback-in-flight is the only case upstream skips here; that API is gone from apps/v1.
    if ctx.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        cleanup_deployment(ctx, &old_rss);
    }
    sync_deployment_status(ctx, &all_of(&old_rss, new_rs), new_rs);
    Ok(())
}

pub(crate) fn all_of(old_rss: &[usize], new_rs: Option<usize>) -> Vec<usize> {
    old_rss.iter().copied().chain(new_rs).collect()
}

/// checkPausedConditions.
fn check_paused_conditions(ctx: &mut Ctx) {
    if !has_progress_deadline(&ctx.d) {
        return;
    }
    let status = ctx.d.status.clone().unwrap_or_default();
    let reason = get_condition(&status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT_REASON) {
        // A reported lack of progress must not be overwritten by the paused condition.
        return;
    }
    let paused_cond_exists = reason.as_deref() == Some(PAUSED_DEPLOY_REASON);
    let paused = ctx.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let now = ctx.now;
    if paused && !paused_cond_exists {
        let c = new_condition(
            PROGRESSING,
            "Unknown",
            PAUSED_DEPLOY_REASON,
            "Deployment is paused",
            now,
        );
        set_condition(ctx.status_mut(), c);
    } else if !paused && paused_cond_exists {
        let c = new_condition(
            PROGRESSING,
            "Unknown",
            RESUMED_DEPLOY_REASON,
            "Deployment is resumed",
            now,
        );
        set_condition(ctx.status_mut(), c);
    }
}

/// getAllReplicaSetsAndSyncRevision: (new RS, all old RSs), with the new RS's and the
/// Deployment's revision brought up to date.
pub(crate) fn get_all_replica_sets_and_sync_revision(
    ctx: &mut Ctx,
    create_if_not_existed: bool,
) -> Step<(Option<usize>, Vec<usize>)> {
    let all: Vec<usize> = (0..ctx.rss.len()).collect();
    let refs = ctx.refs(&all);
    let (_, all_old) = find_old_replica_sets(&ctx.d, &refs);
    let old_idx: Vec<usize> = all_old.iter().filter_map(|rs| ctx.index_of(rs)).collect();
    let new_rs = get_new_replica_set(ctx, &old_idx, create_if_not_existed)?;
    Ok((new_rs, old_idx))
}

/// getNewReplicaSet: finds the RS whose template matches (syncing its annotations and the
/// Deployment's revision), or creates it with revision max(old)+1.
fn get_new_replica_set(
    ctx: &mut Ctx,
    old_rss: &[usize],
    create_if_not_existed: bool,
) -> Step<Option<usize>> {
    let all: Vec<usize> = (0..ctx.rss.len()).collect();
    let existing = find_new_replica_set(&ctx.d, &ctx.refs(&all)).and_then(|rs| ctx.index_of(rs));
    let new_revision = (max_revision(ctx.refs(old_rss)).saturating_add(1)).to_string();
    let min_ready_seconds = ctx.d.spec.as_ref().and_then(|s| s.min_ready_seconds);

    if let Some(i) = existing {
        let mut rs_copy = ctx.rss[i].clone();
        let annotations_updated = set_new_replica_set_annotations(
            &ctx.d,
            &mut rs_copy,
            &new_revision,
            true,
            MAX_REV_HISTORY_LENGTH_IN_CHARS,
        );
        let rs_min_ready = rs_copy.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if annotations_updated || rs_min_ready.unwrap_or(0) != min_ready_seconds.unwrap_or(0) {
            rs_copy
                .spec
                .get_or_insert_with(Default::default)
                .min_ready_seconds = min_ready_seconds;
            ctx.rss[i] = rs_copy;
            ctx.write_rs(i);
            // As upstream, the Deployment's revision is synced by a later call, which sees this
            // working copy (the next one in this pass, or the next pass).
            return Ok(Some(i));
        }
        let rs_revision = rs_copy
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        set_deployment_revision(ctx.annotations_mut(), &rs_revision);
        // Users who set a deadline on an existing Deployment start the clock at the first
        // time their new RS is noticed.
        let status = ctx.d.status.clone().unwrap_or_default();
        if has_progress_deadline(&ctx.d) && get_condition(&status, PROGRESSING).is_none() {
            let msg = format!("Found new replica set {}", quote(rs_name(&rs_copy)));
            let c = new_condition(PROGRESSING, "True", FOUND_NEW_RS_REASON, &msg, ctx.now);
            set_condition(ctx.status_mut(), c);
        }
        return Ok(Some(i));
    }

    if !create_if_not_existed {
        return Ok(None);
    }

    let spec = ctx.d.spec.clone().unwrap_or_default();
    let collision_count = ctx.d.status.as_ref().and_then(|s| s.collision_count);
    let mut template = spec.template.clone();
    let hash = compute_hash(&template, collision_count);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), hash.clone());
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels = Some(labels.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), hash.clone());

    let name = format!("{}-{}", ctx.d.metadata.name.as_deref().unwrap_or(""), hash);
    if ctx
        .rss
        .iter()
        .any(|rs| rs.metadata.name.as_deref() == Some(name.as_str()))
    {
        // The name is taken by an RS with another template: hash collision. Bump the count so
        // the next pass computes a different name (upstream learns this from AlreadyExists).
        let status = ctx.status_mut();
        status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
        return Err(Halt::HashCollision);
    }

    let mut new_rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: ctx.d.metadata.namespace.clone(),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: ctx.d.metadata.name.clone().unwrap_or_default(),
                uid: ctx.d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    let new_replicas = {
        let mut all = ctx.refs(old_rss);
        all.push(&new_rs);
        new_rs_new_replicas(&ctx.d, &all, &new_rs)?
    };
    set_rs_replicas(&mut new_rs, new_replicas);
    set_new_replica_set_annotations(
        &ctx.d,
        &mut new_rs,
        &new_revision,
        false,
        MAX_REV_HISTORY_LENGTH_IN_CHARS,
    );
    let rs_name = new_rs.metadata.name.clone().unwrap_or_default();
    let idx = ctx.create_rs(new_rs);
    if new_replicas > 0 {
        ctx.event(
            "Normal",
            "ScalingReplicaSet",
            format!("Scaled up replica set {rs_name} from 0 to {new_replicas}"),
        );
    }
    set_deployment_revision(ctx.annotations_mut(), &new_revision);
    if has_progress_deadline(&ctx.d) {
        let msg = format!("Created new replica set {}", quote(&rs_name));
        let c = new_condition(PROGRESSING, "True", NEW_REPLICA_SET_REASON, &msg, ctx.now);
        set_condition(ctx.status_mut(), c);
    }
    Ok(Some(idx))
}

/// scale: proportional scaling, so that resizing a Deployment mid-rollout neither hastens nor
/// slows the rollout. Runs on scaling events and for paused Deployments.
pub(crate) fn scale(ctx: &mut Ctx, new_rs: Option<usize>, old_rss: &[usize]) {
    let replicas = d_replicas(&ctx.d);
    let active_or_latest = {
        let new_ref = new_rs.and_then(|i| ctx.rss.get(i));
        find_active_or_latest(new_ref, &ctx.refs(old_rss)).and_then(|rs| ctx.index_of(rs))
    };
    if let Some(i) = active_or_latest {
        if rs_replicas(&ctx.rss[i]) != replicas {
            scale_replica_set_and_record_event(ctx, i, replicas);
        }
        return;
    }

    // A saturated new RS means old ones (e.g. adopted during the rollout) go to zero.
    if is_saturated(&ctx.d, new_rs.and_then(|i| ctx.rss.get(i))) {
        let active: Vec<usize> = old_rss
            .iter()
            .copied()
            .filter(|&i| rs_replicas(&ctx.rss[i]) > 0)
            .collect();
        for i in active {
            scale_replica_set_and_record_event(ctx, i, 0);
        }
        return;
    }

    if !is_rolling_update(&ctx.d) {
        return;
    }
    let mut all: Vec<usize> = all_of(old_rss, new_rs)
        .into_iter()
        .filter(|&i| rs_replicas(&ctx.rss[i]) > 0)
        .collect();
    let all_replicas = get_replica_count_for_replica_sets(ctx.refs(&all));
    let allowed_size = if replicas > 0 {
        replicas.saturating_add(max_surge(&ctx.d))
    } else {
        0
    };
    let to_add = allowed_size.saturating_sub(all_replicas);

    // Equal sizes: scale newer RSs up first and older RSs down first.
    let rss = &ctx.rss;
    if to_add > 0 {
        sort_by_less(&mut all, |a, b| by_size_newer(&rss[*a], &rss[*b]));
    } else if to_add < 0 {
        sort_by_less(&mut all, |a, b| by_size_older(&rss[*a], &rss[*b]));
    }

    let mut added = 0;
    let mut sizes = Vec::with_capacity(all.len());
    for &i in &all {
        let rs = &ctx.rss[i];
        if to_add != 0 {
            let proportion = get_proportion(Some(rs), &ctx.d, to_add, added);
            sizes.push(rs_replicas(rs).saturating_add(proportion));
            added = added.saturating_add(proportion);
        } else {
            sizes.push(rs_replicas(rs));
        }
    }
    for (k, &i) in all.iter().enumerate() {
        // Leftovers go to the first RS: the largest (newest when scaling up).
        if k == 0 && to_add != 0 {
            sizes[0] = sizes[0].saturating_add(to_add.saturating_sub(added)).max(0);
        }
        scale_replica_set(ctx, i, sizes[k]);
    }
}

pub(crate) fn scale_replica_set_and_record_event(
    ctx: &mut Ctx,
    idx: usize,
    new_scale: i32,
) -> bool {
    if rs_replicas(&ctx.rss[idx]) == new_scale {
        return false;
    }
    scale_replica_set(ctx, idx, new_scale)
}

/// scaleReplicaSet: writes size and desired/max-replicas annotations; true if the size changed.
pub(crate) fn scale_replica_set(ctx: &mut Ctx, idx: usize, new_scale: i32) -> bool {
    let desired = d_replicas(&ctx.d);
    let max = desired.saturating_add(max_surge(&ctx.d));
    let rs = &mut ctx.rss[idx];
    let old_scale = rs_replicas(rs);
    let size_needs_update = old_scale != new_scale;
    if !size_needs_update && !replicas_annotations_need_update(rs, desired, max) {
        return false;
    }
    set_rs_replicas(rs, new_scale);
    set_replicas_annotations(rs, desired, max);
    let name = rs_name(rs).to_string();
    ctx.write_rs(idx);
    if size_needs_update {
        let op = if old_scale < new_scale { "up" } else { "down" };
        ctx.event(
            "Normal",
            "ScalingReplicaSet",
            format!("Scaled {op} replica set {name} from {old_scale} to {new_scale}"),
        );
    }
    size_needs_update
}

/// cleanupDeployment: keeps revisionHistoryLimit old RSs, deleting the lowest revisions among
/// those that are fully scaled down and observed.
pub(crate) fn cleanup_deployment(ctx: &mut Ctx, old_rss: &[usize]) {
    if !has_revision_history_limit(&ctx.d) {
        return;
    }
    let limit = i64::from(
        ctx.d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(0),
    );
    let mut cleanable: Vec<usize> = old_rss
        .iter()
        .copied()
        .filter(|&i| ctx.rss[i].metadata.deletion_timestamp.is_none())
        .collect();
    let diff = cleanable.len() as i64 - limit;
    if diff <= 0 {
        return;
    }
    let rss = &ctx.rss;
    sort_by_less(&mut cleanable, |a, b| by_revision(&rss[*a], &rss[*b]));
    for &i in cleanable.iter().take(diff as usize) {
        let rs = &ctx.rss[i];
        let observed = rs
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0);
        if rs_status_replicas(rs) != 0
            || rs_replicas(rs) != 0
            || rs.metadata.generation.unwrap_or(0) > observed
            || rs.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        ctx.delete_rs(i);
    }
}

/// syncDeploymentStatus.
pub(crate) fn sync_deployment_status(ctx: &mut Ctx, all_rss: &[usize], new_rs: Option<usize>) {
    let status = calculate_status(ctx, all_rss, new_rs);
    ctx.d.status = Some(status);
}

/// calculateStatus: counts from the RSs' statuses, conditions carried over plus Available.
pub(crate) fn calculate_status(
    ctx: &Ctx,
    all_rss: &[usize],
    new_rs: Option<usize>,
) -> DeploymentStatus {
    let all = ctx.refs(all_rss);
    let available = get_available_replica_count_for_replica_sets(all.iter().copied());
    let total = get_replica_count_for_replica_sets(all.iter().copied());
    // More available than desired happens while scaling down.
    let unavailable = total.saturating_sub(available).max(0);
    let nz = |v: i32| Some(v).filter(|n| *n != 0);
    let current = ctx.d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: ctx.d.metadata.generation.filter(|g| *g != 0),
        replicas: nz(get_actual_replica_count_for_replica_sets(
            all.iter().copied(),
        )),
        updated_replicas: nz(get_actual_replica_count_for_replica_sets(
            new_rs.and_then(|i| ctx.rss.get(i)),
        )),
        ready_replicas: nz(get_ready_replica_count_for_replica_sets(
            all.iter().copied(),
        )),
        available_replicas: nz(available),
        unavailable_replicas: nz(unavailable),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: None,
    };
    let condition = if available >= d_replicas(&ctx.d).saturating_sub(max_unavailable(&ctx.d)) {
        new_condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            ctx.now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            ctx.now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// isScalingEvent: an active RS was annotated with a different desired size than spec.replicas.
fn is_scaling_event(ctx: &mut Ctx) -> Step<bool> {
    let (new_rs, old_rss) = get_all_replica_sets_and_sync_revision(ctx, false)?;
    let replicas = d_replicas(&ctx.d);
    Ok(ctx
        .refs(&all_of(&old_rss, new_rs))
        .into_iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .any(|rs| get_desired_replicas_annotation(rs).is_some_and(|desired| desired != replicas)))
}

pub(crate) use progress::sync_rollout_status;

#[cfg(test)]
#[path = "sync_tests.rs"]
pub(crate) mod tests;

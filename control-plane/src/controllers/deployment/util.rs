//! Port of pkg/controller/deployment/util/deployment_util.go plus the bits of
//! pkg/controller/controller_utils.go the deployment controller relies on (sort orders,
//! active-RS filter). Everything is a pure function over k8s-openapi objects.
//!
//! Where Go dereferences a pointer that validation/defaulting guarantees (spec.replicas,
//! strategy.rollingUpdate), a missing value is read as Go's zero value instead of panicking.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use super::hash::{DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, equal_ignore_hash};

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// apps.DeprecatedRollbackTo: never copied between Deployment and ReplicaSets.
pub const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub const ROLLING_UPDATE: &str = "RollingUpdate";
pub const RECREATE: &str = "Recreate";

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const PAUSED_DEPLOY_REASON: &str = "DeploymentPaused";
pub const RESUMED_DEPLOY_REASON: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Limit of the revision-history annotation (~100 revisions), sync.go's maxRevHistoryLengthInChars.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value for IntOrString: invalid value for percentage {0:?}")]
    InvalidPercentage(String),
    #[error("deployment type {0} isn't supported")]
    UnsupportedStrategy(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---- field access with Go zero-value semantics -------------------------------------------

pub fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn rs_name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("")
}

fn rolling_params(d: &Deployment) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    (
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
    )
}

fn status_of(d: &Deployment) -> DeploymentStatus {
    d.status.clone().unwrap_or_default()
}

// ---- conditions ---------------------------------------------------------------------------

/// metav1.Now() as it reads back from the API: RFC 3339 with whole seconds.
pub fn to_time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(to_time(now)),
        last_transition_time: Some(to_time(now)),
    }
}

pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// SetDeploymentCondition: no-op when status and reason are unchanged; keeps
/// lastTransitionTime when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

pub fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        last_transition_time: c.last_transition_time.clone(),
        last_update_time: c.last_transition_time.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

// ---- revisions and annotations --------------------------------------------------------------

/// SetDeploymentRevision: returns whether the annotation changed.
pub fn set_deployment_revision(annotations: &mut BTreeMap<String, String>, revision: &str) -> bool {
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.into(), revision.into());
    true
}

/// Revision of an RS: 0 when unannotated, None when the annotation is not an int64.
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
    {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().filter_map(revision).fold(0, i64::max)
}

/// LastRevision: the second highest revision.
pub fn last_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    let (mut max, mut sec_max) = (0, 0);
    for v in rss.into_iter().filter_map(revision) {
        if v >= max {
            sec_max = max;
            max = v;
        } else if v > sec_max {
            sec_max = v;
        }
    }
    sec_max
}

pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_CONFIG_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO
    )
}

fn copy_deployment_annotations_to_replica_set(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let rs_annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || rs_annotations.get(k) == Some(v) {
            continue;
        }
        rs_annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// SetDeploymentAnnotationsTo (rollback.go): the Deployment takes the rolled-back-to RS's
/// annotations, keeping only its own skipped ones (revision, last-applied, ...).
pub fn set_deployment_annotations_to(d: &mut Deployment, rollback_to: &ReplicaSet) {
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| skip_copy_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in rollback_to.metadata.annotations.iter().flatten() {
        if !skip_copy_annotation(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(annotations);
}

/// SetNewReplicaSetAnnotations: copies the Deployment's annotations, raises the revision to
/// `new_revision` (recording the previous one in revision-history, which is how a rollback to
/// an old template shows up), and for a not-yet-created RS sets desired/max replicas.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    rev_history_limit_in_chars: usize,
) -> bool {
    let mut changed = copy_deployment_annotations_to_replica_set(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    let Ok(new_revision_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_revision_int < new_revision_int {
        annotations.insert(REVISION_ANNOTATION.into(), new_revision.into());
        changed = true;
    }
    if let Some(old_revision) = old_revision.filter(|_| old_revision_int < new_revision_int) {
        let history = annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            annotations.insert(REVISION_HISTORY_ANNOTATION.into(), old_revision);
        } else {
            let old_revisions: Vec<&str> = history.split(',').collect();
            let mut total_len = history.len() + old_revision.len() + 1;
            let mut start = 0;
            while total_len > rev_history_limit_in_chars && start < old_revisions.len() {
                total_len -= old_revisions[start].len() + 1;
                start += 1;
            }
            if total_len <= rev_history_limit_in_chars {
                let mut kept: Vec<&str> = old_revisions[start..].to_vec();
                kept.push(&old_revision);
                annotations.insert(REVISION_HISTORY_ANNOTATION.into(), kept.join(","));
            }
        }
    }
    if !exists {
        let desired = d_replicas(d);
        if set_replicas_annotations(rs, desired, desired.saturating_add(max_surge(d))) {
            changed = true;
        }
    }
    changed
}

/// getNonNegativeInt32FromAnnotation: Some(v) only for a decimal in 0..=i32::MAX.
pub fn get_non_negative_int32_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    let v = rs.metadata.annotations.as_ref()?.get(key)?;
    if v.starts_with(['+', '-']) {
        return None;
    }
    v.parse::<u32>().ok().and_then(|n| i32::try_from(n).ok())
}

pub fn get_desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    get_non_negative_int32_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

pub fn get_max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    get_non_negative_int32_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            updated = true;
        }
    }
    updated
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let Some(annotations) = rs.metadata.annotations.as_ref() else {
        return true;
    };
    annotations.get(DESIRED_REPLICAS_ANNOTATION) != Some(&desired.to_string())
        || annotations.get(MAX_REPLICAS_ANNOTATION) != Some(&max.to_string())
}

// ---- surge / unavailability -----------------------------------------------------------------

/// intstr.GetScaledValueFromIntOrPercent: percentages of `total`, rounded up or down.
pub fn get_value_from_int_or_percent(v: &IntOrString, total: i32, round_up: bool) -> Result<i32> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or(Error::NotAPercentage)?;
            let pct: i64 = digits
                .parse()
                .map_err(|_| Error::InvalidPercentage(s.clone()))?;
            let scaled = pct as f64 * f64::from(total) / 100.0;
            let r = if round_up {
                scaled.ceil()
            } else {
                scaled.floor()
            };
            Ok(r.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        }
    }
}

/// ResolveFenceposts: surge rounds up, unavailable rounds down, and if both end up 0 the
/// rollout could never make progress, so unavailable becomes 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32)> {
    let zero = IntOrString::Int(0);
    let surge = get_value_from_int_or_percent(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable =
        get_value_from_int_or_percent(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == ROLLING_UPDATE
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = d_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    let (_, max_unavailable) = resolve_fenceposts(surge, unavailable, replicas).unwrap_or((0, 0));
    max_unavailable.min(replicas)
}

pub fn min_available(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    d_replicas(d).saturating_sub(max_unavailable(d))
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(surge, unavailable, d_replicas(d)).map_or(0, |(s, _)| s)
}

// ---- proportional scaling -------------------------------------------------------------------

/// GetProportion: how many replicas `rs` should gain (or lose) out of the
/// `to_add - added` still to be distributed.
pub fn get_proportion(rs: Option<&ReplicaSet>, d: &Deployment, to_add: i32, added: i32) -> i32 {
    let Some(rs) = rs else { return 0 };
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = get_replica_set_fraction(rs, d);
    let allowed = to_add.saturating_sub(added);
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// getReplicaSetFraction: the RS keeps its share of (replicas + maxSurge) relative to the size
/// the Deployment had when the RS was last annotated (max-replicas).
pub fn get_replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = rs_replicas(rs);
    if d_replicas(d) == 0 {
        return replicas.saturating_neg();
    }
    let deployment_replicas = d_replicas(d).saturating_add(max_surge(d));
    let annotated = match get_max_replicas_annotation(rs) {
        Some(n) if n != 0 => n,
        // Missing or zeroed by a third party: fall back to the last observed size.
        _ => status_of(d).replicas.unwrap_or(0),
    };
    if annotated == 0 {
        return 0;
    }
    let new_size = f64::from(replicas) * f64::from(deployment_replicas) / f64::from(annotated);
    (new_size
        .round()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        .saturating_sub(replicas)
}

// ---- finding replica sets -------------------------------------------------------------------

/// ReplicaSetsByCreationTimestamp.Less: older first, name as the tie breaker.
pub fn by_creation_timestamp(a: &ReplicaSet, b: &ReplicaSet) -> bool {
    match a
        .metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
    {
        Ordering::Equal => rs_name(a) < rs_name(b),
        o => o == Ordering::Less,
    }
}

/// ReplicaSetsBySizeOlder: larger first, older first among equals.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> bool {
    if rs_replicas(a) == rs_replicas(b) {
        return by_creation_timestamp(a, b);
    }
    rs_replicas(a) > rs_replicas(b)
}

/// ReplicaSetsBySizeNewer: larger first, newer first among equals.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> bool {
    if rs_replicas(a) == rs_replicas(b) {
        return by_creation_timestamp(b, a);
    }
    rs_replicas(a) > rs_replicas(b)
}

/// ReplicaSetsByRevision: lower revision first; creation time when revisions tie or can't be read.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> bool {
    match (revision(a), revision(b)) {
        (Some(ra), Some(rb)) if ra != rb => ra < rb,
        _ => by_creation_timestamp(a, b),
    }
}

/// Stable insertion sort with a Go-style `Less`. Go tolerates inconsistent comparators (such as
/// ByRevision with unparsable revisions) where std's sort may panic, and these lists are short.
pub fn sort_by_less<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && less(&v[j], &v[j - 1]) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// FindNewReplicaSet: the oldest RS whose template equals the Deployment's (ignoring the hash).
pub fn find_new_replica_set<'a>(d: &Deployment, rss: &[&'a ReplicaSet]) -> Option<&'a ReplicaSet> {
    let mut sorted = rss.to_vec();
    sort_by_less(&mut sorted, |a, b| by_creation_timestamp(a, b));
    let template = d.spec.as_ref().map(|s| &s.template);
    sorted.into_iter().find(|rs| {
        let rs_template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
        match (rs_template, template) {
            (Some(a), Some(b)) => equal_ignore_hash(a, b),
            (None, None) => true,
            (Some(a), None) | (None, Some(a)) => equal_ignore_hash(a, &Default::default()),
        }
    })
}

/// FindOldReplicaSets: (old RSs with replicas, all old RSs).
pub fn find_old_replica_sets<'a>(
    d: &Deployment,
    rss: &[&'a ReplicaSet],
) -> (Vec<&'a ReplicaSet>, Vec<&'a ReplicaSet>) {
    let new_rs = find_new_replica_set(d, rss);
    let all: Vec<&ReplicaSet> = rss
        .iter()
        .copied()
        .filter(|rs| new_rs.is_none_or(|n| !std::ptr::eq(*rs, n)))
        .collect();
    let required = all
        .iter()
        .copied()
        .filter(|rs| rs_replicas(rs) != 0)
        .collect();
    (required, all)
}

/// FindActiveOrLatest: the single active RS, the newest one if none is active, or None when
/// several are active (they must be scaled proportionally).
pub fn find_active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    old_rss: &[&'a ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut olds = old_rss.to_vec();
    sort_by_less(&mut olds, |a, b| by_creation_timestamp(b, a));
    let active: Vec<&ReplicaSet> = olds
        .iter()
        .copied()
        .chain(new_rs)
        .filter(|rs| rs_replicas(rs) > 0)
        .collect();
    match active.len() {
        0 => new_rs.or_else(|| olds.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// controller.FilterActiveReplicaSets.
pub fn filter_active_replica_sets<'a>(rss: &[&'a ReplicaSet]) -> Vec<&'a ReplicaSet> {
    rss.iter()
        .copied()
        .filter(|rs| rs_replicas(rs) > 0)
        .collect()
}

pub fn get_replica_count_for_replica_sets<'a>(
    rss: impl IntoIterator<Item = &'a ReplicaSet>,
) -> i32 {
    rss.into_iter()
        .map(rs_replicas)
        .fold(0, i32::saturating_add)
}

pub fn get_actual_replica_count_for_replica_sets<'a>(
    rss: impl IntoIterator<Item = &'a ReplicaSet>,
) -> i32 {
    rss.into_iter()
        .map(rs_status_replicas)
        .fold(0, i32::saturating_add)
}

pub fn get_ready_replica_count_for_replica_sets<'a>(
    rss: impl IntoIterator<Item = &'a ReplicaSet>,
) -> i32 {
    rss.into_iter().map(rs_ready).fold(0, i32::saturating_add)
}

pub fn get_available_replica_count_for_replica_sets<'a>(
    rss: impl IntoIterator<Item = &'a ReplicaSet>,
) -> i32 {
    rss.into_iter()
        .map(rs_available)
        .fold(0, i32::saturating_add)
}

// ---- rollout state --------------------------------------------------------------------------

/// DeploymentComplete: every desired replica is updated and available, no old pods remain, and
/// the status describes the current generation.
pub fn deployment_complete(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let replicas = d_replicas(d);
    new_status.updated_replicas.unwrap_or(0) == replicas
        && new_status.replicas.unwrap_or(0) == replicas
        && new_status.available_replicas.unwrap_or(0) == replicas
        && new_status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// DeploymentProgressing: more updated/ready/available pods or fewer old pods than before.
pub fn deployment_progressing(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let old = status_of(d);
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old_replicas = n(old.replicas).saturating_sub(n(old.updated_replicas));
    let new_old_replicas = n(new_status.replicas).saturating_sub(n(new_status.updated_replicas));
    n(new_status.updated_replicas) > n(old.updated_replicas)
        || new_old_replicas < old_old_replicas
        || n(new_status.ready_replicas) > n(old.ready_replicas)
        || n(new_status.available_replicas) > n(old.available_replicas)
}

/// DeploymentTimedOut: the last progress is older than progressDeadlineSeconds.
pub fn deployment_timed_out(d: &Deployment, new_status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(condition) = get_condition(new_status, PROGRESSING) else {
        return false;
    };
    match condition.reason.as_deref() {
        // A finished rollout must not be judged by a deadline (the new RS may not be cached yet).
        Some(NEW_RS_AVAILABLE_REASON) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let Some(from) = condition.last_update_time.as_ref() else {
        return true;
    };
    let deadline = jiff::SignedDuration::from_secs(i64::from(progress_deadline_seconds(d)));
    from.0.checked_add(deadline).is_ok_and(|t| t < now)
}

pub(crate) fn progress_deadline_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(0)
}

/// NewRSNewReplicas: the new RS's target size for this step of the rollout.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32> {
    let replicas = d_replicas(d);
    match strategy_type(d) {
        ROLLING_UPDATE => {
            let (surge, _) = rolling_params(d);
            let max_surge = get_value_from_int_or_percent(
                surge.unwrap_or(&IntOrString::Int(0)),
                replicas,
                true,
            )?;
            let current = get_replica_count_for_replica_sets(all_rss.iter().copied());
            let max_total = replicas.saturating_add(max_surge);
            if current >= max_total {
                return Ok(rs_replicas(new_rs));
            }
            let scale_up = max_total
                .saturating_sub(current)
                .min(replicas.saturating_sub(rs_replicas(new_rs)));
            Ok(rs_replicas(new_rs).saturating_add(scale_up))
        }
        RECREATE => Ok(replicas),
        other => Err(Error::UnsupportedStrategy(other.to_string())),
    }
}

/// IsSaturated: the new RS owns (and has available) all desired replicas, and its annotation
/// agrees, which separates a finished rollout from a scaling event.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESIRED_REPLICAS_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    let replicas = d_replicas(d);
    rs_replicas(rs) == replicas && desired == replicas && rs_available(rs) == replicas
}

/// HasProgressDeadline: set and not MaxInt32 ("never").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    matches!(d.spec.as_ref().and_then(|s| s.progress_deadline_seconds), Some(v) if v != i32::MAX)
}

/// HasRevisionHistoryLimit: set and not MaxInt32 ("keep all").
pub fn has_revision_history_limit(d: &Deployment) -> bool {
    matches!(d.spec.as_ref().and_then(|s| s.revision_history_limit), Some(v) if v != i32::MAX)
}

// ---- label selectors ------------------------------------------------------------------------

/// metav1.LabelSelectorAsSelector(...).Matches(labels). An empty selector matches everything;
/// an unknown operator matches nothing (upstream fails to convert such a selector).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && selector.match_expressions.iter().flatten().all(|req| {
            let values = req.values.as_deref().unwrap_or(&[]);
            let value = labels.get(&req.key);
            match req.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
}

/// Go's %q for the names that appear in messages (DNS names need no escaping beyond this).
pub fn quote(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
#[path = "util_tests.rs"]
mod tests;

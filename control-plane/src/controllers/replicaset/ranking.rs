//! Pod predicates and the deletion order of `pkg/controller/controller_utils.go`
//! (`ActivePods`, `ActivePodsWithRanks`) and `replica_set.go` (`getPodsToDelete`).

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// Annotation whose integer value makes a pod cheaper (lower) or dearer (higher) to delete.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// The pod's first `Ready` condition is `True` (upstream `podutil.IsPodReady`).
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Ready, and has been for more than `min_ready_seconds` (upstream `podutil.IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(cond) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds == 0 {
        return true;
    }
    // A zero (absent) transition time never counts as "ready long enough".
    let Some(since) = cond.last_transition_time.as_ref() else {
        return false;
    };
    since
        .0
        .checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
        .is_ok_and(|available_at| available_at < now)
}

/// Not terminating and not in a terminal phase (upstream `IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    phase != Some("Succeeded") && phase != Some("Failed") && pod.metadata.deletion_timestamp.is_none()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

/// Pending (and unset) < Unknown < Running, as upstream `podPhaseToOrdinal` with its zero default.
fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    let cond = ready_condition(pod).filter(|c| c.status == "True")?;
    cond.last_transition_time.as_ref().map(|t| t.0)
}

fn creation_time(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// Unparseable costs count as 0, like upstream which ignores the parse error.
fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

/// (regular, sidecar) max restart counts; sidecars are init containers with `restartPolicy: Always`.
fn max_container_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status.container_statuses.iter().flatten().map(|c| c.restart_count).max().unwrap_or(0);
    let init_specs = pod.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or(&[]);
    let is_sidecar =
        |name: &str| init_specs.iter().any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"));
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| is_sidecar(&c.name))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

/// `Some(i_first)` when restart counts decide; more restarts sort first.
fn compare_restarts(a: &Pod, b: &Pod) -> Option<bool> {
    let (ra, sa) = max_container_restarts(a);
    let (rb, sb) = max_container_restarts(b);
    if ra != rb {
        return Some(ra > rb);
    }
    if sa != sb {
        return Some(sa > sb);
    }
    None
}

/// Upstream `afterOrZero`: a zero time sorts first, otherwise the later one does.
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// Upstream `logarithmicRankDiff`: compares floor(log2(age in ns)) so pods of similar age tie.
fn logarithmic_rank_diff(a: Timestamp, b: Timestamp, now: Timestamp) -> i64 {
    let rank = |t: Timestamp| {
        let age = now.as_nanosecond() - t.as_nanosecond();
        if age > 0 { (age as f64).log2() as i64 } else { -1 }
    };
    rank(a) - rank(b)
}

/// Time comparison used for both ready-since and creation times, with LogarithmicScaleDown (GA).
fn newer_first(a: Option<Timestamp>, b: Option<Timestamp>, now: Timestamp, a_pod: &Pod, b_pod: &Pod) -> bool {
    match (a, b) {
        (Some(ta), Some(tb)) => match logarithmic_rank_diff(ta, tb, now) {
            0 => uid(a_pod) < uid(b_pod),
            d => d < 0,
        },
        _ => after_or_zero(a, b),
    }
}

/// Upstream `ActivePodsWithRanks.Less`: true when `a` should be deleted before `b`.
pub(crate) fn ranked_less(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> bool {
    let (na, nb) = (node_name(a), node_name(b));
    // 1. Unassigned < assigned.
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa < pb;
    }
    // 3. Not ready < ready.
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return !ra;
    }
    // 4. Lower pod-deletion-cost < higher (PodDeletionCost is on by default).
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca < cb;
    }
    // 5. Doubled up < not doubled up.
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    // 6. Ready for a shorter time < longer.
    if ra && rb {
        let (ta, tb) = (ready_time(a), ready_time(b));
        if ta != tb {
            return newer_first(ta, tb, now, a, b);
        }
    }
    // 7. More container restarts < fewer.
    if let Some(first) = compare_restarts(a, b) {
        return first;
    }
    // 8. Empty creation time < newer < older.
    let (ta, tb) = (creation_time(a), creation_time(b));
    if ta != tb {
        return newer_first(ta, tb, now, a, b);
    }
    false
}

/// Upstream `ActivePods.Less` (no ranks, no logarithmic buckets).
fn active_less(a: &Pod, b: &Pod) -> bool {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa < pb;
    }
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return !ra;
    }
    if ra && rb {
        let (ta, tb) = (ready_time(a), ready_time(b));
        if ta != tb {
            return after_or_zero(ta, tb);
        }
    }
    if let Some(first) = compare_restarts(a, b) {
        return first;
    }
    let (ta, tb) = (creation_time(a), creation_time(b));
    if ta != tb {
        return after_or_zero(ta, tb);
    }
    false
}

/// Sorts pods so the ones to delete first come first (upstream `sort.Sort(ActivePods(pods))`).
pub fn sort_active_pods(pods: &mut Vec<&Pod>) {
    merge_sort_by(pods, |a, b| active_less(a, b));
}

/// Upstream `getPodsToDelete`: the first `diff` of `pods` in deletion order, where a pod's rank
/// is the number of active `related` pods on its node.
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], diff: usize, now: Timestamp) -> Vec<&'a Pod> {
    let mut chosen: Vec<&'a Pod> = pods.to_vec();
    // Deleting all of them needs no order, and upstream keeps the input order then.
    if diff < pods.len() {
        let mut on_node: HashMap<&str, usize> = HashMap::new();
        for pod in related.iter().filter(|p| is_pod_active(p)) {
            *on_node.entry(node_name(pod)).or_default() += 1;
        }
        let rank = |p: &Pod| on_node.get(node_name(p)).copied().unwrap_or(0);
        merge_sort_by(&mut chosen, |a, b| ranked_less(a, rank(a), b, rank(b), now));
    }
    chosen.truncate(diff);
    chosen
}

/// A stable merge sort driven only by a "less" predicate. `slice::sort_by` may panic when the
/// comparison is not a total order, and upstream's (with its UID and log-bucket tie breaks) is not.
fn merge_sort_by<T: Copy>(items: &mut Vec<T>, less: impl Fn(&T, &T) -> bool) {
    fn sort<T: Copy>(items: &[T], less: &dyn Fn(&T, &T) -> bool) -> Vec<T> {
        if items.len() <= 1 {
            return items.to_vec();
        }
        let (left, right) = items.split_at(items.len() / 2);
        let (left, right) = (sort(left, less), sort(right, less));
        let mut out = Vec::with_capacity(items.len());
        let (mut i, mut j) = (0, 0);
        while i < left.len() && j < right.len() {
            if less(&right[j], &left[i]) {
                out.push(right[j]);
                j += 1;
            } else {
                out.push(left[i]);
                i += 1;
            }
        }
        out.extend_from_slice(&left[i..]);
        out.extend_from_slice(&right[j..]);
        out
    }
    *items = sort(items, &less);
}


#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn ts(t: Timestamp) -> String {
        t.to_string()
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
    }

    /// Shuffles deterministically so the sort cannot lean on input order.
    fn permutations<T: Copy>(items: &[T]) -> Vec<Vec<T>> {
        let n = items.len();
        (0..20)
            .map(|seed| {
                let mut v = items.to_vec();
                for i in (1..n).rev() {
                    let j = (seed * 7919 + i * 104_729) % (i + 1);
                    v.swap(i, j);
                }
                v
            })
            .collect()
    }

    #[test]
    fn active_pods_sort_unassigned_pending_unknown_not_ready_then_ready_time_restarts_age() {
        // TestSortingActivePods.
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let then = now - SignedDuration::from_hours(24 * 30);
        let ready = |t: Option<Timestamp>| match t {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": ts(t)}]),
            None => json!([{"type": "Ready", "status": "True"}]),
        };
        let pods = [
            pod(json!({"metadata": {"name": "unscheduled"}, "status": {"phase": "Pending"}})),
            pod(json!({"metadata": {"name": "scheduledButPending"}, "spec": {"containers": [], "nodeName": "bar"}, "status": {"phase": "Pending"}})),
            pod(json!({"metadata": {"name": "unknownPhase"}, "spec": {"containers": [], "nodeName": "foo"}, "status": {"phase": "Unknown"}})),
            pod(json!({"metadata": {"name": "runningButNotReady"}, "spec": {"containers": [], "nodeName": "foo"}, "status": {"phase": "Running"}})),
            pod(json!({"metadata": {"name": "runningNoLastTransitionTime"}, "spec": {"containers": [], "nodeName": "foo"},
                "status": {"phase": "Running", "conditions": ready(None), "containerStatuses": [
                    {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 3},
                    {"name": "b", "image": "", "imageID": "", "ready": true, "restartCount": 0}]}})),
            pod(json!({"metadata": {"name": "runningWithLastTransitionTime"}, "spec": {"containers": [], "nodeName": "foo"},
                "status": {"phase": "Running", "conditions": ready(Some(now)), "containerStatuses": [
                    {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 3},
                    {"name": "b", "image": "", "imageID": "", "ready": true, "restartCount": 0}]}})),
            pod(json!({"metadata": {"name": "runningLongerTime"}, "spec": {"containers": [], "nodeName": "foo"},
                "status": {"phase": "Running", "conditions": ready(Some(then)), "containerStatuses": [
                    {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 3},
                    {"name": "b", "image": "", "imageID": "", "ready": true, "restartCount": 0}]}})),
            pod(json!({"metadata": {"name": "lowerContainerRestartCount", "creationTimestamp": ts(now)}, "spec": {"containers": [], "nodeName": "foo"},
                "status": {"phase": "Running", "conditions": ready(Some(then)), "containerStatuses": [
                    {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 2},
                    {"name": "b", "image": "", "imageID": "", "ready": true, "restartCount": 1}]}})),
            pod(json!({"metadata": {"name": "oldest", "creationTimestamp": ts(then)}, "spec": {"containers": [], "nodeName": "foo"},
                "status": {"phase": "Running", "conditions": ready(Some(then)), "containerStatuses": [
                    {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 2},
                    {"name": "b", "image": "", "imageID": "", "ready": true, "restartCount": 1}]}})),
        ];
        let want = names(&pods.iter().collect::<Vec<_>>());
        for mut order in permutations(&pods.iter().collect::<Vec<_>>()) {
            sort_active_pods(&mut order);
            assert_eq!(names(&order), want);
        }
    }

    struct Fixtures {
        now: Timestamp,
        pods: HashMap<&'static str, Pod>,
    }

    /// The pods of TestSortingActivePodsWithRanks.
    fn ranked_fixtures() -> Fixtures {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let month = now - SignedDuration::from_hours(24 * 30);
        let h = |n: i64| now - SignedDuration::from_hours(n);
        let mk = |name: &str, node: &str, phase: &str, ready: bool, restarts: i32, since: Option<Timestamp>, created: Option<Timestamp>, cost: Option<&str>| {
            let mut v = json!({"metadata": {"name": name}, "spec": {"containers": [], "nodeName": node}, "status": {"phase": phase}});
            if let Some(c) = created {
                v["metadata"]["creationTimestamp"] = json!(ts(c));
            }
            if let Some(c) = cost {
                v["metadata"]["annotations"] = json!({POD_DELETION_COST: c});
            }
            if ready {
                let mut cond = json!({"type": "Ready", "status": "True"});
                if let Some(s) = since {
                    cond["lastTransitionTime"] = json!(ts(s));
                }
                v["status"]["conditions"] = json!([cond]);
                v["status"]["containerStatuses"] = json!([{"name": "c", "image": "", "imageID": "", "ready": true, "restartCount": restarts}]);
            }
            pod(v)
        };
        let pods = HashMap::from([
            ("unscheduled", mk("unscheduled", "", "Pending", false, 0, None, None, None)),
            ("pending", mk("pending", "node", "Pending", false, 0, None, None, None)),
            ("unknown-phase", mk("unknown-phase", "node", "Unknown", false, 0, None, None, None)),
            ("not-ready", mk("not-ready", "node", "Running", false, 0, None, None, None)),
            ("ready-no-last-transition-time", mk("ready-no-last-transition-time", "node", "Running", true, 0, None, None, None)),
            ("ready-now", mk("ready-now", "node", "Running", true, 0, Some(now), Some(now), None)),
            ("ready-then", mk("ready-then", "node", "Running", true, 0, Some(month), Some(month), None)),
            ("ready-high-restarts", mk("ready-high-restarts", "node", "Running", true, 9001, Some(now), Some(now), None)),
            ("ready-now-created-then", mk("ready-now-created-then", "node", "Running", true, 0, Some(now), Some(month), None)),
            ("low-deletion-cost", mk("low-deletion-cost", "node", "Running", true, 0, Some(now), Some(month), Some("10"))),
            ("high-deletion-cost", mk("high-deletion-cost", "node", "Running", true, 0, Some(now), Some(month), Some("100"))),
            ("unscheduled-5-hours", mk("unscheduled-5-hours", "", "Pending", false, 0, Some(h(5)), Some(h(5)), None)),
            ("unscheduled-10-hours", mk("unscheduled-10-hours", "", "Pending", false, 0, Some(h(8)), Some(h(8)), None)),
            ("ready-2-hours", mk("ready-2-hours", "", "Running", true, 0, Some(h(2)), Some(month), None)),
            ("ready-5-hours", mk("ready-5-hours", "", "Running", true, 0, Some(h(5)), Some(month), None)),
            ("ready-10-hours", mk("ready-10-hours", "", "Running", true, 0, Some(h(8)), Some(month), None)),
        ]);
        Fixtures { now, pods }
    }

    #[test]
    fn ranked_pods_that_upstream_considers_equivalent_compare_equal() {
        let f = ranked_fixtures();
        let cases = [
            ("unscheduled", "unscheduled"),
            ("pending", "pending"),
            ("unknown-phase", "unknown-phase"),
            ("not-ready", "not-ready"),
            ("ready-now-created-then", "ready-now-created-then"),
            ("ready-now", "ready-now"),
            ("ready-then", "ready-then"),
            ("ready-high-restarts", "ready-high-restarts"),
            ("unscheduled-5-hours", "unscheduled-10-hours"),
            ("ready-5-hours", "ready-10-hours"),
        ];
        for (a, b) in cases {
            let (pa, pb) = (&f.pods[a], &f.pods[b]);
            assert!(!ranked_less(pa, 1, pb, 1, f.now) && !ranked_less(pb, 1, pa, 1, f.now), "{a} vs {b}");
        }
    }

    #[test]
    fn ranked_pods_order_by_assignment_phase_readiness_cost_colocation_age_and_restarts() {
        let f = ranked_fixtures();
        let cases = [
            (("unscheduled", 1), ("pending", 2)),
            (("unscheduled", 2), ("pending", 1)),
            (("pending", 1), ("unknown-phase", 2)),
            (("unknown-phase", 1), ("not-ready", 2)),
            (("not-ready", 1), ("ready-no-last-transition-time", 1)),
            (("ready-no-last-transition-time", 1), ("ready-now", 1)),
            (("ready-now", 2), ("ready-no-last-transition-time", 1)),
            (("ready-now", 1), ("ready-then", 1)),
            (("ready-now", 2), ("ready-then", 1)),
            (("ready-high-restarts", 1), ("ready-now", 1)),
            (("ready-now", 2), ("ready-high-restarts", 1)),
            (("ready-now", 1), ("ready-now-created-then", 1)),
            (("ready-now-created-then", 2), ("ready-now", 1)),
            (("low-deletion-cost", 2), ("high-deletion-cost", 1)),
            (("ready-2-hours", 1), ("ready-5-hours", 1)),
        ];
        for ((lesser, lr), (greater, gr)) in cases {
            let (l, g) = (&f.pods[lesser], &f.pods[greater]);
            assert!(ranked_less(l, lr, g, gr, f.now), "{lesser}/{lr} should sort before {greater}/{gr}");
            assert!(!ranked_less(g, gr, l, lr, f.now), "{greater}/{gr} should not sort before {lesser}/{lr}");
        }
    }

    #[test]
    fn pods_to_delete_follow_upstream_get_pods_to_delete_cases() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mk = |name: &str, node: &str, phase: &str, ready: Option<&str>| {
            let mut v = json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"containers": []}, "status": {"phase": phase}});
            if !node.is_empty() {
                v["spec"]["nodeName"] = json!(node);
            }
            if let Some(r) = ready {
                v["status"]["conditions"] = json!([{"type": "Ready", "status": r}]);
            }
            pod(v)
        };
        let unscheduled_pending = mk("unscheduled-pending-pod", "", "Pending", None);
        let scheduled_pending = mk("scheduled-pending-pod", "fake-node", "Pending", None);
        let not_ready = mk("scheduled-running-not-ready-pod", "fake-node", "Running", Some("False"));
        let ready1 = mk("scheduled-running-ready-pod-on-node-1", "fake-node-1", "Running", Some("True"));
        let ready2 = mk("scheduled-running-ready-pod-on-node-2", "fake-node-2", "Running", Some("True"));
        let ready_at = |name: &str, uid: &str, ago_ms: i64| {
            pod(json!({"metadata": {"name": name, "uid": uid, "creationTimestamp": ts(now - SignedDuration::from_secs(10))},
                "spec": {"containers": [], "nodeName": "fake-node"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": ts(now - SignedDuration::from_millis(ago_ms))}]}}))
        };
        // Timestamps serialize to whole seconds in the API; keep these sub-second on purpose.
        let newer_later_uid = ready_at("newer-ready-pod-with-later-uid", "z", 100);
        let older_earlier_uid = ready_at("older-ready-pod-with-earlier-uid", "a", 120);

        type Case<'a> = (&'a str, Vec<&'a Pod>, Option<Vec<&'a Pod>>, usize, Vec<&'a Pod>);
        let cases: Vec<Case> = vec![
            ("len(pods) = 0 (i.e., diff = 0 too)", vec![], None, 0, vec![]),
            ("diff = len(pods)", vec![&not_ready, &ready1], None, 2, vec![&not_ready, &ready1]),
            ("diff < len(pods)", vec![&ready1, &not_ready], None, 1, vec![&not_ready]),
            (
                "various pod phases and conditions, diff = len(pods)",
                vec![&ready1, &ready1, &ready2, &not_ready, &scheduled_pending, &unscheduled_pending],
                None,
                6,
                vec![&ready1, &ready1, &ready2, &not_ready, &scheduled_pending, &unscheduled_pending],
            ),
            (
                "various pod phases and conditions, diff = len(pods), relatedPods empty",
                vec![&ready1, &ready1, &ready2, &not_ready, &scheduled_pending, &unscheduled_pending],
                Some(vec![]),
                6,
                vec![&ready1, &ready1, &ready2, &not_ready, &scheduled_pending, &unscheduled_pending],
            ),
            ("scheduled vs unscheduled, diff < len(pods)", vec![&scheduled_pending, &unscheduled_pending], None, 1, vec![&unscheduled_pending]),
            ("ready vs not-ready, diff < len(pods)", vec![&ready1, &not_ready, &not_ready], None, 2, vec![&not_ready, &not_ready]),
            (
                "ready and colocated with another ready pod vs not colocated, diff < len(pods)",
                vec![&ready1, &ready2],
                Some(vec![&ready1, &ready2, &ready2]),
                1,
                vec![&ready2],
            ),
            ("pending vs running, diff < len(pods)", vec![&scheduled_pending, &not_ready], None, 1, vec![&scheduled_pending]),
            (
                "various pod phases and conditions, diff < len(pods)",
                vec![&ready1, &ready2, &not_ready, &scheduled_pending, &unscheduled_pending],
                None,
                3,
                vec![&unscheduled_pending, &scheduled_pending, &not_ready],
            ),
            (
                "ready time logarithmic tie sorts by UID, diff < len(pods)",
                vec![&newer_later_uid, &older_earlier_uid],
                None,
                1,
                vec![&older_earlier_uid],
            ),
        ];
        for (name, pods, related, diff, want) in cases {
            let related = related.unwrap_or_else(|| pods.clone());
            let got = pods_to_delete(&pods, &related, diff, now);
            assert_eq!(names(&got), names(&want), "{name}");
        }
    }

    #[test]
    fn availability_needs_ready_for_longer_than_min_ready_seconds() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let ready_since = |secs: i64| {
            pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ts(now - SignedDuration::from_secs(secs))}]}}))
        };
        let no_time = pod(json!({"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        let not_ready = pod(json!({"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        let cases = [
            (&ready_since(30), 0, true),
            (&ready_since(30), 10, true),
            (&ready_since(30), 30, false),
            (&ready_since(30), 60, false),
            (&no_time, 0, true),
            (&no_time, 1, false),
            (&not_ready, 0, false),
        ];
        for (i, (p, min, want)) in cases.into_iter().enumerate() {
            assert_eq!(is_pod_available(p, min, now), want, "case {i}");
        }
    }

    #[test]
    fn terminal_and_terminating_pods_are_not_active() {
        // TestActivePodFiltering / TestCountTerminatingPods.
        let cases = [
            (json!({"metadata": {"name": "a"}, "status": {"phase": "Succeeded"}}), false),
            (json!({"metadata": {"name": "b"}, "status": {"phase": "Failed"}}), false),
            (json!({"metadata": {"name": "c", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}}), false),
            (json!({"metadata": {"name": "d"}, "status": {"phase": "Running"}}), true),
            (json!({"metadata": {"name": "e"}}), true),
        ];
        for (v, want) in cases {
            let p = pod(v);
            assert_eq!(is_pod_active(&p), want, "{:?}", p.metadata.name);
        }
    }
}

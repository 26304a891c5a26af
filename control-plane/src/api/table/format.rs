//! Reading fields out of stored JSON objects and formatting them the way Kubernetes' printers do.
//!
//! Every accessor treats a missing field, a JSON `null` and a value of the wrong type alike, as the
//! zero value of the Go field it stands for, so the printers never fail on odd input.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// Follows `path` through nested objects; `None` when a step is missing, not an object, or null.
pub(super) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    (!current.is_null()).then_some(current)
}

pub(super) fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn opt_int_at(value: &Value, path: &[&str]) -> Option<i64> {
    at(value, path).and_then(as_int)
}

pub(super) fn int_at(value: &Value, path: &[&str]) -> i64 {
    opt_int_at(value, path).unwrap_or(0)
}

fn as_int(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        // Saturating float-to-int cast: numbers such as `3.0` still count.
        .or_else(|| value.as_f64().map(|f| f as i64))
}

pub(super) fn opt_bool_at(value: &Value, path: &[&str]) -> Option<bool> {
    at(value, path).and_then(Value::as_bool)
}

pub(super) fn bool_at(value: &Value, path: &[&str]) -> bool {
    opt_bool_at(value, path).unwrap_or(false)
}

pub(super) fn list_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Number of keys of a map field (`Secret.data`, `ConfigMap.binaryData`, ...).
pub(super) fn map_len(value: &Value, path: &[&str]) -> usize {
    at(value, path)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

/// A `metav1.Time` / `metav1.MicroTime` field; `None` stands for Go's zero time.
pub(super) fn time_at(value: &Value, path: &[&str]) -> Option<Timestamp> {
    let ts: Timestamp = at(value, path)?.as_str()?.parse().ok()?;
    // Go clients that serialise a zero time write year 1; Kubernetes treats it as unset.
    (ts.as_second() != GO_ZERO_TIME_SECONDS).then_some(ts)
}

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

pub(super) fn name(obj: &Value) -> Value {
    Value::from(str_at(obj, &["metadata", "name"]))
}

/// The AGE cell: `translateTimestampSince(obj.CreationTimestamp)`.
pub(super) fn age(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

/// `translateTimestampSince`: `<unknown>` for a zero time, else the human-readable elapsed time.
pub(super) fn since(time: Option<Timestamp>, now: Timestamp) -> String {
    match time {
        Some(t) => human(now.duration_since(t)),
        None => "<unknown>".to_owned(),
    }
}

/// Kubernetes' `duration.HumanDuration` (k8s.io/apimachinery/pkg/util/duration): ~2-3 significant
/// figures, e.g. "5s", "3m20s", "10m", "2d3h", "5y".
pub fn human_duration(d: std::time::Duration) -> String {
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    human(SignedDuration::from_nanos(nanos))
}

pub(super) fn human(d: SignedDuration) -> String {
    // Go's time.Duration is int64 nanoseconds and time.Since saturates, so clamp the same way.
    let nanos = d
        .as_nanos()
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    const SECOND: i128 = 1_000_000_000;
    const MINUTE: i128 = 60 * SECOND;
    const HOUR: i128 = 60 * MINUTE;

    // Integer division truncates toward zero, like Go's int(d.Seconds()).
    let seconds = nanos / SECOND;
    // Up to two seconds in the future is tolerated as clock skew.
    if seconds < -1 {
        return "<invalid>".to_owned();
    } else if seconds < 0 {
        return "0s".to_owned();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{dy}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs joined by commas, `<none>` when empty.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_owned();
    }
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}={v}");
    }
    out
}

/// `metav1.LabelSelectorAsSelector(sel).String()`; `None` where Go returns an error.
///
/// A nil selector selects nothing and an empty one everything; both print as "".
pub(super) fn label_selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str()?;
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expr in list_at(selector, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values = list_at(expr, &["values"])
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        values.sort_unstable();
        let text = match str_at(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return None,
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return None,
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        if key.is_empty() {
            return None;
        }
        requirements.push((key.to_owned(), text));
    }
    // labels.Selector.Add keeps requirements ordered by key.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: like [`label_selector_string`] but `<none>` / `<error>`.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        None => "<error>".to_owned(),
        Some(s) if s.is_empty() => "<none>".to_owned(),
        Some(s) => s,
    }
}

/// `layoutContainerCells`: container names and images, each joined by commas.
pub(super) fn layout_containers(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// The CONTAINERS and IMAGES cells of a pod template at `template` (`spec.template` usually).
pub(super) fn template_container_cells(obj: &Value, template: &[&str]) -> [Value; 2] {
    let mut path = template.to_vec();
    path.extend(["spec", "containers"]);
    let (names, images) = layout_containers(list_at(obj, &path));
    [Value::from(names), Value::from(images)]
}

/// `sets.NewString(...).List()` joined by commas: sorted and deduplicated.
pub(super) fn sorted_set_join<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(",")
}

/// `listWithMoreString`: at most `max` entries, then "+ N more...", or `<unset>` when empty.
pub(super) fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let joined = list.join(",");
    if more {
        return format!("{joined} + {} more...", count.saturating_sub(max));
    }
    if joined.is_empty() {
        return "<unset>".to_owned();
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn human_duration_matches_kubernetes_examples() {
        // TestHumanDuration in k8s.io/apimachinery/pkg/util/duration.
        const H: i64 = 3600;
        let cases: &[(i64, &str)] = &[
            (1, "1s"),
            (70, "70s"),
            (190, "3m10s"),
            (70 * 60, "70m"),
            (47 * H, "47h"),
            (49 * H, "2d1h"),
            ((8 * 24 + 2) * H, "8d"),
            (367 * 24 * H, "367d"),
            ((365 * 2 * 24 + 25) * H, "2y1d"),
            ((365 * 8 * 24 + 2) * H, "8y"),
        ];
        for (s, want) in cases {
            assert_eq!(human(secs(*s)), *want, "{s}s");
            let std = std::time::Duration::from_secs(u64::try_from(*s).unwrap());
            assert_eq!(human_duration(std), *want, "{s}s");
        }
    }

    #[test]
    fn human_duration_boundaries_match_kubernetes() {
        // TestHumanDurationBoundaries in k8s.io/apimachinery/pkg/util/duration.
        const MS: i64 = 1_000_000;
        const S: i64 = 1_000_000_000;
        const M: i64 = 60 * S;
        const H: i64 = 60 * M;
        const D: i64 = 24 * H;
        const Y: i64 = 365 * D;
        let cases: &[(i64, &str)] = &[
            (-2 * S, "<invalid>"),
            (-2 * S + 1, "0s"),
            (0, "0s"),
            (S - MS, "0s"),
            (2 * M - MS, "119s"),
            (2 * M, "2m"),
            (2 * M + S, "2m1s"),
            (10 * M - MS, "9m59s"),
            (10 * M, "10m"),
            (10 * M + S, "10m"),
            (3 * H - MS, "179m"),
            (3 * H, "3h"),
            (3 * H + M, "3h1m"),
            (8 * H - MS, "7h59m"),
            (8 * H, "8h"),
            (8 * H + 59 * M, "8h"),
            (2 * D - MS, "47h"),
            (2 * D, "2d"),
            (2 * D + H, "2d1h"),
            (8 * D - MS, "7d23h"),
            (8 * D, "8d"),
            (8 * D + 23 * H, "8d"),
            (2 * Y - MS, "729d"),
            (2 * Y, "2y"),
            (2 * Y + 23 * H, "2y"),
            (2 * Y + 23 * H + 59 * M, "2y"),
            (2 * Y + D - MS, "2y"),
            (2 * Y + D, "2y1d"),
            (3 * Y, "3y"),
            (4 * Y, "4y"),
            (5 * Y, "5y"),
            (6 * Y, "6y"),
            (7 * Y, "7y"),
            (8 * Y - MS, "7y364d"),
            (8 * Y, "8y"),
            (8 * Y + 364 * D, "8y"),
            (9 * Y, "9y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(
                human(SignedDuration::from_nanos(*nanos)),
                *want,
                "{nanos}ns"
            );
        }
    }

    #[test]
    fn human_duration_saturates_like_go_for_huge_durations() {
        assert_eq!(human_duration(std::time::Duration::MAX), "292y");
    }

    #[test]
    fn translate_timestamp_since_matches_kubernetes_examples() {
        // TestTranslateTimestampSince, with a fixed clock.
        let now: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
        let at = |offset: SignedDuration| Some(now.checked_add(offset).unwrap());
        let cases = [
            (
                "a while from now",
                at(SignedDuration::from_millis(2100)),
                "<invalid>",
            ),
            ("almost now", at(SignedDuration::from_millis(1900)), "0s"),
            ("now", at(SignedDuration::ZERO), "0s"),
            ("unknown", None, "<unknown>"),
            ("30 seconds ago", at(secs(-30)), "30s"),
            ("5 minutes ago", at(secs(-300)), "5m"),
            ("an hour ago", at(secs(-6000)), "100m"),
            ("2 days ago", at(secs(-2 * 86400)), "2d"),
            ("months ago", at(secs(-90 * 86400)), "90d"),
            ("10 years ago", at(secs(-(10 * 365 + 3) * 86400)), "10y"),
        ];
        for (name, time, want) in cases {
            assert_eq!(since(time, now), want, "{name}");
        }
    }

    #[test]
    fn time_fields_that_are_missing_null_invalid_or_go_zero_are_unset() {
        let obj = json!({"a": null, "b": "garbage", "c": "0001-01-01T00:00:00Z", "d": 5});
        for key in ["a", "b", "c", "d", "missing"] {
            assert_eq!(time_at(&obj, &[key]), None, "{key}");
        }
        assert!(time_at(&json!({"t": "2024-01-02T03:04:05.123456Z"}), &["t"]).is_some());
    }

    #[test]
    fn format_labels_sorts_pairs_and_prints_none_when_empty() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn label_selectors_print_like_metav1_format_label_selector() {
        let cases = [
            (json!(null), "<none>"),
            (json!({}), "<none>"),
            (json!({"matchLabels": {"foo": "bar"}}), "foo=bar"),
            (
                json!({"matchLabels": {"tier": "web", "app": "nginx"},
                       "matchExpressions": [
                           {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                           {"key": "zone", "operator": "NotIn", "values": ["b"]},
                           {"key": "canary", "operator": "DoesNotExist"},
                           {"key": "beta", "operator": "Exists"}]}),
                "app=nginx,beta,!canary,env in (dev,prod),tier=web,zone notin (b)",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}),
                "<error>",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "<error>",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "<error>",
            ),
        ];
        for (selector, want) in cases {
            let selector = (!selector.is_null()).then_some(&selector);
            assert_eq!(format_label_selector(selector), want, "{selector:?}");
        }
    }

    #[test]
    fn list_with_more_elides_past_the_maximum() {
        let list: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(list_with_more(&list, true, 5, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&list, false, 3, 3), "a,b,c");
        assert_eq!(list_with_more(&[], false, 0, 3), "<unset>");
    }
}

//! Field selectors, ported from k8s.io/apimachinery `pkg/fields/selector.go`,
//! plus the per-kind field-label tables the API server checks
//! (`AddFieldLabelConversionFunc` in k8s.io/kubernetes `pkg/apis/*/v1`) and
//! the values it matches against (`ToSelectableFields` in the registry
//! strategies).

use std::fmt;

use serde_json::Value;

use super::{Error, Result, go_quote};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One ANDed term of a field selector; `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A parsed field selector; the default value selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

/// Splits on commas that are not backslash-escaped; escapes stay in place.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits at the first operator; `!=` and `==` win over `=` at one position
/// so no `=` is left on the value.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

/// `fields.EscapeValue`: backslash-escapes `\`, `,` and `=`.
pub(super) fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`, with its error texts (the unescaped character is
/// printed as a number, as Go's `%v` of a rune does).
fn unescape_value(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(Error::InvalidFieldSelector(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(Error::InvalidFieldSelector(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(Error::InvalidFieldSelector(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

const METADATA_ONLY: &[&str] = &["metadata.name", "metadata.namespace"];
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
    // Legacy alias of spec.nodeName for old v1 clients.
    "spec.host",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const RC_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const EVENTS_V1_FIELDS: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const NAMESPACE_FIELDS: &[&str] = &["status.phase", "metadata.name"];
const SECRET_FIELDS: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const SERVICE_FIELDS: &[&str] = &[
    "metadata.namespace",
    "metadata.name",
    "spec.clusterIP",
    "spec.type",
];
const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const SIGNER_FIELDS: &[&str] = &["metadata.name", "spec.signerName"];

#[derive(Clone, Copy)]
enum Rejection {
    /// Most registered conversion funcs.
    NotSupported,
    /// batch/v1 Job's own wording.
    Job,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, for every kind without
    /// a registered func (ConfigMap, Deployment, ReplicaSet, CRDs, ...).
    Default,
}

fn field_rules(group: &str, kind: &str) -> (&'static [&'static str], Rejection) {
    use Rejection::*;
    match (group, kind) {
        ("", "Pod") => (POD_FIELDS, NotSupported),
        ("", "Node") => (NODE_FIELDS, NotSupported),
        ("", "ReplicationController") => (RC_FIELDS, NotSupported),
        ("", "Event") => (EVENT_FIELDS, NotSupported),
        ("events.k8s.io", "Event") => (EVENTS_V1_FIELDS, NotSupported),
        ("", "Namespace") => (NAMESPACE_FIELDS, NotSupported),
        ("", "Secret") => (SECRET_FIELDS, NotSupported),
        ("", "Service") => (SERVICE_FIELDS, NotSupported),
        ("batch", "Job") => (JOB_FIELDS, Job),
        ("certificates.k8s.io", "CertificateSigningRequest" | "ClusterTrustBundle") => {
            (SIGNER_FIELDS, NotSupported)
        }
        _ => (METADATA_ONLY, Default),
    }
}

/// The group a bare kind name means in [`FieldSelector::validate_for`].
fn default_group(kind: &str) -> &'static str {
    match kind {
        "Job" => "batch",
        "CertificateSigningRequest" | "ClusterTrustBundle" => "certificates.k8s.io",
        _ => "",
    }
}

impl FieldSelector {
    /// Parses the `?fieldSelector=` syntax (`fields.ParseSelector`): `k=v`,
    /// `k==v`, `k!=v` joined by commas; values may escape `\,` `\=` `\\`.
    /// Field names are taken verbatim (no trimming, no validation).
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, raw)) = split_term(part) else {
                return Err(Error::InvalidFieldSelector(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(raw)?;
            terms.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// A selector requiring `field=value` (`fields.OneTermEqualSelector`).
    pub fn one_term(field: &str, value: &str) -> Self {
        FieldSelector {
            terms: vec![FieldRequirement {
                field: field.to_string(),
                operator: FieldOperator::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// Checks every field is selectable for a kind of the core, `batch` or
    /// `certificates.k8s.io` group (`Event` means core/v1 Event); the error
    /// is Kubernetes' 400 text, e.g. `field label not supported: spec.foo`.
    pub fn validate_for(&self, kind: &str) -> Result<()> {
        self.validate_for_group(default_group(kind), kind)
    }

    /// Like [`FieldSelector::validate_for`] for an explicit API group
    /// (`""` for core); needed for `events.k8s.io` Events, whose labels are
    /// `regarding.*` and `reportingController`. Unknown group/kind pairs,
    /// custom resources included, allow only `metadata.name` and
    /// `metadata.namespace`.
    pub fn validate_for_group(&self, group: &str, kind: &str) -> Result<()> {
        let (allowed, rejection) = field_rules(group, kind);
        match self
            .terms
            .iter()
            .find(|t| !allowed.contains(&t.field.as_str()))
        {
            None => Ok(()),
            Some(t) => {
                let field = t.field.as_str();
                let message = match rejection {
                    Rejection::NotSupported => format!("field label not supported: {field}"),
                    Rejection::Job => {
                        format!("field label {} not supported for Job", go_quote(field))
                    }
                    Rejection::Default => format!(
                        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        go_quote(field)
                    ),
                };
                Err(Error::UnsupportedField {
                    field: field.to_string(),
                    message,
                })
            }
        }
    }

    /// Evaluates against a whole object as JSON, reading each field the way
    /// the kind's `ToSelectableFields` computes it; see [`selectable_value`].
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = selectable_value(obj, &t.field);
            match t.operator {
                FieldOperator::Equals => have == t.value,
                FieldOperator::NotEquals => have != t.value,
            }
        })
    }

    /// The value of the only requirement when the selector is exactly
    /// `field=value`, for watchers' fast paths (e.g. `spec.nodeName=node-1`).
    pub fn exact(&self, field: &str) -> Option<&str> {
        match self.terms.as_slice() {
            [t] if t.operator == FieldOperator::Equals && t.field == field => Some(&t.value),
            _ => None,
        }
    }

    /// `Selector.RequiresExactMatch`: the value of the first `field=value`
    /// term even when other terms exist, so callers using it to pick
    /// candidates must still call [`FieldSelector::matches`].
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.operator == FieldOperator::Equals && t.field == field)
            .map(|t| t.value.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Terms in the order `parse` sorted them.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }
}

impl fmt::Display for FieldSelector {
    /// `Selector.String()`: terms joined by `,` with values re-escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{}{}", t.field, op, escape_value(&t.value))?;
        }
        Ok(())
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, key| match v {
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => v.get(key),
    })
}

/// Scalars as Go's `ToSelectableFields` would print them; absent, null and
/// composite values are the empty string.
fn scalar(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn string_at(obj: &Value, path: &str) -> String {
    scalar(lookup(obj, path))
}

/// Go sets booleans and counters from zero-valued struct fields, so omitted
/// ones read `false` / `0` rather than empty.
fn with_default(obj: &Value, path: &str, default: &str) -> String {
    match lookup(obj, path) {
        None | Some(Value::Null) => default.to_string(),
        v => scalar(v),
    }
}

/// Events carry `kind` when served; stored bodies may not, so also
/// recognise them by their object reference.
fn is_event(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Event")
        || obj.get("involvedObject").is_some()
        || obj.get("regarding").is_some()
        || obj.get("source").is_some_and(Value::is_object)
}

fn first_non_empty(obj: &Value, paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| string_at(obj, p))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

/// The value Kubernetes selects on for `field`. Any dotted path works; the
/// field labels whose value is computed rather than read are handled here,
/// keyed by name since each exists on one kind only:
/// - Pod `spec.host` (alias of `spec.nodeName`), `spec.hostNetwork`
///   (default `false`), `status.podIP` (`status.podIPs[0].ip`),
///   `status.podIPs` (accepted but never set upstream, so always empty);
/// - Node `spec.unschedulable` (default `false`);
/// - ReplicationController `status.replicas`, Job `status.successful`
///   (read from `status.succeeded`), both default `0`;
/// - Event: `source` is `source.component`, else the reporting controller,
///   and both spellings (core `involvedObject.*`/`reportingComponent`,
///   events.k8s.io `regarding.*`/`reportingController`) read either form of
///   the object.
pub(super) fn selectable_value(obj: &Value, field: &str) -> String {
    match field {
        "spec.host" => string_at(obj, "spec.nodeName"),
        "spec.hostNetwork" | "spec.unschedulable" => with_default(obj, field, "false"),
        "status.podIP" => first_non_empty(obj, &["status.podIPs.0.ip", "status.podIP"]),
        "status.podIPs" => String::new(),
        "status.replicas" => with_default(obj, field, "0"),
        "status.successful" => with_default(obj, "status.succeeded", "0"),
        "reportingComponent" | "reportingController" => {
            first_non_empty(obj, &["reportingComponent", "reportingController"])
        }
        "source" if is_event(obj) => first_non_empty(
            obj,
            &[
                "source.component",
                "deprecatedSource.component",
                "reportingComponent",
                "reportingController",
            ],
        ),
        _ => {
            let event_ref = field
                .strip_prefix("involvedObject.")
                .or_else(|| field.strip_prefix("regarding."));
            match event_ref {
                Some(rest) if obj.get("involvedObject").is_some() => {
                    string_at(obj, &format!("involvedObject.{rest}"))
                }
                Some(rest) if obj.get("regarding").is_some() => {
                    string_at(obj, &format!("regarding.{rest}"))
                }
                _ => string_at(obj, field),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // selector_test.go TestSplitTerms.
    #[test]
    fn terms_split_on_unescaped_commas_only() {
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a=avalue", &["a=avalue"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            (
                "a=avalue,b==bvalue,c!=cvalue",
                &["a=avalue", "b==bvalue", "c!=cvalue"],
            ),
            ("", &[]),
            ("a=a,", &["a=a", ""]),
            (",a=a", &["", "a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (input, want) in cases {
            assert_eq!(split_terms(input), *want, "{input:?}");
        }
    }

    // selector_test.go TestSplitTerm.
    #[test]
    fn a_term_splits_at_its_first_operator() {
        use FieldOperator::*;
        type Split<'a> = Option<(&'a str, FieldOperator, &'a str)>;
        let cases: &[(&str, Split)] = &[
            ("a=value", Some(("a", Equals, "value"))),
            ("b==value", Some(("b", Equals, "value"))),
            ("c!=value", Some(("c", NotEquals, "value"))),
            ("", None),
            ("a", None),
            (r"k=\,", Some(("k", Equals, r"\,"))),
            (r"k=\=", Some(("k", Equals, r"\="))),
            (r"k=\\\a\b\=\,\", Some(("k", Equals, r"\\\a\b\=\,\"))),
            ("함=수", Some(("함", Equals, "수"))),
        ];
        for (input, want) in cases {
            assert_eq!(split_term(input), *want, "{input:?}");
        }
    }

    // selector_test.go TestEscapeValue.
    #[test]
    fn escaping_round_trips_and_bad_sequences_fail() {
        for (raw, escaped) in [
            ("", ""),
            ("a", "a"),
            ("=", r"\="),
            (",", r"\,"),
            (r"\", r"\\"),
            (r"\=\,\", r"\\\=\\\,\\"),
        ] {
            assert_eq!(escape_value(raw), escaped);
            assert_eq!(unescape_value(escaped), Ok(raw.to_string()));
        }
        for bad in [r"\", r"\\\", r"\a"] {
            assert!(
                matches!(unescape_value(bad), Err(Error::InvalidFieldSelector(m)) if m.contains("invalid escape sequence"))
            );
        }
    }

    // selector_test.go TestSelectorParse.
    #[test]
    fn selectors_parse_and_print_like_kubernetes() {
        for good in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            let parsed = FieldSelector::parse(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
            assert_eq!(parsed.to_string(), good);
        }
        for bad in [
            "x=a||y=b",
            "x==a==b",
            "x=a,b",
            "x in (a)",
            "x in (a,b,c)",
            "x",
        ] {
            assert!(FieldSelector::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            FieldSelector::parse("x==a").map(|s| s.to_string()),
            Ok("x=a".to_string())
        );
    }

    #[test]
    fn parse_errors_carry_kubernetes_messages() {
        let cases = [
            ("x", "invalid selector: 'x'; can't understand 'x'"),
            (
                "a=b,x in (a)",
                "invalid selector: 'a=b,x in (a)'; can't understand 'x in (a)'",
            ),
            (
                "x==a==b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                r"x=\a",
                r"invalid field selector: invalid escape sequence: \a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                FieldSelector::parse(input).map_err(|e| e.to_string()),
                Err(want.to_string())
            );
        }
    }

    // selector_test.go TestDeterministicParse.
    #[test]
    fn parse_is_deterministic_regardless_of_term_order() {
        let a = FieldSelector::parse("x=a,a=x").map(|s| s.to_string());
        assert_eq!(a, FieldSelector::parse("a=x,x=a").map(|s| s.to_string()));
        assert_eq!(a, Ok("a=x,x=a".to_string()));
    }

    // selector_test.go TestSelectorMatches, with the field set as an object.
    #[test]
    fn selector_matches_fields_like_kubernetes() {
        let fieldset = json!({"foo": "bar", "baz": "blah", "complex": r"=value\,\"});
        let cases: &[(&str, Value, bool)] = &[
            ("", json!({"x": "y"}), true),
            ("x=y", json!({"x": "y"}), true),
            ("x=y,z=w", json!({"x": "y", "z": "w"}), true),
            ("x!=y,z!=w", json!({"x": "z", "z": "a"}), true),
            ("notin=in", json!({"notin": "in"}), true),
            ("x=y", json!({"x": "z"}), false),
            ("x=y,z=w", json!({"x": "w", "z": "w"}), false),
            ("x!=y,z!=w", json!({"x": "z", "z": "w"}), false),
            ("foo=bar", fieldset.clone(), true),
            ("baz=blah", fieldset.clone(), true),
            ("foo=bar,baz=blah", fieldset.clone(), true),
            (
                r"foo=bar,baz=blah,complex=\=value\\\,\\",
                fieldset.clone(),
                true,
            ),
            ("foo=blah", fieldset.clone(), false),
            ("baz=bar", fieldset.clone(), false),
            ("foo=bar,foobar=bar,baz=blah", fieldset.clone(), false),
            ("missing=", json!({}), true),
            ("missing!=", json!({}), false),
        ];
        for (sel, obj, want) in cases {
            let parsed = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert_eq!(parsed.matches(obj), *want, "{sel:?} on {obj}");
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}]}
        })
    }

    #[test]
    fn pod_fields_are_read_as_the_pod_strategy_computes_them() {
        let cases = [
            ("metadata.name=web-1,metadata.namespace=default", true),
            ("spec.nodeName=node-1", true),
            ("spec.host=node-1", true),
            ("spec.nodeName!=node-1", false),
            ("spec.hostNetwork=false", true),
            ("spec.hostNetwork=", false),
            ("status.phase=Running,spec.restartPolicy=Always", true),
            ("status.podIP=10.0.0.9", true),
            ("status.podIPs=10.0.0.9", false),
            ("spec.serviceAccountName=", true),
            ("status.nominatedNodeName=", true),
        ];
        for (sel, want) in cases {
            let parsed = FieldSelector::parse(sel).expect("valid selector");
            assert_eq!(parsed.validate_for("Pod"), Ok(()), "{sel}");
            assert_eq!(parsed.matches(&pod()), want, "{sel}");
        }
        let host_net = json!({"spec": {"hostNetwork": true}});
        assert!(FieldSelector::one_term("spec.hostNetwork", "true").matches(&host_net));
    }

    #[test]
    fn counters_and_flags_default_to_zero_values() {
        let node = json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {}});
        assert!(FieldSelector::one_term("spec.unschedulable", "false").matches(&node));
        let cordoned = json!({"kind": "Node", "spec": {"unschedulable": true}});
        assert!(FieldSelector::one_term("spec.unschedulable", "true").matches(&cordoned));
        let rc = json!({"kind": "ReplicationController", "status": {"replicas": 3}});
        assert!(FieldSelector::one_term("status.replicas", "3").matches(&rc));
        assert!(FieldSelector::one_term("status.replicas", "0").matches(&json!({"status": {}})));
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"succeeded": 2}});
        assert!(FieldSelector::one_term("status.successful", "2").matches(&job));
        assert!(FieldSelector::one_term("status.successful", "0").matches(&json!({"kind": "Job"})));
    }

    #[test]
    fn event_fields_accept_both_api_spellings() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal",
            "source": {}, "reportingComponent": "default-scheduler"
        });
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "regarding": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal",
            "reportingController": "default-scheduler"
        });
        for sel in [
            "involvedObject.kind=Pod,involvedObject.name=web-1,involvedObject.uid=u1",
            "regarding.kind=Pod,regarding.name=web-1",
            "reason=Scheduled,type=Normal",
            "reportingComponent=default-scheduler",
            "reportingController=default-scheduler",
            "source=default-scheduler",
            "involvedObject.fieldPath=",
        ] {
            let parsed = FieldSelector::parse(sel).expect("valid selector");
            assert!(parsed.matches(&core), "core {sel}");
            assert!(parsed.matches(&v1), "events.k8s.io {sel}");
        }
        let with_source = json!({"source": {"component": "kubelet"}, "reportingComponent": "x"});
        assert!(FieldSelector::one_term("source", "kubelet").matches(&with_source));
    }

    #[test]
    fn validation_uses_each_kinds_field_label_list() {
        let ok: &[(&str, &str, &str)] = &[
            (
                "",
                "Pod",
                "spec.nodeName=a,status.phase=Running,spec.host=a,status.podIPs=x",
            ),
            ("", "Node", "metadata.name=a,spec.unschedulable=true"),
            ("", "Namespace", "status.phase=Active,metadata.name=a"),
            ("", "Secret", "type=Opaque,metadata.namespace=a"),
            ("", "Service", "spec.clusterIP=None,spec.type=ClusterIP"),
            ("", "ReplicationController", "status.replicas=1"),
            (
                "",
                "Event",
                "involvedObject.name=a,source=b,reportingComponent=c,type=Normal",
            ),
            (
                "events.k8s.io",
                "Event",
                "regarding.name=a,reportingController=b,reason=c",
            ),
            ("batch", "Job", "status.successful=1"),
            (
                "certificates.k8s.io",
                "CertificateSigningRequest",
                "spec.signerName=x",
            ),
            ("", "ConfigMap", "metadata.name=a,metadata.namespace=b"),
            ("example.com", "Widget", "metadata.name=a"),
        ];
        for (group, kind, sel) in ok {
            let parsed = FieldSelector::parse(sel).expect("valid selector");
            assert_eq!(
                parsed.validate_for_group(group, kind),
                Ok(()),
                "{kind} {sel}"
            );
        }
        let rejected: &[(&str, &str, &str, &str)] = &[
            (
                "",
                "Pod",
                "spec.foo=a",
                "field label not supported: spec.foo",
            ),
            (
                "",
                "Node",
                "metadata.namespace=a",
                "field label not supported: metadata.namespace",
            ),
            (
                "",
                "Namespace",
                "metadata.namespace=a",
                "field label not supported: metadata.namespace",
            ),
            (
                "events.k8s.io",
                "Event",
                "involvedObject.name=a",
                "field label not supported: involvedObject.name",
            ),
            (
                "batch",
                "Job",
                "spec.x=1",
                "field label \"spec.x\" not supported for Job",
            ),
            (
                "apps",
                "ReplicaSet",
                "status.replicas=0",
                "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
            (
                "",
                "ConfigMap",
                "data.x=1",
                "\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
        ];
        for (group, kind, sel, msg) in rejected {
            let parsed = FieldSelector::parse(sel).expect("valid selector");
            assert_eq!(
                parsed.validate_for_group(group, kind),
                Err(Error::UnsupportedField {
                    field: sel.split('=').next().unwrap_or_default().to_string(),
                    message: msg.to_string()
                }),
                "{kind} {sel}"
            );
        }
        let job = FieldSelector::parse("status.successful=1").expect("valid selector");
        assert_eq!(job.validate_for("Job"), Ok(()));
        assert!(job.validate_for("Pod").is_err());
    }

    // selector_test.go TestRequiresExactMatch, plus the stricter `exact`.
    #[test]
    fn exact_match_helpers_find_equality_terms() {
        let single = FieldSelector::parse("spec.nodeName=node-1").expect("valid selector");
        assert_eq!(single.exact("spec.nodeName"), Some("node-1"));
        assert_eq!(single.exact("metadata.name"), None);
        let empty_value = FieldSelector::parse("test=").expect("valid selector");
        assert_eq!(empty_value.exact("test"), Some(""));
        let two = FieldSelector::parse("spec.nodeName=node-1,status.phase=Running")
            .expect("valid selector");
        assert_eq!(two.exact("spec.nodeName"), None);
        assert_eq!(two.requires_exact_match("spec.nodeName"), Some("node-1"));
        let not = FieldSelector::parse("test!=b").expect("valid selector");
        assert_eq!(not.exact("test"), None);
        assert_eq!(not.requires_exact_match("test"), None);
        assert_eq!(FieldSelector::default().requires_exact_match("test"), None);
        assert!(FieldSelector::default().is_empty());
        assert!(FieldSelector::parse(",,").is_ok_and(|s| s.is_empty()));
    }
}

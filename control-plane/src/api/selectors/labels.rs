//! Label selectors, ported from k8s.io/apimachinery `pkg/labels/selector.go`
//! (lexer, parser, Requirement) and `metav1.LabelSelectorAsSelector`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;

use super::{Error, Result, go_quote, validate_label_key, validate_label_value};

/// `selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// The `selection.Operator` string, as shown in Kubernetes messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One ANDed term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    fn matches<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> bool {
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                get(&self.key).is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => {
                get(&self.key).is_none_or(|v| !self.has_value(v))
            }
            Operator::Exists => get(&self.key).is_some(),
            Operator::DoesNotExist => get(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = get(&self.key).map(str::parse::<i64>) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        // Sorted on output only, like Go's safeSort.
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Go's `%#v` of a `[]string`, as it appears in `field.Invalid` messages. An
/// empty slice is always nil where Kubernetes can report one.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

pub(super) fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

/// `utilerrors.NewAggregate(...).Error()`: one message as is, several
/// de-duplicated inside brackets.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::with_capacity(errs.len());
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen.pop().unwrap_or_default()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// `labels.NewRequirement` without a field path: errors name `key` and
/// `values[i][key]` as Kubernetes does.
pub(super) fn new_requirement(
    key: &str,
    operator: Operator,
    values: Vec<String>,
) -> Result<Requirement, String> {
    let mut errs = Vec::new();
    let key_errs = validate_label_key(key);
    if !key_errs.is_empty() {
        errs.push(invalid("key", &go_quote(key), &key_errs.join("; ")));
    }
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => errs.push(invalid(
            "values",
            &go_string_slice(&values),
            "for 'in', 'notin' operators, values set can't be empty",
        )),
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            errs.push(invalid(
                "values",
                &go_string_slice(&values),
                "exact-match compatibility requires one single value",
            ))
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(invalid(
            "values",
            &go_string_slice(&values),
            "values set must be empty for exists and does not exist",
        )),
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errs.push(invalid(
                    "values",
                    &go_string_slice(&values),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(invalid(
                        &format!("values[{i}]"),
                        &go_quote(v),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errs = validate_label_value(v);
        if !value_errs.is_empty() {
            errs.push(invalid(
                &format!("values[{i}][{key}]"),
                &go_quote(v),
                &value_errs.join("; "),
            ));
        }
    }
    if errs.is_empty() {
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    } else {
        Err(aggregate(errs))
    }
}

/// A parsed label selector: the AND of its requirements. The default value
/// selects everything; [`LabelSelector::nothing`] selects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// Parses the `?labelSelector=` syntax (`labels.Parse`): `a=b`, `a==b`,
    /// `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<5`, joined by
    /// commas. The empty string selects everything.
    pub fn parse(s: &str) -> Result<Self> {
        let mut requirements =
            super::label_parser::parse(s).map_err(Error::InvalidLabelSelector)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Builds from a `metav1.LabelSelector` given as JSON. `null` selects
    /// nothing and `{}` everything, as `LabelSelectorAsSelector` does.
    pub fn from_api(sel: &Value) -> Result<Self> {
        if sel.is_null() {
            return Ok(Self::nothing());
        }
        let typed: metav1::LabelSelector = serde_json::from_value(sel.clone())
            .map_err(|e| Error::InvalidLabelSelector(format!("invalid label selector: {e}")))?;
        Self::from_k8s(&typed)
    }

    /// Builds from a typed `metav1.LabelSelector` (`LabelSelectorAsSelector`);
    /// an empty one selects everything. Use [`LabelSelector::nothing`] where
    /// the API field is absent.
    pub fn from_k8s(sel: &metav1::LabelSelector) -> Result<Self> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            let r = new_requirement(k, Operator::Equals, vec![v.clone()])
                .map_err(Error::InvalidLabelSelector)?;
            requirements.push(r);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(Error::InvalidLabelSelector(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    )));
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            let r = new_requirement(&expr.key, operator, values)
                .map_err(Error::InvalidLabelSelector)?;
            requirements.push(r);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// `labels.SelectorFromSet`: equality on every pair, without validation
    /// (e.g. a Service's or ReplicationController's `spec.selector`). An
    /// empty map selects everything.
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// `labels.Nothing()`: matches no object (a nil `metav1.LabelSelector`).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_lookup(|k| labels.get(k).map(String::as_str))
    }

    /// Matches an object's `metadata.labels` JSON; `None`/`null` means no
    /// labels. Non-string values count as absent.
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        let map = labels.and_then(Value::as_object);
        self.matches_lookup(|k| map.and_then(|m| m.get(k)).and_then(Value::as_str))
    }

    /// Matches against any label source.
    pub fn matches_lookup<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(&get))
    }

    /// True when the selector restricts nothing (`Selector.Empty()`).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for [`LabelSelector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Requirements sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// `Selector.RequiresExactMatch`: the value a `=`, `==` or single-valued
    /// `in` requirement demands for `label`, judging only the first
    /// requirement on that key.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// `Selector.String()`, e.g. `x in (a,b),y!=c,!z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // selector_test.go TestSelectorMatches.
    #[test]
    fn selector_matches_label_sets_like_kubernetes() {
        let xy = set(&[("x", "y")]);
        let labelset = set(&[("foo", "bar"), ("baz", "blah")]);
        let cases: &[(&str, &BTreeMap<String, String>, bool)] = &[
            ("", &xy, true),
            ("x=y", &xy, true),
            ("x=y,z=w", &set(&[("x", "y"), ("z", "w")]), true),
            ("x!=y,z!=w", &set(&[("x", "z"), ("z", "a")]), true),
            ("notin=in", &set(&[("notin", "in")]), true),
            ("x", &set(&[("x", "z")]), true),
            ("!x", &set(&[("y", "z")]), true),
            ("x>1", &set(&[("x", "2")]), true),
            ("x<1", &set(&[("x", "0")]), true),
            ("x=z", &set(&[]), false),
            ("x=y", &set(&[("x", "z")]), false),
            ("x=y,z=w", &set(&[("x", "w"), ("z", "w")]), false),
            ("x!=y,z!=w", &set(&[("x", "z"), ("z", "w")]), false),
            ("x", &set(&[("y", "z")]), false),
            ("!x", &set(&[("x", "z")]), false),
            ("x>1", &set(&[("x", "0")]), false),
            ("x<1", &set(&[("x", "2")]), false),
            ("x>1", &set(&[("x", "v2")]), false),
            ("x>1", &set(&[]), false),
            ("foo=bar", &labelset, true),
            ("baz=blah", &labelset, true),
            ("foo=bar,baz=blah", &labelset, true),
            ("foo=blah", &labelset, false),
            ("baz=bar", &labelset, false),
            ("foo=bar,foobar=bar,baz=blah", &labelset, false),
            ("x in (a,b)", &set(&[("x", "b")]), true),
            ("x in (a,b)", &set(&[]), false),
            ("x notin (a,b)", &set(&[]), true),
            ("x notin (a,b)", &set(&[("x", "a")]), false),
            ("x in ()", &set(&[("x", "")]), true),
            ("x=", &set(&[("x", "")]), true),
        ];
        for (sel, labels, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert_eq!(parsed.matches(labels), *want, "{sel:?} on {labels:?}");
        }
    }

    // selector_test.go TestSelectorParse / TestToString: String() round-trips.
    #[test]
    fn display_round_trips_like_go_string() {
        for s in [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ] {
            let parsed = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(parsed.to_string(), s.replace(' ', ""));
        }
        let cases = [
            (
                "x in (def,abc),y notin (jkl),z",
                "x in (abc,def),y notin (jkl),z",
            ),
            ("y!=jkl,!z,x notin (abc,def)", "x notin (abc,def),y!=jkl,!z"),
            (
                "x notin (abc),y in (jkl,mno),z notin ()",
                "x notin (abc),y in (jkl,mno),z notin ()",
            ),
            ("x=abc,y==jkl,z!=a,z", "x=abc,y==jkl,z!=a,z"),
            ("z,x>2,y<8", "x>2,y<8,z"),
        ];
        for (input, want) in cases {
            assert_eq!(
                LabelSelector::parse(input).map(|s| s.to_string()),
                Ok(want.to_string())
            );
        }
    }

    // selector_test.go TestDeterministicParse.
    #[test]
    fn parse_is_deterministic_regardless_of_term_order() {
        let a = LabelSelector::parse("x=a,a=x").map(|s| s.to_string());
        let b = LabelSelector::parse("a=x,x=a").map(|s| s.to_string());
        assert_eq!(a, b);
    }

    // selector_test.go TestRequirementConstructor.
    #[test]
    fn requirement_constructor_enforces_operator_arity_and_names() {
        use Operator::*;
        let long_key = "a".repeat(254);
        let cases: &[(&str, Operator, &[&str], bool)] = &[
            ("x", In, &[], false),
            ("x", NotIn, &[], false),
            ("x", In, &["foo"], true),
            ("x", NotIn, &["foo"], true),
            ("x", Exists, &[], true),
            ("x", DoesNotExist, &[], true),
            ("1foo", In, &["bar"], true),
            ("1234", In, &["bar"], true),
            ("y", GreaterThan, &["1"], true),
            ("z", LessThan, &["6"], true),
            ("foo", GreaterThan, &["bar"], false),
            ("barz", LessThan, &["blah"], false),
            (&long_key, Exists, &[], false),
            ("x", Equals, &["a", "b"], false),
            ("x", Exists, &["a"], false),
        ];
        for (key, op, values, ok) in cases {
            let got = new_requirement(key, *op, values.iter().map(|v| v.to_string()).collect());
            assert_eq!(got.is_ok(), *ok, "{key} {op:?} {values:?}: {got:?}");
        }
    }

    // selector_test.go TestRequirementSelectorMatching.
    #[test]
    fn set_based_requirements_match_like_kubernetes() {
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Pairs, &str, bool)] = &[
            (
                &[("x", "foo"), ("y", "baz")],
                "x in (foo),y notin (alpha)",
                true,
            ),
            (
                &[("x", "foo"), ("y", "baz")],
                "x in (foo),y in (alpha)",
                false,
            ),
            (&[("y", "")], "x notin (),y", true),
            (&[("y", "")], "!x,y", true),
            (&[("y", "")], "x notin (),!y", false),
            (&[("y", "baz")], "x in ()", false),
            (&[("z", "2")], "z>1", true),
            (&[("z", "v2")], "z>1", false),
        ];
        for (labels, sel, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert_eq!(parsed.matches(&set(labels)), *want, "{sel:?}");
        }
    }

    #[test]
    fn empty_and_nothing_selectors_differ() {
        let everything = LabelSelector::default();
        assert!(everything.is_empty());
        assert!(everything.matches(&set(&[("x", "y")])));
        assert!(everything.matches_json(None));
        let nothing = LabelSelector::nothing();
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(&set(&[])));
        assert_eq!(
            LabelSelector::from_api(&Value::Null),
            Ok(LabelSelector::nothing())
        );
        assert_eq!(
            LabelSelector::from_api(&json!({})),
            Ok(LabelSelector::default())
        );
        assert!(
            LabelSelector::from_api(&json!({"matchLabels": {}, "matchExpressions": []}))
                .is_ok_and(|s| s.is_empty())
        );
    }

    #[test]
    fn api_selector_combines_match_labels_and_expressions() {
        let sel = LabelSelector::from_api(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"}
            ]
        }))
        .expect("valid selector");
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env notin (dev),team,tier in (edge,front)"
        );
        let good = json!({"app": "web", "tier": "edge", "team": "a", "env": "prod"});
        assert!(sel.matches_json(Some(&good)));
        let canary = json!({"app": "web", "tier": "edge", "team": "a", "canary": "true"});
        assert!(!sel.matches_json(Some(&canary)));
        assert!(!sel.matches_json(Some(&Value::Null)));
        assert!(!sel.matches_json(None));
    }

    #[test]
    fn api_selector_errors_match_kubernetes_text() {
        let cases = [
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}),
                "\"Equals\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}),
                "values: Invalid value: []string{\"b\"}: values set must be empty for exists and does not exist",
            ),
            (
                json!({"matchLabels": {"/a": "b c"}}),
                "[key: Invalid value: \"/a\": prefix part must be non-empty, values[0][/a]: Invalid value: \"b c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]",
            ),
        ];
        for (sel, want) in cases {
            let err = LabelSelector::from_api(&sel).expect_err("invalid selector");
            assert_eq!(err.to_string(), want);
        }
        assert!(LabelSelector::from_api(&json!({"matchLabels": {"a": 1}})).is_err());
        assert!(LabelSelector::from_api(&json!("a=b")).is_err());
    }

    #[test]
    fn typed_selector_matches_like_json_selector() {
        let typed = metav1::LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "db".to_string())])),
            match_expressions: None,
        };
        let sel = LabelSelector::from_k8s(&typed).expect("valid selector");
        assert!(sel.matches(&set(&[("app", "db"), ("x", "y")])));
        assert!(!sel.matches(&set(&[("app", "web")])));
    }

    #[test]
    fn from_set_selects_on_every_pair_and_empty_set_selects_all() {
        let sel = LabelSelector::from_set(&set(&[("a", "1"), ("b", "2")]));
        assert!(sel.matches(&set(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!sel.matches(&set(&[("a", "1")])));
        assert!(LabelSelector::from_set(&set(&[])).is_empty());
    }

    #[test]
    fn requires_exact_match_reports_single_valued_equality() {
        let sel = LabelSelector::parse("a=1,b in (2),c in (3,4),d!=5").expect("valid selector");
        assert_eq!(sel.requires_exact_match("a"), Some("1"));
        assert_eq!(sel.requires_exact_match("b"), Some("2"));
        assert_eq!(sel.requires_exact_match("c"), None);
        assert_eq!(sel.requires_exact_match("d"), None);
        assert_eq!(sel.requires_exact_match("e"), None);
    }

    #[test]
    fn non_string_json_label_values_count_as_absent() {
        let sel = LabelSelector::parse("a").expect("valid selector");
        assert!(!sel.matches_json(Some(&json!({"a": 1}))));
        assert!(
            LabelSelector::parse("!a")
                .expect("valid selector")
                .matches_json(Some(&json!({"a": true})))
        );
    }
}

//! Filter plugins: NodeUnschedulable, NodeName, TaintToleration (plus the node's Ready condition,
//! which upstream expresses as the `not-ready`/`unreachable` taints), NodeAffinity and
//! NodeResourcesFit. Everything the pod contributes is parsed once in [`RequiredAffinity::new`] so
//! the per-node checks only compare.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Toleration};

use super::{NodeInfo, PreparedPod, Unfit};

pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == value,
        "Exists" => true,
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| tolerates(t, key, value, effect))
}

/// Runs the filters in upstream's plugin order and reports the first failure.
pub(super) fn run(p: &PreparedPod, info: &NodeInfo) -> Result<(), Unfit> {
    let node = &info.node;
    node_unschedulable(p, info)?;
    node_name(p, node)?;
    node_ready(p, info)?;
    taints(p, node)?;
    p.affinity.check(node)?;
    fit(p, info)
}

fn node_unschedulable(p: &PreparedPod, info: &NodeInfo) -> Result<(), Unfit> {
    if info.facts.cordoned && !tolerated(p.tolerations, TAINT_UNSCHEDULABLE, "", "NoSchedule") {
        return Err(Unfit::Unschedulable);
    }
    Ok(())
}

fn node_name(p: &PreparedPod, node: &Node) -> Result<(), Unfit> {
    match p.node_name {
        Some(want) if node.metadata.name.as_deref() != Some(want) => Err(Unfit::NodeName),
        _ => Ok(()),
    }
}

/// A node that is not Ready carries the NoSchedule `not-ready` (or, when its status is Unknown,
/// `unreachable`) taint upstream; pods that tolerate it (DaemonSets) may still land there.
fn node_ready(p: &PreparedPod, info: &NodeInfo) -> Result<(), Unfit> {
    let key = match info.facts.ready {
        Some(true) => return Ok(()),
        None => TAINT_UNREACHABLE,
        Some(false) => TAINT_NOT_READY,
    };
    if tolerated(p.tolerations, key, "", "NoSchedule") {
        return Ok(());
    }
    Err(Unfit::NodeNotReady)
}

fn taints(p: &PreparedPod, node: &Node) -> Result<(), Unfit> {
    for taint in node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]) {
        if taint.effect != "NoSchedule" && taint.effect != "NoExecute" {
            continue;
        }
        let value = taint.value.as_deref().unwrap_or("");
        if !tolerated(p.tolerations, &taint.key, value, &taint.effect) {
            return Err(Unfit::Taint(format!("{{{}: {}}}", taint.key, value)));
        }
    }
    Ok(())
}

/// NodeResourcesFit: room for one more pod and for each non-zero request.
fn fit(p: &PreparedPod, info: &NodeInfo) -> Result<(), Unfit> {
    let req = &p.requests;
    let free = info.allocatable.minus(&info.requested);
    let too_many = i64::try_from(info.pod_count).unwrap_or(i64::MAX).saturating_add(1) > info.allocatable.pods;
    let cpu = req.milli_cpu > 0 && req.milli_cpu > free.milli_cpu;
    let memory = req.memory > 0 && req.memory > free.memory;
    let storage = req.ephemeral_storage > 0 && req.ephemeral_storage > free.ephemeral_storage;
    if !(cpu || memory || storage) {
        return if too_many { Err(Unfit::TooManyPods) } else { Ok(()) };
    }
    let flagged = [
        (too_many, "Too many pods"),
        (cpu, "Insufficient cpu"),
        (memory, "Insufficient memory"),
        (storage, "Insufficient ephemeral-storage"),
    ];
    Err(Unfit::Resources(flagged.iter().filter(|(hit, _)| *hit).map(|(_, why)| why.to_string()).collect()))
}

/// `spec.nodeSelector` plus required node affinity, parsed (upstream `GetRequiredNodeAffinity`).
pub(super) struct RequiredAffinity<'a> {
    selector: Option<&'a BTreeMap<String, String>>,
    /// `None`: no required affinity. `Some`: ORed terms; terms that fail to parse are dropped,
    /// so an empty list matches no node.
    terms: Option<Vec<Term<'a>>>,
}

struct Term<'a> {
    labels: Vec<LabelReq<'a>>,
    fields: Vec<FieldReq<'a>>,
}

enum LabelReq<'a> {
    In(&'a str, &'a [String]),
    NotIn(&'a str, &'a [String]),
    Exists(&'a str),
    DoesNotExist(&'a str),
    Gt(&'a str, i64),
    Lt(&'a str, i64),
}

struct FieldReq<'a> {
    key: &'a str,
    value: &'a str,
    equal: bool,
}

impl<'a> RequiredAffinity<'a> {
    pub(super) fn new(pod: &'a Pod) -> Self {
        let spec = pod.spec.as_ref();
        let selector = spec.and_then(|s| s.node_selector.as_ref()).filter(|m| !m.is_empty());
        let required = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
        let terms = required.map(|r| r.node_selector_terms.iter().filter_map(Term::parse).collect());
        Self { selector, terms }
    }

    fn check(&self, node: &Node) -> Result<(), Unfit> {
        let labels = node.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        if let Some(sel) = self.selector
            && !sel.iter().all(|(k, v)| label(k) == Some(v.as_str()))
        {
            return Err(Unfit::NodeSelector);
        }
        if let Some(terms) = &self.terms {
            let name = node.metadata.name.as_deref().unwrap_or("");
            if !terms.iter().any(|t| t.matches(&label, name)) {
                return Err(Unfit::NodeAffinity);
            }
        }
        Ok(())
    }
}

impl<'a> Term<'a> {
    /// `None` for terms that select nothing: empty ones and ones that don't parse.
    fn parse(term: &'a NodeSelectorTerm) -> Option<Self> {
        let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
        let fields = term.match_fields.as_deref().unwrap_or(&[]);
        if exprs.is_empty() && fields.is_empty() {
            return None;
        }
        Some(Term {
            labels: exprs.iter().map(LabelReq::parse).collect::<Option<_>>()?,
            fields: fields.iter().map(FieldReq::parse).collect::<Option<_>>()?,
        })
    }

    fn matches<'l>(&self, label: &impl Fn(&str) -> Option<&'l str>, node_name: &str) -> bool {
        let labels_ok = self.labels.iter().all(|r| r.matches(label));
        // Upstream skips field requirements for a node without a name (no fields to match).
        let fields_ok = node_name.is_empty()
            || self.fields.iter().all(|f| {
                let actual = if f.key == "metadata.name" { node_name } else { "" };
                (actual == f.value) == f.equal
            });
        labels_ok && fields_ok
    }
}

impl<'a> LabelReq<'a> {
    /// Upstream `labels.NewRequirement` validation: keys, values and value counts.
    fn parse(r: &'a NodeSelectorRequirement) -> Option<Self> {
        let key = r.key.as_str();
        let values = r.values.as_deref().unwrap_or(&[]);
        if !is_qualified_name(key) || !values.iter().all(|v| is_label_value(v)) {
            return None;
        }
        let number = || match values {
            [v] => v.parse::<i64>().ok(),
            _ => None,
        };
        Some(match r.operator.as_str() {
            "In" if !values.is_empty() => LabelReq::In(key, values),
            "NotIn" if !values.is_empty() => LabelReq::NotIn(key, values),
            "Exists" if values.is_empty() => LabelReq::Exists(key),
            "DoesNotExist" if values.is_empty() => LabelReq::DoesNotExist(key),
            "Gt" => LabelReq::Gt(key, number()?),
            "Lt" => LabelReq::Lt(key, number()?),
            _ => return None,
        })
    }

    fn matches<'l>(&self, label: &impl Fn(&str) -> Option<&'l str>) -> bool {
        let listed = |k: &str, vs: &[String]| label(k).is_some_and(|v| vs.iter().any(|x| x == v));
        let number = |k: &str| label(k).and_then(|v| v.parse::<i64>().ok());
        match *self {
            LabelReq::In(k, vs) => listed(k, vs),
            LabelReq::NotIn(k, vs) => !listed(k, vs),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::DoesNotExist(k) => label(k).is_none(),
            LabelReq::Gt(k, n) => number(k).is_some_and(|v| v > n),
            LabelReq::Lt(k, n) => number(k).is_some_and(|v| v < n),
        }
    }
}

impl<'a> FieldReq<'a> {
    /// Field requirements take exactly one value and only In / NotIn.
    fn parse(r: &'a NodeSelectorRequirement) -> Option<Self> {
        let [value] = r.values.as_deref()? else {
            return None;
        };
        let equal = match r.operator.as_str() {
            "In" => true,
            "NotIn" => false,
            _ => return None,
        };
        Some(FieldReq { key: &r.key, value, equal })
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// A label key: optional DNS-subdomain prefix and `/`, then a label name.
fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        None => is_label_name(s),
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}


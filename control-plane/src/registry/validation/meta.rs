//! `metadata`, labels, annotations and label selectors (`apimachinery/pkg/api/validation/objectmeta.go`,
//! `apis/meta/v1/validation`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::names::{is_dns1123_label, is_qualified_name, is_valid_label_value};
use super::{
    FIELD_IMMUTABLE_ERROR_MSG, FieldPath, NameRule, forbidden, go_quote, invalid, invalid_raw, nonnegative, required,
    required_detail, too_long,
};
use crate::api::error::Cause;

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// Metadata on create. Like the API server, the name is checked after generation; a missing name is
/// tolerated only when `generateName` is set, since the registry generates it afterwards.
pub fn object_meta(meta: &ObjectMeta, namespaced: bool, name_rule: NameRule) -> Vec<Cause> {
    object_meta_at(meta, namespaced, name_rule, &FieldPath::new("metadata"))
}

pub(crate) fn object_meta_at(meta: &ObjectMeta, namespaced: bool, name_rule: NameRule, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    let name = meta.name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        let p = path.child("generateName");
        errs.extend(name_rule.check(generate_name, true).into_iter().map(|m| invalid(&p, generate_name, m)));
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(required_detail(&path.child("name"), "name or generateName is required"));
        }
    } else {
        let p = path.child("name");
        errs.extend(name_rule.check(name, false).into_iter().map(|m| invalid(&p, name, m)));
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(required(&path.child("namespace")));
        } else {
            let p = path.child("namespace");
            errs.extend(is_dns1123_label(namespace).into_iter().map(|m| invalid(&p, namespace, m)));
        }
    } else if !namespace.is_empty() {
        errs.push(forbidden(&path.child("namespace"), "not allowed on this type"));
    }
    errs.extend(nonnegative(meta.generation.unwrap_or(0), &path.child("generation")));
    errs.extend(common(meta, path));
    errs
}

/// What create and update both check: labels, annotations, owners, finalizers.
fn common(meta: &ObjectMeta, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    if let Some(l) = &meta.labels {
        errs.extend(labels(l, &path.child("labels")));
    }
    if let Some(a) = &meta.annotations {
        errs.extend(annotations(a, &path.child("annotations")));
    }
    errs.extend(owner_references(meta, &path.child("ownerReferences")));
    errs.extend(finalizers(meta.finalizers.as_deref().unwrap_or(&[]), &path.child("finalizers")));
    errs
}

/// Metadata on update: name, namespace and uid are immutable, generation may not go down, and a
/// deleting object may gain no finalizer.
pub fn object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<Cause> {
    let path = FieldPath::new("metadata");
    let mut errs = vec![];
    if old.deletion_timestamp.is_some() {
        let old_f = old.finalizers.as_deref().unwrap_or(&[]);
        let mut extra: Vec<&String> = new.finalizers.iter().flatten().filter(|f| !old_f.contains(f)).collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list = extra.iter().map(|f| go_quote(f)).collect::<Vec<_>>().join(", ");
            errs.push(forbidden(
                &path.child("finalizers"),
                &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
            ));
        }
    }
    let (new_gen, old_gen) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_gen < old_gen {
        errs.push(invalid_raw(&path.child("generation"), new_gen, "must not be decremented"));
    }
    // The registry's BeforeUpdate copies creationTimestamp, and uid when the client sent none,
    // from the stored object before validating; only real changes are reported here.
    let immutable = [("name", &new.name, &old.name), ("namespace", &new.namespace, &old.namespace)];
    for (field, n, o) in immutable {
        if n.as_deref().unwrap_or("") != o.as_deref().unwrap_or("") {
            errs.push(invalid(&path.child(field), n.as_deref().unwrap_or(""), FIELD_IMMUTABLE_ERROR_MSG));
        }
    }
    let new_uid = new.uid.as_deref().unwrap_or("");
    if !new_uid.is_empty() && new_uid != old.uid.as_deref().unwrap_or("") {
        errs.push(invalid(&path.child("uid"), new_uid, FIELD_IMMUTABLE_ERROR_MSG));
    }
    errs.extend(common(new, &path));
    errs
}

/// `ValidateLabels`: keys are qualified names, values label values; the path is the map itself.
pub fn labels(labels: &BTreeMap<String, String>, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for (k, v) in labels {
        errs.extend(is_qualified_name(k).into_iter().map(|m| invalid(path, k, m)));
        errs.extend(is_valid_label_value(v).into_iter().map(|m| invalid(path, v, m)));
    }
    errs
}

/// Keys are qualified names compared case-insensitively; keys and values together are capped at 256 KiB.
pub(crate) fn annotations(annotations: &BTreeMap<String, String>, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let mut total = 0usize;
    for (k, v) in annotations {
        errs.extend(is_qualified_name(&k.to_lowercase()).into_iter().map(|m| invalid(path, k, m)));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn owner_references(meta: &ObjectMeta, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    let mut first_controller: Option<String> = None;
    for r in meta.owner_references.iter().flatten() {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(invalid(&path.child("apiVersion"), &r.api_version, "version must not be empty"));
        }
        if r.kind.is_empty() {
            errs.push(invalid(&path.child("kind"), &r.kind, "must not be empty"));
        }
        if r.name.is_empty() {
            errs.push(invalid(&path.child("name"), &r.name, "must not be empty"));
        }
        if r.uid.is_empty() {
            errs.push(invalid(&path.child("uid"), &r.uid, "must not be empty"));
        }
        if r.api_version == "v1" && r.kind == "Event" {
            errs.push(invalid_raw(path, format!("{}/{}", r.kind, r.name), "/v1, Kind=Event is disallowed from being an owner"));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(invalid_raw(
                    path,
                    "[]v1.OwnerReference{...}",
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

fn finalizers(list: &[String], path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for f in list {
        errs.extend(is_qualified_name(f).into_iter().map(|m| invalid(path, f, m)));
    }
    if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
        let shown = format!("[]string{{{}}}", list.iter().map(|f| go_quote(f)).collect::<Vec<_>>().join(", "));
        errs.push(invalid_raw(path, shown, "finalizer orphan and foregroundDeletion cannot be both set"));
    }
    // Core types also insist that unqualified finalizers are the well-known ones.
    for (i, f) in list.iter().enumerate() {
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(invalid(&path.index(i), f, "name is neither a standard finalizer name nor is it fully qualified"));
        }
    }
    errs
}

/// `ValidateLabelSelector` (strict label values, as apps/v1 workloads use).
pub fn label_selector(sel: &LabelSelector, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for (j, req) in sel.match_expressions.iter().flatten().enumerate() {
        let rp = path.child("matchExpressions").index(j);
        let values = req.values.as_deref().unwrap_or(&[]);
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required_detail(&rp.child("values"), "must be specified when `operator` is 'In' or 'NotIn'"));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(&rp.child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
                }
            }
            op => errs.push(invalid(&rp.child("operator"), op, "not a valid selector operator")),
        }
        let kp = rp.child("key");
        errs.extend(is_qualified_name(&req.key).into_iter().map(|m| invalid(&kp, &req.key, m)));
        for (k, v) in values.iter().enumerate() {
            let vp = rp.child("values").index(k);
            errs.extend(is_valid_label_value(v).into_iter().map(|m| invalid(&vp, v, m)));
        }
    }
    if let Some(ml) = &sel.match_labels {
        errs.extend(labels(ml, &path.child("matchLabels")));
    }
    errs
}

/// Whether a selector selects a label set; an empty selector selects everything.
pub fn selector_matches(sel: &LabelSelector, set: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel.match_labels.iter().flatten().all(|(k, v)| set.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or(&[]);
        let got = set.get(&req.key);
        match req.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Go's `%#v` of a `v1.LabelSelector`, as the API server prints it in selector errors.
pub(crate) fn go_repr_selector(sel: &LabelSelector) -> String {
    let ml = match &sel.match_labels {
        None => "map[string]string(nil)".to_string(),
        Some(m) => format!(
            "map[string]string{{{}}}",
            m.iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v))).collect::<Vec<_>>().join(", ")
        ),
    };
    let me = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => format!(
            "[]v1.LabelSelectorRequirement{{{}}}",
            list.iter()
                .map(|r| {
                    let values = match &r.values {
                        None => "[]string(nil)".to_string(),
                        Some(v) => format!("[]string{{{}}}", v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")),
                    };
                    format!("v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}", go_quote(&r.key), go_quote(&r.operator))
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")
}

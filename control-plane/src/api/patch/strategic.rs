//! Strategic merge patch, applied server side (`application/strategic-merge-patch+json`).
//!
//! A port of `StrategicMergeMapPatch` (`mergeMap`, `mergeSlice`, `mergePatchIntoOriginal`) from
//! k8s.io/apimachinery/pkg/util/strategicpatch/patch.go: maps merge recursively and `null`
//! deletes a key; lists declared `patchStrategy: merge` merge element by element (by merge key,
//! or as a set of primitives), every other list is replaced; the directives `$patch`,
//! `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured
//! and never left in the result. Which list merges how comes from [`schema`].
//!
//! Go's implementation is followed down to its ordering rules, including one accident: after
//! deleting elements of a merge list in place, Go's `$setElementOrder` pass sees the list's
//! backing array, partly overwritten by appended elements, as "the live order". Kubernetes' tests
//! pin the resulting order, so [`merge_list`](Merger::merge_list) reproduces that view.

use serde_json::{Map, Value};

use crate::api::patch::schema::{self, ListStrategy};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_cases;

pub type Result<T, E = Error> = std::result::Result<T, E>;

type Object = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

const MAP_TYPE: &str = "map[string]interface {}";
const LIST_TYPE: &str = "[]interface {}";

/// Why a patch could not be applied. Messages follow the Go implementation's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid JSON document")]
    BadJsonDocument,
    #[error("lists of lists are not supported")]
    ListOfLists,
    #[error("invalid patch format of primitive list")]
    BadPrimitiveListFormat,
    #[error("invalid patch format of retainKeys")]
    BadRetainKeysFormat,
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrderFormat,
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    SetElementOrderMismatch { patch: String, order: String },
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownDirective { directive: String, map: String },
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    #[error("cannot merge lists without merge key for {path}")]
    NoMergeKeyDeclared { path: String },
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("list element types are not identical: {0}")]
    MixedElementTypes(String),
    #[error("no elements in any of the given slices")]
    NoElements,
    #[error("value for key {0} is not a map")]
    NotAMap(usize),
}

impl Error {
    /// The HTTP status the API server answers with (`interpretStrategicMergePatchError`):
    /// malformed directives are bad requests, lists of lists unprocessable, and everything else
    /// reaches the client as an internal error, as it does from a real API server.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::BadJsonDocument
            | Error::BadPrimitiveListFormat
            | Error::BadRetainKeysFormat
            | Error::BadSetElementOrderFormat => 400,
            Error::ListOfLists => 422,
            _ => 500,
        }
    }
}

/// Applies a strategic merge `patch` to `original`, an object of `kind`. Kinds [`schema`] does not
/// describe still patch, with every list replaced whole.
pub fn apply(kind: &str, original: &Value, patch: &Value) -> Result<Value> {
    let strategy = |path: &[&str]| schema::list_strategy(kind, path);
    Merger {
        strategy: &strategy,
    }
    .apply(original, patch)
}

struct Merger<'s> {
    strategy: &'s dyn Fn(&[&str]) -> ListStrategy,
}

/// A merged list plus what Go's caller sees of the original list afterwards (see the module doc).
struct MergedList {
    items: Vec<Value>,
    live_view: Vec<Value>,
}

impl Merger<'_> {
    fn apply(&self, original: &Value, patch: &Value) -> Result<Value> {
        let as_object = |v: &Value| match v {
            Value::Object(m) => Ok(m.clone()),
            Value::Null => Ok(Object::new()),
            _ => Err(Error::BadJsonDocument),
        };
        let merged = self.merge_map(as_object(original)?, as_object(patch)?, &mut Vec::new())?;
        Ok(Value::Object(merged))
    }

    fn strategy(&self, path: &[String]) -> ListStrategy {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        (self.strategy)(&path)
    }

    /// `path` holds the field names leading to `original` (list fields name their elements too).
    fn merge_map(
        &self,
        mut original: Object,
        mut patch: Object,
        path: &mut Vec<String>,
    ) -> Result<Object> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    patch.shift_remove(DIRECTIVE);
                    Ok(clean_map(patch, false))
                }
                Some("delete") => Ok(Object::new()),
                _ => Err(Error::UnknownDirective {
                    directive: show(directive),
                    map: show_map(&patch),
                }),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, path)?;

        for (key, value) in patch {
            let (field, deletion_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                Some(rest) => (
                    rest.strip_prefix('/')
                        .ok_or(Error::BadPrimitiveListFormat)?
                        .to_owned(),
                    true,
                ),
                None => (key, false),
            };
            if value.is_null() {
                original.shift_remove(&field);
                continue;
            }
            let Some(current) = original.get_mut(&field) else {
                if !deletion_list && let Some(value) = clean(value, true) {
                    original.insert(field, value);
                }
                continue;
            };
            if !same_type(current, &value) {
                if !deletion_list {
                    match clean(value, true) {
                        Some(value) => *current = value,
                        None => {
                            original.shift_remove(&field);
                        }
                    }
                }
                continue;
            }
            path.push(field);
            let merged = match (std::mem::take(current), value) {
                (Value::Object(current), Value::Object(value)) => {
                    Value::Object(self.merge_map(current, value, path)?)
                }
                (Value::Array(current), Value::Array(value)) => match self.strategy(path) {
                    ListStrategy::Merge { key } => Value::Array(
                        self.merge_list(current, value, key, deletion_list, path)?
                            .items,
                    ),
                    ListStrategy::Atomic if deletion_list => {
                        Value::Array(self.merge_list(current, value, None, true, path)?.items)
                    }
                    ListStrategy::Atomic => Value::Array(clean_list(value, false)),
                },
                (_, value) => value,
            };
            *current = merged;
            path.pop();
        }
        Ok(original)
    }

    /// The `$setElementOrder/<list>` pass: merges each ordered list with its patch list, then
    /// orders the result by the directive, keeping server-only elements near their old neighbours.
    fn merge_ordered_lists(
        &self,
        original: &mut Object,
        patch: &mut Object,
        path: &mut Vec<String>,
    ) -> Result<()> {
        let directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive in directives {
            let Some(order) = patch.shift_remove(&directive) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(Error::BadArgType {
                    expected: LIST_TYPE,
                    actual: type_name(&order),
                });
            };
            let field = directive[SET_ELEMENT_ORDER.len()..]
                .strip_prefix('/')
                .ok_or(Error::BadSetElementOrderFormat)?
                .to_owned();
            let original_list = list_field(original, &field)?;
            let patch_list = list_field(patch, &field)?;
            if original_list.is_none() && patch_list.is_none() {
                continue;
            }
            path.push(field.clone());
            let strategy = self.strategy(path);
            let key = match strategy {
                ListStrategy::Merge { key } => key,
                ListStrategy::Atomic => None,
            };
            validate_order(patch_list.as_deref().unwrap_or_default(), &order, key)?;
            let kind = element_kind(&[
                original_list.as_deref().unwrap_or_default(),
                patch_list.as_deref().unwrap_or_default(),
            ]);
            let (merged, live) = match (original_list, patch_list) {
                (Some(original), None) => (original.clone(), original),
                (None, Some(patch)) => (clean_list(patch, true), Vec::new()),
                (Some(original), Some(patch)) => match strategy {
                    ListStrategy::Merge { key } => {
                        let merged = self.merge_list(original, patch, key, false, path)?;
                        (merged.items, merged.live_view)
                    }
                    ListStrategy::Atomic => (clean_list(patch, false), original),
                },
                (None, None) => (Vec::new(), Vec::new()),
            };
            if kind? == ElementKind::Map && key.is_none() {
                return Err(Error::NoMergeKeyDeclared {
                    path: path.join("."),
                });
            }
            let (in_order, server_only) = partition(merged, &order, key)?;
            let ordered = normalize_order(in_order, server_only, &order, &live, key)?;
            original.insert(field.clone(), Value::Array(ordered));
            patch.shift_remove(&field);
            path.pop();
        }
        Ok(())
    }

    /// Go's `mergeSlice`: `deletion_list` marks a `$deleteFromPrimitiveList` patch.
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        key: Option<&'static str>,
        deletion_list: bool,
        path: &[String],
    ) -> Result<MergedList> {
        if original.is_empty() && patch.is_empty() {
            return Ok(MergedList {
                items: original,
                live_view: Vec::new(),
            });
        }
        if element_kind(&[&original, &patch])? != ElementKind::Map {
            if deletion_list {
                let items = original
                    .iter()
                    .filter(|v| !patch.contains(v))
                    .cloned()
                    .collect();
                return Ok(MergedList {
                    items,
                    live_view: original,
                });
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(&patch) {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            let (in_patch, server_only) = partition(merged, &patch, key)?;
            let items = normalize_order(in_patch, server_only, &patch, &original, key)?;
            return Ok(MergedList {
                items,
                live_view: original,
            });
        }
        let key = key.ok_or_else(|| Error::NoMergeKeyDeclared {
            path: path.join("."),
        })?;

        // `live` is Go's working slice; `view` is the same backing array as the caller sees it, and
        // follows `live` until an append outgrows the original length (Go reallocates then).
        let capacity = original.len();
        let mut view = original.clone();
        let mut live = original;
        let mut shared = true;
        let mut replace = false;
        let mut plain = Vec::new();
        for item in patch {
            let Value::Object(item) = item else {
                return Err(Error::BadArgType {
                    expected: MAP_TYPE,
                    actual: type_name(&item),
                });
            };
            let Some(directive) = item.get(DIRECTIVE) else {
                plain.push(item);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let value = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                    while let Some(i) = find_by_key(&live, key, value)? {
                        if shared {
                            let last = view[live.len() - 1].clone();
                            view[i..live.len()].rotate_left(1);
                            view[live.len() - 1] = last;
                        }
                        live.remove(i);
                    }
                }
                Some("replace") => replace = true,
                Some("merge") => return Err(Error::MergeDirectiveInList),
                _ => {
                    return Err(Error::UnknownDirective {
                        directive: show(directive),
                        map: show_map(&item),
                    });
                }
            }
        }

        let mut patch_order = Vec::new();
        let live_order;
        if replace {
            live = plain
                .into_iter()
                .map(|m| Value::Object(clean_map(m, false)))
                .collect();
            live_order = live.clone();
        } else {
            live_order = live.clone();
            let mut path = path.to_vec();
            for item in plain {
                let value = item
                    .get(key)
                    .ok_or_else(|| no_merge_key(&item, key))?
                    .clone();
                patch_order.push(Value::Object(item.clone()));
                match find_by_key(&live, key, &value)? {
                    Some(i) => {
                        let Value::Object(current) = std::mem::take(&mut live[i]) else {
                            return Err(Error::NotAMap(i));
                        };
                        live[i] = Value::Object(self.merge_map(current, item, &mut path)?);
                        if shared {
                            view[i] = live[i].clone();
                        }
                    }
                    None => {
                        let added = Value::Object(clean_map(item, false));
                        if shared {
                            if live.len() < capacity {
                                view[live.len()] = added.clone();
                            } else {
                                shared = false;
                            }
                        }
                        live.push(added);
                    }
                }
            }
        }
        let (in_patch, server_only) = partition(live, &patch_order, Some(key))?;
        let items = normalize_order(in_patch, server_only, &patch_order, &live_order, Some(key))?;
        Ok(MergedList {
            items,
            live_view: view,
        })
    }
}

/// `$retainKeys`: fields of `original` not listed are cleared, and the patch may only set listed
/// fields.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(Error::BadRetainKeysFormat);
    };
    let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        let directive =
            k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER);
        if !v.is_null() && !directive && !retained(k) {
            return Err(Error::BadRetainKeysFormat);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// Go's `validatePatchWithSetOrderList`: the patch list must follow the directive's order.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch.len());
    for item in patch {
        if key.is_some() {
            let Value::Object(m) = item else {
                return Err(Error::BadArgType {
                    expected: MAP_TYPE,
                    actual: type_name(item),
                });
            };
            if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE))
        {
            p += 1;
            continue;
        }
        if merge_keys_equal(items[p], &order[o], key)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() && o >= order.len() {
        return Err(Error::SetElementOrderMismatch {
            patch: show_list(patch),
            order: show_list(order),
        });
    }
    Ok(())
}

fn merge_keys_equal(left: &Value, right: &Value, key: Option<&str>) -> Result<bool> {
    let Some(key) = key else {
        return Ok(left == right);
    };
    let key_of = |v: &Value| match v {
        Value::Object(m) => m.get(key).cloned().ok_or_else(|| no_merge_key(m, key)),
        other => Err(Error::BadArgType {
            expected: MAP_TYPE,
            actual: type_name(other),
        }),
    };
    Ok(key_of(left)? == key_of(right)?)
}

/// Splits `items` into those present in `by` (by merge key, or by value for primitives) and the rest.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in items {
        let found = match key {
            None => by.contains(&item),
            Some(key) => {
                let Value::Object(m) = &item else {
                    return Err(Error::BadArgType {
                        expected: MAP_TYPE,
                        actual: type_name(&item),
                    });
                };
                let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                find_by_key(by, key, value)?.is_some()
            }
        };
        if found {
            present.push(item)
        } else {
            absent.push(item)
        }
    }
    Ok((present, absent))
}

/// Go's `normalizeElementOrder`: patch items in patch order, server-only items in live order,
/// then interleaved by their live positions.
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    live_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>> {
    let patch_items = sort_by_order(patch_items, patch_order, key)?;
    let server_only = sort_by_order(server_only, live_order, key)?;
    Ok(merge_sorted(server_only, patch_items, live_order, key))
}

fn sort_by_order(items: Vec<Value>, order: &[Value], key: Option<&str>) -> Result<Vec<Value>> {
    let mut deleted = Vec::new();
    let items = match key {
        None => items,
        Some(key) => {
            for item in items.iter().chain(order) {
                let Value::Object(m) = item else {
                    return Err(Error::BadArgType {
                        expected: MAP_TYPE,
                        actual: type_name(item),
                    });
                };
                if !m.contains_key(key) {
                    return Err(no_merge_key(m, key));
                }
            }
            let (kept, gone): (Vec<Value>, Vec<Value>) = items
                .into_iter()
                .partition(|i| i.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
            deleted = gone;
            kept
        }
    };
    // Elements missing from `order` cannot happen with well-formed input; they go last.
    let mut ranked: Vec<(usize, Value)> = items
        .into_iter()
        .map(|item| (position(order, &item, key).unwrap_or(usize::MAX), item))
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    Ok(ranked
        .into_iter()
        .map(|(_, item)| item)
        .chain(deleted)
        .collect())
}

/// Go's `mergeSortedSlice`: a server-only item goes first only when both it and the next patch
/// item are in the live list and it came earlier there.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    live_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(live_order, l, key), position(live_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

/// Index of the first element of `list` matching `item` (by merge key, or by value).
fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let wanted = identity(item, key);
    list.iter().position(|v| identity(v, key) == wanted)
}

fn identity<'v>(v: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => v.get(key),
        None => Some(v),
    }
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(Error::NotAMap(i));
        };
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn list_field(object: &Object, field: &str) -> Result<Option<Vec<Value>>> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(Error::BadArgType {
            expected: LIST_TYPE,
            actual: type_name(other),
        }),
    }
}

/// Element types as Go's decoder distinguishes them (integers and floats differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Map,
    List,
}

fn kind_of(v: &Value) -> ElementKind {
    match v {
        Value::Null => ElementKind::Null,
        Value::Bool(_) => ElementKind::Bool,
        Value::Number(n) if n.is_f64() => ElementKind::Float,
        Value::Number(_) => ElementKind::Int,
        Value::String(_) => ElementKind::String,
        Value::Object(_) => ElementKind::Map,
        Value::Array(_) => ElementKind::List,
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    kind_of(a) == kind_of(b)
}

/// Go's `sliceElementType`: all elements of all lists must share one type, and not be lists.
fn element_kind(lists: &[&[Value]]) -> Result<ElementKind> {
    let mut seen = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let kind = kind_of(item);
        match seen {
            None if kind == ElementKind::List => return Err(Error::ListOfLists),
            None => seen = Some(kind),
            Some(s) if s != kind => {
                let lists: Vec<String> = lists.iter().map(|l| show_list(l)).collect();
                return Err(Error::MixedElementTypes(lists.join(" ")));
            }
            Some(_) => {}
        }
    }
    seen.ok_or(Error::NoElements)
}

fn is_directive_key(key: &str) -> bool {
    let list_directive = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || list_directive(SET_ELEMENT_ORDER)
        || list_directive(DELETE_FROM_PRIMITIVE_LIST)
}

/// Readies a patch value that is taken as is rather than merged. Null fields and directive keys
/// go (Go leaves them for the typed decoding to drop); with `drop_marked`, so do maps carrying
/// `$patch`, as Go's `removeDirectives` does for values with nothing to merge into. `None` when
/// `value` itself is such a map.
fn clean(value: Value, drop_marked: bool) -> Option<Value> {
    match value {
        Value::Object(m) if drop_marked && m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(clean_map(m, drop_marked))),
        Value::Array(items) => Some(Value::Array(clean_list(items, drop_marked))),
        other => Some(other),
    }
}

fn clean_map(map: Object, drop_marked: bool) -> Object {
    map.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v, drop_marked).map(|v| (k, v)))
        .collect()
}

fn clean_list(items: Vec<Value>, drop_marked: bool) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|v| clean(v, drop_marked))
        .collect()
}

fn no_merge_key(map: &Object, key: &str) -> Error {
    Error::NoMergeKey {
        map: show_map(map),
        key: key.to_owned(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match kind_of(v) {
        ElementKind::Null => "<nil>",
        ElementKind::Bool => "bool",
        ElementKind::Int => "int64",
        ElementKind::Float => "float64",
        ElementKind::String => "string",
        ElementKind::Map => MAP_TYPE,
        ElementKind::List => LIST_TYPE,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_map(m: &Object) -> String {
    Value::Object(m.clone()).to_string()
}

fn show_list(l: &[Value]) -> String {
    Value::Array(l.to_vec()).to_string()
}

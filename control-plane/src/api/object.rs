//! Reading and writing the metadata of objects kept as JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::store::KeyValue;

pub fn meta(obj: &Value) -> &Value {
    obj.get("metadata").unwrap_or(&Value::Null)
}

/// The metadata map, created if missing (or not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("just made an object");
    let m = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("just made an object")
}

pub fn str_field<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub fn name(obj: &Value) -> Option<&str> {
    str_field(obj, "name")
}
pub fn namespace(obj: &Value) -> Option<&str> {
    str_field(obj, "namespace")
}
pub fn uid(obj: &Value) -> Option<&str> {
    str_field(obj, "uid")
}
pub fn resource_version(obj: &Value) -> Option<&str> {
    str_field(obj, "resourceVersion")
}
pub fn labels(obj: &Value) -> Option<&Value> {
    meta(obj).get("labels")
}
pub fn labels_map(obj: &Value) -> BTreeMap<String, String> {
    labels(obj)
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}
pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}
pub fn set_finalizers(obj: &mut Value, list: &[String]) {
    let m = meta_mut(obj);
    if list.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(list));
    }
}
pub fn is_deleting(obj: &Value) -> bool {
    str_field(obj, "deletionTimestamp").is_some()
}
pub fn generation(obj: &Value) -> i64 {
    meta(obj).get("generation").and_then(Value::as_i64).unwrap_or(0)
}

/// Kubernetes' timestamp format: RFC 3339 in UTC with seconds precision.
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// Decodes a stored value and stamps its `resourceVersion` (stored bytes never carry one).
pub fn from_kv(kv: &KeyValue) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value).ok()?;
    meta_mut(&mut v).insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
    Some(v)
}

/// The bytes to store: the object without `resourceVersion` (the store's revision is the truth).
pub fn to_stored(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    let m = meta_mut(&mut o);
    m.remove("resourceVersion");
    m.remove("selfLink");
    m.remove("managedFields");
    serde_json::to_vec(&o).unwrap_or_default()
}

/// Lists carry items without kind/apiVersion, as Kubernetes serves them.
pub fn strip_type(mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    obj
}

pub fn random_suffix(n: usize) -> String {
    // Kubernetes' alphabet for generated names: no vowels and no look-alike characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bytes_never_carry_a_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "5", "managedFields": []}});
        let stored: Value = serde_json::from_slice(&to_stored(&obj)).unwrap();
        assert_eq!(stored, json!({"metadata": {"name": "a"}}));
        let kv = KeyValue { key: "/k".into(), value: to_stored(&obj).into(), create_revision: 7, mod_revision: 9 };
        assert_eq!(resource_version(&from_kv(&kv).unwrap()), Some("9"));
    }

    #[test]
    fn generated_suffixes_use_the_kubernetes_alphabet() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}

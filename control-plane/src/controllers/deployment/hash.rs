//! Pod-template hashing and template comparison (controller.ComputeHash, EqualIgnoreHash).
//!
//! Kubernetes hashes a go-spew dump of the Go struct, which cannot be reproduced outside Go, so the
//! hash here is FNV-32a over a canonical JSON encoding instead. Only the *shape* of the result
//! (digits of the u32 rendered through SafeEncodeString) matches upstream, never the value.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// apps.DefaultDeploymentUniqueLabelKey.
pub const DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY: &str = "pod-template-hash";

/// k8s.io/apimachinery/pkg/util/rand alphanums: no vowels (no accidental words) and no
/// look-alikes such as 0/o or 1/l.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// rand.SafeEncodeString: maps every character onto the safe alphabet.
pub fn safe_encode_string(s: &str) -> String {
    s.chars()
        .map(|c| ALPHANUMS[(c as usize) % ALPHANUMS.len()] as char)
        .collect()
}

struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Self {
        Self(0x811c_9dc5)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// The template as JSON without the pod-template-hash label and with "absent-like" values
/// (null, [], {}) removed, so that semantically equal templates encode identically no matter
/// whether a client sent `labels: {}` or nothing at all.
fn canonical(template: &PodTemplateSpec) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY);
    }
    // Serializing a k8s-openapi struct cannot fail: every field is plain data with string keys.
    prune(serde_json::to_value(&t).unwrap_or(Value::Null))
}

fn prune(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !is_absent(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(prune).collect()),
        other => other,
    }
}

fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// controller.ComputeHash: hash of the template (minus the hash label) plus the collision count,
/// written as 8 little-endian bytes like upstream, rendered as SafeEncodeString(decimal u32).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hasher = Fnv32a::new();
    hasher.write(canonical(template).to_string().as_bytes());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hasher.write(&bytes);
    }
    safe_encode_string(&hasher.0.to_string())
}

/// EqualIgnoreHash: templates are equal once the pod-template-hash label is removed from both.
/// Like apimachinery's semantic DeepEqual, nil and empty collections compare equal.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn template(
        name: &str,
        node: &str,
        annotations: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) -> PodTemplateSpec {
        let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                name: Some(name.into()),
                annotations: Some(map(annotations)),
                labels: Some(map(labels)),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
        }
    }

    const H: &str = DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY;

    #[test]
    fn equal_ignore_hash_matches_upstream_table() {
        // TestEqualIgnoreHash, each case also run in reverse order.
        let cases = [
            (
                "same spec, same labels",
                template(
                    "foo",
                    "foo-node",
                    &[],
                    &[(H, "value-1"), ("something", "else")],
                ),
                template(
                    "foo",
                    "foo-node",
                    &[],
                    &[(H, "value-1"), ("something", "else")],
                ),
                true,
            ),
            (
                "only pod-template-hash value differs",
                template(
                    "foo",
                    "foo-node",
                    &[],
                    &[(H, "value-1"), ("something", "else")],
                ),
                template(
                    "foo",
                    "foo-node",
                    &[],
                    &[(H, "value-2"), ("something", "else")],
                ),
                true,
            ),
            (
                "former has no pod-template-hash label",
                template("foo", "foo-node", &[], &[("something", "else")]),
                template(
                    "foo",
                    "foo-node",
                    &[],
                    &[(H, "value-2"), ("something", "else")],
                ),
                true,
            ),
            (
                "labels differ, former has no hash, same number of labels",
                template("foo", "foo-node", &[], &[("something", "else")]),
                template("foo", "foo-node", &[], &[(H, "value-2")]),
                false,
            ),
            (
                "labels differ, latter has no hash, same number of labels",
                template("foo", "foo-node", &[], &[(H, "value-1")]),
                template("foo", "foo-node", &[], &[("something", "else")]),
                false,
            ),
            (
                "labels differ, same hash value",
                template("foo", "foo-node", &[], &[(H, "value-1")]),
                template(
                    "foo",
                    "foo-node",
                    &[],
                    &[(H, "value-1"), ("something", "else")],
                ),
                false,
            ),
            (
                "different annotations, same labels",
                template(
                    "foo",
                    "foo-node",
                    &[("former", "value")],
                    &[(H, "value-1"), ("something", "else")],
                ),
                template(
                    "foo",
                    "foo-node",
                    &[("latter", "value")],
                    &[(H, "value-1"), ("something", "else")],
                ),
                false,
            ),
            (
                "different name, different hash",
                template(
                    "foo-1",
                    "foo-node",
                    &[],
                    &[(H, "value-1"), ("something", "else")],
                ),
                template(
                    "foo-2",
                    "foo-node",
                    &[],
                    &[(H, "value-2"), ("something", "else")],
                ),
                false,
            ),
            (
                "different spec, former has no hash",
                template("foo-1", "foo-node-1", &[], &[("something", "else")]),
                template(
                    "foo-2",
                    "foo-node-2",
                    &[],
                    &[(H, "value-2"), ("something", "else")],
                ),
                false,
            ),
            (
                "different spec, different labels",
                template("foo", "foo-node-1", &[], &[("something", "else")]),
                template("foo", "foo-node-2", &[], &[("nothing", "else")]),
                false,
            ),
        ];
        for (name, a, b, expected) in cases {
            assert_eq!(equal_ignore_hash(&a, &b), expected, "{name}");
            assert_eq!(
                equal_ignore_hash(&b, &a),
                expected,
                "{name} (reverse order)"
            );
        }
    }

    #[test]
    fn empty_and_missing_collections_compare_equal() {
        let a = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::new()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![],
                volumes: Some(vec![]),
                ..Default::default()
            }),
        };
        let b = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec::default()),
        };
        assert!(equal_ignore_hash(&a, &b));
        assert_eq!(compute_hash(&a, None), compute_hash(&b, None));
    }

    #[test]
    fn hash_ignores_the_hash_label_and_depends_on_template_and_collision_count() {
        let mut t = template("", "", &[], &[("app", "web")]);
        t.spec = Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some("nginx:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let h = compute_hash(&t, None);
        let mut labelled = t.clone();
        if let Some(l) = labelled.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.insert(H.into(), h.clone());
        }
        assert_eq!(compute_hash(&labelled, None), h);
        assert_ne!(compute_hash(&t, Some(1)), h);
        assert_ne!(compute_hash(&t, Some(1)), compute_hash(&t, Some(2)));
        let mut other = t.clone();
        if let Some(c) = other.spec.as_mut().and_then(|s| s.containers.first_mut()) {
            c.image = Some("nginx:2".into());
        }
        assert_ne!(compute_hash(&other, None), h);
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)) && !h.is_empty() && h.len() <= 10);
    }

    #[test]
    fn safe_encode_string_uses_the_kubernetes_alphabet() {
        // '0' is 48 -> 48 % 27 = 21 -> '4'; '9' is 57 -> 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode_string("09"), "4f");
        assert_eq!(safe_encode_string("1234567890").len(), 10);
    }
}

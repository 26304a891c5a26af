//! Types of the generated schema (schema.rs) and lookups into it.

use super::schema::{KINDS, MESSAGES, OPTIONS};

/// How one field's values are encoded and turned into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S,
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    /// Bytes holding a JSON document (RawExtension, FieldsV1, apiextensions JSON).
    Json,
    /// A message, by index in MESSAGES.
    M(u16),
    /// A Go struct embedded with `json:",inline"`: its fields land in the parent object.
    Inline(u16),
    MapS,
    MapB,
    MapM(u16),
}

/// Messages whose Go types marshal to JSON by hand rather than as an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    No,
    Time,
    MicroTime,
    Duration,
    IntOrString,
    Quantity,
    /// The `raw` field (tag 1) is the JSON value itself.
    RawJson,
    /// A Go `[]string` wrapped in a message with `items` (tag 1).
    StringItems,
    SchemaOrArray,
    SchemaOrBool,
    SchemaOrStringArray,
}

#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub special: Special,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

pub const fn m(name: &'static str, special: Special, fields: &'static [Field]) -> Message {
    Message {
        name,
        special,
        fields,
    }
}

pub const fn f(tag: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        json,
        kind,
        repeated: false,
    }
}

pub const fn r(tag: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        json,
        kind,
        repeated: true,
    }
}

impl Message {
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        let i = self.fields.binary_search_by_key(&tag, |f| f.tag).ok()?;
        self.fields.get(i)
    }
}

pub fn message(index: u16) -> &'static Message {
    // Indices come only from the generated table, which refers only to its own entries.
    &MESSAGES[usize::from(index)]
}

/// The message for a top-level object; the options kinds (DeleteOptions, ...) are accepted
/// under any apiVersion because every group version registers them.
pub fn message_for_kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    let found = KINDS
        .binary_search_by(|(av, k, _)| (*av, *k).cmp(&(api_version, kind)))
        .ok()
        .map(|i| KINDS[i].2)
        .or_else(|| OPTIONS.iter().find(|(k, _)| *k == kind).map(|(_, i)| *i))?;
    Some(message(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_table_is_consistent() {
        for msg in &MESSAGES {
            assert!(
                msg.fields.windows(2).all(|w| w[0].tag < w[1].tag),
                "{} tags unsorted",
                msg.name
            );
            for field in msg.fields {
                if let Kind::M(i) | Kind::Inline(i) | Kind::MapM(i) = field.kind {
                    assert!(
                        usize::from(i) < MESSAGES.len(),
                        "{}.{}",
                        msg.name,
                        field.json
                    );
                }
            }
        }
        assert!(
            KINDS
                .windows(2)
                .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)),
            "KINDS unsorted"
        );
    }

    #[test]
    fn kinds_kubectl_creates_are_in_the_table() {
        let cases = [
            ("v1", "Namespace", "api.core.v1.Namespace"),
            ("v1", "Pod", "api.core.v1.Pod"),
            ("v1", "Service", "api.core.v1.Service"),
            ("v1", "Secret", "api.core.v1.Secret"),
            ("v1", "ConfigMap", "api.core.v1.ConfigMap"),
            ("v1", "ServiceAccount", "api.core.v1.ServiceAccount"),
            ("v1", "Binding", "api.core.v1.Binding"),
            ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
            ("apps/v1", "StatefulSet", "api.apps.v1.StatefulSet"),
            ("batch/v1", "Job", "api.batch.v1.Job"),
            ("batch/v1", "CronJob", "api.batch.v1.CronJob"),
            (
                "coordination.k8s.io/v1",
                "Lease",
                "api.coordination.v1.Lease",
            ),
            ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
            ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
            (
                "authentication.k8s.io/v1",
                "TokenRequest",
                "api.authentication.v1.TokenRequest",
            ),
            (
                "meta.k8s.io/v1",
                "DeleteOptions",
                "apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            (
                "apps/v1",
                "DeleteOptions",
                "apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            ("v1", "PodList", "api.core.v1.PodList"),
        ];
        for (av, kind, want) in cases {
            assert_eq!(
                message_for_kind(av, kind).map(|m| m.name),
                Some(want),
                "{av} {kind}"
            );
        }
        assert!(message_for_kind("v1", "Deployment").is_none());
    }
}

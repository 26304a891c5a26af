//! Kubernetes label selectors (`?labelSelector=`, `metav1.LabelSelector`) and
//! field selectors (`?fieldSelector=`), ported from k8s.io/apimachinery's
//! `pkg/labels`, `pkg/fields` and `pkg/util/validation`.
//!
//! Error texts follow Kubernetes word for word, because clients and humans
//! compare them with what a real API server answers.

mod fields;
mod label_parser;
mod labels;
mod validation;

pub use fields::{FieldOperator, FieldRequirement, FieldSelector};
pub use labels::{LabelSelector, Operator, Requirement};
pub use validation::{validate_dns1123_subdomain, validate_label_key, validate_label_value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every variant is a client error: the API server answers 400 BadRequest with
/// the `Display` text as the Status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The label selector string or API object is invalid, e.g.
    /// `unable to parse requirement: ...` or `found '(', expected: ...`.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// The field selector string is invalid, e.g.
    /// `invalid selector: 'x'; can't understand 'x'`.
    #[error("{0}")]
    InvalidFieldSelector(String),
    /// The field selector names a field the kind does not index.
    #[error("{message}")]
    UnsupportedField { field: String, message: String },
}

/// Go's `%q` for the strings that appear in Kubernetes messages: printable
/// characters as is, the usual escapes for the rest.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a b"), r#""a b""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{0}"), r#""\n\t\x00""#);
        assert_eq!(go_quote("rā"), "\"rā\"");
    }
}

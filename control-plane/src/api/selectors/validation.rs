//! Label key / value validation for selectors: the same rules (and messages) as object
//! validation, which owns the implementation (`crate::registry::validation::names`).

use crate::registry::validation::names;

/// Kubernetes' `IsDNS1123Subdomain`: empty when valid, else its messages.
pub fn validate_dns1123_subdomain(value: &str) -> Vec<String> {
    names::is_dns1123_subdomain(value)
}

/// Kubernetes' `IsQualifiedName` (label keys): empty when valid.
pub fn validate_label_key(key: &str) -> Vec<String> {
    names::is_qualified_name(key)
}

/// Kubernetes' `IsValidLabelValue`: empty when valid.
pub fn validate_label_value(value: &str) -> Vec<String> {
    names::is_valid_label_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    // validation_test.go TestIsQualifiedName.
    #[test]
    fn qualified_names_from_kubernetes_tests_are_accepted() {
        let long_prefixed = format!("{}/{}", "a".repeat(253), "b".repeat(63));
        let good = [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with-dashes/simple",
            "now-with-dashes/now-with-dashes",
            "now.with.dots/simple",
            "now-with.dashes-and.dots/simple",
            "1-num.2-num/3-num",
            "1234/5678",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            "requests.storage-foo",
            &"a".repeat(63),
            &long_prefixed,
        ];
        for key in good {
            assert_eq!(validate_label_key(key), Vec::<String>::new(), "{key}");
        }
    }

    #[test]
    fn qualified_names_from_kubernetes_tests_are_rejected() {
        let long_prefix = format!("{}/abc", "a".repeat(254));
        let bad = [
            "nospecialchars%^=@",
            "cantendwithadash-",
            "-cantstartwithadash-",
            "only/one/slash",
            "Example.com/abc",
            "example_com/abc",
            "example.com/",
            "/simple",
            &"a".repeat(64),
            &long_prefix,
            "",
        ];
        for key in bad {
            assert!(!validate_label_key(key).is_empty(), "{key}");
        }
    }

    // validation_test.go TestIsValidLabelValue.
    #[test]
    fn label_values_from_kubernetes_tests_are_classified() {
        let long = "a".repeat(63);
        for value in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "end-with-num-1",
            "1234",
            &long,
            "",
        ] {
            assert_eq!(validate_label_value(value), Vec::<String>::new(), "{value}");
        }
        let too_long = "a".repeat(64);
        let bad = [
            "nospecialchars%^=@",
            "Tama-nui-te-rā.is.Māori.sun",
            "\\backslashes\\are\\bad",
            "-starts-with-dash",
            "ends-with-dash-",
            ".starts.with.dot",
            "ends.with.dot.",
            &too_long,
        ];
        for value in bad {
            assert!(!validate_label_value(value).is_empty(), "{value}");
        }
    }

    #[test]
    fn key_messages_match_kubernetes_text() {
        assert_eq!(
            validate_label_key("a/b/c"),
            vec![
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
        assert_eq!(
            validate_label_key("/x"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            validate_label_key("Example.com/x"),
            vec![
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        let empty_name = validate_label_key("example.com/");
        assert_eq!(empty_name.len(), 2);
        assert_eq!(empty_name[0], "name part must be non-empty");
        assert_eq!(
            validate_label_key(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
    }

    #[test]
    fn value_messages_match_kubernetes_text() {
        assert_eq!(
            validate_label_value("-x"),
            vec![
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ]
        );
        assert_eq!(
            validate_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn dns1123_subdomain_rejects_empty_labels_and_uppercase() {
        assert!(validate_dns1123_subdomain("a.b-c.d").is_empty());
        for bad in ["", "a..b", ".a", "a.", "A", "a_b", "-a", "a-"] {
            assert!(!validate_dns1123_subdomain(bad).is_empty(), "{bad}");
        }
    }
}

//! Image references, normalized the way Docker and the kubelet do it
//! (github.com/distribution/reference `ParseNormalizedNamed`, then `:latest` when neither a tag
//! nor a digest is given).

use super::{Error, Result};

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`; when present it is what gets pulled, the tag is informational.
    pub digest: Option<String>,
}

/// Docker's normalization: `busybox` -> `docker.io/library/busybox:latest`.
pub fn normalize(reference: &str) -> Result<String> {
    Ok(Reference::parse(reference)?.to_string())
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidReference(format!("{s:?}: {why}"));
        if is_identifier(s) {
            return Err(invalid("cannot specify 64-byte hexadecimal strings"));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = remainder.split(':').next().unwrap_or_default();
        if remote_name.to_lowercase() != remote_name {
            return Err(invalid("repository name must be lowercase"));
        }

        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_and_tag.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (name_and_tag, None),
        };
        if !valid_domain(&domain) {
            return Err(invalid("invalid domain"));
        }
        if !valid_path(path) {
            return Err(invalid("invalid repository name"));
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        if tag.is_some_and(|t| !valid_tag(t)) {
            return Err(invalid("invalid tag"));
        }
        if let Some(d) = digest {
            validate_digest(d).map_err(|_| invalid("invalid digest"))?;
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain,
            path: path.to_string(),
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// `domain/path`, the key registries and Kubernetes' repo digests use.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Checks `algorithm:hex` and returns the hex part. Only sha256 is stored, and the hex is used
/// in file names, so this is also what keeps untrusted digests from naming other paths.
pub(crate) fn validate_digest(d: &str) -> Result<&str> {
    let bad = || Error::InvalidImage(format!("unsupported or malformed digest {d:?}"));
    let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
    if alg != "sha256"
        || hex.len() != 64
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    Ok(hex)
}

/// A 64-character lowercase hex string: an image ID, which Docker refuses as a name.
pub(crate) fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// host [":" port], host being DNS-ish components or a bracketed IPv6 address.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", port),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, p),
            None => (domain, "0"),
        }
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && host.split('.').all(component_ok)
}

/// path-component ("/" path-component)*, each being alnum (separator alnum)* with
/// separator = "." | "_" | "__" | "-"+.
fn valid_path(path: &str) -> bool {
    path.split('/').all(|component| {
        let b = component.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        let mut i = 0;
        loop {
            let start = i;
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            if i == b.len() {
                return true;
            }
            match b[i] {
                b'.' => i += 1,
                b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
                b'_' => i += 1,
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
        }
    })
}

/// [\w][\w.-]{0,127}
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

    #[test]
    fn valid_repository_names_from_distribution_parse() {
        // TestValidateReferenceName and TestValidateRemoteName (valid halves).
        for name in [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ] {
            assert!(Reference::parse(name).is_ok(), "{name} should be valid");
        }
    }

    #[test]
    fn invalid_repository_names_are_rejected_as_invalid_reference() {
        let long_namespace = format!("{}/docker", "this_is_not_a_valid_namespace".repeat(9));
        let mut names = vec![
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            "",
            "busybox:-foo",
            "busybox@foo",
            "busybox@sha256:abc",
        ];
        names.push(&long_namespace);
        for name in names {
            assert!(
                matches!(Reference::parse(name), Err(Error::InvalidReference(_))),
                "{name} should be invalid"
            );
        }
    }

    #[test]
    fn familiar_full_and_ambiguous_names_normalize_to_the_full_name_with_latest() {
        // TestParseRepositoryInfo: (familiar, full, ambiguous, domain, remote name).
        let cases = [
            (
                "fooo/bar",
                "docker.io/fooo/bar",
                "index.docker.io/fooo/bar",
                "docker.io",
                "fooo/bar",
            ),
            (
                "ubuntu",
                "docker.io/library/ubuntu",
                "library/ubuntu",
                "docker.io",
                "library/ubuntu",
            ),
            (
                "nonlibrary/ubuntu",
                "docker.io/nonlibrary/ubuntu",
                "",
                "docker.io",
                "nonlibrary/ubuntu",
            ),
            (
                "other/library",
                "docker.io/other/library",
                "",
                "docker.io",
                "other/library",
            ),
            (
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
                "private/moonbase",
            ),
            (
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000/privatebase",
                "",
                "127.0.0.1:8000",
                "privatebase",
            ),
            (
                "example.com/private/moonbase",
                "example.com/private/moonbase",
                "",
                "example.com",
                "private/moonbase",
            ),
            (
                "example.com/privatebase",
                "example.com/privatebase",
                "",
                "example.com",
                "privatebase",
            ),
            (
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
                "",
                "example.com:8000",
                "private/moonbase",
            ),
            (
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "",
                "example.com:8000",
                "privatebasee",
            ),
            (
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
                "library/ubuntu-12.04-base",
            ),
            (
                "foo",
                "docker.io/library/foo",
                "docker.io/foo",
                "docker.io",
                "library/foo",
            ),
            (
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "",
                "docker.io",
                "library/foo/bar",
            ),
            (
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "",
                "docker.io",
                "store/foo/bar",
            ),
            ("Foo/bar", "Foo/bar", "", "Foo", "bar"),
            ("FOO/bar", "FOO/bar", "", "FOO", "bar"),
        ];
        for (familiar, full, ambiguous, domain, remote) in cases {
            for input in [familiar, full, ambiguous]
                .into_iter()
                .filter(|s| !s.is_empty())
            {
                let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(r.repository(), full, "{input}");
                assert_eq!(r.domain, domain, "{input}");
                assert_eq!(r.path, remote, "{input}");
                assert_eq!(r.to_string(), format!("{full}:latest"), "{input}");
            }
        }
    }

    #[test]
    fn split_hostname_cases_pick_the_same_domain_and_path_as_docker() {
        // TestNormalizedSplitHostname.
        for (input, domain, path) in [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
            ("localhost/foo", "localhost", "foo"),
            ("localhost:5000/foo", "localhost:5000", "foo"),
        ] {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (r.domain.as_str(), r.path.as_str()),
                (domain, path),
                "{input}"
            );
        }
    }

    #[test]
    fn tags_and_digests_normalize_like_parse_any_reference() {
        // TestParseAnyReference (named cases) and TestParseReferenceWithTagAndDigest.
        let with_digest = |s: &str| s.replace("DIGEST", &format!("sha256:{HEX}"));
        for (input, expected) in [
            ("redis", "docker.io/library/redis:latest"),
            ("redis:latest", "docker.io/library/redis:latest"),
            (
                "docker.io/library/redis:latest",
                "docker.io/library/redis:latest",
            ),
            ("redis@DIGEST", "docker.io/library/redis@DIGEST"),
            (
                "docker.io/library/redis@DIGEST",
                "docker.io/library/redis@DIGEST",
            ),
            ("dmcgowan/myapp", "docker.io/dmcgowan/myapp:latest"),
            ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
            (
                "docker.io/mcgowan/myapp:latest",
                "docker.io/mcgowan/myapp:latest",
            ),
            ("dmcgowan/myapp@DIGEST", "docker.io/dmcgowan/myapp@DIGEST"),
            (
                "docker.io/dmcgowan/myapp@DIGEST",
                "docker.io/dmcgowan/myapp@DIGEST",
            ),
            (
                "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
                "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest",
            ),
            ("dbcc1", "docker.io/library/dbcc1:latest"),
            (
                "busybox:latest@DIGEST",
                "docker.io/library/busybox:latest@DIGEST",
            ),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("127.0.0.1:5000/demo/web:v1", "127.0.0.1:5000/demo/web:v1"),
            ("demo/web:v1", "docker.io/demo/web:v1"),
        ] {
            assert_eq!(
                normalize(&with_digest(input)).ok(),
                Some(with_digest(expected)),
                "{input}"
            );
        }
    }

    #[test]
    fn digests_other_than_lowercase_sha256_are_not_accepted_for_storage() {
        assert!(validate_digest(&format!("sha256:{HEX}")).is_ok());
        for d in [
            "sha256:abc".to_string(),
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha512:{HEX}"),
            format!("sha256:../{}", &HEX[3..]),
            HEX.to_string(),
        ] {
            assert!(validate_digest(&d).is_err(), "{d}");
        }
    }
}

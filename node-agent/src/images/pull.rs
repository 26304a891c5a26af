//! Pulling from registries with oci-client (which does the distribution protocol, including
//! Docker Hub's bearer-token dance). Everything that lands on disk goes through the store's
//! verified writes; downloads of the same blob are serialized by a per-blob lock.

use super::reference::{Reference, validate_digest};
use super::store::{ImageStore, Record, parse_json, sha256_digest};
use super::{Error, Result, host_arch};
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_spec::image::{ImageIndex, ImageManifest, Os};
use std::net::IpAddr;
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

pub(super) async fn pull(
    store: &ImageStore,
    reference: &Reference,
    auth: Option<(String, String)>,
) -> Result<Record> {
    let name = reference.to_string();
    let client = client_for(store, &reference.domain)?;
    let auth = match auth {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    };
    let (domain, path) = (reference.domain.clone(), reference.path.clone());
    let remote = match (&reference.digest, &reference.tag) {
        (Some(d), _) => oci_client::Reference::with_digest(domain, path, d.clone()),
        (None, t) => oci_client::Reference::with_tag(
            domain,
            path,
            t.clone().unwrap_or_else(|| "latest".into()),
        ),
    };

    let (top, _) = client
        .pull_manifest_raw(&remote, &auth, ACCEPTED)
        .await
        .map_err(|e| registry_error(&name, e))?;
    let top_digest = sha256_digest(&top);
    if let Some(wanted) = &reference.digest {
        check_digest(&name, wanted, &top_digest)?;
    }
    let (manifest_bytes, manifest_digest, index) = if is_index(&top)? {
        let index: ImageIndex = parse_json(&top, "image index")?;
        let chosen = choose_platform(&index).ok_or_else(|| {
            Error::NotFound(format!(
                "{name}: no match for platform linux/{} in manifest list",
                host_arch()
            ))
        })?;
        validate_digest(&chosen)?;
        let (bytes, _) = client
            .pull_manifest_raw(&remote.clone_with_digest(chosen.clone()), &auth, ACCEPTED)
            .await
            .map_err(|e| registry_error(&name, e))?;
        check_digest(&name, &chosen, &sha256_digest(&bytes))?;
        let index_bytes = top.to_vec();
        blocking(store, move |s| s.write_blob(&index_bytes, None)).await?;
        (bytes, chosen, Some(top_digest))
    } else {
        (top, top_digest, None)
    };
    if is_index(&manifest_bytes)? {
        return Err(Error::InvalidImage(format!(
            "{name}: index nested in an index"
        )));
    }
    let manifest: ImageManifest = parse_json(&manifest_bytes, "image manifest")?;
    let to_store = manifest_bytes.to_vec();
    let expected = manifest_digest.clone();
    blocking(store, move |s| s.write_blob(&to_store, Some(&expected))).await?;

    let config_digest = manifest.config().digest().to_string();
    validate_digest(&config_digest)?;
    if !store.has_blob(&config_digest) {
        let mut buf = Vec::new();
        client
            .pull_blob(&remote, config_digest.as_str(), &mut buf)
            .await
            .map_err(|e| registry_error(&name, e))?;
        let expected = config_digest.clone();
        blocking(store, move |s| s.write_blob(&buf, Some(&expected))).await?;
    }
    let config: oci_spec::image::ImageConfiguration =
        parse_json(&store.read_blob(&config_digest)?, "image config")?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::InvalidImage(format!(
            "{name}: {} layers but {} diff IDs",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let fetches = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            fetch_layer(
                store,
                &client,
                &remote,
                &name,
                layer.digest().to_string(),
                diff_id.clone(),
            )
        });
    futures::future::try_join_all(fetches).await?;
    Ok(Record {
        manifest: manifest_digest,
        config: config_digest,
        index,
    })
}

async fn fetch_layer(
    store: &ImageStore,
    client: &Client,
    remote: &oci_client::Reference,
    name: &str,
    digest: String,
    diff_id: String,
) -> Result<()> {
    let hex = validate_digest(&digest)?.to_string();
    if store.layer_dir(&diff_id)?.is_dir() {
        return Ok(());
    }
    if !store.has_blob(&digest) {
        let _lock = blocking(store, move |s| s.lock(&format!("blob-{hex}"))).await?;
        if !store.has_blob(&digest) {
            let tmp = store.tmp_path("download");
            let downloaded = async {
                let file = tokio::fs::File::create(&tmp)
                    .await
                    .map_err(super::io_at(&tmp))?;
                client
                    .pull_blob(remote, digest.as_str(), tokio::io::BufWriter::new(file))
                    .await
                    .map_err(|e| registry_error(name, e))
            }
            .await;
            let tmp_path = tmp.clone();
            let expected = digest.clone();
            let committed = match downloaded {
                Ok(()) => blocking(store, move |s| s.commit_file(&tmp_path, &expected)).await,
                Err(e) => Err(e),
            };
            let _ = tokio::fs::remove_file(&tmp).await;
            committed?;
        }
    }
    blocking(store, move |s| s.ensure_layer(&digest, &diff_id).map(drop)).await
}

/// Runs store work (file I/O, hashing, unpacking, flock waits) off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    store: &ImageStore,
    f: impl FnOnce(&ImageStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| Error::Io {
            context: "image store task".into(),
            source: std::io::Error::other(e),
        })?
}

fn client_for(store: &ImageStore, domain: &str) -> Result<Client> {
    // reqwest is built without a default provider; the rest of the agent uses ring too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Like containerd, loopback registries may speak plain HTTP.
    let plain_http = is_loopback(domain) || store.insecure_registries.iter().any(|r| r == domain);
    let config = ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    Client::try_from(config)
        .map_err(|e| Error::Registry(format!("creating registry client: {}", chain(&e))))
}

fn is_loopback(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => domain.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn is_index(bytes: &[u8]) -> Result<bool> {
    let v: serde_json::Value = parse_json(bytes, "manifest")?;
    if v.get("schemaVersion").and_then(|s| s.as_i64()) == Some(1) {
        return Err(Error::InvalidImage(
            "schema 1 manifests are not supported".into(),
        ));
    }
    let media_type = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    Ok(media_type == OCI_INDEX
        || media_type == DOCKER_LIST
        || v.get("manifests").is_some_and(|m| m.is_array()))
}

/// linux/<host arch>, preferring the variant this machine would report when there are several.
pub(super) fn choose_platform(index: &ImageIndex) -> Option<String> {
    let arch = host_arch();
    let preferred_variant = match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    };
    let matching: Vec<_> = index
        .manifests()
        .iter()
        .filter(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| *p.os() == Os::Linux && p.architecture().to_string() == arch)
        })
        .collect();
    let variant_ok = |d: &&&oci_spec::image::Descriptor| {
        let v = d.platform().as_ref().and_then(|p| p.variant().clone());
        v.is_none() || v.as_deref() == preferred_variant
    };
    matching
        .iter()
        .find(variant_ok)
        .or(matching.first())
        .map(|d| d.digest().to_string())
}

fn check_digest(name: &str, expected: &str, actual: &str) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(Error::Digest {
        what: format!("manifest of {name}"),
        expected: expected.into(),
        actual: actual.into(),
    })
}

/// Keeps the registry's own words, since that is what ends up in the pod's events.
fn registry_error(name: &str, e: OciDistributionError) -> Error {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            let message = envelope
                .errors
                .iter()
                .map(|e| {
                    if e.message.is_empty() {
                        format!("{:?}", e.code)
                    } else {
                        e.message.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            let has =
                |codes: &[OciErrorCode]| envelope.errors.iter().any(|e| codes.contains(&e.code));
            if has(&[
                OciErrorCode::ManifestUnknown,
                OciErrorCode::NameUnknown,
                OciErrorCode::BlobUnknown,
                OciErrorCode::NotFound,
            ]) {
                Error::NotFound(format!("{name}: {message}"))
            } else if has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied]) {
                Error::Unauthorized(format!("{name}: {message}"))
            } else {
                Error::Registry(format!("{name}: {message}"))
            }
        }
        OciDistributionError::ImageManifestNotFoundError(m) => {
            Error::NotFound(format!("{name}: {m}"))
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            Error::Unauthorized(format!("{name}: {}", chain(&e)))
        }
        OciDistributionError::ServerError {
            code: 404, message, ..
        } => Error::NotFound(format!("{name}: {message}")),
        OciDistributionError::ServerError {
            code: 401 | 403,
            message,
            ..
        } => Error::Unauthorized(format!("{name}: {message}")),
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => Error::Digest {
            what: name.to_string(),
            expected,
            actual,
        },
        OciDistributionError::IoError(source) => Error::Io {
            context: format!("pulling {name}"),
            source,
        },
        other => Error::Registry(format!("{name}: {}", chain(&other))),
    }
}

/// An error with its sources, since reqwest keeps the interesting part ("connection refused")
/// in the source chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognized_with_and_without_ports() {
        for d in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "reg.localhost:80",
        ] {
            assert!(is_loopback(d), "{d}");
        }
        for d in [
            "docker.io",
            "10.0.0.1:5000",
            "[fc00::1]:5000",
            "example.com",
        ] {
            assert!(!is_loopback(d), "{d}");
        }
    }

    #[test]
    fn the_index_entry_for_linux_on_this_architecture_is_chosen() {
        let entry = |digest: char, os: &str, arch: &str, variant: Option<&str>| {
            let mut platform = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = v.into();
            }
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{}", digest.to_string().repeat(64)),
                "size": 1,
                "platform": platform,
            })
        };
        let other = if host_arch() == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                entry('a', "linux", other, None),
                entry('b', "windows", host_arch(), None),
                entry('c', "linux", host_arch(), Some("v5")),
                entry('d', "linux", host_arch(), None),
            ],
        }))
        .expect("index");
        assert_eq!(
            choose_platform(&index),
            Some(format!("sha256:{}", "d".repeat(64)))
        );
        let only_other: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2, "manifests": [entry('a', "linux", other, None)],
        }))
        .expect("index");
        assert_eq!(choose_platform(&only_other), None);
    }
}

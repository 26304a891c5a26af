//! Demo images built from a static busybox binary, so that clusters and tests have real
//! images without any registry: `demo/busybox`, `demo/web:v1` and `demo/web:v2`.
//! Builds are reproducible (fixed mtimes, owners and gzip headers).

use super::store::sha256_digest;
use super::{Error, Result, host_arch, io_at, io_err};
use serde_json::json;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

const EPOCH: u64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const CREATED: &str = "2024-01-01T00:00:00Z";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(data: Vec<u8>) -> Self {
        Blob {
            digest: sha256_digest(&data),
            data,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub blob: Blob,
    pub diff_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct BuiltImage {
    /// As written in the archive's ref name, e.g. `demo/web:v1`.
    pub name: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Layer>,
}

/// A layer tar with root-owned entries and a fixed mtime.
pub(crate) struct LayerBuilder(tar::Builder<Vec<u8>>);

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(EPOCH);
        h.set_size(size);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Result<Self> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.0
            .append_data(&mut h, path, std::io::empty())
            .map_err(io_err(path))?;
        Ok(self)
    }

    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Result<Self> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0
            .append_data(&mut h, path, data)
            .map_err(io_err(path))?;
        Ok(self)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Result<Self> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0
            .append_link(&mut h, path, target)
            .map_err(io_err(path))?;
        Ok(self)
    }

    /// The gzip-compressed layer and the diff ID of its uncompressed tar.
    pub fn finish(self) -> Result<Layer> {
        let tar = self.0.into_inner().map_err(io_err("finishing layer tar"))?;
        let diff_id = sha256_digest(&tar);
        // No file name and mtime 0 in the gzip header keep the digest reproducible.
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).map_err(io_err("compressing layer"))?;
        let data = gz.finish().map_err(io_err("compressing layer"))?;
        Ok(Layer {
            blob: Blob::new(data),
            diff_id,
        })
    }
}

/// An OCI config and manifest for `layers` with the given container config (Docker's
/// capitalized keys: `Cmd`, `Env`, ...).
pub(crate) fn build_image(
    name: &str,
    arch: &str,
    layers: Vec<Layer>,
    container_config: serde_json::Value,
) -> Result<BuiltImage> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let history: Vec<_> = layers
        .iter()
        .map(|_| json!({"created": CREATED, "created_by": "tinykube demo image builder"}))
        .collect();
    let config = Blob::new(to_json(&json!({
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))?);
    let layer_descriptors: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": OCI_LAYER_GZIP, "digest": l.blob.digest, "size": l.blob.data.len()}))
        .collect();
    let manifest = Blob::new(to_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.data.len()},
        "layers": layer_descriptors,
    }))?);
    Ok(BuiltImage {
        name: name.to_string(),
        manifest,
        config,
        layers,
    })
}

/// The three demo images for this machine's architecture.
pub(crate) fn demo_images(busybox: &Path) -> Result<Vec<BuiltImage>> {
    let binary = fs::read(busybox).map_err(io_at(busybox))?;
    let mut base = LayerBuilder::new();
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sbin", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
    ] {
        base = base.dir(dir, mode)?;
    }
    base = base
        .file("bin/busybox", 0o755, &binary)?
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )?
        .file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n")?;
    for applet in applets(busybox) {
        base = base.symlink(&applet, "/bin/busybox")?;
    }
    let base = base.finish()?;

    let arch = host_arch();
    let mut images = vec![build_image(
        "demo/busybox:latest",
        arch,
        vec![base.clone()],
        json!({"Env": [PATH_ENV], "Cmd": ["sh"]}),
    )?];
    for version in ["v1", "v2"] {
        let web = LayerBuilder::new()
            .dir("www", 0o755)?
            .dir("etc", 0o755)?
            .file("etc/web-version", 0o644, format!("{version}\n").as_bytes())?
            .finish()?;
        // The shell stays as PID 1 with a SIGTERM trap: httpd has no handler, and the kernel
        // drops a signal to a PID namespace's init that does not handle it, so an httpd PID 1
        // would sit out every pod's grace period (30 s) when deleted.
        let script = format!(
            "echo \"web {version} on $(hostname)\" > /www/index.html || exit 1; trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait $!"
        );
        images.push(build_image(
            &format!("demo/web:{version}"),
            arch,
            vec![base.clone(), web],
            json!({
                "ExposedPorts": {"80/tcp": {}},
                "Env": [PATH_ENV],
                "Cmd": ["sh", "-c", script],
                "WorkingDir": "/www",
                "Labels": {"org.opencontainers.image.title": format!("demo web {version}")},
            }),
        )?);
    }
    Ok(images)
}

/// Applet paths relative to the root (`bin/sh`, `usr/bin/env`, ...), from busybox itself when
/// it runs here, else a fixed list of the usual ones.
fn applets(busybox: &Path) -> Vec<String> {
    let listed = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut applets: Vec<String> = listed
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| {
            let ok_dir = ["bin/", "sbin/", "usr/bin/", "usr/sbin/"].iter().any(|d| {
                l.strip_prefix(d)
                    .is_some_and(|n| !n.is_empty() && !n.contains('/') && n != "busybox")
            });
            ok_dir && !l.contains("..")
        })
        .collect();
    if applets.is_empty() {
        applets = [
            "cat", "cp", "date", "echo", "env", "grep", "hostname", "httpd", "id", "ln", "ls",
            "mkdir", "mv", "nc", "ping", "ps", "rm", "sh", "sleep", "test", "top", "touch", "wget",
        ]
        .iter()
        .map(|a| format!("bin/{a}"))
        .collect();
    }
    applets.sort();
    applets.dedup();
    applets
}

/// Writes the demo images as one OCI image layout tar (what `skopeo copy … oci-archive:`
/// produces), ref names `demo/busybox:latest`, `demo/web:v1` and `demo/web:v2`.
pub fn build_demo_archive(busybox: &Path, out: &Path) -> Result<()> {
    write_oci_archive(&demo_images(busybox)?, out)
}

pub(crate) fn write_oci_archive(images: &[BuiltImage], out: &Path) -> Result<()> {
    let manifests: Vec<_> = images
        .iter()
        .map(|img| {
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": img.manifest.digest,
                "size": img.manifest.data.len(),
                "annotations": {
                    "io.containerd.image.name": format!("docker.io/{}", img.name),
                    "org.opencontainers.image.ref.name": img.name,
                },
            })
        })
        .collect();
    let index =
        to_json(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))?;

    let tmp = out.with_extension("tmp");
    let written = (|| {
        let mut tar = tar::Builder::new(File::create(&tmp).map_err(io_at(&tmp))?);
        let mut add = |path: &str, data: &[u8]| {
            let mut h = LayerBuilder::header(tar::EntryType::Regular, 0o644, data.len() as u64);
            tar.append_data(&mut h, path, data).map_err(io_err(path))
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index)?;
        let mut seen = std::collections::HashSet::new();
        for img in images {
            let blobs = [&img.manifest, &img.config]
                .into_iter()
                .chain(img.layers.iter().map(|l| &l.blob));
            for blob in blobs {
                if seen.insert(blob.digest.clone()) {
                    add(
                        &format!("blobs/{}", blob.digest.replace(':', "/")),
                        &blob.data,
                    )?;
                }
            }
        }
        let file = tar.into_inner().map_err(io_at(&tmp))?;
        file.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, out).map_err(io_at(out))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

pub(crate) fn to_json(v: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::InvalidImage(format!("serializing JSON: {e}")))
}

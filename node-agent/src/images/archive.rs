//! Offline import of image archives: OCI image layouts in a tar (`skopeo copy … oci-archive:`,
//! `docker save` since Docker 25) and the older `docker save` format (`manifest.json` with
//! `RepoTags`, uncompressed `layer.tar` files and config JSON at the top).
//!
//! The archive is read in one pass: blobs go straight into the store (verified against their
//! `blobs/sha256/<hex>` name), the small metadata files are kept in memory, and symlinks and
//! hardlinks between archive members (old `docker save` dedups layers that way) are resolved
//! afterwards.

use super::pull::{choose_platform, is_index};
use super::reference::{Reference, validate_digest};
use super::store::{Image, ImageStore, Record, parse_json};
use super::unpack::decompress;
use super::{Error, Result, io_at, io_err};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

const META_FILES: &[&str] = &["index.json", "manifest.json", "oci-layout", "repositories"];
const META_MAX: u64 = 64 << 20;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One entry of the old `docker save` manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Default)]
struct Contents {
    meta: HashMap<String, Vec<u8>>,
    /// Archive path -> digest of the blob it was stored as.
    blobs: HashMap<String, String>,
    /// Archive path -> archive path it links to.
    links: HashMap<String, String>,
}

impl Contents {
    fn digest_of(&self, path: &str) -> Result<String> {
        let mut path = normalize(Path::new(path));
        for _ in 0..16 {
            if let Some(d) = self.blobs.get(&path) {
                return Ok(d.clone());
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(Error::InvalidImage(format!("archive has no file {path}")))
    }
}

impl ImageStore {
    /// Imports every image in the archive at `path` and tags it with the names it carries
    /// (`io.containerd.image.name`, `org.opencontainers.image.ref.name` or `RepoTags`).
    /// Images without a usable name are stored under their manifest digest. Blocking.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<Image>> {
        let file = File::open(path).map_err(io_at(path))?;
        let contents = self.read_archive(decompress(BufReader::new(file))?)?;

        let saved: Vec<SavedImage> = match contents.meta.get("manifest.json") {
            Some(bytes) => parse_json(bytes, "manifest.json")?,
            None => Vec::new(),
        };
        let mut imports: Vec<(BTreeSet<String>, Record)> = Vec::new();
        if let Some(bytes) = contents.meta.get("index.json") {
            let index: ImageIndex = parse_json(bytes, "index.json")?;
            for desc in index.manifests() {
                let digest = desc.digest().to_string();
                let record = self.install_from(&digest)?;
                let annotations = desc.annotations().clone().unwrap_or_default();
                let names: BTreeSet<String> = [CONTAINERD_NAME, REF_NAME]
                    .iter()
                    .filter_map(|k| annotations.get(*k))
                    // A bare ref name ("latest", "v1") is a tag without a repository.
                    .filter(|n| n.contains(['/', ':']))
                    .filter_map(|n| normalized(n))
                    .collect();
                imports.push((names, record));
            }
        }
        // Docker 25+ writes both files; its RepoTags then name images already found in index.json.
        for s in &saved {
            let config = contents.digest_of(&s.config)?;
            let names = s.repo_tags.iter().flatten().filter_map(|n| normalized(n));
            if let Some((known, _)) = imports.iter_mut().find(|(_, r)| r.config == config) {
                known.extend(names);
                continue;
            }
            let layers = s
                .layers
                .iter()
                .map(|l| contents.digest_of(l))
                .collect::<Result<Vec<_>>>()?;
            let manifest = self.synthesize_manifest(&config, &layers)?;
            imports.push((names.collect(), self.install_from(&manifest)?));
        }
        if imports.is_empty() {
            return Err(Error::InvalidImage(format!(
                "{}: neither an OCI layout (index.json) nor a docker save archive (manifest.json)",
                path.display()
            )));
        }

        let mut images = Vec::new();
        for (names, record) in imports {
            let names = if names.is_empty() {
                vec![record.manifest.clone()]
            } else {
                names.into_iter().collect()
            };
            for name in names {
                self.record(&name, record.clone())?;
                images.extend(self.image(&name, &record)?);
            }
        }
        Ok(images)
    }

    fn read_archive(&self, reader: impl Read) -> Result<Contents> {
        let mut contents = Contents::default();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(io_err("reading archive"))? {
            let mut entry = entry.map_err(io_err("reading archive"))?;
            let path = normalize(&entry.path().map_err(io_err("reading archive"))?);
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if META_FILES.contains(&path.as_str()) {
                        let mut data = Vec::new();
                        (&mut entry)
                            .take(META_MAX)
                            .read_to_end(&mut data)
                            .map_err(io_err(&path))?;
                        contents.meta.insert(path, data);
                    } else if path.starts_with("blobs/")
                        || path.ends_with(".tar")
                        || path.ends_with(".json")
                    {
                        let expected = path
                            .strip_prefix("blobs/sha256/")
                            .map(|hex| format!("sha256:{hex}"));
                        let (digest, _) = self.ingest(&mut entry, expected.as_deref())?;
                        contents.blobs.insert(path, digest);
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let Some(target) = entry.link_name().map_err(io_err(&path))? else {
                        continue;
                    };
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        Path::new(&path)
                            .parent()
                            .unwrap_or(Path::new(""))
                            .join(target)
                    } else {
                        target.into_owned()
                    };
                    contents.links.insert(path, normalize(&target));
                }
                _ => {}
            }
        }
        Ok(contents)
    }

    /// Resolves an index to this platform's manifest, checks that the config and layers are
    /// all present, unpacks the layers and returns what to record.
    fn install_from(&self, digest: &str) -> Result<Record> {
        validate_digest(digest)?;
        let missing = |d: &str| Error::InvalidImage(format!("archive lacks blob {d}"));
        let bytes = self.read_blob(digest).map_err(|_| missing(digest))?;
        let (manifest_digest, index) = if is_index(&bytes)? {
            let index: ImageIndex = parse_json(&bytes, "image index")?;
            let chosen = choose_platform(&index).ok_or_else(|| {
                Error::NotFound(format!(
                    "{digest}: no match for platform linux/{}",
                    super::host_arch()
                ))
            })?;
            (chosen, Some(digest.to_string()))
        } else {
            (digest.to_string(), None)
        };
        validate_digest(&manifest_digest)?;
        let manifest: ImageManifest = parse_json(
            &self
                .read_blob(&manifest_digest)
                .map_err(|_| missing(&manifest_digest))?,
            "image manifest",
        )?;
        let config_digest = manifest.config().digest().to_string();
        validate_digest(&config_digest)?;
        let config: ImageConfiguration = parse_json(
            &self
                .read_blob(&config_digest)
                .map_err(|_| missing(&config_digest))?,
            "image config",
        )?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::InvalidImage(format!(
                "{manifest_digest}: layer and diff ID counts differ"
            )));
        }
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let layer_digest = layer.digest().to_string();
            if !self.has_blob(&layer_digest) && !self.layer_dir(diff_id)?.is_dir() {
                return Err(missing(&layer_digest));
            }
            self.ensure_layer(&layer_digest, diff_id)?;
        }
        Ok(Record {
            manifest: manifest_digest,
            config: config_digest,
            index,
        })
    }

    /// Old `docker save` archives carry no manifest; make the OCI one a registry would serve.
    fn synthesize_manifest(&self, config: &str, layers: &[String]) -> Result<String> {
        let size = |d: &str| -> Result<u64> {
            let p = self.blob_path(d)?;
            Ok(std::fs::metadata(&p).map_err(io_at(&p))?.len())
        };
        let layers = layers
            .iter()
            .map(|d| Ok(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size(d)?})))
            .collect::<Result<Vec<_>>>()?;
        let manifest = super::demo::to_json(&json!({
            "schemaVersion": 2,
            "mediaType": super::demo::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": size(config)?},
            "layers": layers,
        }))?;
        self.write_blob(&manifest, None)
    }
}

fn normalized(name: &str) -> Option<String> {
    match Reference::parse(name) {
        Ok(r) => Some(r.to_string()),
        Err(e) => {
            tracing::warn!(name, error = %e, "ignoring unusable image name in archive");
            None
        }
    }
}

/// Archive member names are only keys here (nothing is written under them), so a lexical
/// clean-up is enough: `./a/../b` and `b` are the same member.
fn normalize(path: &Path) -> String {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::demo::{LayerBuilder, build_demo_archive, build_image};
    use super::*;
    use std::path::Path;

    #[test]
    fn the_demo_archive_imports_as_three_named_images_sharing_the_busybox_layer() {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "needs Debian's busybox-static: apt-get install -y busybox-static"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("demo.tar");
        build_demo_archive(busybox, &archive).expect("build");
        let store = ImageStore::open(&dir.path().join("store")).expect("open");
        let images = store.import_archive(&archive).expect("import");
        let mut names: Vec<_> = images.iter().map(|i| i.reference.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "docker.io/demo/busybox:latest",
                "docker.io/demo/web:v1",
                "docker.io/demo/web:v2"
            ]
        );

        let v1 = store.get("demo/web:v1").expect("get").expect("v1 present");
        let v2 = store
            .get("docker.io/demo/web:v2")
            .expect("get")
            .expect("v2 present");
        let bb = store
            .get("demo/busybox")
            .expect("get")
            .expect("busybox present");
        assert_eq!(v1.layers[0], bb.layers[0]);
        assert_eq!(v2.layers[0], bb.layers[0]);
        assert_ne!(v1.layers[1], v2.layers[1]);
        assert!(bb.layers[0].join("bin/busybox").is_file());
        assert_eq!(
            std::fs::read_link(bb.layers[0].join("bin/sh")).expect("sh"),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            std::fs::read_to_string(v2.layers[1].join("etc/web-version")).expect("version"),
            "v2\n"
        );
        assert_eq!(bb.config.cmd, ["sh"]);
        assert_eq!(v1.config.working_dir, "/www");
        assert_eq!(v1.config.exposed_ports, ["80/tcp"]);
        assert!(v1.config.cmd.join(" ").contains("web v1 on $(hostname)"));
        assert!(v1.config.cmd.join(" ").contains("httpd -f -p 80 -h /www"));
        assert_eq!(
            store.get(&v1.id).expect("by id").map(|i| i.manifest_digest),
            Some(v1.manifest_digest.clone())
        );
        assert_eq!(store.list().expect("list").len(), 3);
        // Importing again changes nothing and unpacks nothing new.
        assert_eq!(store.import_archive(&archive).expect("reimport").len(), 3);
        assert_eq!(
            std::fs::read_dir(dir.path().join("store/layers/sha256"))
                .expect("layers")
                .count(),
            3
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("store/tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }

    #[test]
    fn a_legacy_docker_save_archive_with_symlinked_layers_imports_by_repo_tags() {
        let layer = LayerBuilder::new()
            .file("hello", 0o644, b"hi")
            .expect("file")
            .finish()
            .expect("layer");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&layer.blob.data[..])
            .read_to_end(&mut plain)
            .expect("gunzip");
        let img = build_image(
            "x",
            super::super::host_arch(),
            vec![layer.clone()],
            json!({"Cmd": ["/hello"]}),
        )
        .expect("image");
        let config_hex = img.config.digest.trim_start_matches("sha256:").to_string();
        let manifest = json!([
            {"Config": format!("{config_hex}.json"), "RepoTags": ["legacy/app:1"], "Layers": ["aaa/layer.tar"]},
            {"Config": format!("{config_hex}.json"), "RepoTags": ["legacy/app:2", "not a name"], "Layers": ["bbb/layer.tar"]},
        ]);
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("save.tar");
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, path, data).expect("append");
        };
        add("aaa/layer.tar", &plain);
        add(&format!("{config_hex}.json"), &img.config.data);
        add(
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("json"),
        );
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        tar.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
            .expect("symlink");
        std::fs::write(&archive, tar.into_inner().expect("tar")).expect("write");

        let store = ImageStore::open(&dir.path().join("store")).expect("open");
        let images = store.import_archive(&archive).expect("import");
        let mut names: Vec<_> = images.iter().map(|i| i.reference.as_str()).collect();
        names.sort();
        assert_eq!(names, ["docker.io/legacy/app:1", "docker.io/legacy/app:2"]);
        let image = store.get("legacy/app:1").expect("get").expect("present");
        assert_eq!(image.id, img.config.digest);
        assert_eq!(image.config.cmd, ["/hello"]);
        assert_eq!(
            std::fs::read(image.layers[0].join("hello")).expect("file"),
            b"hi"
        );
    }

    #[test]
    fn an_archive_with_a_corrupted_blob_is_refused() {
        let layer = LayerBuilder::new()
            .file("f", 0o644, b"x")
            .expect("file")
            .finish()
            .expect("layer");
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("bad.tar");
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        tar.append_data(
            &mut h,
            format!("blobs/{}", layer.blob.digest.replace(':', "/")),
            &b"bad"[..],
        )
        .expect("append");
        std::fs::write(&archive, tar.into_inner().expect("tar")).expect("write");
        let store = ImageStore::open(&dir.path().join("store")).expect("open");
        assert!(matches!(
            store.import_archive(&archive),
            Err(Error::Digest { .. })
        ));
    }
}

//! The on-disk image store: content-addressed blobs, unpacked layers and the reference table.
//!
//! Every write lands in `tmp/` first and is renamed into place, so a crash never leaves a
//! half-written blob or layer under its final name. Work on the same blob, layer or on
//! `refs.json` is serialized with `flock` on a file in `locks/`, which covers threads of this
//! process and other processes alike.

use super::reference::{Reference, is_identifier, validate_digest};
use super::{Error, Result, io_at, io_err, unpack};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The parts of an image config a container runtime needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// e.g. `80/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    pub stop_signal: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Normalized, e.g. `docker.io/library/busybox:latest`; a bare `sha256:…` for an image
    /// imported without a name.
    pub reference: String,
    /// `sha256:<config digest>`, what Docker calls the image ID.
    pub id: String,
    /// The platform-specific manifest.
    pub manifest_digest: String,
    /// The index the manifest was picked from, for multi-arch images.
    pub index_digest: Option<String>,
    pub config: ImageConfig,
    /// Unpacked layer directories, lowest first (overlayfs wants them reversed in lowerdir).
    pub layers: Vec<PathBuf>,
    /// Config plus compressed layers, as Kubernetes reports image sizes.
    pub size: u64,
}

impl Image {
    /// `docker.io/library/busybox@sha256:…`, what Kubernetes shows as a container's imageID;
    /// it names the index for multi-arch images so that pulling it again works anywhere.
    pub fn image_id_with_repo(&self) -> String {
        let digest = self
            .index_digest
            .as_deref()
            .unwrap_or(&self.manifest_digest);
        match Reference::parse(&self.reference) {
            Ok(r) if !self.reference.starts_with("sha256:") => {
                format!("{}@{digest}", r.repository())
            }
            _ => digest.to_string(),
        }
    }
}

/// One row of `refs.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub manifest: String,
    pub config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    /// Registries spoken to over plain HTTP besides loopback ones (`host:port`).
    pub(crate) insecure_registries: Vec<String>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ImageStore {
    pub fn open(root: &Path) -> Result<Self> {
        for dir in ["blobs/sha256", "layers/sha256", "tmp", "locks"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        let store = ImageStore {
            root: root.to_path_buf(),
            insecure_registries: Vec::new(),
        };
        store.remove_stale_tmp();
        Ok(store)
    }

    /// Lets `pull` use plain HTTP for these registries (`host:port` as written in references).
    pub fn set_insecure_registries(&mut self, registries: Vec<String>) {
        self.insecure_registries = registries;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Looks up a normalized reference, a repo digest (`name@sha256:…`), an image ID
    /// (`sha256:…` or its 64 hex digits) or a manifest digest. Images whose layers are gone
    /// count as absent, so that the caller pulls them again.
    pub fn get(&self, reference: &str) -> Result<Option<Image>> {
        let refs = self.read_refs()?;
        let by_digest = |d: &str| {
            refs.iter()
                .find(|(_, r)| r.config == d || r.manifest == d || r.index.as_deref() == Some(d))
        };
        let found = if is_identifier(reference) {
            by_digest(&format!("sha256:{reference}"))
        } else if reference.starts_with("sha256:") {
            by_digest(reference)
        } else {
            let wanted = Reference::parse(reference)?;
            let key = wanted.to_string();
            refs.get_key_value(&key).or_else(|| {
                // `repo@digest` also matches an image pulled by tag, as in containerd.
                let digest = wanted.digest.as_deref()?;
                refs.iter().find(|(k, r)| {
                    (r.manifest == digest || r.index.as_deref() == Some(digest))
                        && Reference::parse(k)
                            .is_ok_and(|kr| kr.repository() == wanted.repository())
                })
            })
        };
        match found {
            Some((name, record)) => self.image(name, record),
            None => Ok(None),
        }
    }

    pub fn list(&self) -> Result<Vec<Image>> {
        let mut images = Vec::new();
        for (name, record) in &self.read_refs()? {
            images.extend(self.image(name, record)?);
        }
        Ok(images)
    }

    /// Pull by reference: resolves multi-arch indexes to linux/<host arch>, fetches missing
    /// blobs, unpacks missing layers and records the reference.
    pub async fn pull(&self, reference: &str, auth: Option<(String, String)>) -> Result<Image> {
        let reference = Reference::parse(reference)?;
        let record = super::pull::pull(self, &reference, auth).await?;
        let name = reference.to_string();
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.record(&name, record.clone())?;
            store.image(&name, &record)?.ok_or(Error::NotFound(name))
        })
        .await
        .map_err(|e| Error::Registry(format!("pull task failed: {e}")))?
    }

    pub(crate) fn image(&self, name: &str, record: &Record) -> Result<Option<Image>> {
        let (Ok(_), Ok(_)) = (
            validate_digest(&record.manifest),
            validate_digest(&record.config),
        ) else {
            return Ok(None);
        };
        if !self.has_blob(&record.manifest) || !self.has_blob(&record.config) {
            return Ok(None);
        }
        let manifest: oci_spec::image::ImageManifest =
            parse_json(&self.read_blob(&record.manifest)?, "manifest")?;
        let config: oci_spec::image::ImageConfiguration =
            parse_json(&self.read_blob(&record.config)?, "image config")?;
        let mut layers = Vec::new();
        for diff_id in config.rootfs().diff_ids() {
            let dir = self.layer_dir(diff_id)?;
            if !dir.is_dir() {
                return Ok(None);
            }
            layers.push(dir);
        }
        let size =
            manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>();
        Ok(Some(Image {
            reference: name.to_string(),
            id: record.config.clone(),
            manifest_digest: record.manifest.clone(),
            index_digest: record.index.clone(),
            config: image_config(&config),
            layers,
            size,
        }))
    }

    // ---- blobs ----

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("blobs/sha256")
            .join(validate_digest(digest)?))
    }

    pub(crate) fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(io_at(&path))
    }

    /// Streams `reader` into the store, hashing on the way, and checks the result against
    /// `expected` if given. Returns the digest and size.
    pub(crate) fn ingest(
        &self,
        reader: &mut dyn Read,
        expected: Option<&str>,
    ) -> Result<(String, u64)> {
        if let Some(e) = expected {
            validate_digest(e)?;
        }
        let tmp = self.tmp_path("blob");
        let result = (|| {
            let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("reading blob")(e)),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_at(&tmp))?;
                size += n as u64;
            }
            file.sync_all().map_err(io_at(&tmp))?;
            let digest = format!("sha256:{}", hex(&hasher.finalize()));
            self.commit_blob(&tmp, &digest, expected)?;
            Ok((digest, size))
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    pub(crate) fn write_blob(&self, data: &[u8], expected: Option<&str>) -> Result<String> {
        Ok(self.ingest(&mut &data[..], expected)?.0)
    }

    /// Moves a finished temp file to its content address after re-hashing it from disk.
    pub(crate) fn commit_file(&self, tmp: &Path, expected: &str) -> Result<()> {
        let mut file = File::open(tmp).map_err(io_at(tmp))?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(io_at(tmp))?;
        let digest = format!("sha256:{}", hex(&hasher.finalize()));
        self.commit_blob(tmp, &digest, Some(expected))
    }

    fn commit_blob(&self, tmp: &Path, actual: &str, expected: Option<&str>) -> Result<()> {
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(Error::Digest {
                what: "blob".into(),
                expected: expected.into(),
                actual: actual.into(),
            });
        }
        let dest = self.blob_path(actual)?;
        // Same digest, same bytes: if another writer got there first, either copy is fine.
        fs::rename(tmp, &dest).map_err(io_at(&dest))
    }

    // ---- layers ----

    pub(crate) fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("layers/sha256")
            .join(validate_digest(diff_id)?))
    }

    /// Unpacks the blob `digest` as the layer `diff_id` unless it is there already. Blocking.
    pub(crate) fn ensure_layer(&self, digest: &str, diff_id: &str) -> Result<PathBuf> {
        let dest = self.layer_dir(diff_id)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let _lock = self.lock(&format!("layer-{}", validate_digest(diff_id)?))?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let blob = self.blob_path(digest)?;
        let file = File::open(&blob).map_err(io_at(&blob))?;
        let tmp = self.tmp_path("layer");
        let result = fs::create_dir(&tmp)
            .map_err(io_at(&tmp))
            .and_then(|()| unpack::unpack_layer(io::BufReader::new(file), &tmp))
            .and_then(|actual| {
                if actual != diff_id {
                    return Err(Error::Digest {
                        what: format!("uncompressed layer {digest}"),
                        expected: diff_id.into(),
                        actual,
                    });
                }
                fs::rename(&tmp, &dest).map_err(io_at(&dest))
            });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result.map(|()| dest)
    }

    // ---- references ----

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    pub(crate) fn read_refs(&self) -> Result<BTreeMap<String, Record>> {
        let path = self.refs_path();
        match fs::read(&path) {
            Ok(bytes) => parse_json(&bytes, "refs.json"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Points `name` at `record`, read-modify-write under the refs lock. Blocking.
    pub(crate) fn record(&self, name: &str, record: Record) -> Result<()> {
        let _lock = self.lock("refs")?;
        let mut refs = self.read_refs()?;
        refs.insert(name.to_string(), record);
        let bytes = serde_json::to_vec_pretty(&refs)
            .map_err(|e| Error::InvalidImage(format!("serializing refs.json: {e}")))?;
        let tmp = self.tmp_path("refs");
        let path = self.refs_path();
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io_at(&path))
    }

    // ---- scratch space and locks ----

    /// A fresh name in `tmp/`, prefixed with our pid so stale ones can be told apart.
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{n}-{what}", std::process::id()))
    }

    /// Blocks until the named lock is ours; released when the guard drops.
    pub(crate) fn lock(&self, name: &str) -> Result<Flock<File>> {
        let path = self.root.join("locks").join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io_at(&path)(errno.into()))
    }

    /// Leftovers of crashed processes: temp entries whose owning pid is gone.
    fn remove_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None)
                    != Err(nix::errno::Errno::ESRCH)
            });
            if !alive {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
    }
}

pub(crate) fn image_config(c: &oci_spec::image::ImageConfiguration) -> ImageConfig {
    let Some(c) = c.config() else {
        return ImageConfig::default();
    };
    ImageConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        user: c.user().clone().unwrap_or_default(),
        exposed_ports: c.exposed_ports().clone().unwrap_or_default(),
        labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        volumes: c.volumes().clone().unwrap_or_default(),
        stop_signal: c.stop_signal().clone().unwrap_or_default(),
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidImage(format!("{what}: {e}")))
}

pub(crate) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) struct HashWriter<'a>(pub &'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_stored_under_their_digest_and_a_wrong_expected_digest_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(dir.path()).expect("open");
        let digest = store.write_blob(b"hello", None).expect("write");
        assert_eq!(digest, sha256_digest(b"hello"));
        assert_eq!(store.read_blob(&digest).expect("read"), b"hello");
        let wrong = sha256_digest(b"other");
        assert!(matches!(
            store.write_blob(b"hello", Some(&wrong)),
            Err(Error::Digest { .. })
        ));
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
    }

    #[test]
    fn stale_temp_entries_of_dead_processes_are_removed_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        ImageStore::open(dir.path()).expect("open");
        // pid_max is at most 2^22, so this pid never exists.
        let stale = dir.path().join("tmp/99999999-0-layer");
        let ours = dir
            .path()
            .join(format!("tmp/{}-0-layer", std::process::id()));
        fs::create_dir_all(stale.join("sub")).expect("mkdir");
        fs::create_dir_all(&ours).expect("mkdir");
        ImageStore::open(dir.path()).expect("reopen");
        assert!(!stale.exists());
        assert!(ours.exists());
    }

    #[test]
    fn refs_are_recorded_atomically_and_unknown_names_are_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(dir.path()).expect("open");
        let record = Record {
            manifest: sha256_digest(b"m"),
            config: sha256_digest(b"c"),
            index: None,
        };
        store
            .record("docker.io/library/x:latest", record.clone())
            .expect("record");
        assert_eq!(
            store
                .read_refs()
                .expect("refs")
                .get("docker.io/library/x:latest"),
            Some(&record)
        );
        // The blobs are missing, so the image is not usable.
        assert_eq!(store.get("x").expect("get"), None);
        assert_eq!(store.get("y:1").expect("get"), None);
        assert!(matches!(
            store.get("Bad//name"),
            Err(Error::InvalidReference(_))
        ));
    }
}

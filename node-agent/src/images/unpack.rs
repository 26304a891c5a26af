//! Unpacking one layer tar (gzip, zstd or plain) into an empty directory, in the form
//! overlayfs expects for a lower layer.
//!
//! Rules, as containerd applies them for the overlayfs snapshotter:
//! - entry paths are taken relative to the layer root; `..` anywhere is refused, and a path
//!   whose parent is a symlink is refused, so nothing is ever written through a symlink;
//! - symlink targets are stored as written (absolute ones are fine, they are never followed);
//! - hardlinks must point at an entry already unpacked in this layer;
//! - `.wh.<name>` becomes a 0/0 character device `<name>` (an overlayfs whiteout) and
//!   `.wh..wh..opq` marks its directory opaque with `trusted.overlay.opaque=y`;
//! - owner, mode, mtime and `SCHILY.xattr.*` are applied; directory modes and mtimes last,
//!   since creating their children would change them.

use super::store::hex;
use super::{Error, Result, io_at, io_err};
use nix::sys::stat::{Mode, SFlag, lutimes, makedev, mknod};
use nix::sys::time::TimeVal;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::io::{self, BufRead, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Unpacks a (possibly compressed) layer tar into `dest`, an existing empty directory, and
/// returns its diff ID: the sha256 of the uncompressed tar stream.
pub(crate) fn unpack_layer<'a>(reader: impl BufRead + 'a, dest: &Path) -> Result<String> {
    let decoder = decompress(reader)?;
    let mut hashing = HashReader {
        inner: decoder,
        hasher: Sha256::new(),
    };
    let mut dirs = BTreeMap::new();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().map_err(io_err("reading layer tar"))? {
            let mut entry = entry.map_err(io_err("reading layer tar"))?;
            apply_entry(&mut entry, dest, &mut dirs)?;
        }
    }
    // The end-of-archive blocks and any padding after them are part of the diff ID.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err("reading layer tar"))?;
    // Reverse order visits children before their parents.
    for (path, meta) in dirs.iter().rev() {
        fs::set_permissions(path, Permissions::from_mode(meta.mode)).map_err(io_at(path))?;
        set_mtime(path, meta.mtime)?;
    }
    Ok(format!("sha256:{}", hex(&hashing.hasher.finalize())))
}

/// gzip, zstd or plain, told apart by their magic numbers rather than by media types, which
/// `docker save` and some registries get wrong.
pub(crate) fn decompress<'a>(mut reader: impl BufRead + 'a) -> Result<Box<dyn Read + 'a>> {
    let magic = reader.fill_buf().map_err(io_err("reading layer"))?;
    Ok(match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(io_err("starting zstd decoder"))?,
        ),
        _ => Box::new(reader),
    })
}

struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[derive(Debug, Default)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    /// Header fields, overridden by PAX records as Go's archive/tar does.
    fn read<R: Read>(entry: &mut tar::Entry<R>) -> Result<Meta> {
        let bad = |e: io::Error| Error::InvalidImage(format!("bad tar header: {e}"));
        let h = entry.header();
        let mut meta = Meta {
            mode: h.mode().map_err(bad)? & 0o7777,
            uid: u32::try_from(h.uid().map_err(bad)?).unwrap_or(0),
            gid: u32::try_from(h.gid().map_err(bad)?).unwrap_or(0),
            mtime: i64::try_from(h.mtime().map_err(bad)?).unwrap_or(0),
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    meta.xattrs
                        .push((name.to_string(), ext.value_bytes().to_vec()));
                    continue;
                }
                let value = ext.value().unwrap_or_default();
                match key {
                    "uid" => meta.uid = value.parse().unwrap_or(meta.uid),
                    "gid" => meta.gid = value.parse().unwrap_or(meta.gid),
                    "mtime" => {
                        let secs = value.split('.').next().unwrap_or_default();
                        meta.mtime = secs.parse().unwrap_or(meta.mtime);
                    }
                    _ => {}
                }
            }
        }
        Ok(meta)
    }
}

fn apply_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    root: &Path,
    dirs: &mut BTreeMap<PathBuf, Meta>,
) -> Result<()> {
    let kind = entry.header().entry_type();
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) {
        return Ok(());
    }
    let raw = entry
        .path()
        .map_err(io_err("reading entry path"))?
        .into_owned();
    let Some(rel) = clean(&raw)? else {
        return Ok(()); // the layer root itself: overlayfs takes the root from the upper dir
    };
    let (Some(name), parent_rel) = (rel.file_name(), rel.parent().unwrap_or(Path::new(""))) else {
        return Ok(());
    };
    let name = name.to_owned();
    let parent = ensure_dirs(root, parent_rel)?;
    let meta = Meta::read(entry)?;

    if let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix(WHITEOUT_PREFIX)) {
        if name == OPAQUE_WHITEOUT {
            xattr::set(&parent, "trusted.overlay.opaque", b"y")
                .map_err(io_err(format!("marking {} opaque", parent.display())))?;
        } else if !hidden.starts_with(WHITEOUT_PREFIX) && !hidden.is_empty() {
            let target = parent.join(hidden);
            remove_existing(&target, dirs)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| io_at(&target)(e.into()))?;
        }
        // Other `.wh..wh.*` names are aufs bookkeeping with no overlayfs meaning.
        return Ok(());
    }

    let target = parent.join(&name);
    match kind {
        EntryType::Directory => {
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_existing(&target, dirs)?;
                    fs::create_dir(&target).map_err(io_at(&target))?;
                }
                Err(_) => fs::create_dir(&target).map_err(io_at(&target))?,
            }
            set_owner(&target, &meta)?;
            set_xattrs(&target, &meta);
            dirs.insert(target, meta);
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            remove_existing(&target, dirs)?;
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&target)
                .map_err(io_at(&target))?;
            io::copy(entry, &mut file).map_err(io_at(&target))?;
            drop(file);
            finish(&target, &meta, true)?;
        }
        EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(io_err("reading symlink target"))?
                .ok_or_else(|| {
                    Error::InvalidImage(format!("symlink {} without target", rel.display()))
                })?;
            remove_existing(&target, dirs)?;
            std::os::unix::fs::symlink(&link, &target).map_err(io_at(&target))?;
            set_owner(&target, &meta)?;
            set_mtime(&target, meta.mtime)?;
        }
        EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(io_err("reading hardlink target"))?
                .ok_or_else(|| {
                    Error::InvalidImage(format!("hardlink {} without target", rel.display()))
                })?;
            let source = existing_in_layer(root, &link)?;
            if source == target {
                return Ok(());
            }
            remove_existing(&target, dirs)?;
            fs::hard_link(&source, &target).map_err(io_at(&target))?;
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let bad = |e: io::Error| Error::InvalidImage(format!("bad device numbers: {e}"));
            let major = entry.header().device_major().map_err(bad)?.unwrap_or(0);
            let minor = entry.header().device_minor().map_err(bad)?.unwrap_or(0);
            let sflag = match kind {
                EntryType::Char => SFlag::S_IFCHR,
                EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            remove_existing(&target, dirs)?;
            match mknod(
                &target,
                sflag,
                Mode::from_bits_truncate(meta.mode),
                makedev(major.into(), minor.into()),
            ) {
                Ok(()) => finish(&target, &meta, true)?,
                // Without CAP_MKNOD (rootless) devices are skipped, as rootless containerd does;
                // the runtime bind-mounts the devices a container gets anyway.
                Err(nix::errno::Errno::EPERM) if kind != EntryType::Fifo => {
                    tracing::warn!(path = %rel.display(), "skipping device node: no permission to create it");
                }
                Err(e) => return Err(io_at(&target)(e.into())),
            }
        }
        other => {
            tracing::debug!(path = %rel.display(), kind = ?other, "skipping unsupported tar entry");
        }
    }
    Ok(())
}

/// The entry path relative to the layer root; `None` for the root itself.
fn clean(raw: &Path) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::UnsafePath(raw.display().to_string()));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Walks `rel` below `root`, creating missing directories and refusing to pass through
/// symlinks or non-directories. Returns the directory's path.
fn ensure_dirs(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for part in rel.components() {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafePath(format!(
                    "{} goes through a symlink",
                    rel.display()
                )));
            }
            Ok(_) => {
                return Err(Error::UnsafePath(format!(
                    "{} is not a directory",
                    rel.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(io_at(&cur))?
            }
            Err(e) => return Err(io_at(&cur)(e)),
        }
    }
    Ok(cur)
}

/// A hardlink's source: must already exist in this layer, reached without symlinks.
fn existing_in_layer(root: &Path, link: &Path) -> Result<PathBuf> {
    let unsafe_link = || Error::UnsafePath(format!("hardlink to {}", link.display()));
    let rel = clean(link)?.ok_or_else(unsafe_link)?;
    let mut cur = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        let m = fs::symlink_metadata(&cur).map_err(|_| unsafe_link())?;
        let last = i + 1 == parts.len();
        if (!last && !m.is_dir()) || (last && m.is_dir()) {
            return Err(unsafe_link());
        }
    }
    Ok(cur)
}

/// Later tar entries replace earlier ones of the same name, directories included.
fn remove_existing(target: &Path, dirs: &mut BTreeMap<PathBuf, Meta>) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            dirs.retain(|p, _| !p.starts_with(target));
            fs::remove_dir_all(target).map_err(io_at(target))
        }
        Ok(_) => fs::remove_file(target).map_err(io_at(target)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(target)(e)),
    }
}

fn finish(path: &Path, meta: &Meta, chmod: bool) -> Result<()> {
    // chown before chmod: chown clears setuid/setgid bits.
    set_owner(path, meta)?;
    if chmod {
        fs::set_permissions(path, Permissions::from_mode(meta.mode)).map_err(io_at(path))?;
    }
    set_xattrs(path, meta);
    set_mtime(path, meta.mtime)
}

fn set_owner(path: &Path, meta: &Meta) -> Result<()> {
    match std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)) {
        Ok(()) => Ok(()),
        // Unprivileged, or an id outside our user namespace: keep our own ids.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

fn set_xattrs(path: &Path, meta: &Meta) {
    for (name, value) in &meta.xattrs {
        if let Err(e) = xattr::set(path, name, value) {
            tracing::warn!(path = %path.display(), xattr = %name, error = %e, "cannot set xattr");
        }
    }
}

fn set_mtime(path: &Path, mtime: i64) -> Result<()> {
    let t = TimeVal::new(mtime, 0);
    lutimes(path, &t, &t).map_err(|e| io_at(path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A layer tar built entry by entry; `raw_path` bypasses the tar crate's own checks so that
    /// hostile names can be tested.
    struct LayerTar(tar::Builder<Vec<u8>>);

    impl LayerTar {
        fn new() -> Self {
            LayerTar(tar::Builder::new(Vec::new()))
        }
        fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(1000);
            h.set_gid(2000);
            h.set_mtime(1_600_000_000);
            h.set_size(size);
            raw_path(&mut h, path);
            h
        }
        fn dir(mut self, path: &str, mode: u32) -> Self {
            let mut h = Self::header(EntryType::Directory, path, mode, 0);
            h.set_cksum();
            self.0.append(&h, io::empty()).expect("append");
            self
        }
        fn file(mut self, path: &str, data: &[u8]) -> Self {
            let mut h = Self::header(EntryType::Regular, path, 0o640, data.len() as u64);
            h.set_cksum();
            self.0.append(&h, data).expect("append");
            self
        }
        fn link(mut self, kind: EntryType, path: &str, target: &str) -> Self {
            let mut h = Self::header(kind, path, 0o777, 0);
            h.set_link_name(target).expect("link name");
            h.set_cksum();
            self.0.append(&h, io::empty()).expect("append");
            self
        }
        fn node(mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> Self {
            let mut h = Self::header(kind, path, 0o620, 0);
            h.set_device_major(major).expect("major");
            h.set_device_minor(minor).expect("minor");
            h.set_cksum();
            self.0.append(&h, io::empty()).expect("append");
            self
        }
        fn finish(self) -> Vec<u8> {
            self.0.into_inner().expect("finish tar")
        }
    }

    fn raw_path(h: &mut tar::Header, path: &str) {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
    }

    fn unpack(data: &[u8]) -> (tempfile::TempDir, Result<String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = unpack_layer(data, dir.path());
        (dir, result)
    }

    fn sample() -> Vec<u8> {
        LayerTar::new()
            .dir("etc/", 0o755)
            .file("etc/hostname", b"demo\n")
            .link(EntryType::Symlink, "etc/abs", "/etc/hostname")
            .link(EntryType::Link, "etc/hard", "etc/hostname")
            .dir("secret/", 0o700)
            .node(EntryType::Char, "null", 1, 3)
            .node(EntryType::Fifo, "pipe", 0, 0)
            .finish()
    }

    #[test]
    fn files_dirs_links_and_devices_keep_type_mode_owner_and_mtime() {
        let tar = sample();
        let (dir, result) = unpack(&tar);
        assert_eq!(
            result.expect("unpack"),
            super::super::store::sha256_digest(&tar)
        );
        let root = dir.path();
        let file = fs::symlink_metadata(root.join("etc/hostname")).expect("file");
        assert_eq!(
            (file.mode() & 0o7777, file.uid(), file.gid(), file.mtime()),
            (0o640, 1000, 2000, 1_600_000_000)
        );
        assert_eq!(
            fs::read(root.join("etc/hostname")).expect("read"),
            b"demo\n"
        );
        assert_eq!(
            fs::read_link(root.join("etc/abs")).expect("link"),
            Path::new("/etc/hostname")
        );
        assert_eq!(
            fs::symlink_metadata(root.join("etc/abs"))
                .expect("abs")
                .uid(),
            1000
        );
        assert_eq!(
            fs::metadata(root.join("etc/hard")).expect("hard").ino(),
            file.ino()
        );
        let secret = fs::metadata(root.join("secret")).expect("dir");
        assert_eq!(
            (secret.mode() & 0o7777, secret.mtime()),
            (0o700, 1_600_000_000)
        );
        assert_eq!(
            fs::metadata(root.join("etc")).expect("etc").mtime(),
            1_600_000_000
        );
        let null = fs::symlink_metadata(root.join("null")).expect("null");
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert!(
            fs::symlink_metadata(root.join("pipe"))
                .expect("pipe")
                .file_type()
                .is_fifo()
        );
    }

    #[test]
    fn whiteouts_become_overlay_char_devices_and_opaque_markers_become_xattrs() {
        let tar = LayerTar::new()
            .dir("a/", 0o755)
            .file("a/.wh..wh..opq", b"")
            .file("a/.wh.gone", b"")
            .file("b/.wh.gone-too", b"")
            .file("a/.wh..wh.plnk", b"")
            .finish();
        let (dir, result) = unpack(&tar);
        result.expect("unpack");
        let root = dir.path();
        for path in ["a/gone", "b/gone-too"] {
            let m = fs::symlink_metadata(root.join(path)).expect(path);
            assert!(m.file_type().is_char_device(), "{path}");
            assert_eq!(m.rdev(), 0, "{path}");
        }
        assert_eq!(
            xattr::get(root.join("a"), "trusted.overlay.opaque").expect("xattr"),
            Some(b"y".to_vec())
        );
        assert_eq!(
            xattr::get(root.join("b"), "trusted.overlay.opaque").expect("xattr"),
            None
        );
        assert!(!root.join("a/.wh..wh.opq").exists() && !root.join("a/.wh.gone").exists());
        assert!(!root.join("a/.wh..wh.plnk").exists());
    }

    #[test]
    fn paths_and_hardlinks_escaping_the_layer_are_refused() {
        let outside = |tar: Vec<u8>| {
            let parent = tempfile::tempdir().expect("tempdir");
            let root = parent.path().join("layer");
            fs::create_dir(&root).expect("mkdir");
            let result = unpack_layer(&tar[..], &root);
            assert!(!parent.path().join("escaped").exists());
            result
        };
        for tar in [
            LayerTar::new().file("../escaped", b"x").finish(),
            LayerTar::new().file("a/../../escaped", b"x").finish(),
            LayerTar::new()
                .link(EntryType::Link, "h", "../escaped")
                .finish(),
        ] {
            assert!(matches!(outside(tar), Err(Error::UnsafePath(_))));
        }
        // A symlink pointing out of the layer is stored but never followed on later entries.
        let tar = LayerTar::new()
            .link(EntryType::Symlink, "up", "..")
            .file("up/escaped", b"x")
            .finish();
        assert!(matches!(outside(tar), Err(Error::UnsafePath(_))));
        let tar = LayerTar::new()
            .link(EntryType::Symlink, "etc", "/etc")
            .file("etc/passwd", b"x")
            .finish();
        assert!(matches!(unpack(&tar).1, Err(Error::UnsafePath(_))));
        // Absolute entry names are relative to the layer root, as in Docker.
        let (dir, result) = unpack(&LayerTar::new().file("/abs/file", b"x").finish());
        result.expect("unpack");
        assert!(dir.path().join("abs/file").is_file());
    }

    #[test]
    fn a_symlink_replaced_by_a_file_is_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        fs::write(&victim, b"original").expect("write");
        let tar = LayerTar::new()
            .link(EntryType::Symlink, "f", victim.to_str().expect("utf8"))
            .file("f", b"new")
            .finish();
        let (dir, result) = unpack(&tar);
        result.expect("unpack");
        assert_eq!(fs::read(&victim).expect("read"), b"original");
        assert_eq!(fs::read(dir.path().join("f")).expect("read"), b"new");
    }

    #[test]
    fn gzip_and_zstd_layers_unpack_to_the_diff_id_of_the_plain_tar() {
        let tar = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
        let diff_id = super::super::store::sha256_digest(&tar);
        for (name, data) in [("gzip", gz), ("zstd", zst)] {
            let (dir, result) = unpack(&data);
            assert_eq!(result.expect(name), diff_id, "{name}");
            assert_eq!(
                fs::read(dir.path().join("etc/hostname")).expect(name),
                b"demo\n"
            );
        }
    }

    #[test]
    fn pax_xattrs_are_applied() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.user.demo", &b"v1"[..])])
            .expect("pax");
        let mut h = LayerTar::header(EntryType::Regular, "f", 0o644, 1);
        h.set_cksum();
        b.append(&h, &b"x"[..]).expect("append");
        let (dir, result) = unpack(&b.into_inner().expect("tar"));
        result.expect("unpack");
        assert_eq!(
            xattr::get(dir.path().join("f"), "user.demo").expect("xattr"),
            Some(b"v1".to_vec())
        );
    }
}

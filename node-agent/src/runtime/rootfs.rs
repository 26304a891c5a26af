//! The container's filesystem: overlayfs root, pivot_root, /proc, /dev, /sys, volumes.
//!
//! Order of operations in the child (already in its new mount and PID namespaces):
//! 1. make every mount private, so nothing propagates back to the host;
//! 2. mount the overlay at the mount point (visible only in this namespace, so it vanishes with
//!    the container and never leaks on the host), and a tmpfs on its /dev;
//! 3. `pivot_root` with the old root parked at /dev/.oldroot (inside that tmpfs, so the image
//!    gets no extra directory);
//! 4. mount /proc, populate /dev, mount /sys read-only;
//! 5. bind the volumes from /dev/.oldroot/<host path> onto their destinations: destinations are
//!    resolved with the container's root as "/", so symlinks in an image cannot point a mount
//!    onto a host path;
//! 6. mask and write-protect the usual /proc and /sys paths (the OCI/containerd defaults);
//! 7. detach the old root, create and enter the working directory, optionally remount / read-only.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::channel::{Failure, Stage};
use super::spec::ContainerSpec;
use super::syscall::Syscall;
use super::{Error, Result};

/// Where the host's root sits between pivot_root and its detachment.
const OLD_ROOT: &CStr = c"/dev/.oldroot";
const OLD_ROOT_STR: &str = "/dev/.oldroot";

enum DevEntry {
    Node(&'static CStr, u32, u32),
    Dir(&'static CStr, u32),
    Mount(&'static CStr, &'static CStr, MsFlags, &'static CStr),
    Link(&'static CStr, &'static CStr),
}

const NOSUID_NOEXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NOEXEC.union(MsFlags::MS_NODEV);

const DEV: [DevEntry; 15] = [
    DevEntry::Node(c"/dev/null", 1, 3),
    DevEntry::Node(c"/dev/zero", 1, 5),
    DevEntry::Node(c"/dev/full", 1, 7),
    DevEntry::Node(c"/dev/random", 1, 8),
    DevEntry::Node(c"/dev/urandom", 1, 9),
    DevEntry::Node(c"/dev/tty", 5, 0),
    DevEntry::Dir(c"/dev/pts", 0o755),
    DevEntry::Mount(c"devpts", c"/dev/pts", NOSUID_NOEXEC, c"newinstance,ptmxmode=0666,mode=0620,gid=5"),
    DevEntry::Link(c"pts/ptmx", c"/dev/ptmx"),
    DevEntry::Dir(c"/dev/shm", 0o1777),
    DevEntry::Mount(c"tmpfs", c"/dev/shm", NOSUID_NODEV_NOEXEC, c"mode=1777,size=65536k"),
    DevEntry::Link(c"/proc/self/fd", c"/dev/fd"),
    DevEntry::Link(c"/proc/self/fd/0", c"/dev/stdin"),
    DevEntry::Link(c"/proc/self/fd/1", c"/dev/stdout"),
    DevEntry::Link(c"/proc/self/fd/2", c"/dev/stderr"),
];

/// containerd's defaults for non-privileged containers.
const READONLY_PATHS: [&CStr; 5] = [c"/proc/bus", c"/proc/fs", c"/proc/irq", c"/proc/sys", c"/proc/sysrq-trigger"];
const MASKED_PATHS: [&CStr; 11] = [
    c"/proc/acpi",
    c"/proc/asound",
    c"/proc/kcore",
    c"/proc/keys",
    c"/proc/latency_stats",
    c"/proc/timer_list",
    c"/proc/timer_stats",
    c"/proc/sched_debug",
    c"/proc/scsi",
    c"/sys/firmware",
    c"/sys/devices/virtual/powercap",
];

pub struct BindPlan {
    /// The host path as seen through the old root after pivot_root.
    source: CString,
    /// Directories to create, outermost first, then the target itself.
    parents: Vec<CString>,
    target: CString,
    is_dir: bool,
    read_only: bool,
}

pub struct RootfsPlan {
    rootfs: CString,
    overlay_options: CString,
    dev: CString,
    put_old: CString,
    mounts: Vec<BindPlan>,
    /// The working directory and each of its ancestors, outermost first; empty means "/".
    workdir: Vec<CString>,
    readonly_root: bool,
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Create(format!("{what} contains a NUL byte")))
}

fn path_cstring(p: &Path, what: &str) -> Result<CString> {
    cstring(p.as_os_str().as_bytes(), what)
}

/// An absolute, lexically normalized path inside the container and each of its ancestors
/// ("/a/b" -> ["/a", "/a/b"]). `..` is resolved lexically, which is what the kernel does at
/// the container's root anyway.
pub fn container_prefixes(p: &Path, what: &str) -> Result<Vec<CString>> {
    if !p.is_absolute() {
        return Err(Error::Create(format!("{what} {:?} is not an absolute path", p.display().to_string())));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.as_bytes()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut out = Vec::with_capacity(parts.len());
    let mut acc = Vec::new();
    for part in parts {
        acc.push(b'/');
        acc.extend_from_slice(part);
        out.push(cstring(&acc, what)?);
    }
    Ok(out)
}

/// overlayfs mount options; lowerdir lists the topmost layer first.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    if layers.is_empty() {
        return Err(Error::Create("the image has no layers".into()));
    }
    let check = |p: &Path| -> Result<String> {
        let s = p.to_str().ok_or_else(|| Error::Create(format!("{} is not UTF-8", p.display())))?;
        // overlayfs splits its options on ',' and its lowerdir list on ':'.
        if !p.is_absolute() || s.contains([',', ':', '\\', '\0']) {
            return Err(Error::Create(format!("layer path {s:?} cannot be used in overlay options")));
        }
        Ok(s.to_string())
    };
    let lower: Vec<String> = layers.iter().rev().map(|p| check(p)).collect::<Result<_>>()?;
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), check(upper)?, check(work)?);
    // The kernel copies mount data into a single page.
    if opts.len() >= 4096 {
        return Err(Error::Create(format!("overlay options for {} layers exceed a page", layers.len())));
    }
    Ok(opts)
}

impl RootfsPlan {
    /// Resolves host paths now, in the parent, where errors can be described properly.
    pub fn new(spec: &ContainerSpec) -> Result<RootfsPlan> {
        let r = &spec.rootfs;
        let rootfs = path_cstring(&r.mount_point, "rootfs mount point")?;
        let opts = overlay_options(&r.layers, &r.upper_dir, &r.work_dir)?;
        let mut mounts = Vec::with_capacity(spec.mounts.len());
        for m in &spec.mounts {
            // Canonical, so that no symlink in the host path is later resolved against the
            // container's root.
            let source = std::fs::canonicalize(&m.source)
                .map_err(|e| Error::Create(format!("mount source {}: {e}", m.source.display())))?;
            let is_dir = source.is_dir();
            let mut old = OLD_ROOT_STR.as_bytes().to_vec();
            old.extend_from_slice(source.as_os_str().as_bytes());
            let mut parents = container_prefixes(&m.destination, "mount destination")?;
            let target = parents
                .pop()
                .ok_or_else(|| Error::Create(format!("cannot mount {} over the root", m.source.display())))?;
            mounts.push(BindPlan { source: cstring(&old, "mount source")?, parents, target, is_dir, read_only: m.read_only });
        }
        let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
        let mut dev = r.mount_point.as_os_str().as_bytes().to_vec();
        dev.extend_from_slice(b"/dev");
        let mut put_old = dev.clone();
        put_old.extend_from_slice(b"/.oldroot");
        Ok(RootfsPlan {
            rootfs,
            overlay_options: cstring(opts.as_bytes(), "overlay options")?,
            dev: cstring(&dev, "rootfs path")?,
            put_old: cstring(&put_old, "rootfs path")?,
            mounts,
            workdir: container_prefixes(&cwd, "working directory")?,
            readonly_root: spec.readonly_rootfs,
        })
    }
}

fn mkdir_ok<S: Syscall>(sys: &S, path: &CStr, mode: u32) -> Result<(), Errno> {
    match sys.mkdir(path, mode) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs in the child; returns the first failure.
pub fn setup_rootfs<S: Syscall>(sys: &S, plan: &RootfsPlan) -> Result<(), Failure> {
    let fail = |stage: Stage, index: usize| move |e: Errno| Failure::new(stage, index, e);
    sys.umask(0);
    sys.mount(None, c"/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None).map_err(fail(Stage::MakePrivate, 0))?;
    sys.mount(Some(c"overlay"), &plan.rootfs, Some(c"overlay"), MsFlags::empty(), Some(&plan.overlay_options))
        .map_err(fail(Stage::MountRootfs, 0))?;
    mkdir_ok(sys, &plan.dev, 0o755).map_err(fail(Stage::MountDev, 0))?;
    sys.mount(
        Some(c"tmpfs"),
        &plan.dev,
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )
    .map_err(fail(Stage::MountDev, 1))?;
    sys.mkdir(&plan.put_old, 0o700).map_err(fail(Stage::PivotRoot, 0))?;
    sys.pivot_root(&plan.rootfs, &plan.put_old).map_err(fail(Stage::PivotRoot, 1))?;
    sys.chdir(c"/").map_err(fail(Stage::PivotRoot, 2))?;

    mkdir_ok(sys, c"/proc", 0o555).map_err(fail(Stage::MountProc, 0))?;
    sys.mount(Some(c"proc"), c"/proc", Some(c"proc"), NOSUID_NODEV_NOEXEC, None).map_err(fail(Stage::MountProc, 1))?;
    for (i, entry) in DEV.iter().enumerate() {
        let res = match *entry {
            DevEntry::Node(path, major, minor) => {
                sys.mknod(path, libc::S_IFCHR | 0o666, libc::makedev(major, minor))
            }
            DevEntry::Dir(path, mode) => mkdir_ok(sys, path, mode),
            DevEntry::Mount(fstype, target, flags, data) => sys.mount(Some(fstype), target, Some(fstype), flags, Some(data)),
            DevEntry::Link(target, link) => sys.symlink(target, link),
        };
        res.map_err(fail(Stage::Device, i))?;
    }
    mkdir_ok(sys, c"/sys", 0o555).map_err(fail(Stage::MountSys, 0))?;
    sys.mount(Some(c"sysfs"), c"/sys", Some(c"sysfs"), NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY, None)
        .map_err(fail(Stage::MountSys, 1))?;

    for (i, m) in plan.mounts.iter().enumerate() {
        for dir in &m.parents {
            mkdir_ok(sys, dir, 0o755).map_err(fail(Stage::Mount, i))?;
        }
        if m.is_dir {
            mkdir_ok(sys, &m.target, 0o755).map_err(fail(Stage::Mount, i))?;
        } else {
            // A failure here (say, a dangling symlink) is reported by the mount itself.
            let _ = sys.create_file(&m.target, 0o644);
        }
        sys.mount(Some(&m.source), &m.target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
            .map_err(fail(Stage::Mount, i))?;
        if m.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            sys.mount(None, &m.target, None, flags, None).map_err(fail(Stage::MountReadOnly, i))?;
        }
    }

    for (i, path) in READONLY_PATHS.iter().enumerate() {
        match sys.mount(Some(path), path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None) {
            Err(Errno::ENOENT) => continue,
            res => res.map_err(fail(Stage::MaskPath, i))?,
        }
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NOSUID_NODEV_NOEXEC;
        sys.mount(None, path, None, flags, None).map_err(fail(Stage::MaskPath, i))?;
    }
    for (i, path) in MASKED_PATHS.iter().enumerate() {
        let index = READONLY_PATHS.len() + i;
        match sys.mount(Some(c"/dev/null"), path, None, MsFlags::MS_BIND, None) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => sys
                .mount(Some(c"tmpfs"), path, Some(c"tmpfs"), MsFlags::MS_RDONLY, Some(c"size=0"))
                .map_err(fail(Stage::MaskPath, index))?,
            Err(e) => return Err(Failure::new(Stage::MaskPath, index, e)),
        }
    }

    sys.umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(fail(Stage::DetachOldRoot, 0))?;
    sys.rmdir(OLD_ROOT).map_err(fail(Stage::DetachOldRoot, 1))?;

    for dir in &plan.workdir {
        mkdir_ok(sys, dir, 0o755).map_err(fail(Stage::Workdir, 0))?;
    }
    sys.chdir(plan.workdir.last().map_or(c"/", |c| c.as_c_str())).map_err(fail(Stage::Workdir, 1))?;
    if plan.readonly_root {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys.mount(None, c"/", None, flags, None).map_err(fail(Stage::ReadOnlyRoot, 0))?;
    }
    Ok(())
}

/// Words for a failure in this module, for the CreateContainerError message.
pub fn describe(f: &Failure, spec: &ContainerSpec) -> String {
    let mount = spec.mounts.get(f.index as usize);
    let what = match f.stage {
        Stage::MakePrivate => "making mounts private".to_string(),
        Stage::MountRootfs => format!("mounting the overlay root filesystem at {}", spec.rootfs.mount_point.display()),
        Stage::MountDev => "mounting /dev".to_string(),
        Stage::PivotRoot => "pivoting into the root filesystem".to_string(),
        Stage::MountProc => "mounting /proc".to_string(),
        Stage::Device => "populating /dev".to_string(),
        Stage::MountSys => "mounting /sys".to_string(),
        Stage::Mount | Stage::MountReadOnly => match mount {
            Some(m) => format!("mounting {} at {}", m.source.display(), m.destination.display()),
            None => "mounting a volume".to_string(),
        },
        Stage::MaskPath => "masking /proc and /sys paths".to_string(),
        Stage::DetachOldRoot => "detaching the host root".to_string(),
        Stage::Workdir => {
            let cwd = spec.cwd.as_deref().unwrap_or(Path::new("/"));
            format!("creating working directory {:?}", cwd.display().to_string())
        }
        Stage::ReadOnlyRoot => "making the root filesystem read-only".to_string(),
        other => format!("{other:?}"),
    };
    format!("{what}: {}", f.errno.desc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{Mount, Rootfs};
    use crate::runtime::syscall::recording::RecordingSyscall;

    fn spec(dir: &Path) -> ContainerSpec {
        ContainerSpec {
            rootfs: Rootfs {
                layers: vec!["/layers/base".into(), "/layers/app".into()],
                upper_dir: "/c/upper".into(),
                work_dir: "/c/work".into(),
                mount_point: "/c/rootfs".into(),
            },
            mounts: vec![
                Mount { source: dir.to_path_buf(), destination: "/data/cache".into(), read_only: true },
                Mount { source: dir.join("hosts"), destination: "/etc/hosts".into(), read_only: false },
            ],
            cwd: Some("/work/dir".into()),
            ..Default::default()
        }
    }

    #[test]
    fn overlay_lists_the_topmost_layer_first() {
        let opts = overlay_options(&["/l/base".into(), "/l/top".into()], Path::new("/u"), Path::new("/w")).unwrap();
        assert_eq!(opts, "lowerdir=/l/top:/l/base,upperdir=/u,workdir=/w");
    }

    #[test]
    fn overlay_rejects_paths_it_cannot_parse() {
        for bad in ["/a,b", "/a:b", "relative"] {
            assert!(overlay_options(&[bad.into()], Path::new("/u"), Path::new("/w")).is_err(), "{bad}");
        }
        assert!(overlay_options(&[], Path::new("/u"), Path::new("/w")).is_err(), "no layers");
    }

    #[test]
    fn container_paths_are_normalized_and_listed_with_their_ancestors() {
        let cases: [(&str, &[&str]); 4] = [
            ("/", &[]),
            ("/a/b", &["/a", "/a/b"]),
            ("/a/./b/", &["/a", "/a/b"]),
            ("/a/../../b", &["/b"]),
        ];
        for (input, want) in cases {
            let got: Vec<String> = container_prefixes(Path::new(input), "t")
                .unwrap()
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            assert_eq!(got, want, "{input}");
        }
        assert!(container_prefixes(Path::new("relative/x"), "t").is_err());
    }

    #[test]
    fn the_root_is_pivoted_before_volumes_are_bound_from_the_old_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "").unwrap();
        let plan = RootfsPlan::new(&spec(dir.path())).unwrap();
        let sys = RecordingSyscall::default();
        setup_rootfs(&sys, &plan).unwrap();
        let calls = sys.calls();
        let pos = |needle: &str| {
            calls.iter().position(|c| c.starts_with(needle)).unwrap_or_else(|| panic!("no {needle} in {calls:#?}"))
        };
        let host = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(calls[1], "mount - / - MS_REC | MS_PRIVATE -");
        assert_eq!(
            calls[2],
            "mount overlay /c/rootfs overlay 0x0 lowerdir=/layers/app:/layers/base,upperdir=/c/upper,workdir=/c/work"
        );
        assert!(pos("pivot_root /c/rootfs /c/rootfs/dev/.oldroot") < pos("mount proc /proc"));
        let bind = format!("mount /dev/.oldroot{} /data/cache - MS_BIND | MS_REC -", host.display());
        assert!(pos("mkdir /data 755") < pos(&bind));
        assert!(pos(&bind) < pos("mount - /data/cache - MS_RDONLY | MS_REMOUNT | MS_BIND"));
        assert!(pos("create_file /etc/hosts") < pos(&format!("mount /dev/.oldroot{}/hosts /etc/hosts", host.display())));
        assert!(pos("mount /dev/.oldroot") < pos("umount2 /dev/.oldroot MNT_DETACH"));
        assert!(pos("umount2 /dev/.oldroot") < pos("mkdir /work/dir 755"));
        assert_eq!(calls.last().unwrap(), "chdir /work/dir");
        assert!(calls.contains(&"mknod /dev/null 20666 1:3".to_string()));
        assert!(calls.contains(&"symlink pts/ptmx /dev/ptmx".to_string()));
    }

    #[test]
    fn a_failing_working_directory_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "").unwrap();
        let spec = spec(dir.path());
        let plan = RootfsPlan::new(&spec).unwrap();
        let sys = RecordingSyscall { fail: Some(("mkdir /work".into(), Errno::ENOTDIR)), ..Default::default() };
        let f = setup_rootfs(&sys, &plan).unwrap_err();
        assert_eq!((f.stage, f.errno), (Stage::Workdir, Errno::ENOTDIR));
        assert_eq!(describe(&f, &spec), "creating working directory \"/work/dir\": Not a directory");
    }

    #[test]
    fn a_missing_volume_source_is_caught_before_cloning() {
        let mut s = spec(Path::new("/nonexistent/volume"));
        s.mounts.truncate(1);
        let err = RootfsPlan::new(&s).err().unwrap();
        assert_eq!(err.kind(), crate::runtime::ErrorKind::CreateContainer);
    }

    #[test]
    fn masked_directories_get_an_empty_read_only_tmpfs() {
        let plan = RootfsPlan::new(&ContainerSpec { rootfs: spec(Path::new("/")).rootfs, ..Default::default() }).unwrap();
        let sys = RecordingSyscall { fail: Some(("mount /dev/null /proc/acpi".into(), Errno::ENOTDIR)), ..Default::default() };
        setup_rootfs(&sys, &plan).unwrap();
        assert!(sys.calls().contains(&"mount tmpfs /proc/acpi tmpfs MS_RDONLY size=0".to_string()));
    }

    #[test]
    fn a_read_only_root_is_remounted_last() {
        let mut s = ContainerSpec { rootfs: spec(Path::new("/")).rootfs, ..Default::default() };
        s.readonly_rootfs = true;
        let sys = RecordingSyscall::default();
        setup_rootfs(&sys, &RootfsPlan::new(&s).unwrap()).unwrap();
        assert_eq!(sys.calls().last().unwrap(), "mount - / - MS_RDONLY | MS_REMOUNT | MS_BIND -");
    }
}

//! Cgroup groups for pods and containers, on cgroup v2 (unified) and v1 (legacy or hybrid).
//!
//! Written directly on the cgroupfs files instead of with `cgroups-rs` (checked at 0.5.1): that crate
//! decides v1 vs v2 by `statfs("/sys/fs/cgroup")` and hard-codes `/sys/fs/cgroup` as the v2 root, so it
//! cannot drive any other cgroup2 mount (a private mount, or `/sys/fs/cgroup/unified` on a hybrid host),
//! and it pulls in zbus (systemd D-Bus) unconditionally, nix 0.25 next to our 0.31, and thiserror 1.
//! What we need is a few dozen small file reads and writes.
//!
//! The hierarchy is chosen from `/proc/self/mountinfo` ([`layout_from_mountinfo`] is pure):
//! a cgroup2 mount at `/sys/fs/cgroup` means pure v2; otherwise v1 controllers (cpu, memory, ...)
//! mounted anywhere mean v1, whether or not a controller-less cgroup2 mount sits beside them (hybrid,
//! which crun refuses and we must not); otherwise any other cgroup2 mount is used as v2.
//!
//! Every operation is blocking (small file I/O; `kill_all` and `remove` poll for up to a few
//! seconds): async callers should use `spawn_blocking`.
//!
//! Groups are named by paths relative to the hierarchy root that must lie under the manager's
//! `root_name`, so that a wrong path can never touch (or remove) a group someone else owns.

pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no usable cgroup hierarchy: {0}")]
    NoHierarchy(String),
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cgroup controller {controller} is not available in {} (missing {file})", dir.display())]
    ControllerUnavailable {
        controller: &'static str,
        dir: PathBuf,
        file: &'static str,
    },
    #[error("unexpected content in {}: {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    #[error("cgroup {} still has processes {pids:?}", dir.display())]
    NotEmpty { dir: PathBuf, pids: Vec<i32> },
    #[error("timed out after {waited:?} {what} in {}", dir.display())]
    Timeout {
        what: &'static str,
        dir: PathBuf,
        waited: Duration,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Resource limits of one group; `None` means the kernel default (unlimited, or default weight),
/// so that re-applying limits to an existing group also lifts limits that were dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// `limits.cpu` in millicores, enforced as a CFS quota over a 100ms period.
    pub cpu_quota_millis: Option<u64>,
    /// `requests.cpu` in millicores: v1 `cpu.shares`, v2 `cpu.weight`.
    pub cpu_request_millis: Option<u64>,
    pub pids_max: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

pub trait CgroupManager: Send + Sync {
    fn version(&self) -> Version;
    /// Creates (idempotently) the group at `path`, relative to the hierarchy root and under the
    /// manager's root name (e.g. "tinykube/<node>/pod<uid>/<container>"), in every controller we use
    /// (v1: cpu, cpuacct, memory, pids, freezer, leaving name=systemd alone; v2: enabling cpu, memory
    /// and pids in the ancestors' `cgroup.subtree_control` where available), and applies `limits`.
    fn create(&self, path: &str, limits: &Limits) -> Result<Group>;
    fn open(&self, path: &str) -> Result<Option<Group>>;
}

/// One group, in every hierarchy it lives in.
#[derive(Debug, Clone)]
pub struct Group {
    path: String,
    dirs: Dirs,
}

#[derive(Debug, Clone)]
enum Dirs {
    V1(v1::Dirs),
    V2(v2::Dir),
}

impl Group {
    /// The path relative to the hierarchy root, as given to `create`/`open`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn version(&self) -> Version {
        match self.dirs {
            Dirs::V1(_) => Version::V1,
            Dirs::V2(_) => Version::V2,
        }
    }

    /// The `cgroup.procs` files a new process must be written into (one per v1 hierarchy, one on
    /// v2); the runtime writes the child's pid (or "0" from the child itself) there before exec.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match &self.dirs {
            Dirs::V1(d) => d.all().iter().map(|d| d.join(PROCS)).collect(),
            Dirs::V2(d) => vec![d.path().join(PROCS)],
        }
    }

    pub fn add_pid(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        self.procs_files()
            .iter()
            .try_for_each(|f| write_file(f, &pid))
    }

    /// Processes in this group and its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for dir in self.hierarchy_dirs() {
            for d in subtree_deepest_first(&dir)? {
                pids.extend(read_procs(&d)?);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Whether the kernel OOM-killed a process in this group (or a descendant) since creation.
    pub fn oom_killed(&self) -> Result<bool> {
        match &self.dirs {
            Dirs::V1(d) => d.oom_killed(),
            Dirs::V2(d) => d.oom_killed(),
        }
    }

    /// Reclaims the memory still charged to the (empty) group, as `remove` does first.
    pub fn release_memory(&self) {
        for dir in self.hierarchy_dirs() {
            release_memory(&dir);
        }
    }

    pub fn memory_usage(&self) -> Result<u64> {
        match &self.dirs {
            Dirs::V1(d) => d.memory_usage(),
            Dirs::V2(d) => d.memory_usage(),
        }
    }

    /// SIGKILLs everything inside, descendants included, and waits until the group is empty.
    pub fn kill_all(&self) -> Result<()> {
        match &self.dirs {
            Dirs::V1(d) => d.kill_all(self),
            Dirs::V2(d) => d.kill_all(self),
        }
    }

    /// Removes the group and its descendants (deepest first) from every hierarchy. The group must be
    /// empty (see [`Group::kill_all`]); removing a group that is already gone succeeds.
    pub fn remove(&self) -> Result<()> {
        let pids = self.pids()?;
        if !pids.is_empty() {
            return Err(Error::NotEmpty {
                dir: self.primary_dir(),
                pids,
            });
        }
        for dir in self.hierarchy_dirs() {
            for d in subtree_deepest_first(&dir)? {
                release_memory(&d);
                rmdir_with_retry(&d)?;
            }
        }
        Ok(())
    }

    /// The directory named in errors: v1's memory hierarchy, or the v2 group.
    fn primary_dir(&self) -> PathBuf {
        self.hierarchy_dirs().into_iter().next().unwrap_or_default()
    }

    fn hierarchy_dirs(&self) -> Vec<PathBuf> {
        match &self.dirs {
            Dirs::V1(d) => d.all(),
            Dirs::V2(d) => vec![d.path().to_path_buf()],
        }
    }

    /// SIGKILLs every process until none is left, optionally freezing around each round so that
    /// nothing forks between listing and killing. Shared by v1 and v2 (when `cgroup.kill` is missing).
    fn kill_loop(&self, freezer: Option<&dyn Freezer>) -> Result<()> {
        let start = Instant::now();
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() > KILL_TIMEOUT {
                return Err(Error::Timeout {
                    what: "waiting for killed processes to exit",
                    dir: self.primary_dir(),
                    waited: start.elapsed(),
                });
            }
            match freezer {
                Some(f) => {
                    f.freeze()?;
                    // Frozen tasks only act on SIGKILL once thawed, so thaw even if listing failed.
                    let killed = self.pids().map(|pids| kill_pids(&pids));
                    f.thaw()?;
                    killed?;
                }
                None => kill_pids(&pids),
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A way to stop every process of a group (v1 freezer, v2 cgroup.freeze).
trait Freezer {
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
}

/// Reads `/proc/self/mountinfo` and returns the manager for the host's hierarchy.
pub fn detect(root_name: &str) -> Result<Box<dyn CgroupManager>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    manager_for(layout_from_mountinfo(&text)?, root_name)
}

pub fn manager_for(layout: Layout, root_name: &str) -> Result<Box<dyn CgroupManager>> {
    let writable = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::W_OK)
            .map_err(|e| Error::NoHierarchy(format!("{} is not writable: {e}", p.display())))
    };
    Ok(match layout {
        Layout::Unified { mount_point } => {
            writable(&mount_point)?;
            Box::new(v2::Manager::new(mount_point, root_name)?)
        }
        Layout::Legacy(mounts) => {
            writable(&mounts.memory)?;
            writable(&mounts.cpu)?;
            Box::new(v1::Manager::new(mounts, root_name)?)
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2 mounted at `mount_point`.
    Unified { mount_point: PathBuf },
    /// cgroup v1 controllers, possibly beside a controller-less cgroup2 mount (hybrid).
    Legacy(v1::Mounts),
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Picks the hierarchy to use from the text of a `/proc/<pid>/mountinfo`.
pub fn layout_from_mountinfo(mountinfo: &str) -> Result<Layout> {
    let mut v2_mounts = Vec::new();
    let mut v1 = v1::MountsBuilder::default();
    for line in mountinfo.lines() {
        let Some(m) = parse_mountinfo_line(line) else {
            continue;
        };
        match m.fs_type {
            "cgroup2" => v2_mounts.push(m.mount_point),
            "cgroup" => v1.add(&m.mount_point, m.super_options),
            _ => {}
        }
    }
    if let Some(p) = v2_mounts
        .iter()
        .find(|p| p.as_path() == Path::new(CGROUP_ROOT))
    {
        return Ok(Layout::Unified {
            mount_point: p.clone(),
        });
    }
    let v1_missing = match v1.build() {
        Ok(mounts) => return Ok(Layout::Legacy(mounts)),
        Err(missing) => missing,
    };
    if let Some(p) = v2_mounts.into_iter().next() {
        return Ok(Layout::Unified { mount_point: p });
    }
    Err(Error::NoHierarchy(format!(
        "no cgroup2 mount and no cgroup v1 mount for the {v1_missing} controller in mountinfo"
    )))
}

struct MountInfo<'a> {
    mount_point: PathBuf,
    fs_type: &'a str,
    super_options: &'a str,
}

/// Fields: id parent major:minor root mount-point options [optional...] - fstype source super-options.
fn parse_mountinfo_line(line: &str) -> Option<MountInfo<'_>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 {
        return None;
    }
    Some(MountInfo {
        mount_point: PathBuf::from(unescape_octal(fields[4])),
        fs_type: fields.get(sep + 1)?,
        super_options: fields.get(sep + 3)?,
    })
}

/// The kernel escapes space, tab, newline and backslash in mountinfo paths as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], code) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `path` is a plain relative path at or under `root_name` and returns it normalized.
fn validate_path(root_name: &str, path: &str) -> Result<String> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.starts_with('/') {
        return Err(invalid("must be relative to the hierarchy root"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts {
        match *p {
            "" => return Err(invalid("empty path component")),
            "." | ".." => return Err(invalid("'.' and '..' are not allowed")),
            _ if p.contains('\0') => return Err(invalid("NUL byte")),
            _ => {}
        }
    }
    let root: Vec<&str> = root_name.split('/').collect();
    if !parts.starts_with(&root) {
        return Err(invalid("outside the manager's root group"));
    }
    Ok(parts.join("/"))
}

fn validate_root_name(root_name: &str) -> Result<()> {
    validate_path(root_name, root_name).map(drop)
}

/// Kubernetes' MinShares, MaxShares and CFS quota constants (pkg/kubelet/cm/helpers_linux.go).
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const CPU_PERIOD_US: u64 = 100_000;
pub const MIN_QUOTA_US: u64 = 1_000;
const SHARES_PER_CPU: u64 = 1024;
const MILLI_CPU_TO_CPU: u64 = 1000;

/// Kubernetes' MilliCPUToShares: 1 CPU = 1024 shares, clamped to the kernel's [2, 262144].
pub fn milli_cpu_to_shares(milli_cpu: u64) -> u64 {
    (milli_cpu.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU).clamp(MIN_SHARES, MAX_SHARES)
}

/// Kubernetes' MilliCPUToQuota over a 100ms period, in microseconds; 0 means no quota.
pub fn milli_cpu_to_quota(milli_cpu: u64) -> u64 {
    if milli_cpu == 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(CPU_PERIOD_US) / MILLI_CPU_TO_CPU).max(MIN_QUOTA_US)
}

/// Kubernetes' cpuSharesToCPUWeight (KEP-2254): maps shares [2, 262144] onto weight [1, 10000].
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The quota to enforce for `limits.cpu`, if any.
fn cpu_quota_us(limits: &Limits) -> Option<u64> {
    limits
        .cpu_quota_millis
        .map(milli_cpu_to_quota)
        .filter(|q| *q > 0)
}

const PROCS: &str = "cgroup.procs";
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
const RMDIR_ATTEMPTS: u32 = 10;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// cgroupfs parses each write(2) separately, so the value goes out in one call.
fn write_file(path: &Path, value: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    f.write_all(value.as_bytes()).map_err(io_err("write", path))
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io_err("read", path))
}

/// Like `read_file`, but a missing file (controller not enabled, group gone) is `None`.
fn read_file_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Writes a limit file: a missing file is an error when the limit is asked for (`required`), and
/// skipped when we are only resetting it to the kernel default.
fn write_limit(
    dir: &Path,
    file: &'static str,
    controller: &'static str,
    value: &str,
    required: bool,
) -> Result<()> {
    let path = dir.join(file);
    match write_file(&path, value) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            if required {
                Err(Error::ControllerUnavailable {
                    controller,
                    dir: dir.to_path_buf(),
                    file,
                })
            } else {
                Ok(())
            }
        }
        r => r,
    }
}

fn parse_u64(path: &Path, content: &str) -> Result<u64> {
    content.trim().parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        content: content.to_string(),
    })
}

/// The value of `key` in a flat keyed file ("key value" lines, e.g. memory.events).
fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

fn read_procs(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join(PROCS);
    let Some(content) = read_file_opt(&path)? else {
        return Ok(Vec::new());
    };
    content
        .split_whitespace()
        .map(|p| {
            p.parse().map_err(|_| Error::Parse {
                path: path.clone(),
                content: content.clone(),
            })
        })
        .collect()
}

/// `dir` and every group below it, children before parents; empty if `dir` is gone.
fn subtree_deepest_first(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        if entry.file_type().map_err(io_err("stat", dir))?.is_dir() {
            out.extend(subtree_deepest_first(&entry.path())?);
        }
    }
    out.push(dir.to_path_buf());
    Ok(out)
}

/// Reclaims what is still charged to an empty memory group before it is removed.
///
/// A removed memory cgroup lives on, offline, for as long as pages are charged to it: the page
/// cache its processes filled, and whatever the kernel freed late. On the development machine a
/// burst of 20 pods deleted together left 15 such groups behind for good, and they pile up with
/// every pod. v1's `memory.force_empty` and v2's `memory.reclaim` give the charges back first.
/// Not a hierarchy's memory directory, or nothing to reclaim: nothing happens.
fn release_memory(dir: &Path) {
    let force_empty = dir.join("memory.force_empty");
    if force_empty.exists() {
        let _ = std::fs::write(force_empty, "0");
        return;
    }
    let current = std::fs::read_to_string(dir.join("memory.current")).ok().and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(bytes) = current.filter(|b| *b > 0) {
        // Asks for everything; the kernel answers EAGAIN when it could not get all of it.
        let _ = std::fs::write(dir.join("memory.reclaim"), bytes.to_string());
    }
}

/// The kernel answers EBUSY for a moment after the last process left (css teardown is async).
fn rmdir_with_retry(dir: &Path) -> Result<()> {
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(POLL_INTERVAL * attempt);
            }
            Err(e) => return Err(io_err("remove", dir)(e)),
        }
    }
}

/// Creates `dir` and its missing parents; existing directories are fine.
fn mkdir_p(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))
}

/// Makes `dir` (and its parents); true when `dir` itself is new. A new group has the kernel's
/// default settings, which `apply` then need not write.
fn make_group_dir(dir: &Path) -> Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                mkdir_p(parent)?;
            }
            match std::fs::create_dir(dir) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io_err("create", dir)(e)),
            }
        }
        Err(e) => Err(io_err("create", dir)(e)),
    }
}

/// One setting of a group: skipped when the group is new and `value` is what the kernel gives a
/// new group (`default`), so a pod without limits costs no writes.
struct Setting<'a> {
    file: &'static str,
    controller: &'static str,
    value: &'a str,
    required: bool,
    default: &'static str,
}

impl Setting<'_> {
    fn write(&self, dir: &Path, fresh: bool) -> Result<()> {
        if fresh && self.value == self.default {
            return Ok(());
        }
        write_limit(dir, self.file, self.controller, self.value, self.required)
    }
}

fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        // ESRCH: it exited meanwhile, which is what we want anyway.
        if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL)
            && e != Errno::ESRCH
        {
            tracing::warn!(pid, error = %e, "cannot SIGKILL process in cgroup");
        }
    }
}

/// Polls `done` until it holds or `timeout` passes; returns whether it held.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() > timeout {
            return Ok(false);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

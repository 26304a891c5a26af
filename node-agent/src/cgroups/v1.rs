//! cgroup v1 (legacy, or hybrid beside a controller-less cgroup2 mount): a group is one directory
//! per hierarchy we join. We join cpu, cpuacct, memory and pids for limits and accounting, and
//! freezer so that `kill_all` can stop forks while it kills; cpuset is left out (a new v1 cpuset
//! group needs cpus/mems copied in before it accepts tasks) and name=systemd is systemd's.

use std::path::{Path, PathBuf};

use super::{
    CPU_PERIOD_US, CgroupManager, Dirs as GroupDirs, Error, Freezer, Group, Limits, Result, Setting,
    Version, cpu_quota_us, keyed_value, make_group_dir, milli_cpu_to_shares, parse_u64, read_file,
    read_file_opt, subtree_deepest_first, validate_path, validate_root_name, wait_until,
    write_file, write_limit,
};

/// Mount points of the v1 hierarchies we use; a co-mounted "cpu,cpuacct" gives both the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub cpu: PathBuf,
    pub cpuacct: Option<PathBuf>,
    pub memory: PathBuf,
    pub pids: Option<PathBuf>,
    pub freezer: Option<PathBuf>,
}

#[derive(Default)]
pub(super) struct MountsBuilder {
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    freezer: Option<PathBuf>,
}

impl MountsBuilder {
    /// Records a `cgroup` mount; the first mount of a hierarchy wins (later ones are usually bind
    /// mounts of the same hierarchy).
    pub(super) fn add(&mut self, mount_point: &Path, super_options: &str) {
        for opt in super_options.split(',') {
            let slot = match opt {
                "cpu" => &mut self.cpu,
                "cpuacct" => &mut self.cpuacct,
                "memory" => &mut self.memory,
                "pids" => &mut self.pids,
                "freezer" => &mut self.freezer,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(mount_point.to_path_buf());
            }
        }
    }

    /// The mounts, or the name of a required controller that is missing.
    pub(super) fn build(self) -> Result<Mounts, &'static str> {
        Ok(Mounts {
            cpu: self.cpu.ok_or("cpu")?,
            memory: self.memory.ok_or("memory")?,
            cpuacct: self.cpuacct,
            pids: self.pids,
            freezer: self.freezer,
        })
    }
}

pub struct Manager {
    mounts: Mounts,
    root_name: String,
}

impl Manager {
    pub fn new(mounts: Mounts, root_name: &str) -> Result<Self> {
        validate_root_name(root_name)?;
        Ok(Self {
            mounts,
            root_name: root_name.to_string(),
        })
    }

    fn dirs(&self, rel: &str) -> Dirs {
        let m = &self.mounts;
        Dirs {
            cpu: m.cpu.join(rel),
            cpuacct: m.cpuacct.as_ref().map(|p| p.join(rel)),
            memory: m.memory.join(rel),
            pids: m.pids.as_ref().map(|p| p.join(rel)),
            freezer: m.freezer.as_ref().map(|p| p.join(rel)),
        }
    }
}

impl CgroupManager for Manager {
    fn version(&self) -> Version {
        Version::V1
    }

    fn create(&self, path: &str, limits: &Limits) -> Result<Group> {
        let rel = validate_path(&self.root_name, path)?;
        let dirs = self.dirs(&rel);
        let mut fresh = true;
        for dir in dirs.all() {
            fresh &= make_group_dir(&dir)?;
        }
        dirs.apply(limits, fresh)?;
        Ok(Group {
            path: rel,
            dirs: GroupDirs::V1(dirs),
        })
    }

    fn open(&self, path: &str) -> Result<Option<Group>> {
        let rel = validate_path(&self.root_name, path)?;
        let dirs = self.dirs(&rel);
        let exists = dirs.memory.is_dir();
        Ok(exists.then_some(Group {
            path: rel,
            dirs: GroupDirs::V1(dirs),
        }))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Dirs {
    cpu: PathBuf,
    cpuacct: Option<PathBuf>,
    memory: PathBuf,
    pids: Option<PathBuf>,
    freezer: Option<PathBuf>,
}

impl Dirs {
    /// The group's directory in each distinct hierarchy (co-mounted controllers share one).
    pub(super) fn all(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        let candidates = [Some(&self.memory), Some(&self.cpu)]
            .into_iter()
            .chain([&self.cpuacct, &self.pids, &self.freezer].map(Option::as_ref));
        for dir in candidates.flatten() {
            if !out.contains(dir) {
                out.push(dir.clone());
            }
        }
        out
    }

    /// Writes `limits`; `fresh`: the group was just made, so settings at the kernel's defaults
    /// are already in place.
    fn apply(&self, limits: &Limits, fresh: bool) -> Result<()> {
        if !(fresh && limits.memory_bytes.is_none()) {
            self.apply_memory(limits.memory_bytes)?;
        }

        let cpu = |file, value: &str, required, default| Setting { file, controller: "cpu", value, required, default }.write(&self.cpu, fresh);
        if let Some(quota) = cpu_quota_us(limits) {
            cpu("cpu.cfs_period_us", &CPU_PERIOD_US.to_string(), true, "100000")?;
            cpu("cpu.cfs_quota_us", &quota.to_string(), true, "-1")?;
        } else {
            cpu("cpu.cfs_quota_us", "-1", false, "-1")?;
        }
        // 1024 is the kernel's default weight for a group without a request.
        let shares = limits.cpu_request_millis.map_or(1024, milli_cpu_to_shares);
        cpu("cpu.shares", &shares.to_string(), true, "1024")?;

        let pids_max = limits.pids_max.map(|n| n.to_string());
        match (&self.pids, pids_max) {
            (Some(dir), max) => Setting { file: "pids.max", controller: "pids", value: max.as_deref().unwrap_or("max"), required: max.is_some(), default: "max" }.write(dir, fresh),
            (None, Some(_)) => Err(Error::ControllerUnavailable {
                controller: "pids",
                dir: PathBuf::from("(no v1 pids hierarchy mounted)"),
                file: "pids.max",
            }),
            (None, None) => Ok(()),
        }
    }

    /// Sets memory.limit_in_bytes and, where swap accounting exists, memory.memsw.limit_in_bytes
    /// to the same value so the group cannot swap past its limit (Kubernetes' NoSwap).
    fn apply_memory(&self, bytes: Option<u64>) -> Result<()> {
        let value = bytes.map_or_else(|| "-1".to_string(), |b| b.to_string());
        let set_limit = || {
            write_limit(
                &self.memory,
                "memory.limit_in_bytes",
                "memory",
                &value,
                true,
            )
        };
        let memsw = self.memory.join("memory.memsw.limit_in_bytes");
        let Some(current) = read_file_opt(&memsw)? else {
            return set_limit();
        };
        // The kernel rejects memsw below the memory limit: raise memsw first, lower it last.
        if bytes.unwrap_or(u64::MAX) > parse_u64(&memsw, &current)? {
            write_file(&memsw, &value)?;
            set_limit()
        } else {
            set_limit()?;
            write_file(&memsw, &value)
        }
    }

    /// v1 counts an OOM kill only in the victim's own group, so descendants are checked too.
    pub(super) fn oom_killed(&self) -> Result<bool> {
        for dir in subtree_deepest_first(&self.memory)? {
            let control = dir.join("memory.oom_control");
            let Some(content) = read_file_opt(&control)? else {
                continue;
            };
            let count = match keyed_value(&content, "oom_kill") {
                Some(n) => n,
                // Kernels before 4.13 have no kill counter: hitting the limit is the best sign left.
                None => {
                    let failcnt = dir.join("memory.failcnt");
                    parse_u64(&failcnt, &read_file(&failcnt)?)?
                }
            };
            if count > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(super) fn memory_usage(&self) -> Result<u64> {
        let path = self.memory.join("memory.usage_in_bytes");
        parse_u64(&path, &read_file(&path)?)
    }

    pub(super) fn kill_all(&self, group: &Group) -> Result<()> {
        match &self.freezer {
            Some(dir) => group.kill_loop(Some(&V1Freezer(dir))),
            None => group.kill_loop(None),
        }
    }
}

/// The v1 freezer; freezing a group freezes its descendants too.
struct V1Freezer<'a>(&'a Path);

const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl Freezer for V1Freezer<'_> {
    fn freeze(&self) -> Result<()> {
        let state = self.0.join("freezer.state");
        // FREEZING can linger on tasks in uninterruptible sleep; writing FROZEN again retries them
        // (as runc does). If it never settles we kill anyway: SIGKILL lands at thaw.
        let frozen = wait_until(FREEZE_TIMEOUT, || {
            write_file(&state, "FROZEN")?;
            Ok(read_file(&state)?.trim() == "FROZEN")
        })?;
        if !frozen {
            tracing::debug!(dir = %self.0.display(), "cgroup did not reach FROZEN; killing anyway");
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        write_file(&self.0.join("freezer.state"), "THAWED")
    }
}

//! cgroup v2: one directory per group. A controller's files appear in a group only once its
//! parent lists the controller in `cgroup.subtree_control`, so `create` enables cpu, memory and pids
//! down the path. The leaf itself gets no subtree controllers: v2 forbids processes in a group
//! that distributes controllers to children, so a pod group that has container children must not
//! hold processes itself (put the infra process in a child of its own).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    CPU_PERIOD_US, CgroupManager, Dirs, Error, Freezer, Group, KILL_TIMEOUT, Limits, POLL_INTERVAL,
    Result, Version, cpu_quota_us, cpu_shares_to_weight, io_err, keyed_value, milli_cpu_to_shares,
    parse_u64, read_file, read_file_opt, subtree_deepest_first, validate_path, validate_root_name,
    wait_until, write_file, Setting,
};

const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

pub struct Manager {
    mount_point: PathBuf,
    root_name: String,
}

impl Manager {
    /// A manager for the cgroup2 hierarchy mounted at `mount_point`.
    pub fn new(mount_point: impl Into<PathBuf>, root_name: &str) -> Result<Self> {
        validate_root_name(root_name)?;
        Ok(Self {
            mount_point: mount_point.into(),
            root_name: root_name.to_string(),
        })
    }
}

impl CgroupManager for Manager {
    fn version(&self) -> Version {
        Version::V2
    }

    fn create(&self, path: &str, limits: &Limits) -> Result<Group> {
        let rel = validate_path(&self.root_name, path)?;
        let mut dir = self.mount_point.clone();
        let mut fresh = false;
        for component in rel.split('/') {
            enable_controllers(&dir)?;
            dir.push(component);
            fresh = match std::fs::create_dir(&dir) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(io_err("create", &dir)(e)),
            };
        }
        let dir = Dir(dir);
        dir.apply(limits, fresh)?;
        Ok(Group {
            path: rel,
            dirs: Dirs::V2(dir),
        })
    }

    fn open(&self, path: &str) -> Result<Option<Group>> {
        let rel = validate_path(&self.root_name, path)?;
        let dir = self.mount_point.join(&rel);
        Ok(dir.is_dir().then_some(Group {
            path: rel,
            dirs: Dirs::V2(Dir(dir)),
        }))
    }
}

/// Enables those of our controllers that `dir` has but does not yet hand to its children. One
/// write per controller, so that one the kernel refuses does not block the others' error message.
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = read_file_opt(&dir.join("cgroup.controllers"))?.unwrap_or_default();
    let subtree = dir.join("cgroup.subtree_control");
    let enabled = read_file_opt(&subtree)?.unwrap_or_default();
    for c in CONTROLLERS {
        let has = |list: &str| list.split_whitespace().any(|x| x == c);
        if has(&available) && !has(&enabled) {
            write_file(&subtree, &format!("+{c}"))?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(super) struct Dir(PathBuf);

impl Dir {
    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `limits`; `fresh`: the group was just made, so settings at the kernel's defaults
    /// are already in place.
    fn apply(&self, limits: &Limits, fresh: bool) -> Result<()> {
        let set = |file, controller, value: &str, required, default| Setting { file, controller, value, required, default }.write(&self.0, fresh);
        let memory = limits.memory_bytes.map(|b| b.to_string());
        set("memory.max", "memory", memory.as_deref().unwrap_or("max"), memory.is_some(), "max")?;
        // Kubernetes' NoSwap: a limited group may not swap; swap files exist only with swap support.
        let swap = if memory.is_some() { "0" } else { "max" };
        set("memory.swap.max", "memory", swap, false, "max")?;

        let quota = cpu_quota_us(limits);
        let quota_text = quota.map_or_else(|| "max".to_string(), |q| q.to_string());
        set("cpu.max", "cpu", &format!("{quota_text} {CPU_PERIOD_US}"), quota.is_some(), "max 100000")?;
        // 100 is the kernel's default weight for a group without a request.
        let weight = limits.cpu_request_millis.map(|m| cpu_shares_to_weight(milli_cpu_to_shares(m)));
        set("cpu.weight", "cpu", &weight.unwrap_or(100).to_string(), weight.is_some(), "100")?;

        let pids = limits.pids_max.map(|n| n.to_string());
        set("pids.max", "pids", pids.as_deref().unwrap_or("max"), pids.is_some(), "max")
    }

    /// memory.events counts hierarchically unless mounted with memory_localevents, so descendants
    /// are checked too. Without the memory controller nothing can have been OOM-killed for us.
    pub(super) fn oom_killed(&self) -> Result<bool> {
        for dir in subtree_deepest_first(&self.0)? {
            let events = read_file_opt(&dir.join("memory.events"))?.unwrap_or_default();
            if keyed_value(&events, "oom_kill").is_some_and(|n| n > 0) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(super) fn memory_usage(&self) -> Result<u64> {
        let path = self.0.join("memory.current");
        match read_file_opt(&path)? {
            Some(content) => parse_u64(&path, &content),
            None => Err(Error::ControllerUnavailable {
                controller: "memory",
                dir: self.0.clone(),
                file: "memory.current",
            }),
        }
    }

    /// cgroup.kill (Linux 5.14) kills the whole subtree atomically, forks in flight included;
    /// older kernels get the freeze-kill-thaw loop.
    pub(super) fn kill_all(&self, group: &Group) -> Result<()> {
        let kill_file = self.0.join("cgroup.kill");
        if !kill_file.exists() {
            return self.kill_with_freezer(group);
        }
        let start = Instant::now();
        loop {
            if group.pids()?.is_empty() {
                return Ok(());
            }
            if start.elapsed() > KILL_TIMEOUT {
                return Err(Error::Timeout {
                    what: "waiting for killed processes to exit",
                    dir: self.0.clone(),
                    waited: start.elapsed(),
                });
            }
            write_file(&kill_file, "1")?;
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn kill_with_freezer(&self, group: &Group) -> Result<()> {
        if self.0.join("cgroup.freeze").exists() {
            group.kill_loop(Some(&V2Freezer(&self.0)))
        } else {
            group.kill_loop(None)
        }
    }
}

/// cgroup.freeze (Linux 5.2); like v1, it freezes descendants too.
struct V2Freezer<'a>(&'a Path);

const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl Freezer for V2Freezer<'_> {
    fn freeze(&self) -> Result<()> {
        write_file(&self.0.join("cgroup.freeze"), "1")?;
        let events = self.0.join("cgroup.events");
        let frozen = wait_until(FREEZE_TIMEOUT, || {
            Ok(keyed_value(&read_file(&events)?, "frozen") == Some(1))
        })?;
        if !frozen {
            tracing::debug!(dir = %self.0.display(), "cgroup did not report frozen; killing anyway");
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        write_file(&self.0.join("cgroup.freeze"), "0")
    }
}

#[cfg(test)]
mod tests {
    //! The v2 code path on a private cgroup2 mount. On a hybrid host the unified hierarchy has no
    //! controllers, so limits are only checked where it has them (pure v2); creation, procs,
    //! both kill strategies and removal are checked everywhere.

    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;

    use nix::mount::{MntFlags, MsFlags, mount, umount2};

    use super::*;
    use crate::cgroups::tests::{
        Scratch, read_back, running_as_root, spawn_in, spawn_sleep, unique_root,
    };

    /// cgroup2 mounted on a temporary directory, unmounted on drop.
    struct PrivateMount(tempfile::TempDir);

    impl PrivateMount {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            mount(
                Some("cgroup2"),
                dir.path(),
                Some("cgroup2"),
                MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount cgroup2");
            Self(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn has_controller(&self, name: &str) -> bool {
            std::fs::read_to_string(self.path().join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == name))
        }
    }

    impl Drop for PrivateMount {
        fn drop(&mut self) {
            if let Err(e) = umount2(self.path(), MntFlags::MNT_DETACH) {
                eprintln!("unmount {}: {e}", self.path().display());
            }
        }
    }

    fn scratch(mount: &PrivateMount, test: &str) -> Scratch {
        let root = unique_root(test);
        let mgr = Manager::new(mount.path(), &root).expect("manager");
        Scratch::with(Box::new(mgr), root)
    }

    fn dir_of(group: &Group) -> &Dir {
        match &group.dirs {
            Dirs::V2(d) => d,
            Dirs::V1(_) => panic!("not a v2 group"),
        }
    }

    #[test]
    fn v2_groups_nest_take_processes_and_are_removed_deepest_first() {
        if !running_as_root() {
            return;
        }
        let mount = PrivateMount::new();
        let s = scratch(&mount, "v2-nest");
        let pod = s.create("pod1", &Limits::default());
        let c = s.create("pod1/c1", &Limits::default());
        assert_eq!(c.version(), Version::V2);
        assert_eq!(
            c.procs_files(),
            vec![mount.path().join(&s.root).join("pod1/c1/cgroup.procs")]
        );

        let mut child = spawn_sleep();
        let pid = i32::try_from(child.id()).expect("pid");
        c.add_pid(pid).expect("add pid");
        assert_eq!(pod.pids().expect("pids"), vec![pid]);
        assert!(!c.oom_killed().expect("oom_killed"));

        pod.kill_all().expect("kill_all via cgroup.kill");
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
        pod.remove().expect("remove");
        assert!(!dir_of(&c).path().exists());
        assert!(!dir_of(&pod).path().exists());
        pod.remove().expect("remove again");
    }

    #[test]
    fn v2_freeze_kill_thaw_empties_a_group_without_cgroup_kill() {
        if !running_as_root() {
            return;
        }
        let mount = PrivateMount::new();
        let s = scratch(&mount, "v2-freeze");
        let pod = s.create("pod1", &Limits::default());
        let c = s.create("pod1/c1", &Limits::default());
        let mut child = spawn_in(&c, "sh", &["-c", "sleep 60 & sleep 60 & wait"]);
        let populated = super::super::wait_until(std::time::Duration::from_secs(5), || {
            Ok(pod.pids()?.len() == 3)
        });
        assert!(populated.expect("poll"), "pids: {:?}", pod.pids());
        dir_of(&pod)
            .kill_with_freezer(&pod)
            .expect("freeze, kill, thaw");
        assert!(pod.pids().expect("pids").is_empty());
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
        assert_eq!(read_back(&pod, "cgroup.freeze"), "0", "thawed afterwards");
    }

    #[test]
    fn v2_limits_need_their_controllers() {
        if !running_as_root() {
            return;
        }
        let mount = PrivateMount::new();
        let s = scratch(&mount, "v2-limits");
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            cpu_quota_millis: Some(1500),
            cpu_request_millis: Some(100),
            pids_max: Some(7),
        };
        let wanted = ["memory", "cpu", "pids"];
        if !wanted.iter().all(|c| mount.has_controller(c)) {
            // Hybrid host: the controllers are bound to v1, so a limit is a clear error.
            let err = s
                .mgr
                .create(&format!("{}/pod1", s.root), &limits)
                .expect_err("no controllers on this cgroup2 hierarchy");
            assert!(matches!(err, Error::ControllerUnavailable { .. }), "{err}");
            return;
        }
        let g = s.create("pod1/c1", &limits);
        assert_eq!(read_back(&g, "memory.max"), (64u64 << 20).to_string());
        assert_eq!(read_back(&g, "cpu.max"), "150000 100000");
        assert_eq!(read_back(&g, "cpu.weight"), "4");
        assert_eq!(read_back(&g, "pids.max"), "7");
        let parent_subtree = mount
            .path()
            .join(&s.root)
            .join("pod1/cgroup.subtree_control");
        let enabled = std::fs::read_to_string(parent_subtree).expect("subtree_control");
        for c in wanted {
            assert!(
                enabled.split_whitespace().any(|x| x == c),
                "{c} in {enabled}"
            );
        }
    }
}

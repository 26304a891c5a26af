//! Pure tests (conversions, mountinfo detection, path checks) and tests against the host's real
//! hierarchy through `detect` (they need root and are skipped otherwise). Every real-kernel test
//! works under its own root group, removed on drop, panics included.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::*;

#[test]
fn milli_cpu_to_shares_matches_kubernetes() {
    // pkg/kubelet/cm/helpers_linux_test.go TestMilliCPUToShares (negative inputs do not apply to u64).
    let cases = [
        (0, MIN_SHARES),
        (1, MIN_SHARES),
        (2, MIN_SHARES),
        (3, 3),
        (5, 5),
        (10, 10),
        (100, 102),
        (200, 204),
        (500, 512),
        (1000, 1024),
        (2000, 2048),
        (255_999, 255_999 * 1024 / 1000),
        (256_000, MAX_SHARES),
        (256_001, MAX_SHARES),
        (1_000_000, MAX_SHARES),
        (u64::MAX, MAX_SHARES),
    ];
    for (milli, shares) in cases {
        assert_eq!(milli_cpu_to_shares(milli), shares, "milliCPU {milli}");
    }
}

#[test]
fn milli_cpu_to_quota_matches_kubernetes() {
    // pkg/kubelet/cm/helpers_linux_test.go TestMilliCPUToQuota with the default 100ms period.
    let cases = [
        (0, 0),
        (5, 1000),
        (9, 1000),
        (10, 1000),
        (200, 20_000),
        (500, 50_000),
        (1000, 100_000),
        (1500, 150_000),
    ];
    for (milli, quota) in cases {
        assert_eq!(milli_cpu_to_quota(milli), quota, "milliCPU {milli}");
    }
}

#[test]
fn cpu_shares_to_weight_matches_kubernetes() {
    // pkg/kubelet/cm/cgroup_manager_linux_test.go TestCpuSharesToCPUWeight, plus the round-trip
    // comments of TestCPUSharesEqualAfterV2RoundTrip (51 -> 2, 102 -> 4) and out-of-range inputs.
    let cases = [
        (2, 1),
        (3, 1),
        (4, 1),
        (28, 1),
        (29, 2),
        (51, 2),
        (102, 4),
        (245, 10),
        (1024, 39),
        (262_144, 10_000),
        (0, 1),
        (u64::MAX, 10_000),
    ];
    for (shares, weight) in cases {
        assert_eq!(cpu_shares_to_weight(shares), weight, "shares {shares}");
    }
}

const PURE_V2: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
";

const HYBRID_THIS_HOST: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const HYBRID_SYSTEMD: &str = "\
25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
35 25 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,freezer
";

const PURE_V1: &str = "\
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:5 - tmpfs tmpfs ro,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpuacct,cpu
29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,memory
";

fn v1(
    cpu: &str,
    cpuacct: Option<&str>,
    memory: &str,
    pids: Option<&str>,
    freezer: Option<&str>,
) -> Layout {
    Layout::Legacy(v1::Mounts {
        cpu: cpu.into(),
        cpuacct: cpuacct.map(PathBuf::from),
        memory: memory.into(),
        pids: pids.map(PathBuf::from),
        freezer: freezer.map(PathBuf::from),
    })
}

#[test]
fn layout_is_chosen_from_mountinfo() {
    let unified = |p: &str| Layout::Unified {
        mount_point: p.into(),
    };
    let cases: Vec<(&str, String, Layout)> = vec![
        ("pure v2", PURE_V2.into(), unified("/sys/fs/cgroup")),
        (
            "hybrid with separate cpu and cpuacct",
            HYBRID_THIS_HOST.into(),
            v1(
                "/sys/fs/cgroup/cpu",
                Some("/sys/fs/cgroup/cpuacct"),
                "/sys/fs/cgroup/memory",
                Some("/sys/fs/cgroup/pids"),
                Some("/sys/fs/cgroup/freezer"),
            ),
        ),
        (
            "systemd hybrid with co-mounted cpu,cpuacct",
            HYBRID_SYSTEMD.into(),
            v1(
                "/sys/fs/cgroup/cpu,cpuacct",
                Some("/sys/fs/cgroup/cpu,cpuacct"),
                "/sys/fs/cgroup/memory",
                Some("/sys/fs/cgroup/pids"),
                Some("/sys/fs/cgroup/freezer"),
            ),
        ),
        (
            "pure v1 without pids and freezer",
            PURE_V1.into(),
            v1(
                "/sys/fs/cgroup/cpu,cpuacct",
                Some("/sys/fs/cgroup/cpu,cpuacct"),
                "/sys/fs/cgroup/memory",
                None,
                None,
            ),
        ),
        (
            "cgroup2 only elsewhere",
            "40 1 0:38 / /run/cg rw - cgroup2 none rw\n".into(),
            unified("/run/cg"),
        ),
        (
            "escaped mount point",
            "40 1 0:38 / /mnt/my\\040cgroup rw - cgroup2 none rw\n".into(),
            unified("/mnt/my cgroup"),
        ),
        (
            "v2 at the root wins over v1 mounts elsewhere",
            format!("{PURE_V1}{PURE_V2}"),
            unified("/sys/fs/cgroup"),
        ),
        (
            "optional fields and malformed lines",
            "garbage\n1 2 3\n26 22 0:23 / /sys/fs/cgroup rw shared:9 master:1 - cgroup2 cgroup2 rw\n"
                .into(),
            unified("/sys/fs/cgroup"),
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(layout_from_mountinfo(&text).ok(), Some(want), "{name}");
    }
}

#[test]
fn layout_detection_fails_clearly_without_a_usable_hierarchy() {
    let cases = [
        (
            "no cgroup mounts",
            "28 1 254:1 / / rw - ext4 /dev/vda1 rw\n",
        ),
        (
            "v1 without memory",
            "28 24 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
        ),
        ("empty", ""),
    ];
    for (name, text) in cases {
        let err = layout_from_mountinfo(text).expect_err(name);
        assert!(matches!(err, Error::NoHierarchy(_)), "{name}: {err}");
    }
}

#[test]
fn group_paths_must_be_plain_and_under_the_root_name() {
    let cases = [
        ("tinykube", Some("tinykube")),
        ("tinykube/node/pod1/c", Some("tinykube/node/pod1/c")),
        ("/tinykube/x", None),
        ("tinykube/../system.slice", None),
        ("tinykube/./x", None),
        ("tinykube//x", None),
        ("tinykube/x/", None),
        ("tinykube2/x", None),
        ("system.slice", None),
        ("", None),
        ("tinykube/a\0b", None),
    ];
    for (path, want) in cases {
        assert_eq!(
            validate_path("tinykube", path).ok().as_deref(),
            want,
            "{path:?}"
        );
    }
}

#[test]
fn octal_escapes_in_mountinfo_are_decoded() {
    let cases = [
        ("/a\\040b", "/a b"),
        ("/a\\011b\\012", "/a\tb\n"),
        ("/back\\134slash", "/back\\slash"),
        ("/trailing\\", "/trailing\\"),
        ("/bad\\9x9", "/bad\\9x9"),
    ];
    for (raw, want) in cases {
        assert_eq!(unescape_octal(raw), want, "{raw}");
    }
}

// ---- real-kernel helpers, shared with the v2 tests ----

pub(crate) fn running_as_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: cgroup tests need root");
    }
    root
}

/// A test's own root group; on drop everything below it is killed and removed.
pub(crate) struct Scratch {
    pub(crate) mgr: Box<dyn CgroupManager>,
    pub(crate) root: String,
}

impl Scratch {
    pub(crate) fn on_host(test: &str) -> Self {
        let root = unique_root(test);
        let mgr = detect(&root).expect("detect the host's cgroup hierarchy");
        Self::with(mgr, root)
    }

    pub(crate) fn with(mgr: Box<dyn CgroupManager>, root: String) -> Self {
        mgr.create(&root, &Limits::default())
            .expect("create the test's root group");
        Self { mgr, root }
    }

    pub(crate) fn create(&self, rel: &str, limits: &Limits) -> Group {
        self.mgr
            .create(&format!("{}/{rel}", self.root), limits)
            .expect("create group")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(Some(g)) = self.mgr.open(&self.root) {
            let cleaned = g.kill_all().and_then(|()| g.remove());
            if let Err(e) = cleaned {
                eprintln!("cleanup of {} failed: {e}", self.root);
            }
        }
    }
}

pub(crate) fn unique_root(test: &str) -> String {
    format!("tinykube-test-{}-{test}", std::process::id())
}

/// Spawns a command that joins `group` itself before exec, the way the runtime will: the child
/// writes "0" (itself) into every procs file.
pub(crate) fn spawn_in(group: &Group, program: &str, args: &[&str]) -> Child {
    let files: Vec<CString> = group
        .procs_files()
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()).expect("no NUL in cgroup path"))
        .collect();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (open, write, close) on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            for f in &files {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn child in cgroup")
}

pub(crate) fn spawn_sleep() -> Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

/// The first of the group's directories (one per v1 hierarchy) that has `file`.
pub(crate) fn group_file(group: &Group, file: &str) -> PathBuf {
    group
        .procs_files()
        .iter()
        .filter_map(|p| p.parent().map(|d| d.join(file)))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no {file} in {}", group.path()))
}

pub(crate) fn read_back(group: &Group, file: &str) -> String {
    std::fs::read_to_string(group_file(group, file))
        .expect("read cgroup file")
        .trim()
        .to_string()
}

fn killed_by_sigkill(child: &mut Child) -> bool {
    child.wait().expect("wait child").signal() == Some(libc::SIGKILL)
}

// ---- real-kernel tests on the host's hierarchy ----

#[test]
fn create_applies_limits_that_read_back_and_recreate_resets_them() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("limits");
    let limits = Limits {
        memory_bytes: Some(64 << 20),
        cpu_quota_millis: Some(500),
        cpu_request_millis: Some(500),
        pids_max: Some(42),
    };
    let g = s.create("pod1/c1", &limits);
    assert_eq!(g.path(), format!("{}/pod1/c1", s.root));
    match g.version() {
        Version::V1 => {
            assert_eq!(
                read_back(&g, "memory.limit_in_bytes"),
                (64u64 << 20).to_string()
            );
            assert_eq!(read_back(&g, "cpu.cfs_period_us"), "100000");
            assert_eq!(read_back(&g, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read_back(&g, "cpu.shares"), "512");
        }
        Version::V2 => {
            assert_eq!(read_back(&g, "memory.max"), (64u64 << 20).to_string());
            assert_eq!(read_back(&g, "cpu.max"), "50000 100000");
            assert_eq!(
                read_back(&g, "cpu.weight"),
                cpu_shares_to_weight(512).to_string()
            );
        }
    }
    assert_eq!(read_back(&g, "pids.max"), "42");

    // Idempotent: creating again with no limits lifts them instead of failing.
    let g = s.create("pod1/c1", &Limits::default());
    assert_eq!(read_back(&g, "pids.max"), "max");
    match g.version() {
        Version::V1 => {
            assert_eq!(read_back(&g, "cpu.cfs_quota_us"), "-1");
            assert_eq!(read_back(&g, "cpu.shares"), "1024");
            let mem: u64 = read_back(&g, "memory.limit_in_bytes")
                .parse()
                .expect("number");
            assert!(mem > 1 << 60, "memory limit lifted, got {mem}");
        }
        Version::V2 => {
            assert_eq!(read_back(&g, "memory.max"), "max");
            assert_eq!(read_back(&g, "cpu.max"), "max 100000");
        }
    }
}

#[test]
fn a_new_group_starts_with_the_kernel_defaults_that_create_leaves_unwritten() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("defaults");
    // Only a CPU request: the one setting that is not the kernel's default.
    let g = s.create("pod1/c1", &Limits { cpu_request_millis: Some(500), ..Limits::default() });
    assert_eq!(read_back(&g, "pids.max"), "max");
    match g.version() {
        Version::V1 => {
            assert_eq!(read_back(&g, "cpu.shares"), "512");
            assert_eq!(read_back(&g, "cpu.cfs_quota_us"), "-1");
            let mem: u64 = read_back(&g, "memory.limit_in_bytes").parse().expect("number");
            assert!(mem > 1 << 60, "no memory limit, got {mem}");
        }
        Version::V2 => {
            assert_eq!(read_back(&g, "cpu.weight"), cpu_shares_to_weight(512).to_string());
            assert_eq!(read_back(&g, "cpu.max"), "max 100000");
            assert_eq!(read_back(&g, "memory.max"), "max");
        }
    }
    let pod = s.mgr.open(&format!("{}/pod1", s.root)).unwrap().unwrap();
    match pod.version() {
        Version::V1 => assert_eq!(read_back(&pod, "cpu.shares"), "1024"),
        Version::V2 => assert_eq!(read_back(&pod, "cpu.weight"), "100"),
    }
}

#[test]
fn a_process_moved_in_with_add_pid_shows_in_pids_of_the_group_and_its_parent() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("addpid");
    let pod = s.create("pod1", &Limits::default());
    let c = s.create("pod1/c1", &Limits::default());
    let mut child = spawn_sleep();
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    c.add_pid(pid).expect("add pid");
    assert_eq!(c.pids().expect("pids"), vec![pid]);
    assert_eq!(pod.pids().expect("pod pids"), vec![pid]);
    for f in c.procs_files() {
        let content = std::fs::read_to_string(&f).expect("read procs");
        assert!(
            content.lines().any(|l| l == pid.to_string()),
            "{pid} in {}",
            f.display()
        );
    }
    c.kill_all().expect("kill_all");
    assert!(killed_by_sigkill(&mut child));
    assert!(c.pids().expect("pids").is_empty());
}

#[test]
fn a_process_over_the_memory_limit_is_oom_killed_and_reported() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("oom");
    let limits = Limits {
        memory_bytes: Some(20 << 20),
        ..Limits::default()
    };
    let pod = s.create("pod1", &Limits::default());
    let g = s.create("pod1/c1", &limits);
    assert!(!g.oom_killed().expect("oom_killed before"));
    // tail keeps the whole newline-free input in memory.
    let mut child = spawn_in(&g, "tail", &["/dev/zero"]);
    assert!(killed_by_sigkill(&mut child), "tail was SIGKILLed");
    assert!(g.oom_killed().expect("oom_killed after"));
    assert!(pod.oom_killed().expect("pod sees the container's OOM kill"));
    assert!(g.memory_usage().expect("memory usage") <= 20 << 20);
}

#[test]
fn pids_max_makes_fork_fail_inside_the_group() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("pidsmax");
    let limits = Limits {
        pids_max: Some(2),
        ..Limits::default()
    };
    let g = s.create("c1", &limits);
    let mut child = spawn_in(&g, "sh", &["-c", "sleep 60 & sleep 60 & sleep 60 & wait"]);
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let status = child.wait().expect("wait sh");
    assert!(!status.success(), "sh could not fork all its children");
    // The first sleep holds stderr open: kill it before reading to EOF.
    g.kill_all().expect("kill_all");
    let mut stderr = String::new();
    stderr_pipe
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(stderr.to_lowercase().contains("fork"), "stderr: {stderr}");
    let events = read_back(&g, "pids.events");
    assert!(
        keyed_value(&events, "max").is_some_and(|n| n > 0),
        "pids.events: {events}"
    );
}

#[test]
fn kill_all_empties_a_pod_group_with_several_processes_in_nested_groups() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("killall");
    let pod = s.create("pod1", &Limits::default());
    let a = s.create("pod1/a", &Limits::default());
    let b = s.create("pod1/b", &Limits::default());
    let script = "sleep 60 & sleep 60 & sleep 60 & wait";
    let mut children = vec![
        spawn_in(&a, "sh", &["-c", script]),
        spawn_in(&b, "sh", &["-c", script]),
    ];
    let populated = wait_until(std::time::Duration::from_secs(5), || {
        Ok(pod.pids()?.len() == 8)
    });
    assert!(populated.expect("poll pids"), "pids: {:?}", pod.pids());
    pod.kill_all().expect("kill_all");
    assert!(pod.pids().expect("pids").is_empty());
    for c in &mut children {
        assert!(killed_by_sigkill(c));
    }
    // Killing an empty group is a no-op.
    pod.kill_all().expect("kill_all again");
}

#[test]
fn remove_deletes_nested_groups_everywhere_and_is_idempotent() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("remove");
    let pod = s.create("pod1", &Limits::default());
    let deep = s.create("pod1/a/b/c", &Limits::default());
    s.create("pod1/d", &Limits::default());

    let mut child = spawn_sleep();
    deep.add_pid(i32::try_from(child.id()).expect("pid"))
        .expect("add pid");
    let busy = pod
        .remove()
        .expect_err("a group with processes is not removed");
    assert!(matches!(busy, Error::NotEmpty { .. }), "{busy}");
    pod.kill_all().expect("kill_all");
    assert!(killed_by_sigkill(&mut child));

    pod.remove().expect("remove");
    for f in pod.procs_files() {
        assert!(
            !f.parent().expect("dir").exists(),
            "{} removed",
            f.display()
        );
    }
    let open = |rel: &str| s.mgr.open(&format!("{}/{rel}", s.root)).expect("open");
    assert!(open("pod1").is_none());
    assert!(open("pod1/a/b/c").is_none());
    assert!(open("pod1/d").is_none());
    pod.remove().expect("removing again is fine");
}

#[test]
fn page_cache_a_finished_process_left_charged_is_given_back_before_removal() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("release");
    let group = s.create("pod1", &Limits::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("data");
    // 4 MiB written from inside the group: page cache charged to it after the writer is gone.
    let mut child = spawn_in(&group, "dd", &["if=/dev/zero", &format!("of={}", file.display()), "bs=1M", "count=4"]);
    assert!(child.wait().expect("wait dd").success());
    assert!(group.pids().expect("pids").is_empty());
    let before = group.memory_usage().expect("usage");
    assert!(before >= 4 << 20, "the written pages are charged to the group: {before}");
    group.release_memory();
    let after = group.memory_usage().expect("usage");
    assert!(after < 1 << 20, "charges given back: {before} -> {after}");
    group.remove().expect("remove");
}

#[test]
fn open_finds_existing_groups_only_and_paths_outside_the_root_are_refused() {
    if !running_as_root() {
        return;
    }
    let s = Scratch::on_host("open");
    s.create("pod1", &Limits::default());
    let open = |p: &str| s.mgr.open(p);
    let found = open(&format!("{}/pod1", s.root))
        .expect("open")
        .expect("exists");
    assert_eq!(found.path(), format!("{}/pod1", s.root));
    assert!(open(&format!("{}/nope", s.root)).expect("open").is_none());
    let outside = s.mgr.create("system.slice/x", &Limits::default());
    assert!(matches!(outside, Err(Error::InvalidPath { .. })));
}

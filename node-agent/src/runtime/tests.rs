//! End-to-end tests on the real kernel. They need root (namespaces, mounts) and a static
//! busybox at /bin/busybox; without either they return early with a note.
//! Every test works under its own temporary directory and tears down what it made in `Drop`,
//! which also runs when an assertion panics.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    layer: PathBuf,
    sandboxes: RefCell<Vec<Sandbox>>,
    state_dirs: RefCell<Vec<PathBuf>>,
    next: Cell<u32>,
}

fn usable() -> bool {
    if !nix::unistd::geteuid().is_root() || !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: needs root and /bin/busybox");
        return false;
    }
    true
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if !usable() {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("runtime-test-").tempdir().unwrap();
        let layer = dir.path().join("layer");
        // Like an image from a registry: the usual top-level directories exist.
        for d in ["bin", "dev", "proc", "sys", "etc", "tmp"] {
            std::fs::create_dir_all(layer.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
        // The links point at busybox's own path as the kernel reports it: /usr/bin/busybox on a
        // merged-/usr host. Provide both.
        std::fs::create_dir_all(layer.join("usr/bin")).unwrap();
        std::fs::hard_link(layer.join("bin/busybox"), layer.join("usr/bin/busybox")).unwrap();
        let ok = std::process::Command::new("/bin/busybox")
            .args(["--install", "-s"])
            .arg(layer.join("bin"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "busybox --install");
        Some(Fixture { dir, layer, sandboxes: RefCell::default(), state_dirs: RefCell::default(), next: Cell::new(0) })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sandbox(&self, hostname: &str) -> Sandbox {
        let n = self.next.get();
        self.next.set(n + 1);
        let s = Sandbox::create(&self.path(&format!("pod{n}")), hostname).unwrap();
        self.sandboxes.borrow_mut().push(s.clone());
        s
    }

    fn spec(&self, sandbox: &Sandbox, argv: &[&str]) -> ContainerSpec {
        let n = self.next.get();
        self.next.set(n + 1);
        let base = self.path(&format!("c{n}"));
        let spec = ContainerSpec {
            id: format!("c{n}"),
            state_dir: base.join("state"),
            rootfs: Rootfs {
                layers: vec![self.layer.clone()],
                upper_dir: base.join("upper"),
                work_dir: base.join("work"),
                mount_point: base.join("rootfs"),
            },
            namespaces: sandbox.namespaces(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/bin".into())],
            log_path: base.join("log"),
            ..Default::default()
        };
        self.state_dirs.borrow_mut().push(spec.state_dir.clone());
        spec
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for dir in self.state_dirs.borrow().iter() {
            if let Ok(Some(c)) = Container::load(dir) {
                let _ = c.destroy();
            }
        }
        for s in self.sandboxes.borrow().iter() {
            let _ = s.destroy();
        }
    }
}

fn log(spec: &ContainerSpec) -> String {
    std::fs::read_to_string(&spec.log_path).unwrap_or_default()
}

fn run_to_end(spec: &ContainerSpec) -> (Status, String) {
    let c = create(spec).unwrap();
    let status = c.wait_blocking().unwrap();
    (status, log(spec))
}

fn ns_inode(pid: i32, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).unwrap().ino()
}

fn mountinfo_mentions(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.contains(p.to_str().unwrap())
}

#[test]
fn a_busybox_container_sees_its_env_the_pod_hostname_only_its_processes_and_its_own_root() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("web-0");
    std::fs::write(fx.path("hosts"), "127.0.0.1 localhost\n10.1.2.3 web-0\n").unwrap();
    let mut spec = fx.spec(
        &sb,
        &["sh", "-c", "echo $FOO; hostname; ls /; cat /proc/1/cmdline; echo; ps; cat /etc/hosts; ls /dev; id"],
    );
    spec.env.push(("FOO".into(), "bar-from-spec".into()));
    spec.mounts.push(Mount { source: fx.path("hosts"), destination: "/etc/hosts".into(), read_only: true });
    let (status, out) = run_to_end(&spec);
    assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "bar-from-spec");
    assert_eq!(lines[1], "web-0");
    for entry in ["bin", "dev", "proc", "sys", "etc"] {
        assert!(lines.contains(&entry), "{entry} missing from ls /: {out}");
    }
    assert!(!out.contains("runtime-test-") && !lines.contains(&"work"), "host root visible: {out}");
    assert!(out.contains("sh\0-c\0echo $FOO"), "PID 1 is the user's command: {out:?}");
    let ps: Vec<&str> = out.lines().skip_while(|l| !l.trim_start().starts_with("PID")).skip(1).take_while(|l| {
        l.split_whitespace().next().is_some_and(|p| p.parse::<u32>().is_ok())
    }).collect();
    assert_eq!(ps.len(), 2, "only sh and ps: {ps:?}");
    assert!(ps[0].trim_start().starts_with("1 "), "{ps:?}");
    assert!(out.contains("10.1.2.3 web-0"), "{out}");
    for dev in ["null", "zero", "urandom", "tty", "pts", "ptmx", "shm", "fd", "stdout"] {
        assert!(lines.contains(&dev), "/dev/{dev} missing: {out}");
    }
    assert!(!out.contains(".oldroot"));
    assert!(out.contains("uid=0(root)") || out.contains("uid=0"), "{out}");
}

/// A private tmpfs like the agent's `DATA/run`, unmounted on drop (after the fixture that uses
/// it, when declared before it).
struct StateTmpfs(tempfile::TempDir);

impl StateTmpfs {
    fn new() -> StateTmpfs {
        let dir = tempfile::Builder::new().prefix("runtime-state-").tempdir().unwrap();
        nix::mount::mount(Some("tmpfs"), dir.path(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=16m")).unwrap();
        nix::mount::mount(None::<&str>, dir.path(), None::<&str>, nix::mount::MsFlags::MS_PRIVATE, None::<&str>).unwrap();
        StateTmpfs(dir)
    }
}

impl Drop for StateTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_container_cloned_from_the_mount_template_runs_with_its_state_on_the_tmpfs() {
    if !usable() {
        return;
    }
    let state = StateTmpfs::new();
    let Some(fx) = Fixture::new() else { return };
    let sb = Sandbox::create(&state.0.path().join("pod/sandbox"), "tmpl").unwrap();
    fx.sandboxes.borrow_mut().push(sb.clone());
    let template = std::sync::Arc::new(MountTemplate::create(state.0.path()).unwrap());
    let hosts = state.0.path().join("pod/hosts");
    std::fs::write(&hosts, "10.9.8.7 tmpl\n").unwrap();
    let mut spec = fx.spec(&sb, &["sh", "-c", "hostname; cat /etc/hosts; wc -l < /proc/self/mountinfo"]);
    spec.state_dir = state.0.path().join("pod/c/state");
    spec.rootfs.mount_point = state.0.path().join("pod/c/rootfs");
    fx.state_dirs.borrow_mut().push(spec.state_dir.clone());
    spec.mounts.push(Mount { source: hosts, destination: "/etc/hosts".into(), read_only: false });
    spec.mount_template = Some(template);
    let (status, out) = run_to_end(&spec);
    assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["tmpl", "10.9.8.7 tmpl"], "{out}");
}

#[test]
fn containers_in_one_sandbox_share_the_network_namespace_but_not_the_pid_namespace() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-a");
    let a = create(&fx.spec(&sb, &["sleep", "1000"])).unwrap();
    let b = create(&fx.spec(&sb, &["sleep", "1000"])).unwrap();
    let sandbox_net = std::fs::metadata(sb.net_ns_path()).unwrap().ino();
    assert_eq!(ns_inode(a.pid(), "net"), sandbox_net);
    assert_eq!(ns_inode(b.pid(), "net"), sandbox_net);
    assert_eq!(ns_inode(a.pid(), "uts"), ns_inode(b.pid(), "uts"));
    assert_eq!(ns_inode(a.pid(), "ipc"), ns_inode(b.pid(), "ipc"));
    assert_ne!(ns_inode(a.pid(), "pid"), ns_inode(b.pid(), "pid"));
    assert_ne!(ns_inode(a.pid(), "mnt"), ns_inode(b.pid(), "mnt"));
    let me = std::process::id() as i32;
    assert_ne!(ns_inode(a.pid(), "net"), ns_inode(me, "net"));
    a.destroy().unwrap();
    b.destroy().unwrap();
}

#[test]
fn the_sandbox_has_loopback_up_and_survives_reopening_and_double_destroy() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox(&format!("{}-tail", "x".repeat(70)));
    let (status, out) = run_to_end(&fx.spec(&sb, &["sh", "-c", "cat /sys/class/net/lo/operstate; hostname; ip addr show lo"]));
    assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
    assert!(out.contains("127.0.0.1"), "lo has its address once up: {out}");
    assert!(out.lines().any(|l| l == "x".repeat(63)), "hostname truncated to 63: {out}");
    let again = Sandbox::open(sb.dir()).unwrap();
    assert_eq!(again.net_ns_path(), sb.net_ns_path());
    assert!(Sandbox::create(sb.dir(), "dup").is_err(), "no second sandbox over a live one");
    sb.destroy().unwrap();
    sb.destroy().unwrap();
    assert!(!mountinfo_mentions(sb.dir()));
    assert!(Sandbox::open(sb.dir()).is_err());
}

#[test]
fn a_container_names_a_sandbox_made_before_its_pod_and_the_name_stays_for_the_next() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("warm");
    let mut first = fx.spec(&sb, &["hostname"]);
    first.hostname = Some("web-0".into());
    let (status, out) = run_to_end(&first);
    assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
    assert_eq!(out.trim(), "web-0");
    // The name belongs to the pod's UTS namespace: a later container that sets none sees it.
    let (_, out) = run_to_end(&fx.spec(&sb, &["hostname"]));
    assert_eq!(out.trim(), "web-0");
}

#[test]
fn a_container_without_a_uts_namespace_of_its_own_never_renames_the_node() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-h");
    // Run from a thread with a UTS namespace of its own (the cloning thread inherits it), so a
    // regression renames only that namespace, never the machine running the test.
    let mut spec = fx.spec(&sb, &["hostname"]);
    spec.namespaces.uts = None;
    spec.hostname = Some("not-the-node".into());
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).unwrap();
            let host = nix::unistd::gethostname().unwrap();
            let (status, out) = run_to_end(&spec);
            assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
            assert_eq!(out.trim(), host.to_string_lossy());
            assert_eq!(nix::unistd::gethostname().unwrap(), host);
        });
    });
}

#[test]
fn an_empty_dir_volume_is_shared_by_two_containers_and_read_only_mounts_are_read_only() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-v");
    let vol = fx.path("emptydir");
    std::fs::create_dir(&vol).unwrap();
    let mut writer = fx.spec(&sb, &["sh", "-c", "echo shared-data > /data/x"]);
    writer.mounts.push(Mount { source: vol.clone(), destination: "/data".into(), read_only: false });
    let (status, out) = run_to_end(&writer);
    assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
    let mut reader = fx.spec(&sb, &["sh", "-c", "cat /mnt/v/x; touch /mnt/v/y || echo refused"]);
    reader.mounts.push(Mount { source: vol.clone(), destination: "/mnt/v".into(), read_only: true });
    let (_, out) = run_to_end(&reader);
    assert!(out.starts_with("shared-data\n"), "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(!vol.join("y").exists());
}

#[test]
fn a_missing_command_is_a_run_container_error() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-m");
    let spec = fx.spec(&sb, &["no-such-command", "arg"]);
    let err = create(&spec).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RunContainer, "{err}");
    assert!(err.to_string().contains("executable file not found in $PATH"), "{err}");
    assert!(!spec.state_dir.exists() && !spec.rootfs.upper_dir.exists(), "cleaned up");
    let err = create(&fx.spec(&sb, &["/etc"])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RunContainer, "{err}");
}

#[test]
fn a_bad_working_directory_is_a_create_container_error_and_a_missing_one_is_created() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-w");
    let mut spec = fx.spec(&sb, &["pwd"]);
    spec.cwd = Some("/bin/busybox/sub".into());
    let err = create(&spec).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CreateContainer, "{err}");
    assert!(err.to_string().contains("working directory"), "{err}");

    let mut spec = fx.spec(&sb, &["pwd"]);
    spec.cwd = Some("/new/work/dir".into());
    let (_, out) = run_to_end(&spec);
    assert_eq!(out, "/new/work/dir\n");

    let mut spec = fx.spec(&sb, &["true"]);
    spec.mounts.push(Mount { source: fx.path("missing"), destination: "/x".into(), read_only: false });
    assert_eq!(create(&spec).unwrap_err().kind(), ErrorKind::CreateContainer);
}

#[test]
fn a_non_root_user_and_a_read_only_root_are_applied() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-u");
    let mut spec = fx.spec(&sb, &["sh", "-c", "id -u; id -g; id -G; touch /f 2>/dev/null || echo ro"]);
    spec.uid = 1234;
    spec.gid = 5678;
    spec.supplemental_gids = vec![42];
    spec.readonly_rootfs = true;
    let (status, out) = run_to_end(&spec);
    assert_eq!(status, Status::Exited(ExitStatus::Code(0)), "{out}");
    assert_eq!(out, "1234\n5678\n5678 42\nro\n");
}

#[test]
fn exec_with_pipes_returns_output_stdin_and_the_exit_code() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-e");
    let mut spec = fx.spec(&sb, &["sleep", "1000"]);
    spec.env.push(("FROM_CONTAINER".into(), "yes".into()));
    let c = create(&spec).unwrap();
    let script = "read line; echo got:$line; echo $FROM_CONTAINER $EXTRA; echo err >&2; ps -o comm | grep -cx sleep; exit 3";
    let mut p = exec(
        &c,
        ExecSpec { argv: vec!["sh".into(), "-c".into(), script.into()], env: vec![("EXTRA".into(), "x".into())], ..Default::default() },
    )
    .unwrap();
    let mut stdin = std::fs::File::from(p.take_stdin().unwrap());
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    std::fs::File::from(p.take_stdout().unwrap()).read_to_string(&mut out).unwrap();
    let mut err = String::new();
    std::fs::File::from(p.take_stderr().unwrap()).read_to_string(&mut err).unwrap();
    assert_eq!(p.wait_blocking().unwrap(), 3);
    assert_eq!(out, "got:hello\nyes x\n1\n", "sees the container's processes");
    assert_eq!(err, "err\n");

    let err = exec(&c, ExecSpec { argv: vec!["nope".into()], ..Default::default() }).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::RunContainer, "{err}");
    c.destroy().unwrap();
    let err = exec(&c, ExecSpec { argv: vec!["true".into()], ..Default::default() }).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::RunContainer, "not running: {err}");
}

#[test]
fn exec_with_a_tty_runs_on_a_pts_of_the_container_and_can_be_resized() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-t");
    let c = create(&fx.spec(&sb, &["sleep", "1000"])).unwrap();
    let p = exec(
        &c,
        ExecSpec { argv: vec!["sh".into(), "-c".into(), "sleep 0.2; tty; stty size".into()], tty: true, ..Default::default() },
    )
    .unwrap();
    p.resize(33, 111).unwrap();
    let mut master = std::fs::File::from(p.pty().unwrap().try_clone_to_owned().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("33 111"), "{out:?}");
    assert_eq!(p.wait_blocking().unwrap(), 0);
}

#[test]
fn exec_and_wait_work_from_tokio() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-async");
    let c = create(&fx.spec(&sb, &["sleep", "1000"])).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let p = exec(&c, ExecSpec { argv: vec!["cat".into()], tty: true, ..Default::default() }).unwrap();
        let mut pty = p.pty_async().unwrap();
        pty.write_all(b"ping\n").await.unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("ping\r\nping") {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(5), pty.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "early EOF: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        p.kill().unwrap();
        assert_eq!(p.wait().await.unwrap(), 137);

        let waiter = tokio::time::timeout(Duration::from_secs(10), c.wait());
        c.signal(Signal::SIGKILL).unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), Status::Exited(ExitStatus::Signal(9)));
    });
}

#[test]
fn a_dropped_container_is_readopted_from_its_state_file() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-r");
    let spec = fx.spec(&sb, &["sleep", "1000"]);
    let pid = create(&spec).unwrap().pid();
    // The handle is gone; the process is not.
    let c = Container::load(&spec.state_dir).unwrap().unwrap();
    assert_eq!(c.pid(), pid);
    assert_eq!(c.status().unwrap(), Status::Running);
    let p = exec(&c, ExecSpec { argv: vec!["true".into()], ..Default::default() }).unwrap();
    assert_eq!(p.wait_blocking().unwrap(), 0);
    c.signal(Signal::SIGKILL).unwrap();
    assert_eq!(c.wait_blocking().unwrap(), Status::Exited(ExitStatus::Signal(9)));
    let again = Container::load(&spec.state_dir).unwrap().unwrap();
    assert_eq!(again.status().unwrap(), Status::Exited(ExitStatus::Signal(9)), "the reaped status was persisted");
    assert!(Container::load(&fx.path("nothing-here")).unwrap().is_none());
}

#[test]
fn a_container_we_are_not_the_parent_of_is_watched_through_its_pidfd_and_ends_unknown() {
    if !usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A process re-parented away from us, as a container is after an agent restart.
    let out = std::process::Command::new("/bin/busybox")
        .args(["sh", "-c", "/bin/busybox sleep 1000 >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let (_, start) = process::read_stat(pid).unwrap();
    let spec = ContainerSpec { id: "orphan".into(), ..Default::default() };
    state::State::new(&spec, pid, start).save(dir.path()).unwrap();
    let c = Container::load(dir.path()).unwrap().unwrap();
    assert_eq!(c.status().unwrap(), Status::Running);
    c.signal(Signal::SIGKILL).unwrap();
    assert_eq!(c.wait_blocking().unwrap(), Status::Unknown);
}

#[test]
fn destroy_leaves_no_mounts_no_processes_and_no_directories() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-d");
    let vol = fx.path("vol");
    std::fs::create_dir(&vol).unwrap();
    let mut spec = fx.spec(&sb, &["sh", "-c", "sleep 1000 & sleep 1000"]);
    spec.mounts.push(Mount { source: vol, destination: "/v".into(), read_only: false });
    let c = create(&spec).unwrap();
    let pid = c.pid();
    let p = exec(&c, ExecSpec { argv: vec!["sleep".into(), "1000".into()], ..Default::default() }).unwrap();
    let relay = p.pid();
    c.destroy().unwrap();
    c.destroy().unwrap();
    assert_eq!(p.wait_blocking().unwrap(), 137, "the exec died with the container");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!Path::new(&format!("/proc/{relay}")).exists());
    assert!(!mountinfo_mentions(&spec.rootfs.mount_point));
    for d in [&spec.state_dir, &spec.rootfs.mount_point, &spec.rootfs.upper_dir, &spec.rootfs.work_dir] {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert!(spec.log_path.exists(), "logs outlive the container");
    sb.destroy().unwrap();
    assert!(!mountinfo_mentions(fx.dir.path()), "{}", std::fs::read_to_string("/proc/self/mountinfo").unwrap());
}

#[test]
fn a_crash_looping_container_has_each_exit_code_reaped() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-crash");
    let log_path = fx.path("crash.log");
    for restart in 0..3 {
        let mut spec = fx.spec(&sb, &["sh", "-c", "echo attempt; exit 7"]);
        spec.log_path = log_path.clone();
        let c = create(&spec).unwrap();
        assert_eq!(c.wait_blocking().unwrap(), Status::Exited(ExitStatus::Code(7)), "restart {restart}");
        assert_eq!(c.status().unwrap(), Status::Exited(ExitStatus::Code(7)));
        c.destroy().unwrap();
        // No zombie left: the pid is gone from /proc.
        assert!(!Path::new(&format!("/proc/{}", c.pid())).exists());
    }
    assert_eq!(std::fs::read_to_string(&log_path).unwrap(), "attempt\n".repeat(3), "the log is appended to");
}

#[test]
fn the_process_is_in_its_cgroups_before_it_runs() {
    struct Rmdir(PathBuf);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    if !usable() {
        return;
    }
    let cg = PathBuf::from(format!("/sys/fs/cgroup/pids/runtime-test-{}", std::process::id()));
    if std::fs::create_dir(&cg).is_err() {
        eprintln!("skipped: no pids cgroup controller");
        return;
    }
    // Declared before the fixture so it is dropped after it, once the processes are gone.
    let _cleanup = Rmdir(cg.clone());
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-cg");
    let mut spec = fx.spec(&sb, &["sh", "-c", "grep pids /proc/self/cgroup; sleep 1000"]);
    spec.cgroup_procs = vec![cg.join("cgroup.procs")];
    let c = create(&spec).unwrap();
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == c.pid().to_string()), "{procs}");
    let p = exec(&c, ExecSpec { argv: vec!["sleep".into(), "1000".into()], ..Default::default() }).unwrap();
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    let has = |pid: i32| procs.lines().any(|l| l == pid.to_string());
    assert!(has(c.pid()) && has(p.pid()), "container and exec relay: {procs}");
    assert!(procs.lines().count() >= 3, "and the exec'd command, forked by the relay: {procs}");
    drop(p);
    c.destroy().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(cg.join("cgroup.procs")).unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(log(&spec).contains(":pids:/runtime-test-"), "{}", log(&spec));
}

/// Stands in for an agent in `a_container_outlives_its_agent_killed_with_sigkill`: only does
/// something when run by that test.
#[test]
fn helper_agent_that_starts_a_container_and_waits_to_be_killed() {
    let (Ok(layer), Ok(pod), Ok(base)) =
        (std::env::var("RT_AGENT_LAYER"), std::env::var("RT_AGENT_POD"), std::env::var("RT_AGENT_BASE"))
    else {
        return;
    };
    let base = PathBuf::from(base);
    let spec = ContainerSpec {
        id: "survivor".into(),
        state_dir: base.join("state"),
        rootfs: Rootfs {
            layers: vec![layer.into()],
            upper_dir: base.join("upper"),
            work_dir: base.join("work"),
            mount_point: base.join("rootfs"),
        },
        namespaces: Sandbox::open(Path::new(&pod)).unwrap().namespaces(),
        argv: vec!["sleep".into(), "1000".into()],
        log_path: base.join("log"),
        ..Default::default()
    };
    let _c = create(&spec).unwrap();
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_container_outlives_its_agent_killed_with_sigkill() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-k");
    let base = fx.path("survivor");
    fx.state_dirs.borrow_mut().push(base.join("state"));
    let mut agent = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "runtime::tests::helper_agent_that_starts_a_container_and_waits_to_be_killed", "--nocapture"])
        .env("RT_AGENT_LAYER", &fx.layer)
        .env("RT_AGENT_POD", sb.dir())
        .env("RT_AGENT_BASE", &base)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(agent.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "helper agent ended early");
    }
    // The whole process group, as a service manager or a terminal would.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(agent.id() as i32), Signal::SIGKILL).unwrap();
    agent.wait().unwrap();
    let c = Container::load(&base.join("state")).unwrap().unwrap();
    assert_eq!(c.status().unwrap(), Status::Running, "the container survived its agent");
    c.signal(Signal::SIGKILL).unwrap();
    assert_eq!(c.wait_blocking().unwrap(), Status::Unknown, "no longer our child: exit status unknown");
    c.destroy().unwrap();
}

#[test]
fn create_latency_is_measured() {
    let Some(fx) = Fixture::new() else { return };
    let sb = fx.sandbox("pod-perf");
    let mut times = Vec::new();
    for _ in 0..30 {
        let spec = fx.spec(&sb, &["sleep", "1000"]);
        let t = Instant::now();
        let c = create(&spec).unwrap();
        times.push(t.elapsed());
        c.destroy().unwrap();
    }
    times.sort();
    eprintln!(
        "create() to running user process: p50 {:?}, p90 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
}

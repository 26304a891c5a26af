//! Starting a container.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use nix::sched::CloneFlags;

use super::channel::{self, ChildMsg, Go, Stage};
use super::container::Container;
use super::destroy::remove_container_dirs;
use super::init::{self, CommandPlan, Credentials, InitPlan};
use super::process::{self, ChildGuard, above_stdio};
use super::rootfs::{self, RootfsPlan};
use super::spec::ContainerSpec;
use super::state::State;
use super::{Error, Result};

/// How long the child may take from clone to exec before we give up on it (a hung mount).
const SETUP_TIMEOUT_MS: i32 = 60_000;

/// Starts the container and returns once its command is running (its `execve` succeeded), or
/// with `Error::Run` if the command could not be executed and `Error::Create` if its environment
/// could not be set up. Blocks for a few milliseconds: call it from `spawn_blocking` in async
/// code. On error nothing is left behind (process, directories, state).
pub fn create(spec: &ContainerSpec) -> Result<Container> {
    if spec.id.is_empty() {
        return Err(Error::Create("container id is empty".into()));
    }
    let r = &spec.rootfs;
    for dir in [&spec.state_dir, &r.mount_point, &r.upper_dir, &r.work_dir] {
        fs::create_dir_all(dir).map_err(|e| Error::Create(format!("creating {}: {e}", dir.display())))?;
    }
    let result = start(spec);
    if result.is_err() {
        let _ = remove_container_dirs(&spec.state_dir, &r.mount_point, &r.upper_dir, &r.work_dir);
    }
    result
}

fn open_ns(path: Option<&Path>, flag: CloneFlags, out: &mut Vec<(OwnedFd, CloneFlags)>) -> Result<()> {
    if let Some(p) = path {
        let f = File::open(p).map_err(|e| Error::Create(format!("opening namespace {}: {e}", p.display())))?;
        out.push((above_stdio(f.into()).map_err(|e| Error::Create(format!("namespace fd: {e}")))?, flag));
    }
    Ok(())
}

fn start(spec: &ContainerSpec) -> Result<Container> {
    let rootfs = RootfsPlan::new(spec)?;
    let command = CommandPlan::new(&spec.argv, &spec.env).map_err(Error::Create)?;
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(&spec.log_path)
        .map_err(|e| Error::Create(format!("opening log file {}: {e}", spec.log_path.display())))?;
    let log = above_stdio(log.into()).map_err(|e| Error::Create(format!("log fd: {e}")))?;
    let devnull = File::open("/dev/null").map_err(|e| Error::Create(format!("opening /dev/null: {e}")))?;
    let devnull = above_stdio(devnull.into()).map_err(|e| Error::Create(format!("/dev/null fd: {e}")))?;
    let mut ns = Vec::new();
    let n = &spec.namespaces;
    open_ns(n.net.as_deref(), CloneFlags::CLONE_NEWNET, &mut ns)?;
    open_ns(n.ipc.as_deref(), CloneFlags::CLONE_NEWIPC, &mut ns)?;
    open_ns(n.uts.as_deref(), CloneFlags::CLONE_NEWUTS, &mut ns)?;
    let (sock, child_sock) = channel::socketpair().map_err(|e| Error::Create(format!("socketpair: {e}")))?;

    // Never without a UTS namespace of the pod's own: that would rename the node.
    let hostname = spec.hostname.as_ref().filter(|_| n.uts.is_some()).map(|h| h.as_bytes().to_vec());
    let plan = InitPlan {
        sock: child_sock.as_raw_fd(),
        namespaces: ns.iter().map(|(fd, flag)| (fd.as_raw_fd(), *flag)).collect(),
        hostname,
        rootfs,
        stdio: [devnull.as_raw_fd(), log.as_raw_fd(), log.as_raw_fd()],
        creds: Credentials { uid: spec.uid, gid: spec.gid, groups: spec.supplemental_gids.clone() },
        command,
    };
    let plan = Arc::new(plan);
    let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    let cgroups = process::CgroupEntry::plan(&spec.cgroup_procs);
    let t0 = std::time::Instant::now();
    let pid = process::spawn_sharing_memory(flags, &cgroups, spec.mount_template.clone(), plan.clone(), init::child_main).map_err(|e| Error::Create(format!("starting the container process: {e}")))?;
    let guard = ChildGuard::new(pid);
    // Only the child needs these; our copy of its socket end must go for end-of-file to mean exec.
    drop((child_sock, log, devnull, ns));

    // The child sets up its mounts while we make its pidfd and record it.
    let go = |g| channel::send_go(&sock, g).map_err(|e| Error::Create(format!("starting the container process: {e}")));
    go(Go::Setup)?;
    let pidfd = process::pidfd_open(pid.as_raw()).map_err(|e| Error::Create(format!("pidfd_open: {}", e.desc())))?;
    let (_, start_time) = process::read_stat(pid.as_raw()).map_err(|e| Error::Create(format!("reading stat: {e}")))?;
    let t1 = std::time::Instant::now();
    cgroups.join_after_clone(pid).map_err(Error::Create)?;
    let t2 = std::time::Instant::now();
    let state = State::new(spec, pid.as_raw(), start_time);
    // Saved before the process may exec, so an agent killed from here on finds it on restart
    // (and if it dies before this, the child exits instead of waiting for Go::Exec).
    state.save(&spec.state_dir).map_err(|e| Error::Create(e.to_string()))?;
    // If this fails the child is gone, and its failure record (read below) says why.
    let _ = go(Go::Exec);
    match channel::recv(&sock, SETUP_TIMEOUT_MS) {
        Ok(None) => {}
        Ok(Some(ChildMsg::Failed(f))) if f.stage == Stage::Exec => {
            return Err(Error::Run(plan.command.describe(f.errno)));
        }
        Ok(Some(ChildMsg::Failed(f))) => return Err(Error::Create(describe(&f, spec))),
        Ok(Some(ChildMsg::PtyMaster(_))) => return Err(Error::Create("unexpected message from child".into())),
        Err(e) => return Err(Error::Create(format!("waiting for the container process: {e}"))),
    }
    guard.disarm();
    tracing::debug!(clone_us = (t1 - t0).as_micros() as u64, cgroups_us = (t2 - t1).as_micros() as u64, exec_us = t2.elapsed().as_micros() as u64, "container process started");
    Ok(Container::started(state, spec.state_dir.clone(), pidfd))
}

fn describe(f: &channel::Failure, spec: &ContainerSpec) -> String {
    let ns = &spec.namespaces;
    match f.stage {
        Stage::JoinNamespace => {
            let paths = [&ns.net, &ns.ipc, &ns.uts];
            let path = paths.iter().filter_map(|p| p.as_ref()).nth(f.index as usize);
            format!("joining namespace {}: {}", path.map_or("?".into(), |p| p.display().to_string()), f.errno.desc())
        }
        Stage::Setsid => format!("setsid: {}", f.errno.desc()),
        Stage::Hostname => format!("setting hostname {:?}: {}", spec.hostname.as_deref().unwrap_or_default(), f.errno.desc()),
        Stage::Stdio => format!("setting up stdio: {}", f.errno.desc()),
        Stage::Credentials => {
            format!("switching to uid {} gid {}: {}", spec.uid, spec.gid, f.errno.desc())
        }
        _ => rootfs::describe(f, spec),
    }
}

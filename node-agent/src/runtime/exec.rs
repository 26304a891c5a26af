//! Running a command inside a running container (kubectl exec).
//!
//! Process tree: agent -> relay -> command. The relay is cloned from the agent, joins the
//! container's cgroups (written by the agent during the handshake) and, through the container's
//! pidfd, all its namespaces at once. Joining a PID namespace only applies to children, so the
//! relay forks the command, which lands in the container's PID namespace, and waits for it,
//! exiting with its code (128 + signal if killed). The relay stays the agent's child, so the agent
//! reaps a real exit code; the command gets SIGKILL if the relay dies (PR_SET_PDEATHSIG), so
//! killing the relay ends the exec.
//!
//! With a tty, the relay opens the pty inside the container's own devpts (so `tty` inside shows
//! a /dev/pts/N the container can see) and passes the master back over the handshake socket.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::channel::{self, ChildMsg, Failure, Go, Stage};
use super::container::{Container, Status};
use super::init::{self, CommandPlan, Credentials};
use super::process::{self, ChildGuard, above_stdio};
use super::pty::AsyncPty;
use super::spec::ExecSpec;
use super::syscall::{LinuxSyscall, Syscall};
use super::{Error, Result};

const JOIN_ALL: CloneFlags = CloneFlags::CLONE_NEWNS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWUTS);

const SETUP_TIMEOUT_MS: i32 = 30_000;

struct RelayPlan {
    sock: RawFd,
    container_pidfd: RawFd,
    tty: bool,
    /// Child ends of the stdin/stdout/stderr pipes (unused with a tty).
    stdio: [RawFd; 3],
    cwd: CString,
    uid: u32,
    creds: Credentials,
    command: CommandPlan,
}

/// A running exec. Dropping it kills the command (if still running) and reaps it.
pub struct ExecProcess {
    pid: nix::unistd::Pid,
    pidfd: OwnedFd,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    exit: Mutex<Option<i32>>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| process::errno_io("pipe", e))?;
    let fix = |fd| above_stdio(fd).map_err(|e| Error::io("pipe", e));
    Ok((fix(r)?, fix(w)?))
}

/// Starts `spec` in `container`. Returns once the command runs; `Error::Run` if it cannot be
/// started (e.g. `executable file not found in $PATH`) or the container is not running.
/// Blocks for a few milliseconds: call it from `spawn_blocking` in async code.
pub fn exec(container: &Container, spec: ExecSpec) -> Result<ExecProcess> {
    let (Status::Running, Some(cpidfd)) = (container.status()?, container.pidfd()) else {
        return Err(Error::Run(format!("container {} is not running", container.id())));
    };
    let state = container.state();
    let env = init::merge_env(&state.env, &spec.env);
    let command = CommandPlan::new(&spec.argv, &env).map_err(Error::Run)?;
    let cwd = spec.cwd.as_ref().unwrap_or(&state.cwd);
    let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| Error::Run("working directory contains NUL".into()))?;
    let (sock, child_sock) = channel::socketpair().map_err(|e| Error::io("socketpair", e))?;
    let (mut ours, mut theirs): (Vec<OwnedFd>, Vec<OwnedFd>) = (Vec::new(), Vec::new());
    if !spec.tty {
        let (r, w) = pipe()?;
        ours.push(w);
        theirs.push(r);
        for _ in 0..2 {
            let (r, w) = pipe()?;
            ours.push(r);
            theirs.push(w);
        }
    }
    let raw = |i: usize| theirs.get(i).map_or(-1, |f| f.as_raw_fd());
    let plan = RelayPlan {
        sock: child_sock.as_raw_fd(),
        container_pidfd: cpidfd.as_raw_fd(),
        tty: spec.tty,
        stdio: [raw(0), raw(1), raw(2)],
        cwd,
        uid: state.uid,
        creds: Credentials { uid: state.uid, gid: state.gid, groups: state.supplemental_gids.clone() },
        command,
    };
    let cgroups = process::CgroupEntry::plan(&state.cgroup_procs);
    let pid = cgroups.clone_child(CloneFlags::empty(), &mut || relay_main(&plan)).map_err(|e| Error::Run(format!("starting the exec process: {e}")))?;
    let guard = ChildGuard::new(pid);
    drop((child_sock, theirs));
    let pidfd = process::pidfd_open(pid.as_raw()).map_err(|e| process::errno_io("pidfd_open", e))?;
    cgroups.join_after_clone(pid).map_err(Error::Run)?;
    channel::send_go(&sock, Go::Exec).map_err(|e| Error::io("starting the exec process", e))?;
    let mut pty = None;
    loop {
        match channel::recv(&sock, SETUP_TIMEOUT_MS) {
            Ok(None) => break,
            Ok(Some(ChildMsg::PtyMaster(fd))) => pty = Some(fd),
            Ok(Some(ChildMsg::Failed(f))) => return Err(Error::Run(describe(&f, &plan, spec.cwd.is_some()))),
            Err(e) => return Err(Error::io("waiting for the exec process", e)),
        }
    }
    if spec.tty && pty.is_none() {
        return Err(Error::Run("the exec process sent no pty".into()));
    }
    guard.disarm();
    let mut it = ours.into_iter();
    Ok(ExecProcess {
        pid,
        pidfd,
        stdin: it.next(),
        stdout: it.next(),
        stderr: it.next(),
        pty,
        exit: Mutex::new(None),
    })
}

fn describe(f: &Failure, plan: &RelayPlan, explicit_cwd: bool) -> String {
    let e = f.errno.desc();
    match f.stage {
        Stage::Exec => plan.command.describe(f.errno),
        Stage::JoinNamespace => format!("joining the container's namespaces: {e}"),
        Stage::Pty => format!("allocating a pty in the container: {e}"),
        Stage::Workdir => {
            let which = if explicit_cwd { "" } else { "the container's " };
            format!("chdir to {which}working directory {:?}: {e}", plan.cwd)
        }
        Stage::Credentials => format!("switching to uid {} gid {}: {e}", plan.creds.uid, plan.creds.gid),
        other => format!("{other:?}: {e}"),
    }
}

fn fail(sock: RawFd, f: Failure) -> ! {
    channel::child_send_failure(sock, &f);
    process::exit_now(127)
}

/// Runs in the relay (cloned from the agent). Never returns.
fn relay_main(plan: &RelayPlan) -> i32 {
    process::reset_signals();
    if !channel::child_wait_go(plan.sock, Go::Exec) {
        process::exit_now(1);
    }
    let sys = LinuxSyscall;
    // Until the execve, relay and command hold a copy of the agent's memory (keys, tokens) while
    // visible inside the container: keep its processes from ptracing or reading /proc/<pid>/mem.
    // execve restores the flag for the command.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Err(e) = sys.setns(plan.container_pidfd, JOIN_ALL) {
        fail(plan.sock, Failure::new(Stage::JoinNamespace, 0, e));
    }
    let slave = if plan.tty {
        match open_pty(plan) {
            Ok(fd) => fd,
            Err(f) => fail(plan.sock, f),
        }
    } else {
        -1
    };
    // A raw clone rather than glibc's fork(), which takes locks (malloc's) that another agent
    // thread may have held when the relay was cloned. Without a new stack the child continues on
    // a copy of ours, as with fork.
    // SAFETY: the child only makes raw syscalls until execve or _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    let pid = pid as libc::pid_t;
    if pid == -1 {
        fail(plan.sock, Failure::new(Stage::Fork, 0, Errno::last()));
    }
    if pid == 0 {
        let f = exec_child(&sys, plan, slave);
        fail(plan.sock, f);
    }
    // Hold nothing: the agent's pipes must see EOF when the command closes them, and the
    // agent's other descriptors must not be kept alive by us.
    // SAFETY: plain syscalls on our own descriptor table and child.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) == -1 {
            if Errno::last() != Errno::EINTR {
                process::exit_now(255);
            }
        }
        if libc::WIFEXITED(status) {
            process::exit_now(libc::WEXITSTATUS(status));
        }
        process::exit_now(128 + libc::WTERMSIG(status))
    }
}

/// In the container's mount namespace: a pty from the container's own devpts instance.
fn open_pty(plan: &RelayPlan) -> Result<RawFd, Failure> {
    let err = |i: usize| Failure::new(Stage::Pty, i, Errno::last());
    // SAFETY: plain syscalls; every descriptor opened here is closed or handed on.
    unsafe {
        let master = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master == -1 {
            return Err(err(0));
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) == -1 {
            return Err(err(1));
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if slave == -1 {
            return Err(err(2));
        }
        if plan.uid != 0 && libc::fchown(slave, plan.uid, libc::gid_t::MAX) == -1 {
            return Err(err(3));
        }
        if let Err(e) = channel::child_send_pty_master(plan.sock, master) {
            return Err(Failure::new(Stage::Pty, 4, e));
        }
        libc::close(master);
        Ok(slave)
    }
}

/// The command's side of the fork, up to execve. Returns only on failure.
fn exec_child<S: Syscall>(sys: &S, plan: &RelayPlan, slave: RawFd) -> Failure {
    let run = || -> Result<(), Failure> {
        sys.setsid().map_err(|e| Failure::new(Stage::Setsid, 0, e))?;
        let stdio = if plan.tty {
            sys.set_controlling_tty(slave).map_err(|e| Failure::new(Stage::Pty, 5, e))?;
            [slave; 3]
        } else {
            plan.stdio
        };
        init::set_stdio(sys, &stdio)?;
        sys.chdir(&plan.cwd).map_err(|e| Failure::new(Stage::Workdir, 0, e))?;
        init::set_credentials(sys, &plan.creds)?;
        sys.kill_on_parent_death().map_err(|e| Failure::new(Stage::Fork, 1, e))?;
        sys.umask(0o022);
        sys.cloexec_from(3).map_err(|e| Failure::new(Stage::Stdio, 3, e))?;
        Ok(())
    };
    match run() {
        Ok(()) => init::exec_command(sys, &plan.command),
        Err(f) => f,
    }
}

impl ExecProcess {
    /// The write end of the command's stdin (pipes only); drop it to send EOF.
    pub fn take_stdin(&mut self) -> Option<OwnedFd> {
        self.stdin.take()
    }

    /// For tokio: `tokio::net::unix::pipe::Receiver::from_owned_fd(fd)`.
    pub fn take_stdout(&mut self) -> Option<OwnedFd> {
        self.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<OwnedFd> {
        self.stderr.take()
    }

    /// The stdio pipes as tokio types (call within a runtime).
    pub fn take_stdin_async(&mut self) -> Result<Option<tokio::net::unix::pipe::Sender>> {
        self.stdin
            .take()
            .map(tokio::net::unix::pipe::Sender::from_owned_fd)
            .transpose()
            .map_err(|e| Error::io("registering stdin", e))
    }

    pub fn take_stdout_async(&mut self) -> Result<Option<tokio::net::unix::pipe::Receiver>> {
        Self::receiver(self.stdout.take())
    }

    pub fn take_stderr_async(&mut self) -> Result<Option<tokio::net::unix::pipe::Receiver>> {
        Self::receiver(self.stderr.take())
    }

    fn receiver(fd: Option<OwnedFd>) -> Result<Option<tokio::net::unix::pipe::Receiver>> {
        fd.map(tokio::net::unix::pipe::Receiver::from_owned_fd).transpose().map_err(|e| Error::io("registering pipe", e))
    }

    /// The pty master (tty only): stdin and output both go through it.
    pub fn pty(&self) -> Option<BorrowedFd<'_>> {
        self.pty.as_ref().map(|f| f.as_fd())
    }

    /// An async reader/writer on (a duplicate of) the pty master.
    pub fn pty_async(&self) -> Result<AsyncPty> {
        let fd = self.pty.as_ref().ok_or_else(|| Error::Run("exec has no tty".into()))?;
        let dup = fd.try_clone().map_err(|e| Error::io("duplicating pty", e))?;
        AsyncPty::new(dup).map_err(|e| Error::io("registering pty", e))
    }

    /// TIOCSWINSZ on the pty (kubectl's resize events).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let fd = self.pty.as_ref().ok_or_else(|| Error::Run("exec has no tty".into()))?;
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } == -1 {
            return Err(Error::io("resizing pty", io::Error::last_os_error()));
        }
        Ok(())
    }

    fn reap(&self, flags: WaitPidFlag) -> Result<Option<i32>> {
        let mut exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        if exit.is_some() {
            return Ok(*exit);
        }
        let code = match waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED | flags) {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            Ok(_) => return Ok(None),
            Err(e) => return Err(process::errno_io("reaping exec process", e)),
        };
        *exit = Some(code);
        Ok(Some(code))
    }

    /// The exit code if the command has finished.
    pub fn try_wait(&self) -> Result<Option<i32>> {
        self.reap(WaitPidFlag::WNOHANG)
    }

    /// Blocks until the command exits; its exit code (128 + signal if killed).
    pub fn wait_blocking(&self) -> Result<i32> {
        loop {
            if let Some(code) = self.reap(WaitPidFlag::empty())? {
                return Ok(code);
            }
        }
    }

    /// Like `wait_blocking` without blocking a tokio worker. Must run within a tokio runtime.
    pub async fn wait(&self) -> Result<i32> {
        if let Some(code) = self.try_wait()? {
            return Ok(code);
        }
        let dup = self.pidfd.try_clone().map_err(|e| Error::io("duplicating pidfd", e))?;
        // SAFETY: the AsyncFd owns the duplicate, which stays open for its whole life.
        let afd = unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }
            .map_err(|e| Error::io("registering pidfd", e))?;
        let _ready = afd.readable().await.map_err(|e| Error::io("waiting on pidfd", e))?;
        self.wait_blocking()
    }

    /// Ends the exec: the relay gets SIGKILL and takes the command with it.
    pub fn kill(&self) -> Result<()> {
        if self.exit.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
            return Ok(());
        }
        match process::pidfd_send_signal(self.pidfd.as_raw_fd(), Signal::SIGKILL as i32) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(process::errno_io("killing exec process", e)),
        }
    }

    /// The relay's host pid.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(None)) {
            let _ = self.kill();
            let _ = self.wait_blocking();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::syscall::recording::RecordingSyscall;

    fn plan(tty: bool) -> RelayPlan {
        RelayPlan {
            sock: 3,
            container_pidfd: 4,
            tty,
            stdio: [5, 6, 7],
            cwd: c"/app".into(),
            uid: 1000,
            creds: Credentials { uid: 1000, gid: 1000, groups: vec![] },
            command: CommandPlan::new(&["id".to_string()], &[("PATH".into(), "/bin".into())]).unwrap(),
        }
    }

    #[test]
    fn an_exec_with_pipes_installs_them_as_stdio_and_drops_privileges_before_exec() {
        let sys = RecordingSyscall::default();
        let f = exec_child(&sys, &plan(false), -1);
        assert_eq!(f.stage, Stage::Exec);
        assert_eq!(
            sys.calls(),
            [
                "setsid",
                "dup2 5 0",
                "dup2 6 1",
                "dup2 7 2",
                "chdir /app",
                "setgroups []",
                "setresgid 1000",
                "setresuid 1000",
                "kill_on_parent_death",
                "umask 22",
                "cloexec_from 3",
                "execve /bin/id [id] [PATH=/bin]",
            ]
        );
    }

    #[test]
    fn an_exec_with_a_tty_makes_the_pty_its_controlling_terminal() {
        let sys = RecordingSyscall::default();
        exec_child(&sys, &plan(true), 9);
        let calls = sys.calls();
        assert_eq!(calls[..5], ["setsid", "set_controlling_tty 9", "dup2 9 0", "dup2 9 1", "dup2 9 2"]);
    }

    #[test]
    fn a_missing_working_directory_stops_the_exec_before_exec() {
        let sys = RecordingSyscall { fail: Some(("chdir".into(), Errno::ENOENT)), ..Default::default() };
        let p = plan(false);
        let f = exec_child(&sys, &p, -1);
        assert_eq!(f.stage, Stage::Workdir);
        assert_eq!(describe(&f, &p, true), "chdir to working directory \"/app\": No such file or directory");
    }
}

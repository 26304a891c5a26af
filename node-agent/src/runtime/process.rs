//! Process plumbing: clone, pidfds, /proc/<pid>/stat, cgroup membership.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::{Error, Result};

/// The child runs on this much stack until it execs; the setup code is shallow.
const CHILD_STACK: usize = 256 * 1024;

/// Clones a child that runs `body` and never returns to our code: `body` must end in `execve`
/// or `_exit`, and must only make async-signal-safe calls (the caller is multi-threaded).
pub fn clone_child(flags: CloneFlags, body: &mut dyn FnMut() -> i32) -> Result<Pid, Errno> {
    let mut stack = vec![0u8; CHILD_STACK];
    let cb = Box::new(move || -> isize {
        let code = body();
        exit_now(code)
    });
    // SAFETY: the child gets a private copy of memory (no CLONE_VM) and runs only `body`,
    // which sticks to raw syscalls until it execs or exits.
    unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }
}

/// `_exit(2)`: no atexit handlers, no stdio flushing, safe after clone.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process.
    unsafe { libc::_exit(code) }
}

/// Resets every signal disposition and the mask, in a fresh child: the agent's handlers (tokio's)
/// must not run there, and Rust's ignored SIGPIPE must not leak into containers.
pub fn reset_signals() {
    // SAFETY: sigaction/sigprocmask on zeroed local structs are async-signal-safe.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Moves a descriptor to a number >= 3 (close-on-exec), so `dup2` onto 0..2 in a child never
/// overwrites it even if the agent was started with stdio closed.
pub fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2)".
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, std::ptr::null::<u8>(), 0) };
    if ret == -1 { Err(Errno::last()) } else { Ok(()) }
}

/// True when `fd` is readable within `timeout_ms` (-1: wait forever). A pidfd is readable once
/// the process has exited.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// (ppid, starttime) from the text of /proc/<pid>/stat: fields 4 and 22, counted after the
/// command name, which may itself contain spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

pub fn read_stat(pid: i32) -> io::Result<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/<pid>/stat"))
}

/// How a new process gets into its cgroups.
///
/// Moving a process by pid (writing it to `cgroup.procs`) takes the kernel's global threadgroup
/// lock for writing, and that waits out an RCU grace period: 5 to 19 ms on the development
/// machine, most of a container's start. A thread moving *itself* (writing "0" to a cgroup v1
/// `tasks` file) skips that lock, and a child inherits its parent thread's cgroups. So on v1 a
/// short-lived thread joins the container's groups, clones the child there and exits. cgroup v2
/// has no `tasks` file (outside threaded subtrees), so there the child is moved by pid.
pub enum CgroupEntry<'a> {
    /// The `tasks` files of each v1 hierarchy: the cloning thread joins them first.
    Thread(Vec<PathBuf>),
    /// The `cgroup.procs` files to write the child's pid to after the clone.
    ByPid(&'a [PathBuf]),
}

impl<'a> CgroupEntry<'a> {
    /// `Thread` when every group has a `tasks` file beside its `cgroup.procs`.
    pub fn plan(cgroup_procs: &'a [PathBuf]) -> Self {
        let tasks: Vec<PathBuf> = cgroup_procs.iter().filter_map(|p| Some(p.parent()?.join("tasks"))).filter(|t| t.exists()).collect();
        if !cgroup_procs.is_empty() && tasks.len() == cgroup_procs.len() { CgroupEntry::Thread(tasks) } else { CgroupEntry::ByPid(cgroup_procs) }
    }

    /// Clones like `clone_child`; with `Thread`, from a new thread that has joined the groups,
    /// so the child is born in them.
    pub fn clone_child(&self, flags: CloneFlags, body: &mut dyn FnMut() -> i32) -> Result<Pid, String> {
        let clone = |body: &mut dyn FnMut() -> i32| clone_child(flags, body).map_err(|e| e.desc().to_string());
        let CgroupEntry::Thread(tasks) = self else { return clone(body) };
        let body = LentBody(body);
        std::thread::scope(|scope| {
            let cloner = scope.spawn(move || {
                let body = body;
                for path in tasks {
                    std::fs::write(path, "0").map_err(|e| format!("joining cgroup {}: {e}", path.display()))?;
                }
                // The thread ends here, in the container's groups; nothing else runs on it.
                clone(body.0)
            });
            cloner.join().unwrap_or_else(|_| Err("the cloning thread panicked".to_string()))
        })
    }

    /// Moves the child into its groups if it was not born there.
    pub fn join_after_clone(&self, pid: Pid) -> Result<(), String> {
        match self {
            CgroupEntry::Thread(_) => Ok(()),
            CgroupEntry::ByPid(procs) => join_cgroups(procs, pid),
        }
    }
}

/// The child's body, lent to the cloning thread.
struct LentBody<'b>(&'b mut dyn FnMut() -> i32);

// SAFETY: the lending thread waits in `thread::scope` while the cloner holds the body, so it is
// never used from two threads at once. Its raw pointers (argv/envp arrays) point into data the
// body borrows, which outlives the scope; the cloner only reads them through the forked copy.
unsafe impl Send for LentBody<'_> {}

/// Moves `pid` into each cgroup, the way the cgroup module set them up.
pub fn join_cgroups(cgroup_procs: &[PathBuf], pid: Pid) -> Result<(), String> {
    for path in cgroup_procs {
        let res = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(pid.as_raw().to_string().as_bytes()));
        if let Err(e) = res {
            return Err(format!("adding process to cgroup {}: {e}", path.display()));
        }
    }
    Ok(())
}

/// Kills and reaps a child we cloned unless disarmed, so no error path leaves a stray process.
pub struct ChildGuard(Option<Pid>);

impl ChildGuard {
    pub fn new(pid: Pid) -> ChildGuard {
        ChildGuard(Some(pid))
    }

    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

pub fn errno_io(context: impl Into<String>, e: Errno) -> Error {
    Error::io(context, io::Error::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_even_with_spaces_and_parens_in_the_command_name() {
        let mut fields: Vec<String> = (3..=30).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        fields[1] = "4242".into();
        fields[19] = "987654".into();
        let line = format!("123 (we (ird) name) {}", fields.join(" "));
        assert_eq!(parse_stat(&line), Some((4242, 987654)));
    }

    #[test]
    fn truncated_stat_lines_are_rejected() {
        assert_eq!(parse_stat("1 (init) S 0 1"), None);
        assert_eq!(parse_stat("no parens at all"), None);
    }

    #[test]
    fn groups_with_tasks_files_are_joined_by_the_cloning_thread_and_others_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let (v1a, v1b, v2) = (dir.path().join("memory/c"), dir.path().join("cpu/c"), dir.path().join("unified/c"));
        for d in [&v1a, &v1b, &v2] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("cgroup.procs"), "").unwrap();
        }
        for d in [&v1a, &v1b] {
            std::fs::write(d.join("tasks"), "").unwrap();
        }
        let v1 = [v1a.join("cgroup.procs"), v1b.join("cgroup.procs")];
        assert!(matches!(CgroupEntry::plan(&v1), CgroupEntry::Thread(t) if t == [v1a.join("tasks"), v1b.join("tasks")]));
        let unified = [v2.join("cgroup.procs")];
        assert!(matches!(CgroupEntry::plan(&unified), CgroupEntry::ByPid(p) if p == unified));
        // One hierarchy without a tasks file means the child is moved by pid everywhere.
        let mixed = [v1a.join("cgroup.procs"), v2.join("cgroup.procs")];
        assert!(matches!(CgroupEntry::plan(&mixed), CgroupEntry::ByPid(_)));
        assert!(matches!(CgroupEntry::plan(&[]), CgroupEntry::ByPid(p) if p.is_empty()));
    }

    #[test]
    fn our_own_stat_names_our_parent() {
        let (ppid, start) = read_stat(std::process::id() as i32).unwrap();
        assert_eq!(ppid, nix::unistd::getppid().as_raw());
        assert!(start > 0);
    }
}

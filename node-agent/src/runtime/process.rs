//! Process plumbing: clone, pidfds, /proc/<pid>/stat, cgroup membership.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::{Error, MountTemplate, Result};

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
                join_as_this_thread(tasks)?;
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

/// Moves the calling thread (only it) into each v1 group by writing "0" to its `tasks` file.
fn join_as_this_thread(tasks: &[PathBuf]) -> Result<(), String> {
    for path in tasks {
        std::fs::write(path, "0").map_err(|e| format!("joining cgroup {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The stack a memory-sharing child runs on: mapped on its own with an inaccessible guard page
/// below it, so an overflow faults instead of writing into the agent's heap.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new(size: usize) -> io::Result<ChildStack> {
        let page = 4096;
        let len = size + page;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Stacks grow down: the child starts at the top (16-byte aligned, as mmap returns pages).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which clone(2) expects.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used by anyone.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// What the memory-sharing child starts with: its plan and the function to run on it.
struct Start<P> {
    plan: Arc<P>,
    body: fn(&P) -> i32,
}

/// Moves a `Start` to the cloning thread. The plan is only ever read: by the child, and by the
/// caller who keeps its own `Arc`; its raw pointers (argv/envp arrays) point into the plan.
struct SendStart<P>(Box<Start<P>>);
// SAFETY: see above; nothing in a plan is written after it is built.
unsafe impl<P> Send for SendStart<P> {}

extern "C" fn start_child<P>(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Start` the cloning thread keeps alive until this child has exec'd
    // or exited.
    let start = unsafe { &*(arg as *const Start<P>) };
    exit_now((start.body)(&start.plan))
}

/// Starts a child that shares the agent's memory until it execs (`CLONE_VM`, as posix_spawn
/// does): no page tables are copied at clone, none are torn down at exec, and the agent takes no
/// copy-on-write faults meanwhile. On this machine that is most of the 1.5 to 2.5 ms a fork-style
/// clone of the agent took.
///
/// Sharing memory has rules, kept here:
/// - The child runs `body` on a stack of its own and must end in `execve` or `_exit`, making only
///   raw syscalls (no allocation, no locks), as after any clone of a multi-threaded process.
/// - The child uses the thread-local area of the thread that cloned it (errno, the stack
///   protector's canary). So a dedicated thread clones it and then does nothing but wait, on a
///   close-on-exec pipe whose write end only the child still holds, until the child has exec'd
///   or exited; only then does it free the child's stack and its `Start`. The caller never waits
///   for that thread.
/// - With cgroup v1 the cloning thread first joins the container's groups, so the child is born
///   in them (see `CgroupEntry`); otherwise the caller moves it by pid.
/// - With `mounts`, the cloning thread first enters that mount namespace, so a child with
///   `CLONE_NEWNS` copies it rather than the agent's (see `MountTemplate`).
pub fn spawn_sharing_memory<P: 'static>(
    flags: CloneFlags,
    cgroups: &CgroupEntry,
    mounts: Option<Arc<MountTemplate>>,
    plan: Arc<P>,
    body: fn(&P) -> i32,
) -> Result<Pid, String> {
    let tasks = match cgroups {
        CgroupEntry::Thread(tasks) => tasks.clone(),
        CgroupEntry::ByPid(_) => Vec::new(),
    };
    let start = SendStart(Box::new(Start { plan, body }));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Pid, String>>(1);
    let cloner = move || {
        let start = start;
        if let Some(Err(e)) = mounts.as_ref().map(|m| m.enter()) {
            return drop(tx.send(Err(format!("entering the mount template: {}", e.desc()))));
        }
        if let Err(e) = join_as_this_thread(&tasks) {
            return drop(tx.send(Err(e)));
        }
        let stack = match ChildStack::new(CHILD_STACK) {
            Ok(s) => s,
            Err(e) => return drop(tx.send(Err(format!("mapping the child's stack: {e}")))),
        };
        let (gone_r, gone_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return drop(tx.send(Err(format!("pipe: {}", e.desc())))),
        };
        let arg = &*start.0 as *const Start<P> as *mut libc::c_void;
        let all = flags.bits() | libc::CLONE_VM | libc::SIGCHLD;
        // SAFETY: the child runs `start_child` on `stack`; both outlive its use of our memory
        // (the wait below).
        let pid = unsafe { libc::clone(start_child::<P>, stack.top(), all, arg) };
        if pid == -1 {
            let _ = tx.send(Err(Errno::last().desc().to_string()));
            return;
        }
        drop(gone_w);
        let _ = tx.send(Ok(Pid::from_raw(pid)));
        // The child holds the only write end left; it closes at exec or exit. errno may be the
        // child's (we share it), so any failure just reads again: EINTR is the only one a pipe
        // we own can give.
        let mut byte = 0u8;
        // SAFETY: reading one byte into a local.
        while unsafe { libc::read(gone_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) } != 0 {}
        drop((stack, start));
    };
    std::thread::Builder::new().name("container-clone".into()).spawn(cloner).map_err(|e| format!("starting the cloning thread: {e}"))?;
    rx.recv().unwrap_or_else(|_| Err("the cloning thread ended without a child".into()))
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

//! The system calls made by a freshly cloned child, behind a trait so the mount and namespace
//! sequence can be checked in unit tests without root (as youki does).
//!
//! Every method of [`LinuxSyscall`] is a thin wrapper over one libc call: the child that uses it
//! was cloned from a multi-threaded process, so nothing here may allocate or take a lock.

use std::ffi::{CStr, CString, c_char};
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// A NULL-terminated array of C strings (argv, envp) built before the clone, so `execve` needs no
/// allocation in the child.
pub struct CArray {
    strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CArray {
    pub fn new(strings: Vec<CString>) -> CArray {
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArray { strings, ptrs }
    }

    pub fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }

    pub fn strings(&self) -> &[CString] {
        &self.strings
    }
}

pub trait Syscall {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: MsFlags,
        data: Option<&CStr>,
    ) -> Result<(), Errno>;
    fn umount2(&self, target: &CStr, flags: MntFlags) -> Result<(), Errno>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno>;
    fn chdir(&self, path: &CStr) -> Result<(), Errno>;
    fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno>;
    fn rmdir(&self, path: &CStr) -> Result<(), Errno>;
    /// Creates an empty regular file if nothing exists at `path` (a bind-mount target).
    fn create_file(&self, path: &CStr, mode: u32) -> Result<(), Errno>;
    fn mknod(&self, path: &CStr, mode: u32, dev: u64) -> Result<(), Errno>;
    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno>;
    fn setns(&self, fd: RawFd, nstype: CloneFlags) -> Result<(), Errno>;
    fn sethostname(&self, name: &[u8]) -> Result<(), Errno>;
    /// Sets IFF_UP on the loopback interface of the current network namespace.
    fn loopback_up(&self) -> Result<(), Errno>;
    fn setsid(&self) -> Result<(), Errno>;
    fn setgroups(&self, gids: &[u32]) -> Result<(), Errno>;
    fn setresgid(&self, gid: u32) -> Result<(), Errno>;
    fn setresuid(&self, uid: u32) -> Result<(), Errno>;
    fn umask(&self, mask: u32);
    fn dup2(&self, from: RawFd, to: RawFd) -> Result<(), Errno>;
    /// Marks every descriptor from `first` up close-on-exec, so nothing the agent inherited leaks.
    fn cloexec_from(&self, first: RawFd) -> Result<(), Errno>;
    /// TIOCSCTTY: makes `fd` (a pty slave) the session's controlling terminal.
    fn set_controlling_tty(&self, fd: RawFd) -> Result<(), Errno>;
    /// PR_SET_PDEATHSIG(SIGKILL), then ESRCH if the parent (outside our PID namespace) is already
    /// gone. Call after the credential change, which clears the setting.
    fn kill_on_parent_death(&self) -> Result<(), Errno>;
    /// Only returns on failure.
    fn execve(&self, path: &CStr, argv: &CArray, envp: &CArray) -> Errno;
}

/// The real thing.
pub struct LinuxSyscall;

fn check(ret: libc::c_int) -> Result<(), Errno> {
    if ret == -1 { Err(Errno::last()) } else { Ok(()) }
}

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: MsFlags,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        // SAFETY: all pointers are NUL-terminated strings or NULL, valid for the call.
        check(unsafe {
            libc::mount(opt_ptr(source), target.as_ptr(), opt_ptr(fstype), flags.bits(), opt_ptr(data).cast())
        })
    }

    fn umount2(&self, target: &CStr, flags: MntFlags) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::umount2(target.as_ptr(), flags.bits()) })
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C strings; glibc has no wrapper for pivot_root.
        let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
        if ret == -1 { Err(Errno::last()) } else { Ok(()) }
    }

    fn chdir(&self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::chdir(path.as_ptr()) })
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) })
    }

    fn rmdir(&self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::rmdir(path.as_ptr()) })
    }

    fn create_file(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
        // SAFETY: valid C string; the descriptor is closed right away.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC, mode) };
        if fd == -1 {
            return Err(Errno::last());
        }
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        Ok(())
    }

    fn mknod(&self, path: &CStr, mode: u32, dev: u64) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::mknod(path.as_ptr(), mode, dev) })
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C strings.
        check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
    }

    fn setns(&self, fd: RawFd, nstype: CloneFlags) -> Result<(), Errno> {
        // SAFETY: plain syscall on a descriptor owned by the plan.
        check(unsafe { libc::setns(fd, nstype.bits()) })
    }

    fn sethostname(&self, name: &[u8]) -> Result<(), Errno> {
        // SAFETY: pointer and length describe `name`.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }

    fn loopback_up(&self) -> Result<(), Errno> {
        // SAFETY: plain socket and ioctl calls on a zeroed ifreq that we own.
        unsafe {
            let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if sock == -1 {
                return Err(Errno::last());
            }
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as c_char;
            }
            let mut ret = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
            if ret != -1 {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                ret = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
            }
            let err = Errno::last();
            libc::close(sock);
            if ret == -1 { Err(err) } else { Ok(()) }
        }
    }

    fn setsid(&self) -> Result<(), Errno> {
        // SAFETY: no arguments.
        if unsafe { libc::setsid() } == -1 { Err(Errno::last()) } else { Ok(()) }
    }

    // Raw syscalls, not the glibc wrappers: those broadcast the change to every thread of the
    // process glibc believes it is (the agent's threads, which do not exist in the child) and
    // wait for their answers.
    fn setgroups(&self, gids: &[u32]) -> Result<(), Errno> {
        // SAFETY: pointer and length describe `gids`.
        let ret = unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) };
        if ret == -1 { Err(Errno::last()) } else { Ok(()) }
    }

    fn setresgid(&self, gid: u32) -> Result<(), Errno> {
        // SAFETY: plain syscall.
        let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
        if ret == -1 { Err(Errno::last()) } else { Ok(()) }
    }

    fn setresuid(&self, uid: u32) -> Result<(), Errno> {
        // SAFETY: plain syscall.
        let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        if ret == -1 { Err(Errno::last()) } else { Ok(()) }
    }

    fn umask(&self, mask: u32) {
        // SAFETY: plain syscall.
        unsafe { libc::umask(mask) };
    }

    fn dup2(&self, from: RawFd, to: RawFd) -> Result<(), Errno> {
        if from == to {
            // dup2 would keep FD_CLOEXEC set on a descriptor we want to hand over.
            // SAFETY: plain fcntl on a descriptor owned by the plan.
            return check(unsafe { libc::fcntl(from, libc::F_SETFD, 0) });
        }
        // SAFETY: plain syscall.
        check(unsafe { libc::dup2(from, to) })
    }

    fn cloexec_from(&self, first: RawFd) -> Result<(), Errno> {
        // SAFETY: plain syscall.
        let ret = unsafe {
            libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC)
        };
        if ret == -1 { Err(Errno::last()) } else { Ok(()) }
    }

    fn set_controlling_tty(&self, fd: RawFd) -> Result<(), Errno> {
        // SAFETY: plain ioctl.
        check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) })
    }

    fn kill_on_parent_death(&self) -> Result<(), Errno> {
        // Only ever used in a child whose parent is outside its PID namespace, where getppid()
        // reads 0 until that parent dies and the child is re-parented to the namespace's init.
        // SAFETY: plain prctl and getppid.
        unsafe {
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0))?;
            if libc::getppid() != 0 { Err(Errno::ESRCH) } else { Ok(()) }
        }
    }

    fn execve(&self, path: &CStr, argv: &CArray, envp: &CArray) -> Errno {
        // SAFETY: both arrays are NULL-terminated arrays of valid C strings kept alive by the plan.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Errno::last()
    }
}

/// Records calls as strings; `execve` succeeds only for the paths in `executables`.
#[cfg(test)]
pub mod recording {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    pub struct RecordingSyscall {
        pub calls: RefCell<Vec<String>>,
        pub executables: Vec<String>,
        /// Calls whose recorded text starts with this fail with the given errno.
        pub fail: Option<(String, Errno)>,
    }

    fn s(c: &CStr) -> String {
        c.to_string_lossy().into_owned()
    }

    /// "MsFlags(MS_BIND | MS_REC)" -> "MS_BIND | MS_REC".
    fn f(flags: impl std::fmt::Debug) -> String {
        let d = format!("{flags:?}");
        match (d.find('('), d.rfind(')')) {
            (Some(a), Some(b)) if a < b => d[a + 1..b].to_string(),
            _ => d,
        }
    }

    fn o(c: Option<&CStr>) -> String {
        c.map_or_else(|| "-".to_string(), s)
    }

    impl RecordingSyscall {
        fn record(&self, call: String) -> Result<(), Errno> {
            let failing = matches!(&self.fail, Some((prefix, _)) if call.starts_with(prefix.as_str()));
            self.calls.borrow_mut().push(call);
            match &self.fail {
                Some((_, errno)) if failing => Err(*errno),
                _ => Ok(()),
            }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Syscall for RecordingSyscall {
        fn mount(
            &self,
            source: Option<&CStr>,
            target: &CStr,
            fstype: Option<&CStr>,
            flags: MsFlags,
            data: Option<&CStr>,
        ) -> Result<(), Errno> {
            self.record(format!("mount {} {} {} {} {}", o(source), s(target), o(fstype), f(flags), o(data)))
        }
        fn umount2(&self, target: &CStr, flags: MntFlags) -> Result<(), Errno> {
            self.record(format!("umount2 {} {}", s(target), f(flags)))
        }
        fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
            self.record(format!("pivot_root {} {}", s(new_root), s(put_old)))
        }
        fn chdir(&self, path: &CStr) -> Result<(), Errno> {
            self.record(format!("chdir {}", s(path)))
        }
        fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
            self.record(format!("mkdir {} {mode:o}", s(path)))
        }
        fn rmdir(&self, path: &CStr) -> Result<(), Errno> {
            self.record(format!("rmdir {}", s(path)))
        }
        fn create_file(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
            self.record(format!("create_file {} {mode:o}", s(path)))
        }
        fn mknod(&self, path: &CStr, mode: u32, dev: u64) -> Result<(), Errno> {
            self.record(format!("mknod {} {mode:o} {}:{}", s(path), libc::major(dev), libc::minor(dev)))
        }
        fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno> {
            self.record(format!("symlink {} {}", s(target), s(link)))
        }
        fn setns(&self, fd: RawFd, nstype: CloneFlags) -> Result<(), Errno> {
            self.record(format!("setns {fd} {}", f(nstype)))
        }
        fn sethostname(&self, name: &[u8]) -> Result<(), Errno> {
            self.record(format!("sethostname {}", String::from_utf8_lossy(name)))
        }
        fn loopback_up(&self) -> Result<(), Errno> {
            self.record("loopback_up".to_string())
        }
        fn setsid(&self) -> Result<(), Errno> {
            self.record("setsid".to_string())
        }
        fn setgroups(&self, gids: &[u32]) -> Result<(), Errno> {
            self.record(format!("setgroups {gids:?}"))
        }
        fn setresgid(&self, gid: u32) -> Result<(), Errno> {
            self.record(format!("setresgid {gid}"))
        }
        fn setresuid(&self, uid: u32) -> Result<(), Errno> {
            self.record(format!("setresuid {uid}"))
        }
        fn umask(&self, mask: u32) {
            let _ = self.record(format!("umask {mask:o}"));
        }
        fn dup2(&self, from: RawFd, to: RawFd) -> Result<(), Errno> {
            self.record(format!("dup2 {from} {to}"))
        }
        fn cloexec_from(&self, first: RawFd) -> Result<(), Errno> {
            self.record(format!("cloexec_from {first}"))
        }
        fn set_controlling_tty(&self, fd: RawFd) -> Result<(), Errno> {
            self.record(format!("set_controlling_tty {fd}"))
        }
        fn kill_on_parent_death(&self) -> Result<(), Errno> {
            self.record("kill_on_parent_death".to_string())
        }
        fn execve(&self, path: &CStr, argv: &CArray, envp: &CArray) -> Errno {
            let join = |a: &CArray| a.strings().iter().map(|c| s(c)).collect::<Vec<_>>().join(" ");
            if let Err(e) = self.record(format!("execve {} [{}] [{}]", s(path), join(argv), join(envp))) {
                return e;
            }
            if self.executables.iter().any(|e| e.as_str() == s(path)) {
                // Pretend the image replaced us; tests treat this errno as "exec happened".
                Errno::UnknownErrno
            } else {
                Errno::ENOENT
            }
        }
    }
}

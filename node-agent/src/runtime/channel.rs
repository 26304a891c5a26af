//! The typed parent/child handshake over a `SOCK_SEQPACKET` socket pair.
//!
//! Parent -> child: [`Go::Setup`] (start preparing), then [`Go::Exec`] once the parent has put the
//! pid in its cgroups and saved the state (end-of-file instead: abort and exit). The parent's work
//! overlaps the child's setup, and a child whose agent dies before `Go::Exec` exits on its own.
//! Child -> parent: zero or more fixed-size records, then end-of-file. The child's end is
//! close-on-exec, so end-of-file without a failure record means the `execve` succeeded.
//! Child-side functions only make raw syscalls on stack buffers (see the module docs in `mod.rs`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::process::above_stdio;

const TAG_FAILED: u32 = 1;
const TAG_PTY_MASTER: u32 = 2;
const RECORD_LEN: usize = 16;

/// The parent's go-aheads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Go {
    Setup = b's',
    Exec = b'x',
}

/// Where in the child's setup a syscall failed; with `index` and the errno it names the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    JoinNamespace = 1,
    Setsid,
    MakePrivate,
    MountRootfs,
    MountDev,
    PivotRoot,
    MountProc,
    Device,
    MountSys,
    Mount,
    MountReadOnly,
    MaskPath,
    DetachOldRoot,
    Workdir,
    ReadOnlyRoot,
    Stdio,
    Credentials,
    Exec,
    Hostname,
    Loopback,
    BindNamespace,
    Fork,
    Pty,
}

impl Stage {
    const ALL: [Stage; 23] = [
        Stage::JoinNamespace,
        Stage::Setsid,
        Stage::MakePrivate,
        Stage::MountRootfs,
        Stage::MountDev,
        Stage::PivotRoot,
        Stage::MountProc,
        Stage::Device,
        Stage::MountSys,
        Stage::Mount,
        Stage::MountReadOnly,
        Stage::MaskPath,
        Stage::DetachOldRoot,
        Stage::Workdir,
        Stage::ReadOnlyRoot,
        Stage::Stdio,
        Stage::Credentials,
        Stage::Exec,
        Stage::Hostname,
        Stage::Loopback,
        Stage::BindNamespace,
        Stage::Fork,
        Stage::Pty,
    ];

    fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub index: u32,
    pub errno: Errno,
}

impl Failure {
    pub fn new(stage: Stage, index: usize, errno: Errno) -> Failure {
        Failure { stage, index: u32::try_from(index).unwrap_or(u32::MAX), errno }
    }
}

/// What the child reports.
#[derive(Debug)]
pub enum ChildMsg {
    Failed(Failure),
    PtyMaster(OwnedFd),
}

fn encode(tag: u32, f: Option<&Failure>) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..4].copy_from_slice(&tag.to_le_bytes());
    if let Some(f) = f {
        b[4..8].copy_from_slice(&(f.stage as u32).to_le_bytes());
        b[8..12].copy_from_slice(&f.index.to_le_bytes());
        b[12..16].copy_from_slice(&(f.errno as i32).to_le_bytes());
    }
    b
}

fn word(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn decode(b: &[u8], fd: Option<OwnedFd>) -> io::Result<ChildMsg> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed message from child process");
    if b.len() != RECORD_LEN {
        return Err(bad());
    }
    match (word(b, 0), fd) {
        (TAG_FAILED, _) => {
            let stage = Stage::from_u32(word(b, 4)).ok_or_else(bad)?;
            let errno = Errno::from_raw(word(b, 12) as i32);
            Ok(ChildMsg::Failed(Failure { stage, index: word(b, 8), errno }))
        }
        (TAG_PTY_MASTER, Some(fd)) => Ok(ChildMsg::PtyMaster(fd)),
        _ => Err(bad()),
    }
}

/// Returns (parent end, child end), both close-on-exec and above the stdio numbers so the
/// child's `dup2` onto 0-2 can never clobber them.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    let ret = unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(a)?, above_stdio(b)?))
}

pub fn send_go(sock: &OwnedFd, go: Go) -> io::Result<()> {
    let b = [go as u8];
    // SAFETY: one byte from a valid buffer.
    let n = unsafe { libc::send(sock.as_raw_fd(), b.as_ptr().cast(), 1, libc::MSG_NOSIGNAL) };
    if n == 1 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Waits up to `timeout_ms` (-1: forever) for the next record; `None` is end-of-file.
pub fn recv(sock: &OwnedFd, timeout_ms: i32) -> io::Result<Option<ChildMsg>> {
    if !super::process::poll_readable(sock.as_raw_fd(), timeout_ms)? {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "child process did not report in time"));
    }
    let mut buf = [0u8; RECORD_LEN];
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; every pointer set below refers to a live local buffer.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    let n = loop {
        // SAFETY: msg describes valid buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fd = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
                // Only one descriptor is ever sent; owning it closes it if the message is bad.
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 {
        return Ok(None);
    }
    decode(&buf[..n], fd).map(Some)
}

// ---- child side: raw syscalls only ----

/// Blocks until the parent says `go`; false if the parent went away (or said something else).
pub fn child_wait_go(sock: RawFd, go: Go) -> bool {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: one byte into a valid buffer.
        let n = unsafe { libc::read(sock, b.as_mut_ptr().cast(), 1) };
        if n == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        return n == 1 && b[0] == go as u8;
    }
}

pub fn child_send_failure(sock: RawFd, f: &Failure) {
    let b = encode(TAG_FAILED, Some(f));
    // SAFETY: valid buffer; nothing more can be done if the parent is gone.
    unsafe { libc::send(sock, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
}

pub fn child_send_pty_master(sock: RawFd, master: RawFd) -> Result<(), Errno> {
    let mut b = encode(TAG_PTY_MASTER, None);
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() };
    // SAFETY: every pointer refers to a live local buffer large enough for one SCM_RIGHTS fd.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), master);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) == -1 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_record_survives_the_trip_through_the_socket() {
        let (parent, child) = socketpair().unwrap();
        let f = Failure::new(Stage::Mount, 3, Errno::ENOTDIR);
        child_send_failure(child.as_raw_fd(), &f);
        drop(child);
        match recv(&parent, 1000).unwrap() {
            Some(ChildMsg::Failed(got)) => assert_eq!(got, f),
            other => panic!("unexpected {other:?}"),
        }
        assert!(recv(&parent, 1000).unwrap().is_none(), "end-of-file after the child end closes");
    }

    #[test]
    fn a_descriptor_sent_by_the_child_arrives_as_a_new_descriptor() {
        let (parent, child) = socketpair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        child_send_pty_master(child.as_raw_fd(), file.as_raw_fd()).unwrap();
        match recv(&parent, 1000).unwrap() {
            Some(ChildMsg::PtyMaster(fd)) => assert_ne!(fd.as_raw_fd(), file.as_raw_fd()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn go_aheads_arrive_in_order_and_a_closed_parent_is_not_go() {
        let (parent, child) = socketpair().unwrap();
        send_go(&parent, Go::Setup).unwrap();
        send_go(&parent, Go::Exec).unwrap();
        assert!(child_wait_go(child.as_raw_fd(), Go::Setup));
        assert!(child_wait_go(child.as_raw_fd(), Go::Exec));
        drop(parent);
        assert!(!child_wait_go(child.as_raw_fd(), Go::Exec));
    }

    #[test]
    fn garbage_records_are_rejected() {
        assert!(decode(&[1, 2, 3], None).is_err());
        assert!(decode(&encode(TAG_PTY_MASTER, None), None).is_err(), "pty record without a descriptor");
        let mut b = encode(TAG_FAILED, Some(&Failure::new(Stage::Exec, 0, Errno::ENOENT)));
        b[4] = 200;
        assert!(decode(&b, None).is_err(), "unknown stage");
    }
}

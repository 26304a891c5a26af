//! Tearing a container down: kill, reap, unmount, remove. Idempotent.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::Signal;

use super::container::{Container, Status};
use super::process;
use super::{Error, Result};

/// SIGKILL is not instant for a process stuck in the kernel (D state, e.g. on NFS).
const KILL_TIMEOUT_MS: i32 = 10_000;

impl Container {
    /// Kills the container if it runs (its whole PID namespace dies with PID 1), reaps it if we
    /// are its parent, and removes its root, writable layer and state. The log file is kept.
    pub fn destroy(&self) -> Result<()> {
        if self.status()? == Status::Running {
            self.signal(Signal::SIGKILL)?;
            if let Some(fd) = &self.pidfd {
                let gone = process::poll_readable(fd.as_raw_fd(), KILL_TIMEOUT_MS)
                    .map_err(|e| Error::io("waiting for the container to die", e))?;
                if !gone {
                    return Err(Error::io(
                        format!("killing container {}", self.state.id),
                        io::Error::new(io::ErrorKind::TimedOut, "process did not exit after SIGKILL"),
                    ));
                }
            }
            self.status()?;
        }
        let s = &self.state;
        remove_container_dirs(&self.state_dir, &s.rootfs, &s.upper_dir, &s.work_dir)
    }
}

fn remove_all(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", p.display()), e)),
        _ => Ok(()),
    }
}

/// The overlay is mounted only inside the container's mount namespace, so normally nothing is
/// mounted on the host; the detach covers roots mounted by something else (or an older agent).
pub fn remove_container_dirs(state_dir: &Path, rootfs: &Path, upper: &Path, work: &Path) -> Result<()> {
    if !rootfs.as_os_str().is_empty() {
        match umount2(rootfs, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(process::errno_io(format!("unmounting {}", rootfs.display()), e)),
        }
        // Not remove_dir_all: should anything still be mounted there, fail rather than delete
        // through it.
        match std::fs::remove_dir(rootfs) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", rootfs.display()), e));
            }
            _ => {}
        }
    }
    for dir in [upper, work, state_dir] {
        if !dir.as_os_str().is_empty() {
            remove_all(dir)?;
        }
    }
    Ok(())
}

//! A handle on a running (or finished) container process.
//!
//! Dropping a handle does nothing to the process: containers outlive handles and agents. While the
//! agent that cloned the process holds it, the exit status is reaped with `waitid`; a handle
//! re-adopted by another agent process only learns *that* it exited (through the pidfd), since
//! only the parent can reap.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::process::{self, errno_io};
use super::state::State;
use super::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The exit code Kubernetes reports: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Exited(ExitStatus),
    /// Gone, and how it ended is unknown: it exited while no agent that could reap it was around
    /// (report ContainerStatusUnknown / 137).
    Unknown,
}

pub struct Container {
    pub(super) state: State,
    pub(super) state_dir: PathBuf,
    /// `None` once the process is known to be gone at load time.
    pub(super) pidfd: Option<OwnedFd>,
    /// Whether this process is the container's parent, i.e. can reap it.
    pub(super) is_child: bool,
    /// The terminal status, once seen (it can be reaped only once).
    pub(super) ended: Mutex<Option<Status>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("id", &self.state.id).field("pid", &self.state.pid).finish()
    }
}

impl Container {
    pub(super) fn started(state: State, state_dir: PathBuf, pidfd: OwnedFd) -> Container {
        Container { state, state_dir, pidfd: Some(pidfd), is_child: true, ended: Mutex::new(None) }
    }

    /// Re-adopts the container whose state is in `state_dir`; `None` if there is no state file.
    pub fn load(state_dir: &Path) -> Result<Option<Container>> {
        let Some(state) = State::load(state_dir)? else { return Ok(None) };
        let mut c = Container {
            state,
            state_dir: state_dir.to_path_buf(),
            pidfd: None,
            is_child: false,
            ended: Mutex::new(None),
        };
        if let Some(exit) = c.state.exit {
            *c.ended.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(Status::Exited(exit));
            return Ok(Some(c));
        }
        // Open the pidfd before checking the start time: if the start time then matches, the
        // pidfd refers to our process (a reused pid would have a later start time).
        let found = match process::pidfd_open(c.state.pid) {
            Ok(fd) => match process::read_stat(c.state.pid) {
                Ok((ppid, start)) if start == c.state.start_time => {
                    Some((fd, ppid == nix::unistd::getpid().as_raw()))
                }
                _ => None,
            },
            Err(Errno::ESRCH) => None,
            Err(e) => return Err(errno_io(format!("opening pidfd for pid {}", c.state.pid), e)),
        };
        match found {
            Some((fd, is_child)) => {
                c.pidfd = Some(fd);
                c.is_child = is_child;
            }
            None => *c.ended.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(Status::Unknown),
        }
        Ok(Some(c))
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The host pid of the container's PID 1.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Readable (POLLIN) once the process has exited; for callers with their own event loop.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// Never blocks.
    pub fn status(&self) -> Result<Status> {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = *ended {
            return Ok(s);
        }
        let Some(pidfd) = &self.pidfd else { return Ok(Status::Unknown) };
        let exited = process::poll_readable(pidfd.as_raw_fd(), 0).map_err(|e| Error::io("polling pidfd", e))?;
        if !exited {
            return Ok(Status::Running);
        }
        let status = if self.is_child {
            match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(WaitStatus::Exited(_, code)) => Status::Exited(ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => Status::Exited(ExitStatus::Signal(sig as i32)),
                // Not yet waitable although the pidfd fired: look again next time.
                Ok(_) => return Ok(Status::Running),
                // Reaped by someone else (e.g. SIGCHLD set to SIG_IGN).
                Err(Errno::ECHILD) => Status::Unknown,
                Err(e) => return Err(errno_io("reaping container process", e)),
            }
        } else {
            Status::Unknown
        };
        *ended = Some(status);
        if let Status::Exited(exit) = status {
            // Best effort: a later agent that cannot read it reports Unknown instead.
            let mut state = self.state.clone();
            state.exit = Some(exit);
            let _ = state.save(&self.state_dir);
        }
        Ok(status)
    }

    /// Blocks until the process exits (call from spawn_blocking in async code, or use `wait`).
    pub fn wait_blocking(&self) -> Result<Status> {
        if let Some(fd) = &self.pidfd {
            process::poll_readable(fd.as_raw_fd(), -1).map_err(|e| Error::io("polling pidfd", e))?;
        }
        self.status()
    }

    /// Waits for the process to exit without blocking a tokio worker (the pidfd is registered
    /// with the runtime's reactor). Must be called within a tokio runtime.
    pub async fn wait(&self) -> Result<Status> {
        if let Some(fd) = &self.pidfd {
            let fd = fd.try_clone().map_err(|e| Error::io("duplicating pidfd", e))?;
            // SAFETY: the AsyncFd owns the duplicate, which stays open for its whole life.
            let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| Error::io("registering pidfd", e))?;
            let _ready = afd.readable().await.map_err(|e| Error::io("waiting on pidfd", e))?;
        }
        self.status()
    }

    /// Sends `sig` to the container's PID 1. Signalling an exited container is not an error.
    /// (PID 1 ignores signals it has no handler for, except SIGKILL.)
    pub fn signal(&self, sig: Signal) -> Result<()> {
        if !matches!(self.status()?, Status::Running) {
            return Ok(());
        }
        let Some(fd) = &self.pidfd else { return Ok(()) };
        match process::pidfd_send_signal(fd.as_raw_fd(), sig as i32) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(errno_io(format!("sending {sig} to container {}", self.state.id), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_exit_codes_add_128_to_signals() {
        assert_eq!(ExitStatus::Code(3).code(), 3);
        assert_eq!(ExitStatus::Signal(9).code(), 137);
    }

    #[test]
    fn a_state_whose_pid_belongs_to_another_process_loads_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        // Our own pid, with a start time that cannot be ours.
        let spec = crate::runtime::ContainerSpec { id: "x".into(), ..Default::default() };
        State::new(&spec, std::process::id() as i32, 1).save(dir.path()).unwrap();
        let c = Container::load(dir.path()).unwrap().unwrap();
        assert_eq!(c.status().unwrap(), Status::Unknown);
        assert!(c.pidfd().is_none());
    }

    #[test]
    fn a_recorded_exit_survives_reloading() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::runtime::ContainerSpec { id: "x".into(), ..Default::default() };
        let mut state = State::new(&spec, 1, 1);
        state.exit = Some(ExitStatus::Code(7));
        state.save(dir.path()).unwrap();
        let c = Container::load(dir.path()).unwrap().unwrap();
        assert_eq!(c.status().unwrap(), Status::Exited(ExitStatus::Code(7)));
    }
}

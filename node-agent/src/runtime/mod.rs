//! The node agent's container runtime, written directly on Linux syscalls.
//!
//! Model (see the files for details):
//! - [`Sandbox`]: a pod's network, IPC and UTS namespaces, kept alive without a pause process by
//!   bind-mounting the namespace files under the pod's directory.
//! - [`create`]: starts a container whose PID 1 is the user's process, in its own PID and mount
//!   namespaces, joined to the sandbox's namespaces, on an overlayfs root.
//! - [`Container`]: a handle (status, wait, signal, destroy) that can be dropped and re-adopted
//!   from its state file with [`Container::load`] after an agent restart.
//! - [`exec`]: runs a command inside a running container (kubectl exec), with pipes or a pty.
//! - [`MountTemplate`]: the lean mount namespace containers are cloned from.
//!
//! # How processes are started
//!
//! The agent is a multi-threaded tokio process, so after `clone(2)` the child may only make
//! async-signal-safe calls: another thread may have held the allocator's lock at the time of the
//! clone. Rather than re-executing the agent binary in an "init" mode (which costs an exec and the
//! dynamic loading of a large binary on every container start), the parent turns the spec into a
//! fully precomputed plan ([`init::InitPlan`]: every path, option string, argv/envp array and file
//! descriptor) and the child only walks that plan with raw syscalls: no allocation, no locks, no
//! formatting, and raw syscalls where glibc's wrappers would talk to the agent's other threads
//! (set*id) or take locks (fork). Failures travel back as a fixed-size record (stage, index,
//! errno) over a close-on-exec `SOCK_SEQPACKET` socket; end-of-file on that socket means the
//! `execve` succeeded. The parent's own work (cgroup membership, state file) overlaps the child's
//! mounts; the child execs only after a second go-ahead, so it never runs unrecorded.
//! The mount and namespace logic goes through the [`Syscall`] trait so that it is unit-tested
//! without root by recording the calls. Since nothing re-executes the agent binary, `main` needs
//! no special "init mode" entry point.
//!
//! Containers survive the agent: they are not its process group or session (setsid), get no
//! parent-death signal, and write their logs to a file rather than to a pipe the agent holds.

mod channel;
mod container;
mod create;
mod destroy;
mod exec;
mod init;
mod mount_template;
mod process;
mod pty;
mod rootfs;
mod sandbox;
mod spec;
mod state;
mod syscall;

#[cfg(test)]
mod tests;

pub use container::{Container, ExitStatus, Status};
pub use create::create;
pub use exec::{ExecProcess, exec};
pub use init::merge_env;
pub use mount_template::MountTemplate;
pub use pty::AsyncPty;
pub use sandbox::{Sandbox, truncate_pod_hostname};
pub use spec::{ContainerSpec, ExecSpec, Mount, Rootfs, SandboxNamespaces};
pub use state::State;
pub use syscall::{LinuxSyscall, Syscall};

use std::io;

/// What went wrong, in the terms the kubelet reports to the API: a container whose environment
/// could not be prepared is in `CreateContainerError`, one whose command could not be started is in
/// `RunContainerError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Kubernetes' `CreateContainerError`: rootfs, mounts, working directory, namespaces, cgroups.
    CreateContainer,
    /// Kubernetes' `RunContainerError`: the command is missing, not executable, or the container
    /// is no longer running (for exec).
    RunContainer,
    /// Kubernetes' `CreateContainerConfigError`: the container's configuration cannot be made
    /// (an environment variable this node cannot resolve). Raised by the pod worker.
    CreateContainerConfig,
    /// Anything else: sandbox operations, state files, signals.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container's environment could not be set up.
    #[error("creating container: {0}")]
    Create(String),
    /// The container's (or exec's) command could not be started.
    #[error("starting container process: {0}")]
    Run(String),
    /// A system call or file operation failed outside the two cases above.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A state file exists but cannot be understood.
    #[error("reading container state {path}: {source}")]
    State {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Create(_) => ErrorKind::CreateContainer,
            Error::Run(_) => ErrorKind::RunContainer,
            Error::Io { .. } | Error::State { .. } => ErrorKind::Other,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Io { context: context.into(), source: source.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

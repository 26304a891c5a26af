//! What the caller asks for: a container, or a process to exec in one.

use std::path::PathBuf;

/// The overlayfs root of a container.
#[derive(Debug, Clone, Default)]
pub struct Rootfs {
    /// Image layer directories in manifest order: base layer first.
    pub layers: Vec<PathBuf>,
    /// The container's writable layer (created if missing, removed by destroy).
    pub upper_dir: PathBuf,
    /// overlayfs' scratch directory, on the same filesystem as `upper_dir` (created, removed).
    pub work_dir: PathBuf,
    /// Where the overlay is mounted, inside the container's own mount namespace only (created,
    /// removed).
    pub mount_point: PathBuf,
}

/// A bind mount: a volume (emptyDir or hostPath directory, a projected file) or one of the files
/// the kubelet manages (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/termination-log).
#[derive(Debug, Clone, Default)]
pub struct Mount {
    /// A host path; must exist. Directories and files are both fine.
    pub source: PathBuf,
    /// An absolute path inside the container; created if missing.
    pub destination: PathBuf,
    pub read_only: bool,
}

/// The pod-level namespaces a container joins; `None` stays in the agent's namespace (e.g. the
/// net entry for a hostNetwork pod).
#[derive(Debug, Clone, Default)]
pub struct SandboxNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Unique among the node's containers; used in messages and stored in the state.
    pub id: String,
    /// Holds the state file; created, and removed with everything in it by destroy.
    pub state_dir: PathBuf,
    pub rootfs: Rootfs,
    pub namespaces: SandboxNamespaces,
    /// Applied in order, after /proc, /dev and /sys, so a volume may cover e.g. /dev/shm.
    pub mounts: Vec<Mount>,
    /// The full command line (entrypoint + args already merged); argv[0] is looked up in the
    /// PATH given in `env` (or the usual default) when it has no slash.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The working directory, created if missing (as containerd does); default "/".
    pub cwd: Option<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    pub supplemental_gids: Vec<u32>,
    pub readonly_rootfs: bool,
    /// stdout and stderr are appended here (created if missing); stdin is /dev/null.
    pub log_path: PathBuf,
    /// `cgroup.procs` files the process is added to before it execs.
    pub cgroup_procs: Vec<PathBuf>,
    /// The pod's hostname, set by the process once it has joined the sandbox's UTS namespace (a
    /// warm sandbox was made before its pod was known). Ignored without a UTS namespace to join.
    pub hostname: Option<String>,
    /// The mount namespace the container's is copied from; `None`: the agent's.
    pub mount_template: Option<std::sync::Arc<super::MountTemplate>>,
}

/// A process to run inside a running container (kubectl exec). It runs as the container's user,
/// with the container's environment overridden by `env`.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A pty instead of three pipes.
    pub tty: bool,
    /// Default: the container's working directory.
    pub cwd: Option<PathBuf>,
}

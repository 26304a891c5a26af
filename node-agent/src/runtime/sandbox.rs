//! A pod's shared namespaces (network, IPC, UTS), held without a pause process.
//!
//! A short-lived child is cloned into new namespaces, sets the hostname, brings `lo` up and
//! bind-mounts its /proc/self/ns/{net,ipc,uts} onto files under `<pod dir>/ns/`, then exits. The
//! bind mounts (in the agent's mount namespace) keep the namespaces alive; containers join them
//! with setns, and unmounting them lets the kernel free the namespaces once no process is left.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};

use super::channel::{self, ChildMsg, Failure, Stage};
use super::process::{self, errno_io};
use super::spec::SandboxNamespaces;
use super::syscall::{LinuxSyscall, Syscall};
use super::{Error, Result};

const KINDS: [&str; 3] = ["net", "ipc", "uts"];
const SOURCES: [&std::ffi::CStr; 3] = [c"/proc/self/ns/net", c"/proc/self/ns/ipc", c"/proc/self/ns/uts"];

/// The kubelet's rule (truncatePodHostnameIfNeeded): at most 63 characters, without a trailing
/// '-' or '.' after cutting.
pub fn truncate_pod_hostname(name: &str) -> Result<String> {
    const MAX: usize = 63;
    if name.len() <= MAX {
        return Ok(name.to_string());
    }
    let cut = name.get(..MAX).unwrap_or(name).trim_end_matches(['-', '.']);
    if cut.is_empty() {
        return Err(Error::io(
            "setting the pod hostname",
            io::Error::new(io::ErrorKind::InvalidInput, format!("hostname {name:?} is empty after truncation")),
        ));
    }
    Ok(cut.to_string())
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    dir: PathBuf,
}

struct SandboxPlan {
    sock: i32,
    hostname: Vec<u8>,
    targets: [CString; 3],
}

fn sandbox_setup<S: Syscall>(sys: &S, plan: &SandboxPlan) -> Result<(), Failure> {
    sys.sethostname(&plan.hostname).map_err(|e| Failure::new(Stage::Hostname, 0, e))?;
    sys.loopback_up().map_err(|e| Failure::new(Stage::Loopback, 0, e))?;
    for (i, (src, dst)) in SOURCES.iter().zip(&plan.targets).enumerate() {
        sys.mount(Some(src), dst, None, MsFlags::MS_BIND, None).map_err(|e| Failure::new(Stage::BindNamespace, i, e))?;
    }
    Ok(())
}

fn sandbox_child(plan: &SandboxPlan) -> i32 {
    process::reset_signals();
    match sandbox_setup(&LinuxSyscall, plan) {
        Ok(()) => 0,
        Err(f) => {
            channel::child_send_failure(plan.sock, &f);
            1
        }
    }
}

fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

impl Sandbox {
    /// Creates the namespaces under `dir/ns/`. `hostname` is the pod name (truncated as the
    /// kubelet does). Fails if a sandbox already exists there.
    pub fn create(dir: &Path, hostname: &str) -> Result<Sandbox> {
        let hostname = truncate_pod_hostname(hostname)?;
        let sandbox = Sandbox { dir: dir.to_path_buf() };
        let ns_dir = sandbox.ns_dir();
        if KINDS.iter().any(|k| is_nsfs(&ns_dir.join(k))) {
            return Err(Error::io(
                format!("creating sandbox in {}", dir.display()),
                io::Error::new(io::ErrorKind::AlreadyExists, "a sandbox already exists there"),
            ));
        }
        fs::create_dir_all(&ns_dir).map_err(|e| Error::io(format!("creating {}", ns_dir.display()), e))?;
        let result = sandbox.start(&hostname);
        if result.is_err() {
            let _ = sandbox.destroy();
        }
        result.map(|()| sandbox)
    }

    fn start(&self, hostname: &str) -> Result<()> {
        let mut targets = Vec::with_capacity(3);
        for kind in KINDS {
            let path = self.ns_dir().join(kind);
            fs::File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            targets.push(CString::new(path.as_os_str().as_bytes()).map_err(|e| Error::io("sandbox path", e))?);
        }
        let targets: [CString; 3] = targets.try_into().map_err(|_| Error::io("sandbox", io::ErrorKind::Other))?;
        let (sock, child_sock) = channel::socketpair().map_err(|e| Error::io("socketpair", e))?;
        let plan = Arc::new(SandboxPlan { sock: child_sock.as_raw_fd(), hostname: hostname.as_bytes().to_vec(), targets });
        let flags = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
        // Sharing the agent's memory, as containers are started: a fork-style clone copied the
        // agent's page tables and then made every agent thread take copy-on-write faults.
        let pid = process::spawn_sharing_memory(flags, &process::CgroupEntry::ByPid(&[]), None, plan, sandbox_child)
            .map_err(|e| Error::io("cloning the sandbox process", io::Error::other(e)))?;
        drop(child_sock);
        let status = loop {
            match waitpid(pid, None) {
                Err(Errno::EINTR) => continue,
                other => break other.map_err(|e| errno_io("waiting for the sandbox process", e))?,
            }
        };
        if status == WaitStatus::Exited(pid, 0) {
            return Ok(());
        }
        let what = match channel::recv(&sock, 0) {
            Ok(Some(ChildMsg::Failed(f))) => {
                let step = match f.stage {
                    Stage::Hostname => format!("setting hostname {hostname:?}"),
                    Stage::Loopback => "bringing up lo".to_string(),
                    _ => format!("bind-mounting the {} namespace", KINDS.get(f.index as usize).unwrap_or(&"?")),
                };
                return Err(errno_io(step, f.errno));
            }
            _ => format!("sandbox process ended with {status:?}"),
        };
        Err(Error::io(what, io::ErrorKind::Other))
    }

    /// Finds the sandbox created earlier under `dir` (e.g. after an agent restart).
    pub fn open(dir: &Path) -> Result<Sandbox> {
        let sandbox = Sandbox { dir: dir.to_path_buf() };
        for kind in KINDS {
            let path = sandbox.ns_dir().join(kind);
            if !is_nsfs(&path) {
                return Err(Error::io(
                    format!("opening sandbox {}", dir.display()),
                    io::Error::new(io::ErrorKind::NotFound, format!("{} is not a namespace mount", path.display())),
                ));
            }
        }
        Ok(sandbox)
    }

    /// Unmounts and removes the namespace files; the pod directory itself is left to its owner.
    /// Idempotent.
    pub fn destroy(&self) -> Result<()> {
        let ns_dir = self.ns_dir();
        for kind in KINDS {
            let path = ns_dir.join(kind);
            // A file may carry stacked mounts if a create was ever retried over a live one.
            for _ in 0..8 {
                match umount2(&path, MntFlags::MNT_DETACH) {
                    Ok(()) => continue,
                    Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
                    Err(e) => return Err(errno_io(format!("unmounting {}", path.display()), e)),
                }
            }
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("removing {}", path.display()), e));
                }
                _ => {}
            }
        }
        match fs::remove_dir(&ns_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", ns_dir.display()), e)),
            _ => Ok(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ns_dir(&self) -> PathBuf {
        self.dir.join("ns")
    }

    /// For the network code: `ip netns exec`-style setns, veth moves, addresses.
    pub fn net_ns_path(&self) -> PathBuf {
        self.ns_dir().join("net")
    }

    pub fn ipc_ns_path(&self) -> PathBuf {
        self.ns_dir().join("ipc")
    }

    pub fn uts_ns_path(&self) -> PathBuf {
        self.ns_dir().join("uts")
    }

    /// What a container of this pod joins.
    pub fn namespaces(&self) -> SandboxNamespaces {
        SandboxNamespaces {
            net: Some(self.net_ns_path()),
            ipc: Some(self.ipc_ns_path()),
            uts: Some(self.uts_ns_path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::syscall::recording::RecordingSyscall;

    // Ported from kubelet_pods_test.go TestTruncatePodHostname.
    #[test]
    fn pod_hostnames_are_truncated_like_the_kubelet_does() {
        let cases = [
            ("test.pod.hostname", "test.pod.hostname"),
            (
                "1234567.1234567.1234567.1234567.1234567.1234567.1234567.1234567.1234567.",
                "1234567.1234567.1234567.1234567.1234567.1234567.1234567.1234567",
            ),
            (
                "1234567.1234567.1234567.1234567.1234567.1234567.1234567.123456.1234567.",
                "1234567.1234567.1234567.1234567.1234567.1234567.1234567.123456",
            ),
            (
                "1234567.1234567.1234567.1234567.1234567.1234567.1234567.123456-1234567.",
                "1234567.1234567.1234567.1234567.1234567.1234567.1234567.123456",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(truncate_pod_hostname(input).unwrap(), want, "{input}");
        }
        assert!(truncate_pod_hostname(&"-".repeat(70)).is_err());
    }

    #[test]
    fn the_sandbox_child_names_the_host_then_raises_lo_then_pins_each_namespace() {
        let plan = SandboxPlan {
            sock: -1,
            hostname: b"web-0".to_vec(),
            targets: [c"/p/ns/net".into(), c"/p/ns/ipc".into(), c"/p/ns/uts".into()],
        };
        let sys = RecordingSyscall::default();
        sandbox_setup(&sys, &plan).unwrap();
        assert_eq!(
            sys.calls(),
            [
                "sethostname web-0",
                "loopback_up",
                "mount /proc/self/ns/net /p/ns/net - MS_BIND -",
                "mount /proc/self/ns/ipc /p/ns/ipc - MS_BIND -",
                "mount /proc/self/ns/uts /p/ns/uts - MS_BIND -",
            ]
        );
    }

    #[test]
    fn opening_a_directory_without_a_sandbox_fails_and_destroying_it_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Sandbox::open(dir.path()).is_err());
        Sandbox { dir: dir.path().to_path_buf() }.destroy().unwrap();
    }
}

//! The mount namespace containers are cloned from: the agent's, without the pods' sandbox pins.
//!
//! `clone(CLONE_NEWNS)` copies every mount of the creator's namespace, and the container drops
//! them all again when it detaches the old root. The agent's namespace holds three mounts per
//! pod (the bind mounts that keep each sandbox's namespaces alive, under `DATA/run`), and with
//! `control-plane up` every node's agent shares one namespace. So each container start copied and
//! then tore down a tree that grew with the pods: on the development machine the clone took
//! 150 µs with one pod and 450 µs with 50, the old root's detach 85 µs and 150 µs.
//!
//! The template is a copy of the agent's namespace made once, at start, in which `DATA/run` is
//! the same tmpfs without anything mounted below it. `DATA/run` is private in the agent's
//! namespace, so the pins made later stay out of the template; everything else in the template
//! is a slave of the agent's namespace, so filesystems the host mounts later (a `hostPath`
//! volume's, say) still appear in it. The template holds no process: an open descriptor of
//! its namespace keeps it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

#[derive(Debug)]
pub struct MountTemplate {
    ns: OwnedFd,
}

impl MountTemplate {
    /// Makes the template. `run_dir` must be a private mount point (see `run_dir::prepare`):
    /// mounts made under it later must not reach the template.
    pub fn create(run_dir: &Path) -> io::Result<MountTemplate> {
        let run = CString::new(run_dir.as_os_str().as_bytes())?;
        // Only this thread moves to the new namespace; it ends once the namespace is made.
        let made = std::thread::Builder::new().name("mount-template".into()).spawn(move || -> Result<OwnedFd, String> {
            let step = |what: &'static str| move |e: Errno| format!("{what}: {}", e.desc());
            unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).map_err(step("unsharing the mount namespace"))?;
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>).map_err(step("making mounts slaves"))?;
            // The tmpfs alone, detached, then put back in place of itself and all its submounts.
            let tmpfs = open_tree_clone(&run).map_err(step("cloning the state tmpfs"))?;
            umount2(run.as_c_str(), MntFlags::MNT_DETACH).map_err(step("detaching the state tmpfs"))?;
            move_mount(&tmpfs, &run).map_err(step("mounting the state tmpfs again"))?;
            // A copy of a shared or slave mount stays in its peer group; private, no pin made
            // later in the agent's namespace can reach the template, whatever DATA/run was.
            mount(None::<&str>, run.as_c_str(), None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).map_err(step("making the state tmpfs private"))?;
            let ns = std::fs::File::open("/proc/thread-self/ns/mnt").map_err(|e| format!("opening the namespace: {e}"))?;
            Ok(ns.into())
        })?;
        let ns = made.join().map_err(|_| io::Error::other("the mount template thread panicked"))?.map_err(io::Error::other)?;
        Ok(MountTemplate { ns })
    }

    /// Moves the calling thread into the template, for a thread about to clone a container.
    /// The thread first gets a filesystem context of its own (root, working directory), so no
    /// other thread of the agent changes namespace; such a thread should end after its clone.
    pub fn enter(&self) -> Result<(), Errno> {
        unshare(CloneFlags::CLONE_FS)?;
        setns(&self.ns, CloneFlags::CLONE_NEWNS)
    }
}

/// `open_tree(2)` with `OPEN_TREE_CLONE` and no `AT_RECURSIVE`: a detached copy of the mount at
/// `path` without its submounts.
fn open_tree_clone(path: &CString) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: a NUL-terminated path; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a descriptor we own from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `move_mount(2)` of a detached tree onto `target`.
fn move_mount(tree: &OwnedFd, target: &CString) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // SAFETY: a valid descriptor, an empty path and a NUL-terminated target.
    let ret = unsafe { libc::syscall(libc::SYS_move_mount, tree.as_raw_fd(), c"".as_ptr(), libc::AT_FDCWD, target.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A private tmpfs with a bind mount below it, unmounted on drop.
    struct StateTmpfs {
        dir: tempfile::TempDir,
        pins: Vec<PathBuf>,
    }

    impl StateTmpfs {
        fn new() -> Option<StateTmpfs> {
            if !nix::unistd::geteuid().is_root() {
                eprintln!("skipped: needs root");
                return None;
            }
            let dir = tempfile::Builder::new().prefix("mount-template-").tempdir().unwrap();
            mount(Some("tmpfs"), dir.path(), Some("tmpfs"), MsFlags::empty(), Some("size=1m")).unwrap();
            mount(None::<&str>, dir.path(), None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).unwrap();
            Some(StateTmpfs { dir, pins: Vec::new() })
        }

        fn pin(&mut self, name: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, "").unwrap();
            mount(Some("/proc/self/ns/net"), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
            self.pins.push(p.clone());
            p
        }
    }

    impl Drop for StateTmpfs {
        fn drop(&mut self) {
            for p in &self.pins {
                let _ = umount2(p, MntFlags::MNT_DETACH);
            }
            let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
        }
    }

    /// The mount points a thread that entered `t` sees, and the content of `file` there.
    fn seen_from(t: &MountTemplate, file: &Path) -> (String, String) {
        std::thread::scope(|s| {
            s.spawn(|| {
                t.enter().unwrap();
                let mounts = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
                (mounts, std::fs::read_to_string(file).unwrap_or_default())
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn the_template_has_the_state_tmpfs_and_its_files_but_none_of_the_pins() {
        let Some(mut state) = StateTmpfs::new() else { return };
        let before = state.pin("pin-before");
        let template = MountTemplate::create(state.dir.path()).unwrap();
        let after = state.pin("pin-after");
        std::fs::write(state.dir.path().join("hosts"), "written after").unwrap();
        let (mounts, hosts) = seen_from(&template, &state.dir.path().join("hosts"));
        let dir = state.dir.path().to_str().unwrap();
        assert!(mounts.lines().any(|l| l.split(' ').nth(4) == Some(dir)), "the tmpfs is there:\n{mounts}");
        for pin in [&before, &after] {
            assert!(!mounts.contains(pin.to_str().unwrap()), "{} is in the template:\n{mounts}", pin.display());
        }
        assert_eq!(hosts, "written after", "the same tmpfs, not a copy");
        // The agent's own namespace is untouched.
        let ours = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        assert!(ours.contains(before.to_str().unwrap()) && ours.contains(after.to_str().unwrap()));
    }

    #[test]
    fn a_state_directory_that_is_not_a_mount_point_gives_no_template() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(MountTemplate::create(dir.path()).is_err());
    }
}

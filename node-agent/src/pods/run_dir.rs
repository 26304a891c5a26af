//! The agent's volatile state lives on a tmpfs it mounts at `DATA/run`: each pod's spec, its
//! sandbox's namespace mounts and the state of its containers (`run/pods/<uid>/`), the warm
//! sandboxes (`run/warm/`) and the address claims (`run/ipam/`). What must outlive memory
//! pressure or grow with the workload stays on disk under `DATA/pods/<uid>/`: logs, `emptyDir`
//! volumes and the containers' writable layers. containerd splits its state the same way
//! (`/run/containerd` and `/var/lib/containerd`).
//!
//! Why not the disk: a pod creates and removes about 25 small files and directories there. On
//! ext4 without a journal (this project's CI machines) every new inode is checked against each
//! inode of its group deleted in the last 30 seconds, so under pod churn each creation walked
//! thousands of them: a third of the CPU while pods started, and starts 2 to 3 times slower from
//! one benchmark run to the next. On tmpfs a file costs the same however many came before.
//!
//! The tmpfs outlives the agent (a restarted agent adopts its pods from it) and goes with the
//! machine, as the namespaces and processes it describes do. `cleanup_node` unmounts it.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use tracing::warn;

/// Small files only: a pod takes a few KiB here.
const SIZE: &str = "size=256m,mode=0700";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("run")
}

fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// Makes sure `DATA/run` is a tmpfs (an earlier agent's is kept, with what it holds) and returns
/// it. If no tmpfs can be mounted (no privilege) the directory is used as it is, on disk.
///
/// The tmpfs is made private: the sandboxes' namespace pins mounted in it then stay in the
/// agent's mount namespace, out of the namespaces that share the host's mounts and out of the
/// containers' mount template (`runtime::MountTemplate`).
pub fn prepare(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = path(data_dir);
    std::fs::create_dir_all(&dir)?;
    if !is_tmpfs(&dir) {
        let mounted = nix::mount::mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some(SIZE));
        if let Err(e) = mounted {
            warn!(dir = %dir.display(), error = %e, "cannot mount a tmpfs for the agent's state; keeping it on disk");
            return Ok(dir);
        }
    }
    if let Err(e) = nix::mount::mount(None::<&str>, &dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>) {
        warn!(dir = %dir.display(), error = %e, "cannot make the agent's state tmpfs private");
    }
    Ok(dir)
}

/// Where the pod `uid`'s spec, sandbox and container state are: on the tmpfs, or, for a pod an
/// agent from before the tmpfs made (its spec is beside its logs), in its disk directory.
pub fn pod_state_dir(data_dir: &Path, uid: &str) -> PathBuf {
    let (on_tmpfs, on_disk) = (path(data_dir).join("pods").join(uid), data_dir.join("pods").join(uid));
    if !on_tmpfs.exists() && on_disk.join("pod.json").exists() { on_disk } else { on_tmpfs }
}

/// Makes `DATA/pods` (the pods' disk directories) and marks it a top of a directory hierarchy
/// (`chattr +T`): ext4 then places each pod's directory in a block group of its own choosing
/// instead of its parent's, so the inodes pods free are spread over the disk rather than piled
/// where every next pod's files are allocated (see the module comment). Filesystems without
/// the flag ignore it.
pub fn prepare_disk(data_dir: &Path) -> std::io::Result<PathBuf> {
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let dir = data_dir.join("pods");
    std::fs::create_dir_all(&dir)?;
    let file = std::fs::File::open(&dir)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read and write one int through a valid pointer.
    unsafe {
        if libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) == 0 && flags & FS_TOPDIR_FL == 0 {
            flags |= FS_TOPDIR_FL;
            libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags);
        }
    }
    Ok(dir)
}

/// Moves `DATA/<name>` (an agent from before the tmpfs kept it there) into the tmpfs, merging
/// with what is there: the address claims of pods it adopts must stay claimed.
pub fn move_in(data_dir: &Path, name: &str) -> std::io::Result<()> {
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), &target)?;
            }
        }
        Ok(())
    }
    let old = data_dir.join(name);
    if !old.is_dir() {
        return Ok(());
    }
    copy(&old, &path(data_dir).join(name))?;
    std::fs::remove_dir_all(&old)
}

/// Unmounts the tmpfs (and anything still mounted below it) and removes the directory.
pub fn remove(data_dir: &Path) {
    let dir = path(data_dir);
    while is_tmpfs(&dir) {
        if nix::mount::umount2(&dir, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn the_state_directory_is_a_tmpfs_that_survives_a_second_prepare_and_goes_on_remove() {
        if !root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let data = tempfile::tempdir().unwrap();
        struct Removed<'a>(&'a Path);
        impl Drop for Removed<'_> {
            fn drop(&mut self) {
                remove(self.0);
            }
        }
        let _guard = Removed(data.path());
        let dir = prepare(data.path()).unwrap();
        assert!(is_tmpfs(&dir), "{} is not a tmpfs", dir.display());
        std::fs::write(dir.join("kept"), "x").unwrap();
        // A restarted agent keeps what the earlier one left: no second mount over it.
        assert_eq!(prepare(data.path()).unwrap(), dir);
        assert_eq!(std::fs::read_to_string(dir.join("kept")).unwrap(), "x");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(mounts.lines().filter(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap())).count(), 1);
        remove(data.path());
        assert!(!dir.exists());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(dir.to_str().unwrap()));
    }

    #[test]
    fn the_pods_disk_directory_is_marked_as_a_top_directory_where_the_filesystem_has_the_flag() {
        let data = tempfile::tempdir().unwrap();
        let dir = prepare_disk(data.path()).unwrap();
        assert!(dir.is_dir());
        let lsattr = std::process::Command::new("lsattr").arg("-d").arg(&dir).output();
        // lsattr answers only where the filesystem has attributes (ext4, not tmpfs).
        if let Some(out) = lsattr.ok().filter(|o| o.status.success()) {
            let attrs = String::from_utf8_lossy(&out.stdout);
            assert!(attrs.split_whitespace().next().unwrap_or_default().contains('T'), "{attrs}");
        }
        // Idempotent.
        prepare_disk(data.path()).unwrap();
    }

    #[test]
    fn a_pods_state_is_on_the_tmpfs_unless_an_older_agent_left_its_spec_on_disk() {
        let data = tempfile::tempdir().unwrap();
        let (tmpfs, disk) = (path(data.path()).join("pods"), data.path().join("pods"));
        // New pod, nothing made yet: the tmpfs.
        assert_eq!(pod_state_dir(data.path(), "new"), tmpfs.join("new"));
        // Disk half only (logs), no spec there: still the tmpfs.
        std::fs::create_dir_all(disk.join("new/logs")).unwrap();
        assert_eq!(pod_state_dir(data.path(), "new"), tmpfs.join("new"));
        // An older agent's pod: everything, spec included, on disk.
        std::fs::create_dir_all(disk.join("old")).unwrap();
        std::fs::write(disk.join("old/pod.json"), "{}").unwrap();
        assert_eq!(pod_state_dir(data.path(), "old"), disk.join("old"));
        // Once the tmpfs has the pod, it wins.
        std::fs::create_dir_all(tmpfs.join("old")).unwrap();
        assert_eq!(pod_state_dir(data.path(), "old"), tmpfs.join("old"));
    }

    #[test]
    fn state_an_older_agent_kept_on_disk_is_moved_into_the_state_directory() {
        let data = tempfile::tempdir().unwrap();
        let old = data.path().join("ipam");
        std::fs::create_dir_all(old.join("by-uid")).unwrap();
        std::fs::write(old.join("10.244.0.7"), "uid-a").unwrap();
        std::fs::write(old.join("by-uid/uid-a"), "10.244.0.7").unwrap();
        let new = path(data.path()).join("ipam");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("10.244.0.9"), "uid-b").unwrap();
        move_in(data.path(), "ipam").unwrap();
        assert!(!old.exists());
        assert_eq!(std::fs::read_to_string(new.join("10.244.0.7")).unwrap(), "uid-a");
        assert_eq!(std::fs::read_to_string(new.join("by-uid/uid-a")).unwrap(), "10.244.0.7");
        assert_eq!(std::fs::read_to_string(new.join("10.244.0.9")).unwrap(), "uid-b");
        // Nothing to move is no error.
        move_in(data.path(), "ipam").unwrap();
    }
}

//! What survives an agent restart: enough to find the process again (and to tell it from a
//! process that reused its pid), to exec into it, and to clean up after it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::container::ExitStatus;
use super::spec::ContainerSpec;
use super::{Error, Result};

const STATE_FILE: &str = "state.json";
const STATE_TMP: &str = "state.json.tmp";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// /proc/<pid>/stat field 22 (clock ticks since boot): a different value for the same pid
    /// means the pid was reused.
    pub start_time: u64,
    pub started_at_unix_ms: u64,
    pub rootfs: PathBuf,
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    pub log_path: PathBuf,
    pub cgroup_procs: Vec<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    pub supplemental_gids: Vec<u32>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Set once the agent that started the container reaped it.
    #[serde(default)]
    pub exit: Option<ExitStatus>,
}

impl State {
    pub fn new(spec: &ContainerSpec, pid: i32, start_time: u64) -> State {
        let started_at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        State {
            id: spec.id.clone(),
            pid,
            start_time,
            started_at_unix_ms,
            rootfs: spec.rootfs.mount_point.clone(),
            upper_dir: spec.rootfs.upper_dir.clone(),
            work_dir: spec.rootfs.work_dir.clone(),
            log_path: spec.log_path.clone(),
            cgroup_procs: spec.cgroup_procs.clone(),
            uid: spec.uid,
            gid: spec.gid,
            supplemental_gids: spec.supplemental_gids.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/")),
            exit: None,
        }
    }

    /// `None` when there is no state file.
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = dir.join(STATE_FILE);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| Error::State { path: path.display().to_string(), source })
    }

    /// Write to a temporary file, then rename: an agent killed at any point leaves either the
    /// old or the new state, never half of one. No fsync (it costs milliseconds on every
    /// container start): the state only describes live processes, and none survive the machine
    /// crash that fsync would guard against.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(STATE_TMP);
        let ctx = || format!("writing {}", tmp.display());
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::io(ctx(), e))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // The state holds the container's environment, which may carry secrets.
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(ctx(), e))?;
        f.write_all(&json).map_err(|e| Error::io(ctx(), e))?;
        fs::rename(&tmp, dir.join(STATE_FILE)).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_loads_back_identically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ContainerSpec { id: "c1".into(), env: vec![("A".into(), "b".into())], ..Default::default() };
        let mut state = State::new(&spec, 42, 1234);
        state.exit = Some(ExitStatus::Signal(9));
        state.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), Some(state));
        assert!(!dir.path().join(STATE_TMP).exists());
    }

    #[test]
    fn a_missing_state_file_is_none_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), None);
        fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        assert!(matches!(State::load(dir.path()), Err(Error::State { .. })));
    }
}

//! The state file: a write-ahead record of every kernel object a cluster network owns, so that a
//! later run can remove what a killed one left behind.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ip::ip_del;
use super::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    pub cluster_id: String,
    /// Recorded before the bridge is created, so a crash in between still leads to its removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default)]
    pub routes: Vec<RouteRecord>,
    #[serde(default)]
    pub nodes: Vec<NodeRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RouteRecord {
    /// Kept as text: it is only ever handed back to `ip`.
    pub dst: String,
    pub metric: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct NodeRecord {
    pub name: String,
    pub netns: String,
    pub veth: String,
    pub address: Ipv4Addr,
}

impl State {
    /// Reads the state file; a missing file means there is nothing to clean up.
    pub fn load(path: &Path) -> Result<Option<State>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(state_io(path, source)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::StateParse {
                path: path.to_owned(),
                source,
            })
    }

    /// Replaces the file atomically so a crash never leaves a half-written record behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| state_io(dir, e))?;
        }
        let tmp = tmp_path(path);
        let json = serde_json::to_vec_pretty(self).map_err(|source| Error::StateParse {
            path: path.to_owned(),
            source,
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(state_io(&tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            state_io(path, e)
        })
    }

    pub fn remove_file(path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(state_io(path, e)),
        }
    }

    /// Deletes everything recorded, in dependency order, dropping each record whose object is
    /// confirmed gone. Whatever fails stays recorded so the next attempt retries it.
    pub fn destroy_all(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        self.nodes.retain(|n| match destroy_node(n) {
            Ok(()) => false,
            Err(e) => {
                errors.push(e);
                true
            }
        });
        self.routes.retain(|r| match destroy_route(r) {
            Ok(()) => false,
            Err(e) => {
                errors.push(e);
                true
            }
        });
        if let Some(bridge) = &self.bridge {
            match ip_del(&["link", "del", "dev", bridge]) {
                Ok(()) => self.bridge = None,
                Err(e) => errors.push(e),
            }
        }
        errors
    }
}

/// Deleting the host end destroys the pair synchronously; deleting only the namespace would
/// leave the veth alive for as long as any process still runs inside it.
pub(super) fn destroy_node(n: &NodeRecord) -> Result<()> {
    let veth = ip_del(&["link", "del", "dev", &n.veth]);
    let netns = ip_del(&["netns", "del", &n.netns]);
    veth.and(netns)
}

pub(super) fn destroy_route(r: &RouteRecord) -> Result<()> {
    let metric = r.metric.to_string();
    ip_del(&["route", "del", "blackhole", &r.dst, "metric", &metric])
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn state_io(path: &Path, source: std::io::Error) -> Error {
    Error::StateIo {
        path: path.to_owned(),
        source,
    }
}

//! Loads rendered rules with one `nft -f -` (a single netlink transaction).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{ProxyState, render};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running nft (apt-get install nftables): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the Service rules: {0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub struct Proxy {
    table: String,
    nft: PathBuf,
    /// The script last loaded: an identical one is not loaded again.
    last: Option<String>,
}

fn find_nft() -> PathBuf {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from("nft"))
}

impl Proxy {
    pub fn new(table: &str) -> Self {
        Proxy { table: table.to_string(), nft: find_nft(), last: None }
    }

    pub(super) fn run(&self, script: &str) -> Result<()> {
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(Error::Spawn)?;
        }
        let out = child.wait_with_output().map_err(Error::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(Error::Refused(stderr.lines().take(6).collect::<Vec<_>>().join(" | ")))
        }
    }

    /// Replaces the table with the rules for `state` in the current network namespace.
    pub fn apply(&mut self, state: &ProxyState) -> Result<()> {
        let script = render(state, &self.table);
        if self.last.as_deref() == Some(script.as_str()) {
            return Ok(());
        }
        self.last = None;
        self.run(&script)?;
        self.last = Some(script);
        Ok(())
    }

    /// Removes the table (and with it every rule); nothing to do when it does not exist.
    pub fn remove(&self) -> Result<()> {
        self.run(&format!("table ip {t} {{}}\ndelete table ip {t}\n", t = self.table))
    }
}

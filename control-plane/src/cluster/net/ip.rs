//! Thin wrapper around the `ip` binary: one process per step keeps every failure attributable
//! to the exact command, and iproute2 already knows how to create bind-mounted namespaces.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{Error, Result};

fn ip_binary() -> &'static str {
    static BIN: OnceLock<&'static str> = OnceLock::new();
    // Non-login root shells and systemd units do not always have /usr/sbin on PATH.
    BIN.get_or_init(|| {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("ip")
    })
}

/// Runs `ip ARGS`, returning stdout, or the command line and its stderr on failure.
pub(super) fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new(ip_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Ip {
            args: args.join(" "),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs a deleting `ip` command, treating "it is already gone" as success so cleanup is idempotent
/// (a crashed run may have died before or after creating any given object).
pub(super) fn ip_del(args: &[&str]) -> Result<()> {
    match ip(args) {
        Ok(_) => Ok(()),
        Err(Error::Ip { ref stderr, .. }) if already_gone(stderr) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Recognises iproute2's messages for a missing link, namespace file or route.
pub(super) fn already_gone(stderr: &str) -> bool {
    [
        "Cannot find device",
        "No such file or directory",
        "No such process",
        "No such device",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

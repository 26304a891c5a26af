//! The node agent's image subsystem: pulling OCI/Docker images from registries, importing
//! image archives, and keeping a content-addressed store of blobs and unpacked layers that
//! overlayfs can mount directly. No container engine is involved at run time.
//!
//! Layout of the store root (e.g. `DATA/images`):
//! - `blobs/sha256/<hex>`: manifests, configs and compressed layers, verified on write;
//! - `layers/sha256/<diffid hex>/`: each layer unpacked once, shared by every image using it;
//! - `refs.json`: normalized reference -> manifest and config digests;
//! - `tmp/`, `locks/`: scratch space (same filesystem, so renames are atomic) and lock files.
//!
//! How a pod's container maps onto an image config (see [`command_line`]):
//! - `command` replaces the image's Entrypoint and drops its Cmd;
//! - `args` replaces Cmd (appended to the Entrypoint, or to `command` if given);
//! - neither given: Entrypoint + Cmd as in the image; nothing at all is an error
//!   (`NoCommand`, shown by Kubernetes as CreateContainerError "no command specified").
//! - `$(VAR)` in command, args and env values is expanded by [`expand`] against the container's
//!   env (earlier entries, then service variables), not the image's env; `$$` escapes.
//! - `workingDir` overrides WorkingDir; the image Env comes first and the pod's env overrides it
//!   by name; `securityContext.runAsUser` overrides User.

mod archive;
mod command;
mod demo;
mod pull;
mod reference;
mod store;
mod unpack;

#[cfg(test)]
mod registry_tests;

pub use command::{command_line, expand};
pub use demo::build_demo_archive;
pub use reference::{Reference, normalize};
pub use store::{Image, ImageConfig, ImageStore};
pub(crate) use store::hex;

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kubernetes reports this as InvalidImageName.
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// The registry does not know the manifest (tag or digest), or nothing local matches.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Any other registry or transport failure, with the registry's own message.
    #[error("registry error: {0}")]
    Registry(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    /// A manifest, config, layer or archive that does not follow the image spec.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A layer entry that would land outside the layer directory or go through a symlink.
    #[error("unsafe path in layer: {0}")]
    UnsafePath(String),
    #[error("no command specified")]
    NoCommand,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the path (or action) to an I/O error, since a bare "No such file" is useless in events.
pub(crate) fn io_err(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        context: context.to_string(),
        source,
    }
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: path.display().to_string(),
        source,
    }
}

/// The OCI architecture name of this machine, used to pick a manifest out of an index.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

//! The store: a revisioned key-value space with compare-and-swap writes and watch.
//!
//! Every write gets the next cluster-wide revision, which the API exposes as `resourceVersion`.
//! Backends: [`memory`] (tests), [`embedded`] (redb, the default, one data directory).
//! Both share [`hub::WatchHub`] for watch history and fan-out; etcd brings its own.

pub mod conformance;
pub mod embedded;
pub mod hub;
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    /// The compare-and-swap precondition failed: the key was modified since `expected`.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict { key: String, expected: u64, actual: u64 },
    /// The requested revision is older than the watch history kept (HTTP 410 Gone).
    #[error("too old resource version: {requested} ({oldest})")]
    Compacted { requested: u64, oldest: u64 },
    /// A watcher fell too far behind the write rate and must re-list.
    #[error("watch fell behind and was closed")]
    Lagged,
    #[error("store backend: {0}")]
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stored value with its revisions (`create_revision`/`mod_revision` as etcd names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Arc<[u8]>,
    pub create_revision: u64,
    pub mod_revision: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One change. For `Deleted`, `kv` holds the last value with `mod_revision` set to the deletion's revision.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The value before this change (for updates and deletes), so watchers filtering by
    /// selector can tell an object that stopped matching from one that never matched.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}

pub type WatchStream = BoxStream<'static, Result<Arc<Event>>>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Every key under `prefix`, in key order, and the revision this snapshot was taken at.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)>;
    /// Fails with `AlreadyExists` when the key is present.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;
    /// Replaces the value only if its `mod_revision` is still `expected`.
    async fn update(&self, key: &str, value: Vec<u8>, expected: u64) -> Result<KeyValue>;
    /// Deletes, optionally only if the `mod_revision` is still `expected`. Returns the deleted
    /// value with `mod_revision` = the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<KeyValue>;
    async fn current_revision(&self) -> Result<u64>;
    /// Changes under `prefix` with revision > `after`. `after` older than the kept history
    /// fails with `Compacted`.
    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a `--store` URL names: `embedded:///path` or a plain path (redb file),
/// `memory://` (non-persistent, for tests and throwaway clusters).
pub fn open(url: &str, default_dir: &std::path::Path) -> Result<DynStore> {
    if url.is_empty() || url == "embedded" {
        return Ok(Arc::new(embedded::EmbeddedStore::open(&default_dir.join("state.redb"))?));
    }
    if url == "memory" || url == "memory://" {
        return Ok(Arc::new(memory::MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("embedded://") {
        return Ok(Arc::new(embedded::EmbeddedStore::open(std::path::Path::new(path))?));
    }
    Err(Error::Backend(format!(
        "unsupported store URL {url:?}: use \"embedded\", \"embedded:///path/state.redb\" or \"memory\""
    )))
}

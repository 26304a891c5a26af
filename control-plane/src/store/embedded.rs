//! Embedded backend on redb: one file in the data directory, crash-safe commits.
//!
//! All writes go through one writer thread that commits whatever writes are queued in a
//! single transaction (group commit): one fsync serves many concurrent requests, which is
//! what makes thousands of durable creates per second possible on an ordinary disk.
//! A write is acknowledged only after its transaction committed with `Durability::Immediate`.

use std::path::Path;
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::hub::WatchHub;
use super::{Error, Event, EventKind, KeyValue, Result, Store, WatchStream};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// Most writes that share one commit; bounds the latency one batch adds.
const MAX_BATCH: usize = 512;

pub struct EmbeddedStore {
    db: Arc<Database>,
    hub: Arc<WatchHub>,
    writes: mpsc::Sender<Write>,
}

enum Op {
    Create(Vec<u8>),
    Update(Vec<u8>, u64),
    Delete(Option<u64>),
}

struct Write {
    key: String,
    op: Op,
    reply: oneshot::Sender<Result<KeyValue>>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn encode(create: u64, modified: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_be_bytes());
    out.extend_from_slice(&modified.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(key: &str, raw: &[u8]) -> Result<KeyValue> {
    if raw.len() < 16 {
        return Err(Error::Backend(format!("corrupt record for {key}: {} bytes", raw.len())));
    }
    let create_revision = u64::from_be_bytes(raw[0..8].try_into().map_err(backend)?);
    let mod_revision = u64::from_be_bytes(raw[8..16].try_into().map_err(backend)?);
    Ok(KeyValue { key: key.to_string(), value: raw[16..].into(), create_revision, mod_revision })
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                Error::Backend(format!("{} is in use by another control plane", path.display()))
            }
            e => Error::Backend(format!("opening {}: {e}", path.display())),
        })?;
        let txn = db.begin_write().map_err(backend)?;
        let revision = {
            txn.open_table(OBJECTS).map_err(backend)?;
            let meta = txn.open_table(META).map_err(backend)?;
            meta.get(REVISION).map_err(backend)?.map(|v| v.value()).unwrap_or(0)
        };
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let hub = Arc::new(WatchHub::new(10_000, revision));
        let (tx, rx) = mpsc::channel();
        let (wdb, whub) = (db.clone(), hub.clone());
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(wdb, whub, rx, revision))
            .map_err(backend)?;
        Ok(EmbeddedStore { db, hub, writes: tx })
    }

    async fn submit(&self, key: &str, op: Op) -> Result<KeyValue> {
        let (reply, rx) = oneshot::channel();
        self.writes.send(Write { key: key.to_string(), op, reply }).map_err(|_| Error::Backend("store writer stopped".into()))?;
        rx.await.map_err(|_| Error::Backend("store writer stopped".into()))?
    }
}

/// Applies one queued write inside the open transaction; returns the reply and the event.
fn apply(table: &mut redb::Table<&str, &[u8]>, revision: u64, w: &Write) -> Result<(KeyValue, Event)> {
    let prev = table.get(w.key.as_str()).map_err(backend)?.map(|v| decode(&w.key, v.value())).transpose()?;
    match (&w.op, prev) {
        (Op::Create(_), Some(_)) => Err(Error::AlreadyExists(w.key.clone())),
        (Op::Create(value), None) => {
            table.insert(w.key.as_str(), encode(revision, revision, value).as_slice()).map_err(backend)?;
            let kv = KeyValue { key: w.key.clone(), value: value.as_slice().into(), create_revision: revision, mod_revision: revision };
            Ok((kv.clone(), Event { kind: EventKind::Created, kv, prev: None }))
        }
        (Op::Update(..) | Op::Delete(_), None) => Err(Error::NotFound(w.key.clone())),
        (Op::Update(_, expected) | Op::Delete(Some(expected)), Some(prev)) if prev.mod_revision != *expected => {
            Err(Error::Conflict { key: w.key.clone(), expected: *expected, actual: prev.mod_revision })
        }
        (Op::Update(value, _), Some(prev)) => {
            table.insert(w.key.as_str(), encode(prev.create_revision, revision, value).as_slice()).map_err(backend)?;
            let kv = KeyValue { key: w.key.clone(), value: value.as_slice().into(), create_revision: prev.create_revision, mod_revision: revision };
            Ok((kv.clone(), Event { kind: EventKind::Updated, kv, prev: Some(prev) }))
        }
        (Op::Delete(_), Some(prev)) => {
            table.remove(w.key.as_str()).map_err(backend)?;
            let kv = KeyValue { mod_revision: revision, ..prev.clone() };
            Ok((kv.clone(), Event { kind: EventKind::Deleted, kv, prev: Some(prev) }))
        }
    }
}

fn writer(db: Arc<Database>, hub: Arc<WatchHub>, rx: mpsc::Receiver<Write>, mut revision: u64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let committed = (|| -> Result<u64> {
            let txn = db.begin_write().map_err(backend)?;
            let mut next = revision;
            {
                let mut table = txn.open_table(OBJECTS).map_err(backend)?;
                for w in &batch {
                    match apply(&mut table, next + 1, w) {
                        Ok((kv, event)) => {
                            next += 1;
                            events.push(event);
                            results.push(Ok(kv));
                        }
                        Err(e) => results.push(Err(e)),
                    }
                }
                let mut meta = txn.open_table(META).map_err(backend)?;
                meta.insert(REVISION, next).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(next)
        })();
        match committed {
            Ok(next) => {
                revision = next;
                hub.publish(events);
                for (w, r) in batch.into_iter().zip(results) {
                    let _ = w.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed");
                for w in batch {
                    let _ = w.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(OBJECTS).map_err(backend)?;
        table.get(key).map_err(backend)?.map(|v| decode(key, v.value())).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        let db = self.db.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let revision = txn.open_table(META).map_err(backend)?.get(REVISION).map_err(backend)?.map(|v| v.value()).unwrap_or(0);
            let table = txn.open_table(OBJECTS).map_err(backend)?;
            let mut out = Vec::new();
            for item in table.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push(decode(k.value(), v.value())?);
            }
            Ok((out, revision))
        })
        .await
        .map_err(backend)?
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.submit(key, Op::Create(value)).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: u64) -> Result<KeyValue> {
        self.submit(key, Op::Update(value, expected)).await
    }

    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<KeyValue> {
        self.submit(key, Op::Delete(expected)).await
    }

    async fn current_revision(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        Ok(meta.get(REVISION).map_err(backend)?.map(|v| v.value()).unwrap_or(0))
    }

    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream> {
        self.hub.watch(prefix, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        crate::store::conformance::run_all(|| {
            let path = dir.path().join(format!("s{}.redb", n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
            async move { Arc::new(EmbeddedStore::open(&path).unwrap()) as crate::store::DynStore }
        })
        .await;
    }

    #[tokio::test]
    async fn embedded_store_keeps_objects_and_revision_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = EmbeddedStore::open(&path).unwrap();
            s.create("/a", b"1".to_vec()).await.unwrap();
            let kv = s.create("/b", b"2".to_vec()).await.unwrap();
            s.update("/b", b"3".to_vec(), kv.mod_revision).await.unwrap();
        }
        // The writer thread holds the database until its channel closes; wait for the file lock.
        let s = loop {
            match EmbeddedStore::open(&path) {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        };
        assert_eq!(s.current_revision().await.unwrap(), 3);
        assert_eq!(&*s.get("/b").await.unwrap().unwrap().value, b"3");
        // History before the reopen is gone: an old revision answers Compacted, the current one works.
        assert!(matches!(s.watch("/", 1), Err(Error::Compacted { .. })));
        assert!(s.watch("/", 3).is_ok());
        let kv = s.create("/c", b"4".to_vec()).await.unwrap();
        assert_eq!(kv.mod_revision, 4);
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        assert!(decode("/x", &[1, 2, 3]).is_err());
    }
}

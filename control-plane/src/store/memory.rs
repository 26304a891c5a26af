//! In-memory backend: the reference implementation of the store semantics, for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::hub::WatchHub;
use super::{Error, Event, EventKind, KeyValue, Result, Store, WatchStream};

pub struct MemoryStore {
    state: Mutex<State>,
    hub: WatchHub,
}

#[derive(Default)]
struct State {
    revision: u64,
    data: BTreeMap<String, KeyValue>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore { state: Mutex::new(State::default()), hub: WatchHub::new(10_000, 0) }
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> Result<(T, Event)>) -> Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (out, event) = f(&mut state)?;
        // Publishing under the state lock keeps events in revision order.
        self.hub.publish([event]);
        Ok(out)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).data.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let items = state.data.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.clone());
        Ok((items.collect(), state.revision))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.write(|s| {
            if s.data.contains_key(key) {
                return Err(Error::AlreadyExists(key.into()));
            }
            s.revision += 1;
            let kv = KeyValue { key: key.into(), value: value.into(), create_revision: s.revision, mod_revision: s.revision };
            s.data.insert(key.into(), kv.clone());
            Ok((kv.clone(), Event { kind: EventKind::Created, kv, prev: None }))
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: u64) -> Result<KeyValue> {
        self.write(|s| {
            let prev = s.data.get(key).cloned().ok_or_else(|| Error::NotFound(key.into()))?;
            if prev.mod_revision != expected {
                return Err(Error::Conflict { key: key.into(), expected, actual: prev.mod_revision });
            }
            s.revision += 1;
            let kv = KeyValue { key: key.into(), value: value.into(), create_revision: prev.create_revision, mod_revision: s.revision };
            s.data.insert(key.into(), kv.clone());
            Ok((kv.clone(), Event { kind: EventKind::Updated, kv, prev: Some(prev) }))
        })
    }

    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<KeyValue> {
        self.write(|s| {
            let prev = s.data.get(key).cloned().ok_or_else(|| Error::NotFound(key.into()))?;
            if let Some(expected) = expected.filter(|e| *e != prev.mod_revision) {
                return Err(Error::Conflict { key: key.into(), expected, actual: prev.mod_revision });
            }
            s.revision += 1;
            s.data.remove(key);
            let kv = KeyValue { mod_revision: s.revision, ..prev.clone() };
            Ok((kv.clone(), Event { kind: EventKind::Deleted, kv, prev: Some(prev) }))
        })
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).revision)
    }

    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream> {
        self.hub.watch(prefix, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        crate::store::conformance::run_all(|| async { Arc::new(MemoryStore::new()) as crate::store::DynStore }).await;
    }
}

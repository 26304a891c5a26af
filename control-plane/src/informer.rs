//! In-process informers: a typed cache of one resource kept current by the store's watch,
//! with change notifications for controllers. Controllers read from here, never list the store.
//!
//! One task per informer lists, then watches from the list's revision; on any watch failure
//! (history too old, lagging) it lists again and reconciles the cache, so it never misses a change.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tracing::warn;

use crate::api::ApiServer;
use crate::api::object;
use crate::registry::Resource;
use crate::store::{EventKind, KeyValue};

/// A change seen by an informer. `Resync` means "the cache was rebuilt: look at everything".
#[derive(Debug)]
pub enum Change<K> {
    Upsert { old: Option<Arc<K>>, new: Arc<K> },
    Delete(Arc<K>),
    Resync,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Upsert { old, new } => Change::Upsert { old: old.clone(), new: new.clone() },
            Change::Delete(k) => Change::Delete(k.clone()),
            Change::Resync => Change::Resync,
        }
    }
}

pub struct Informer<K> {
    pub resource: Arc<Resource>,
    /// Keyed "namespace/name" (or "name" for cluster-scoped kinds), so one namespace is a range.
    cache: RwLock<BTreeMap<String, Arc<K>>>,
    changes: broadcast::Sender<Change<K>>,
    synced: watch::Sender<bool>,
    /// The store revision the cache reflects: every write at or below it is in the cache.
    seen: std::sync::atomic::AtomicU64,
}

pub fn cache_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// What an informer can cache: decoded straight from the stored bytes (going through a
/// `serde_json::Value` first cost a second full pass over every object on every change).
pub trait Cached: DeserializeOwned + Send + Sync + 'static {
    /// "namespace/name", or None if the object has no name.
    fn key(&self) -> Option<String>;
    fn set_resource_version(&mut self, rv: String);
}

impl Cached for serde_json::Value {
    fn key(&self) -> Option<String> {
        Some(cache_key(object::namespace(self), object::name(self)?))
    }
    fn set_resource_version(&mut self, rv: String) {
        object::meta_mut(self).insert("resourceVersion".into(), serde_json::Value::String(rv));
    }
}

macro_rules! cached_kinds {
    ($($kind:ty),*) => {$(
        impl Cached for $kind {
            fn key(&self) -> Option<String> {
                Some(cache_key(self.metadata.namespace.as_deref(), self.metadata.name.as_deref()?))
            }
            fn set_resource_version(&mut self, rv: String) {
                self.metadata.resource_version = Some(rv);
            }
        }
    )*};
}

use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
cached_kinds!(core::Pod, core::Node, core::Service, core::Endpoints, core::ConfigMap, core::Namespace, apps::ReplicaSet, apps::Deployment);

fn decode<K: Cached>(kv: &KeyValue) -> Option<(String, K)> {
    let mut obj: K = serde_json::from_slice(&kv.value).ok()?;
    obj.set_resource_version(kv.mod_revision.to_string());
    Some((obj.key()?, obj))
}

impl<K: Cached> Informer<K> {
    pub fn start(api: Arc<ApiServer>, resource: Arc<Resource>) -> Arc<Self> {
        let (changes, _) = broadcast::channel(65_536);
        let (synced, _) = watch::channel(false);
        let inf = Arc::new(Informer { resource, cache: RwLock::new(BTreeMap::new()), changes, synced, seen: Default::default() });
        let me = inf.clone();
        tokio::spawn(async move { me.run(api).await });
        inf
    }

    async fn run(self: Arc<Self>, api: Arc<ApiServer>) {
        let prefix = self.resource.prefix(None);
        loop {
            let (kvs, rev) = match api.store.list(&prefix).await {
                Ok(x) => x,
                Err(e) => {
                    warn!(resource = self.resource.plural, error = %e, "informer list failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let fresh: BTreeMap<String, Arc<K>> = kvs.iter().filter_map(decode::<K>).map(|(k, v)| (k, Arc::new(v))).collect();
            *self.cache.write().unwrap_or_else(|p| p.into_inner()) = fresh;
            self.seen.store(rev, std::sync::atomic::Ordering::Release);
            let _ = self.changes.send(Change::Resync);
            self.synced.send_replace(true);
            let mut stream = match api.store.watch(&prefix, rev) {
                Ok(s) => s,
                Err(_) => continue,
            };
            while let Some(Ok(event)) = stream.next().await {
                self.apply(&event.kind, &event.kv);
                self.seen.store(event.revision(), std::sync::atomic::Ordering::Release);
            }
        }
    }

    fn apply(&self, kind: &EventKind, kv: &KeyValue) {
        let Some((key, obj)) = decode::<K>(kv) else { return };
        let obj = Arc::new(obj);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        let change = match kind {
            EventKind::Deleted => {
                cache.remove(&key);
                Change::Delete(obj)
            }
            _ => Change::Upsert { old: cache.insert(key, obj.clone()), new: obj },
        };
        drop(cache);
        let _ = self.changes.send(change);
    }

    /// The store revision this cache has caught up with (events of other prefixes do not
    /// advance it, so it may lag the store's revision, never the other way round).
    pub fn seen_revision(&self) -> u64 {
        self.seen.load(std::sync::atomic::Ordering::Acquire)
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change<K>> {
        self.changes.subscribe()
    }

    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).get(&cache_key(namespace, name)).cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Objects in one namespace (a range scan of the cache).
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let prefix = format!("{namespace}/");
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::negotiate::Query;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    pub(crate) fn test_api() -> Arc<ApiServer> {
        Arc::new(ApiServer {
            store: Arc::new(crate::store::memory::MemoryStore::new()),
            registry: Arc::new(crate::registry::Registry::new()),
            services: crate::registry::allocator::ServiceAllocator::new("10.96.0.0/12", 30000..=32767).unwrap(),
            admin_token: None,
            nodes: None,
        })
    }

    async fn next(rx: &mut broadcast::Receiver<Change<ConfigMap>>) -> Change<ConfigMap> {
        tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn the_cache_follows_creates_updates_and_deletes_and_notifies() {
        let api = test_api();
        crate::bootstrap::ensure(&api, 6443).await.unwrap();
        let res = api.registry.get("", "v1", "configmaps").unwrap();
        let inf = Informer::<ConfigMap>::start(api.clone(), res.clone());
        inf.wait_synced().await;
        let mut rx = inf.subscribe();
        let q = Query::default();
        let body = json!({"metadata": {"name": "a"}, "data": {"k": "1"}});
        api.create(&res, Some("default"), body, &q).await.unwrap();
        assert!(matches!(next(&mut rx).await, Change::Upsert { old: None, .. }));
        assert_eq!(inf.get(Some("default"), "a").unwrap().data.as_ref().unwrap()["k"], "1");
        assert_eq!(inf.list_namespace("default").len(), 1);
        assert!(inf.list_namespace("kube-system").is_empty());
        api.patch(&res, Some("default"), "a", crate::api::update::Part::Main, crate::api::patch::PatchType::Merge, json!({"data": {"k": "2"}}), &q)
            .await
            .unwrap();
        assert!(matches!(next(&mut rx).await, Change::Upsert { old: Some(_), .. }));
        assert_eq!(inf.get(Some("default"), "a").unwrap().data.as_ref().unwrap()["k"], "2");
        api.delete(&res, Some("default"), "a", &Default::default()).await.unwrap();
        assert!(matches!(next(&mut rx).await, Change::Delete(_)));
        assert!(inf.get(Some("default"), "a").is_none());
    }

    #[test]
    fn cached_objects_are_keyed_by_namespace_and_name_and_carry_the_store_revision() {
        use k8s_openapi::api::core::v1::{Node, Pod};
        let kv = |v: serde_json::Value| KeyValue { key: "/k".into(), value: serde_json::to_vec(&v).unwrap().into(), create_revision: 1, mod_revision: 7 };
        let pod = kv(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}}));
        let (key, typed) = decode::<Pod>(&pod).unwrap();
        assert_eq!((key.as_str(), typed.metadata.resource_version.as_deref()), ("ns/p", Some("7")));
        let (key, value) = decode::<serde_json::Value>(&pod).unwrap();
        assert_eq!((key.as_str(), value["metadata"]["resourceVersion"].as_str()), ("ns/p", Some("7")));
        let (key, _) = decode::<Node>(&kv(json!({"metadata": {"name": "n1"}}))).unwrap();
        assert_eq!(key, "n1", "cluster-scoped objects are keyed by name alone");
        assert!(decode::<Pod>(&kv(json!({"metadata": {}}))).is_none(), "an object without a name is not cached");
        assert!(decode::<Pod>(&kv(json!({"metadata": {"name": 5}}))).is_none(), "nor one that does not decode");
    }
}

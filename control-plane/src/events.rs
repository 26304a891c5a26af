//! Recording `Event` objects, the way `kubectl describe` and `kubectl get events` show them.
//! Repeats of the same event on the same object are folded into one Event with a growing count,
//! as Kubernetes' event correlator does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::api::ApiServer;
use crate::api::negotiate::Query;
use crate::api::object;
use crate::api::update::Part;

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Involved {
    /// From an object as JSON (kind and apiVersion given, since lists strip them).
    pub fn of(api_version: &str, kind: &str, obj: &Value) -> Self {
        Involved {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: object::namespace(obj).unwrap_or("default").into(),
            name: object::name(obj).unwrap_or_default().into(),
            uid: object::uid(obj).unwrap_or_default().into(),
        }
    }
}

/// (object uid, type, reason, message).
type FoldKey = (String, String, String, String);

/// How many distinct events a recorder remembers for folding: upstream's correlator keeps an LRU
/// of the same size. Without a bound the map would grow with every pod ever scheduled.
const MAX_FOLDS: usize = 4096;

/// Names of recent events by what they say, forgetting the oldest beyond `cap`. (Oldest by
/// first sight: an event still repeating when it is forgotten starts a new Event object.)
struct Folds {
    cap: usize,
    names: HashMap<FoldKey, String>,
    order: VecDeque<FoldKey>,
}

impl Folds {
    fn new(cap: usize) -> Self {
        Folds { cap, names: HashMap::new(), order: VecDeque::new() }
    }

    fn get(&self, key: &FoldKey) -> Option<String> {
        self.names.get(key).cloned()
    }

    fn insert(&mut self, key: FoldKey, name: String) {
        if self.names.insert(key.clone(), name).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.names.remove(&old);
            }
        }
    }
}

pub struct Recorder {
    api: Arc<ApiServer>,
    component: String,
    host: String,
    /// Event names by what they say, for folding repeats.
    seen: Mutex<Folds>,
}

impl Recorder {
    pub fn new(api: Arc<ApiServer>, component: &str, host: &str) -> Arc<Self> {
        Arc::new(Recorder { api, component: component.into(), host: host.into(), seen: Mutex::new(Folds::new(MAX_FOLDS)) })
    }

    /// Records without waiting: events are informational and must never slow a controller down.
    pub fn emit(self: &Arc<Self>, involved: Involved, type_: &str, reason: &str, message: impl Into<String>) {
        let me = self.clone();
        let (type_, reason, message) = (type_.to_string(), reason.to_string(), message.into());
        tokio::spawn(async move {
            if let Err(e) = me.record(&involved, &type_, &reason, &message).await {
                tracing::debug!(error = %e, reason, "recording event failed");
            }
        });
    }

    pub async fn record(&self, involved: &Involved, type_: &str, reason: &str, message: &str) -> Result<(), String> {
        let Some(res) = self.api.registry.get("", "v1", "events") else { return Err("events not served".into()) };
        let now = object::now();
        let key = (involved.uid.clone(), type_.to_string(), reason.to_string(), message.to_string());
        let existing = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&key);
        let q = Query::default();
        if let Some(name) = existing {
            let result = self
                .api
                .update_with(&res, Some(&involved.namespace), &name, Part::Main, &q, |old| {
                    let mut new = old.clone();
                    new["count"] = json!(old["count"].as_i64().unwrap_or(1) + 1);
                    new["lastTimestamp"] = json!(now);
                    Ok(new)
                })
                .await;
            if result.is_ok() {
                return Ok(());
            }
            // The event was deleted (or its namespace): record it afresh.
        }
        let name = format!("{}.{:x}", involved.name, jiff::Timestamp::now().as_nanosecond());
        let body = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": involved.namespace},
            "involvedObject": {
                "apiVersion": involved.api_version, "kind": involved.kind, "namespace": involved.namespace,
                "name": involved.name, "uid": involved.uid,
            },
            "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        });
        self.api.create(&res, Some(&involved.namespace), body, &q).await.map_err(|e| e.to_string())?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key, name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fold_memory_forgets_the_oldest_events_beyond_its_bound() {
        let k = |i: usize| (format!("uid{i}"), "Normal".to_string(), "Scheduled".to_string(), String::new());
        let mut folds = Folds::new(3);
        for i in 0..5 {
            folds.insert(k(i), format!("e{i}"));
        }
        folds.insert(k(4), "e4b".into());
        assert_eq!((folds.names.len(), folds.order.len()), (3, 3));
        assert_eq!(folds.get(&k(1)), None);
        assert_eq!(folds.get(&k(2)), Some("e2".into()));
        assert_eq!(folds.get(&k(4)), Some("e4b".into()));
    }

    #[tokio::test]
    async fn repeated_events_fold_into_one_with_a_count() {
        let api = crate::informer::tests::test_api();
        crate::bootstrap::ensure(&api, 6443).await.unwrap();
        let rec = Recorder::new(api.clone(), "deployment-controller", "");
        let who = Involved { api_version: "apps/v1".into(), kind: "Deployment".into(), namespace: "default".into(), name: "web".into(), uid: "u1".into() };
        rec.record(&who, "Normal", "ScalingReplicaSet", "Scaled up replica set web-abc from 0 to 3").await.unwrap();
        rec.record(&who, "Normal", "ScalingReplicaSet", "Scaled up replica set web-abc from 0 to 3").await.unwrap();
        rec.record(&who, "Normal", "ScalingReplicaSet", "Scaled up replica set web-abc from 3 to 5").await.unwrap();
        let res = api.registry.get("", "v1", "events").unwrap();
        let (items, _) = api.list_objects(&res, Some("default"), &Query::default()).await.unwrap();
        assert_eq!(items.len(), 2);
        let counts: Vec<i64> = items.iter().map(|e| e["count"].as_i64().unwrap()).collect();
        assert!(counts.contains(&2) && counts.contains(&1), "{counts:?}");
        assert_eq!(items[0]["involvedObject"]["kind"], "Deployment");
    }
}

//! Watch: a stream of `{type, object}` lines, one per change, as Kubernetes sends them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiServer;
use super::error::{ApiError, Result};
use super::handlers::selectors;
use super::negotiate::{Accept, Query, Shape, include_object};
use super::object;
use super::selectors::{FieldSelector, LabelSelector};
use super::table::{self, IncludeObject};
use crate::registry::Resource;
use crate::store::{self, EventKind};

const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// Kubernetes closes watches after a randomized 30-60 minutes so clients spread their re-lists.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    name: Option<String>,
}

impl Filter {
    fn selects_everything(&self) -> bool {
        self.name.is_none() && self.labels == LabelSelector::default() && self.fields == FieldSelector::default()
    }

    fn matches(&self, obj: &Value) -> bool {
        self.name.as_deref().is_none_or(|n| object::name(obj) == Some(n))
            && self.labels.matches_json(object::labels(obj))
            && self.fields.matches(obj)
    }
}

struct Encoder {
    res: Arc<Resource>,
    accept: Accept,
    include: IncludeObject,
}

impl Encoder {
    fn line(&self, ty: &str, obj: Value) -> bytes::Bytes {
        let obj = match self.accept.shape {
            Shape::Object => obj,
            Shape::Metadata => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
            Shape::Table => {
                let rv = obj["metadata"]["resourceVersion"].clone();
                let include = match self.include {
                    IncludeObject::None => IncludeObject::None,
                    IncludeObject::Metadata => IncludeObject::Metadata,
                    IncludeObject::Object => IncludeObject::Object,
                };
                table::table(self.res.kind, &[obj], include, json!({"resourceVersion": rv}), jiff::Timestamp::now())
            }
        };
        let mut line = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
        line.push(b'\n');
        line.into()
    }

    fn bookmark(&self, rv: u64) -> bytes::Bytes {
        let obj = json!({
            "kind": self.res.kind,
            "apiVersion": self.res.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
        });
        let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        line.into()
    }

    fn error(&self, e: &ApiError) -> bytes::Bytes {
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.status()})).unwrap_or_default();
        line.push(b'\n');
        line.into()
    }
}

/// Maps one store change to the watch event a client filtering with `filter` must see:
/// an object that starts matching is ADDED, one that stops matching is DELETED.
fn translate(e: &store::Event, filter: &Filter) -> Option<(&'static str, Value)> {
    let obj = object::from_kv(&e.kv)?;
    let now = filter.matches(&obj);
    // Decoding the previous version is only needed to tell whether it was selected.
    let before = match e.kind {
        EventKind::Created => false,
        _ if filter.selects_everything() => true,
        _ => e.prev.as_ref().and_then(object::from_kv).map(|p| filter.matches(&p)).unwrap_or(false),
    };
    match (e.kind, before, now) {
        (EventKind::Created, _, true) => Some(("ADDED", obj)),
        (EventKind::Updated, true, true) => Some(("MODIFIED", obj)),
        (EventKind::Updated, false, true) => Some(("ADDED", obj)),
        (EventKind::Updated, true, false) => Some(("DELETED", obj)),
        (EventKind::Deleted, true, _) => Some(("DELETED", obj)),
        _ => None,
    }
}

impl ApiServer {
    pub async fn watch(
        self: &Arc<Self>,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: Option<&str>,
        q: &Query,
        accept: Accept,
    ) -> Result<Response> {
        let (labels, fields) = selectors(res, q)?;
        let filter = Filter { labels, fields, name: name.map(String::from) };
        let prefix = res.prefix(ns);
        let enc = Encoder { res: res.clone(), accept, include: include_object(q) };
        let bookmarks = q.flag("allowWatchBookmarks");
        let timeout = q.int("timeoutSeconds")?.filter(|t| *t > 0).map(|t| Duration::from_secs(t as u64)).unwrap_or(DEFAULT_TIMEOUT);

        let (initial, start) = match q.get("resourceVersion") {
            None | Some("0") => {
                let (kvs, rev) = self.store.list(&prefix).await.map_err(|e| super::handlers::store_err(res, "", e))?;
                let objs: Vec<Value> = kvs.iter().filter_map(object::from_kv).filter(|o| filter.matches(o)).collect();
                (objs, rev)
            }
            Some(rv) => (Vec::new(), rv.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?),
        };
        let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::convert::Infallible>>(256);
        let stream = self.store.watch(&prefix, start);
        tokio::spawn(async move {
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    let err = super::handlers::store_err(&enc.res, "", e);
                    let _ = tx.send(Ok(enc.error(&err))).await;
                    return;
                }
            };
            for obj in initial {
                if tx.send(Ok(enc.line("ADDED", obj))).await.is_err() {
                    return;
                }
            }
            let mut last = start;
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval(BOOKMARK_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    next = stream.next() => match next {
                        Some(Ok(e)) => {
                            last = e.revision();
                            if let Some((ty, obj)) = translate(&e, &filter) {
                                if tx.send(Ok(enc.line(ty, obj))).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Some(Err(store::Error::Lagged)) | None => return,
                        Some(Err(e)) => {
                            let _ = tx.send(Ok(enc.error(&ApiError::internal(e.to_string())))).await;
                            return;
                        }
                    },
                    _ = tick.tick() => {
                        if tx.is_closed() {
                            return;
                        }
                        if bookmarks && tx.send(Ok(enc.bookmark(last))).await.is_err() {
                            return;
                        }
                    }
                    _ = &mut deadline => return,
                }
            }
        });
        let body = Body::from_stream(ReceiverStream::new(rx));
        Ok(([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], body).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyValue;

    fn kv(labels: Value, rev: u64) -> KeyValue {
        let v = json!({"metadata": {"name": "p", "labels": labels}});
        KeyValue { key: "/k".into(), value: serde_json::to_vec(&v).unwrap().into(), create_revision: 1, mod_revision: rev }
    }

    #[test]
    fn objects_entering_or_leaving_a_selector_are_added_or_deleted() {
        let filter = Filter { labels: LabelSelector::parse("app=web").unwrap(), fields: FieldSelector::default(), name: None };
        let web = json!({"app": "web"});
        let other = json!({"app": "db"});
        let ev = |kind, prev: Option<KeyValue>, cur| store::Event { kind, kv: cur, prev };
        let ty = |e: &store::Event| translate(e, &filter).map(|(t, _)| t);
        assert_eq!(ty(&ev(EventKind::Created, None, kv(web.clone(), 2))), Some("ADDED"));
        assert_eq!(ty(&ev(EventKind::Created, None, kv(other.clone(), 2))), None);
        assert_eq!(ty(&ev(EventKind::Updated, Some(kv(web.clone(), 2)), kv(web.clone(), 3))), Some("MODIFIED"));
        assert_eq!(ty(&ev(EventKind::Updated, Some(kv(other.clone(), 2)), kv(web.clone(), 3))), Some("ADDED"));
        assert_eq!(ty(&ev(EventKind::Updated, Some(kv(web.clone(), 2)), kv(other.clone(), 3))), Some("DELETED"));
        assert_eq!(ty(&ev(EventKind::Deleted, Some(kv(web.clone(), 2)), kv(web, 3))), Some("DELETED"));
        assert_eq!(ty(&ev(EventKind::Deleted, Some(kv(other.clone(), 2)), kv(other, 3))), None);
    }

    #[test]
    fn a_watch_that_selects_everything_sees_every_change_without_the_previous_version() {
        let all = Filter { labels: LabelSelector::default(), fields: FieldSelector::default(), name: None };
        assert!(all.selects_everything());
        let named = Filter { labels: LabelSelector::default(), fields: FieldSelector::default(), name: Some("p".into()) };
        assert!(!named.selects_everything());
        // The previous version's bytes are not JSON: were they decoded, the change would be lost.
        let garbage = KeyValue { key: "/k".into(), value: b"not json".to_vec().into(), create_revision: 1, mod_revision: 2 };
        let ev = |kind, prev: Option<KeyValue>| store::Event { kind, kv: kv(json!({}), 3), prev };
        let ty = |e: &store::Event| translate(e, &all).map(|(t, _)| t);
        assert_eq!(ty(&ev(EventKind::Created, None)), Some("ADDED"));
        assert_eq!(ty(&ev(EventKind::Updated, Some(garbage.clone()))), Some("MODIFIED"));
        assert_eq!(ty(&ev(EventKind::Deleted, Some(garbage))), Some("DELETED"));
        // Even were the previous version missing, such a watcher had seen the object.
        assert_eq!(ty(&ev(EventKind::Updated, None)), Some("MODIFIED"));
        assert_eq!(ty(&ev(EventKind::Deleted, None)), Some("DELETED"));
    }
}

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
    /// Whether keys end in `namespace/name` (else in `plural/name`).
    namespaced: bool,
}

impl Filter {
    fn selects_everything(&self) -> bool {
        self.name.is_none() && self.labels == LabelSelector::default() && self.fields == FieldSelector::default()
    }

    /// False when the store key alone shows the object cannot match: a watch on one name (the
    /// URL's, or a `metadata.name=` / `metadata.namespace=` term) skips every other object's
    /// changes without decoding them, as the apiserver's watch cache indexes such watchers.
    /// Names and namespaces hold no '/', so they are the key's last two segments (a cluster-scoped
    /// kind's keys have no namespace segment).
    fn key_may_match(&self, key: &str) -> bool {
        let mut segments = key.rsplit('/');
        let (name, namespace) = (segments.next().unwrap_or_default(), segments.next().unwrap_or_default());
        let wanted_name = self.name.as_deref().or_else(|| self.fields.requires_exact_match("metadata.name"));
        let wanted_namespace = self.fields.requires_exact_match("metadata.namespace").filter(|_| self.namespaced);
        wanted_name.is_none_or(|n| n == name) && wanted_namespace.is_none_or(|ns| ns == namespace)
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
    if !filter.key_may_match(&e.kv.key) {
        return None;
    }
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

/// The channel the watch's response body reads from.
type Lines = mpsc::Sender<Result<bytes::Bytes, std::convert::Infallible>>;

/// Sends the client each change its filter selects, and bookmarks if it asked for them, until
/// the client goes away, the store ends the stream or `timeout` passes.
async fn forward(mut stream: store::WatchStream, filter: &Filter, enc: &Encoder, tx: &Lines, start: u64, bookmarks: bool, timeout: Duration) {
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
                    if let Some((ty, obj)) = translate(&e, filter)
                        && tx.send(Ok(enc.line(ty, obj))).await.is_err()
                    {
                        return;
                    }
                }
                Some(Err(store::Error::Lagged)) | None => return,
                Some(Err(e)) => {
                    let _ = tx.send(Ok(enc.error(&ApiError::internal(e.to_string())))).await;
                    return;
                }
            },
            // The client went away: stop at once rather than at the next event it would have
            // been sent; a selective watch may wait long for one, decoding every change meanwhile.
            _ = tx.closed() => return,
            _ = tick.tick() => {
                if bookmarks && tx.send(Ok(enc.bookmark(last))).await.is_err() {
                    return;
                }
            }
            _ = &mut deadline => return,
        }
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
        let filter = Filter { labels, fields, name: name.map(String::from), namespaced: res.namespaced };
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
        let (tx, rx): (Lines, _) = mpsc::channel(256);
        let stream = self.store.watch(&prefix, start);
        tokio::spawn(async move {
            let stream = match stream {
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
            forward(stream, &filter, &enc, &tx, start, bookmarks, timeout).await;
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
        let filter = Filter { labels: LabelSelector::parse("app=web").unwrap(), fields: FieldSelector::default(), name: None, namespaced: true };
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
        let all = Filter { labels: LabelSelector::default(), fields: FieldSelector::default(), name: None, namespaced: true };
        assert!(all.selects_everything());
        let named = Filter { labels: LabelSelector::default(), fields: FieldSelector::default(), name: Some("p".into()), namespaced: true };
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

    #[test]
    fn a_watch_on_one_name_or_namespace_skips_other_keys_without_decoding_them() {
        let fields = |s: &str| FieldSelector::parse(s).unwrap();
        let filter = |name: Option<&str>, f: &str, namespaced| Filter { labels: LabelSelector::default(), fields: fields(f), name: name.map(String::from), namespaced };
        let cases = [
            (filter(Some("web"), "", true), "/registry/core/pods/default/web", true),
            (filter(Some("web"), "", true), "/registry/core/pods/default/web-2", false),
            (filter(None, "metadata.name=web", true), "/registry/core/pods/prod/web", true),
            (filter(None, "metadata.name=web", true), "/registry/core/pods/prod/db", false),
            (filter(None, "metadata.namespace=prod", true), "/registry/core/pods/prod/db", true),
            (filter(None, "metadata.namespace=prod", true), "/registry/core/pods/dev/db", false),
            // A cluster-scoped kind's key has the plural where a namespace would be.
            (filter(None, "metadata.namespace=", false), "/registry/core/nodes/node-1", true),
            (filter(None, "metadata.name!=web", true), "/registry/core/pods/default/web", true),
            (filter(None, "", true), "/registry/core/pods/default/anything", true),
        ];
        for (f, key, want) in cases {
            assert_eq!(f.key_may_match(key), want, "{key} with name {:?} fields {}", f.name, f.fields);
        }
        // Skipped before decoding: these bytes are not JSON.
        let garbage = KeyValue { key: "/registry/core/pods/default/other".into(), value: b"not json".to_vec().into(), create_revision: 1, mod_revision: 2 };
        let e = store::Event { kind: EventKind::Created, kv: garbage, prev: None };
        assert!(translate(&e, &filter(Some("web"), "", true)).is_none());
    }

    #[tokio::test]
    async fn a_watch_ends_as_soon_as_its_client_goes_away_even_with_nothing_to_send() {
        let registry = crate::registry::Registry::new();
        let res = registry.get("", "v1", "pods").unwrap();
        let enc = Encoder { res, accept: Accept { shape: Shape::Object }, include: IncludeObject::None };
        let filter = Filter { labels: LabelSelector::default(), fields: FieldSelector::default(), name: Some("web".into()), namespaced: true };
        let (tx, rx): (Lines, _) = mpsc::channel(1);
        drop(rx);
        // A store stream with no changes, and no bookmarks asked for: only the closed channel ends it.
        let quiet: store::WatchStream = futures::stream::pending().boxed();
        let ended = tokio::time::timeout(Duration::from_secs(5), forward(quiet, &filter, &enc, &tx, 1, false, DEFAULT_TIMEOUT)).await;
        assert!(ended.is_ok(), "the watch kept running for a client that was gone");
    }
}

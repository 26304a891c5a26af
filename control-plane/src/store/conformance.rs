//! One conformance suite for every store backend. Backends call [`run_all`] from their
//! tests with a factory that makes a fresh, empty store per case.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use super::{DynStore, Error, EventKind};

pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynStore>,
{
    create_then_get_returns_the_value_with_its_revisions(make().await).await;
    create_refuses_an_existing_key(make().await).await;
    update_is_compare_and_swap_on_the_mod_revision(make().await).await;
    update_and_delete_of_a_missing_key_are_not_found(make().await).await;
    delete_honours_its_precondition_and_reports_the_deletion_revision(make().await).await;
    list_returns_only_the_prefix_in_key_order_with_the_snapshot_revision(make().await).await;
    watch_delivers_every_later_change_in_revision_order(make().await).await;
    watch_from_an_earlier_revision_replays_what_was_missed(make().await).await;
    concurrent_writes_get_distinct_increasing_revisions(make().await).await;
}

async fn create_then_get_returns_the_value_with_its_revisions(s: DynStore) {
    let before = s.current_revision().await.unwrap();
    let kv = s.create("/registry/pods/default/a", b"A".to_vec()).await.unwrap();
    assert!(kv.mod_revision > before);
    assert_eq!(kv.create_revision, kv.mod_revision);
    let got = s.get("/registry/pods/default/a").await.unwrap().unwrap();
    assert_eq!(got, kv);
    assert_eq!(s.current_revision().await.unwrap(), kv.mod_revision);
    assert!(s.get("/registry/pods/default/missing").await.unwrap().is_none());
}

async fn create_refuses_an_existing_key(s: DynStore) {
    s.create("/k", b"1".to_vec()).await.unwrap();
    assert_eq!(s.create("/k", b"2".to_vec()).await.unwrap_err(), Error::AlreadyExists("/k".into()));
    assert_eq!(&*s.get("/k").await.unwrap().unwrap().value, b"1");
}

async fn update_is_compare_and_swap_on_the_mod_revision(s: DynStore) {
    let v1 = s.create("/k", b"1".to_vec()).await.unwrap();
    let v2 = s.update("/k", b"2".to_vec(), v1.mod_revision).await.unwrap();
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(v2.create_revision, v1.create_revision);
    let stale = s.update("/k", b"3".to_vec(), v1.mod_revision).await.unwrap_err();
    assert!(matches!(stale, Error::Conflict { actual, .. } if actual == v2.mod_revision));
    assert_eq!(&*s.get("/k").await.unwrap().unwrap().value, b"2");
}

async fn update_and_delete_of_a_missing_key_are_not_found(s: DynStore) {
    assert_eq!(s.update("/nope", b"x".to_vec(), 1).await.unwrap_err(), Error::NotFound("/nope".into()));
    assert_eq!(s.delete("/nope", None).await.unwrap_err(), Error::NotFound("/nope".into()));
}

async fn delete_honours_its_precondition_and_reports_the_deletion_revision(s: DynStore) {
    let v1 = s.create("/k", b"1".to_vec()).await.unwrap();
    let v2 = s.update("/k", b"2".to_vec(), v1.mod_revision).await.unwrap();
    assert!(matches!(s.delete("/k", Some(v1.mod_revision)).await.unwrap_err(), Error::Conflict { .. }));
    let gone = s.delete("/k", Some(v2.mod_revision)).await.unwrap();
    assert!(gone.mod_revision > v2.mod_revision);
    assert_eq!(&*gone.value, b"2");
    assert!(s.get("/k").await.unwrap().is_none());
    // A deleted key can be created again.
    s.create("/k", b"3".to_vec()).await.unwrap();
}

async fn list_returns_only_the_prefix_in_key_order_with_the_snapshot_revision(s: DynStore) {
    for k in ["/r/pods/b/2", "/r/pods/a/1", "/r/pods/b/1", "/r/podsx/a", "/r/services/a/1"] {
        s.create(k, k.as_bytes().to_vec()).await.unwrap();
    }
    let (items, rev) = s.list("/r/pods/").await.unwrap();
    let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/a/1", "/r/pods/b/1", "/r/pods/b/2"]);
    assert_eq!(rev, s.current_revision().await.unwrap());
    let (items, _) = s.list("/r/pods/b/").await.unwrap();
    assert_eq!(items.len(), 2);
    assert!(s.list("/zzz/").await.unwrap().0.is_empty());
}

async fn next(w: &mut super::WatchStream) -> std::sync::Arc<super::Event> {
    tokio::time::timeout(Duration::from_secs(5), w.next()).await.expect("watch event in time").expect("stream open").unwrap()
}

async fn watch_delivers_every_later_change_in_revision_order(s: DynStore) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/r/pods/", start).unwrap();
    let a = s.create("/r/pods/a", b"1".to_vec()).await.unwrap();
    s.create("/r/services/x", b"ignored".to_vec()).await.unwrap();
    let a2 = s.update("/r/pods/a", b"2".to_vec(), a.mod_revision).await.unwrap();
    let gone = s.delete("/r/pods/a", None).await.unwrap();
    let e1 = next(&mut w).await;
    assert_eq!((e1.kind, e1.revision()), (EventKind::Created, a.mod_revision));
    let e2 = next(&mut w).await;
    assert_eq!((e2.kind, e2.revision()), (EventKind::Updated, a2.mod_revision));
    assert_eq!(&*e2.prev.as_ref().unwrap().value, b"1");
    let e3 = next(&mut w).await;
    assert_eq!((e3.kind, e3.revision()), (EventKind::Deleted, gone.mod_revision));
    assert_eq!(&*e3.kv.value, b"2");
}

async fn watch_from_an_earlier_revision_replays_what_was_missed(s: DynStore) {
    let a = s.create("/p/a", b"1".to_vec()).await.unwrap();
    let b = s.create("/p/b", b"1".to_vec()).await.unwrap();
    let mut w = s.watch("/p/", a.mod_revision).unwrap();
    assert_eq!(next(&mut w).await.revision(), b.mod_revision);
    let c = s.create("/p/c", b"1".to_vec()).await.unwrap();
    assert_eq!(next(&mut w).await.revision(), c.mod_revision);
}

async fn concurrent_writes_get_distinct_increasing_revisions(s: DynStore) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/c/", start).unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.create(&format!("/c/{i:03}"), vec![i as u8]).await.unwrap().mod_revision })
        })
        .collect();
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 100);
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(next(&mut w).await.revision());
    }
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "watch order follows revisions");
    assert_eq!(s.list("/c/").await.unwrap().0.len(), 100);
}

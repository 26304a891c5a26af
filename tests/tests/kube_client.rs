//! The API through a kube-rs client: typed CRUD, optimistic concurrency, watch, Status errors.

use std::time::Duration;

use e2e::Cluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "data": {"v": value},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_crud_with_optimistic_concurrency() {
    let c = Cluster::up(0).unwrap();
    let client = c.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = api.create(&PostParams::default(), &cm("one", "1")).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some());

    let dup = api.create(&PostParams::default(), &cm("one", "1")).await.unwrap_err();
    assert!(matches!(dup, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"), "{dup:?}");

    let mut newer = created.clone();
    newer.data = Some([("v".to_string(), "2".to_string())].into());
    let updated = api.replace("one", &PostParams::default(), &newer).await.unwrap();
    assert_ne!(updated.metadata.resource_version, created.metadata.resource_version);

    // A write based on the old resourceVersion is refused.
    let stale = api.replace("one", &PostParams::default(), &newer).await.unwrap_err();
    assert!(matches!(stale, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"), "{stale:?}");

    let missing = api.get("nope").await.unwrap_err();
    assert!(matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"), "{missing:?}");

    let patched = api
        .patch("one", &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"labels": {"extra": "yes"}}})))
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["extra"], "yes");

    api.create(&PostParams::default(), &cm("two", "2")).await.unwrap();
    let listed = api.list(&ListParams::default().labels("extra=yes")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let by_name = api.list(&ListParams::default().fields("metadata.name=two")).await.unwrap();
    assert_eq!(by_name.items[0].metadata.name.as_deref(), Some("two"));

    api.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("one").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_added_modified_and_deleted_from_a_resource_version() {
    let c = Cluster::up(0).unwrap();
    let client = c.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    api.create(&PostParams::default(), &cm("w", "1")).await.unwrap();
    api.patch("w", &PatchParams::default(), &Patch::Merge(serde_json::json!({"data": {"v": "2"}}))).await.unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await.expect("event in time").unwrap().unwrap();
        kinds.push(match ev {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        });
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_from_a_revision_older_than_the_history_is_gone() {
    let mut c = Cluster::up(0).unwrap();
    // The watch history lives in memory: after a restart, revisions before it are gone.
    c.stop().unwrap();
    c.start(0).unwrap();
    let client = c.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream = api.watch(&WatchParams::default(), "1").await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("answer in time") {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        Some(Err(kube::Error::Api(e))) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_get_defaults_generation_and_a_scale_subresource() {
    let c = Cluster::up(0).unwrap();
    let client = c.client().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "demo/web:v1"}]}},
        },
    }))
    .unwrap();
    let d = api.create(&PostParams::default(), &d).await.unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let ru = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(serde_json::to_value(ru.max_surge).unwrap(), "25%");
    assert_eq!(d.metadata.generation, Some(1));

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    api.patch_scale("web", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"replicas": 4}}))).await.unwrap();
    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    assert_eq!(d.metadata.generation, Some(2));

    // Status written through the main resource is ignored; through /status it sticks.
    // The deployment controller writes too, so a read-modify-write may need another try.
    let after = loop {
        let mut with_status = api.get("web").await.unwrap();
        let real = with_status.status.clone();
        with_status.status = Some(serde_json::from_value(serde_json::json!({"replicas": 9})).unwrap());
        match api.replace("web", &PostParams::default(), &with_status).await {
            Ok(after) => break (after, real),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_ne!(after.0.status.and_then(|s| s.replicas), Some(9), "status through the main resource is ignored");
    let _ = after.1;
    let patched = api.patch_status("web", &PatchParams::default(), &Patch::Merge(serde_json::json!({"status": {"observedGeneration": 99}}))).await.unwrap();
    assert_eq!(patched.status.unwrap().observed_generation, Some(99), "status through /status sticks");

    let ns: Api<Namespace> = Api::all(client);
    assert!(ns.get("kube-system").await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_token_are_unauthorized() {
    let c = Cluster::up(0).unwrap();
    let mut kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    for auth in &mut kc.auth_infos {
        if let Some(info) = auth.auth_info.as_mut() {
            info.token = Some("wrong".to_string().into());
        }
    }
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 401), "{err:?}");
    // Health and version stay public.
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

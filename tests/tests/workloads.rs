//! Deployments, ReplicaSets, the scheduler and garbage collection through real kubectl.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::{Cluster, eventually, newest_kubectl, stderr};

const WAIT: Duration = Duration::from_secs(90);

/// These tests each run a multi-node cluster and measure availability through readiness probes;
/// run side by side on a 2-core machine, starved probes would make pods look unready. One at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: demo/web:v1
        ports: [{name: http, containerPort: 80}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
"#;

fn ready(c: &Cluster) -> (i64, i64) {
    let out = c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas} {.status.availableReplicas}"]);
    let mut it = out.split(' ').map(|s| s.parse::<i64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn wait_ready(c: &Cluster, n: i64) {
    eventually(WAIT, &format!("{n} ready replicas"), || {
        let pods = c.kubectl(&["get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o", "name"]);
        (ready(c).0 == n && pods.lines().count() as i64 >= n).then_some(())
    });
}

#[test]
fn a_deployment_scales_heals_rolls_out_rolls_back_and_is_deleted_with_everything_it_owns() {
    let _serial = exclusive();
    let c = Cluster::up(2).unwrap();
    let out = c.kubectl_stdin(&newest_kubectl(), &["apply", "-f", "-"], WEB);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_ready(&c, 3);

    c.kubectl(&["scale", "deployment/web", "--replicas=10"]);
    wait_ready(&c, 10);
    let nodes = c.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    assert!(nodes.contains("node-1") && nodes.contains("node-2"), "spread over both nodes: {nodes}");

    let victim = c.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    c.kubectl(&["delete", "pod", &victim, "--wait=false"]);
    eventually(WAIT, "a replacement", || {
        let names = c.kubectl(&["get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o", "name"]);
        (!names.contains(&victim) && ready(&c).0 == 10).then_some(())
    });

    // Watch availability all through the rollout: never below replicas - maxUnavailable.
    let lowest = Arc::new(AtomicI64::new(i64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (lowest, stop, kubeconfig) = (lowest.clone(), stop.clone(), c.kubeconfig());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(newest_kubectl())
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"])
                    .output()
                    .unwrap();
                if let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse::<i64>() {
                    lowest.fetch_min(n, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    c.kubectl(&["set", "image", "deployment/web", "web=demo/web:v2"]);
    let status = c.kubectl_with(&newest_kubectl(), &["rollout", "status", "deployment/web", "--timeout=90s"]);
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(lowest.load(Ordering::Relaxed) >= 9, "availability fell to {} (maxUnavailable 1 of 10)", lowest.load(Ordering::Relaxed));
    eventually(WAIT, "only v2 pods", || {
        let images = c.kubectl(&["get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].spec.containers[0].image}"]);
        (images.split_whitespace().count() == 10 && images.split_whitespace().all(|i| i == "demo/web:v2")).then_some(())
    });
    let rs = c.kubectl(&["get", "rs", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas} {end}"]);
    assert!(rs.contains("demo/web:v1=0") && rs.contains("demo/web:v2=10"), "{rs}");

    let history = c.kubectl(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    c.kubectl(&["rollout", "undo", "deployment/web"]);
    let status = c.kubectl_with(&newest_kubectl(), &["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert_eq!(c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]), "demo/web:v1");

    let events = c.kubectl(&["describe", "deployment", "web"]);
    assert!(events.contains("ScalingReplicaSet"), "{events}");

    c.kubectl(&["delete", "deployment", "web"]);
    eventually(WAIT, "replica sets and pods gone", || {
        let left = c.kubectl(&["get", "rs,pods", "-l", "app=web", "-o", "name"]);
        left.trim().is_empty().then_some(())
    });
}

#[test]
fn a_pod_that_fits_no_node_stays_pending_with_a_reason() {
    let _serial = exclusive();
    let c = Cluster::up(1).unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers: [{name: c, image: demo/busybox, resources: {requests: {cpu: \"500\"}}}]\n";
    let out = c.kubectl_stdin(&newest_kubectl(), &["apply", "-f", "-"], pod);
    assert!(out.status.success(), "{}", stderr(&out));
    let reason = eventually(WAIT, "Unschedulable", || {
        let r = c.kubectl(&["get", "pod", "huge", "-o", "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}"]);
        (r == "Unschedulable").then_some(r)
    });
    assert_eq!(reason, "Unschedulable");
    assert_eq!(c.kubectl(&["get", "pod", "huge", "-o", "jsonpath={.status.phase}"]), "Pending");
    let described = eventually(WAIT, "FailedScheduling event", || {
        let d = c.kubectl(&["describe", "pod", "huge"]);
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(described.contains("Insufficient cpu"), "{described}");
}

#[test]
fn deleting_a_replica_set_with_orphan_cascade_keeps_its_pods_and_drops_their_owner() {
    let _serial = exclusive();
    let c = Cluster::up(1).unwrap();
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: keep}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: keep}}\n  template:\n    metadata: {labels: {app: keep}}\n    spec: {terminationGracePeriodSeconds: 0, containers: [{name: c, image: demo/busybox, command: [sleep, \"3600\"]}]}\n";
    let out = c.kubectl_stdin(&newest_kubectl(), &["apply", "-f", "-"], rs);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(WAIT, "2 pods", || (c.kubectl(&["get", "pods", "-l", "app=keep", "-o", "name"]).lines().count() == 2).then_some(()));
    c.kubectl(&["delete", "rs", "keep", "--cascade=orphan"]);
    eventually(WAIT, "rs gone", || c.kubectl(&["get", "rs", "-o", "name"]).trim().is_empty().then_some(()));
    std::thread::sleep(Duration::from_secs(1));
    let pods = c.kubectl(&["get", "pods", "-l", "app=keep", "-o", "jsonpath={.items[*].metadata.ownerReferences}"]);
    assert_eq!(c.kubectl(&["get", "pods", "-l", "app=keep", "-o", "name"]).lines().count(), 2, "orphans survive");
    assert!(pods.trim().is_empty(), "their owner references are gone: {pods}");
}

#[test]
fn pods_of_a_node_that_stops_heartbeating_are_replaced_elsewhere_and_it_recovers() {
    let _serial = exclusive();
    let c = Cluster::up(2).unwrap();
    let deploy = WEB.replace("replicas: 3", "replicas: 4");
    let out = c.kubectl_stdin(&newest_kubectl(), &["apply", "-f", "-"], &deploy);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_ready(&c, 4);
    let on_node2 = || c.kubectl(&["get", "pods", "-l", "app=web", "--field-selector=spec.nodeName=node-2", "-o", "name"]);
    assert!(!on_node2().trim().is_empty(), "some pods run on node-2");

    c.kill_agent("node-2");
    eventually(WAIT, "node-2 Unknown and tainted", || {
        let n = c.kubectl(&["get", "node", "node-2", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints[*].key}"]);
        (n == "Unknown node.kubernetes.io/unreachable").then_some(())
    });
    eventually(WAIT, "4 ready pods on node-1", || {
        let running = c.kubectl(&["get", "pods", "-l", "app=web", "--field-selector=spec.nodeName=node-1,status.phase=Running", "-o", "name"]);
        (running.lines().count() >= 4 && ready(&c).0 == 4).then_some(())
    });

    // The agent comes back: the node is Ready again and the pods moved away are cleaned up there.
    let _agent = c.restart_agent("node-2");
    eventually(WAIT, "node-2 Ready without the taint", || {
        let n = c.kubectl(&["get", "node", "node-2", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints}"]);
        (n.trim() == "True").then_some(())
    });
    eventually(WAIT, "evicted pods gone from node-2", || on_node2().trim().is_empty().then_some(()));
}

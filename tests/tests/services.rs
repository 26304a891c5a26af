//! Services through real kubectl on `control-plane up`: Endpoints, NodePort and ClusterIP rules,
//! cluster DNS, and a rolling update that drops no request. All traffic goes to addresses inside
//! the namespaces the cluster made (node addresses on its bridge, pod and service addresses
//! reached from inside a pod).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use e2e::{Cluster, eventually, newest_kubectl, stderr};

const WAIT: Duration = Duration::from_secs(90);

/// Like the workload tests, these measure availability through readiness probes: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn manifests() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// One HTTP/1.0 GET; the body, or why it failed.
fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    if !out.starts_with("HTTP/1.") || !out.contains(" 200 ") {
        return Err(format!("bad response: {out:?}"));
    }
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string())
}

fn node_ip(c: &Cluster, node: &str) -> String {
    c.kubectl(&["get", "node", node, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"])
}

fn ready_addresses(c: &Cluster) -> BTreeSet<String> {
    c.kubectl(&["get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]).split_whitespace().map(String::from).collect()
}

fn pod_ips(c: &Cluster) -> BTreeSet<String> {
    c.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}"]).split_whitespace().map(String::from).collect()
}

#[test]
fn a_web_deployment_is_reached_through_its_service_by_node_port_cluster_ip_and_name_and_rolls_out_without_a_dropped_request() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::up(2).unwrap();
    let out = c.kubectl_stdin(&newest_kubectl(), &["apply", "-f", "-"], &format!(
        "{}\n---\n{}",
        std::fs::read_to_string(manifests().join("web-deployment.yaml")).unwrap(),
        std::fs::read_to_string(manifests().join("web-service.yaml")).unwrap()
    ));
    assert!(out.status.success(), "{}", stderr(&out));

    // Endpoints list the ready pods' addresses.
    let addresses = eventually(WAIT, "3 ready endpoints", || {
        let a = ready_addresses(&c);
        (a.len() == 3 && a == pod_ips(&c)).then_some(a)
    });
    let shown = c.kubectl(&["get", "endpoints", "web"]);
    for a in &addresses {
        assert!(shown.contains(a.as_str()), "kubectl get endpoints shows {a}:\n{shown}");
    }

    // From the host, NODE_IP:NODEPORT on either node is answered by more than one pod.
    for node in ["node-1", "node-2"] {
        let addr: SocketAddr = format!("{}:30080", node_ip(&c, node)).parse().unwrap();
        let mut answered_by = BTreeSet::new();
        for _ in 0..30 {
            let body = get(addr).unwrap_or_else(|e| panic!("GET {addr}: {e}"));
            assert!(body.starts_with("web v1 on web-"), "{body}");
            answered_by.insert(body);
        }
        assert!(answered_by.len() > 1, "{node}: only {answered_by:?} answered");
    }

    // From inside a pod: pod IPs, the cluster IP, the short name and the full name.
    let client = c.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    let cluster_ip = c.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let mut targets: Vec<String> = addresses.iter().cloned().collect();
    targets.extend([cluster_ip.clone(), "web".into(), "web.default.svc.cluster.local".into(), "web.default".into()]);
    for t in &targets {
        let url = format!("http://{t}/");
        let out = c.kubectl_with(&newest_kubectl(), &["exec", &client, "--", "wget", "-q", "-O", "-", &url]);
        assert!(out.status.success() && e2e::stdout(&out).contains("web v1 on"), "wget {url} from {client}: {}{}", e2e::stdout(&out), stderr(&out));
    }
    let out = c.kubectl_with(&newest_kubectl(), &["exec", &client, "--", "nslookup", "web.default.svc.cluster.local"]);
    assert!(e2e::stdout(&out).contains(&cluster_ip), "nslookup: {}{}", e2e::stdout(&out), stderr(&out));
    let out = c.kubectl_with(&newest_kubectl(), &["exec", &client, "--", "nslookup", "nothing-here.default.svc.cluster.local"]);
    assert!(!out.status.success() || e2e::stdout(&out).contains("NXDOMAIN"), "a missing name is not found: {}", e2e::stdout(&out));

    // A client looping on the NodePort through a whole rolling update sees no failed request.
    let addr: SocketAddr = format!("{}:30080", node_ip(&c, "node-1")).parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let looper = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                match get(addr) {
                    Ok(body) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        seen.insert(body.split(" on ").next().unwrap_or("").to_string());
                    }
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
            seen
        })
    };
    c.kubectl(&["set", "image", "deployment/web", "web=demo/web:v2"]);
    let out = c.kubectl_with(&newest_kubectl(), &["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Keep going a little after the rollout: the last old pods are still being stopped.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let versions = looper.join().unwrap();
    let failed = failed.lock().unwrap().clone();
    let ok = ok.load(Ordering::Relaxed);
    assert!(failed.is_empty(), "{} of {} requests failed during the rollout: {:?}", failed.len(), ok + failed.len() as u64, &failed[..failed.len().min(5)]);
    assert!(ok > 50, "only {ok} requests in the whole rollout");
    assert!(versions.contains("web v1") && versions.contains("web v2"), "{versions:?}");
    eventually(WAIT, "every answer from v2", || get(addr).ok().filter(|b| b.starts_with("web v2")));

    // Scaling to zero empties the Endpoints, and the service refuses at once.
    c.kubectl(&["scale", "deployment/web", "--replicas=0"]);
    eventually(WAIT, "no endpoints", || ready_addresses(&c).is_empty().then_some(()));
    eventually(WAIT, "the node port refuses", || get(addr).err());
}

//! The rules against the real kernel: a private network namespace per test with a dummy link
//! holding the node's and the "pods'" addresses, listeners on the pod addresses, connections
//! through cluster IPs and node ports. Nothing leaves the namespace, which is removed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace `tkpx-PID-N`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("tkpx-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    /// Runs `f` on a thread inside the namespace (and so do processes it spawns).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.0)).unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

const NODE: &str = "10.99.0.1";
const PODS: [&str; 2] = ["10.99.0.2", "10.99.0.3"];

/// lo up, and a veth link (this kernel may lack the dummy driver) with the node's and pods' addresses; a listener on each pod address
/// that answers every connection with its own address. Listener threads end with the namespace's
/// last reference (they are detached and blocked in accept; the process exit reaps them).
fn setup(ns: &Netns) {
    ns.run(|| {
        let batch = format!("link set lo up\nlink add d0 type veth peer name d1\nlink set d0 up\nlink set d1 up\naddr add {NODE}/24 dev d0\naddr add {}/24 dev d0\naddr add {}/24 dev d0\nroute add default dev d0\n", PODS[0], PODS[1]);
        let mut child = Command::new("ip").args(["-batch", "-"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        for pod in PODS {
            let l = TcpListener::bind((pod, 8080)).unwrap();
            std::thread::spawn(move || {
                for mut s in l.incoming().map_while(Result::ok) {
                    let _ = s.write_all(pod.as_bytes());
                }
            });
        }
    });
}

fn endpoint(ip: &str) -> Endpoint {
    Endpoint { ip: ip.parse().unwrap(), port: 8080, node_name: Some("a".into()), ready: true, serving: true, terminating: false }
}

fn service(endpoints: Vec<Endpoint>, affinity: Option<u32>) -> ProxyState {
    ProxyState {
        node_name: "a".into(),
        services: vec![Service {
            namespace: "default".into(),
            name: "web".into(),
            cluster_ip: Some("10.96.0.20".parse().unwrap()),
            client_ip_affinity_seconds: affinity,
            internal_local_only: false,
            ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: Some(30080), endpoints }],
        }],
    }
}

/// Who answers `n` connections to `addr` (inside the namespace); an error for the first failure.
fn answers(ns: &Netns, addr: &str, n: usize) -> Result<Vec<String>, std::io::ErrorKind> {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.run(move || {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.kind())?;
                let mut out = String::new();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s.read_to_string(&mut out).map_err(|e| e.kind())?;
                Ok(out)
            })
            .collect()
    })
}

fn apply(ns: &Netns, state: ProxyState) {
    ns.run(move || Proxy::new("tinykube").apply(&state)).unwrap();
}

#[test]
fn cluster_ip_and_node_port_connections_reach_every_endpoint() {
    let ns = Netns::new();
    setup(&ns);
    apply(&ns, service(PODS.iter().map(|p| endpoint(p)).collect(), None));
    for addr in ["10.96.0.20:80", "10.99.0.1:30080"] {
        let got = answers(&ns, addr, 40).unwrap();
        for pod in PODS {
            assert!(got.iter().any(|g| g == pod), "{addr}: {pod} never answered: {got:?}");
        }
    }
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_endpoint() {
    let ns = Netns::new();
    setup(&ns);
    apply(&ns, service(PODS.iter().map(|p| endpoint(p)).collect(), Some(60)));
    let got = answers(&ns, "10.96.0.20:80", 20).unwrap();
    assert!(got.iter().all(|g| *g == got[0]), "{got:?}");
}

#[test]
fn a_service_without_endpoints_refuses_connections_and_a_removed_endpoint_gets_no_new_ones() {
    let ns = Netns::new();
    setup(&ns);
    apply(&ns, service(vec![], None));
    assert_eq!(answers(&ns, "10.96.0.20:80", 1), Err(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(answers(&ns, "10.99.0.1:30080", 1), Err(std::io::ErrorKind::ConnectionRefused));
    apply(&ns, service(PODS.iter().map(|p| endpoint(p)).collect(), None));
    assert_eq!(answers(&ns, "10.96.0.20:80", 20).unwrap().len(), 20);
    apply(&ns, service(vec![endpoint(PODS[1])], None));
    let got = answers(&ns, "10.96.0.20:80", 20).unwrap();
    assert!(got.iter().all(|g| g == PODS[1]), "{got:?}");
}

#[test]
fn a_refused_script_leaves_the_previous_rules_and_remove_deletes_the_table() {
    let ns = Netns::new();
    setup(&ns);
    apply(&ns, service(vec![endpoint(PODS[0])], None));
    let mut bad = service(vec![endpoint(PODS[0])], None);
    bad.services[0].ports[0].protocol = Protocol::Udp;
    // An nft the kernel refuses: the same table with a broken rule, loaded through the same path.
    let refused = ns.run(|| {
        let mut p = Proxy::new("tinykube");
        assert!(p.in_process(), "libnftables loads (it ships with nftables)");
        p.run("table ip tinykube {}\ndelete table ip tinykube\ntable ip tinykube {\n chain x {\n  nonsense\n }\n}\n")
    });
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert_eq!(answers(&ns, "10.96.0.20:80", 3).unwrap(), vec![PODS[0]; 3]);
    ns.run(|| Proxy::new("tinykube").remove()).unwrap();
    ns.run(|| Proxy::new("tinykube").remove()).unwrap();
    let tables = ns.run(|| Command::new("nft").args(["list", "tables"]).output().unwrap().stdout);
    assert!(String::from_utf8_lossy(&tables).trim().is_empty(), "{}", String::from_utf8_lossy(&tables));
}

#[test]
fn applying_the_rules_takes_milliseconds() {
    let ns = Netns::new();
    setup(&ns);
    for n in [1usize, 200] {
        let services = (0..n)
            .map(|i| {
                let mut s = service(vec![endpoint(PODS[0]), endpoint(PODS[1])], None).services.remove(0);
                s.name = format!("svc-{i}");
                s.cluster_ip = Some(std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 96, 1, 0)) + i as u32));
                s.ports[0].node_port = Some(30000 + i as u16);
                s
            })
            .collect();
        let state = ProxyState { node_name: "a".into(), services };
        let took = ns.run(move || {
            let mut proxy = Proxy::new("tinykube");
            proxy.apply(&ProxyState::default()).unwrap();
            let started = std::time::Instant::now();
            proxy.apply(&state).unwrap();
            started.elapsed()
        });
        eprintln!("apply of {n} services took {took:?}");
    }
}

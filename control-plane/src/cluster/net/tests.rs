use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::ip::{already_gone, ip};
use super::*;

// ---- pure helpers ----

#[test]
fn cluster_ids_must_be_one_to_seven_lowercase_hex_digits() {
    let cases = [
        ("a", true),
        ("0a1b2c", true),
        ("abcdef0", true),
        ("", false),
        ("abcdef01", false),
        ("ABC", false),
        ("xyz", false),
        ("a-b", false),
        ("a/b", false),
    ];
    for (id, ok) in cases {
        assert_eq!(validate_cluster_id(id).is_ok(), ok, "{id:?}");
    }
}

#[test]
fn node_names_must_be_short_dns_like_names() {
    let long = "a".repeat(64);
    let cases = [
        ("node-1", true),
        ("n", true),
        ("a.b-c", true),
        (&long[..63], true),
        (&long[..], false),
        ("", false),
        ("-a", false),
        ("a-", false),
        (".a", false),
        ("Node", false),
        ("a/b", false),
        ("a b", false),
        ("..", false),
    ];
    for (name, ok) in cases {
        assert_eq!(validate_node_name(name).is_ok(), ok, "{name:?}");
    }
}

#[test]
fn route_metrics_are_nonzero_and_differ_for_ids_with_the_same_numeric_value() {
    let ids = ["0", "00", "a", "0a", "00a", "fffffff", "1", "10", "abc123"];
    let metrics: Vec<u32> = ids
        .iter()
        .map(|id| route_metric(id).expect("valid id"))
        .collect();
    for (i, m) in metrics.iter().enumerate() {
        assert_ne!(*m, 0, "{}", ids[i]);
        assert!(*m <= i32::MAX as u32, "{}", ids[i]);
        for (j, n) in metrics.iter().enumerate().skip(i + 1) {
            assert_ne!(m, n, "{} vs {}", ids[i], ids[j]);
        }
    }
    assert!(route_metric("xyz").is_err());
}

#[test]
fn next_free_address_skips_the_gateway_used_addresses_and_the_broadcast_address() {
    let net = |s: &str| s.parse::<Ipv4Net>().expect("cidr");
    let a = |s: &str| s.parse::<Ipv4Addr>().expect("addr");
    let cases: [(&str, Vec<&str>, Option<&str>); 5] = [
        ("10.0.0.0/24", vec![], Some("10.0.0.2")),
        (
            "10.0.0.0/24",
            vec!["10.0.0.2", "10.0.0.4"],
            Some("10.0.0.3"),
        ),
        ("10.0.0.0/30", vec![], Some("10.0.0.2")),
        ("10.0.0.0/30", vec!["10.0.0.2"], None),
        (
            "10.0.0.0/29",
            vec!["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"],
            Some("10.0.0.6"),
        ),
    ];
    for (cidr, used, want) in cases {
        let got = next_free_address(net(cidr), used.iter().map(|u| a(u)));
        assert_eq!(got, want.map(a), "{cidr} {used:?}");
    }
}

#[test]
fn derived_interface_names_fit_ifnamsiz_for_the_longest_id_and_a_slash_16() {
    let cidr: Ipv4Net = "10.250.0.0/16".parse().expect("cidr");
    assert_eq!(host_count(cidr), 65534);
    assert!(check_ifname(&veth_name("fffffff", host_count(cidr))).is_ok());
    assert!(check_ifname(&bridge_name("fffffff")).is_ok());
    assert!(check_ifname("tkfffffffv1234567").is_err());
}

#[test]
fn cluster_id_for_a_data_dir_is_six_hex_digits_and_stable() {
    let a = cluster_id_for(Path::new("/nonexistent/tinykube/a"));
    let b = cluster_id_for(Path::new("/nonexistent/tinykube/b"));
    assert_eq!(a.len(), 6);
    assert!(validate_cluster_id(&a).is_ok());
    assert_eq!(a, cluster_id_for(Path::new("/nonexistent/tinykube/a")));
    assert_ne!(a, b);
}

#[test]
fn iproute2_messages_for_missing_objects_count_as_already_gone() {
    let cases = [
        ("Cannot find device \"tkabcv2\"", true),
        (
            "Cannot remove namespace file \"/run/netns/x\": No such file or directory",
            true,
        ),
        ("RTNETLINK answers: No such process", true),
        ("RTNETLINK answers: File exists", false),
        ("RTNETLINK answers: Operation not permitted", false),
    ];
    for (stderr, gone) in cases {
        assert_eq!(already_gone(stderr), gone, "{stderr}");
    }
}

#[test]
fn the_state_file_round_trips_and_is_replaced_without_leaving_a_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub").join("network.json");
    assert_eq!(State::load(&path).expect("load"), None);
    let state = State {
        cluster_id: "abc".into(),
        bridge: Some("tkabc".into()),
        routes: vec![RouteRecord {
            dst: "10.244.0.0/16".into(),
            metric: 7,
        }],
        nodes: vec![NodeRecord {
            name: "n1".into(),
            netns: "tk-abc-n1".into(),
            veth: "tkabcv2".into(),
            address: Ipv4Addr::new(10, 250, 0, 2),
        }],
    };
    state.save(&path).expect("save");
    state.save(&path).expect("save again");
    assert_eq!(State::load(&path).expect("load"), Some(state));
    let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("network.json")]);

    std::fs::write(&path, b"{not json").expect("write");
    assert!(matches!(State::load(&path), Err(Error::StateParse { .. })));
}

// ---- privileged tests: these create real namespaces, links and routes ----

/// One test's private id, node /24 and "pod" /24; removes anything left with that id when
/// dropped, so a panicking test does not leak into the host.
struct TestEnv {
    id: String,
    node_cidr: Ipv4Net,
    pod_cidr: Ipv4Net,
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// `slot` (0..8) keeps concurrently running tests of this process on distinct /24s.
    fn new(name: &str, slot: u32) -> Option<Self> {
        // /proc/self is owned by the effective uid; avoids needing nix's "user" feature.
        let uid =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("proc"));
        if uid != 0 {
            eprintln!("skipping {name}: needs root");
            return None;
        }
        let pid = std::process::id();
        // Skip /24s some other cluster on this machine (a dev cluster, say) already routes;
        // stepping by 8 keeps this process's concurrent tests on distinct ones.
        let routes = std::process::Command::new("ip").args(["-4", "route", "show", "table", "all"]).output().expect("ip route");
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        let used = |third: u32| routes.contains(&format!("10.250.{third}.")) || routes.contains(&format!("10.251.{third}."));
        let base = (pid % 32) * 8 + slot;
        let third = (0..32).map(|k| (base + k * 8) % 256).find(|t| !used(*t)).unwrap_or(base % 256);
        Some(TestEnv {
            id: cluster_id_for(Path::new(&format!("{name}-{pid}"))),
            node_cidr: Ipv4Net::new(Ipv4Addr::new(10, 250, third as u8, 0), 24).expect("cidr"),
            pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, 251, third as u8, 0), 24).expect("cidr"),
            dir: tempfile::tempdir().expect("tempdir"),
        })
    }

    fn config(&self) -> NetConfig {
        NetConfig {
            cluster_id: self.id.clone(),
            node_cidr: self.node_cidr,
            blackhole: vec![self.pod_cidr, self.node_cidr],
            state_file: self.dir.path().join("network.json"),
        }
    }

    fn metric(&self) -> u32 {
        route_metric(&self.id).expect("metric")
    }

    /// Everything in the host that carries this test's id.
    fn leftovers(&self) -> Vec<String> {
        let bridge = bridge_name(&self.id);
        let metric = format!("metric {} ", self.metric());
        let mut found = Vec::new();
        let netns = ip(&["netns", "list"]).expect("ip netns list");
        found.extend(
            netns
                .lines()
                .filter(|l| l.starts_with(&format!("tk-{}-", self.id)))
                .map(str::to_owned),
        );
        let links = ip(&["-o", "link", "show"]).expect("ip link");
        found.extend(
            links
                .lines()
                .filter(|l| l.contains(&bridge))
                .map(str::to_owned),
        );
        let routes = ip(&["route", "show", "table", "main"]).expect("ip route");
        found.extend(
            routes
                .lines()
                .filter(|l| format!("{l} ").contains(&metric) || l.contains(&bridge))
                .map(str::to_owned),
        );
        found
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let prefix = format!("tk-{}-", self.id);
        for l in ip(&["netns", "list"]).unwrap_or_default().lines() {
            if let Some(ns) = l
                .split_whitespace()
                .next()
                .filter(|n| n.starts_with(&prefix))
            {
                let _ = ip(&["netns", "del", ns]);
            }
        }
        let bridge = bridge_name(&self.id);
        for l in ip(&["-o", "link", "show"]).unwrap_or_default().lines() {
            let name = l.split(':').nth(1).unwrap_or("").trim();
            let name = name.split('@').next().unwrap_or("");
            if name.starts_with(&bridge) {
                let _ = ip(&["link", "del", "dev", name]);
            }
        }
        let metric = self.metric().to_string();
        for dst in [self.pod_cidr, self.node_cidr] {
            let _ = ip(&[
                "route",
                "del",
                "blackhole",
                &dst.to_string(),
                "metric",
                &metric,
            ]);
        }
    }
}

/// Runs `f` on a thread that has joined the namespace; sockets made there stay in it.
fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = File::open(path).expect("open netns");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// Connects from namespace `from` to `listener`, and checks a byte makes it across.
fn assert_connects(from: &Path, listener: &TcpListener) {
    let to = listener.local_addr().expect("local_addr");
    let mut client = in_netns(from, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connecting to {to}: {e}"))
    });
    client.write_all(b"k").expect("write");
    let (mut server, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 1];
    server.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"k");
}

#[test]
fn two_nodes_reach_each_other_and_the_gateway_over_the_bridge() {
    let Some(env) = TestEnv::new("two_nodes", 0) else {
        return;
    };
    let mut net = ClusterNetwork::create(env.config()).expect("create");
    let gw = env.node_cidr.network().octets();
    assert_eq!(net.gateway(), Ipv4Addr::new(gw[0], gw[1], gw[2], 1));
    let a = net.add_node("node-a").expect("add a");
    let b = net.add_node("node-b").expect("add b");
    assert_eq!(a.address, Ipv4Addr::new(gw[0], gw[1], gw[2], 2));
    assert_eq!(b.address, Ipv4Addr::new(gw[0], gw[1], gw[2], 3));
    assert_eq!(a.netns, format!("tk-{}-node-a", env.id));
    assert!(a.netns_path.exists());
    assert_eq!(net.node("node-b"), Some(b.clone()));
    assert!(matches!(net.add_node("node-a"), Err(Error::NodeExists(_))));

    let in_b = in_netns(&b.netns_path, || {
        TcpListener::bind(SocketAddr::from((b.address, 0))).expect("bind in b")
    });
    assert_connects(&a.netns_path, &in_b);
    let on_gateway = TcpListener::bind(SocketAddr::from((net.gateway(), 0))).expect("bind gw");
    assert_connects(&a.netns_path, &on_gateway);
    assert_connects(&b.netns_path, &on_gateway);

    let mut cmd = Command::new("ip");
    cmd.args(["-o", "-4", "addr", "show", "dev", "eth0"]);
    run_in_netns(&mut cmd, &a.netns_path).expect("run_in_netns");
    let out = cmd.output().expect("ip in netns");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains(&format!("{}/24", a.address)), "{out}");

    let routes = ip(&["route", "show", "table", "main"]).expect("routes");
    let m = env.metric();
    for dst in [env.pod_cidr, env.node_cidr] {
        let want = format!("blackhole {dst} metric {m}");
        assert!(
            routes.lines().any(|l| l.trim() == want),
            "{want} missing in\n{routes}"
        );
    }
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with(&format!("{} dev {}", env.node_cidr, net.bridge()))),
        "{routes}"
    );
    // The connected route beats this cluster's own blackhole for the node range.
    let get = ip(&["route", "get", &b.address.to_string()]).expect("route get");
    assert!(get.contains(&format!("dev {}", net.bridge())), "{get}");

    net.teardown().expect("teardown");
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert!(!env.config().state_file.exists());
}

#[test]
fn a_state_file_left_by_a_crashed_run_is_cleaned_by_the_next_create() {
    let Some(env) = TestEnv::new("crashed_run", 1) else {
        return;
    };
    let mut crashed = ClusterNetwork::create(env.config()).expect("create");
    let node = crashed.add_node("n1").expect("add");
    std::mem::forget(crashed);
    assert!(node.netns_path.exists());
    assert!(env.config().state_file.exists());

    let net = ClusterNetwork::create(env.config()).expect("create after crash");
    assert!(!node.netns_path.exists());
    let links = ip(&["-o", "link", "show"]).expect("links");
    assert!(!links.contains(&veth_name(&env.id, 2)), "{links}");
    net.teardown().expect("teardown");
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn two_clusters_blackholing_the_same_range_each_remove_only_their_own() {
    let (Some(one), Some(two)) = (
        TestEnv::new("shared_range_1", 2),
        TestEnv::new("shared_range_2", 3),
    ) else {
        return;
    };
    let mut cfg_two = two.config();
    cfg_two.blackhole = vec![one.pod_cidr];
    let net_one = ClusterNetwork::create(one.config()).expect("create one");
    let net_two = ClusterNetwork::create(cfg_two).expect("create two");
    let shared = |m: u32| format!("blackhole {} metric {m}", one.pod_cidr);
    let routes = ip(&["route", "show", "table", "main"]).expect("routes");
    assert!(
        routes.lines().any(|l| l.trim() == shared(one.metric())),
        "{routes}"
    );
    assert!(
        routes.lines().any(|l| l.trim() == shared(two.metric())),
        "{routes}"
    );

    net_one.teardown().expect("teardown one");
    let routes = ip(&["route", "show", "table", "main"]).expect("routes");
    assert!(
        !routes.lines().any(|l| l.trim() == shared(one.metric())),
        "{routes}"
    );
    assert!(
        routes.lines().any(|l| l.trim() == shared(two.metric())),
        "{routes}"
    );
    drop(net_two);
    assert_eq!(one.leftovers(), Vec::<String>::new());
    assert_eq!(two.leftovers(), Vec::<String>::new());
}

#[test]
fn a_failed_add_node_removes_the_namespace_it_created_and_keeps_foreign_links() {
    let Some(env) = TestEnv::new("failed_add", 4) else {
        return;
    };
    let mut net = ClusterNetwork::create(env.config()).expect("create");
    // Occupy the veth name the first node would get.
    let squatter = veth_name(&env.id, 2);
    ip(&["link", "add", "name", &squatter, "type", "bridge"]).expect("squatter");
    let err = net.add_node("n1").expect_err("veth name is taken");
    assert!(matches!(err, Error::Ip { .. }), "{err}");
    assert!(
        !Path::new(NETNS_DIR)
            .join(format!("tk-{}-n1", env.id))
            .exists()
    );
    assert_eq!(net.node("n1"), None);
    assert!(
        ip(&["link", "show", "dev", &squatter]).is_ok(),
        "foreign link was deleted"
    );
    let state = State::load(&env.config().state_file)
        .expect("load")
        .expect("state");
    assert!(state.nodes.is_empty(), "{state:?}");

    ip(&["link", "del", "dev", &squatter]).expect("del squatter");
    net.add_node("n1").expect("add after the name is free");
    net.teardown().expect("teardown");
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn remove_node_deletes_its_namespace_and_veth_and_frees_its_address() {
    let Some(env) = TestEnv::new("remove_node", 5) else {
        return;
    };
    let mut net = ClusterNetwork::create(env.config()).expect("create");
    let a = net.add_node("a").expect("add a");
    net.add_node("b").expect("add b");
    net.remove_node("a").expect("remove a");
    assert!(!a.netns_path.exists());
    assert!(ip(&["link", "show", "dev", &veth_name(&env.id, 2)]).is_err());
    assert!(matches!(net.remove_node("a"), Err(Error::NodeNotFound(_))));
    let c = net.add_node("c").expect("add c");
    assert_eq!(c.address, a.address);
    drop(net);
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn create_refuses_a_node_cidr_already_in_use_and_leaves_nothing_behind() {
    let (Some(first), Some(second)) = (
        TestEnv::new("cidr_in_use_1", 6),
        TestEnv::new("cidr_in_use_2", 6),
    ) else {
        return;
    };
    let net = ClusterNetwork::create(first.config()).expect("create first");
    let err = ClusterNetwork::create(second.config()).expect_err("cidr is taken");
    assert!(matches!(err, Error::CidrInUse { .. }), "{err}");
    assert_eq!(second.leftovers(), Vec::<String>::new());
    assert!(!second.config().state_file.exists());
    drop(net);
    assert_eq!(first.leftovers(), Vec::<String>::new());
}

#[test]
fn dropping_the_network_tears_everything_down() {
    let Some(env) = TestEnv::new("drop", 7) else {
        return;
    };
    let mut net = ClusterNetwork::create(env.config()).expect("create");
    let node = net.add_node("n1").expect("add");
    // A live process pins the namespace; teardown must still remove the veth and the name.
    let mut cmd = Command::new("sleep");
    cmd.arg("5");
    run_in_netns(&mut cmd, &node.netns_path).expect("run_in_netns");
    let mut agent = cmd.spawn().expect("spawn sleep");
    assert!(!env.leftovers().is_empty());
    drop(net);
    let left = env.leftovers();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(left, Vec::<String>::new());
}

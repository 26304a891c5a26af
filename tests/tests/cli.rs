//! Bad command lines get one clear line and a non-zero exit, never a panic or a hang.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::bin;

fn run(name: &str, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(bin(name)).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{name} {args:?} hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{name} {args:?} panicked: {err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn control_plane_refuses_bad_flags_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let common = ["serve", "--data-dir", d, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"];
    let cases: &[(&[&str], &str)] = &[
        (&["--service-cidr", "bogus"], "--service-cidr"),
        (&["--cluster-cidr", "10.0.0.0/99"], "--cluster-cidr"),
        (&["--node-port-range", "500-100"], "--node-port-range"),
        (&["--store", "mongodb://x"], "unsupported store URL"),
        // TEST-NET-3: an address no interface here has, so cluster DNS cannot bind it.
        (&["--dns-listen", "203.0.113.9:53"], "binding cluster DNS on udp 203.0.113.9:53"),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = common.iter().chain(extra.iter()).copied().collect();
        let (code, err) = run("control-plane", &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let line = err.lines().last().unwrap_or_default();
        assert!(line.starts_with("control-plane: ") && line.contains(want), "{args:?}: {err}");
    }
    let (code, err) = run("control-plane", &["serve", "--dns-listen", "bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value 'bogus' for '--dns-listen"), "{err}");
    let (code, err) = run("control-plane", &["up", "--nodes", "many"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value 'many'"), "{err}");
    let (code, _) = run("control-plane", &["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn a_data_dir_in_use_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut first = Command::new(bin("control-plane"))
        .args(["serve", "--data-dir", d, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, err) = run("control-plane", &["serve", "--data-dir", d, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another control plane"), "{err}");
}

#[test]
fn node_agent_refuses_bad_flags_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let base = ["--server", "https://127.0.0.1:1", "--data-dir", d];
    let cases: &[(&[&str], &str)] = &[
        (&["--node-ip", "not-an-ip", "--ca-file", "/nonexistent", "--token-file", "/nonexistent"], "is not an IP address"),
        (&["--node-ip", "127.0.0.1", "--ca-file", "/nonexistent/ca.crt", "--token-file", "/nonexistent"], "/nonexistent/ca.crt"),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let (code, err) = run("node-agent", &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.lines().last().unwrap_or_default().starts_with("node-agent: ") && err.contains(want), "{args:?}: {err}");
    }
    let (code, err) = run("node-agent", &["--node-ip", "127.0.0.1"]);
    assert_eq!(code, 2, "{err}");
    // Flag values clap checks: its error names the flag and the range on its first line.
    for bad in ["--warm-sandboxes=65", "--warm-sandboxes=-1", "--warm-sandboxes=four"] {
        let args: Vec<&str> = base.iter().copied().chain(["--node-ip", "127.0.0.1", "--ca-file", "/x", "--token-file", "/x", bad]).collect();
        let (code, err) = run("node-agent", &args);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.lines().next().unwrap_or_default().contains("--warm-sandboxes"), "{bad}: {err}");
    }
}

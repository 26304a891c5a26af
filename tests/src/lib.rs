//! Harness for end-to-end tests: starts the real `control-plane up` (with real node agents in
//! their own network namespaces) in a temp dir, and drives it with real kubectl and kube-rs.
//! Everything a test starts is stopped by `Drop`, also when the test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where cargo put the workspace's binaries: next to the running executable when they are there
/// (so a release benchmark runs release binaries), else in the debug profile.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(me) = std::env::current_exe() {
        for dir in me.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug").join(name)
}

/// kubectl binaries to test with: the oldest and newest this machine has, else plain `kubectl`.
pub fn kubectls() -> Vec<PathBuf> {
    let dir = Path::new("/usr/lib/google-cloud-sdk/bin");
    let versions: Vec<PathBuf> = ["kubectl.1.27", "kubectl.1.33"].iter().map(|v| dir.join(v)).filter(|p| p.exists()).collect();
    if versions.is_empty() { vec![PathBuf::from("kubectl")] } else { versions }
}

pub fn newest_kubectl() -> PathBuf {
    kubectls().pop().unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// A dev cluster started with `control-plane up`.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Cluster {
    /// Starts `control-plane up --nodes N` and waits until it reports the cluster ready.
    pub fn up(nodes: u32) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("tk-e2e-").tempdir()?;
        let mut c = Cluster { dir, child: None, output: Default::default() };
        c.start(nodes)?;
        Ok(c)
    }

    /// (Re)starts `up` on this cluster's data dir.
    pub fn start(&mut self, nodes: u32) -> Result<()> {
        let mut child = Command::new(bin("control-plane"))
            .args(["up", "--nodes", &nodes.to_string(), "--port", "0", "--data-dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting control-plane up (did `cargo build --workspace` run?)")?;
        let (tx, rx) = mpsc::channel();
        for stream in [child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)].into_iter().flatten() {
            let tx = tx.clone();
            let out = self.output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    out.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("[up] cluster ready") => return Ok(()),
                Ok(line) if line.contains("[up] warning") => bail!("cluster did not become ready: {line}\n{}", self.log()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("control-plane up exited:\n{}", self.log()),
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!("control-plane up exited with {status}:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!("cluster not ready after 60s:\n{}", self.log());
            }
        }
    }

    pub fn log(&self) -> String {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Stops `up` with SIGTERM (as Ctrl-C would) and waits for it to clean up.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("control-plane up exited with {status}:\n{}", self.log());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("control-plane up did not stop within 30s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs kubectl (the given binary) against this cluster.
    pub fn kubectl_with(&self, kubectl: &Path, args: &[&str]) -> Output {
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_with(&newest_kubectl(), args);
        assert!(out.status.success(), "kubectl {args:?} failed: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with a manifest on stdin (`-f -`).
    pub fn kubectl_stdin(&self, kubectl: &Path, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write manifest");
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Kills a node's agent with SIGKILL, as a crash would (its pods keep running).
    pub fn kill_agent(&self, node: &str) {
        let pid_file = self.dir.path().join(format!("nodes/{node}.pid"));
        let pid: i32 = std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("a pid");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }

    /// Starts a node's agent again from `DIR/nodes/NODE.args`, in the node's network namespace
    /// only (`ip netns exec` would also remount /sys and hide the cgroups). Stopped on drop.
    pub fn restart_agent(&self, node: &str) -> AgentProcess {
        let args: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join(format!("nodes/{node}.args"))).expect("args file")).expect("json");
        let argv: Vec<String> = args["argv"].as_array().expect("argv").iter().filter_map(|a| a.as_str().map(String::from)).collect();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", args["netns"].as_str().unwrap_or_default()))
            .arg("--")
            .args(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nsenter runs");
        AgentProcess(child)
    }

    pub async fn client(&self) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(cfg)?)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("cluster cleanup: {e:#}");
        }
    }
}

/// A node agent a test started; killed on drop.
pub struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

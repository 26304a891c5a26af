//! Pods as real containers, through real kubectl against `control-plane up`.

use std::path::PathBuf;
use std::time::Duration;

use e2e::{Cluster, eventually, newest_kubectl, stderr, stdout};

const WAIT: Duration = Duration::from_secs(60);

fn jsonpath(c: &Cluster, pod: &str, path: &str) -> String {
    c.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={path}")])
}

fn wait_running(c: &Cluster, pod: &str) {
    eventually(WAIT, &format!("pod {pod} Running"), || (jsonpath(c, pod, "{.status.phase}") == "Running").then_some(()));
}

fn apply(c: &Cluster, manifest: &str) {
    let out = c.kubectl_stdin(&newest_kubectl(), &["apply", "-f", "-"], manifest);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_pod_runs_with_its_env_in_its_own_namespaces_and_logs_and_exec_work() {
    let c = Cluster::up(1).unwrap();
    apply(&c, r#"
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: demo/busybox
    command: ["sh", "-c", "echo GREETING=$GREETING; env; echo ready; sleep 3600"]
    env:
    - {name: GREETING, value: "hi from $(WHO)"}
    - {name: WHO, value: nobody}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: API, value: "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}
"#);
    wait_running(&c, "hello");
    let pod_ip = jsonpath(&c, "hello", "{.status.podIP}");
    assert!(pod_ip.starts_with("10.244."), "a pod address from the node's range");
    let logs = eventually(WAIT, "logs", || {
        let l = c.kubectl(&["logs", "hello"]);
        l.contains("ready").then_some(l)
    });
    assert!(logs.contains("GREETING=hi from $(WHO)"), "{logs}");
    // What the kubelet and the container runtime add: the hostname, the downward API, and the
    // Service variables in-cluster clients find the API server by.
    let api_ip = c.kubectl(&["get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]);
    for want in [
        "HOSTNAME=hello".to_string(),
        format!("POD_IP={pod_ip}"),
        "NODE=node-1".to_string(),
        format!("KUBERNETES_SERVICE_HOST={api_ip}"),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
        format!("KUBERNETES_PORT_443_TCP=tcp://{api_ip}:443"),
        format!("API=https://{api_ip}:443"),
    ] {
        assert!(logs.lines().any(|l| l == want), "{want} in {logs}");
    }
    assert!(c.kubectl(&["logs", "hello", "--timestamps", "--tail=1"]).starts_with("20"));

    let ps = c.kubectl(&["exec", "hello", "--", "ps"]);
    let pids: Vec<&str> = ps.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(pids.first(), Some(&"1"), "PID 1 is the container's own process: {ps}");
    assert!(ps.lines().count() <= 4, "only the container's processes are visible: {ps}");
    let root = c.kubectl(&["exec", "hello", "--", "ls", "/"]);
    assert!(root.contains("bin") && !root.contains("work") && !root.contains("home"), "its own root: {root}");
    assert_eq!(c.kubectl(&["exec", "hello", "--", "hostname"]).trim(), "hello");
    let failing = c.kubectl_with(&newest_kubectl(), &["exec", "hello", "--", "sh", "-c", "exit 7"]);
    assert_eq!(failing.status.code(), Some(7));
}

#[test]
fn a_crashing_container_is_restarted_with_a_growing_restart_count_and_its_exit_code_kept() {
    let c = Cluster::up(1).unwrap();
    apply(&c, r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: demo/busybox
    command: ["sh", "-c", "echo attempt; exit 3"]
"#);
    eventually(WAIT, "two restarts", || (jsonpath(&c, "crasher", "{.status.containerStatuses[0].restartCount}").parse::<u32>().unwrap_or(0) >= 2).then_some(()));
    assert_eq!(jsonpath(&c, "crasher", "{.status.containerStatuses[0].lastState.terminated.exitCode}"), "3");
    assert_eq!(jsonpath(&c, "crasher", "{.status.containerStatuses[0].lastState.terminated.reason}"), "Error");
    eventually(WAIT, "CrashLoopBackOff shown", || c.kubectl(&["get", "pod", "crasher"]).contains("CrashLoopBackOff").then_some(()));
    assert!(c.kubectl(&["logs", "crasher", "--previous"]).contains("attempt"));
}

#[test]
fn a_pod_over_its_memory_limit_is_oom_killed() {
    let c = Cluster::up(1).unwrap();
    apply(&c, r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: demo/busybox
    command: ["sh", "-c", "tail /dev/zero"]
    resources: {limits: {memory: 20Mi}}
"#);
    eventually(WAIT, "OOMKilled", || (jsonpath(&c, "hog", "{.status.containerStatuses[0].state.terminated.reason}") == "OOMKilled").then_some(()));
    assert_eq!(jsonpath(&c, "hog", "{.status.containerStatuses[0].state.terminated.exitCode}"), "137");
    assert_eq!(jsonpath(&c, "hog", "{.status.phase}"), "Failed");
}

#[test]
fn two_containers_share_an_empty_dir() {
    let c = Cluster::up(1).unwrap();
    apply(&c, r#"
apiVersion: v1
kind: Pod
metadata: {name: share}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: writer
    image: demo/busybox
    command: ["sh", "-c", "echo from-writer > /data/msg; sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /data}]
  - name: reader
    image: demo/busybox
    command: ["sh", "-c", "while ! cat /shared/msg; do sleep 0.2; done; sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /shared}]
"#);
    eventually(WAIT, "reader sees the writer's file", || {
        stdout(&c.kubectl_with(&newest_kubectl(), &["logs", "share", "-c", "reader"])).contains("from-writer").then_some(())
    });
}

#[test]
fn a_missing_image_reports_err_image_pull_then_image_pull_back_off() {
    let c = Cluster::up(1).unwrap();
    apply(&c, r#"
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers:
  - name: c
    image: 127.0.0.1:1/nothing/here:v1
"#);
    eventually(WAIT, "ErrImagePull", || (jsonpath(&c, "noimage", "{.status.containerStatuses[0].state.waiting.reason}") == "ErrImagePull").then_some(()));
    eventually(WAIT, "ImagePullBackOff", || (jsonpath(&c, "noimage", "{.status.containerStatuses[0].state.waiting.reason}") == "ImagePullBackOff").then_some(()));
    assert!(!jsonpath(&c, "noimage", "{.status.containerStatuses[0].state.waiting.message}").is_empty());
    apply(&c, "apiVersion: v1\nkind: Pod\nmetadata: {name: badname}\nspec:\n  containers: [{name: c, image: \"UPPER/Case:x\"}]\n");
    eventually(WAIT, "InvalidImageName", || (jsonpath(&c, "badname", "{.status.containerStatuses[0].state.waiting.reason}") == "InvalidImageName").then_some(()));
    apply(&c, "apiVersion: v1\nkind: Pod\nmetadata: {name: nocmd}\nspec:\n  containers: [{name: c, image: demo/busybox, command: [/no/such/binary]}]\n");
    eventually(WAIT, "RunContainerError", || (jsonpath(&c, "nocmd", "{.status.containerStatuses[0].state.waiting.reason}") == "RunContainerError").then_some(()));
    apply(&c, "apiVersion: v1\nkind: Pod\nmetadata: {name: nosecret}\nspec:\n  containers: [{name: c, image: demo/busybox, env: [{name: PW, valueFrom: {secretKeyRef: {name: db, key: pw}}}]}]\n");
    eventually(WAIT, "CreateContainerConfigError", || (jsonpath(&c, "nosecret", "{.status.containerStatuses[0].state.waiting.reason}") == "CreateContainerConfigError").then_some(()));
    assert!(jsonpath(&c, "nosecret", "{.status.containerStatuses[0].state.waiting.message}").contains("PW"), "the message names the variable");
}

#[test]
fn deleting_with_a_short_grace_period_is_quick_and_leaves_no_process() {
    let c = Cluster::up(1).unwrap();
    let marker = format!("marker{}", std::process::id());
    apply(&c, &format!(r#"
apiVersion: v1
kind: Pod
metadata: {{name: doomed}}
spec:
  containers:
  - name: c
    image: demo/busybox
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done # {marker}"]
"#));
    wait_running(&c, "doomed");
    let start = std::time::Instant::now();
    let out = c.kubectl_with(&newest_kubectl(), &["delete", "pod", "doomed", "--grace-period=1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(15), "deletion took {:?}", start.elapsed());
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!stdout(&ps).contains(&marker), "a process of the deleted pod survived");
}

#[test]
fn killing_the_agent_with_kill_9_leaves_its_pods_running_and_a_new_agent_adopts_them() {
    let c = Cluster::up(1).unwrap();
    apply(&c, "apiVersion: v1\nkind: Pod\nmetadata: {name: survivor}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: demo/busybox, command: [sleep, \"3600\"]}]\n");
    wait_running(&c, "survivor");
    let id = jsonpath(&c, "survivor", "{.status.containerStatuses[0].containerID}");
    c.kill_agent("node-1");
    std::thread::sleep(Duration::from_millis(500));
    let _agent = c.restart_agent("node-1");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(jsonpath(&c, "survivor", "{.status.phase}"), "Running");
    assert_eq!(jsonpath(&c, "survivor", "{.status.containerStatuses[0].containerID}"), id, "the same container, adopted");
    assert_eq!(jsonpath(&c, "survivor", "{.status.containerStatuses[0].restartCount}"), "0");
    assert!(c.kubectl(&["exec", "survivor", "--", "echo", "alive"]).contains("alive"));
}

#[test]
fn stopping_one_cluster_leaves_the_pods_of_another_clusters_same_named_node_running() {
    // Both clusters have a node-1; each agent's cgroups are its own.
    let keep = Cluster::up(1).unwrap();
    apply(&keep, "apiVersion: v1\nkind: Pod\nmetadata: {name: bystander}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: demo/busybox, command: [sleep, \"3600\"]}]\n");
    wait_running(&keep, "bystander");
    let id = jsonpath(&keep, "bystander", "{.status.containerStatuses[0].containerID}");
    {
        let other = Cluster::up(1).unwrap();
        apply(&other, "apiVersion: v1\nkind: Pod\nmetadata: {name: neighbour}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: demo/busybox, command: [sleep, \"3600\"]}]\n");
        wait_running(&other, "neighbour");
    } // `other` stops here and removes its node's pods.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(jsonpath(&keep, "bystander", "{.status.phase}"), "Running");
    assert_eq!(jsonpath(&keep, "bystander", "{.status.containerStatuses[0].containerID}"), id, "the same container, never restarted");
    assert!(keep.kubectl(&["exec", "bystander", "--", "echo", "alive"]).contains("alive"));
}

#[test]
fn creating_and_deleting_many_pods_leaves_nothing_behind_on_the_node() {
    let c = Cluster::up(1).unwrap();
    let node_dir = c.dir.path().join("nodes/node-1");
    let marker = format!("churn{}", std::process::id());
    for i in 0..12 {
        apply(&c, &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: churn-{i}, labels: {{churn: \"yes\"}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes: [{{name: v, emptyDir: {{}}}}]\n  containers: [{{name: c, image: demo/busybox, command: [sh, -c, \"sleep 3600; : {marker}\"], volumeMounts: [{{name: v, mountPath: /v}}]}}]\n"
        ));
    }
    eventually(WAIT, "12 running pods", || {
        (c.kubectl(&["get", "pods", "-l", "churn=yes", "--field-selector=status.phase=Running", "-o", "name"]).lines().count() == 12).then_some(())
    });
    let uids: Vec<String> = c.kubectl(&["get", "pods", "-l", "churn=yes", "-o", "jsonpath={.items[*].metadata.uid}"]).split_whitespace().map(String::from).collect();
    assert_eq!(uids.len(), 12);
    c.kubectl(&["delete", "pods", "-l", "churn=yes", "--grace-period=1"]);
    eventually(WAIT, "pods gone from the API", || c.kubectl(&["get", "pods", "-o", "name"]).trim().is_empty().then_some(()));
    // What remains is the agent's full pool of warm sandboxes (its default 4): their three
    // namespace mounts each, an address claim each (held by warm-ID) and a veth each.
    // The agent's state is on the tmpfs it mounts at run/ (specs, sandboxes, claims), logs,
    // volumes and writable layers under pods/.
    let node = node_dir.to_string_lossy().into_owned();
    let run_dir = node_dir.join("run");
    let run = run_dir.to_string_lossy().into_owned();
    let warm_dir = run_dir.join("warm").to_string_lossy().into_owned();
    let warm = eventually(WAIT, "nothing left on the node but the warm sandboxes", || {
        let count = |d: PathBuf| std::fs::read_dir(d).map(|d| d.count()).unwrap_or(0);
        let pod_dirs = count(node_dir.join("pods")) + count(run_dir.join("pods"));
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let is_state_tmpfs = |l: &&str| l.split(' ').nth(4) == Some(run.as_str());
        let mounts = mountinfo.lines().filter(|l| l.contains(&node) && !l.contains(&warm_dir) && !is_state_tmpfs(l)).count();
        let warm_mounts = mountinfo.lines().filter(|l| l.contains(&warm_dir)).count();
        let warm = count(run_dir.join("warm"));
        // Address claims are files named by the address they claim, holding the claimant.
        let claimants: Vec<String> = std::fs::read_dir(run_dir.join("ipam"))
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().parse::<std::net::Ipv4Addr>().is_ok()).map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect())
            .unwrap_or_default();
        let claims = claimants.iter().filter(|c| !c.starts_with("warm-")).count();
        // Pod groups are named after the pod's uid, under a group per agent (v1 memory or v2).
        let cgroups = ["/sys/fs/cgroup/memory/tinykube", "/sys/fs/cgroup/tinykube"]
            .iter()
            .flat_map(|root| std::fs::read_dir(root).into_iter().flatten().flatten())
            .filter(|node| uids.iter().any(|uid| node.path().join(format!("pod{uid}")).exists()))
            .count();
        let pool_full = warm == 4 && warm_mounts == 3 * warm && claimants.len() - claims == warm;
        (pod_dirs == 0 && mounts == 0 && claims == 0 && cgroups == 0 && pool_full).then_some(warm)
    });
    // Host-side veths live in the node's network namespace: only the bridge, eth0 and the warm
    // sandboxes' remain there.
    let args: serde_json::Value = serde_json::from_slice(&std::fs::read(c.dir.path().join("nodes/node-1.args")).unwrap()).unwrap();
    let links = std::process::Command::new("ip").args(["-n", args["netns"].as_str().unwrap(), "-o", "link"]).output().unwrap();
    let veths = stdout(&links).lines().filter(|l| l.contains(": tk") && !l.contains("tkbr0") && !l.contains(": tkwarm")).count();
    assert_eq!(veths, 0, "{}", stdout(&links));
    let warm_veths = stdout(&links).lines().filter(|l| l.contains(": tkwarm")).count();
    assert_eq!(warm_veths, warm, "one veth per warm sandbox: {}", stdout(&links));
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!stdout(&ps).contains(&marker), "a pod process survived");
}

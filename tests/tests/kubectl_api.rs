//! The API through real kubectl (oldest and newest versions on the machine) against `control-plane up`.

use std::time::Duration;

use e2e::{Cluster, eventually, kubectls, newest_kubectl, stderr, stdout};

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");

#[test]
fn apply_get_scale_set_image_and_delete_work_like_kubernetes() {
    let c = Cluster::up(1).unwrap();
    let out = c.kubectl(&["apply", "-f", MANIFESTS]);
    assert!(out.contains("deployment.apps/web created") && out.contains("service/web created"), "{out}");
    let again = c.kubectl(&["apply", "-f", MANIFESTS]);
    assert!(again.contains("deployment.apps/web unchanged") && again.contains("service/web unchanged"), "{again}");

    let table = c.kubectl(&["get", "deployments"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let svc = c.kubectl(&["get", "svc", "web"]);
    assert!(svc.lines().next().unwrap().split_whitespace().eq(["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]));
    assert!(svc.contains("80:30080/TCP"), "{svc}");

    let yaml = c.kubectl(&["get", "deployment", "web", "-o", "yaml"]);
    for field in ["uid:", "resourceVersion:", "creationTimestamp:", "generation: 1", "progressDeadlineSeconds: 600", "revisionHistoryLimit: 10"] {
        assert!(yaml.contains(field), "missing {field} in\n{yaml}");
    }

    assert!(c.kubectl(&["scale", "deployment/web", "--replicas=10"]).contains("scaled"));
    assert_eq!(c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "10");
    assert!(c.kubectl(&["set", "image", "deployment/web", "web=demo/web:v2"]).contains("image updated"));
    let image = c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation} {.spec.template.spec.containers[0].readinessProbe.httpGet.path}"]);
    assert_eq!(image, "demo/web:v2 3 /", "set image keeps the rest of the container");

    assert!(c.kubectl(&["get", "deploy", "-l", "app=web", "-o", "name"]).contains("deployment.apps/web"));
    assert!(c.kubectl(&["get", "deploy", "-l", "app=nope", "-o", "name"]).trim().is_empty());
    assert!(c.kubectl(&["get", "deploy", "-l", "app in (web,db)", "-o", "name"]).contains("web"));

    c.kubectl(&["delete", "deployment", "web"]);
    let gone = c.kubectl_with(&newest_kubectl(), &["get", "deployment", "web"]);
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("NotFound") && stderr(&gone).contains("\"web\" not found"), "{}", stderr(&gone));
}

#[test]
fn get_watch_sees_modifications() {
    let c = Cluster::up(1).unwrap();
    c.kubectl(&["create", "configmap", "watched", "--from-literal=a=1"]);
    let mut watch = std::process::Command::new(newest_kubectl())
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["get", "configmap", "watched", "-w", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.kubectl(&["label", "configmap", "watched", "touched=yes"]);
    std::thread::sleep(Duration::from_millis(700));
    let _ = watch.kill();
    let out = String::from_utf8_lossy(&watch.wait_with_output().unwrap().stdout).into_owned();
    assert!(out.contains("ADDED") && out.contains("MODIFIED"), "{out}");
}

#[test]
fn namespaces_scope_objects_and_deleting_one_deletes_its_contents() {
    let c = Cluster::up(1).unwrap();
    let ns = c.kubectl(&["get", "namespaces", "-o", "name"]);
    for want in ["namespace/default", "namespace/kube-system", "namespace/kube-public"] {
        assert!(ns.contains(want), "{ns}");
    }
    c.kubectl(&["create", "namespace", "team-a"]);
    c.kubectl(&["-n", "team-a", "create", "configmap", "cfg", "--from-literal=k=v"]);
    c.kubectl(&["create", "configmap", "cfg", "--from-literal=k=v"]);
    assert!(c.kubectl(&["-n", "team-a", "get", "cm", "-o", "name"]).contains("configmap/cfg"));
    let all = c.kubectl(&["get", "cm", "-A"]);
    assert!(all.contains("team-a") && all.contains("default"), "{all}");

    let missing = c.kubectl_with(&newest_kubectl(), &["-n", "nope", "create", "configmap", "x", "--from-literal=a=b"]);
    assert!(stderr(&missing).contains("namespaces \"nope\" not found"), "{}", stderr(&missing));

    c.kubectl(&["delete", "namespace", "team-a", "--wait=true"]);
    eventually(Duration::from_secs(10), "namespace team-a gone", || {
        let out = c.kubectl_with(&newest_kubectl(), &["get", "namespace", "team-a"]);
        (!out.status.success()).then_some(())
    });
    assert!(!c.kubectl(&["get", "cm", "-A"]).contains("team-a"));
}

const BAD: &[(&str, &str, &str)] = &[
    (
        "wrong field type",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: badtype}\nspec:\n  replicas: \"three\"\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
        "spec.replicas",
    ),
    (
        "missing selector",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nosel}\nspec:\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
        "spec.selector: Required value",
    ),
    (
        "selector not matching labels",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mismatch}\nspec:\n  selector: {matchLabels: {app: other}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
        "`selector` does not match template `labels`",
    ),
    ("invalid name", "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: busybox}]}\n", "a lowercase RFC 1123 subdomain"),
    ("no containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: empty}\nspec: {containers: []}\n", "spec.containers: Required value"),
    (
        "unknown field",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: unk}\nspec: {containerz: [], containers: [{name: c, image: busybox}]}\n",
        "unknown field \"spec.containerz\"",
    ),
];

#[test]
fn bad_manifests_are_refused_with_a_clear_message_and_nothing_is_stored() {
    let c = Cluster::up(1).unwrap();
    for kubectl in kubectls() {
        for (what, manifest, message) in BAD {
            let out = c.kubectl_stdin(&kubectl, &["apply", "-f", "-"], manifest);
            assert!(!out.status.success(), "{what} accepted by {}", kubectl.display());
            assert!(stderr(&out).contains(message), "{what} with {}: {}", kubectl.display(), stderr(&out));
        }
    }
    let stored = c.kubectl(&["get", "deploy,pods", "-o", "name"]);
    assert!(stored.trim().is_empty(), "nothing invalid is stored: {stored}");
}

#[test]
fn missing_objects_are_not_found() {
    let c = Cluster::up(1).unwrap();
    for args in [&["get", "pod", "ghost"][..], &["get", "deployment", "ghost"], &["delete", "service", "ghost"], &["get", "node", "ghost"]] {
        let out = c.kubectl_with(&newest_kubectl(), args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("NotFound"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn nodes_register_ready_with_machine_capacity() {
    let c = Cluster::up(2).unwrap();
    let out = c.kubectl(&["get", "nodes"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(out.lines().filter(|l| l.contains(" Ready ")).count(), 2, "{out}");
    let cidrs = c.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
    let cidrs: Vec<&str> = cidrs.split_whitespace().collect();
    assert_eq!(cidrs.len(), 2);
    assert_ne!(cidrs[0], cidrs[1], "each node gets its own pod range");
    let ip = c.kubectl(&["get", "node", "node-1", "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]);
    assert!(ip.starts_with("10.250."), "{ip}");
    let cpu = c.kubectl(&["get", "node", "node-1", "-o", "jsonpath={.status.capacity.cpu}"]);
    assert!(cpu.parse::<u32>().unwrap() >= 1);
}

#[test]
fn api_resources_lists_every_kind_with_short_names() {
    let c = Cluster::up(0).unwrap();
    for kubectl in kubectls() {
        let out = c.kubectl_with(&kubectl, &["api-resources"]);
        let text = stdout(&out);
        for want in ["deployments", "deploy", "replicasets", "pods", "services", "svc", "nodes", "namespaces", "endpoints", "events", "leases"] {
            assert!(text.contains(want), "{} lacks {want}:\n{text}", kubectl.display());
        }
    }
}

#[test]
fn objects_survive_a_restart_of_up_on_the_same_data_dir() {
    let mut c = Cluster::up(1).unwrap();
    c.kubectl(&["apply", "-f", MANIFESTS]);
    c.kubectl(&["scale", "deployment/web", "--replicas=7"]);
    let uid = c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.metadata.uid}"]);
    c.kubectl(&["run", "once", "--image=demo/busybox", "--image-pull-policy=IfNotPresent", "--restart=Never", "--", "sh", "-c", "exit 1"]);
    let finished = "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.finishedAt} {.status.podIP} {.status.startTime}";
    let before = eventually(Duration::from_secs(30), "pod once Failed", || {
        let s = c.kubectl(&["get", "pod", "once", "-o", finished]);
        s.starts_with("Failed ").then_some(s)
    });
    c.stop().unwrap();
    let restarted = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    c.start(1).unwrap();
    assert_eq!(c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.metadata.uid} {.spec.replicas}"]), format!("{uid} 7"));
    assert!(c.kubectl(&["get", "svc", "web"]).contains("30080"));
    // apply after scale restores the manifest's replicas (three-way merge), as Kubernetes does.
    let reapplied = c.kubectl(&["apply", "-f", MANIFESTS]);
    assert!(reapplied.contains("deployment.apps/web configured") && reapplied.contains("service/web unchanged"), "{reapplied}");
    assert_eq!(c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "3");
    eventually(Duration::from_secs(10), "node Ready after restart", || c.kubectl(&["get", "nodes"]).contains(" Ready ").then_some(()));
    // Once the node has started the Deployment's pods again (until then the API shows their
    // statuses from before), it has seen every pod bound to it: the finished one was not run
    // a second time.
    eventually(Duration::from_secs(60), "web pods started again", || {
        let started = c.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.containerStatuses[0].state.running.startedAt}"]);
        let started: Vec<&str> = started.split(' ').filter(|s| !s.is_empty()).collect();
        (started.len() == 3 && started.iter().all(|t| *t >= restarted.as_str())).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.kubectl(&["get", "pod", "once", "-o", finished]), before, "a finished pod is not run again");
}

#[test]
fn typed_client_commands_work_whatever_encoding_kubectl_uses() {
    // kubectl 1.32+ sends these bodies as protobuf, older versions as JSON.
    let c = Cluster::up(0).unwrap();
    for (i, kubectl) in kubectls().iter().enumerate() {
        let ns = format!("typed-{i}");
        let run = |args: &[&str]| {
            let out = c.kubectl_with(kubectl, args);
            assert!(out.status.success(), "{} {args:?}: {}", kubectl.display(), stderr(&out));
            stdout(&out)
        };
        run(&["create", "namespace", &ns]);
        run(&["-n", &ns, "create", "deployment", "web", "--image=demo/web:v1", "--replicas=2", "--port=80"]);
        run(&["-n", &ns, "expose", "deployment", "web", "--type=NodePort", "--port=80"]);
        run(&["-n", &ns, "create", "secret", "generic", "s", "--from-literal=password=hunter2"]);
        run(&["-n", &ns, "run", "solo", "--image=demo/busybox", "--restart=Never", "--", "sleep", "1"]);
        let got = run(&["-n", &ns, "get", "deploy/web", "svc/web", "pod/solo", "-o", "jsonpath={.items[*].metadata.name}"]);
        assert_eq!(got, "web web solo");
        assert_eq!(run(&["-n", &ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"]), "2 demo/web:v1");
        let port = run(&["-n", &ns, "get", "svc", "web", "-o", "jsonpath={.spec.ports[0].targetPort} {.spec.ports[0].nodePort}"]);
        let parts: Vec<&str> = port.split(' ').collect();
        assert_eq!(parts[0], "80", "{port}");
        assert!(parts[1].parse::<u16>().unwrap() >= 30000, "{port}");
        assert_eq!(run(&["-n", &ns, "get", "secret", "s", "-o", "jsonpath={.data.password}"]), "aHVudGVyMg==");
    }
}

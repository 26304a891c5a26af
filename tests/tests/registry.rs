//! Pulling from a real registry through kubectl on `control-plane up`: Debian's docker-registry
//! runs on node-1's own loopback (inside the node's network namespace, where its agent pulls), the
//! test pushes an image built from the node's demo archive to it, and a pod runs it.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Cluster, eventually};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const REGISTRY: &str = "127.0.0.1:5000";
const WAIT: Duration = Duration::from_secs(60);

fn netns_of(c: &Cluster, node: &str) -> PathBuf {
    let args: serde_json::Value = serde_json::from_slice(&std::fs::read(c.dir.path().join(format!("nodes/{node}.args"))).unwrap()).unwrap();
    Path::new("/run/netns").join(args["netns"].as_str().unwrap())
}

/// Runs `f` on a thread inside the network namespace `netns` (setns affects only that thread).
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(netns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .unwrap()
}

/// docker-registry listening on the node's loopback; killed on drop.
struct NodeRegistry {
    child: Child,
    _dir: tempfile::TempDir,
}

impl NodeRegistry {
    fn start(netns: &Path) -> NodeRegistry {
        assert!(Path::new(REGISTRY_BIN).exists(), "{REGISTRY_BIN} missing: apt-get install -y docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {REGISTRY}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        // nsenter, not `ip netns exec`, which would remount /sys for the whole mount namespace.
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args([REGISTRY_BIN, "serve"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = NodeRegistry { child, _dir: dir };
        let listening = in_netns(netns, || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(REGISTRY).is_err() {
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            true
        });
        assert!(listening, "the registry did not start listening on the node's {REGISTRY}");
        registry
    }
}

impl Drop for NodeRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The blobs of an OCI layout archive by digest, and the manifest digest of each ref name.
fn read_layout(archive: &Path) -> (HashMap<String, Vec<u8>>, HashMap<String, String>) {
    let mut blobs = HashMap::new();
    let mut index = None;
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), data);
        } else if path == "index.json" {
            index = Some(serde_json::from_slice::<serde_json::Value>(&data).unwrap());
        }
    }
    let refs = index.unwrap()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| Some((m["annotations"]["org.opencontainers.image.ref.name"].as_str()?.to_string(), m["digest"].as_str()?.to_string())))
        .collect();
    (blobs, refs)
}

/// Pushes the archive's `source` image to the node's registry as `target`; returns its digest.
fn push(netns: &Path, archive: &Path, source: &str, target: &str) -> String {
    let (blobs, refs) = read_layout(archive);
    let digest = refs.get(source).unwrap_or_else(|| panic!("{source} not in the demo archive: {refs:?}")).clone();
    let target: oci_client::Reference = format!("{REGISTRY}/{target}").parse().unwrap();
    let manifest_digest = digest.clone();
    in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = Client::try_from(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() }).unwrap();
            client.auth(&target, &RegistryAuth::Anonymous, RegistryOperation::Push).await.unwrap();
            let manifest = &blobs[&manifest_digest];
            let parsed: serde_json::Value = serde_json::from_slice(manifest).unwrap();
            let referenced = std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().unwrap());
            for d in referenced.filter_map(|d| d["digest"].as_str()) {
                client.push_blob(&target, blobs[d].clone(), d).await.unwrap();
            }
            let media_type = parsed["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json");
            client.push_manifest_raw(&target, manifest.clone(), http::HeaderValue::from_str(media_type).unwrap()).await.unwrap();
        })
    });
    digest
}

#[test]
fn a_pod_runs_an_image_pulled_from_a_registry_on_the_nodes_loopback() {
    let c = Cluster::up(1).unwrap();
    let netns = netns_of(&c, "node-1");
    let _registry = NodeRegistry::start(&netns);
    let archive = c.dir.path().join("nodes/node-1/demo-images.tar");
    let digest = push(&netns, &archive, "demo/web:v2", "e2e/site:1.0");

    let image = format!("{REGISTRY}/e2e/site:1.0");
    c.kubectl(&["run", "pulled", "--image", &image, "--image-pull-policy=Always"]);
    let image_id = eventually(WAIT, "the pulled pod running", || {
        let out = c.kubectl(&["get", "pod", "pulled", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].imageID}"]);
        let (phase, id) = out.split_once(' ')?;
        (phase == "Running").then(|| id.to_string())
    });
    assert_eq!(image_id, format!("{REGISTRY}/e2e/site@{digest}"), "imageID names the registry's digest");
    let page = c.kubectl(&["exec", "pulled", "--", "wget", "-q", "-O", "-", "http://127.0.0.1/"]);
    assert_eq!(page.trim(), "web v2 on pulled");
    let events = c.kubectl(&["get", "events", "--field-selector", "involvedObject.name=pulled", "-o", "jsonpath={.items[*].reason}"]);
    assert!(events.contains("Pulling") && events.contains("Pulled"), "{events}");

    // A tag the registry does not have: ErrImagePull then ImagePullBackOff, with its message.
    c.kubectl(&["run", "missing", "--image", &format!("{REGISTRY}/e2e/site:2.0")]);
    let (reason, message) = eventually(WAIT, "the missing tag reported", || {
        let out = c.kubectl(&["get", "pod", "missing", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"]);
        let (reason, message) = out.split_once('|')?;
        (reason == "ImagePullBackOff").then(|| (reason.to_string(), message.to_string()))
    });
    assert!(message.to_lowercase().contains("manifest unknown") || message.contains("not found"), "{reason}: {message}");
}

//! Pulls against a real registry: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port, with its storage in a temp dir; the process is killed on drop.
//! Needs `apt-get install -y docker-registry busybox-static`.

use super::demo::{BuiltImage, LayerBuilder, OCI_INDEX, OCI_MANIFEST, build_image, demo_images};
use super::store::sha256_digest;
use super::{Error, ImageStore, host_arch};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing: apt-get install -y docker-registry"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start listening on {}",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        registry
    }

    fn client() -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::try_from(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .expect("client")
    }

    fn reference(&self, repo_and_tag: &str) -> oci_client::Reference {
        format!("{}/{repo_and_tag}", self.addr)
            .parse()
            .expect("reference")
    }

    async fn push_manifest(
        &self,
        client: &Client,
        target: &oci_client::Reference,
        bytes: &[u8],
        media_type: &str,
    ) {
        client
            .push_manifest_raw(
                target,
                bytes.to_vec(),
                http::HeaderValue::from_str(media_type).expect("header"),
            )
            .await
            .expect("push manifest");
    }

    /// Pushes blobs and manifest, tagging it `tag` or, without one, by digest only.
    async fn push_image(&self, client: &Client, repo: &str, tag: Option<&str>, image: &BuiltImage) {
        let target = self.reference(&format!("{repo}:{}", tag.unwrap_or("x")));
        client
            .auth(&target, &RegistryAuth::Anonymous, RegistryOperation::Push)
            .await
            .expect("auth");
        let blobs = std::iter::once(&image.config).chain(image.layers.iter().map(|l| &l.blob));
        for blob in blobs {
            client
                .push_blob(&target, blob.data.clone(), &blob.digest)
                .await
                .expect("push blob");
        }
        let target = match tag {
            Some(_) => target,
            None => target.clone_with_digest(image.manifest.digest.clone()),
        };
        self.push_manifest(client, &target, &image.manifest.data, OCI_MANIFEST)
            .await;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo() -> &'static [BuiltImage] {
    static IMAGES: OnceLock<Vec<BuiltImage>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "needs Debian's busybox-static: apt-get install -y busybox-static"
        );
        demo_images(busybox).expect("demo images")
    })
}

fn demo_image(name: &str) -> &'static BuiltImage {
    demo().iter().find(|i| i.name == name).expect("demo image")
}

#[tokio::test]
async fn pushed_demo_images_pull_back_with_their_layers_config_and_digests() {
    let registry = Registry::start();
    let client = Registry::client();
    for image in demo() {
        let (repo, tag) = image.name.split_once(':').expect("tag");
        registry.push_image(&client, repo, Some(tag), image).await;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(root.path()).expect("open");
    let a = &registry.addr;

    let v1 = store
        .pull(&format!("{a}/demo/web:v1"), None)
        .await
        .expect("pull v1");
    let built = demo_image("demo/web:v1");
    assert_eq!(v1.reference, format!("{a}/demo/web:v1"));
    assert_eq!(v1.manifest_digest, built.manifest.digest);
    assert_eq!(v1.id, built.config.digest);
    assert_eq!(v1.index_digest, None);
    assert_eq!(
        v1.image_id_with_repo(),
        format!("{a}/demo/web@{}", built.manifest.digest)
    );
    let expected_size = built.config.data.len()
        + built
            .layers
            .iter()
            .map(|l| l.blob.data.len())
            .sum::<usize>();
    assert_eq!(v1.size, expected_size as u64);
    assert_eq!(v1.layers.len(), 2);
    for (dir, layer) in v1.layers.iter().zip(&built.layers) {
        assert_eq!(
            dir.file_name().and_then(|n| n.to_str()),
            layer.diff_id.strip_prefix("sha256:")
        );
    }
    assert!(v1.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_to_string(v1.layers[1].join("etc/web-version")).expect("version"),
        "v1\n"
    );
    assert_eq!(v1.config.working_dir, "/www");
    assert_eq!(v1.config.exposed_ports, ["80/tcp"]);
    assert!(v1.config.env.iter().any(|e| e.starts_with("PATH=")));
    for blob in [&built.manifest, &built.config, &built.layers[1].blob] {
        assert_eq!(
            sha256_digest(&store.read_blob(&blob.digest).expect("blob")),
            blob.digest
        );
    }

    // v2 shares the busybox layer on disk; a digest reference resolves to the same image.
    let v2 = store
        .pull(&format!("{a}/demo/web:v2"), None)
        .await
        .expect("pull v2");
    assert_eq!(v2.layers[0], v1.layers[0]);
    assert_ne!(v2.layers[1], v1.layers[1]);
    let by_digest = store
        .pull(&format!("{a}/demo/web@{}", built.manifest.digest), None)
        .await
        .expect("pull by digest");
    assert_eq!(by_digest.layers, v1.layers);
    assert_eq!(
        store.get(&format!("{a}/demo/web:v1")).expect("get"),
        Some(v1.clone())
    );
    assert_eq!(
        store
            .get(&v1.id)
            .expect("get by id")
            .map(|i| i.manifest_digest),
        Some(v1.manifest_digest.clone())
    );
    assert_eq!(store.list().expect("list").len(), 3);

    let missing = store.pull(&format!("{a}/demo/web:nope"), None).await;
    match missing {
        Err(Error::NotFound(message)) => assert!(message.contains("manifest unknown"), "{message}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.pull(&format!("{a}/no/such:repo"), None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.pull("Bad//Name", None).await,
        Err(Error::InvalidReference(_))
    ));
    assert_eq!(
        std::fs::read_dir(root.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_multi_arch_index_resolves_to_the_manifest_for_this_architecture() {
    let registry = Registry::start();
    let client = Registry::client();
    let native = demo_image("demo/busybox:latest");
    let other_arch = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let foreign_layer = LayerBuilder::new()
        .file("arch", 0o644, other_arch.as_bytes())
        .and_then(LayerBuilder::finish)
        .expect("layer");
    let foreign = build_image(
        "multi",
        other_arch,
        vec![foreign_layer],
        json!({"Cmd": ["sh"]}),
    )
    .expect("image");
    registry
        .push_image(&client, "demo/multi", None, native)
        .await;
    registry
        .push_image(&client, "demo/multi", None, &foreign)
        .await;
    let entry = |image: &BuiltImage, arch: &str| {
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.manifest.digest,
            "size": image.manifest.data.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry(&foreign, other_arch), entry(native, host_arch())],
    }))
    .expect("index");
    let index_digest = sha256_digest(&index);
    registry
        .push_manifest(
            &client,
            &registry.reference("demo/multi:latest"),
            &index,
            OCI_INDEX,
        )
        .await;

    let root = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(root.path()).expect("open");
    let image = store
        .pull(&format!("{}/demo/multi", registry.addr), None)
        .await
        .expect("pull");
    assert_eq!(image.manifest_digest, native.manifest.digest);
    assert_eq!(image.index_digest.as_deref(), Some(index_digest.as_str()));
    assert_eq!(image.id, native.config.digest);
    assert_eq!(
        image.image_id_with_repo(),
        format!("{}/demo/multi@{index_digest}", registry.addr)
    );
    assert!(image.layers[0].join("bin/busybox").is_file());
    // The repo digest Kubernetes shows finds the local image again.
    assert_eq!(
        store
            .get(&image.image_id_with_repo())
            .expect("get")
            .map(|i| i.id),
        Some(image.id.clone())
    );
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_through_two_store_handles_agree() {
    let registry = Registry::start();
    let client = Registry::client();
    let image = demo_image("demo/web:v2");
    registry
        .push_image(&client, "demo/web", Some("v2"), image)
        .await;
    let root = tempfile::tempdir().expect("tempdir");
    let first = ImageStore::open(root.path()).expect("open");
    let second = ImageStore::open(root.path()).expect("open again");
    let name = format!("{}/demo/web:v2", registry.addr);
    let (a, b, c) = tokio::join!(
        first.pull(&name, None),
        second.pull(&name, None),
        first.pull(&name, None)
    );
    let (a, b, c) = (a.expect("pull a"), b.expect("pull b"), c.expect("pull c"));
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(
        std::fs::read_dir(root.path().join("layers/sha256"))
            .expect("layers")
            .count(),
        2
    );
    assert_eq!(
        std::fs::read_dir(root.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
    assert_eq!(first.list().expect("list"), vec![a]);
}

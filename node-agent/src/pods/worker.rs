//! One pod's life on the node: sandbox and address, containers started and restarted by the
//! restart policy with crash back-off, status reports, and graceful termination.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use super::status::{self, ContainerView, PodFacts, State, Terminated};
use super::{NodeContext, Report, backoff, probes, service_env, spec};
use crate::images::Image;
use crate::runtime::{self, Container, ContainerSpec, ErrorKind, Mount, Rootfs, Sandbox};

/// How long a registry that could not be reached is skipped for images held locally.
const UNREACHABLE_FOR: Duration = Duration::from_secs(300);
/// The longest a pull may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);

pub fn pod_key(pod: &Value) -> String {
    format!("{}/{}", pod["metadata"]["namespace"].as_str().unwrap_or(""), pod["metadata"]["name"].as_str().unwrap_or(""))
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What survives an agent restart about a container besides the runtime's own state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    restart_count: u32,
    last: Option<(i32, String, String, String)>,
    image_id: String,
    started_at: String,
}

struct Slot {
    running: Option<Arc<Container>>,
    meta: Meta,
    state: State,
    backoff: Option<Duration>,
    next_start: Option<Instant>,
    started: Option<Instant>,
    /// Terminated and not to be restarted (restart policy).
    finished: bool,
    probes: Vec<probes::Tally>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            running: None,
            meta: Meta::default(),
            state: State::Waiting { reason: "ContainerCreating".into(), message: None },
            backoff: None,
            next_start: None,
            started: None,
            finished: false,
            probes: Vec::new(),
        }
    }
}

struct Worker {
    ctx: Arc<NodeContext>,
    uid: String,
    /// Spec, sandbox and container state (on the agent's tmpfs).
    dir: PathBuf,
    /// Logs, volumes and writable layers.
    disk: PathBuf,
    pod: Arc<Value>,
    sandbox: Option<Sandbox>,
    ip: Option<String>,
    slots: BTreeMap<String, Slot>,
    start_time: String,
    last_status: Value,
    /// The spec last saved to `pod.json`: saved again only when the control plane sends a new one.
    saved: Option<Arc<Value>>,
    exits: mpsc::UnboundedSender<String>,
    /// Events not reported yet.
    events: Vec<super::Event>,
}

pub async fn run(ctx: Arc<NodeContext>, uid: String, mut desired: watch::Receiver<Option<Arc<Value>>>) {
    let Some(pod) = desired.borrow().clone() else { return };
    let span = info_span!("pod", pod = %pod_key(&pod), uid = %uid);
    let (exits, mut exited) = mpsc::unbounded_channel();
    // A pod adopted from an agent from before the tmpfs keeps both in its disk directory.
    let (dir, disk) = (super::run_dir::pod_state_dir(&ctx.data_dir, &uid), ctx.disk_dir(&uid));
    let mut w = Worker {
        ctx,
        uid,
        dir,
        disk,
        pod,
        sandbox: None,
        ip: None,
        slots: BTreeMap::new(),
        start_time: now(),
        last_status: Value::Null,
        saved: None,
        exits,
        events: Vec::new(),
    };
    async move {
        w.adopt();
        // The kubelet never starts a pod the API shows finished; a node that holds nothing of it
        // (its agent's state was cleaned up, as a restarted `up` does) would otherwise run it
        // once more. Such a pod only waits for its deletion.
        let dormant = w.sandbox.is_none() && finished_in_api(&w.pod);
        if dormant {
            info!("pod already finished: not starting it again");
        }
        // A new pod holds off the warm pool's refill until its containers have been started.
        let mut starting = (w.sandbox.is_none() && !dormant).then(|| w.ctx.warm.starting());
        loop {
            let current = desired.borrow().clone();
            let gone = current.is_none();
            if let Some(p) = current {
                w.pod = p;
            }
            if gone || w.pod["metadata"]["deletionTimestamp"].is_string() {
                w.terminate(gone).await;
                return;
            }
            if dormant {
                if desired.changed().await.is_err() {
                    return;
                }
                continue;
            }
            w.sync().await;
            w.run_probes().await;
            w.report(false).await;
            drop(starting.take());
            let wake = w.next_wake();
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        // The manager dropped us: the agent is shutting down. Leave containers running.
                        return;
                    }
                }
                Some(name) = exited.recv() => w.on_exit(&name).await,
                _ = sleep_until(wake) => {}
            }
        }
    }
    .instrument(span)
    .await
}

/// Succeeded or Failed: phases a pod never leaves.
fn finished_in_api(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Removes what a pod left on the node when nothing else is known about it.
pub fn cleanup_leftovers(ctx: &NodeContext, uid: &str) {
    remove_pod_dir(&ctx.pods_dir().join(uid));
    remove_pod_dir(&ctx.disk_dir(uid));
    let _ = ctx.network.detach(uid);
    if let Ok(Some(g)) = ctx.cgroups.open(&ctx.cgroup_path(uid, None)) {
        let _ = g.kill_all();
        let _ = g.remove();
    }
}

/// Stops a pod's containers and removes its sandbox mounts and directory.
pub fn remove_pod_dir(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir.join("containers")).into_iter().flatten().flatten() {
        if let Ok(Some(c)) = Container::load(&entry.path()) {
            let _ = c.destroy();
        }
    }
    if let Ok(sb) = Sandbox::open(&dir.join("sandbox")) {
        let _ = sb.destroy();
    }
    let _ = std::fs::remove_dir_all(dir);
}

impl Worker {
    fn containers(&self) -> Vec<Value> {
        self.pod["spec"]["containers"].as_array().cloned().unwrap_or_default()
    }

    fn container_dir(&self, name: &str) -> PathBuf {
        self.dir.join("containers").join(name)
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join("containers").join(format!("{name}.meta.json"))
    }

    fn save_meta(&self, name: &str, meta: &Meta) {
        if let Ok(b) = serde_json::to_vec(meta) {
            let tmp = self.meta_path(name).with_extension("tmp");
            if std::fs::write(&tmp, b).is_ok() {
                let _ = std::fs::rename(&tmp, self.meta_path(name));
            }
        }
    }

    /// Picks up what an earlier agent left running for this pod.
    fn adopt(&mut self) {
        if let Ok(sb) = Sandbox::open(&self.dir.join("sandbox")) {
            self.sandbox = Some(sb);
            self.ip = self.ctx.network.address_of(&self.uid).map(|ip| ip.to_string());
        }
        if let Ok(st) = std::fs::read_to_string(self.dir.join("start_time")) {
            self.start_time = st.trim().to_string();
        }
        for c in self.containers() {
            let Some(name) = c["name"].as_str() else { continue };
            let mut slot = Slot::new();
            if let Some(meta) = std::fs::read(self.meta_path(name)).ok().and_then(|b| serde_json::from_slice::<Meta>(&b).ok()) {
                slot.meta = meta;
            }
            if let Ok(Some(container)) = Container::load(&self.container_dir(name)) {
                let container = Arc::new(container);
                info!(container = name, pid = container.pid(), "adopted running container");
                slot.state = State::Running { started_at: slot.meta.started_at.clone() };
                slot.started = Some(Instant::now());
                slot.probes = probes::tallies(&c, Instant::now());
                self.watch_exit(name, container.clone());
                slot.running = Some(container);
            }
            self.slots.insert(name.to_string(), slot);
        }
    }

    /// Waits for the container to end, indexing its log meanwhile.
    fn watch_exit(&self, name: &str, container: Arc<Container>) {
        let tx = self.exits.clone();
        let name = name.to_string();
        let log = container.state().log_path.clone();
        tokio::spawn(async move {
            let mut seen = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let wait = container.wait();
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    _ = tokio::time::sleep(super::logs::POLL) => seen = super::logs::index_growth(&log, seen),
                }
            }
            super::logs::index_growth(&log, seen);
            let _ = tx.send(name);
        });
    }

    /// The pod's hostname: its name, cut to what a UTS namespace takes.
    fn hostname(&self) -> Result<String, String> {
        runtime::truncate_pod_hostname(self.pod["metadata"]["name"].as_str().unwrap_or("pod")).map_err(|e| e.to_string())
    }

    /// Sandbox, address and pod files: made once per pod.
    async fn ensure_sandbox(&mut self) -> Result<(), String> {
        if self.sandbox.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(self.dir.join("containers")).map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join("start_time"), &self.start_time).map_err(|e| e.to_string())?;
        let hostname = self.hostname()?;
        let sb_dir = self.dir.join("sandbox");
        let t0 = Instant::now();
        let (sb, t1, ip) = match self.ctx.warm.claim(&self.uid, &sb_dir, &self.ctx.network) {
            Some(warm) => (warm.sandbox, Instant::now(), warm.ip),
            None => {
                let sb = tokio::task::spawn_blocking(move || Sandbox::create(&sb_dir, &hostname)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
                let t1 = Instant::now();
                let ip = self.ctx.network.attach(&self.uid, &sb.net_ns_path()).map_err(|e| e.to_string())?;
                (sb, t1, ip)
            }
        };
        let t2 = Instant::now();
        self.ip = Some(ip.to_string());
        let hostname = self.hostname().unwrap_or_default();
        let ns = self.pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let files = [
            ("hosts", spec::hosts_file(self.ip.as_deref(), &hostname)),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", spec::resolv_conf(&self.ctx.cluster_dns, ns, &self.ctx.cluster_domain)),
        ];
        for (f, content) in files {
            std::fs::write(self.dir.join(f), content).map_err(|e| e.to_string())?;
        }
        self.ctx.cgroups.create(&self.ctx.cgroup_path(&self.uid, None), &Default::default()).map_err(|e| e.to_string())?;
        debug!(sandbox_us = (t1 - t0).as_micros() as u64, network_us = (t2 - t1).as_micros() as u64, files_cgroup_us = t2.elapsed().as_micros() as u64, "sandbox ready");
        self.sandbox = Some(sb);
        Ok(())
    }

    async fn sync(&mut self) {
        if self.saved.as_ref().is_none_or(|saved| !Arc::ptr_eq(saved, &self.pod)) {
            match std::fs::create_dir_all(&self.dir).and_then(|_| std::fs::write(self.dir.join("pod.json"), serde_json::to_vec(&*self.pod).unwrap_or_default())) {
                Ok(()) => self.saved = Some(self.pod.clone()),
                Err(e) => warn!(error = %e, "saving the pod spec failed"),
            }
        }
        if let Err(e) = self.ensure_sandbox().await {
            warn!(error = %e, "creating the pod sandbox failed");
            for c in self.containers() {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                let slot = self.slots.entry(name).or_insert_with(Slot::new);
                slot.state = State::Waiting { reason: "ContainerCreating".into(), message: Some(format!("failed to create pod sandbox: {e}")) };
                slot.next_start = Some(Instant::now() + Duration::from_secs(1));
            }
            return;
        }
        for c in self.containers() {
            let Some(name) = c["name"].as_str().map(String::from) else { continue };
            let slot = self.slots.entry(name.clone()).or_insert_with(Slot::new);
            if slot.running.is_some() || slot.finished {
                continue;
            }
            if slot.next_start.is_some_and(|t| t > Instant::now()) {
                continue;
            }
            self.start(&name, &c).await;
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let starts = self.slots.values().filter(|s| s.running.is_none() && !s.finished).filter_map(|s| s.next_start);
        let probes = self.slots.values().filter(|s| s.running.is_some()).flat_map(|s| s.probes.iter().map(|p| p.next));
        starts.chain(probes).min()
    }

    /// Runs the probes that are due. Startup gates the others; a failed liveness or startup
    /// probe kills the container, which the restart policy then handles.
    async fn run_probes(&mut self) {
        let now = Instant::now();
        let ip = self.ip.clone().unwrap_or_default();
        let specs: BTreeMap<String, Value> =
            self.containers().into_iter().filter_map(|c| Some((c["name"].as_str()?.to_string(), c))).collect();
        for (name, slot) in self.slots.iter_mut() {
            let Some(container) = slot.running.clone() else { continue };
            let Some(cspec) = specs.get(name) else { continue };
            let started = slot.probes.iter().all(|p| p.kind != probes::Kind::Startup || p.passing);
            for tally in slot.probes.iter_mut() {
                if tally.next > now || (tally.kind != probes::Kind::Startup && !started) {
                    continue;
                }
                let ok = probes::run(&tally.spec, cspec, &ip, Some(container.clone())).await;
                tally.record(ok, Instant::now());
                let kind = match tally.kind {
                    probes::Kind::Startup => "Startup",
                    probes::Kind::Liveness => "Liveness",
                    probes::Kind::Readiness => "Readiness",
                };
                if !ok {
                    self.events.push(super::Event { warning: true, reason: "Unhealthy", message: format!("{kind} probe failed") });
                }
                if tally.fatal() {
                    info!(container = %name, probe = tally.kind.field(), "probe failed; killing the container");
                    self.events.push(super::Event {
                        warning: false,
                        reason: "Killing",
                        message: format!("Container {name} failed {} probe, will be restarted", kind.to_lowercase()),
                    });
                    let _ = container.signal(Signal::SIGKILL);
                }
            }
        }
    }

    /// The image for a container per its pull policy; Always falls back to a local copy when the
    /// registry cannot be reached (offline nodes run preloaded images).
    async fn image(&mut self, c: &Value) -> Result<Image, (String, String)> {
        let reference = c["image"].as_str().unwrap_or_default();
        if crate::images::normalize(reference).is_err() {
            return Err(("InvalidImageName".into(), format!("Failed to apply default image tag \"{reference}\": couldn't parse image name")));
        }
        let local = self.ctx.images.get(reference).ok().flatten();
        let policy = c["imagePullPolicy"].as_str().unwrap_or("IfNotPresent");
        let registry = crate::images::normalize(reference).ok().and_then(|r| r.split('/').next().map(String::from)).unwrap_or_default();
        let recently_unreachable = self
            .ctx
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&registry)
            .is_some_and(|since| since.elapsed() < UNREACHABLE_FOR);
        let present = |events: &mut Vec<super::Event>| {
            events.push(super::Event { warning: false, reason: "Pulled", message: format!("Container image \"{reference}\" already present on machine") })
        };
        match (policy, local) {
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => {
                present(&mut self.events);
                Ok(img)
            }
            ("Never", None) => Err(("ErrImageNeverPull".into(), format!("Container image \"{reference}\" is not present with pull policy of Never"))),
            (_, Some(img)) if recently_unreachable => {
                present(&mut self.events);
                Ok(img)
            }
            (_, local) => {
                self.events.push(super::Event { warning: false, reason: "Pulling", message: format!("Pulling image \"{reference}\"") });
                let started = Instant::now();
                // With a local copy to fall back on, the registry gets only a short chance.
                let limit = if local.is_some() { Duration::from_secs(3) } else { PULL_TIMEOUT };
                let pulled = tokio::time::timeout(limit, self.ctx.images.pull(reference, None)).await;
                let unreachable = match &pulled {
                    Err(_) => true,
                    Ok(Err(crate::images::Error::Registry(_))) => true,
                    _ => false,
                };
                if unreachable {
                    self.ctx.unreachable.lock().unwrap_or_else(|p| p.into_inner()).insert(registry, Instant::now());
                }
                match (pulled, local) {
                    (Ok(Ok(img)), _) => {
                        let message = format!("Successfully pulled image \"{reference}\" in {}ms", started.elapsed().as_millis());
                        self.events.push(super::Event { warning: false, reason: "Pulled", message });
                        Ok(img)
                    }
                    (_, Some(img)) if unreachable => {
                        present(&mut self.events);
                        Ok(img)
                    }
                    (Ok(Err(e)), _) => Err(("ErrImagePull".into(), format!("failed to pull image \"{reference}\": {e}"))),
                    (Err(_), _) => Err(("ErrImagePull".into(), format!("failed to pull image \"{reference}\": timed out after {}s", limit.as_secs()))),
                }
            }
        }
    }

    async fn start(&mut self, name: &str, c: &Value) {
        let t0 = Instant::now();
        let image = match self.image(c).await {
            Ok(img) => img,
            Err((reason, message)) => {
                let slot = self.slots.get_mut(name).expect("slot exists");
                // A failed pull shows ErrImagePull once, then ImagePullBackOff while waiting to retry.
                let reason = if reason == "ErrImagePull" && matches!(&slot.state, State::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff") {
                    "ImagePullBackOff".to_string()
                } else {
                    reason
                };
                let image = c["image"].as_str().unwrap_or_default();
                match reason.as_str() {
                    "ImagePullBackOff" => self.events.push(super::Event { warning: false, reason: "BackOff", message: format!("Back-off pulling image \"{image}\"") }),
                    "ErrImagePull" => self.events.push(super::Event { warning: true, reason: "Failed", message: message.clone() }),
                    _ => self.events.push(super::Event { warning: true, reason: "Failed", message: message.clone() }),
                }
                self.events.push(super::Event { warning: true, reason: "Failed", message: format!("Error: {reason}") });
                let slot = self.slots.get_mut(name).expect("slot exists");
                let delay = backoff::next_delay(slot.backoff, Duration::ZERO);
                slot.backoff = Some(delay);
                slot.next_start = Some(Instant::now() + delay);
                slot.state = State::Waiting { reason, message: Some(message) };
                return;
            }
        };
        let t1 = Instant::now();
        let result = self.create_container(name, c, &image).await;
        debug!(container = name, image_us = (t1 - t0).as_micros() as u64, create_us = t1.elapsed().as_micros() as u64, "container start");
        let slot = self.slots.get_mut(name).expect("slot exists");
        match result {
            Ok(container) => {
                let container = Arc::new(container);
                // Every start after a termination is a restart.
                if slot.meta.last.is_some() {
                    slot.meta.restart_count += 1;
                }
                slot.meta.started_at = now();
                slot.meta.image_id = image.image_id_with_repo();
                slot.state = State::Running { started_at: slot.meta.started_at.clone() };
                slot.started = Some(Instant::now());
                slot.next_start = None;
                slot.probes = probes::tallies(c, Instant::now());
                slot.running = Some(container.clone());
                let meta = slot.meta.clone();
                self.events.push(super::Event { warning: false, reason: "Created", message: format!("Created container: {name}") });
                self.events.push(super::Event { warning: false, reason: "Started", message: format!("Started container {name}") });
                self.save_meta(name, &meta);
                self.watch_exit(name, container);
            }
            Err((kind, message)) => {
                let reason = match kind {
                    ErrorKind::RunContainer => "RunContainerError",
                    ErrorKind::CreateContainerConfig => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                self.events.push(super::Event { warning: true, reason: "Failed", message: format!("Error: {message}") });
                let slot = self.slots.get_mut(name).expect("slot exists");
                warn!(container = name, reason, message, "container failed to start");
                let delay = backoff::next_delay(slot.backoff, Duration::ZERO);
                slot.backoff = Some(delay);
                slot.next_start = Some(Instant::now() + delay);
                slot.state = State::Waiting { reason: reason.into(), message: Some(message) };
            }
        }
    }

    async fn create_container(&self, name: &str, c: &Value, image: &Image) -> Result<Container, (ErrorKind, String)> {
        let create_err = |m: String| (ErrorKind::CreateContainer, m);
        let links = self.ctx.services.current().await;
        let namespace = self.pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let service_vars = service_env::variables(&links, namespace, self.pod["spec"]["enableServiceLinks"].as_bool().unwrap_or(true));
        let hostname = self.hostname().unwrap_or_default();
        let sources = spec::EnvSources { pod: &self.pod, pod_ip: self.ip.as_deref(), host_ip: &self.ctx.node_ip, services: &service_vars };
        let declared = spec::kubelet_env(c, &sources).map_err(|m| (ErrorKind::CreateContainerConfig, m))?;
        // Like the kubelet, command and args expand against these only, not the image's.
        let argv = spec::argv(&image.config, c, &declared).map_err(create_err)?;
        let env = spec::environment(&image.config, &hostname, &declared);
        let sandbox = self.sandbox.as_ref().ok_or_else(|| create_err("no pod sandbox".into()))?;
        let cdir = self.container_dir(name);
        // Numbered like the restart count this start will have, so `--previous` finds the last one.
        let restart = self.slots.get(name).map(|s| s.meta.restart_count + u32::from(s.meta.last.is_some())).unwrap_or(0);
        let log_dir = self.disk.join("logs").join(name);
        std::fs::create_dir_all(&log_dir).map_err(|e| create_err(format!("creating {}: {e}", log_dir.display())))?;
        let mut mounts = vec![
            Mount { source: self.dir.join("hosts"), destination: "/etc/hosts".into(), read_only: false },
            Mount { source: self.dir.join("hostname"), destination: "/etc/hostname".into(), read_only: false },
            Mount { source: self.dir.join("resolv.conf"), destination: "/etc/resolv.conf".into(), read_only: false },
        ];
        for vm in c["volumeMounts"].as_array().into_iter().flatten() {
            let (Some(vol), Some(path)) = (vm["name"].as_str(), vm["mountPath"].as_str()) else { continue };
            let Some((source, create)) = spec::volume_source(&self.disk, &self.pod, vol) else {
                return Err(create_err(format!("volume {vol:?} has a kind this node does not support")));
            };
            if create {
                std::fs::create_dir_all(&source).map_err(|e| create_err(format!("creating volume {vol}: {e}")))?;
            }
            mounts.push(Mount { source, destination: path.into(), read_only: vm["readOnly"].as_bool().unwrap_or(false) });
        }
        let group = self
            .ctx
            .cgroups
            .create(&self.ctx.cgroup_path(&self.uid, Some(name)), &spec::limits(c))
            .map_err(|e| create_err(format!("creating the container's cgroup: {e}")))?;
        // A fresh writable layer per start, as a new container would have. It is on disk; only
        // the mount point is with the container's state.
        let layer = self.disk.join("rootfs").join(name);
        let _ = std::fs::remove_dir_all(cdir.join("rootfs"));
        let _ = std::fs::remove_dir_all(&layer);
        let cwd = c["workingDir"].as_str().filter(|s| !s.is_empty()).map(PathBuf::from).or_else(|| {
            (!image.config.working_dir.is_empty()).then(|| PathBuf::from(&image.config.working_dir))
        });
        let spec = ContainerSpec {
            id: format!("{}-{name}-{restart}", &self.uid[..8.min(self.uid.len())]),
            state_dir: cdir.clone(),
            rootfs: Rootfs {
                layers: image.layers.clone(),
                upper_dir: layer.join("upper"),
                work_dir: layer.join("work"),
                mount_point: cdir.join("rootfs"),
            },
            namespaces: sandbox.namespaces(),
            mounts,
            argv,
            env,
            cwd,
            uid: c["securityContext"]["runAsUser"].as_u64().unwrap_or(0) as u32,
            gid: c["securityContext"]["runAsGroup"].as_u64().unwrap_or(0) as u32,
            supplemental_gids: vec![],
            readonly_rootfs: c["securityContext"]["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
            log_path: super::logs::log_path(&log_dir, restart),
            cgroup_procs: group.procs_files(),
            hostname: Some(hostname),
            mount_template: self.ctx.mount_template.clone(),
        };
        tokio::task::spawn_blocking(move || runtime::create(&spec))
            .await
            .map_err(|e| create_err(e.to_string()))?
            .map_err(|e| (e.kind(), e.to_string()))
    }

    /// A container ended: record how, and decide about restarting it.
    async fn on_exit(&mut self, name: &str) {
        let oom = self
            .ctx
            .cgroups
            .open(&self.ctx.cgroup_path(&self.uid, Some(name)))
            .ok()
            .flatten()
            .map(|g| g.oom_killed().unwrap_or(false))
            .unwrap_or(false);
        let policy = self.pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string();
        let Some(slot) = self.slots.get_mut(name) else { return };
        let Some(container) = slot.running.take() else { return };
        let (code, mut reason) = match container.status() {
            Ok(runtime::Status::Exited(s)) => (s.code(), if s.code() == 0 { "Completed" } else { "Error" }),
            Ok(runtime::Status::Running) => {
                // Spurious wake-up: keep watching.
                slot.running = Some(container.clone());
                self.watch_exit(name, container);
                return;
            }
            _ => (137, "ContainerStatusUnknown"),
        };
        if oom && code == 137 {
            reason = "OOMKilled";
        }
        let t = Terminated {
            exit_code: code,
            reason: reason.into(),
            message: None,
            started_at: slot.meta.started_at.clone(),
            finished_at: now(),
        };
        info!(container = name, exit_code = code, reason, "container exited");
        let _ = tokio::task::spawn_blocking(move || container.destroy()).await;
        slot.meta.last = Some((t.exit_code, t.reason.clone(), t.started_at.clone(), t.finished_at.clone()));
        let restart = policy == "Always" || (policy == "OnFailure" && code != 0);
        if restart {
            let ran = slot.started.map(|s| s.elapsed()).unwrap_or_default();
            let delay = backoff::next_delay(slot.backoff, ran);
            slot.backoff = Some(delay);
            slot.next_start = Some(Instant::now() + delay);
            let pod_name = self.pod["metadata"]["name"].as_str().unwrap_or("");
            self.events.push(super::Event {
                warning: true,
                reason: "BackOff",
                message: format!("Back-off restarting failed container {name} in pod {pod_name}_{}({})", self.pod["metadata"]["namespace"].as_str().unwrap_or(""), self.uid),
            });
            slot.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!("back-off {}s restarting failed container={name} pod={pod_name}_{}({})", delay.as_secs(), self.pod["metadata"]["namespace"].as_str().unwrap_or(""), self.uid)),
            };
        } else {
            slot.finished = true;
            slot.state = State::Terminated(t);
        }
        let meta = slot.meta.clone();
        self.save_meta(name, &meta);
    }

    fn views(&self) -> Vec<ContainerView> {
        self.containers()
            .iter()
            .filter_map(|c| {
                let name = c["name"].as_str()?;
                let slot = self.slots.get(name);
                let state = slot.map(|s| s.state.clone()).unwrap_or(State::Waiting { reason: "ContainerCreating".into(), message: None });
                let last = slot.and_then(|s| s.meta.last.clone()).map(|(exit_code, reason, started_at, finished_at)| Terminated {
                    exit_code,
                    reason,
                    message: None,
                    started_at,
                    finished_at,
                });
                let running = slot.and_then(|s| s.running.as_ref());
                Some(ContainerView {
                    name: name.into(),
                    image: c["image"].as_str().unwrap_or_default().into(),
                    image_id: slot.map(|s| s.meta.image_id.clone()).unwrap_or_default(),
                    container_id: running.map(|r| format!("tinykube://{}", r.id())).unwrap_or_default(),
                    ready: matches!(state, State::Running { .. })
                        && slot.is_some_and(|s| s.probes.iter().all(|p| p.kind == probes::Kind::Liveness || p.passing)),
                    state,
                    last,
                    restart_count: slot.map(|s| s.meta.restart_count).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn report(&mut self, terminated: bool) {
        let views = self.views();
        let previous = self.pod["status"].clone();
        let facts = PodFacts {
            restart_policy: self.pod["spec"]["restartPolicy"].as_str().unwrap_or("Always"),
            containers: &views,
            pod_ip: self.ip.as_deref(),
            host_ip: &self.ctx.node_ip,
            start_time: &self.start_time,
            qos_class: status::qos_class(&self.pod),
            previous: &previous,
            now: &now(),
        };
        let st = status::pod_status(&facts);
        if st == self.last_status && !terminated && self.events.is_empty() {
            return;
        }
        self.last_status = st.clone();
        let report = Report {
            namespace: self.pod["metadata"]["namespace"].as_str().unwrap_or("").into(),
            name: self.pod["metadata"]["name"].as_str().unwrap_or("").into(),
            uid: self.uid.clone(),
            status: st,
            terminated,
            events: std::mem::take(&mut self.events),
        };
        let _ = self.ctx.reports.send(report).await;
    }

    /// Holds SIGTERM while this node's Service rules still send new connections to the pod. The
    /// Endpoints controller drops a terminating pod at once, so this is usually a few
    /// milliseconds; then a short drain lets other nodes' rules follow and requests already
    /// accepted finish. Kubernetes leaves this race to a preStop sleep; here it is built in.
    async fn leave_service_rules(&self, deadline: tokio::time::Instant) {
        /// Longest wait for the rules: the control plane may be unreachable.
        const MAX_WAIT: Duration = Duration::from_secs(5);
        /// Time for the other nodes' rules and for in-flight requests. 300 ms was not always
        /// enough with the whole test suite loading two cores: a node's rules lagged the pod's
        /// own node by more, and one request in ~8,000 was refused. Nothing tells an agent when
        /// the other nodes have applied a change, so this is a margin, inside the grace period.
        const DRAIN: Duration = Duration::from_secs(1);
        let Some(ip) = self.ip.as_deref().and_then(|s| s.parse::<std::net::Ipv4Addr>().ok()) else { return };
        let mut targeted = self.ctx.targeted.clone();
        if !targeted.borrow().contains(&ip) {
            return;
        }
        let started = tokio::time::Instant::now();
        let wait_until = deadline.min(started + MAX_WAIT);
        let left = tokio::time::timeout_at(wait_until, targeted.wait_for(|set| !set.contains(&ip))).await.is_ok();
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + DRAIN)).await;
        info!(left_rules = left, waited = ?started.elapsed(), "pod out of the Service rules");
    }

    /// Graceful stop: SIGTERM, the grace period, SIGKILL; then everything the pod had is removed
    /// and, if the API still holds the pod, it is told the pod is gone.
    async fn terminate(&mut self, gone_from_api: bool) {
        let grace = self.pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .or_else(|| self.pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0) as u64;
        let running: Vec<(String, Arc<Container>)> =
            self.slots.iter().filter_map(|(n, s)| s.running.clone().map(|c| (n.clone(), c))).collect();
        // The grace period counts from here, the drain below included (as preStop hooks are).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(grace);
        if grace > 0 && !running.is_empty() {
            self.leave_service_rules(deadline).await;
        }
        info!(grace, containers = running.len(), "stopping pod");
        for (name, _) in &running {
            self.events.push(super::Event { warning: false, reason: "Killing", message: format!("Stopping container {name}") });
        }
        for (_, c) in &running {
            let _ = c.signal(if grace == 0 { Signal::SIGKILL } else { Signal::SIGTERM });
        }
        for (name, c) in &running {
            if tokio::time::timeout_at(deadline, c.wait()).await.is_err() {
                info!(container = %name, "grace period over; killing");
                let _ = c.signal(Signal::SIGKILL);
                let _ = c.wait().await;
            }
        }
        let ctx = self.ctx.clone();
        let uid = self.uid.clone();
        self.sandbox = None;
        let _ = tokio::task::spawn_blocking(move || cleanup_leftovers(&ctx, &uid)).await;
        if !gone_from_api {
            for s in self.slots.values_mut() {
                s.running = None;
            }
            self.report(true).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_keys_are_namespace_slash_name() {
        assert_eq!(pod_key(&json!({"metadata": {"namespace": "team", "name": "web-1"}})), "team/web-1");
    }
}

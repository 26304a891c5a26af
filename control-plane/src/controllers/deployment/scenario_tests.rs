//! Whole rollouts against a tiny in-memory cluster: an API that applies the actions (with
//! resourceVersion checks), a ReplicaSet controller that creates/deletes pods, and pods that turn
//! ready after a delay. Invariants are checked after every step.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::util::*;
use super::{Action, Snapshot, reconcile, requeue_after};

struct SimPod {
    name: String,
    rs_uid: String,
    labels: BTreeMap<String, String>,
    ready_at: Option<Timestamp>,
    terminating_since: Option<Timestamp>,
}

struct Sim {
    now: Timestamp,
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<SimPod>,
    next_id: u64,
    /// Seconds until a new pod is ready; None: never (a broken template).
    ready_delay: Option<i64>,
    events: Vec<String>,
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn deployment(replicas: i32, strategy: DeploymentStrategy) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("web-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: None,
            },
            strategy: Some(strategy),
            template: template("nginx:1"),
            ..Default::default()
        }),
        status: None,
    }
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn rolling(surge: IntOrString, unavailable: IntOrString) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some(ROLLING_UPDATE.into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    }
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

impl Sim {
    fn new(d: Deployment, ready_delay: Option<i64>) -> Self {
        Sim {
            now: "2024-01-01T00:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            d,
            rss: vec![],
            pods: vec![],
            next_id: 0,
            ready_delay,
            events: vec![],
        }
    }

    fn spec_mut(&mut self) -> &mut DeploymentSpec {
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
        self.d.spec.get_or_insert_with(Default::default)
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn pod_objects(&self) -> Vec<(String, Pod)> {
        self.pods
            .iter()
            .map(|p| {
                let ready = p.ready_at.filter(|t| *t <= self.now);
                let pod = Pod {
                    metadata: ObjectMeta {
                        name: Some(p.name.clone()),
                        labels: Some(p.labels.clone()),
                        deletion_timestamp: p.terminating_since.map(Time),
                        ..Default::default()
                    },
                    spec: None,
                    status: Some(PodStatus {
                        phase: Some("Running".into()),
                        conditions: Some(vec![PodCondition {
                            type_: "Ready".into(),
                            status: if ready.is_some() { "True" } else { "False" }.into(),
                            last_transition_time: ready.map(Time),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                };
                (p.rs_uid.clone(), pod)
            })
            .collect()
    }

    fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        let pods = self.pod_objects();
        let mut pods_by_rs: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for (uid, pod) in &pods {
            pods_by_rs.entry(uid.clone()).or_default().push(pod);
        }
        let s = Snapshot {
            deployment: &self.d,
            replica_sets: self.rss.iter().collect(),
            pods_by_rs,
            now: self.now,
        };
        f(&s)
    }

    fn reconcile(&self) -> Vec<Action> {
        self.with_snapshot(reconcile)
    }

    /// The API server's side of the actions, including resourceVersion preconditions.
    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::CreateReplicaSet(mut rs) => {
                    assert!(
                        !self.rss.iter().any(|r| r.metadata.name == rs.metadata.name),
                        "create of an existing name"
                    );
                    rs.metadata.uid = Some(format!("rs-{}", self.id()));
                    rs.metadata.creation_timestamp = Some(Time(self.now));
                    rs.metadata.resource_version = Some("1".into());
                    rs.metadata.generation = Some(1);
                    self.rss.push(rs);
                }
                Action::UpdateReplicaSet(rs) => {
                    let current = self
                        .rss
                        .iter_mut()
                        .find(|r| r.metadata.name == rs.metadata.name)
                        .expect("update of a missing RS");
                    assert_eq!(
                        current.metadata.resource_version, rs.metadata.resource_version,
                        "stale update"
                    );
                    let rv: u64 = current
                        .metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or("0")
                        .parse()
                        .unwrap_or(0);
                    if current.spec != rs.spec {
                        current.metadata.generation =
                            Some(current.metadata.generation.unwrap_or(0) + 1);
                    }
                    current.metadata.annotations = rs.metadata.annotations;
                    current.metadata.labels = rs.metadata.labels;
                    current.spec = rs.spec;
                    current.metadata.resource_version = Some((rv + 1).to_string());
                }
                Action::DeleteReplicaSet { name, uid } => {
                    self.rss
                        .retain(|r| r.metadata.name.as_deref() != Some(&name));
                    self.pods.retain(|p| p.rs_uid != uid);
                }
                Action::UpdateDeploymentStatus(status) => self.d.status = Some(status),
                Action::UpdateDeploymentAnnotations(a) => self.d.metadata.annotations = Some(a),
                Action::Event { message, .. } => self.events.push(message),
            }
        }
    }

    /// ReplicaSet controller: converge pod counts (deleting not-ready, then most recently ready
    /// pods first) and publish the status. Deleted pods linger one step as terminating.
    fn rs_controller(&mut self) {
        let now = self.now;
        self.pods
            .retain(|p| p.terminating_since.is_none_or(|t| t >= now));
        for i in 0..self.rss.len() {
            let uid = self.rss[i].metadata.uid.clone().unwrap_or_default();
            let want = rs_replicas(&self.rss[i]);
            let mut active: Vec<usize> = (0..self.pods.len())
                .filter(|&p| self.pods[p].rs_uid == uid && self.pods[p].terminating_since.is_none())
                .collect();
            let have = active.len() as i32;
            for _ in have..want {
                let id = self.id();
                let name = format!("{}-{id}", rs_name(&self.rss[i]));
                let labels = self.rss[i]
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let ready_at = self.ready_delay.map(|d| now + SignedDuration::from_secs(d));
                self.pods.push(SimPod {
                    name,
                    rs_uid: uid.clone(),
                    labels,
                    ready_at,
                    terminating_since: None,
                });
            }
            if have > want {
                // Not ready first (never-ready counts as latest), then the most recently ready.
                active.sort_by_key(|&p| {
                    std::cmp::Reverse(
                        self.pods[p]
                            .ready_at
                            .filter(|t| *t <= now)
                            .unwrap_or(Timestamp::MAX),
                    )
                });
                for &p in active.iter().take((have - want) as usize) {
                    self.pods[p].terminating_since = Some(now);
                }
            }
        }
        self.publish_rs_status();
    }

    fn publish_rs_status(&mut self) {
        let now = self.now;
        let min_ready = SignedDuration::from_secs(i64::from(
            self.d
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0),
        ));
        for rs in &mut self.rss {
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let active: Vec<&SimPod> = self
                .pods
                .iter()
                .filter(|p| p.rs_uid == uid && p.terminating_since.is_none())
                .collect();
            let ready = active
                .iter()
                .filter(|p| p.ready_at.is_some_and(|t| t <= now))
                .count() as i32;
            let available = active
                .iter()
                .filter(|p| p.ready_at.is_some_and(|t| t + min_ready <= now))
                .count() as i32;
            rs.status = Some(ReplicaSetStatus {
                replicas: active.len() as i32,
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
    }

    /// One controller-manager round: deployment controller, ReplicaSet controller, a second
    /// passes, pods turn ready.
    fn step(&mut self) -> usize {
        let actions = self.reconcile();
        let n = actions.len();
        self.apply(actions);
        self.rs_controller();
        self.now += SignedDuration::from_secs(1);
        self.publish_rs_status();
        n
    }

    fn active_pods(&self) -> i32 {
        self.pods
            .iter()
            .filter(|p| p.terminating_since.is_none())
            .count() as i32
    }

    fn available_pods(&self) -> i32 {
        self.rss.iter().map(rs_available).sum()
    }

    fn rs_by_revision(&self, revision: &str) -> &ReplicaSet {
        self.rss
            .iter()
            .find(|r| {
                r.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REVISION_ANNOTATION))
                    .map(String::as_str)
                    == Some(revision)
            })
            .expect("RS with revision")
    }

    /// Steps until `kubectl rollout status` succeeds and a further pass does nothing, checking
    /// `invariant` after every step.
    fn run_to_completion(&mut self, max_steps: usize, mut invariant: impl FnMut(&Sim)) -> usize {
        for n in 0..max_steps {
            let acted = self.step();
            invariant(self);
            if acted == 0 && rollout_status(&self.d) == Ok(true) {
                return n;
            }
        }
        panic!("rollout did not complete: {:?}", rollout_status(&self.d));
    }
}

/// The checks of kubectl's DeploymentStatusViewer: Ok(true) when "successfully rolled out".
fn rollout_status(d: &Deployment) -> Result<bool, String> {
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok(false);
    }
    if get_condition(&status, PROGRESSING).and_then(|c| c.reason.as_deref())
        == Some(TIMED_OUT_REASON)
    {
        return Err("exceeded its progress deadline".into());
    }
    let n = |v: Option<i32>| v.unwrap_or(0);
    let updated = n(status.updated_replicas);
    Ok(updated >= d_replicas(d)
        && n(status.replicas) <= updated
        && n(status.available_replicas) >= updated)
}

fn condition_reason(d: &Deployment, type_: &str) -> Option<(String, String)> {
    let status = d.status.as_ref()?;
    let c = get_condition(status, type_)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn assert_rolled_out(sim: &Sim, revision: &str) {
    let d = &sim.d;
    let status = d.status.clone().unwrap_or_default();
    let replicas = d_replicas(d);
    assert_eq!(status.observed_generation, d.metadata.generation);
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (
            Some(replicas),
            Some(replicas),
            Some(replicas),
            Some(replicas)
        )
    );
    assert_eq!(status.unavailable_replicas, None);
    assert_eq!(
        condition_reason(d, AVAILABLE),
        Some(("True".into(), MINIMUM_REPLICAS_AVAILABLE.into()))
    );
    assert_eq!(
        condition_reason(d, PROGRESSING),
        Some(("True".into(), NEW_RS_AVAILABLE_REASON.into()))
    );
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .map(String::as_str),
        Some(revision)
    );
    let new_rs = sim.rs_by_revision(revision);
    assert_eq!(rs_replicas(new_rs), replicas);
    for rs in sim.rss.iter().filter(|r| !std::ptr::eq(*r, new_rs)) {
        assert_eq!(
            (rs_replicas(rs), rs_status_replicas(rs)),
            (0, 0),
            "old RS {} scaled down",
            rs_name(rs)
        );
    }
}

fn rolling_update_keeps_its_bounds(
    surge: IntOrString,
    unavailable: IntOrString,
    max_total: i32,
    min_available: i32,
    delay: i64,
) {
    let mut sim = Sim::new(deployment(10, rolling(surge, unavailable)), Some(delay));
    sim.run_to_completion(100, |_| {});
    assert_rolled_out(&sim, "1");

    sim.spec_mut().template = template("nginx:2");
    let steps = sim.run_to_completion(200, |s| {
        let total: i32 = s.rss.iter().map(rs_replicas).sum();
        assert!(total <= max_total, "{total} replicas exceed {max_total}");
        assert!(
            s.active_pods() <= max_total,
            "{} pods exceed {max_total}",
            s.active_pods()
        );
        assert!(
            s.available_pods() >= min_available,
            "{} available < {min_available}",
            s.available_pods()
        );
    });
    assert!(steps > 1);
    assert_rolled_out(&sim, "2");
    assert_eq!(sim.rss.len(), 2);
    assert!(sim.reconcile().is_empty(), "a finished rollout is quiet");
}

#[test]
fn rolling_update_25_percent_stays_within_surge_and_unavailability() {
    rolling_update_keeps_its_bounds(pct("25%"), pct("25%"), 13, 8, 2);
}

#[test]
fn rolling_update_25_percent_with_instantly_available_pods() {
    rolling_update_keeps_its_bounds(pct("25%"), pct("25%"), 13, 8, 0);
}

#[test]
fn rolling_update_one_surge_zero_unavailable_never_loses_capacity() {
    rolling_update_keeps_its_bounds(IntOrString::Int(1), IntOrString::Int(0), 11, 10, 3);
}

#[test]
fn rolling_update_one_surge_zero_unavailable_with_instantly_available_pods() {
    rolling_update_keeps_its_bounds(IntOrString::Int(1), IntOrString::Int(0), 11, 10, 0);
}

#[test]
fn first_rollout_step_scales_like_upstream_and_says_so() {
    let mut sim = Sim::new(deployment(10, rolling(pct("25%"), pct("25%"))), Some(2));
    sim.run_to_completion(100, |_| {});
    sim.spec_mut().template = template("nginx:2");
    sim.events.clear();
    sim.step();
    let old = rs_name(sim.rs_by_revision("1")).to_string();
    let new = rs_name(sim.rs_by_revision("2")).to_string();
    // One pass creates the new RS at maxSurge and, since the new pods count as unavailable,
    // scales the old RS down by exactly maxUnavailable.
    assert_eq!(
        sim.events,
        vec![
            format!("Scaled up replica set {new} from 0 to 3"),
            format!("Scaled down replica set {old} from 10 to 8"),
        ]
    );
    assert_eq!(
        condition_reason(&sim.d, PROGRESSING),
        Some(("True".into(), NEW_REPLICA_SET_REASON.into()))
    );
    sim.step();
    assert_eq!(
        condition_reason(&sim.d, PROGRESSING),
        Some(("True".into(), REPLICA_SET_UPDATED_REASON.into()))
    );
    let hash = new.trim_start_matches("web-");
    let new_rs = sim.rs_by_revision("2");
    assert_eq!(
        new_rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY))
            .map(String::as_str),
        Some(hash)
    );
}

#[test]
fn undo_reuses_the_old_replica_set_and_bumps_its_revision() {
    let mut sim = Sim::new(deployment(4, rolling(pct("25%"), pct("25%"))), Some(1));
    sim.run_to_completion(100, |_| {});
    let v1_name = rs_name(sim.rs_by_revision("1")).to_string();
    sim.spec_mut().template = template("nginx:2");
    sim.run_to_completion(100, |_| {});
    // kubectl rollout undo copies revision 1's template back into the Deployment.
    sim.spec_mut().template = template("nginx:1");
    sim.run_to_completion(100, |_| {});
    assert_rolled_out(&sim, "3");
    let reused = sim.rs_by_revision("3");
    assert_eq!(rs_name(reused), v1_name);
    assert_eq!(
        reused
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_HISTORY_ANNOTATION))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(sim.rss.len(), 2);
}

#[test]
fn rollout_restart_is_a_template_change() {
    let mut sim = Sim::new(deployment(3, rolling(pct("25%"), pct("25%"))), Some(1));
    sim.run_to_completion(100, |_| {});
    let annotations = [(
        "kubectl.kubernetes.io/restartedAt".to_string(),
        "2024-01-01T00:00:00Z".to_string(),
    )];
    sim.spec_mut()
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations = Some(annotations.into());
    sim.run_to_completion(100, |_| {});
    assert_rolled_out(&sim, "2");
}

#[test]
fn recreate_waits_for_old_pods_to_be_gone() {
    let recreate = DeploymentStrategy {
        type_: Some(RECREATE.into()),
        rolling_update: None,
    };
    let mut sim = Sim::new(deployment(3, recreate), Some(1));
    sim.run_to_completion(100, |_| {});
    let old_uid = sim.rs_by_revision("1").metadata.uid.clone();
    sim.spec_mut().template = template("nginx:2");
    sim.run_to_completion(100, |s| {
        let old_pods = s
            .pods
            .iter()
            .filter(|p| Some(&p.rs_uid) == old_uid.as_ref())
            .count();
        let new_pods = s
            .pods
            .iter()
            .filter(|p| Some(&p.rs_uid) != old_uid.as_ref())
            .count();
        assert!(old_pods == 0 || new_pods == 0, "old and new pods coexist");
    });
    assert_rolled_out(&sim, "2");
    assert!(
        sim.events
            .iter()
            .any(|e| e.starts_with("Scaled down replica set web-") && e.ends_with("from 3 to 0"))
    );
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut sim = Sim::new(deployment(10, rolling(pct("25%"), pct("25%"))), Some(1));
    sim.run_to_completion(100, |_| {});
    sim.ready_delay = None; // the new template never becomes ready
    sim.spec_mut().template = template("broken");
    for _ in 0..5 {
        sim.step();
    }
    let (old, new) = (sim.rs_by_revision("1"), sim.rs_by_revision("2"));
    assert_eq!(
        (rs_replicas(old), rs_replicas(new)),
        (8, 5),
        "stuck: 13 pods, 5 of them unavailable"
    );

    sim.spec_mut().replicas = Some(20);
    sim.step();
    let (old, new) = (sim.rs_by_revision("1"), sim.rs_by_revision("2"));
    assert_eq!(
        (rs_replicas(old), rs_replicas(new)),
        (15, 10),
        "20 + 25% surge shared 8:5"
    );
    for rs in [old, new] {
        let a = rs.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(
            a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
            Some("20")
        );
        assert_eq!(
            a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
            Some("25")
        );
    }
}

#[test]
fn paused_deployments_scale_but_do_not_roll_out() {
    let mut sim = Sim::new(deployment(4, rolling(pct("25%"), pct("25%"))), Some(1));
    sim.run_to_completion(100, |_| {});
    sim.spec_mut().paused = Some(true);
    sim.step();
    assert_eq!(
        condition_reason(&sim.d, PROGRESSING),
        Some(("Unknown".into(), PAUSED_DEPLOY_REASON.into()))
    );

    sim.spec_mut().template = template("nginx:2");
    sim.spec_mut().replicas = Some(6);
    for _ in 0..5 {
        sim.step();
    }
    assert_eq!(sim.rss.len(), 1, "no new ReplicaSet while paused");
    assert_eq!(rs_replicas(&sim.rss[0]), 6);
    assert_eq!(
        sim.d.status.as_ref().and_then(|s| s.observed_generation),
        sim.d.metadata.generation
    );

    sim.spec_mut().paused = Some(false);
    sim.step();
    assert!(sim.rss.len() == 2, "rollout resumes");
    sim.run_to_completion(100, |_| {});
    assert_rolled_out(&sim, "2");
}

#[test]
fn resuming_records_deployment_resumed() {
    let mut sim = Sim::new(deployment(2, rolling(pct("25%"), pct("25%"))), Some(1));
    sim.run_to_completion(100, |_| {});
    sim.spec_mut().paused = Some(true);
    sim.step();
    sim.spec_mut().paused = Some(false);
    // The resumed condition is recorded, then replaced by the rollout status of the same pass.
    let actions = sim.reconcile();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::UpdateDeploymentStatus(_)))
    );
    sim.apply(actions);
    assert_ne!(
        condition_reason(&sim.d, PROGRESSING),
        Some(("Unknown".into(), PAUSED_DEPLOY_REASON.into()))
    );
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let mut d = deployment(3, rolling(IntOrString::Int(1), IntOrString::Int(0)));
    if let Some(s) = d.spec.as_mut() {
        s.progress_deadline_seconds = Some(10);
    }
    let mut sim = Sim::new(d, Some(0));
    sim.run_to_completion(100, |_| {});
    sim.ready_delay = None;
    sim.spec_mut().template = template("broken");
    sim.step();
    sim.step();
    let wait = sim
        .with_snapshot(requeue_after)
        .expect("a progress check is scheduled");
    assert!(
        wait > std::time::Duration::from_secs(5) && wait <= std::time::Duration::from_secs(11),
        "{wait:?}"
    );
    for _ in 0..15 {
        sim.step();
    }
    let new = rs_name(sim.rs_by_revision("2")).to_string();
    let status = sim.d.status.clone().unwrap_or_default();
    let c = get_condition(&status, PROGRESSING).expect("Progressing");
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some(TIMED_OUT_REASON))
    );
    assert_eq!(
        c.message.as_deref(),
        Some(format!("ReplicaSet \"{new}\" has timed out progressing.").as_str())
    );
    assert!(rollout_status(&sim.d).is_err());
    assert_eq!(
        sim.with_snapshot(requeue_after),
        None,
        "no further progress checks"
    );
    // maxUnavailable 0: the old pods keep serving.
    assert_eq!(sim.available_pods(), 3);
}

#[test]
fn revision_history_limit_deletes_the_oldest_replica_sets() {
    let mut d = deployment(2, rolling(pct("25%"), pct("25%")));
    if let Some(s) = d.spec.as_mut() {
        s.revision_history_limit = Some(1);
    }
    let mut sim = Sim::new(d, Some(0));
    sim.run_to_completion(100, |_| {});
    for image in ["nginx:2", "nginx:3", "nginx:4"] {
        sim.spec_mut().template = template(image);
        sim.run_to_completion(100, |_| {});
    }
    assert_rolled_out(&sim, "4");
    let mut revisions: Vec<i64> = sim.rss.iter().filter_map(revision).collect();
    revisions.sort();
    assert_eq!(revisions, vec![3, 4]);
}

#[test]
fn min_ready_seconds_delays_availability_and_schedules_a_wakeup() {
    let mut d = deployment(2, rolling(IntOrString::Int(1), IntOrString::Int(0)));
    if let Some(s) = d.spec.as_mut() {
        s.min_ready_seconds = Some(5);
    }
    let mut sim = Sim::new(d, Some(0));
    sim.step();
    sim.step();
    assert_eq!(sim.available_pods(), 0, "ready but not yet available");
    let wait = sim
        .with_snapshot(requeue_after)
        .expect("wake up when pods turn available");
    assert!(wait <= std::time::Duration::from_secs(5), "{wait:?}");
    sim.run_to_completion(100, |_| {});
    assert_rolled_out(&sim, "1");
}

#[test]
fn scaling_to_zero_and_back() {
    let mut sim = Sim::new(deployment(3, rolling(pct("25%"), pct("25%"))), Some(0));
    sim.run_to_completion(100, |_| {});
    sim.spec_mut().replicas = Some(0);
    sim.run_to_completion(100, |_| {});
    assert_eq!(sim.active_pods(), 0);
    sim.spec_mut().replicas = Some(5);
    sim.run_to_completion(100, |_| {});
    assert_rolled_out(&sim, "1");
    assert_eq!(sim.active_pods(), 5);
}

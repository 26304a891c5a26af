//! The Deployment controller (pkg/controller/deployment) as pure functions: `reconcile` looks at
//! one [`Snapshot`] and returns the writes upstream's syncDeployment would have made, in order.
//!
//! Upstream performs each write immediately and continues with the object the API returned; here
//! every write goes into a working copy that later steps read, and repeated writes to one
//! ReplicaSet are folded into a single action so the caller's resourceVersion CAS stays valid.
//! Writes to the Deployment's status and annotations are folded into one action each, emitted
//! after the ReplicaSet actions.

mod hash;
mod progress;
mod recreate;
mod rolling;
pub mod run;
mod sync;
pub mod util;

#[cfg(test)]
mod scenario_tests;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use hash::{
    DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, compute_hash, equal_ignore_hash, safe_encode_string,
};
pub use util::{Error, Result, selector_matches};

/// Everything the controller knows about one Deployment at one moment.
pub struct Snapshot<'a> {
    pub deployment: &'a Deployment,
    /// ReplicaSets whose controllerRef is this Deployment.
    pub replica_sets: Vec<&'a ReplicaSet>,
    /// Pods keyed by the uid of the owning ReplicaSet: Recreate waits for old pods to be gone.
    pub pods_by_rs: BTreeMap<String, Vec<&'a Pod>>,
    pub now: Timestamp,
}

/// What to do; the caller performs the actions in order against the API and re-runs reconcile
/// on the next change.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateReplicaSet(ReplicaSet),
    /// The full new object, resourceVersion kept from the input so the write is a CAS.
    UpdateReplicaSet(ReplicaSet),
    DeleteReplicaSet {
        name: String,
        uid: String,
    },
    UpdateDeploymentStatus(DeploymentStatus),
    /// The Deployment's complete new annotation map (carries deployment.kubernetes.io/revision).
    UpdateDeploymentAnnotations(BTreeMap<String, String>),
    Event {
        type_: String,
        reason: String,
        message: String,
    },
}

/// Computes the actions that bring the Deployment one step closer to its spec.
pub fn reconcile(s: &Snapshot) -> Vec<Action> {
    reconcile_reporting_errors(s).0
}

/// Like [`reconcile`], also saying why the pass stopped early. An error (unsupported strategy
/// type, malformed maxSurge) ends the pass like upstream's early return, keeping the writes
/// made so far; validation normally rejects such objects.
pub fn reconcile_reporting_errors(s: &Snapshot) -> (Vec<Action>, Option<Error>) {
    let mut ctx = Ctx::new(s);
    let error = match sync::sync_deployment(&mut ctx) {
        Err(Halt::Invalid(e)) => Some(e),
        Ok(()) | Err(Halt::HashCollision) => None,
    };
    (ctx.finish(), error)
}

/// When to look again even without changes: upstream's requeueStuckDeployment (progress deadline
/// checks, computed on the status this pass produces) and, with minReadySeconds, the moment the
/// next ready pod becomes available.
pub fn requeue_after(s: &Snapshot) -> Option<Duration> {
    let mut ctx = Ctx::new(s);
    let _ = sync::sync_deployment(&mut ctx);
    let status = ctx.d.status.clone().unwrap_or_default();
    let stuck = if ctx.rollout_status_synced {
        // Upstream adds a second to avoid waking up a few milliseconds before the deadline.
        progress::requeue_stuck_deployment(&ctx.d, &status, s.now).map(|after| {
            if after.is_zero() {
                after
            } else {
                after + Duration::from_secs(1)
            }
        })
    } else {
        None
    };
    [stuck, progress::next_pod_available_after(&ctx, s.now)]
        .into_iter()
        .flatten()
        .min()
}

/// The status to write after creating a ReplicaSet failed with AlreadyExists for an object that
/// is not this Deployment's new ReplicaSet (a hash collision): collisionCount is bumped so that
/// the next reconcile derives a different name.
pub fn status_after_hash_collision(d: &Deployment) -> DeploymentStatus {
    let mut status = d.status.clone().unwrap_or_default();
    status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
    status
}

/// Why a pass stopped before its end.
#[derive(Debug)]
pub(crate) enum Halt {
    Invalid(Error),
    /// The new ReplicaSet's name is taken; collisionCount was bumped.
    HashCollision,
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Invalid(e)
    }
}

pub(crate) type Step<T = ()> = std::result::Result<T, Halt>;

/// Working state of one pass: a defaulted copy of the Deployment whose status and annotations
/// the steps mutate, copies of the ReplicaSets (addressed by index), and the actions so far.
pub(crate) struct Ctx<'a> {
    pub d: Deployment,
    pub rss: Vec<ReplicaSet>,
    pub pods_by_rs: BTreeMap<String, Vec<&'a Pod>>,
    pub now: Timestamp,
    pub rollout_status_synced: bool,
    original: &'a Deployment,
    actions: Vec<Action>,
}

impl<'a> Ctx<'a> {
    fn new(s: &Snapshot<'a>) -> Self {
        let d = with_defaults(s.deployment);
        let selector = d
            .spec
            .as_ref()
            .map(|sp| sp.selector.clone())
            .unwrap_or_default();
        // Upstream's ReplicaSet/pod claiming releases owned objects the selector no longer
        // selects, so they never reach the sync logic.
        let rss: Vec<ReplicaSet> = s
            .replica_sets
            .iter()
            .filter(|rs| {
                selector_matches(
                    &selector,
                    rs.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                )
            })
            .map(|rs| (*rs).clone())
            .collect();
        let pods_by_rs = rss
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .map(|uid| {
                let pods = s
                    .pods_by_rs
                    .get(&uid)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|p| {
                        selector_matches(
                            &selector,
                            p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                        )
                    });
                (uid.clone(), pods.collect())
            })
            .collect();
        Ctx {
            d,
            rss,
            pods_by_rs,
            now: s.now,
            rollout_status_synced: false,
            original: s.deployment,
            actions: Vec::new(),
        }
    }

    pub fn refs(&self, idx: &[usize]) -> Vec<&ReplicaSet> {
        idx.iter().filter_map(|&i| self.rss.get(i)).collect()
    }

    pub fn index_of(&self, rs: &ReplicaSet) -> Option<usize> {
        self.rss.iter().position(|r| std::ptr::eq(r, rs))
    }

    pub fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    pub fn annotations_mut(&mut self) -> &mut BTreeMap<String, String> {
        self.d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
    }

    pub fn event(&mut self, type_: &str, reason: &str, message: String) {
        self.actions.push(Action::Event {
            type_: type_.into(),
            reason: reason.into(),
            message,
        });
    }

    pub fn create_rs(&mut self, rs: ReplicaSet) -> usize {
        self.actions.push(Action::CreateReplicaSet(rs.clone()));
        self.rss.push(rs);
        self.rss.len() - 1
    }

    /// Records the working copy of RS `idx` as written, folding into an earlier create/update.
    pub fn write_rs(&mut self, idx: usize) {
        let Some(rs) = self.rss.get(idx).cloned() else {
            return;
        };
        let same = |o: &ReplicaSet| o.metadata.name == rs.metadata.name;
        for action in self.actions.iter_mut() {
            match action {
                Action::CreateReplicaSet(o) | Action::UpdateReplicaSet(o) if same(o) => {
                    *o = rs;
                    return;
                }
                _ => {}
            }
        }
        self.actions.push(Action::UpdateReplicaSet(rs));
    }

    pub fn delete_rs(&mut self, idx: usize) {
        if let Some(rs) = self.rss.get(idx) {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            self.actions.push(Action::DeleteReplicaSet { name, uid });
        }
    }

    fn finish(self) -> Vec<Action> {
        let mut actions = self.actions;
        let annotations = self.d.metadata.annotations.clone().unwrap_or_default();
        if annotations
            != self
                .original
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
        {
            actions.push(Action::UpdateDeploymentAnnotations(annotations));
        }
        let status = self.d.status.clone().unwrap_or_default();
        if normalized(&status) != normalized(&self.original.status.clone().unwrap_or_default()) {
            actions.push(Action::UpdateDeploymentStatus(status));
        }
        actions
    }
}

/// Go's omitempty: an explicit 0 or [] and an absent field are the same status.
fn normalized(s: &DeploymentStatus) -> DeploymentStatus {
    let nz = |v: Option<i32>| v.filter(|n| *n != 0);
    DeploymentStatus {
        available_replicas: nz(s.available_replicas),
        collision_count: s.collision_count,
        conditions: s.conditions.clone().filter(|c| !c.is_empty()),
        observed_generation: s.observed_generation.filter(|g| *g != 0),
        ready_replicas: nz(s.ready_replicas),
        replicas: nz(s.replicas),
        terminating_replicas: s.terminating_replicas,
        unavailable_replicas: nz(s.unavailable_replicas),
        updated_replicas: nz(s.updated_replicas),
    }
}

/// apps/v1 defaulting (SetDefaults_Deployment), in case the caller hands over an object that did
/// not pass through the API server's defaulting.
pub(crate) fn with_defaults(d: &Deployment) -> Deployment {
    let mut d = d.clone();
    let spec: &mut DeploymentSpec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy: &mut DeploymentStrategy = spec.strategy.get_or_insert_with(Default::default);
    let type_ = strategy
        .type_
        .get_or_insert_with(|| util::ROLLING_UPDATE.to_string());
    if type_ == util::ROLLING_UPDATE {
        let ru: &mut RollingUpdateDeployment =
            strategy.rolling_update.get_or_insert_with(Default::default);
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    d
}

//! Patch metadata of the built-in kinds: which lists merge (and by which key) and which fields
//! carry `retainKeys`, transcribed from the `patchStrategy` / `patchMergeKey` struct tags of
//! k8s.io/api (core/v1, apps/v1, batch/v1) and k8s.io/apimachinery (meta/v1).
//!
//! Paths are object field names from the root of the object; list fields contribute their own
//! name only, so the `env` of any container of a Deployment is
//! `["spec", "template", "spec", "containers", "env"]`. Anything not described here (unknown
//! kinds, unknown fields, maps such as labels) is a plain field: its lists are replaced whole.

/// How a strategic merge patch combines a list in the patch with the list in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the object's list.
    Atomic,
    /// Elements are merged: maps by the value of `key`, primitives as a set (`key: None`).
    Merge { key: Option<&'static str> },
}

/// The strategy for the list at `path` in an object of `kind`; `Atomic` when the path is unknown.
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    lookup(kind, path).map_or(ListStrategy::Atomic, |f| f.list)
}

/// Whether the field at `path` has `patchStrategy: retainKeys` (for a list: its elements do).
pub fn retain_keys(kind: &str, path: &[&str]) -> bool {
    lookup(kind, path).is_some_and(|f| f.retain_keys)
}

/// Whether this module describes `kind`. Other kinds still patch, with every list atomic.
pub fn is_known_kind(kind: &str) -> bool {
    root(kind).is_some()
}

/// Struct types of the API that lead to a list with a patch strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// Top-level kinds that only have `metadata` to offer (ConfigMap, Event, Lease, ...).
    PlainKind,
    ServiceAccount,
    Pod,
    PodTemplate,
    Service,
    Node,
    Namespace,
    Deployment,
    /// ReplicaSet, StatefulSet, DaemonSet and ReplicationController: a pod template in the
    /// spec and conditions in the status.
    Workload,
    Job,
    CronJob,
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    PodStatus,
    ContainerStatus,
    ServiceSpec,
    NodeSpec,
    NodeStatus,
    DeploymentSpec,
    WorkloadSpec,
    JobSpec,
    CronJobSpec,
    JobTemplateSpec,
    /// A status whose only patchable list is `conditions`, merged by `type`.
    ConditionedStatus,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    /// The struct type of the field, or of a list's elements; `None` when nothing below matters.
    ty: Option<Ty>,
    list: ListStrategy,
    retain_keys: bool,
}

fn root(kind: &str) -> Option<Ty> {
    Some(match kind {
        "Pod" => Ty::Pod,
        "PodTemplate" => Ty::PodTemplate,
        "Service" => Ty::Service,
        "Node" => Ty::Node,
        "Namespace" => Ty::Namespace,
        "Deployment" => Ty::Deployment,
        "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ReplicationController" => Ty::Workload,
        "Job" => Ty::Job,
        "CronJob" => Ty::CronJob,
        "ServiceAccount" => Ty::ServiceAccount,
        "Endpoints" | "Event" | "Lease" | "ConfigMap" | "Secret" | "Scale" => Ty::PlainKind,
        _ => return None,
    })
}

fn lookup(kind: &str, path: &[&str]) -> Option<Field> {
    let (last, parents) = path.split_last()?;
    let mut ty = root(kind)?;
    for name in parents {
        ty = field(ty, name)?.ty?;
    }
    field(ty, last)
}

const fn object(ty: Ty) -> Field {
    Field {
        ty: Some(ty),
        list: ListStrategy::Atomic,
        retain_keys: false,
    }
}

const fn merged_by(key: &'static str, elements: Option<Ty>) -> Field {
    Field {
        ty: elements,
        list: ListStrategy::Merge { key: Some(key) },
        retain_keys: false,
    }
}

const fn atomic_list(elements: Ty) -> Field {
    Field {
        ty: Some(elements),
        list: ListStrategy::Atomic,
        retain_keys: false,
    }
}

const SET: Field = Field {
    ty: None,
    list: ListStrategy::Merge { key: None },
    retain_keys: false,
};

const fn retaining(field: Field) -> Field {
    Field {
        retain_keys: true,
        ..field
    }
}

fn field(ty: Ty, name: &str) -> Option<Field> {
    use Ty::*;
    let has_metadata = matches!(
        ty,
        PlainKind
            | ServiceAccount
            | Pod
            | PodTemplate
            | Service
            | Node
            | Namespace
            | Deployment
            | Workload
            | Job
            | CronJob
            | PodTemplateSpec
            | JobTemplateSpec
    );
    if name == "metadata" && has_metadata {
        return Some(object(ObjectMeta));
    }
    Some(match (ty, name) {
        (ObjectMeta, "ownerReferences") => merged_by("uid", None),
        (ObjectMeta, "finalizers") => SET,

        (Pod, "spec") | (PodTemplateSpec, "spec") => object(PodSpec),
        (Pod, "status") => object(PodStatus),
        (PodTemplate, "template")
        | (DeploymentSpec, "template")
        | (WorkloadSpec, "template")
        | (JobSpec, "template") => object(PodTemplateSpec),
        (Deployment, "spec") => object(DeploymentSpec),
        (DeploymentSpec, "strategy") => Field {
            ty: None,
            list: ListStrategy::Atomic,
            retain_keys: true,
        },
        (Workload, "spec") => object(WorkloadSpec),
        (Job, "spec") | (JobTemplateSpec, "spec") => object(JobSpec),
        (CronJob, "spec") => object(CronJobSpec),
        (CronJobSpec, "jobTemplate") => object(JobTemplateSpec),
        (Deployment | Workload | Job | Namespace, "status") => object(ConditionedStatus),
        (ConditionedStatus, "conditions") => merged_by("type", None),

        (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            merged_by("name", Some(Container))
        }
        (PodSpec, "volumes" | "resourceClaims") => retaining(merged_by("name", None)),
        (PodSpec, "imagePullSecrets" | "schedulingGates") => merged_by("name", None),
        (PodSpec, "hostAliases") => merged_by("ip", None),
        (PodSpec, "topologySpreadConstraints") => merged_by("topologyKey", None),

        (Container, "ports") => merged_by("containerPort", None),
        (Container, "env") => merged_by("name", None),
        (Container, "volumeMounts") => merged_by("mountPath", None),
        (Container, "volumeDevices") => merged_by("devicePath", None),

        (PodStatus, "conditions") => merged_by("type", None),
        (PodStatus, "podIPs" | "hostIPs") => merged_by("ip", None),
        (PodStatus, "resourceClaimStatuses") => retaining(merged_by("name", None)),
        (
            PodStatus,
            "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses",
        ) => atomic_list(ContainerStatus),
        (ContainerStatus, "volumeMounts") => merged_by("mountPath", None),
        (ContainerStatus, "allocatedResourcesStatus") => merged_by("name", None),

        (Service, "spec") => object(ServiceSpec),
        (Service, "status") => object(ConditionedStatus),
        (ServiceSpec, "ports") => merged_by("port", None),

        (Node, "spec") => object(NodeSpec),
        (Node, "status") => object(NodeStatus),
        (NodeSpec, "podCIDRs") => SET,
        (NodeStatus, "conditions" | "addresses") => merged_by("type", None),

        (ServiceAccount, "secrets") => merged_by("name", None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: ListStrategy = ListStrategy::Merge { key: Some("name") };

    #[test]
    fn merge_keys_follow_the_api_struct_tags_per_kind() {
        let cases: &[(&str, &[&str], ListStrategy)] = &[
            ("Pod", &["spec", "containers"], NAME),
            ("Pod", &["spec", "initContainers", "env"], NAME),
            (
                "Pod",
                &["spec", "ephemeralContainers", "volumeMounts"],
                ListStrategy::Merge {
                    key: Some("mountPath"),
                },
            ),
            (
                "Pod",
                &["spec", "containers", "ports"],
                ListStrategy::Merge {
                    key: Some("containerPort"),
                },
            ),
            (
                "Pod",
                &["spec", "containers", "volumeDevices"],
                ListStrategy::Merge {
                    key: Some("devicePath"),
                },
            ),
            (
                "Pod",
                &["spec", "hostAliases"],
                ListStrategy::Merge { key: Some("ip") },
            ),
            (
                "Pod",
                &["spec", "topologySpreadConstraints"],
                ListStrategy::Merge {
                    key: Some("topologyKey"),
                },
            ),
            ("Pod", &["spec", "resourceClaims"], NAME),
            (
                "Pod",
                &["status", "podIPs"],
                ListStrategy::Merge { key: Some("ip") },
            ),
            (
                "Pod",
                &["status", "conditions"],
                ListStrategy::Merge { key: Some("type") },
            ),
            (
                "Pod",
                &["status", "containerStatuses"],
                ListStrategy::Atomic,
            ),
            (
                "Pod",
                &["metadata", "finalizers"],
                ListStrategy::Merge { key: None },
            ),
            (
                "Pod",
                &["metadata", "ownerReferences"],
                ListStrategy::Merge { key: Some("uid") },
            ),
            ("Pod", &["spec", "tolerations"], ListStrategy::Atomic),
            ("Pod", &["spec", "containers", "args"], ListStrategy::Atomic),
            (
                "Deployment",
                &["spec", "template", "spec", "containers"],
                NAME,
            ),
            (
                "Deployment",
                &["spec", "template", "spec", "containers", "env"],
                NAME,
            ),
            (
                "Deployment",
                &["spec", "template", "metadata", "finalizers"],
                ListStrategy::Merge { key: None },
            ),
            ("Deployment", &["spec", "containers"], ListStrategy::Atomic),
            (
                "Deployment",
                &["status", "conditions"],
                ListStrategy::Merge { key: Some("type") },
            ),
            ("ReplicaSet", &["spec", "template", "spec", "volumes"], NAME),
            (
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
                NAME,
            ),
            (
                "Service",
                &["spec", "ports"],
                ListStrategy::Merge { key: Some("port") },
            ),
            (
                "Node",
                &["status", "addresses"],
                ListStrategy::Merge { key: Some("type") },
            ),
            (
                "Node",
                &["spec", "podCIDRs"],
                ListStrategy::Merge { key: None },
            ),
            (
                "Namespace",
                &["status", "conditions"],
                ListStrategy::Merge { key: Some("type") },
            ),
            ("Endpoints", &["subsets"], ListStrategy::Atomic),
            (
                "ConfigMap",
                &["metadata", "ownerReferences"],
                ListStrategy::Merge { key: Some("uid") },
            ),
            ("Widget", &["spec", "containers"], ListStrategy::Atomic),
            ("Pod", &[], ListStrategy::Atomic),
        ];
        for (kind, path, want) in cases {
            assert_eq!(list_strategy(kind, path), *want, "{kind} {path:?}");
        }
    }

    #[test]
    fn retain_keys_marks_deployment_strategy_and_pod_volumes() {
        assert!(retain_keys("Deployment", &["spec", "strategy"]));
        assert!(retain_keys(
            "Deployment",
            &["spec", "template", "spec", "volumes"]
        ));
        assert!(retain_keys("Pod", &["spec", "volumes"]));
        assert!(!retain_keys("Pod", &["spec", "containers"]));
        assert!(!retain_keys("ReplicaSet", &["spec", "strategy"]));
    }
}

//! Defaulting as the API server applies it on decode (`pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/apps/v1/defaults.go` and the `+default` markers of the v1 types). Each function fills
//! only what is unset, so running it twice changes nothing.
//!
//! Not here, because Kubernetes does them elsewhere: `serviceAccountName`, `priority` and
//! `preemptionPolicy` (admission plugins), cluster IPs, IP families and node ports (allocators).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, Endpoints, HTTPGetAction, Namespace, NamespaceSpec, NamespaceStatus, Node, Pod, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, Secret, Service, ServiceSpec, SessionAffinityConfig, ClientIPConfig, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

/// Treats `Some("")` like unset, as Go's empty strings are.
fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// Pod-only defaults (`SetDefaults_Pod`) on top of the pod-spec ones.
pub fn pod(p: &mut Pod) {
    let spec = p.spec.get_or_insert_with(Default::default);
    pod_spec(spec);
    // Requests default to limits, for pods only (not templates).
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        if let Some(res) = c.resources.as_mut()
            && let Some(limits) = res.limits.clone() {
                let requests = res.requests.get_or_insert_with(BTreeMap::new);
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
    }
    set(&mut spec.enable_service_links, true);
    if spec.host_network == Some(true) {
        for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
}

/// Templates get the pod-spec defaults but not the pod-only ones.
pub fn pod_template_spec(t: &mut PodTemplateSpec) {
    pod_spec(t.spec.get_or_insert_with(Default::default));
}

/// `SetDefaults_PodSpec` and the defaults of everything inside a pod spec.
pub fn pod_spec(spec: &mut PodSpec) {
    set_str(&mut spec.dns_policy, "ClusterFirst");
    set_str(&mut spec.restart_policy, "Always");
    set(&mut spec.security_context, PodSecurityContext::default());
    set(&mut spec.termination_grace_period_seconds, 30);
    set_str(&mut spec.scheduler_name, "default-scheduler");
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        container(c);
    }
    for ec in spec.ephemeral_containers.iter_mut().flatten() {
        set_image_pull_policy(&mut ec.image_pull_policy, ec.image.as_deref().unwrap_or(""));
        set_str(&mut ec.termination_message_path, "/dev/termination-log");
        set_str(&mut ec.termination_message_policy, "File");
    }
    for v in spec.volumes.iter_mut().flatten() {
        volume(v);
    }
}

fn container(c: &mut Container) {
    set_image_pull_policy(&mut c.image_pull_policy, c.image.as_deref().unwrap_or(""));
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
    }
    for p in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
        probe(p);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(g) = h.http_get.as_mut() {
                http_get(g);
            }
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_str(&mut f.api_version, "v1");
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests count as pinned).
fn set_image_pull_policy(policy: &mut Option<String>, image: &str) {
    if policy.as_deref().is_some_and(|p| !p.is_empty()) {
        return;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    let latest = match (tag, digest) {
        (Some(t), _) => t == "latest",
        (None, Some(_)) => false,
        (None, None) => true,
    };
    *policy = Some(if latest { "Always" } else { "IfNotPresent" }.to_string());
}

fn probe(p: &mut Probe) {
    for (field, value) in [(&mut p.timeout_seconds, 1), (&mut p.period_seconds, 10), (&mut p.success_threshold, 1), (&mut p.failure_threshold, 3)] {
        if field.unwrap_or(0) == 0 {
            *field = Some(value);
        }
    }
    if let Some(g) = p.http_get.as_mut() {
        http_get(g);
    }
    if let Some(g) = p.grpc.as_mut() {
        set(&mut g.service, String::new());
    }
}

fn http_get(g: &mut HTTPGetAction) {
    set_str(&mut g.path, "/");
    set_str(&mut g.scheme, "HTTP");
}

const DEFAULT_FILE_MODE: i32 = 0o644;

fn volume(v: &mut Volume) {
    let any_source = v.empty_dir.is_some()
        || v.host_path.is_some()
        || v.git_repo.is_some()
        || v.gce_persistent_disk.is_some()
        || v.aws_elastic_block_store.is_some()
        || v.secret.is_some()
        || v.nfs.is_some()
        || v.iscsi.is_some()
        || v.glusterfs.is_some()
        || v.flocker.is_some()
        || v.persistent_volume_claim.is_some()
        || v.rbd.is_some()
        || v.cinder.is_some()
        || v.cephfs.is_some()
        || v.quobyte.is_some()
        || v.downward_api.is_some()
        || v.fc.is_some()
        || v.flex_volume.is_some()
        || v.config_map.is_some()
        || v.azure_file.is_some()
        || v.vsphere_volume.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.azure_disk.is_some()
        || v.storageos.is_some()
        || v.projected.is_some()
        || v.scale_io.is_some()
        || v.csi.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some();
    if !any_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(s) = v.secret.as_mut() {
        set(&mut s.default_mode, DEFAULT_FILE_MODE);
    }
    if let Some(c) = v.config_map.as_mut() {
        set(&mut c.default_mode, DEFAULT_FILE_MODE);
    }
    if let Some(d) = v.downward_api.as_mut() {
        set(&mut d.default_mode, DEFAULT_FILE_MODE);
        for f in d.items.iter_mut().flatten() {
            if let Some(r) = f.field_ref.as_mut() {
                set_str(&mut r.api_version, "v1");
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        set(&mut p.default_mode, DEFAULT_FILE_MODE);
        for s in p.sources.iter_mut().flatten() {
            if let Some(t) = s.service_account_token.as_mut() {
                set(&mut t.expiration_seconds, 3600);
            }
            for f in s.downward_api.iter_mut().flat_map(|d| d.items.iter_mut().flatten()) {
                if let Some(r) = f.field_ref.as_mut() {
                    set_str(&mut r.api_version, "v1");
                }
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        set(&mut h.type_, String::new());
    }
    if let Some(i) = v.image.as_mut() {
        set_image_pull_policy(&mut i.pull_policy, i.reference.as_deref().unwrap_or(""));
    }
}

/// `SetDefaults_Deployment`: one replica, RollingUpdate 25%/25%, 10 old ReplicaSets, 600s deadline.
pub fn deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    let strategy = spec.strategy.get_or_insert_with(DeploymentStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy.rolling_update.get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
    set(&mut spec.revision_history_limit, 10);
    set(&mut spec.progress_deadline_seconds, 600);
    pod_template_spec(&mut spec.template);
}

pub fn replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    if let Some(t) = spec.template.as_mut() {
        pod_template_spec(t);
    }
}

/// `SetDefaults_Service`, plus the strategy's `clusterIP`/`clusterIPs` normalization.
pub fn service(s: &mut Service) {
    let spec = s.spec.get_or_insert_with(ServiceSpec::default);
    set_str(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds).is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig { client_ip: Some(ClientIPConfig { timeout_seconds: Some(10800) }) });
            }
        }
        _ => {}
    }
    set_str(&mut spec.type_, "ClusterIP");
    for sp in spec.ports.iter_mut().flatten() {
        set_str(&mut sp.protocol, "TCP");
        let unset = match &sp.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            sp.target_port = Some(IntOrString::Int(sp.port));
        }
    }
    let type_ = spec.type_.clone().unwrap_or_default();
    let externally_accessible = type_ == "LoadBalancer" || type_ == "NodePort" || (type_ == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    if externally_accessible {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&type_.as_str()) {
        set(&mut spec.internal_traffic_policy, "Cluster".to_string());
    }
    if type_ == "LoadBalancer" {
        set(&mut spec.allocate_load_balancer_node_ports, true);
        for ing in s.status.iter_mut().flat_map(|st| st.load_balancer.iter_mut()).flat_map(|lb| lb.ingress.iter_mut().flatten()) {
            if ing.ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
                set(&mut ing.ip_mode, "VIP".to_string());
            }
        }
    }
    let spec = s.spec.get_or_insert_with(ServiceSpec::default);
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ips_empty = spec.cluster_ips.as_ref().is_none_or(|v| v.is_empty());
    if !ip.is_empty() && ips_empty {
        spec.cluster_ips = Some(vec![ip]);
    } else if ip.is_empty() && !ips_empty {
        spec.cluster_ip = spec.cluster_ips.as_ref().and_then(|v| v.first().cloned());
    }
}

/// `SetDefaults_Namespace` and `SetDefaults_NamespaceStatus`: the `kubernetes.io/metadata.name` label
/// and phase Active. The `kubernetes` finalizer is a create-time step, see [`namespace_for_create`].
pub fn namespace(n: &mut Namespace) {
    if let Some(name) = n.metadata.name.clone().filter(|s| !s.is_empty()) {
        n.metadata.labels.get_or_insert_with(BTreeMap::new).insert("kubernetes.io/metadata.name".into(), name);
    }
    let status = n.status.get_or_insert_with(NamespaceStatus::default);
    set_str(&mut status.phase, "Active");
}

/// The namespace strategy's `PrepareForCreate`: status reset to Active and the `kubernetes`
/// finalizer added. Only on create: the namespace controller removes the finalizer later, and
/// re-adding it on update would keep the namespace from ever going away.
pub fn namespace_for_create(n: &mut Namespace) {
    namespace(n);
    n.status = Some(NamespaceStatus { phase: Some("Active".into()), ..Default::default() });
    let finalizers = n.spec.get_or_insert_with(NamespaceSpec::default).finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == "kubernetes") {
        finalizers.push("kubernetes".into());
    }
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
pub fn node(n: &mut Node) {
    if let Some(status) = n.status.as_mut()
        && status.allocatable.is_none() {
            status.allocatable = status.capacity.clone();
        }
}

pub fn endpoints(e: &mut Endpoints) {
    for port in e.subsets.iter_mut().flatten().flat_map(|s| s.ports.iter_mut().flatten()) {
        set_str(&mut port.protocol, "TCP");
    }
}

pub fn secret(s: &mut Secret) {
    set_str(&mut s.type_, "Opaque");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, GRPCAction, ResourceRequirements, SecretVolumeSource, ServicePort};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    fn pod_from(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("test pod")
    }

    #[test]
    fn pod_spec_gets_restart_dns_scheduler_grace_and_security_context() {
        let mut p = pod_from(json!({"spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}));
        pod(&mut p);
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.security_context, Some(PodSecurityContext::default()));
        assert_eq!(spec.enable_service_links, Some(true));
        let c = &spec.containers[0];
        assert_eq!(c.termination_message_path.as_deref(), Some("/dev/termination-log"));
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn image_pull_policy_follows_the_tag_like_test_set_default_image_pull_policy() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:v1", "IfNotPresent"),
            ("nginx@sha256:0e072dddd1f7f8fc8909a2ca6f65e76c5f0d2fcfb8be47935ae3457e8bbceb20", "IfNotPresent"),
            ("nginx:latest@sha256:0e072dddd1f7f8fc8909a2ca6f65e76c5f0d2fcfb8be47935ae3457e8bbceb20", "Always"),
        ];
        for (image, want) in cases {
            let mut policy = None;
            set_image_pull_policy(&mut policy, image);
            assert_eq!(policy.as_deref(), Some(want), "{image}");
        }
        let mut explicit = Some("Never".to_string());
        set_image_pull_policy(&mut explicit, "nginx");
        assert_eq!(explicit.as_deref(), Some("Never"));
    }

    #[test]
    fn probes_get_kubernetes_thresholds_and_http_defaults() {
        let mut p = pod_from(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5}}]}}));
        pod(&mut p);
        let c = &p.spec.unwrap().containers[0];
        let live = c.liveness_probe.clone().unwrap();
        assert_eq!((live.timeout_seconds, live.period_seconds, live.success_threshold, live.failure_threshold), (Some(1), Some(10), Some(1), Some(3)));
        let get = live.http_get.unwrap();
        assert_eq!((get.path.as_deref(), get.scheme.as_deref()), (Some("/"), Some("HTTP")));
        let ready = c.readiness_probe.clone().unwrap();
        assert_eq!(ready.period_seconds, Some(5));
        assert_eq!(ready.grpc, Some(GRPCAction { port: 9000, service: Some(String::new()) }));
    }

    #[test]
    fn container_ports_default_to_tcp_and_host_network_copies_host_ports() {
        let mut p = pod_from(json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}}));
        pod(&mut p);
        let port: &ContainerPort = &p.spec.as_ref().unwrap().containers[0].ports.as_ref().unwrap()[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(port.host_port, Some(8080));
    }

    #[test]
    fn pod_requests_default_to_limits_but_templates_keep_them_unset() {
        let limits = BTreeMap::from([("cpu".to_string(), Quantity("100m".into()))]);
        let c = Container {
            name: "c".into(),
            image: Some("x".into()),
            resources: Some(ResourceRequirements { limits: Some(limits.clone()), ..Default::default() }),
            ..Default::default()
        };
        let mut p = Pod { spec: Some(PodSpec { containers: vec![c.clone()], ..Default::default() }), ..Default::default() };
        pod(&mut p);
        assert_eq!(p.spec.unwrap().containers[0].resources.as_ref().unwrap().requests, Some(limits));
        let mut t = PodTemplateSpec { spec: Some(PodSpec { containers: vec![c], ..Default::default() }), ..Default::default() };
        pod_template_spec(&mut t);
        let spec = t.spec.unwrap();
        assert_eq!(spec.containers[0].resources.as_ref().unwrap().requests, None);
        assert_eq!(spec.enable_service_links, None);
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn volumes_without_a_source_become_empty_dirs_and_modes_default_to_0644() {
        let mut p = pod_from(json!({"spec": {"containers": [], "volumes": [{"name": "scratch"}, {"name": "s", "secret": {"secretName": "x"}}]}}));
        pod(&mut p);
        let vols = p.spec.unwrap().volumes.unwrap();
        assert_eq!(vols[0].empty_dir, Some(EmptyDirVolumeSource::default()));
        assert_eq!(vols[1].secret, Some(SecretVolumeSource { secret_name: Some("x".into()), default_mode: Some(420), ..Default::default() }));
    }

    #[test]
    fn deployment_defaults_match_set_defaults_deployment() {
        let mut d: Deployment = serde_json::from_value(json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": []}}}})).unwrap();
        deployment(&mut d);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let strategy = spec.strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let ru = strategy.rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
        assert_eq!(spec.template.spec.unwrap().dns_policy.as_deref(), Some("ClusterFirst"));
    }

    #[test]
    fn recreate_deployments_get_no_rolling_update_block() {
        let mut d: Deployment = serde_json::from_value(json!({"spec": {"strategy": {"type": "Recreate"}, "selector": {}, "template": {}}})).unwrap();
        deployment(&mut d);
        assert_eq!(d.spec.unwrap().strategy.unwrap().rolling_update, None);
    }

    #[test]
    fn replica_sets_default_to_one_replica() {
        let mut rs = ReplicaSet::default();
        replica_set(&mut rs);
        assert_eq!(rs.spec.unwrap().replicas, Some(1));
    }

    #[test]
    fn service_defaults_fill_type_affinity_protocol_target_port_and_policies() {
        let mut s = Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![
                    ServicePort { port: 80, ..Default::default() },
                    ServicePort { port: 443, target_port: Some(IntOrString::String("https".into())), ..Default::default() },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        service(&mut s);
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.external_traffic_policy, None);
        let ports = spec.ports.unwrap();
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(ports[1].target_port, Some(IntOrString::String("https".into())));
    }

    #[test]
    fn node_port_and_load_balancer_services_get_external_policy_and_node_port_allocation() {
        let mut s = Service { spec: Some(ServiceSpec { type_: Some("LoadBalancer".into()), ..Default::default() }), ..Default::default() };
        service(&mut s);
        let spec = s.spec.unwrap();
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
        let mut c = Service {
            spec: Some(ServiceSpec { session_affinity: Some("ClientIP".into()), cluster_ip: Some("10.0.0.10".into()), ..Default::default() }),
            ..Default::default()
        };
        service(&mut c);
        let spec = c.spec.unwrap();
        assert_eq!(spec.session_affinity_config.unwrap().client_ip.unwrap().timeout_seconds, Some(10800));
        assert_eq!(spec.cluster_ips, Some(vec!["10.0.0.10".to_string()]));
    }

    #[test]
    fn namespaces_get_the_name_label_and_active_phase_and_the_finalizer_only_on_create() {
        let mut n = Namespace::default();
        n.metadata.name = Some("team-a".into());
        namespace(&mut n);
        assert_eq!(n.metadata.labels.as_ref().unwrap()["kubernetes.io/metadata.name"], "team-a");
        assert_eq!(n.status.as_ref().unwrap().phase.as_deref(), Some("Active"));
        assert_eq!(n.spec, None);
        namespace_for_create(&mut n);
        namespace_for_create(&mut n);
        assert_eq!(n.spec.unwrap().finalizers, Some(vec!["kubernetes".to_string()]));
    }

    #[test]
    fn endpoints_ports_secret_type_and_node_allocatable() {
        let mut e: Endpoints = serde_json::from_value(json!({"subsets": [{"addresses": [{"ip": "10.1.0.1"}], "ports": [{"port": 80}]}]})).unwrap();
        endpoints(&mut e);
        assert_eq!(e.subsets.unwrap()[0].ports.as_ref().unwrap()[0].protocol.as_deref(), Some("TCP"));
        let mut s = Secret::default();
        secret(&mut s);
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let mut n: Node = serde_json::from_value(json!({"status": {"capacity": {"cpu": "4"}}})).unwrap();
        node(&mut n);
        assert_eq!(n.status.unwrap().allocatable.unwrap()["cpu"], Quantity("4".into()));
    }

    #[test]
    fn defaulting_twice_changes_nothing() {
        let mut p = pod_from(json!({"spec": {"containers": [{"name": "c", "image": "x", "livenessProbe": {"tcpSocket": {"port": 80}}}]}}));
        pod(&mut p);
        let once = p.clone();
        pod(&mut p);
        assert_eq!(p, once);
    }
}

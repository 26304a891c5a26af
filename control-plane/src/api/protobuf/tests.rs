//! Round trips through k8s-pb (prost) messages, wrapped the way client-go's protobuf serializer does.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};

use super::*;

/// Wraps a message like k8s.io/apimachinery's protobuf serializer: magic, then runtime.Unknown
/// with Go's always-written (empty) contentEncoding and contentType.
fn wrap(api_version: &str, kind: &str, msg: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [&MAGIC[..], &unknown.encode_to_vec()].concat()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

fn int_or_string_int(v: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: s(""),
    })
}

fn int_or_string_str(v: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(v),
    })
}

/// ObjectMeta as Go encodes it: non-pointer strings and the zero creationTimestamp always present.
fn object_meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn decode_ok(body: &[u8]) -> Value {
    match decode(body) {
        Ok(v) => v,
        Err(e) => panic!("decode failed: {e}"),
    }
}

fn deployment() -> apps::Deployment {
    let labels = map(&[("app", "web".to_string())]);
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        args: vec!["--port=8080".into(), String::new()],
        working_dir: s(""),
        ports: vec![core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env: vec![
            core::EnvVar {
                name: s("MODE"),
                value: s("prod"),
                value_from: None,
            },
            core::EnvVar {
                name: s("LEVEL"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    config_map_key_ref: Some(core::ConfigMapKeySelector {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("settings"),
                        }),
                        key: s("level"),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: map(&[("cpu", quantity("500m")), ("memory", quantity("128Mi"))]),
            requests: map(&[("cpu", quantity("250m"))]),
            claims: vec![],
        }),
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: int_or_string_str("http"),
                    host: s(""),
                    scheme: s("HTTP"),
                    http_headers: vec![],
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            termination_grace_period_seconds: None,
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: int_or_string_int(8080),
                    host: s(""),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_path: s("/dev/termination-log"),
        termination_message_policy: s("File"),
        image_pull_policy: s("IfNotPresent"),
        stdin: Some(false),
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: labels.clone(),
            annotations: map(&[("note", String::new())]),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            ..object_meta("web")
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    ..object_meta("")
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    restart_policy: s("Always"),
                    termination_grace_period_seconds: Some(30),
                    dns_policy: s("ClusterFirst"),
                    service_account_name: s(""),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int_or_string_str("25%"),
                    max_surge: int_or_string_int(1),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(10),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus::default()),
    }
}

#[test]
fn a_deployment_decodes_to_the_json_kubernetes_would_have_received() {
    let got = decode_ok(&wrap("apps/v1", "Deployment", &deployment()));
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "generation": 0,
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "labels": {"app": "web"},
            "annotations": {"note": ""},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"generation": 0, "labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "args": ["--port=8080", ""],
                        "ports": [{"name": "http", "hostPort": 0, "containerPort": 8080, "protocol": "TCP"}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level", "optional": true}}},
                        ],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                            "initialDelaySeconds": 5,
                            "timeoutSeconds": 1,
                            "periodSeconds": 10,
                            "successThreshold": 1,
                            "failureThreshold": 3,
                        },
                        "readinessProbe": {"tcpSocket": {"port": 8080}},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                        "stdin": false,
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "hostNetwork": false,
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
            "minReadySeconds": 0,
            "revisionHistoryLimit": 10,
            "paused": false,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    });
    assert_eq!(got, want);

    let typed: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(got).expect("k8s-openapi Deployment");
    let spec = typed.spec.expect("spec");
    let container = &spec.template.spec.expect("pod spec").containers[0];
    let liveness = container
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("httpGet");
    assert_eq!(
        liveness.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into())
    );
    assert_eq!(spec.replicas, Some(3));
    assert!(typed.metadata.creation_timestamp.is_some());
}

#[test]
fn a_namespace_from_kubectl_create_namespace_keeps_only_its_name() {
    let ns = core::Namespace {
        metadata: Some(object_meta("team-a")),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let got = decode_ok(&wrap("v1", "Namespace", &ns));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a", "generation": 0},
        "spec": {},
        "status": {},
    });
    assert_eq!(got, want);
    let typed: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(got).expect("Namespace");
    assert_eq!(typed.metadata.name.as_deref(), Some("team-a"));
}

#[test]
fn a_node_port_service_keeps_int_target_ports_and_repeated_strings() {
    let svc = core::Service {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("app", "web".to_string())]),
            ..object_meta("web")
        }),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("80-8080"),
                protocol: s("TCP"),
                app_protocol: None,
                port: Some(80),
                target_port: int_or_string_int(8080),
                node_port: Some(30080),
            }],
            selector: map(&[("app", "web".to_string())]),
            cluster_ip: s(""),
            cluster_ips: vec!["10.0.0.7".into(), "fd00::7".into()],
            r#type: s("NodePort"),
            session_affinity: s(""),
            ip_families: vec!["IPv4".into(), "IPv6".into()],
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let got = decode_ok(&wrap("v1", "Service", &svc));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "generation": 0, "labels": {"app": "web"}},
        "spec": {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            "selector": {"app": "web"},
            "clusterIPs": ["10.0.0.7", "fd00::7"],
            "type": "NodePort",
            "ipFamilies": ["IPv4", "IPv6"],
        },
        "status": {"loadBalancer": {}},
    });
    assert_eq!(got, want);
    let typed: k8s_openapi::api::core::v1::Service = serde_json::from_value(got).expect("Service");
    assert_eq!(
        typed.spec.and_then(|s| s.ports).map(|p| p[0].node_port),
        Some(Some(30080))
    );
}

#[test]
fn secret_and_config_map_bytes_become_base64() {
    let secret = core::Secret {
        metadata: Some(object_meta("creds")),
        data: map(&[("password", b"s3cr\xffet".to_vec()), ("empty", vec![])]),
        r#type: s("Opaque"),
        string_data: BTreeMap::new(),
        immutable: None,
    };
    let got = decode_ok(&wrap("v1", "Secret", &secret));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "generation": 0},
        "data": {"empty": "", "password": "czNjcv9ldA=="},
        "type": "Opaque",
    });
    assert_eq!(got, want);
    let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(got).expect("Secret");
    assert_eq!(
        typed.data.expect("data")["password"].0,
        b"s3cr\xffet".to_vec()
    );

    let cm = core::ConfigMap {
        metadata: Some(object_meta("settings")),
        data: map(&[("level", "debug".to_string()), ("blank", String::new())]),
        binary_data: map(&[("bin", vec![0u8, 1, 2, 0xfe])]),
        immutable: Some(false),
    };
    let got = decode_ok(&wrap("v1", "ConfigMap", &cm));
    let want = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "generation": 0},
        "data": {"blank": "", "level": "debug"},
        "binaryData": {"bin": "AAEC/g=="},
        "immutable": false,
    });
    assert_eq!(got, want);
    serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(got).expect("ConfigMap");
}

#[test]
fn a_pod_inlines_volume_sources_and_converts_times_and_managed_fields() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            namespace: s("default"),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-run"),
                operation: s("Update"),
                api_version: s("v1"),
                time: Some(meta::Time {
                    seconds: Some(1_704_164_645),
                    nanos: Some(0),
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{"f:containers":{}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..object_meta("nginx")
        }),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: s("scratch"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        medium: s(""),
                        size_limit: Some(quantity("1Gi")),
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![core::Container {
                name: s("nginx"),
                image: s("nginx"),
                resources: Some(core::ResourceRequirements::default()),
                ..Default::default()
            }],
            restart_policy: s("Always"),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: s("Running"),
            conditions: vec![core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_probe_time: Some(meta::Time::default()),
                last_transition_time: Some(meta::Time {
                    seconds: Some(1_704_164_646),
                    nanos: Some(5),
                }),
                ..Default::default()
            }],
            pod_ips: vec![core::PodIp { ip: s("10.1.0.5") }],
            ..Default::default()
        }),
    };
    let got = decode_ok(&wrap("v1", "Pod", &pod));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "nginx",
            "namespace": "default",
            "generation": 0,
            "managedFields": [{
                "manager": "kubectl-run",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-01-02T03:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:containers": {}}},
            }],
        },
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "containers": [{"name": "nginx", "image": "nginx", "resources": {}}],
            "restartPolicy": "Always",
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-02T03:04:06Z"}],
            "podIPs": [{"ip": "10.1.0.5"}],
        },
    });
    assert_eq!(got, want);
    serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(got).expect("Pod");
}

#[test]
fn a_lease_renew_time_is_a_micro_time() {
    let lease = coordination::Lease {
        metadata: Some(object_meta("node-1")),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let got = decode_ok(&wrap("coordination.k8s.io/v1", "Lease", &lease));
    assert_eq!(
        got["spec"],
        json!({"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2024-01-02T03:04:05.123456Z"})
    );
    serde_json::from_value::<k8s_openapi::api::coordination::v1::Lease>(got).expect("Lease");
}

#[test]
fn delete_options_decode_under_any_group_version_and_inside_an_eviction() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        preconditions: Some(meta::Preconditions {
            uid: s("1234"),
            resource_version: None,
        }),
        ..Default::default()
    };
    for av in ["apps/v1", "v1", "meta.k8s.io/v1"] {
        let got = decode_ok(&wrap(av, "DeleteOptions", &opts));
        let want = json!({
            "apiVersion": av,
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "1234"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        });
        assert_eq!(got, want);
        serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(
            got,
        )
        .expect("DeleteOptions");
    }

    let eviction = policy::Eviction {
        metadata: Some(object_meta("nginx")),
        delete_options: Some(opts),
    };
    let got = decode_ok(&wrap("policy/v1", "Eviction", &eviction));
    assert_eq!(got["deleteOptions"]["gracePeriodSeconds"], json!(0));
    serde_json::from_value::<k8s_openapi::api::policy::v1::Eviction>(got).expect("Eviction");
}

#[test]
fn a_scale_and_a_controller_revision_with_raw_json_decode() {
    let scale = k8s_pb::api::autoscaling::v1::Scale {
        metadata: Some(object_meta("web")),
        spec: Some(k8s_pb::api::autoscaling::v1::ScaleSpec { replicas: Some(0) }),
        status: Some(k8s_pb::api::autoscaling::v1::ScaleStatus {
            replicas: Some(2),
            selector: s("app=web"),
        }),
    };
    let got = decode_ok(&wrap("autoscaling/v1", "Scale", &scale));
    assert_eq!(got["spec"], json!({"replicas": 0}));
    assert_eq!(got["status"], json!({"replicas": 2, "selector": "app=web"}));
    serde_json::from_value::<k8s_openapi::api::autoscaling::v1::Scale>(got).expect("Scale");

    let rev = apps::ControllerRevision {
        metadata: Some(object_meta("web-1")),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"x":[1,2]}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    let got = decode_ok(&wrap("apps/v1", "ControllerRevision", &rev));
    assert_eq!(got["data"], json!({"spec": {"x": [1, 2]}}));
    assert_eq!(got["revision"], json!(1));

    let bad = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"\x08\x01".to_vec()),
        }),
        ..rev
    };
    assert!(matches!(
        decode(&wrap("apps/v1", "ControllerRevision", &bad)),
        Err(Error::InvalidJson { .. })
    ));
}

#[test]
fn a_job_decodes_with_its_pod_failure_policy_exit_codes() {
    use k8s_pb::api::batch::v1 as batch;
    let job = batch::Job {
        metadata: Some(object_meta("pi")),
        spec: Some(batch::JobSpec {
            backoff_limit: Some(4),
            pod_failure_policy: Some(batch::PodFailurePolicy {
                rules: vec![batch::PodFailurePolicyRule {
                    action: s("FailJob"),
                    on_exit_codes: Some(batch::PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: s("In"),
                        values: vec![42, -1],
                    }),
                    on_pod_conditions: vec![],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(object_meta("")),
                spec: Some(core::PodSpec::default()),
            }),
            ..Default::default()
        }),
        status: Some(batch::JobStatus::default()),
    };
    let got = decode_ok(&wrap("batch/v1", "Job", &job));
    assert_eq!(
        got["spec"]["podFailurePolicy"],
        json!({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42, -1]}}]})
    );
    serde_json::from_value::<k8s_openapi::api::batch::v1::Job>(got).expect("Job");
}

/// Hand-written wire bytes: helpers to build fields.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn len_field(tag: u32, data: &[u8]) -> Vec<u8> {
    [
        varint(u64::from(tag) << 3 | 2),
        varint(data.len() as u64),
        data.to_vec(),
    ]
    .concat()
}

fn varint_field(tag: u32, v: u64) -> Vec<u8> {
    [varint(u64::from(tag) << 3), varint(v)].concat()
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [
        len_field(1, api_version.as_bytes()),
        len_field(2, kind.as_bytes()),
    ]
    .concat();
    [MAGIC.to_vec(), len_field(1, &type_meta), len_field(2, raw)].concat()
}

#[test]
fn packed_and_unpacked_repeated_numbers_both_decode() {
    // PodFailurePolicyOnExitCodesRequirement.values (tag 3) inside JobSpec.podFailurePolicy (tag 11).
    let packed = [varint(1), varint(2), varint(300)].concat();
    for on_exit in [
        [len_field(2, b"In"), len_field(3, &packed)].concat(),
        [
            len_field(2, b"In"),
            varint_field(3, 1),
            varint_field(3, 2),
            varint_field(3, 300),
        ]
        .concat(),
        [
            len_field(2, b"In"),
            varint_field(3, 1),
            len_field(3, &[varint(2), varint(300)].concat()),
        ]
        .concat(),
    ] {
        let rule = [len_field(1, b"FailJob"), len_field(2, &on_exit)].concat();
        let spec = len_field(11, &len_field(1, &rule));
        let got = decode_ok(&envelope("batch/v1", "Job", &len_field(2, &spec)));
        assert_eq!(
            got["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
            json!([1, 2, 300])
        );
    }
}

#[test]
fn unknown_fields_are_skipped_like_go_does() {
    let meta = [
        len_field(1, b"ns"),
        len_field(999, b"future"),
        varint_field(998, 7),
    ]
    .concat();
    let got = decode_ok(&envelope("v1", "Namespace", &len_field(1, &meta)));
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    );
}

#[test]
fn negative_int32_values_use_ten_byte_varints() {
    // ContainerRestartRuleOnExitCodes is rare; use Scale.spec.replicas = -1 instead.
    let spec = varint_field(1, (-1i64) as u64);
    let got = decode_ok(&envelope("autoscaling/v1", "Scale", &len_field(2, &spec)));
    assert_eq!(got["spec"]["replicas"], json!(-1));
}

fn by_name(name: &str) -> &'static table::Message {
    schema::MESSAGES
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no message {name}"))
}

fn special_value(name: &str, raw: &[u8]) -> Result<Option<Value>> {
    decode::message_value(by_name(name), raw, 0)
}

#[test]
fn special_messages_take_their_go_json_forms() {
    let time = "apimachinery.pkg.apis.meta.v1.Time";
    let micro = "apimachinery.pkg.apis.meta.v1.MicroTime";
    let duration = "apimachinery.pkg.apis.meta.v1.Duration";
    let ios = "apimachinery.pkg.util.intstr.IntOrString";
    let raw_ext = "apimachinery.pkg.runtime.RawExtension";
    let verbs = "apimachinery.pkg.apis.meta.v1.Verbs";
    let extra = "api.authentication.v1.ExtraValue";
    let cases: Vec<(&str, Vec<u8>, Option<Value>)> = vec![
        (time, vec![], None),
        (
            time,
            [varint_field(1, 0), varint_field(2, 0)].concat(),
            None,
        ),
        (
            time,
            varint_field(1, 1_704_164_645),
            Some(json!("2024-01-02T03:04:05Z")),
        ),
        (
            micro,
            varint_field(2, 1000),
            Some(json!("1970-01-01T00:00:00.000001Z")),
        ),
        (
            micro,
            varint_field(1, 1_704_164_645),
            Some(json!("2024-01-02T03:04:05.000000Z")),
        ),
        (
            duration,
            varint_field(1, 3_723_000_000_000),
            Some(json!("1h2m3s")),
        ),
        (duration, vec![], Some(json!("0s"))),
        (ios, vec![], Some(json!(0))),
        (ios, [varint_field(1, 1)].concat(), Some(json!(""))),
        (
            ios,
            [varint_field(1, 0), varint_field(2, 443)].concat(),
            Some(json!(443)),
        ),
        (
            ios,
            [varint_field(1, 1), len_field(3, b"https")].concat(),
            Some(json!("https")),
        ),
        (raw_ext, vec![], None),
        (raw_ext, len_field(1, b"[1,\"a\"]"), Some(json!([1, "a"]))),
        (
            verbs,
            [len_field(1, b"get"), len_field(1, b"")].concat(),
            Some(json!(["get", ""])),
        ),
        (extra, vec![], Some(json!([]))),
        (
            "apimachinery.pkg.api.resource.Quantity",
            len_field(1, b"100m"),
            Some(json!("100m")),
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(
            special_value(name, &raw).expect(name),
            want,
            "{name} {raw:?}"
        );
    }
}

#[test]
fn json_schema_props_or_alternatives_marshal_as_the_set_one() {
    let pkg = "apiextensions_apiserver.pkg.apis.apiextensions.v1";
    let schema = len_field(5, b"object"); // JSONSchemaProps.type
    let cases: Vec<(&str, Vec<u8>, Option<Value>)> = vec![
        (
            "JsonSchemaPropsOrBool",
            varint_field(1, 1),
            Some(json!(true)),
        ),
        ("JsonSchemaPropsOrBool", vec![], Some(json!(false))),
        (
            "JsonSchemaPropsOrBool",
            len_field(2, &schema),
            Some(json!({"type": "object"})),
        ),
        (
            "JsonSchemaPropsOrArray",
            len_field(1, &schema),
            Some(json!({"type": "object"})),
        ),
        (
            "JsonSchemaPropsOrArray",
            [len_field(2, &schema), len_field(2, &[])].concat(),
            Some(json!([{"type": "object"}, {}])),
        ),
        ("JsonSchemaPropsOrArray", vec![], None),
        (
            "JsonSchemaPropsOrStringArray",
            [len_field(2, b"a"), len_field(2, b"b")].concat(),
            Some(json!(["a", "b"])),
        ),
        (
            "JsonSchemaPropsOrStringArray",
            len_field(1, &schema),
            Some(json!({"type": "object"})),
        ),
    ];
    for (name, raw, want) in cases {
        let full = format!("{pkg}.{name}");
        assert_eq!(special_value(&full, &raw).expect(name), want, "{name}");
    }
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let ns_meta = len_field(1, &len_field(1, b"ns"));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", vec![], "magic"),
        ("json body", b"{\"kind\":\"Pod\"}".to_vec(), "magic"),
        ("magic only", MAGIC.to_vec(), "apiVersion/kind"),
        (
            "unknown kind",
            envelope("v1", "Widget", &[]),
            "unknown kind \"Widget\"",
        ),
        (
            "kind in the wrong group",
            envelope("v1", "Deployment", &[]),
            "unknown kind \"Deployment\"",
        ),
        (
            "truncated key",
            envelope("v1", "Namespace", &[0x80]),
            "ends in the middle",
        ),
        (
            "truncated length",
            envelope("v1", "Namespace", &[0x0a, 0x05, 0x0a]),
            "ends in the middle",
        ),
        (
            "group wire type",
            envelope("v1", "Namespace", &[0x0b]),
            "invalid wire type 3",
        ),
        (
            "field number zero",
            envelope("v1", "Namespace", &[0x00, 0x01]),
            "invalid field number 0",
        ),
        (
            "string sent as varint",
            envelope("v1", "Namespace", &len_field(1, &varint_field(1, 5))),
            "\"name\"",
        ),
        (
            "message sent as varint",
            envelope("v1", "Namespace", &varint_field(1, 5)),
            "\"metadata\"",
        ),
        (
            "map entry value as varint",
            envelope(
                "v1",
                "Namespace",
                &len_field(1, &len_field(11, &varint_field(2, 1))),
            ),
            "\"labels\"",
        ),
        (
            "bad IntOrString type",
            {
                let port = [varint_field(1, 7)].concat();
                let spec = len_field(1, &len_field(4, &port)); // ServiceSpec.ports[0].targetPort
                envelope(
                    "v1",
                    "Service",
                    &[ns_meta.clone(), len_field(2, &spec)].concat(),
                )
            },
            "IntOrString",
        ),
        (
            "empty quantity",
            {
                let limits = len_field(1, &len_field(1, b"cpu"));
                let quota = len_field(1, &limits); // ResourceQuotaSpec.hard
                envelope("v1", "ResourceQuota", &len_field(2, &quota))
            },
            "quantity",
        ),
        (
            "time after year 9999",
            envelope(
                "v1",
                "Namespace",
                &len_field(1, &len_field(8, &varint_field(1, 1 << 40))),
            ),
            "9999",
        ),
        (
            "gzip content encoding",
            [MAGIC.to_vec(), len_field(3, b"gzip")].concat(),
            "gzip",
        ),
        (
            "json content type",
            [MAGIC.to_vec(), len_field(4, b"application/json")].concat(),
            "application/json",
        ),
    ];
    for (name, body, want) in cases {
        match decode(&body) {
            Ok(v) => panic!("{name}: decoded {v}"),
            Err(e) => assert!(e.to_string().contains(want), "{name}: {e}"),
        }
    }
}

#[test]
fn deeply_nested_messages_stop_at_the_depth_limit() {
    // JSONSchemaProps.not (tag 28) nests itself; build far past MAX_DEPTH.
    let mut schema = Vec::new();
    for _ in 0..(decode::MAX_DEPTH + 10) {
        schema = len_field(28, &schema);
    }
    let validation = len_field(1, &schema); // CustomResourceValidation.openAPIV3Schema
    let version = [len_field(1, b"v1"), len_field(4, &validation)].concat();
    let spec = len_field(7, &version); // CustomResourceDefinitionSpec.versions
    let body = envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &len_field(2, &spec),
    );
    assert!(
        matches!(decode(&body), Err(Error::TooDeep(_))),
        "{:?}",
        decode(&body)
    );
}

/// xorshift, to fuzz without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_and_mutated_bodies_never_panic() {
    let valid = wrap("apps/v1", "Deployment", &deployment());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..3000 {
        let body = if round % 2 == 0 {
            let mut body = valid.clone();
            for _ in 0..(1 + next(&mut state) % 4) {
                let i = (next(&mut state) as usize) % body.len();
                body[i] = next(&mut state) as u8;
            }
            let cut = (next(&mut state) as usize) % (body.len() + 1);
            if round % 4 == 0 {
                body.truncate(cut)
            }
            body
        } else {
            let len = (next(&mut state) % 200) as usize;
            let random: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            envelope("v1", "Pod", &random)
        };
        let _ = decode(&body);
    }
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Bodies captured from kubectl v1.32.4 (`kubectl create ...` against a logging HTTPS listener).
const CAPTURED: &[(&str, &str)] = &[
    (
        "namespace",
        "6b3873000a0f0a02763112094e616d657370616365121e0a160a067465616d2d6112001a0022002a0032003800420012001a020a001a002200",
    ),
    (
        "deployment",
        "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c5010a260a0377656212001a0764656661756c7422002a003200380042005a0a0a036170701203776562128c010803120c0a0a0a0361707012037765621a720a1c0a0012001a0022002a003200380042005a0a0a036170701203776562125212340a056e67696e78120a6e67696e783a312e32372a00320b0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
    ),
    (
        "service",
        "6b3873000a0d0a027631120753657276696365126a0a1f0a0377656212001a0022002a003200380042005a0a0a03617070120377656212430a1d0a0738302d38303830120354435018502207080010903f1a002880eb01120a0a0361707012037765621a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200",
    ),
    (
        "secret",
        "6b3873000a0c0a0276311206536563726574122d0a150a05637265647312001a0022002a0032003800420012120a0870617373776f726412067333637265741a001a002200",
    ),
    (
        "configmap",
        "6b3873000a0f0a0276311209436f6e6669674d6170122a0a180a0873657474696e677312001a0022002a00320038004200120e0a056c6576656c120564656275671a002200",
    ),
    (
        "job",
        "6b3873000a0f0a0862617463682f763112034a6f621284010a120a02706912001a0022002a00320038004200126432620a100a0012001a0022002a00320038004200124e122b0a02706912047065726c1a047065726c1a022d651a01312a0042006a007200800100880100900100a201001a054e65766572320042004a0052005800600068008201008a01009a0100c201001a082000280030003a001a002200",
    ),
    (
        "serviceaccount",
        "6b3873000a140a027631120e536572766963654163636f756e7412170a150a05726f626f7412001a0022002a003200380042001a002200",
    ),
    (
        "priorityclass",
        "6b3873000a250a147363686564756c696e672e6b38732e696f2f7631120d5072696f72697479436c61737312330a140a046869676812001a0022002a0032003800420010e807180022002a14507265656d70744c6f7765725072696f726974791a002200",
    ),
    (
        "tokenrequest",
        "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e52657175657374121a0a100a0012001a0022002a0032003800420012001a040a0012001a002200",
    ),
];

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> bool {
    serde_json::from_value::<T>(v.clone()).is_ok()
}

#[test]
fn bodies_captured_from_kubectl_decode_to_kubernetes_json() {
    use k8s_openapi::api as oa;
    // k8s-openapi requires TokenRequest's spec.audiences and status fields, which Go's JSON writes as
    // null/"" and the protobuf body leaves out; the server has to default them either way.
    type Case = (&'static str, &'static str, Option<fn(&Value) -> bool>);
    let want: &[Case] = &[
        (
            "namespace",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a","generation":0},"spec":{},"status":{}}"#,
            Some(typed::<oa::core::v1::Namespace>),
        ),
        (
            "deployment",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","generation":0,"labels":{"app":"web"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"generation":0,"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27","ports":[{"hostPort":0,"containerPort":8080}],"resources":{},"stdin":false,"stdinOnce":false,"tty":false}],"hostNetwork":false,"hostPID":false,"hostIPC":false}},"strategy":{},"minReadySeconds":0,"paused":false},"status":{"observedGeneration":0,"replicas":0,"updatedReplicas":0,"availableReplicas":0,"unavailableReplicas":0,"readyReplicas":0}}"#,
            Some(typed::<oa::apps::v1::Deployment>),
        ),
        (
            "service",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","generation":0,"labels":{"app":"web"}},"spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080,"nodePort":30080}],"selector":{"app":"web"},"type":"NodePort","healthCheckNodePort":0,"publishNotReadyAddresses":false},"status":{"loadBalancer":{}}}"#,
            Some(typed::<oa::core::v1::Service>),
        ),
        (
            "secret",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","generation":0},"data":{"password":"czNjcmV0"}}"#,
            Some(typed::<oa::core::v1::Secret>),
        ),
        (
            "configmap",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","generation":0},"data":{"level":"debug"}}"#,
            Some(typed::<oa::core::v1::ConfigMap>),
        ),
        (
            "job",
            r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi","generation":0},"spec":{"template":{"metadata":{"generation":0},"spec":{"containers":[{"name":"pi","image":"perl","command":["perl","-e","1"],"resources":{},"stdin":false,"stdinOnce":false,"tty":false}],"restartPolicy":"Never","hostNetwork":false,"hostPID":false,"hostIPC":false}}},"status":{"active":0,"succeeded":0,"failed":0}}"#,
            Some(typed::<oa::batch::v1::Job>),
        ),
        (
            "serviceaccount",
            r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"robot","generation":0}}"#,
            Some(typed::<oa::core::v1::ServiceAccount>),
        ),
        (
            "priorityclass",
            r#"{"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{"name":"high","generation":0},"value":1000,"globalDefault":false,"preemptionPolicy":"PreemptLowerPriority"}"#,
            Some(typed::<oa::scheduling::v1::PriorityClass>),
        ),
        (
            "tokenrequest",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","metadata":{"generation":0},"spec":{},"status":{}}"#,
            None,
        ),
    ];
    assert_eq!(want.len(), CAPTURED.len());
    for ((name, hex), (want_name, json, deserializes)) in CAPTURED.iter().zip(want) {
        assert_eq!(name, want_name);
        let got = decode_ok(&unhex(hex));
        let want: Value = serde_json::from_str(json).expect("expected JSON");
        assert_eq!(got, want, "{name}");
        if let Some(deserializes) = deserializes {
            assert!(
                deserializes(&got),
                "{name} does not deserialize into its k8s-openapi type"
            );
        }
    }
}

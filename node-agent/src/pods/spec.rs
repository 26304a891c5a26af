//! Turning a pod's container into what the runtime starts (pure where it can be).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proto::quantity;
use serde_json::Value;

use crate::cgroups::Limits;
use crate::images::{ImageConfig, command_line, expand};
use crate::runtime::merge_env;

/// What a container's declared environment draws on besides its own `env`.
pub struct EnvSources<'a> {
    pub pod: &'a Value,
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    /// The pod's Service variables (`service_env::variables`).
    pub services: &'a [(String, String)],
}

/// The variables the kubelet hands the runtime: the Service variables, then the container's
/// `env` (values expanded with `$(VAR)` over the variables declared before them and the Service
/// variables; `valueFrom.fieldRef` resolved, never expanded), each overriding the same name
/// before it. Errors name the variable that cannot be made.
pub fn kubelet_env(container: &Value, src: &EnvSources) -> Result<Vec<(String, String)>, String> {
    let mut known: HashMap<String, String> = src.services.iter().cloned().collect();
    let mut declared = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        let value = match e.get("valueFrom").filter(|v| !v.is_null()) {
            Some(from) => value_from(from, src).map_err(|m| format!("environment variable {name}: {m}"))?,
            None => expand(e["value"].as_str().unwrap_or(""), &known),
        };
        known.insert(name.to_string(), value.clone());
        declared.push((name.to_string(), value));
    }
    Ok(merge_env(src.services, &declared))
}

/// The process's environment, as containerd builds it: `HOSTNAME`, then the image's, then what
/// the kubelet handed over, each overriding the same name before it.
pub fn environment(config: &ImageConfig, hostname: &str, kubelet: &[(String, String)]) -> Vec<(String, String)> {
    let image: Vec<(String, String)> = config
        .env
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let base = merge_env(&[("HOSTNAME".to_string(), hostname.to_string())], &image);
    merge_env(&base, kubelet)
}

fn value_from(from: &Value, src: &EnvSources) -> Result<String, String> {
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return field_ref(path, src);
    }
    match ["resourceFieldRef", "configMapKeyRef", "secretKeyRef"].into_iter().find(|k| from.get(*k).is_some_and(|v| !v.is_null())) {
        Some(kind) => Err(format!("valueFrom.{kind} is not supported by this node yet")),
        None => Err("valueFrom names no source".into()),
    }
}

/// The downward API paths the API server accepts in `env[].valueFrom.fieldRef`.
fn field_ref(path: &str, src: &EnvSources) -> Result<String, String> {
    let meta = &src.pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    if let Some((base, key)) = path.split_once("['").and_then(|(b, rest)| Some((b, rest.strip_suffix("']")?))) {
        return match base {
            "metadata.labels" => Ok(text(&meta["labels"][key])),
            "metadata.annotations" => Ok(text(&meta["annotations"][key])),
            _ => Err(format!("fieldRef {path:?} is not supported")),
        };
    }
    Ok(match path {
        "metadata.name" => text(&meta["name"]),
        "metadata.namespace" => text(&meta["namespace"]),
        "metadata.uid" => text(&meta["uid"]),
        "spec.nodeName" => text(&src.pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => text(&src.pod["spec"]["serviceAccountName"]),
        "status.hostIP" | "status.hostIPs" => src.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => src.pod_ip.unwrap_or("").to_string(),
        _ => return Err(format!("fieldRef {path:?} is not supported")),
    })
}

/// The command line: image entrypoint/cmd overridden by the container's command/args, expanded.
pub fn argv(config: &ImageConfig, container: &Value, env: &[(String, String)]) -> Result<Vec<String>, String> {
    let strings = |v: &Value| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect() };
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let command: Vec<String> = strings(&container["command"]).iter().map(|s| crate::images::expand(s, &vars)).collect();
    let args: Vec<String> = strings(&container["args"]).iter().map(|s| crate::images::expand(s, &vars)).collect();
    command_line(config, &command, &args).map_err(|e| e.to_string())
}

/// Cgroup limits from `resources` (limits.memory, limits.cpu, requests.cpu) and a pids cap.
pub fn limits(container: &Value) -> Limits {
    let res = &container["resources"];
    let millis = |v: &Value| v.as_str().and_then(|q| quantity::to_millis(q).ok()).and_then(|m| u64::try_from(m).ok());
    let memory_bytes = res["limits"]["memory"].as_str().and_then(|q| quantity::to_bytes(q).ok()).and_then(|b| u64::try_from(b).ok());
    let cpu_limit = millis(&res["limits"]["cpu"]);
    Limits {
        memory_bytes,
        cpu_quota_millis: cpu_limit,
        cpu_request_millis: millis(&res["requests"]["cpu"]).or(cpu_limit),
        pids_max: Some(4096),
    }
}

/// Where a volume named `name` of pod `uid` lives on the node, or None for unsupported kinds.
pub fn volume_source(pod_dir: &Path, pod: &Value, name: &str) -> Option<(PathBuf, bool)> {
    let v = pod["spec"]["volumes"].as_array()?.iter().find(|v| v["name"] == name)?;
    if v.get("emptyDir").is_some() {
        return Some((pod_dir.join("volumes").join(name), true));
    }
    if let Some(p) = v["hostPath"]["path"].as_str() {
        let create = matches!(v["hostPath"]["type"].as_str(), Some("DirectoryOrCreate") | None | Some(""));
        return Some((PathBuf::from(p), create));
    }
    None
}

pub fn hosts_file(pod_ip: Option<&str>, hostname: &str) -> String {
    let mut s = String::from("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = pod_ip {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

pub fn resolv_conf(dns: &str, namespace: &str, domain: &str) -> String {
    format!("nameserver {dns}\nsearch {namespace}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> ImageConfig {
        ImageConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "GREETING=image".into()],
            working_dir: String::new(),
            ..Default::default()
        }
    }

    fn sources<'a>(pod: &'a Value, services: &'a [(String, String)]) -> EnvSources<'a> {
        EnvSources { pod, pod_ip: Some("10.244.0.9"), host_ip: "10.250.0.2", services }
    }

    /// The whole process environment for a container of `pod`.
    fn environment_of(config: &ImageConfig, c: &Value, src: &EnvSources) -> Result<Vec<(String, String)>, String> {
        Ok(environment(config, "web-1", &kubelet_env(c, src)?))
    }

    fn lookup<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn pod_env_overrides_the_image_and_expands_earlier_variables() {
        let c = json!({"env": [{"name": "GREETING", "value": "hi"}, {"name": "MSG", "value": "$(GREETING) there"}]});
        let env = environment_of(&config(), &c, &sources(&json!({}), &[])).unwrap();
        assert_eq!(lookup(&env, "PATH"), Some("/bin"));
        assert_eq!(lookup(&env, "GREETING"), Some("hi"));
        assert_eq!(lookup(&env, "MSG"), Some("hi there"));
    }

    #[test]
    fn env_values_expand_against_earlier_entries_and_service_variables_only() {
        // Kubernetes' TestMapReference, and a reference to a later entry, which stays literal.
        let services = vec![("S".to_string(), "svc".to_string())];
        let c = json!({"env": [
            {"name": "FOO", "value": "bar"}, {"name": "ZOO", "value": "$(FOO)-1"}, {"name": "BLU", "value": "$(ZOO)-2"},
            {"name": "A", "value": "$(B)"}, {"name": "B", "value": "b"}, {"name": "C", "value": "$(S)"},
        ]});
        let env = environment_of(&config(), &c, &sources(&json!({}), &services)).unwrap();
        let got: Vec<(&str, &str)> = ["ZOO", "BLU", "A", "C"].iter().map(|k| (*k, lookup(&env, k).unwrap())).collect();
        assert_eq!(got, [("ZOO", "bar-1"), ("BLU", "bar-1-2"), ("A", "$(B)"), ("C", "svc")]);
    }

    #[test]
    fn the_environment_is_hostname_then_image_then_services_then_the_containers_own() {
        let services = vec![("WEB_SERVICE_HOST".to_string(), "10.96.0.20".to_string()), ("GREETING".to_string(), "from a service".to_string())];
        let c = json!({"env": [{"name": "URL", "value": "http://$(WEB_SERVICE_HOST)/"}, {"name": "WEB_SERVICE_HOST", "value": "mine"}]});
        let env = environment_of(&config(), &c, &sources(&json!({}), &services)).unwrap();
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["HOSTNAME", "PATH", "GREETING", "WEB_SERVICE_HOST", "URL"]);
        assert_eq!(lookup(&env, "HOSTNAME"), Some("web-1"));
        assert_eq!(lookup(&env, "GREETING"), Some("from a service"), "a Service variable overrides the image's");
        assert_eq!(lookup(&env, "URL"), Some("http://10.96.0.20/"), "expanded with the Service variable");
        assert_eq!(lookup(&env, "WEB_SERVICE_HOST"), Some("mine"), "the container's own value wins");
        let image_hostname = ImageConfig { env: vec!["HOSTNAME=from-image".into()], ..config() };
        assert_eq!(lookup(&environment_of(&image_hostname, &json!({}), &sources(&json!({}), &[])).unwrap(), "HOSTNAME"), Some("from-image"));
    }

    #[test]
    fn command_and_args_expand_only_against_the_declared_and_service_variables() {
        let services = vec![("WEB_SERVICE_HOST".to_string(), "10.96.0.20".to_string())];
        let c = json!({"command": ["echo", "$(WEB_SERVICE_HOST)", "$(WHO)", "$(PATH)", "$(HOSTNAME)"], "env": [{"name": "WHO", "value": "me"}]});
        let declared = kubelet_env(&c, &sources(&json!({}), &services)).unwrap();
        assert_eq!(argv(&config(), &c, &declared).unwrap(), ["echo", "10.96.0.20", "me", "$(PATH)", "$(HOSTNAME)"]);
    }

    #[test]
    fn field_references_are_resolved_from_the_pod_and_never_expanded() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "$(X)"}, "annotations": {"team": "a"}},
            "spec": {"nodeName": "node-2", "serviceAccountName": "default"},
        });
        let field = |path: &str| json!({"name": "V", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}});
        let cases = [
            ("metadata.name", "web-1"),
            ("metadata.namespace", "shop"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "$(X)"),
            ("metadata.annotations['team']", "a"),
            ("metadata.labels['missing']", ""),
            ("spec.nodeName", "node-2"),
            ("spec.serviceAccountName", "default"),
            ("status.podIP", "10.244.0.9"),
            ("status.podIPs", "10.244.0.9"),
            ("status.hostIP", "10.250.0.2"),
        ];
        for (path, want) in cases {
            let c = json!({"env": [{"name": "X", "value": "x"}, field(path)]});
            let env = environment_of(&config(), &c, &sources(&pod, &[])).unwrap();
            assert_eq!(lookup(&env, "V"), Some(want), "{path}");
        }
    }

    #[test]
    fn variables_this_node_cannot_make_are_refused_by_name() {
        let cases = [
            (json!({"fieldRef": {"fieldPath": "metadata.whoops"}}), "environment variable V: fieldRef \"metadata.whoops\" is not supported"),
            (json!({"fieldRef": {"fieldPath": "spec.nodeName['x']"}}), "environment variable V: fieldRef \"spec.nodeName['x']\" is not supported"),
            (json!({"secretKeyRef": {"name": "s", "key": "k"}}), "environment variable V: valueFrom.secretKeyRef is not supported by this node yet"),
            (json!({"configMapKeyRef": {"name": "c", "key": "k"}}), "environment variable V: valueFrom.configMapKeyRef is not supported by this node yet"),
            (json!({}), "environment variable V: valueFrom names no source"),
        ];
        for (from, want) in cases {
            let c = json!({"env": [{"name": "V", "valueFrom": from}]});
            assert_eq!(environment_of(&config(), &c, &sources(&json!({}), &[])).unwrap_err(), want);
        }
    }

    #[test]
    fn command_and_args_override_the_image_like_kubernetes() {
        let env = vec![("WHO".to_string(), "world".to_string())];
        assert_eq!(argv(&config(), &json!({}), &env).unwrap(), ["sh"]);
        assert_eq!(argv(&config(), &json!({"command": ["echo"], "args": ["$(WHO)"]}), &env).unwrap(), ["echo", "world"]);
        assert_eq!(argv(&config(), &json!({"args": ["-c", "true"]}), &env).unwrap(), ["-c", "true"]);
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let l = limits(&json!({"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "100m"}}}));
        assert_eq!(l.memory_bytes, Some(64 * 1024 * 1024));
        assert_eq!(l.cpu_quota_millis, Some(500));
        assert_eq!(l.cpu_request_millis, Some(100));
        let none = limits(&json!({}));
        assert_eq!((none.memory_bytes, none.cpu_quota_millis), (None, None));
    }

    #[test]
    fn volumes_map_to_node_paths() {
        let pod = json!({"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "host", "hostPath": {"path": "/srv/data"}}, {"name": "cm", "configMap": {"name": "x"}}]}});
        let dir = Path::new("/data/pods/u1");
        assert_eq!(volume_source(dir, &pod, "scratch").unwrap().0, PathBuf::from("/data/pods/u1/volumes/scratch"));
        assert_eq!(volume_source(dir, &pod, "host").unwrap().0, PathBuf::from("/srv/data"));
        assert!(volume_source(dir, &pod, "cm").is_none());
        assert!(volume_source(dir, &pod, "missing").is_none());
    }

    #[test]
    fn resolv_conf_searches_the_pod_namespace_first() {
        assert_eq!(resolv_conf("10.96.0.10", "team", "cluster.local"), "nameserver 10.96.0.10\nsearch team.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n");
    }
}

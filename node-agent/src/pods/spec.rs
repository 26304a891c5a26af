//! Turning a pod's container into what the runtime starts (pure where it can be).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proto::quantity;
use serde_json::Value;

use crate::cgroups::Limits;
use crate::images::{ImageConfig, command_line, expand_env};

/// The environment: the image's, then the container's `env` (with `$(VAR)` expansion), as the
/// kubelet merges them.
pub fn environment(config: &ImageConfig, container: &Value, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let mut declared: Vec<(String, String)> = extra.to_vec();
    for e in container["env"].as_array().into_iter().flatten() {
        if let Some(name) = e["name"].as_str() {
            declared.push((name.to_string(), e["value"].as_str().unwrap_or("").to_string()));
        }
    }
    let expanded = expand_env(&declared, &HashMap::new());
    for (k, v) in expanded {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    env
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

    #[test]
    fn pod_env_overrides_the_image_and_expands_earlier_variables() {
        let c = json!({"env": [{"name": "GREETING", "value": "hi"}, {"name": "MSG", "value": "$(GREETING) there"}]});
        let env = environment(&config(), &c, &[]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("GREETING"), Some("hi"));
        assert_eq!(get("MSG"), Some("hi there"));
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

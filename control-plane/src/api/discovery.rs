//! Discovery documents: what kubectl reads to learn which resources exist and what they support.

use serde_json::{Value, json};

use crate::registry::{Registry, Resource};

/// The Kubernetes version we report: kubectl 1.27 to 1.33 accept it (skew warnings aside).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+tinykube-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "tinykube",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", go_arch()),
    })
}

pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_doc(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": vs.clone(), "preferredVersion": vs[0].clone()})
}

pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_doc(g, &[v]))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let versions: Vec<&str> = reg.group_versions().into_iter().filter(|(g, _)| *g == name).map(|(_, v)| v).collect();
    if versions.is_empty() {
        return None;
    }
    let mut doc = group_doc(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn verbs(r: &Resource) -> Vec<&'static str> {
    let mut v = vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    if r.kind == "Node" || r.kind == "Namespace" {
        v.retain(|x| *x != "deletecollection");
    }
    v
}

pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in reg.all().iter().filter(|r| r.group == group && r.version == version) {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        let sub = |name: &str, kind: &str, verbs: &[&str]| {
            json!({"name": format!("{}/{name}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs})
        };
        if r.has_status {
            resources.push(sub("status", r.kind, &["get", "patch", "update"]));
        }
        if r.has_scale {
            let mut s = sub("scale", "Scale", &["get", "patch", "update"]);
            s["group"] = json!("autoscaling");
            s["version"] = json!("v1");
            resources.push(s);
        }
        for extra in r.extra_subresources {
            resources.push(match *extra {
                "log" => sub("log", "Pod", &["get"]),
                "exec" => sub("exec", "PodExecOptions", &["create", "get"]),
                "attach" => sub("attach", "PodAttachOptions", &["create", "get"]),
                "portforward" => sub("portforward", "PodPortForwardOptions", &["create", "get"]),
                "binding" => sub("binding", "Binding", &["create"]),
                "finalize" => sub("finalize", r.kind, &["update"]),
                other => sub(other, r.kind, &["get"]),
            });
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_lists_deployments_with_scale_and_status_subresources() {
        let reg = Registry::new();
        let doc = resource_list(&reg, "apps", "v1");
        let names: Vec<&str> = doc["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for want in ["deployments", "deployments/status", "deployments/scale", "replicasets", "replicasets/scale"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let scale = doc["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!(scale["group"], "autoscaling");
    }

    #[test]
    fn core_lists_pod_subresources_and_the_group_list_omits_core() {
        let reg = Registry::new();
        let doc = resource_list(&reg, "", "v1");
        let names: Vec<&str> = doc["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for want in ["pods", "pods/status", "pods/log", "pods/exec", "pods/binding", "namespaces/finalize", "services", "nodes"] {
            assert!(names.contains(&want), "{want} missing");
        }
        let groups = group_list(&reg);
        let gnames: Vec<&str> = groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(gnames, ["apps", "coordination.k8s.io"]);
    }
}

//! OpenAPI v3 discovery, enough for kubectl to know that this server validates fields itself.
//!
//! kubectl (1.27+) asks `/openapi/v3` whether the PATCH operation of a kind accepts the
//! `fieldValidation` query parameter; when it does, kubectl leaves validation to the server
//! (`fieldValidation=Strict`) instead of validating against schemas on the client. So each
//! group/version document lists, per resource, the operations with that parameter.
//! Schemas (for `kubectl explain`) are not served.

use serde_json::{Map, Value, json};

use crate::registry::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in reg.group_versions() {
        let p = gv_path(g, v);
        // The hash only has to change when the document does; it changes with the binary.
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", env!("CARGO_PKG_VERSION"))}));
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

pub fn group_version_doc(reg: &Registry, path: &str) -> Option<Value> {
    let path = path.trim_matches('/');
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    if !reg.group_versions().iter().any(|(g, v)| *g == group && *v == version) {
        return None;
    }
    let mut paths = Map::new();
    for r in reg.all().iter().filter(|r| r.group == group && r.version == version) {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation")],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let base = format!("/{}", gv_path(group, version));
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let collection = item.trim_end_matches("/{name}").to_string();
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", super::discovery::KUBE_MAJOR, super::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_patch_operation_accepting_field_validation() {
        let reg = Registry::new();
        let idx = index(&reg);
        assert!(idx["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = group_version_doc(&reg, "apis/apps/v1").unwrap();
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(group_version_doc(&reg, "apis/nope/v1").is_none());
        assert!(group_version_doc(&reg, "api/v1").unwrap()["paths"]["/api/v1/nodes/{name}"].is_object());
    }
}

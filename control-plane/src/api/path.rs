//! Parsing Kubernetes REST paths into what they address.

use std::sync::Arc;

use super::error::ApiError;
use crate::registry::{Registry, Resource};

/// What a request path addresses under `/api/v1` or `/apis/GROUP/VERSION`.
#[derive(Clone)]
pub enum Target {
    /// `/api/v1`, `/apis/apps/v1`: the resource list of a group/version.
    GroupVersion { group: String, version: String },
    /// A collection: all objects of a resource, or those in one namespace.
    Collection { resource: Arc<Resource>, namespace: Option<String>, watch: bool },
    /// One object, or one of its subresources.
    Object { resource: Arc<Resource>, namespace: Option<String>, name: String, subresource: Option<String>, watch: bool },
}

/// `rest` is the path after `/api/` or `/apis/`; `core` says which.
pub fn parse(registry: &Registry, core: bool, rest: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, mut segs) = if core {
        match segs.split_first() {
            Some((v, rest)) => ("", *v, rest.to_vec()),
            None => return Err(not_found()),
        }
    } else {
        match segs.as_slice() {
            [g, v, rest @ ..] => (*g, *v, rest.to_vec()),
            _ => return Err(not_found()),
        }
    };
    // The deprecated `/watch/` path prefix: same as `?watch=true`.
    let watch = segs.first() == Some(&"watch");
    if watch {
        segs.remove(0);
    }
    let lookup = |plural: &str| registry.get(group, version, plural).ok_or_else(not_found);
    let target = match segs.as_slice() {
        [] => {
            if registry.group_versions().iter().any(|(g, v)| *g == group && *v == version) {
                Target::GroupVersion { group: group.into(), version: version.into() }
            } else {
                return Err(not_found());
            }
        }
        [res] => Target::Collection { resource: lookup(res)?, namespace: None, watch },
        [res, name] => Target::Object { resource: lookup(res)?, namespace: None, name: (*name).into(), subresource: None, watch },
        ["namespaces", ns, res] if registry.get(group, version, res).is_some_and(|r| r.namespaced) => {
            Target::Collection { resource: lookup(res)?, namespace: Some((*ns).into()), watch }
        }
        [res, name, sub] => Target::Object {
            resource: lookup(res)?,
            namespace: None,
            name: (*name).into(),
            subresource: Some((*sub).into()),
            watch,
        },
        ["namespaces", ns, res, name] => {
            Target::Object { resource: lookup(res)?, namespace: Some((*ns).into()), name: (*name).into(), subresource: None, watch }
        }
        ["namespaces", ns, res, name, sub] => Target::Object {
            resource: lookup(res)?,
            namespace: Some((*ns).into()),
            name: (*name).into(),
            subresource: Some((*sub).into()),
            watch,
        },
        _ => return Err(not_found()),
    };
    // A namespaced resource addressed without a namespace is only a cluster-wide collection.
    if let Target::Object { resource, namespace: None, .. } = &target {
        if resource.namespaced {
            return Err(not_found());
        }
    }
    if let Target::Object { resource, subresource: Some(sub), .. } = &target {
        let known = (sub == "status" && resource.has_status)
            || (sub == "scale" && resource.has_scale)
            || resource.extra_subresources.contains(&sub.as_str());
        if !known {
            return Err(not_found());
        }
    }
    Ok(target)
}

fn not_found() -> ApiError {
    ApiError { code: 404, reason: "NotFound", message: "the server could not find the requested resource".into(), details: None, retry_after_seconds: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(t: &Target) -> String {
        match t {
            Target::GroupVersion { group, version } => format!("gv {group}/{version}"),
            Target::Collection { resource, namespace, watch } => format!("list {} ns={namespace:?} watch={watch}", resource.plural),
            Target::Object { resource, namespace, name, subresource, .. } => {
                format!("obj {} ns={namespace:?} {name} sub={subresource:?}", resource.plural)
            }
        }
    }

    #[test]
    fn paths_resolve_like_the_kubernetes_api_server() {
        let reg = Registry::new();
        let cases = [
            (true, "v1", "gv /v1"),
            (false, "apps/v1", "gv apps/v1"),
            (true, "v1/pods", "list pods ns=None watch=false"),
            (true, "v1/namespaces/default/pods", "list pods ns=Some(\"default\") watch=false"),
            (true, "v1/namespaces/default", "obj namespaces ns=None default sub=None"),
            (true, "v1/namespaces/default/status", "obj namespaces ns=None default sub=Some(\"status\")"),
            (true, "v1/namespaces/default/finalize", "obj namespaces ns=None default sub=Some(\"finalize\")"),
            (true, "v1/namespaces/kube-system/pods/p1/log", "obj pods ns=Some(\"kube-system\") p1 sub=Some(\"log\")"),
            (false, "apps/v1/namespaces/default/deployments/web/scale", "obj deployments ns=Some(\"default\") web sub=Some(\"scale\")"),
            (true, "v1/watch/namespaces/default/pods", "list pods ns=Some(\"default\") watch=true"),
            (true, "v1/nodes/n1", "obj nodes ns=None n1 sub=None"),
        ];
        for (core, path, want) in cases {
            let got = parse(&reg, core, path).map(|t| describe(&t)).unwrap_or_else(|e| e.message);
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn unknown_resources_and_subresources_are_not_found() {
        let reg = Registry::new();
        for (core, path) in [(true, "v2"), (true, "v1/widgets"), (false, "apps/v1/namespaces/d/deployments/w/log"), (true, "v1/pods/p"), (false, "nope")] {
            assert_eq!(parse(&reg, core, path).err().map(|e| e.code), Some(404), "{path}");
        }
    }
}

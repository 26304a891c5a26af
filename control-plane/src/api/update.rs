//! Updates (PUT), patches (PATCH), and the status, scale, binding and finalize subresources.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ApiServer;
use super::error::{ApiError, Cause, Result};
use super::handlers::{admit_err, check_namespace, check_type, field_validation, store_err};
use super::negotiate::Query;
use super::object::{self, meta, meta_mut};
use super::patch::{self, PatchType};
use crate::registry::Resource;
use crate::registry::allocator::Allocation;
use crate::store;

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` (for kinds with a status subresource).
    Main,
    /// Only `status`.
    Status,
}

/// Metadata the server owns: carried over from the stored object whatever the client sent.
const SYSTEM_FIELDS: &[&str] = &["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace", "name"];

const MAX_RETRIES: usize = 16;

impl ApiServer {
    pub async fn update(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        part: Part,
        body: Value,
        q: &Query,
    ) -> Result<(Value, Vec<String>)> {
        let precondition = object::resource_version(&body).map(String::from);
        self.update_checked(res, ns, name, part, q, precondition, |_| Ok(body.clone())).await
    }

    pub async fn patch(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        part: Part,
        ty: PatchType,
        patch: Value,
        q: &Query,
    ) -> Result<(Value, Vec<String>)> {
        if ty == PatchType::Apply && part == Part::Main {
            // Server-side apply creates what does not exist yet.
            match self.get_object(res, ns, name).await {
                Err(e) if e.code == 404 => {
                    let mut body = patch.clone();
                    meta_mut(&mut body).insert("name".into(), json!(name));
                    return self.create(res, ns, body, q).await;
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        let kind = res.kind;
        let precondition = patch_precondition(&patch);
        self.update_checked(res, ns, name, part, q, precondition, |old| patch::apply(kind, ty, old, &patch)).await
    }

    /// Read-modify-write with compare-and-swap: `f` turns the current object into the requested
    /// one, and a concurrent write just means another try.
    pub async fn update_with(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        part: Part,
        q: &Query,
        f: impl Fn(&Value) -> Result<Value>,
    ) -> Result<(Value, Vec<String>)> {
        self.update_checked(res, ns, name, part, q, None, f).await
    }

    /// As `update_with`, with the resourceVersion the client sent (if any) as a precondition:
    /// then a concurrent write is a 409 Conflict instead of another try.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_checked(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        part: Part,
        q: &Query,
        precondition: Option<String>,
        f: impl Fn(&Value) -> Result<Value>,
    ) -> Result<(Value, Vec<String>)> {
        let key = res.key(ns, name);
        for _ in 0..MAX_RETRIES {
            let (old, kv) = self.get_object(res, ns, name).await?;
            let mut body = f(&old)?;
            check_type(res, &mut body)?;
            check_namespace(res, ns, &mut body)?;
            match object::name(&body) {
                Some(n) if n != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                _ => {}
            }
            let client_rv = precondition.clone();
            if let Some(rv) = &client_rv {
                if *rv != kv.mod_revision.to_string() {
                    return Err(store_err(res, name, store::Error::Conflict { key, expected: 0, actual: kv.mod_revision }));
                }
            }
            let new = merge_parts(res, part, &old, body);
            let admitted = res.admit(new, Some(&old)).map_err(|e| admit_err(res, name, e))?;
            let warnings = field_validation(res, q, &admitted.unknown_fields)?;
            let mut obj = admitted.object;
            if res.tracks_generation {
                let g = object::generation(&old).max(1);
                let g = if obj.get("spec") != old.get("spec") { g + 1 } else { g };
                meta_mut(&mut obj).insert("generation".into(), json!(g));
            }
            let allocation = if part == Part::Main { self.allocate(res, &mut obj, Some(&old))? } else { Allocation::none() };
            if same_object(&obj, &old) {
                return Ok((old, warnings));
            }
            if q.dry_run() {
                return Ok((obj, warnings));
            }
            let finished = object::is_deleting(&obj)
                && object::finalizers(&obj).is_empty()
                && !super::handlers::holds_spec_finalizers(&obj)
                && meta(&obj).get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0) == 0;
            let written = if finished {
                self.store.delete(&key, Some(kv.mod_revision)).await.inspect(|_| self.release(res, &obj))
            } else {
                self.store.update(&key, object::to_stored(&obj), kv.mod_revision).await
            };
            match written {
                Ok(kv) => {
                    allocation.commit();
                    if let Some(alloc) = self.service_allocator(res) {
                        alloc.release_dropped(&old, &obj);
                    }
                    meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                    return Ok((obj, warnings));
                }
                Err(store::Error::Conflict { .. }) if client_rv.is_none() => continue,
                Err(e) => return Err(store_err(res, name, e)),
            }
        }
        Err(ApiError::conflict(res.group, res.plural, name, "too many concurrent writes; please try again"))
    }

    fn service_allocator(&self, res: &Resource) -> Option<&Arc<crate::registry::allocator::ServiceAllocator>> {
        (res.kind == "Service" && res.group.is_empty()).then_some(&self.services)
    }

    /// Reserves Service addresses and ports; a no-op for other kinds.
    pub fn allocate(&self, res: &Resource, obj: &mut Value, old: Option<&Value>) -> Result<Allocation> {
        let Some(alloc) = self.service_allocator(res) else { return Ok(Allocation::none()) };
        if let Some(old) = old {
            carry_allocations(obj, old);
        }
        let name = object::name(obj).unwrap_or_default().to_string();
        alloc.allocate(obj, old).map_err(|causes| ApiError::invalid(res.group, res.kind, &name, causes))
    }

    pub fn release(&self, res: &Resource, obj: &Value) {
        if let Some(alloc) = self.service_allocator(res) {
            alloc.release(obj);
        }
    }

    // --- scale ---

    pub async fn get_scale(&self, res: &Arc<Resource>, ns: Option<&str>, name: &str) -> Result<Value> {
        let (obj, _) = self.get_object(res, ns, name).await?;
        Ok(to_scale(&obj))
    }

    pub async fn write_scale(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        change: ScaleChange,
        q: &Query,
    ) -> Result<Value> {
        let precondition = match &change {
            ScaleChange::Replace(s) => object::resource_version(s).map(String::from),
            ScaleChange::Patch(_, p) => patch_precondition(p),
        };
        let (obj, _) = self
            .update_checked(res, ns, name, Part::Main, q, precondition, |old| {
                let scale = match &change {
                    ScaleChange::Replace(s) => s.clone(),
                    ScaleChange::Patch(ty, p) => patch::apply("Scale", *ty, &to_scale(old), p)?,
                };
                let replicas = match &scale["spec"]["replicas"] {
                    Value::Null => 0,
                    v => v.as_i64().filter(|r| (0..=i32::MAX as i64).contains(r)).ok_or_else(|| {
                        ApiError::invalid("autoscaling", "Scale", name, vec![Cause::invalid("spec.replicas", v, "must be greater than or equal to 0")])
                    })?,
                };
                let mut new = old.clone();
                new["spec"]["replicas"] = json!(replicas);
                match object::resource_version(&scale) {
                    Some(rv) => meta_mut(&mut new).insert("resourceVersion".into(), json!(rv)),
                    None => meta_mut(&mut new).remove("resourceVersion"),
                };
                Ok(new)
            })
            .await?;
        Ok(to_scale(&obj))
    }

    // --- binding ---

    /// `pods/NAME/binding`: assigns a pending pod to a node, once.
    pub async fn bind(&self, res: &Arc<Resource>, ns: Option<&str>, name: &str, body: &Value) -> Result<Value> {
        let node = body["target"]["name"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            ApiError::invalid("", "Binding", name, vec![Cause::required("target.name")])
        })?;
        let key = res.key(ns, name);
        for _ in 0..MAX_RETRIES {
            let (mut pod, kv) = self.get_object(res, ns, name).await?;
            if object::is_deleting(&pod) {
                return Err(ApiError::conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host"));
            }
            if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|s| !s.is_empty()) {
                return Err(ApiError::conflict("", "pods", name, &format!("pod {name} is already assigned to node \"{current}\"")));
            }
            pod["spec"]["nodeName"] = json!(node);
            set_condition(&mut pod, "PodScheduled", "True", None, None);
            match self.store.update(&key, object::to_stored(&pod), kv.mod_revision).await {
                Ok(_) => return Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
                Err(store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(store_err(res, name, e)),
            }
        }
        Err(ApiError::conflict("", "pods", name, "too many concurrent writes"))
    }

    /// `namespaces/NAME/finalize`: only `spec.finalizers` changes.
    pub async fn finalize_namespace(&self, res: &Arc<Resource>, name: &str, body: Value, q: &Query) -> Result<Value> {
        let finalizers = body["spec"]["finalizers"].clone();
        let (obj, _) = self
            .update_with(res, None, name, Part::Main, q, |old| {
                let mut new = old.clone();
                new["spec"]["finalizers"] = if finalizers.is_null() { json!([]) } else { finalizers.clone() };
                Ok(new)
            })
            .await?;
        Ok(obj)
    }
}

/// The resourceVersion a patch itself names, which makes it conditional (a JSON patch may
/// `test` it instead, which the patch enforces by itself).
fn patch_precondition(patch: &Value) -> Option<String> {
    patch.get("metadata").and_then(|m| m.get("resourceVersion")).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from)
}

pub enum ScaleChange {
    Replace(Value),
    Patch(PatchType, Value),
}

/// Builds the requested object from the stored one and what the client sent for `part`.
fn merge_parts(res: &Resource, part: Part, old: &Value, body: Value) -> Value {
    let mut new = match part {
        Part::Main => {
            let mut new = body;
            if res.has_status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            new
        }
        Part::Status => {
            let mut new = old.clone();
            new["status"] = body.get("status").cloned().unwrap_or(json!({}));
            new
        }
    };
    let old_meta = meta(old).clone();
    let m = meta_mut(&mut new);
    for f in SYSTEM_FIELDS {
        match old_meta.get(*f) {
            Some(v) => m.insert((*f).to_string(), v.clone()),
            None => m.remove(*f),
        };
    }
    m.remove("resourceVersion");
    m.remove("managedFields");
    new
}

fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta_mut(&mut v).remove("resourceVersion");
        v
    };
    strip(a) == strip(b)
}

/// A Service sent without its allocated values (as `kubectl replace` does) keeps them.
fn carry_allocations(new: &mut Value, old: &Value) {
    let spec = &mut new["spec"];
    if spec["clusterIP"].as_str().unwrap_or("").is_empty() {
        spec["clusterIP"] = old["spec"]["clusterIP"].clone();
        spec["clusterIPs"] = old["spec"]["clusterIPs"].clone();
    }
    for f in ["ipFamilies", "ipFamilyPolicy"] {
        if spec[f].is_null() {
            spec[f] = old["spec"][f].clone();
        }
    }
    let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports.iter_mut() {
            if p["nodePort"].as_u64().unwrap_or(0) == 0 {
                if let Some(o) = old_ports.iter().find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"]) {
                    if !o["nodePort"].is_null() {
                        p["nodePort"] = o["nodePort"].clone();
                    }
                }
            }
        }
    }
}

pub fn to_scale(obj: &Value) -> Value {
    let m = meta(obj);
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| l.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// Sets a status condition, keeping lastTransitionTime when the status does not change.
pub fn set_condition(obj: &mut Value, ty: &str, status: &str, reason: Option<&str>, message: Option<&str>) {
    let now = object::now();
    let conds = &mut obj["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("just made an array");
    let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match list.iter_mut().find(|x| x["type"] == ty) {
        Some(existing) => {
            if existing["status"] == status {
                c["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = c;
        }
        None => list.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_resource_keeps_status_and_the_status_part_keeps_everything_else() {
        let reg = crate::registry::Registry::new();
        let res = reg.get("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "w", "uid": "u1", "generation": 2}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let body = json!({"metadata": {"name": "w", "uid": "forged"}, "spec": {"replicas": 5}, "status": {"replicas": 99}});
        let main = merge_parts(&res, Part::Main, &old, body.clone());
        assert_eq!(main["spec"]["replicas"], 5);
        assert_eq!(main["status"]["replicas"], 1);
        assert_eq!(main["metadata"]["uid"], "u1");
        let status = merge_parts(&res, Part::Status, &old, body);
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 99);
    }

    #[test]
    fn scale_reports_spec_and_status_replicas_and_the_selector() {
        let d = json!({"metadata": {"name": "w", "namespace": "default"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}});
        set_condition(&mut pod, "Ready", "True", None, None);
        assert_eq!(pod["status"]["conditions"][0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        set_condition(&mut pod, "Ready", "False", Some("X"), None);
        assert_ne!(pod["status"]["conditions"][0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        set_condition(&mut pod, "PodScheduled", "True", None, None);
        assert_eq!(pod["status"]["conditions"].as_array().unwrap().len(), 2);
    }
}

//! The verbs on objects: get, list, create, delete, deletecollection.
//! Updates and patches are in [`super::update`], watch in [`super::watch`].

use std::sync::Arc;

use serde_json::{Value, json};

use super::ApiServer;
use super::error::{ApiError, Cause, Result};
use super::negotiate::Query;
use super::object::{self, meta_mut};
use super::selectors::{FieldSelector, LabelSelector};
use crate::registry::{AdmitError, Resource};
use crate::store;

pub fn store_err(res: &Resource, name: &str, e: store::Error) -> ApiError {
    match e {
        store::Error::AlreadyExists(_) => ApiError::already_exists(res.group, res.plural, name),
        store::Error::NotFound(_) => ApiError::not_found(res.group, res.plural, name),
        store::Error::Conflict { .. } => ApiError::conflict(
            res.group,
            res.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        store::Error::Compacted { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        e => ApiError::internal(e.to_string()),
    }
}

/// Maps an admission failure to the Status Kubernetes returns for it.
pub fn admit_err(res: &Resource, name: &str, e: AdmitError) -> ApiError {
    match e {
        AdmitError::Decode(msg) => ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {msg}",
            res.kind, res.version, res.kind
        )),
        AdmitError::Invalid(causes) => ApiError::invalid(res.group, res.kind, name, causes),
    }
}

/// Applies `fieldValidation`: Strict refuses unknown fields, Warn (the default) reports them, Ignore drops them.
pub fn field_validation(res: &Resource, q: &Query, unknown: &[String]) -> Result<Vec<String>> {
    if unknown.is_empty() {
        return Ok(vec![]);
    }
    match q.get("fieldValidation") {
        Some("Strict") => {
            let list = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ");
            Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {list}",
                res.kind, res.version, res.kind
            )))
        }
        Some("Ignore") => Ok(vec![]),
        _ => Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect()),
    }
}

/// Checks (or fills in) apiVersion and kind of a body sent to `res`.
pub fn check_type(res: &Resource, body: &mut Value) -> Result<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!("{} must be a JSON object", res.kind)));
    }
    let want_av = res.api_version();
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => body["apiVersion"] = json!(want_av),
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match body.get("kind").and_then(Value::as_str) {
        None | Some("") => body["kind"] = json!(res.kind),
        Some(k) if k == res.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!("the kind in the data ({k}) does not match the expected kind ({})", res.kind)));
        }
    }
    Ok(())
}

/// Puts the request's namespace into the body, refusing a different one.
pub fn check_namespace(res: &Resource, ns: Option<&str>, body: &mut Value) -> Result<()> {
    if !res.namespaced {
        meta_mut(body).remove("namespace");
        return Ok(());
    }
    let ns = ns.ok_or_else(|| ApiError::bad_request("a namespace is required for this resource"))?;
    match object::namespace(body) {
        Some(n) if n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(body).insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

impl ApiServer {
    pub async fn get_object(&self, res: &Arc<Resource>, ns: Option<&str>, name: &str) -> Result<(Value, store::KeyValue)> {
        let kv = self
            .store
            .get(&res.key(ns, name))
            .await
            .map_err(|e| store_err(res, name, e))?
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        let obj = object::from_kv(&kv).ok_or_else(|| ApiError::internal(format!("stored {} {name} does not decode", res.kind)))?;
        Ok((obj, kv))
    }

    /// Objects of `res` (in `ns`, or everywhere) that match the query's selectors, and the list revision.
    pub async fn list_objects(&self, res: &Resource, ns: Option<&str>, q: &Query) -> Result<(Vec<Value>, u64)> {
        let (labels, fields) = selectors(res, q)?;
        let (kvs, rev) = self.store.list(&res.prefix(ns)).await.map_err(|e| store_err(res, "", e))?;
        let items = kvs
            .iter()
            .filter_map(object::from_kv)
            .filter(|o| labels.matches_json(object::labels(o)) && fields.matches(o))
            .collect();
        Ok((items, rev))
    }

    pub async fn list(&self, res: &Resource, ns: Option<&str>, q: &Query) -> Result<Value> {
        let (items, rev) = self.list_objects(res, ns, q).await?;
        Ok(json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": rev.to_string()},
            "items": items.into_iter().map(object::strip_type).collect::<Vec<_>>(),
        }))
    }

    async fn require_namespace(&self, res: &Resource, ns: Option<&str>) -> Result<()> {
        let Some(ns) = ns.filter(|_| res.namespaced) else { return Ok(()) };
        let nsres = self.registry.get("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces resource"))?;
        let (nsobj, _) = self.get_object(&nsres, None, ns).await?;
        if object::is_deleting(&nsobj) {
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.plural,
                "",
            )));
        }
        Ok(())
    }

    /// Create. Returns the stored object and warnings for the client.
    pub async fn create(&self, res: &Arc<Resource>, ns: Option<&str>, mut body: Value, q: &Query) -> Result<(Value, Vec<String>)> {
        check_type(res, &mut body)?;
        check_namespace(res, ns, &mut body)?;
        let m = meta_mut(&mut body);
        if m.get("name").and_then(Value::as_str).unwrap_or("").is_empty() {
            if let Some(prefix) = m.get("generateName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                let name = format!("{prefix}{}", object::random_suffix(5));
                m.insert("name".into(), json!(name));
            } else {
                return Err(ApiError::invalid(
                    res.group,
                    res.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired",
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
        }
        for f in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(object::now()));
        if res.tracks_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        let name = object::name(&body).unwrap_or_default().to_string();
        self.require_namespace(res, ns).await?;
        self.prepare_create(res, &mut body);
        let admitted = res.admit(body, None).map_err(|e| admit_err(res, &name, e))?;
        let warnings = field_validation(res, q, &admitted.unknown_fields)?;
        let mut obj = admitted.object;
        let allocation = self.allocate(res, &mut obj, None)?;
        if q.dry_run() {
            return Ok((obj, warnings));
        }
        match self.store.create(&res.key(ns, &name), object::to_stored(&obj)).await {
            Ok(kv) => {
                allocation.commit();
                meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                Ok((obj, warnings))
            }
            Err(e) => Err(store_err(res, &name, e)),
        }
    }

    /// Kind-specific resets on create (status belongs to controllers, not to the creator).
    fn prepare_create(&self, res: &Resource, obj: &mut Value) {
        match res.kind {
            "Deployment" | "ReplicaSet" | "Service" => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
            "Pod" => {
                obj["status"] = json!({"phase": "Pending"});
                // The ServiceAccount admission plugin's default (it also mounts the account's
                // token, which this cluster does not issue), and v1's deprecated alias of it.
                // A value of the wrong type is left for admission to refuse with its path.
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    let unset = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
                    if unset(spec.get("serviceAccountName")) && unset(spec.get("serviceAccount")) {
                        spec.insert("serviceAccountName".into(), json!("default"));
                    } else if unset(spec.get("serviceAccountName")) {
                        let legacy = spec["serviceAccount"].clone();
                        spec.insert("serviceAccountName".into(), legacy);
                    }
                    if unset(spec.get("serviceAccount")) {
                        let name = spec["serviceAccountName"].clone();
                        spec.insert("serviceAccount".into(), name);
                    }
                }
            }
            "Namespace" => {
                obj["status"] = json!({"phase": "Active"});
                if obj["spec"]["finalizers"].is_null() {
                    obj["spec"]["finalizers"] = json!(["kubernetes"]);
                }
            }
            _ => {}
        }
    }

    /// Delete with Kubernetes' semantics: preconditions, finalizers, graceful pod deletion,
    /// and `propagationPolicy` turned into the finalizers the garbage collector acts on.
    pub async fn delete(&self, res: &Arc<Resource>, ns: Option<&str>, name: &str, opts: &DeleteOptions) -> Result<(u16, Value)> {
        let key = res.key(ns, name);
        loop {
            let (mut obj, kv) = self.get_object(res, ns, name).await?;
            if let Some(uid) = &opts.precondition_uid {
                if object::uid(&obj) != Some(uid.as_str()) {
                    return Err(ApiError::conflict(res.group, res.plural, name, &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}", object::uid(&obj).unwrap_or("")
                    )));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if object::resource_version(&obj) != Some(rv.as_str()) {
                    return Err(ApiError::conflict(res.group, res.plural, name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object::resource_version(&obj).unwrap_or("")
                    )));
                }
            }
            let mut finalizers = object::finalizers(&obj);
            let policy_finalizer = match opts.propagation.as_deref() {
                Some("Foreground") => Some("foregroundDeletion"),
                Some("Orphan") => Some("orphan"),
                _ => None,
            };
            if let Some(f) = policy_finalizer {
                if !finalizers.iter().any(|x| x == f) {
                    finalizers.push(f.to_string());
                }
            }
            let grace = self.grace_period(res, &obj, opts);
            let deleting = object::is_deleting(&obj);
            if finalizers.is_empty() && grace == 0 && !holds_spec_finalizers(&obj) {
                if opts.dry_run {
                    return Ok((200, obj));
                }
                return match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(gone) => {
                        self.release(res, &obj);
                        meta_mut(&mut obj).insert("resourceVersion".into(), json!(gone.mod_revision.to_string()));
                        Ok((200, obj))
                    }
                    Err(store::Error::Conflict { .. }) => continue,
                    Err(e) => Err(store_err(res, name, e)),
                };
            }
            // Graceful: mark the object; whoever owns the finalizers (or the node, for pods) finishes the job.
            let m = meta_mut(&mut obj);
            let current_grace = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
            if deleting && current_grace.is_some_and(|g| g <= grace) && policy_finalizer.is_none() {
                return Ok((202, obj));
            }
            if !deleting || current_grace.is_some_and(|g| g > grace) {
                let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                m.insert("deletionTimestamp".into(), json!(object::timestamp(when)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            object::set_finalizers(&mut obj, &finalizers);
            if opts.dry_run {
                return Ok((202, obj));
            }
            match self.store.update(&key, object::to_stored(&obj), kv.mod_revision).await {
                Ok(kv) => {
                    meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                    return Ok((202, obj));
                }
                Err(store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(store_err(res, name, e)),
            }
        }
    }

    /// Seconds a deletion waits for the workload: only pods bound to a node and still running wait.
    fn grace_period(&self, res: &Resource, obj: &Value, opts: &DeleteOptions) -> i64 {
        if res.kind != "Pod" {
            return 0;
        }
        let bound = obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
        let finished = matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        if !bound || finished {
            return 0;
        }
        opts.grace_period
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0)
    }

    pub async fn delete_collection(&self, res: &Arc<Resource>, ns: Option<&str>, q: &Query, opts: &DeleteOptions) -> Result<Value> {
        let (items, _) = self.list_objects(res, ns, q).await?;
        let mut deleted = Vec::new();
        for item in items {
            let name = object::name(&item).unwrap_or_default().to_string();
            match self.delete(res, object::namespace(&item), &name, opts).await {
                Ok((_, obj)) => deleted.push(object::strip_type(obj)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {},
            "items": deleted,
        }))
    }
}

/// Namespaces also wait for `spec.finalizers` (the namespace controller empties them).
pub fn holds_spec_finalizers(obj: &Value) -> bool {
    obj["kind"] == "Namespace" && obj["spec"]["finalizers"].as_array().is_some_and(|a| !a.is_empty())
}

/// The parts of `DeleteOptions` (body or query) we act on.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn from_request(q: &Query, body: Option<&Value>) -> Result<Self> {
        let mut o = DeleteOptions {
            grace_period: q.int("gracePeriodSeconds")?,
            propagation: q.get("propagationPolicy").map(String::from),
            dry_run: q.dry_run(),
            ..Default::default()
        };
        if q.get("orphanDependents") == Some("true") && o.propagation.is_none() {
            o.propagation = Some("Orphan".into());
        }
        if let Some(b) = body {
            if let Some(g) = b.get("gracePeriodSeconds") {
                o.grace_period = Some(g.as_i64().ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?);
            }
            if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if b.get("orphanDependents") == Some(&json!(true)) && o.propagation.is_none() {
                o.propagation = Some("Orphan".into());
            }
            o.precondition_uid = b["preconditions"]["uid"].as_str().map(String::from);
            o.precondition_rv = b["preconditions"]["resourceVersion"].as_str().map(String::from);
            if b.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All")) {
                o.dry_run = true;
            }
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Foreground" | "Background" | "Orphan") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        Ok(o)
    }
}

pub fn selectors(res: &Resource, q: &Query) -> Result<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    fields.validate_for_group(res.group, res.kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
}

//! The four patch types kubectl and client libraries send.

pub mod schema;
pub mod strategic;

use serde_json::Value;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies `patch` to `original` (an object of `kind`). Server-side apply is approximated by a
/// strategic merge of the applied configuration: fields it names win, nothing else is removed.
pub fn apply(kind: &str, ty: PatchType, original: &Value, patch: &Value) -> Result<Value, ApiError> {
    match ty {
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut out = original.clone();
            json_patch::patch(&mut out, &p).map_err(|e| ApiError::unprocessable(format!("the JSON patch could not be applied: {e}")))?;
            Ok(out)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut out = original.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
            }
            strategic::apply(kind, original, patch).map_err(|e| match e.status_code() {
                422 => ApiError::unprocessable(e.to_string()),
                400 => ApiError::bad_request(e.to_string()),
                _ => ApiError::internal(e.to_string()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_pick_the_patch_type() {
        assert_eq!(PatchType::from_content_type("application/strategic-merge-patch+json").unwrap(), PatchType::Strategic);
        assert_eq!(PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(), PatchType::Merge);
        assert_eq!(PatchType::from_content_type("text/plain").unwrap_err().code, 415);
    }

    #[test]
    fn json_patch_and_merge_patch_follow_their_rfcs() {
        let obj = json!({"spec": {"replicas": 1, "paused": true}});
        let p = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}, {"op": "remove", "path": "/spec/paused"}]);
        assert_eq!(apply("Deployment", PatchType::Json, &obj, &p).unwrap(), json!({"spec": {"replicas": 3}}));
        let bad = json!([{"op": "test", "path": "/spec/replicas", "value": 9}]);
        assert_eq!(apply("Deployment", PatchType::Json, &obj, &bad).unwrap_err().code, 422);
        let m = json!({"spec": {"paused": null, "replicas": 2}});
        assert_eq!(apply("Deployment", PatchType::Merge, &obj, &m).unwrap(), json!({"spec": {"replicas": 2}}));
        assert_eq!(apply("Deployment", PatchType::Merge, &obj, &json!([1])).unwrap_err().code, 400);
    }
}

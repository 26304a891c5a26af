//! `/openapi/v2` as kubectl 1.27 and 1.28 read it: a gnostic `openapi.v2.Document` in protobuf.
//!
//! Those kubectl versions decide from this document whether the server validates fields itself
//! (a `fieldValidation` query parameter on each kind's PATCH operation); without it they fail.
//! Only the messages and fields on that path are declared; tags follow gnostic's OpenAPIv2.proto.

use prost::Message;

use crate::registry::Registry;

#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    /// oneof: Parameter = 1
    #[prost(message, optional, tag = "1")]
    pub parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    /// oneof: NonBodyParameter = 2
    #[prost(message, optional, tag = "2")]
    pub non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    /// oneof: QueryParameterSubSchema = 3
    #[prost(message, optional, tag = "3")]
    pub query_parameter_sub_schema: Option<QueryParameterSubSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryParameterSubSchema {
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub r#type: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

fn query(name: &str) -> ParametersItem {
    ParametersItem {
        parameter: Some(Parameter {
            non_body_parameter: Some(NonBodyParameter {
                query_parameter_sub_schema: Some(QueryParameterSubSchema { r#in: "query".into(), name: name.into(), r#type: "string".into() }),
            }),
        }),
    }
}

pub fn document(reg: &Registry) -> Document {
    let mut paths = Vec::new();
    for r in reg.all() {
        let base = if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
        let name = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let gvk = format!("group: \"{}\"\nkind: {}\nversion: {}\n", r.group, r.kind, r.version);
        paths.push(NamedPathItem {
            name,
            value: Some(PathItem {
                patch: Some(Operation {
                    operation_id: format!("patch{}", r.kind),
                    parameters: vec![query("dryRun"), query("fieldManager"), query("fieldValidation")],
                    vendor_extension: vec![NamedAny {
                        name: "x-kubernetes-group-version-kind".into(),
                        value: Some(Any { yaml: gvk }),
                    }],
                }),
            }),
        });
    }
    Document {
        swagger: "2.0".into(),
        info: Some(Info {
            title: "Kubernetes".into(),
            version: format!("v{}.{}.0", super::discovery::KUBE_MAJOR, super::discovery::KUBE_MINOR),
        }),
        paths: Some(Paths { path: paths }),
    }
}

pub fn protobuf(reg: &Registry) -> Vec<u8> {
    document(reg).encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_round_trips_and_names_field_validation_for_each_kind() {
        let reg = Registry::new();
        let bytes = protobuf(&reg);
        let doc = Document::decode(bytes.as_slice()).unwrap();
        let paths = doc.paths.unwrap().path;
        let deploy = paths.iter().find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}").unwrap();
        let op = deploy.value.as_ref().unwrap().patch.as_ref().unwrap();
        assert!(op.parameters.iter().any(|p| {
            p.parameter.as_ref().and_then(|p| p.non_body_parameter.as_ref()).and_then(|n| n.query_parameter_sub_schema.as_ref()).is_some_and(|q| q.name == "fieldValidation")
        }));
        assert!(op.vendor_extension[0].value.as_ref().unwrap().yaml.contains("kind: Deployment"));
    }
}

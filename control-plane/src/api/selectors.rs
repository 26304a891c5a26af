//! PLACEHOLDER until the real selectors module lands (same API).
use std::collections::BTreeMap;
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);
#[derive(Clone, Debug, Default)]
pub struct LabelSelector { reqs: Vec<(String, String)> }
impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut reqs = vec![];
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| Error(format!("unable to parse requirement: {part}")))?;
            reqs.push((k.to_string(), v.to_string()));
        }
        Ok(Self { reqs })
    }
    pub fn from_api(_: &Value) -> Result<Self, Error> { Ok(Self::default()) }
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool { self.reqs.iter().all(|(k, v)| labels.get(k) == Some(v)) }
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        self.reqs.iter().all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(|x| x.as_str()) == Some(v.as_str()))
    }
    pub fn is_empty(&self) -> bool { self.reqs.is_empty() }
}
#[derive(Clone, Debug, Default)]
pub struct FieldSelector { reqs: Vec<(String, String)> }
impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, Error> { let l = LabelSelector::parse(s)?; Ok(Self { reqs: l.reqs }) }
    pub fn validate_for(&self, _kind: &str) -> Result<(), Error> { Ok(()) }
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(k, v)| {
            let mut cur = obj;
            for p in k.split('.') { cur = cur.get(p).unwrap_or(&Value::Null); }
            cur.as_str().unwrap_or("") == v
        })
    }
    pub fn exact(&self, field: &str) -> Option<&str> { self.reqs.iter().find(|(k, _)| k == field).map(|(_, v)| v.as_str()) }
    pub fn is_empty(&self) -> bool { self.reqs.is_empty() }
}

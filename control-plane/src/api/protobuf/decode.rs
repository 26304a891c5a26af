//! Schema-driven conversion of one protobuf message into Kubernetes JSON.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::table::{Field, Kind, Message, Special, message};
use super::wire::{Reader, WireType};
use super::{Error, Result, format};

/// Nesting limit for messages; legitimate objects (even CRD schemas) stay far below it.
pub const MAX_DEPTH: usize = 100;

/// Decodes `bytes` as `msg` into a JSON value; None when Kubernetes' JSON would be null
/// (e.g. a zero Time).
pub fn message_value(msg: &'static Message, bytes: &[u8], depth: usize) -> Result<Option<Value>> {
    let mut obj = Map::new();
    decode_into(msg, bytes, depth, &mut obj)?;
    special(msg, obj)
}

/// Decodes the fields of `msg` from `bytes` into `out` (which inlined structs share with their parent).
pub fn decode_into(
    msg: &'static Message,
    bytes: &[u8],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    let wire = |source| Error::Wire {
        message: msg.name,
        source,
    };
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (tag, wt) = r.key().map_err(wire)?;
        let Some(field) = msg.field(tag) else {
            r.skip(wt).map_err(wire)?;
            continue;
        };
        let want = expected_wire_type(field.kind);
        let packed = field.repeated && wt == WireType::Len && want != WireType::Len;
        if wt != want && !packed {
            return Err(Error::WrongWireType {
                message: msg.name,
                field: field.json,
                tag,
                expected: want,
                found: wt,
            });
        }
        match field.kind {
            Kind::Inline(i) => {
                let data = r.bytes().map_err(wire)?;
                decode_into(message(i), data, depth + 1, out)?;
            }
            Kind::MapS | Kind::MapB | Kind::MapM(_) => {
                let data = r.bytes().map_err(wire)?;
                let (key, value) = map_entry(msg, field, data, depth)?;
                let entry = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = entry {
                    map.insert(key, value);
                }
            }
            _ if packed => {
                let data = r.bytes().map_err(wire)?;
                let mut inner = Reader::new(data);
                while !inner.is_empty() {
                    let v = scalar(msg, field, &mut inner)?;
                    push(out, field.json, v);
                }
            }
            _ => {
                let value = match field.kind {
                    Kind::M(i) => {
                        let data = r.bytes().map_err(wire)?;
                        message_value(message(i), data, depth + 1)?
                    }
                    _ => Some(scalar(msg, field, &mut r)?),
                };
                set(out, field, value);
            }
        }
    }
    Ok(())
}

fn expected_wire_type(kind: Kind) -> WireType {
    match kind {
        Kind::Bool | Kind::I32 | Kind::I64 => WireType::Varint,
        Kind::F64 => WireType::Fixed64,
        _ => WireType::Len,
    }
}

fn push(out: &mut Map<String, Value>, key: &str, value: Value) {
    match out.get_mut(key) {
        Some(Value::Array(items)) => items.push(value),
        _ => {
            out.insert(key.to_string(), Value::Array(vec![value]));
        }
    }
}

/// Stores a decoded value; None and empty singular strings remove the key, because Go writes
/// non-pointer strings even when empty and its JSON would have omitted them.
fn set(out: &mut Map<String, Value>, field: &Field, value: Option<Value>) {
    if field.repeated {
        push(out, field.json, value.unwrap_or(Value::Null));
        return;
    }
    match value {
        None => {
            out.remove(field.json);
        }
        Some(Value::String(s)) if s.is_empty() && field.kind == Kind::S => {
            out.remove(field.json);
        }
        // A message field seen twice merges, as in protobuf.
        Some(Value::Object(new)) => match out.get_mut(field.json) {
            Some(Value::Object(old)) => old.extend(new),
            _ => {
                out.insert(field.json.to_string(), Value::Object(new));
            }
        },
        Some(v) => {
            out.insert(field.json.to_string(), v);
        }
    }
}

/// Reads one non-message value; the wire type has been checked by the caller.
fn scalar(msg: &'static Message, field: &Field, r: &mut Reader<'_>) -> Result<Value> {
    let wire = |source| Error::Wire {
        message: msg.name,
        source,
    };
    Ok(match field.kind {
        // Go truncates a varint to 32 bits for int32, the same as `as`.
        Kind::I32 => Value::from(r.varint().map_err(wire)? as i32),
        Kind::I64 => Value::from(r.varint().map_err(wire)? as i64),
        Kind::Bool => Value::Bool(r.varint().map_err(wire)? != 0),
        Kind::F64 => {
            let v = f64::from_bits(r.fixed64().map_err(wire)?);
            Value::Number(
                Number::from_f64(v).ok_or_else(|| {
                    invalid(msg, format!("{}: {v} is not a JSON number", field.json))
                })?,
            )
        }
        Kind::S => Value::String(String::from_utf8_lossy(r.bytes().map_err(wire)?).into_owned()),
        Kind::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(r.bytes().map_err(wire)?),
        ),
        Kind::Json => {
            let data = r.bytes().map_err(wire)?;
            if data.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(data).map_err(|source| Error::InvalidJson {
                    message: msg.name,
                    source,
                })?
            }
        }
        Kind::M(_) | Kind::Inline(_) | Kind::MapS | Kind::MapB | Kind::MapM(_) => {
            return Err(invalid(msg, format!("{} is not a scalar", field.json)));
        }
    })
}

/// Decodes a map entry message {key = 1, value = 2}; absent parts take their zero values.
fn map_entry(
    msg: &'static Message,
    field: &Field,
    data: &[u8],
    depth: usize,
) -> Result<(String, Value)> {
    let wire = |source| Error::Wire {
        message: msg.name,
        source,
    };
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (tag, wt) = r.key().map_err(wire)?;
        if tag != 1 && tag != 2 {
            r.skip(wt).map_err(wire)?;
            continue;
        }
        if wt != WireType::Len {
            return Err(Error::WrongWireType {
                message: msg.name,
                field: field.json,
                tag,
                expected: WireType::Len,
                found: wt,
            });
        }
        let bytes = r.bytes().map_err(wire)?;
        if tag == 1 {
            key = String::from_utf8_lossy(bytes).into_owned();
        } else {
            value = Some(bytes);
        }
    }
    let bytes = value.unwrap_or_default();
    let value = match field.kind {
        Kind::MapB => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Kind::MapM(i) => message_value(message(i), bytes, depth + 1)?.unwrap_or(Value::Null),
        _ => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    };
    Ok((key, value))
}

fn invalid(msg: &'static Message, reason: String) -> Error {
    Error::InvalidValue {
        message: msg.name,
        reason,
    }
}

/// The decoded value of the field with `tag`, if present.
fn get<'m>(msg: &Message, obj: &'m Map<String, Value>, tag: u32) -> Option<&'m Value> {
    obj.get(msg.field(tag)?.json)
}

fn get_i64(msg: &Message, obj: &Map<String, Value>, tag: u32) -> i64 {
    get(msg, obj, tag).and_then(Value::as_i64).unwrap_or(0)
}

fn non_empty_array(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
}

/// Applies the hand-written JSON forms of Kubernetes' special types.
fn special(msg: &'static Message, obj: Map<String, Value>) -> Result<Option<Value>> {
    Ok(match msg.special {
        Special::No => Some(Value::Object(obj)),
        Special::Time | Special::MicroTime => {
            let (seconds, nanos) = (get_i64(msg, &obj, 1), get_i64(msg, &obj, 2));
            // Go decodes {0, 0} as the zero time, which its JSON writes as null.
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            let digits = if msg.special == Special::MicroTime {
                6
            } else {
                0
            };
            let text = format::rfc3339(seconds, nanos, digits).ok_or_else(|| {
                invalid(
                    msg,
                    format!("time {seconds}s {nanos}ns is outside years 0-9999"),
                )
            })?;
            Some(Value::String(text))
        }
        Special::Duration => Some(Value::String(format::go_duration(get_i64(msg, &obj, 1)))),
        Special::IntOrString => match get_i64(msg, &obj, 1) {
            0 => Some(Value::from(get_i64(msg, &obj, 2))),
            1 => Some(
                get(msg, &obj, 3)
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new())),
            ),
            other => return Err(invalid(msg, format!("impossible IntOrString type {other}"))),
        },
        Special::Quantity => match get(msg, &obj, 1) {
            Some(v @ Value::String(_)) => Some(v.clone()),
            // Go's ParseQuantity rejects the empty string.
            _ => return Err(invalid(msg, "empty quantity".to_string())),
        },
        Special::RawJson => get(msg, &obj, 1).filter(|v| !v.is_null()).cloned(),
        Special::StringItems => Some(
            get(msg, &obj, 1)
                .cloned()
                .unwrap_or_else(|| Value::Array(Vec::new())),
        ),
        // apiextensions' JSONSchemaPropsOr* marshal as whichever alternative is set.
        Special::SchemaOrArray => {
            non_empty_array(get(msg, &obj, 2)).or_else(|| get(msg, &obj, 1).cloned())
        }
        Special::SchemaOrBool => match get(msg, &obj, 2) {
            Some(schema) => Some(schema.clone()),
            None => Some(get(msg, &obj, 1).cloned().unwrap_or(Value::Bool(false))),
        },
        Special::SchemaOrStringArray => {
            non_empty_array(get(msg, &obj, 2)).or_else(|| get(msg, &obj, 1).cloned())
        }
    })
}

//! The CloudEvent model and its JSON event format (structured mode): parsing with full
//! validation (spec 1.0, with 0.3 converted on the way in) and serialisation. Data keeps
//! its nature: JSON stays JSON, text stays text, anything else is kept as bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::{Limits, Problem};

mod stored;

/// A CloudEvent (spec 1.0). Required attributes are plain strings, optional ones `Option`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub datacontenttype: Option<String>,
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    pub time: Option<String>,
    pub extensions: BTreeMap<String, ExtValue>,
    pub data: Option<Data>,
}

/// An extension attribute value: the CloudEvents types that JSON can carry natively.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtValue {
    String(String),
    Integer(i64),
    Bool(bool),
}

impl ExtValue {
    /// The canonical string form (as used in `ce-` headers).
    pub fn to_canonical_string(&self) -> String {
        match self {
            ExtValue::String(s) => s.clone(),
            ExtValue::Integer(i) => i.to_string(),
            ExtValue::Bool(b) => b.to_string(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            ExtValue::String(s) => Value::String(s.clone()),
            ExtValue::Integer(i) => Value::from(*i),
            ExtValue::Bool(b) => Value::Bool(*b),
        }
    }
}

/// Event payload. `Json` is stored and re-emitted as JSON; `Text` as a string; `Binary`
/// as bytes (`data_base64` in the JSON format).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
}

impl Data {
    /// The payload as one JSON value: JSON as it is, text as a string, bytes as base64
    /// text (for contexts that hold payloads, such as a workflow instance's).
    pub fn to_json_value(&self) -> Value {
        match self {
            Data::Json(v) => v.clone(),
            Data::Text(s) => Value::String(s.clone()),
            Data::Binary(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        }
    }

    /// The payload as the bytes of an HTTP body in binary mode.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Data::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Data::Text(s) => s.as_bytes().to_vec(),
            Data::Binary(b) => b.clone(),
        }
    }
}

/// Serialises an event in the JSON event format, field by field.
struct JsonFormat<'a>(&'a Event);

impl serde::Serialize for JsonFormat<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("specversion", "1.0")?;
        m.serialize_entry("id", &e.id)?;
        m.serialize_entry("source", &e.source)?;
        m.serialize_entry("type", &e.ty)?;
        for (k, v) in e.optional_attributes() {
            m.serialize_entry(k, v)?;
        }
        for (k, v) in &e.extensions {
            match v {
                ExtValue::String(x) => m.serialize_entry(k, x)?,
                ExtValue::Integer(x) => m.serialize_entry(k, x)?,
                ExtValue::Bool(x) => m.serialize_entry(k, x)?,
            }
        }
        match &e.data {
            Some(Data::Json(v)) => m.serialize_entry("data", v)?,
            Some(Data::Text(t)) => m.serialize_entry("data", t)?,
            Some(Data::Binary(b)) => m.serialize_entry(
                "data_base64",
                &base64::engine::general_purpose::STANDARD.encode(b),
            )?,
            None => {}
        }
        m.end()
    }
}

/// Context attributes that are strings whatever the event (never an Integer or Boolean).
pub const STRING_ATTRIBUTES: [&str; 7] = [
    "id",
    "source",
    "specversion",
    "type",
    "subject",
    "datacontenttype",
    "dataschema",
];

/// True when a media type says the body is JSON (`application/json`, `*/*+json`, `text/json`).
pub fn is_json_media_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn is_text_media_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence == "application/xml"
        || essence.ends_with("+xml")
        || essence == "application/x-www-form-urlencoded"
}

/// The core context attributes in the order the JSON format writes them, then `data`:
/// names no extension may take.
pub const CONTEXT_ATTRIBUTES: [&str; 9] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
    "data",
];

impl Event {
    /// A new event with the required attributes and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Event {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// The value of a context attribute (core or extension) in its canonical string form.
    pub fn attribute(&self, name: &str) -> Option<String> {
        match name {
            "specversion" => Some("1.0".to_string()),
            "id" => Some(self.id.clone()),
            "source" => Some(self.source.clone()),
            "type" => Some(self.ty.clone()),
            "datacontenttype" => self.datacontenttype.clone(),
            "dataschema" => self.dataschema.clone(),
            "subject" => self.subject.clone(),
            "time" => self.time.clone(),
            other => self
                .extensions
                .get(other)
                .map(ExtValue::to_canonical_string),
        }
    }

    /// A borrowed view of a string-valued attribute, without allocating (routing hot path).
    pub fn attribute_str(&self, name: &str) -> Option<&str> {
        match name {
            "specversion" => Some("1.0"),
            "id" => Some(&self.id),
            "source" => Some(&self.source),
            "type" => Some(&self.ty),
            "datacontenttype" => self.datacontenttype.as_deref(),
            "dataschema" => self.dataschema.as_deref(),
            "subject" => self.subject.as_deref(),
            "time" => self.time.as_deref(),
            other => match self.extensions.get(other) {
                Some(ExtValue::String(s)) => Some(s),
                _ => None,
            },
        }
    }

    /// The optional core attributes that are set, by name.
    pub fn optional_attributes(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
            ("subject", &self.subject),
            ("time", &self.time),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// The context attributes as a JSON object (no data), e.g. for filter languages.
    pub fn attributes_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("specversion".into(), Value::String("1.0".into()));
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("source".into(), Value::String(self.source.clone()));
        m.insert("type".into(), Value::String(self.ty.clone()));
        for (k, v) in self.optional_attributes() {
            m.insert(k.into(), Value::String(v.clone()));
        }
        for (k, v) in &self.extensions {
            m.insert(k.clone(), v.to_json());
        }
        m
    }

    /// The event in the JSON event format (structured mode).
    pub fn to_json(&self) -> Value {
        let mut m = self.attributes_json();
        match &self.data {
            Some(Data::Json(v)) => {
                m.insert("data".into(), v.clone());
            }
            Some(Data::Text(s)) => {
                m.insert("data".into(), Value::String(s.clone()));
            }
            Some(Data::Binary(b)) => {
                let enc = base64::engine::general_purpose::STANDARD.encode(b);
                m.insert("data_base64".into(), Value::String(enc));
            }
            None => {}
        }
        Value::Object(m)
    }

    /// Compact JSON event format bytes, written straight from the fields (the ingest hot
    /// path: no intermediate `Value`).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&JsonFormat(self)).unwrap_or_default()
    }

    /// Parse one event in the JSON event format. `0.3` events are converted to 1.0.
    pub fn from_json_value(value: Value, limits: &Limits) -> Result<Event, Problem> {
        let event = Event::parse_json_value(value)?;
        event.validate(limits)?;
        Ok(event)
    }

    /// Read back an event Herald stored itself (validated when it arrived, so not again:
    /// a later change of limits must not make stored events undeliverable).
    pub fn from_stored_json(bytes: &[u8]) -> Result<Event, Problem> {
        if let Some(event) = stored::read(bytes) {
            return Ok(event);
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Problem::invalid_event(format!("stored event is not valid JSON: {e}")))?;
        Event::parse_json_value(value)
    }

    /// The structural part of parsing (types and required members), without limits.
    fn parse_json_value(value: Value) -> Result<Event, Problem> {
        let Value::Object(mut obj) = value else {
            return Err(Problem::invalid_event(
                "a structured CloudEvent must be a JSON object",
            ));
        };
        let specversion = take_string(&mut obj, "specversion")?
            .ok_or_else(|| Problem::invalid_event("required attribute 'specversion' is missing"))?;
        let v03 = match specversion.as_str() {
            "1.0" => false,
            "0.3" => true,
            other => return Err(unsupported_specversion(other)),
        };
        let id = required(&mut obj, "id")?;
        let source = required(&mut obj, "source")?;
        let ty = required(&mut obj, "type")?;
        let datacontenttype = take_string(&mut obj, "datacontenttype")?;
        let mut dataschema = take_string(&mut obj, "dataschema")?;
        let subject = take_string(&mut obj, "subject")?;
        let time = take_string(&mut obj, "time")?;
        let mut base64_encoded = false;
        if v03 {
            if let Some(url) = take_string(&mut obj, "schemaurl")? {
                dataschema = Some(url);
            }
            if let Some(enc) = take_string(&mut obj, "datacontentencoding")? {
                if !enc.eq_ignore_ascii_case("base64") {
                    return Err(Problem::invalid_event(format!(
                        "datacontentencoding '{enc}' is not supported; only 'base64' is defined by CloudEvents 0.3"
                    )));
                }
                base64_encoded = true;
            }
        }
        let data = obj.remove("data").filter(|v| !v.is_null());
        let data_base64 = obj.remove("data_base64").filter(|v| !v.is_null());
        let data = event_data(
            data,
            data_base64,
            datacontenttype.as_deref(),
            base64_encoded,
        )?;
        let mut extensions = BTreeMap::new();
        for (name, value) in obj {
            if let Some(value) = ext_value(&name, value)? {
                extensions.insert(name, value);
            }
        }
        Ok(Event {
            id,
            source,
            ty,
            datacontenttype,
            dataschema,
            subject,
            time,
            extensions,
            data,
        })
    }

    /// Parse received JSON event format bytes.
    pub fn from_json_bytes(bytes: &[u8], limits: &Limits) -> Result<Event, Problem> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Problem::invalid_event(format!("body is not valid JSON: {e}")))?;
        Event::from_json_value(value, limits)
    }

    /// Check every rule of the spec and of our limits that parsing alone does not.
    pub fn validate(&self, limits: &Limits) -> Result<(), Problem> {
        for (name, value) in [
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.ty),
        ] {
            if value.is_empty() {
                return Err(Problem::invalid_event(format!(
                    "required attribute '{name}' must be a non-empty string"
                )));
            }
        }
        if let Some(t) = &self.time {
            if chrono::DateTime::parse_from_rfc3339(t).is_err() {
                return Err(Problem::invalid_event(format!(
                    "attribute 'time' must be an RFC 3339 timestamp, got '{t}'"
                )));
            }
        }
        if self.extensions.len() > limits.max_extensions {
            return Err(Problem::invalid_event(format!(
                "an event may carry at most {} extension attributes; this one has {}",
                limits.max_extensions,
                self.extensions.len()
            )));
        }
        for name in self.extensions.keys() {
            validate_extension_name(name, limits)?;
        }
        let strings = [
            ("id", Some(&self.id)),
            ("source", Some(&self.source)),
            ("type", Some(&self.ty)),
            ("datacontenttype", self.datacontenttype.as_ref()),
            ("dataschema", self.dataschema.as_ref()),
            ("subject", self.subject.as_ref()),
            ("time", self.time.as_ref()),
        ];
        let ext_strings = self.extensions.iter().filter_map(|(k, v)| match v {
            ExtValue::String(s) => Some((k.as_str(), Some(s))),
            _ => None,
        });
        for (name, value) in strings.into_iter().chain(ext_strings) {
            let Some(value) = value else { continue };
            if value.len() > limits.max_attribute_bytes {
                return Err(Problem::invalid_event(format!(
                    "attribute '{name}' is {} bytes long; the limit is {} bytes",
                    value.len(),
                    limits.max_attribute_bytes
                )));
            }
            if value.chars().any(|c| c.is_control()) {
                return Err(Problem::invalid_event(format!(
                    "attribute '{name}' contains a control character, which CloudEvents forbids"
                )));
            }
        }
        Ok(())
    }
}

/// Extension names: lower-case ASCII letters and digits only (spec 1.0, "Attribute Naming").
pub fn validate_extension_name(name: &str, limits: &Limits) -> Result<(), Problem> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Problem::invalid_event(format!(
            "attribute name '{name}' is invalid: CloudEvents attribute names use only lower-case letters a-z and digits 0-9"
        )));
    }
    if name.len() > limits.max_extension_name_len {
        return Err(Problem::invalid_event(format!(
            "extension name '{name}' is longer than {} characters",
            limits.max_extension_name_len
        )));
    }
    if CONTEXT_ATTRIBUTES.contains(&name) || name == "data_base64" {
        return Err(Problem::invalid_event(format!(
            "'{name}' is a core attribute and cannot be used as an extension"
        )));
    }
    Ok(())
}

pub(crate) fn unsupported_specversion(v: &str) -> Problem {
    Problem::new(
        400,
        "unsupported-specversion",
        "Unsupported CloudEvents version",
        format!("specversion '{v}' is not supported; send '1.0' (or '0.3', which is converted)"),
    )
}

/// The payload from the `data` and `data_base64` members (non-null): bytes from base64,
/// text when the content type is not JSON, JSON otherwise. `base64_encoded`: a 0.3 event
/// whose `datacontentencoding` is base64.
fn event_data(
    data: Option<Value>,
    data_base64: Option<Value>,
    datacontenttype: Option<&str>,
    base64_encoded: bool,
) -> Result<Option<Data>, Problem> {
    Ok(match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid_event(
                "an event may carry 'data' or 'data_base64', not both",
            ))
        }
        (None, Some(Value::String(b64))) => Some(Data::Binary(decode_base64(&b64)?)),
        (None, Some(_)) => {
            return Err(Problem::invalid_event(
                "'data_base64' must be a base64 string",
            ))
        }
        (Some(Value::String(s)), None) if base64_encoded => Some(Data::Binary(decode_base64(&s)?)),
        (Some(Value::String(s)), None)
            if datacontenttype.is_some_and(|ct| !is_json_media_type(ct)) =>
        {
            Some(Data::Text(s))
        }
        (Some(v), None) => {
            check_data_depth(&v)?;
            Some(Data::Json(v))
        }
        (None, None) => None,
    })
}

/// An extension attribute from its JSON value; `None` for null (absent).
fn ext_value(name: &str, value: Value) -> Result<Option<ExtValue>, Problem> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::String(s) => ExtValue::String(s),
        Value::Bool(b) => ExtValue::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if i >= i32::MIN as i64 && i <= i32::MAX as i64 => ExtValue::Integer(i),
            _ => {
                return Err(Problem::invalid_event(format!(
                    "extension '{name}' must be an integer between -2147483648 and 2147483647, a string or a boolean"
                )))
            }
        },
        _ => {
            return Err(Problem::invalid_event(format!(
                "extension '{name}' must be a string, an integer or a boolean, not a JSON object or array"
            )))
        }
    }))
}

fn decode_base64(s: &str) -> Result<Vec<u8>, Problem> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| Problem::invalid_event(format!("'data_base64' is not valid base64: {e}")))
}

fn take_string(obj: &mut Map<String, Value>, name: &str) -> Result<Option<String>, Problem> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Problem::invalid_event(format!(
            "attribute '{name}' must be a string"
        ))),
    }
}

fn required(obj: &mut Map<String, Value>, name: &str) -> Result<String, Problem> {
    take_string(obj, name)?
        .ok_or_else(|| Problem::invalid_event(format!("required attribute '{name}' is missing")))
}

/// Deepest nesting of JSON data accepted. The stored event wraps data one level deeper,
/// and every stored event must stay readable by the JSON parser (limit 128).
pub const MAX_DATA_DEPTH: usize = 100;

fn check_data_depth(v: &Value) -> Result<(), Problem> {
    let mut stack = vec![(v, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DATA_DEPTH {
            return Err(Problem::invalid_event(format!(
                "data nests deeper than {MAX_DATA_DEPTH} levels"
            )));
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Build `Data` from an HTTP body of the given content type (binary mode).
pub fn data_from_body(content_type: Option<&str>, body: &[u8]) -> Result<Option<Data>, Problem> {
    if body.is_empty() {
        return Ok(None);
    }
    match content_type {
        Some(ct) if is_json_media_type(ct) => {
            let value: Value = serde_json::from_slice(body).map_err(|e| {
                Problem::invalid_event(format!(
                    "the body is declared as JSON ('{ct}') but is not valid JSON: {e}"
                ))
            })?;
            check_data_depth(&value)?;
            // JSON `null` data is no data, as in the JSON event format.
            Ok((!value.is_null()).then_some(Data::Json(value)))
        }
        Some(ct) if is_text_media_type(ct) => match std::str::from_utf8(body) {
            Ok(s) => Ok(Some(Data::Text(s.to_string()))),
            Err(_) => Ok(Some(Data::Binary(body.to_vec()))),
        },
        _ => Ok(Some(Data::Binary(body.to_vec()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Event, Problem> {
        Event::from_json_value(v, &Limits::default())
    }

    #[test]
    fn round_trips_all_data_kinds() {
        for data in [
            json!({"data": {"a": 1}}),
            json!({"data": "plain", "datacontenttype": "text/plain"}),
            json!({"data_base64": "AAEC/w=="}),
        ] {
            let mut v = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
            v.as_object_mut()
                .unwrap()
                .extend(data.as_object().unwrap().clone());
            let e = parse(v.clone()).unwrap();
            assert_eq!(e.to_json(), v);
            assert_eq!(parse(e.to_json()).unwrap(), e);
        }
    }

    #[test]
    fn direct_serialisation_matches_the_json_value() {
        let mut e = Event::new("1", "/s", "t");
        e.subject = Some("s".into());
        e.extensions.insert("n".into(), ExtValue::Integer(3));
        e.extensions.insert("b".into(), ExtValue::Bool(true));
        for data in [
            None,
            Some(Data::Json(json!({"a": [1, 2.5]}))),
            Some(Data::Text("x".into())),
            Some(Data::Binary(vec![0, 255])),
        ] {
            e.data = data;
            let direct: Value = serde_json::from_slice(&e.to_json_bytes()).unwrap();
            assert_eq!(direct, e.to_json());
        }
    }

    #[test]
    fn binary_data_is_kept_as_bytes() {
        let e = parse(
            json!({"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC/w=="}),
        )
        .unwrap();
        assert_eq!(e.data, Some(Data::Binary(vec![0, 1, 2, 255])));
    }

    #[test]
    fn converts_v03() {
        let e = parse(
            json!({"specversion":"0.3","id":"1","source":"/s","type":"t",
            "schemaurl":"http://x/s","datacontentencoding":"base64","data":"aGk="}),
        )
        .unwrap();
        assert_eq!(e.dataschema.as_deref(), Some("http://x/s"));
        assert_eq!(e.data, Some(Data::Binary(b"hi".to_vec())));
    }

    #[test]
    fn refuses_bad_events() {
        let cases = [
            (json!({"id":"1","source":"/s","type":"t"}), "specversion"),
            (
                json!({"specversion":"2.0","id":"1","source":"/s","type":"t"}),
                "not supported",
            ),
            (
                json!({"specversion":"1.0","source":"/s","type":"t"}),
                "'id'",
            ),
            (
                json!({"specversion":"1.0","id":"","source":"/s","type":"t"}),
                "non-empty",
            ),
            (
                json!({"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}),
                "lower-case",
            ),
            (
                json!({"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}),
                "RFC 3339",
            ),
            (
                json!({"specversion":"1.0","id":"1","source":"/s","type":"t","x":{"a":1}}),
                "object",
            ),
            (
                json!({"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}),
                "not both",
            ),
            (
                json!({"specversion":"1.0","id":1,"source":"/s","type":"t"}),
                "must be a string",
            ),
            (json!([1]), "JSON object"),
        ];
        for (v, needle) in cases {
            let err = parse(v.clone()).unwrap_err();
            assert!(err.detail.contains(needle), "{v}: {}", err.detail);
            assert_eq!(err.status, 400);
        }
    }

    #[test]
    fn enforces_attribute_limits() {
        let limits = Limits {
            max_attribute_bytes: 8,
            ..Limits::default()
        };
        let err = Event::from_json_value(
            json!({"specversion":"1.0","id":"123456789","source":"/s","type":"t"}),
            &limits,
        )
        .unwrap_err();
        assert!(err.detail.contains("limit is 8 bytes"));
    }
}

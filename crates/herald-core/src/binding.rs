//! The CloudEvents HTTP protocol binding, as pure functions over header pairs and body
//! bytes: decoding binary, structured and batch requests (with the binding's quoted-string
//! unescaping and percent-decoding of `ce-` headers) and encoding events for delivery.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event::{data_from_body, unsupported_specversion, validate_extension_name};
use crate::{Data, Event, ExtValue, Limits, Problem};

/// How an HTTP message carries its event(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Binary,
    Structured,
    Batch,
}

pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

fn essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decide the mode of a request from its `Content-Type` (the binding's rule: the
/// `application/cloudevents` prefix means structured or batch, anything else binary).
pub fn mode_of(content_type: Option<&str>) -> Result<Mode, Problem> {
    let Some(ct) = content_type else {
        return Ok(Mode::Binary);
    };
    match essence(ct).as_str() {
        STRUCTURED_CONTENT_TYPE => Ok(Mode::Structured),
        BATCH_CONTENT_TYPE => Ok(Mode::Batch),
        e if e.starts_with("application/cloudevents") => Err(Problem::unsupported_media(format!(
            "event format '{e}' is not supported; use {STRUCTURED_CONTENT_TYPE} or {BATCH_CONTENT_TYPE}, or binary mode with ce- headers"
        ))),
        _ => Ok(Mode::Binary),
    }
}

/// Decode the event(s) of an HTTP request. `headers` are (lower- or mixed-case name, raw
/// value) pairs; the body has already been read within the body limit.
pub fn decode_request(
    headers: &[(&str, &[u8])],
    body: &[u8],
    limits: &Limits,
) -> Result<(Mode, Vec<Event>), Problem> {
    let content_type = header(headers, "content-type")
        .map(|v| {
            std::str::from_utf8(v)
                .map_err(|_| Problem::invalid_event("Content-Type is not valid UTF-8"))
        })
        .transpose()?;
    let mode = mode_of(content_type)?;
    let events = match mode {
        Mode::Binary => vec![decode_binary(headers, content_type, body, limits)?],
        Mode::Structured => vec![Event::from_json_bytes(body, limits)?],
        Mode::Batch => decode_batch(body, limits)?,
    };
    Ok((mode, events))
}

fn header<'a>(headers: &[(&str, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Binary mode: attributes from `ce-` headers, data from the body.
pub fn decode_binary(
    headers: &[(&str, &[u8])],
    content_type: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Event, Problem> {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    for (name, raw) in headers {
        let lower = name.to_ascii_lowercase();
        let Some(attr) = lower.strip_prefix("ce-") else {
            continue;
        };
        let value = decode_header_value(raw).map_err(|why| {
            Problem::invalid_event(format!(
                "header '{name}' is not a valid CloudEvents header value: {why}"
            ))
        })?;
        if attrs.insert(attr.to_string(), value).is_some() {
            return Err(Problem::invalid_event(format!(
                "header '{name}' appears more than once"
            )));
        }
    }
    let specversion = attrs.remove("specversion").ok_or_else(|| {
        Problem::invalid_event(
            "not a CloudEvent: binary mode needs a ce-specversion header (or send Content-Type application/cloudevents+json)",
        )
    })?;
    let v03 = match specversion.as_str() {
        "1.0" => false,
        "0.3" => true,
        other => return Err(unsupported_specversion(other)),
    };
    let mut take = |n: &str| attrs.remove(n);
    let required = |v: Option<String>, n: &str| {
        v.ok_or_else(|| Problem::invalid_event(format!("required header 'ce-{n}' is missing")))
    };
    let id = required(take("id"), "id")?;
    let source = required(take("source"), "source")?;
    let ty = required(take("type"), "type")?;
    let subject = take("subject");
    let time = take("time");
    let mut dataschema = take("dataschema");
    if v03 {
        if let Some(url) = take("schemaurl") {
            dataschema = Some(url);
        }
        take("datacontentencoding");
    }
    if attrs.contains_key("datacontenttype") {
        return Err(Problem::invalid_event(
            "in binary mode the data content type travels in the Content-Type header, not ce-datacontenttype",
        ));
    }
    let mut extensions = BTreeMap::new();
    for (name, value) in attrs {
        validate_extension_name(&name, limits)?;
        extensions.insert(name, ExtValue::String(value));
    }
    let event = Event {
        id,
        source,
        ty,
        datacontenttype: content_type.map(str::to_string),
        dataschema,
        subject,
        time,
        extensions,
        data: data_from_body(content_type, body)?,
    };
    event.validate(limits)?;
    Ok(event)
}

/// Batch mode: a JSON array of structured events; all valid or the whole batch is refused.
pub fn decode_batch(body: &[u8], limits: &Limits) -> Result<Vec<Event>, Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::invalid_event(format!("batch body is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(Problem::invalid_event(
            "a batch must be a JSON array of CloudEvents",
        ));
    };
    if items.len() > limits.max_batch_events {
        return Err(Problem::new(
            413,
            "batch-too-large",
            "Batch too large",
            format!(
                "a batch may hold at most {} events; this one holds {}",
                limits.max_batch_events,
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            Event::from_json_value(item, limits).map_err(|mut p| {
                p.detail = format!("event #{i} of the batch: {}", p.detail);
                p
            })
        })
        .collect()
}

/// Undo RFC 7230 quoting (when the value is a quoted-string), then one round of
/// percent-decoding; the result must be UTF-8.
pub fn decode_header_value(raw: &[u8]) -> Result<String, &'static str> {
    let trimmed = trim_ows(raw);
    let unquoted: Vec<u8> =
        if trimmed.len() >= 2 && trimmed[0] == b'"' && trimmed[trimmed.len() - 1] == b'"' {
            let inner = &trimmed[1..trimmed.len() - 1];
            let mut out = Vec::with_capacity(inner.len());
            let mut it = inner.iter();
            while let Some(&b) = it.next() {
                if b == b'\\' {
                    match it.next() {
                        Some(&e) => out.push(e),
                        None => return Err("dangling backslash in quoted string"),
                    }
                } else {
                    out.push(b);
                }
            }
            out
        } else {
            trimmed.to_vec()
        };
    let decoded: Vec<u8> = percent_encoding::percent_decode(&unquoted).collect();
    String::from_utf8(decoded).map_err(|_| "percent-decoded bytes are not valid UTF-8")
}

fn trim_ows(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Percent-encode an attribute value for a `ce-` header: space, `"`, `%` and everything
/// outside printable ASCII, as the binding requires.
pub fn encode_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b == b' ' || b == b'"' || b == b'%' || !(0x21..=0x7e).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// An event ready for an HTTP request: headers (beyond the transport's own), a
/// content type and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMessage {
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Encode for binary mode: every attribute as a `ce-` header, data as the body.
pub fn encode_binary(event: &Event) -> HttpMessage {
    let mut headers = vec![
        ("ce-specversion".to_string(), "1.0".to_string()),
        ("ce-id".to_string(), encode_header_value(&event.id)),
        ("ce-source".to_string(), encode_header_value(&event.source)),
        ("ce-type".to_string(), encode_header_value(&event.ty)),
    ];
    for (name, value) in [
        ("subject", &event.subject),
        ("time", &event.time),
        ("dataschema", &event.dataschema),
    ] {
        if let Some(v) = value {
            headers.push((format!("ce-{name}"), encode_header_value(v)));
        }
    }
    for (name, value) in &event.extensions {
        headers.push((
            format!("ce-{name}"),
            encode_header_value(&value.to_canonical_string()),
        ));
    }
    let content_type = match (&event.datacontenttype, &event.data) {
        (Some(ct), _) => Some(ct.clone()),
        (None, Some(Data::Json(_))) => Some("application/json".to_string()),
        (None, Some(Data::Text(_))) => Some("text/plain; charset=utf-8".to_string()),
        (None, Some(Data::Binary(_))) => Some("application/octet-stream".to_string()),
        (None, None) => None,
    };
    let body = event.data.as_ref().map(Data::to_bytes).unwrap_or_default();
    HttpMessage {
        headers,
        content_type,
        body,
    }
}

/// Encode for structured mode (`application/cloudevents+json`).
pub fn encode_structured(event: &Event, pretty: bool) -> HttpMessage {
    // Compact output is written field by field, without building a JSON value first.
    let body = if pretty {
        serde_json::to_vec_pretty(&event.to_json()).unwrap_or_default()
    } else {
        event.to_json_bytes()
    };
    HttpMessage {
        headers: Vec::new(),
        content_type: Some(format!("{STRUCTURED_CONTENT_TYPE}; charset=utf-8")),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        pairs.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    #[test]
    fn binary_mode_percent_decodes_and_unquotes() {
        let headers = h(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
            ("ce-legacy", "\"quoted \\\"value\\\"\""),
            ("content-type", "application/json"),
        ]);
        let (mode, events) = decode_request(&headers, br#"{"a":1}"#, &Limits::default()).unwrap();
        assert_eq!(mode, Mode::Binary);
        let e = &events[0];
        assert_eq!(e.subject.as_deref(), Some("Euro \u{20AC} \u{1F600}"));
        assert_eq!(
            e.extensions["legacy"],
            ExtValue::String("quoted \"value\"".into())
        );
        assert_eq!(e.data, Some(Data::Json(serde_json::json!({"a": 1}))));
    }

    #[test]
    fn rejects_overlong_utf8() {
        assert!(decode_header_value(b"%C0%A0").is_err());
        assert_eq!(decode_header_value(b"%e2%82%ac").unwrap(), "\u{20AC}");
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let mut e = Event::new("id 1", "/src", "com.example.t");
        e.subject = Some("Euro \u{20AC} \"q\" 100%".into());
        e.extensions
            .insert("traceparent".into(), ExtValue::String("00-ab".into()));
        e.data = Some(Data::Json(serde_json::json!({"x": [1, 2]})));
        let msg = encode_binary(&e);
        let mut headers: Vec<(&str, &[u8])> = msg
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let ct = msg.content_type.clone().unwrap();
        headers.push(("content-type", ct.as_bytes()));
        let (_, back) = decode_request(&headers, &msg.body, &Limits::default()).unwrap();
        let mut expected = e.clone();
        expected.datacontenttype = Some("application/json".into());
        assert_eq!(back[0], expected);
    }

    #[test]
    fn batch_is_all_or_nothing_and_bounded() {
        let ok = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t"}]"#;
        let hs = h(&[("content-type", BATCH_CONTENT_TYPE)]);
        assert_eq!(
            decode_request(&hs, ok, &Limits::default()).unwrap().1.len(),
            2
        );
        let bad = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]"#;
        let err = decode_request(&hs, bad, &Limits::default()).unwrap_err();
        assert!(err.detail.starts_with("event #1"));
        let limits = Limits {
            max_batch_events: 1,
            ..Limits::default()
        };
        assert_eq!(decode_request(&hs, ok, &limits).unwrap_err().status, 413);
    }

    #[test]
    fn unknown_event_format_is_415() {
        let hs = h(&[("content-type", "application/cloudevents+avro")]);
        assert_eq!(
            decode_request(&hs, b"", &Limits::default())
                .unwrap_err()
                .status,
            415
        );
    }

    #[test]
    fn missing_specversion_header_is_explained() {
        let hs = h(&[("content-type", "application/json")]);
        let err = decode_request(&hs, b"{}", &Limits::default()).unwrap_err();
        assert!(err.detail.contains("ce-specversion"));
    }
}

//! Rendering an event as text for the sinks that write it out (file, console): the
//! structured CloudEvents JSON format, with the `source` and `subject` an emitter may
//! override, compact or pretty-printed.

use herald_core::event::CONTEXT_ATTRIBUTES;
use herald_core::Event;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// How a sink renders its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderOptions {
    pub pretty_print: bool,
    /// Replaces the event's `source` when set.
    pub source: Option<String>,
    /// Replaces (or adds) the event's `subject` when set.
    pub subject: Option<String>,
}

/// The event in the JSON event format, without a trailing newline.
pub fn render(event: &Event, opts: &RenderOptions) -> Vec<u8> {
    let Value::Object(mut m) = event.to_json() else {
        return Vec::new();
    };
    if let Some(source) = &opts.source {
        m.insert("source".into(), Value::String(source.clone()));
    }
    if let Some(subject) = &opts.subject {
        m.insert("subject".into(), Value::String(subject.clone()));
    }
    let ordered = Ordered(&m);
    let bytes = if opts.pretty_print {
        serde_json::to_vec_pretty(&ordered)
    } else {
        serde_json::to_vec(&ordered)
    };
    // Serialising a map of JSON values cannot fail; an empty line beats a panic.
    bytes.unwrap_or_default()
}

/// Members that come first, in this order, as in `Event::to_json_bytes` (the context
/// attributes without `data`): a `Value` map is sorted by key, which would put `data`
/// first and `specversion` in the middle.
const HEAD: &[&str] = CONTEXT_ATTRIBUTES.split_last().expect("not empty").1;
/// Members that come last, after the extensions.
const TAIL: [&str; 2] = ["data", "data_base64"];

struct Ordered<'a>(&'a Map<String, Value>);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut out = s.serialize_map(Some(m.len()))?;
        for &k in HEAD {
            if let Some(v) = m.get(k) {
                out.serialize_entry(k, v)?;
            }
        }
        for (k, v) in m {
            if !HEAD.contains(&k.as_str()) && !TAIL.contains(&k.as_str()) {
                out.serialize_entry(k, v)?;
            }
        }
        for k in TAIL {
            if let Some(v) = m.get(k) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{Data, ExtValue};
    use serde_json::json;

    fn event() -> Event {
        let mut e = Event::new("1", "/orders", "order.created");
        e.subject = Some("42".into());
        e.time = Some("2026-11-25T10:00:00Z".into());
        e.extensions.insert("zz".into(), ExtValue::Integer(7));
        e.extensions.insert("aa".into(), ExtValue::Bool(true));
        e.data = Some(Data::Json(json!({"b": 1, "a": [1, 2]})));
        e
    }

    #[test]
    fn compact_matches_the_event_format_byte_for_byte() {
        let e = event();
        let mut bin = Event::new("2", "/s", "t");
        bin.data = Some(Data::Binary(vec![0, 255]));
        for e in [e, bin, Event::new("3", "/s", "t")] {
            assert_eq!(render(&e, &RenderOptions::default()), e.to_json_bytes());
        }
    }

    #[test]
    fn compact_is_one_line_without_trailing_newline() {
        let out = render(&event(), &RenderOptions::default());
        assert!(!out.contains(&b'\n'));
        assert!(out.starts_with(br#"{"specversion":"1.0","id":"1","source":"/orders""#));
    }

    #[test]
    fn pretty_print_keeps_the_content_and_order() {
        let opts = RenderOptions {
            pretty_print: true,
            ..RenderOptions::default()
        };
        let out = String::from_utf8(render(&event(), &opts)).unwrap();
        assert!(out.starts_with("{\n  \"specversion\": \"1.0\",\n  \"id\": \"1\""));
        assert!(!out.ends_with('\n'));
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, event().to_json());
        let pos = |k: &str| out.find(&format!("\"{k}\"")).unwrap();
        assert!(pos("time") < pos("aa") && pos("aa") < pos("zz") && pos("zz") < pos("data"));
    }

    #[test]
    fn overrides_source_and_subject() {
        let opts = RenderOptions {
            source: Some("/hub".into()),
            subject: Some("override".into()),
            ..RenderOptions::default()
        };
        let v: Value = serde_json::from_slice(&render(&event(), &opts)).unwrap();
        assert_eq!(v["source"], "/hub");
        assert_eq!(v["subject"], "override");
        assert_eq!(v["id"], "1");

        // A subject override adds the attribute to an event that had none.
        let opts = RenderOptions {
            subject: Some("s".into()),
            ..RenderOptions::default()
        };
        let v: Value = serde_json::from_slice(&render(&Event::new("1", "/s", "t"), &opts)).unwrap();
        assert_eq!(
            v,
            json!({"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"s"})
        );
    }
}

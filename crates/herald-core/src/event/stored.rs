//! A direct reader for events Herald stored itself (JSON event format, spec 1.0): straight
//! into an [`Event`], without building a JSON object first and taking it apart, because
//! delivery reads one per attempt. Anything unexpected sends the caller to the general
//! parser, which says what is wrong.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{event_data, ext_value, Event};

/// `None` when `bytes` are not the shape Herald writes.
pub(super) fn read(bytes: &[u8]) -> Option<Event> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let event = de.deserialize_map(StoredVisitor).ok()??;
    de.end().ok()?;
    Some(event)
}

/// A member name, borrowed from the input unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct StoredVisitor;

impl<'de> Visitor<'de> for StoredVisitor {
    type Value = Option<Event>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stored CloudEvent")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Event>, A::Error> {
        let mut specversion_1_0 = false;
        let (mut id, mut source, mut ty) = (None, None, None);
        let (mut datacontenttype, mut dataschema, mut subject, mut time) = (None, None, None, None);
        let (mut data, mut data_base64): (Option<Value>, Option<String>) = (None, None);
        let mut extensions = BTreeMap::new();
        while let Some(Key(name)) = map.next_key()? {
            match name.as_ref() {
                "specversion" => specversion_1_0 = map.next_value::<String>()? == "1.0",
                "id" => id = Some(map.next_value::<String>()?),
                "source" => source = Some(map.next_value::<String>()?),
                "type" => ty = Some(map.next_value::<String>()?),
                "datacontenttype" => datacontenttype = map.next_value::<Option<String>>()?,
                "dataschema" => dataschema = map.next_value::<Option<String>>()?,
                "subject" => subject = map.next_value::<Option<String>>()?,
                "time" => time = map.next_value::<Option<String>>()?,
                "data" => data = Some(map.next_value::<Value>()?).filter(|v| !v.is_null()),
                "data_base64" => data_base64 = map.next_value::<Option<String>>()?,
                _ => match ext_value(&name, map.next_value::<Value>()?) {
                    Ok(Some(v)) => {
                        extensions.insert(name.into_owned(), v);
                    }
                    Ok(None) => {}
                    Err(_) => return Ok(None),
                },
            }
        }
        let (true, Some(id), Some(source), Some(ty)) = (specversion_1_0, id, source, ty) else {
            return Ok(None);
        };
        let data_base64 = data_base64.map(Value::String);
        let Ok(data) = event_data(data, data_base64, datacontenttype.as_deref(), false) else {
            return Ok(None);
        };
        Ok(Some(Event {
            id,
            source,
            ty,
            datacontenttype,
            dataschema,
            subject,
            time,
            extensions,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Data, ExtValue};

    fn general(bytes: &[u8]) -> Event {
        Event::parse_json_value(serde_json::from_slice(bytes).unwrap()).unwrap()
    }

    #[test]
    fn reads_what_herald_stores_exactly_as_the_general_parser() {
        let mut full = Event::new("e-1", "/shop", "order.created");
        full.subject = Some("eu/berlin".into());
        full.time = Some("2026-11-25T10:00:00Z".into());
        full.dataschema = Some("https://example.com/s".into());
        full.extensions
            .insert("tenant".into(), ExtValue::String("a\"b".into()));
        full.extensions
            .insert("priority".into(), ExtValue::Integer(-7));
        full.extensions
            .insert("urgent".into(), ExtValue::Bool(true));
        full.data = Some(Data::Json(json!({"amount": 42, "items": [1, {"x": null}]})));
        let mut text = Event::new("e-2", "/shop", "note");
        text.datacontenttype = Some("text/plain".into());
        text.data = Some(Data::Text("héllo \n".into()));
        let mut binary = Event::new("e-3", "/shop", "blob");
        binary.data = Some(Data::Binary(vec![0, 159, 255]));
        let mut json_string = Event::new("e-4", "/shop", "quoted");
        json_string.data = Some(Data::Json(json!("just a JSON string")));
        let bare = Event::new("e-5", "/", "t");
        for e in [full, text, binary, json_string, bare] {
            let bytes = serde_json::to_vec(&e.to_json()).unwrap();
            let fast = read(&bytes).expect("the shape Herald writes");
            assert_eq!(fast, general(&bytes));
            assert_eq!(fast, e);
        }
    }

    #[test]
    fn anything_else_goes_to_the_general_parser() {
        for odd in [
            json!({"specversion": "0.3", "id": "1", "source": "/", "type": "t"}),
            json!({"specversion": "1.0", "source": "/", "type": "t"}),
            json!({"specversion": "1.0", "id": 1, "source": "/", "type": "t"}),
            json!({"specversion": "1.0", "id": "1", "source": "/", "type": "t", "data": 1, "data_base64": "AA=="}),
            json!({"specversion": "1.0", "id": "1", "source": "/", "type": "t", "ext": {"nested": true}}),
            json!({"specversion": "1.0", "id": "1", "source": "/", "type": "t", "data_base64": "%%"}),
            json!(["not", "an", "object"]),
        ] {
            assert!(read(&serde_json::to_vec(&odd).unwrap()).is_none(), "{odd}");
        }
        assert!(read(b"{\"specversion\": \"1.0\"} trailing").is_none());
    }
}

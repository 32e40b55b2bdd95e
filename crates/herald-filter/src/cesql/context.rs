//! The input of an evaluation: [`EventContext`] gives access to the context attributes of one
//! CloudEvent. Implemented here for a structured-mode JSON event object and for a plain map;
//! values that are not Boolean/Integer/String are presented as String (spec §3.2).

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::value::Value;

/// Read access to the context attributes (and extensions) of one CloudEvent.
pub trait EventContext {
    /// Value of the context attribute with this lower-case name, `None` when absent.
    fn attribute(&self, name: &str) -> Option<Value>;
}

impl<T: EventContext + ?Sized> EventContext for &T {
    fn attribute(&self, name: &str) -> Option<Value> {
        (**self).attribute(name)
    }
}

impl<S: BuildHasher> EventContext for HashMap<String, Value, S> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

/// A structured-mode CloudEvent (JSON event format). The `data` and `data_base64` members are
/// the payload, not context attributes, and a JSON `null` counts as an absent attribute.
impl EventContext for serde_json::Map<String, serde_json::Value> {
    fn attribute(&self, name: &str) -> Option<Value> {
        if name == "data" || name == "data_base64" {
            return None;
        }
        match self.get(name)? {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(b) => Some(Value::Boolean(*b)),
            serde_json::Value::String(s) => Some(Value::String(s.clone())),
            serde_json::Value::Number(n) => Some(
                n.as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .map_or_else(|| Value::String(n.to_string()), Value::Integer),
            ),
            other => Some(Value::String(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_map_to_cesql_values() {
        let serde_json::Value::Object(ev) = json!({
            "id": "1", "b": true, "n": 10, "big": 4294967296_i64, "f": 1.5,
            "arr": [1], "nul": null, "data": {"x": 1}
        }) else {
            unreachable!()
        };
        assert_eq!(ev.attribute("id"), Some(Value::String("1".into())));
        assert_eq!(ev.attribute("b"), Some(Value::Boolean(true)));
        assert_eq!(ev.attribute("n"), Some(Value::Integer(10)));
        assert_eq!(
            ev.attribute("big"),
            Some(Value::String("4294967296".into()))
        );
        assert_eq!(ev.attribute("f"), Some(Value::String("1.5".into())));
        assert_eq!(ev.attribute("arr"), Some(Value::String("[1]".into())));
        assert_eq!(ev.attribute("nul"), None);
        assert_eq!(ev.attribute("data"), None);
        assert_eq!(ev.attribute("missing"), None);
    }
}

//! The scheduling queue request, in Space Cloud's `eventing/queue` shape: an event type,
//! its data, when it is due (`timestamp` plus `delay`), and whether the caller waits for
//! the webhook's answer. Parsing and due-time arithmetic only; the server does the I/O.
//!
//! Space Cloud's documents and code disagree on units, so Herald takes both readings where
//! they cannot be confused: `timestamp` is an RFC 3339 string (the code) or an epoch
//! number (the documents say milliseconds, their examples use seconds: a number below
//! 100,000,000,000, i.e. before 1973 as milliseconds or after 5138 as seconds, is read as
//! seconds). `delay` is seconds, as documented (fractions allowed).

use serde::Deserialize;
use serde_json::Value;

use crate::Millis;

/// Below this an epoch `timestamp` is seconds, at or above it milliseconds.
pub const EPOCH_SECONDS_BELOW: f64 = 100_000_000_000.0;
/// Furthest ahead an event may be scheduled: one year.
pub const MAX_SCHEDULE_AHEAD_MS: Millis = 366 * 24 * 3600 * 1000;

/// The body of `POST /v1/api/{project}/eventing/queue`.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueRequest {
    #[serde(rename = "type")]
    pub ty: Option<Value>,
    #[serde(default)]
    pub delay: Option<Value>,
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub data: Option<Value>,
    /// Space Cloud's code calls `data` this.
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default, rename = "isSynchronous")]
    pub is_synchronous: Option<Value>,
    /// Optional event id (makes a retried request idempotent); generated when absent.
    #[serde(default)]
    pub id: Option<Value>,
}

/// A validated queue request.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    pub ty: String,
    pub id: Option<String>,
    pub data: Option<Value>,
    /// When the event enters the log (may be in the past: then at once).
    pub due_at: Millis,
    pub synchronous: bool,
}

/// Why a queue request was refused: the field and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> QueueError {
    QueueError {
        field,
        message: message.into(),
    }
}

impl QueueRequest {
    /// Validate against the clock `now`.
    pub fn validate(self, now: Millis) -> Result<QueuedEvent, QueueError> {
        let ty = match self.ty {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) | None => {
                return Err(refuse("type", "the event type is required"))
            }
            Some(_) => return Err(refuse("type", "must be a string")),
        };
        let id = match self.id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            Some(_) => return Err(refuse("id", "must be a non-empty string")),
        };
        let data = match (self.data, self.payload) {
            (Some(_), Some(_)) => {
                return Err(refuse(
                    "payload",
                    "give either data or payload (a synonym), not both",
                ))
            }
            (d, p) => d.or(p).filter(|v| !v.is_null()),
        };
        let synchronous = match self.is_synchronous {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(refuse("isSynchronous", "must be true or false")),
        };
        let start = match self.timestamp {
            None | Some(Value::Null) => now,
            Some(t) => timestamp_millis(&t)?,
        };
        let delay = match self.delay {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if (0.0..=MAX_SCHEDULE_AHEAD_MS as f64 / 1000.0).contains(&s) => {
                    (s * 1000.0).round() as Millis
                }
                _ => {
                    return Err(refuse(
                        "delay",
                        format!(
                            "must be between 0 and {} seconds",
                            MAX_SCHEDULE_AHEAD_MS / 1000
                        ),
                    ))
                }
            },
            Some(_) => return Err(refuse("delay", "must be a number of seconds")),
        };
        let due_at = start.saturating_add(delay);
        if due_at > now.saturating_add(MAX_SCHEDULE_AHEAD_MS) {
            return Err(refuse(
                if delay > 0 { "delay" } else { "timestamp" },
                "the event would be due more than 366 days from now",
            ));
        }
        if synchronous && due_at > now {
            return Err(refuse(
                "isSynchronous",
                "a synchronous event is delivered at once; it cannot have a future timestamp or a delay",
            ));
        }
        Ok(QueuedEvent {
            ty,
            id,
            data,
            due_at,
            synchronous,
        })
    }
}

/// `timestamp` as epoch milliseconds: RFC 3339, or an epoch number (see the module docs).
fn timestamp_millis(v: &Value) -> Result<Millis, QueueError> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                refuse(
                    "timestamp",
                    format!("'{s}' is not an RFC 3339 date-time ({e})"),
                )
            }),
        Value::Number(n) => match n.as_f64() {
            Some(x) if (0.0..EPOCH_SECONDS_BELOW).contains(&x) => {
                Ok((x * 1000.0).round() as Millis)
            }
            Some(x) if (EPOCH_SECONDS_BELOW..1e15).contains(&x) => Ok(x.round() as Millis),
            _ => Err(refuse(
                "timestamp",
                "must be a non-negative epoch number (seconds or milliseconds)",
            )),
        },
        _ => Err(refuse(
            "timestamp",
            "must be an RFC 3339 string or an epoch number",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_700_000_000_000;

    fn validate(v: Value) -> Result<QueuedEvent, QueueError> {
        serde_json::from_value::<QueueRequest>(v)
            .unwrap()
            .validate(NOW)
    }

    #[test]
    fn due_time_from_timestamp_and_delay() {
        let due = |v: Value| validate(v).unwrap().due_at;
        assert_eq!(due(json!({"type": "t"})), NOW);
        assert_eq!(due(json!({"type": "t", "delay": 60})), NOW + 60_000);
        assert_eq!(due(json!({"type": "t", "delay": 1.5})), NOW + 1_500);
        // Seconds (the documents' example) and milliseconds (their table) both work.
        assert_eq!(
            due(json!({"type": "t", "timestamp": 1_700_000_100})),
            NOW + 100_000
        );
        assert_eq!(
            due(json!({"type": "t", "timestamp": 1_700_000_100_000u64})),
            NOW + 100_000
        );
        assert_eq!(
            due(json!({"type": "t", "timestamp": 1_700_000_000, "delay": 3600})),
            NOW + 3_600_000
        );
        assert_eq!(
            due(json!({"type": "t", "timestamp": "2023-11-14T22:13:20Z"})),
            NOW
        );
        assert_eq!(
            due(json!({"type": "t", "timestamp": "2023-11-14T23:13:20+01:00", "delay": 2})),
            NOW + 2_000
        );
    }

    #[test]
    fn data_and_payload_are_synonyms() {
        let d = |v: Value| validate(v).unwrap().data;
        assert_eq!(
            d(json!({"type": "t", "data": {"a": 1}})),
            Some(json!({"a": 1}))
        );
        assert_eq!(d(json!({"type": "t", "payload": [1]})), Some(json!([1])));
        assert_eq!(d(json!({"type": "t"})), None);
        assert_eq!(
            validate(json!({"type": "t", "data": 1, "payload": 2}))
                .unwrap_err()
                .field,
            "payload"
        );
    }

    #[test]
    fn refuses_what_it_cannot_schedule() {
        let field = |v: Value| validate(v).unwrap_err().field;
        assert_eq!(field(json!({})), "type");
        assert_eq!(field(json!({"type": ""})), "type");
        assert_eq!(field(json!({"type": 5})), "type");
        assert_eq!(field(json!({"type": "t", "delay": -1})), "delay");
        assert_eq!(field(json!({"type": "t", "delay": "60"})), "delay");
        assert_eq!(field(json!({"type": "t", "delay": 40_000_000})), "delay");
        assert_eq!(
            field(json!({"type": "t", "timestamp": "tomorrow"})),
            "timestamp"
        );
        assert_eq!(field(json!({"type": "t", "timestamp": -5})), "timestamp");
        assert_eq!(field(json!({"type": "t", "timestamp": true})), "timestamp");
        assert_eq!(
            field(json!({"type": "t", "timestamp": "2099-01-01T00:00:00Z"})),
            "timestamp"
        );
        assert_eq!(
            field(json!({"type": "t", "isSynchronous": "yes"})),
            "isSynchronous"
        );
        assert_eq!(
            field(json!({"type": "t", "isSynchronous": true, "delay": 5})),
            "isSynchronous"
        );
        assert!(
            validate(json!({"type": "t", "isSynchronous": true}))
                .unwrap()
                .synchronous
        );
        assert_eq!(field(json!({"type": "t", "id": 7})), "id");
    }
}

//! Event triggers in Space Cloud's shape (`{type, url, retries, timeout, filter}`), mapped
//! onto subscriptions: one subscription per trigger, with the trigger kept in its
//! `config` so it reads back exactly as written. Space Cloud's delivery rules become the
//! subscription's policy: `retries` + 1 attempts a fixed delay apart (5 s there), any
//! non-2xx retried, never auto-disabled, and a `dlq_<id>` event published when the
//! attempts run out. A filter is FEEL text, or a Space Cloud rule object translated to FEEL.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::subscription::{Backoff, Subscription};

/// The `config` key that marks a subscription as a trigger and keeps the trigger.
pub const CONFIG_KEY: &str = "spacecloud.trigger";
/// Space Cloud's defaults, used when the value is absent or not positive.
pub const DEFAULT_RETRIES: i64 = 3;
pub const DEFAULT_TIMEOUT_MS: i64 = 5000;
/// Bounds Herald adds (attempt count and request timeout of subscriptions).
pub const MAX_RETRIES: i64 = 99;
pub const MAX_TIMEOUT_MS: i64 = 300_000;

/// A trigger as the config API takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// Extra request headers (Space Cloud's `options.headers` idea, flattened).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A refused trigger: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerError {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> TriggerError {
    TriggerError {
        field: field.into(),
        message: message.into(),
    }
}

/// Trigger ids become subscription ids and event types (`dlq_<id>`).
pub fn validate_id(id: &str) -> Result<(), TriggerError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            "id",
            "a trigger id is 1-64 characters of A-Z a-z 0-9 _ - .",
        ))
    }
}

impl Trigger {
    /// The retries and timeout in force (Space Cloud's defaults for absent or <= 0).
    pub fn effective(&self) -> (i64, i64) {
        let positive = |v: Option<i64>, default| v.filter(|v| *v > 0).unwrap_or(default);
        (
            positive(self.retries, DEFAULT_RETRIES),
            positive(self.timeout, DEFAULT_TIMEOUT_MS),
        )
    }

    /// The subscription that carries this trigger, its retries `retry_delay` apart.
    pub fn to_subscription(
        &self,
        id: &str,
        retry_delay: Duration,
    ) -> Result<Subscription, TriggerError> {
        validate_id(id)?;
        if self.ty.trim().is_empty() {
            return Err(refuse("type", "the event type is required"));
        }
        let (retries, timeout) = self.effective();
        if retries > MAX_RETRIES {
            return Err(refuse("retries", format!("at most {MAX_RETRIES}")));
        }
        if timeout > MAX_TIMEOUT_MS {
            return Err(refuse("timeout", format!("at most {MAX_TIMEOUT_MS} ms")));
        }
        let mut sub: Subscription = serde_json::from_value(serde_json::json!({
            "id": id,
            "types": [self.ty],
            "sink": self.url,
        }))
        .map_err(|e| refuse("url", e.to_string()))?;
        if let Some(filter) = &self.filter {
            sub.filters = vec![serde_json::json!({ "feel": filter_to_feel(filter)? })];
        }
        sub.protocolsettings.headers = self.headers.clone();
        let mut schedule = vec![Duration::ZERO];
        schedule.extend(std::iter::repeat_n(retry_delay, retries as usize));
        sub.delivery.retry.max_attempts = Some(schedule.len() as u32);
        sub.delivery.retry.backoff = Backoff::Schedule(schedule);
        sub.delivery.retry.jitter = 0.0;
        sub.delivery.retry.non_retryable_statuses = Vec::new();
        sub.delivery.timeout = Duration::from_millis(timeout as u64);
        sub.delivery.disable_after_failures = 0;
        sub.delivery.dead_letter_event = Some(format!("dlq_{id}"));
        let mut kept = self.clone();
        kept.id = id.to_string();
        sub.config.insert(
            CONFIG_KEY.into(),
            serde_json::to_value(&kept).map_err(|e| refuse("trigger", e.to_string()))?,
        );
        sub.validate().map_err(|p| {
            let (field, why) = p.detail.split_once(": ").unwrap_or(("url", &p.detail));
            refuse(field.replace("sink", "url"), why)
        })?;
        Ok(sub)
    }

    /// The trigger a subscription carries, if it is one.
    pub fn of(sub: &Subscription) -> Option<Trigger> {
        serde_json::from_value(sub.config.get(CONFIG_KEY)?.clone()).ok()
    }
}

/// A trigger filter as FEEL: FEEL text as it is, or a Space Cloud rule (`match` with
/// `eval` `==` `!=` `>` `>=` `<` `<=` `in` `notIn`, `and`/`or` with `clauses`, `allow`,
/// `deny`) whose `args.data.<path>` operands are the event's data fields and `args.type`
/// and friends its attributes.
pub fn filter_to_feel(filter: &Value) -> Result<String, TriggerError> {
    match filter {
        Value::String(s) => Ok(s.clone()),
        Value::Object(_) => rule_to_feel(filter, "filter", 0),
        _ => Err(refuse(
            "filter",
            "a FEEL expression string or a rule object",
        )),
    }
}

const MAX_RULE_DEPTH: usize = 16;

fn rule_to_feel(rule: &Value, at: &str, depth: usize) -> Result<String, TriggerError> {
    if depth > MAX_RULE_DEPTH {
        return Err(refuse(
            at,
            format!("rules nest deeper than {MAX_RULE_DEPTH}"),
        ));
    }
    let field = |name: &str| rule.get(name);
    match field("rule").and_then(Value::as_str) {
        Some("allow") => Ok("true".into()),
        Some("deny") => Ok("false".into()),
        Some(op @ ("and" | "or")) => {
            let Some(Value::Array(clauses)) = field("clauses") else {
                return Err(refuse(format!("{at}.clauses"), "must be an array of rules"));
            };
            if clauses.is_empty() {
                return Err(refuse(
                    format!("{at}.clauses"),
                    "must hold at least one rule",
                ));
            }
            let parts = clauses
                .iter()
                .enumerate()
                .map(|(i, c)| rule_to_feel(c, &format!("{at}.clauses[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("({})", parts.join(&format!(") {op} ("))))
        }
        Some("match") => {
            let f1 = operand(field("f1"), &format!("{at}.f1"))?;
            let f2 = operand(field("f2"), &format!("{at}.f2"))?;
            let eval = field("eval").and_then(Value::as_str).unwrap_or("==");
            Ok(match eval {
                "==" => format!("{f1} = {f2}"),
                "!=" => format!("{f1} != {f2}"),
                ">" | ">=" | "<" | "<=" => format!("{f1} {eval} {f2}"),
                "in" => format!("{f1} in {f2}"),
                "notIn" => format!("not({f1} in {f2})"),
                other => {
                    return Err(refuse(
                        format!("{at}.eval"),
                        format!("'{other}' is not one of == != > >= < <= in notIn"),
                    ))
                }
            })
        }
        Some(other) => Err(refuse(
            format!("{at}.rule"),
            format!("'{other}' is not one of match, and, or, allow, deny"),
        )),
        None => Err(refuse(format!("{at}.rule"), "is required")),
    }
}

/// Words FEEL reads as keywords or literals, so a data field of that name cannot be
/// written as a plain path (write such a filter in FEEL directly).
const FEEL_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "if",
    "then",
    "else",
    "some",
    "every",
    "satisfies",
    "for",
    "return",
    "in",
    "between",
    "instance",
    "of",
    "function",
    "true",
    "false",
    "null",
    // Not a keyword, but FEEL filters read `event` as the event's attributes.
    "event",
];

/// `s` as a FEEL string literal: quotes, backslashes and control characters escaped the
/// way the FEEL lexer reads them back.
fn feel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One side of a `match`: `args.data.a.b` (a data path), `args.<attribute>`, or a literal.
fn operand(v: Option<&Value>, at: &str) -> Result<String, TriggerError> {
    let name_ok = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !FEEL_WORDS.contains(&s)
    };
    match v {
        Some(Value::String(s)) if s.starts_with("args.") => {
            let path: Vec<&str> = s["args.".len()..].split('.').collect();
            match path.as_slice() {
                ["data", rest @ ..] if !rest.is_empty() && rest.iter().all(|p| name_ok(p)) => {
                    Ok(rest.join("."))
                }
                [attr] if crate::event::STRING_ATTRIBUTES.contains(attr) => {
                    Ok(format!("event.{attr}"))
                }
                _ => Err(refuse(
                    at,
                    format!(
                        "'{s}': use args.data.<field>[.<field>...] or args.<context attribute>"
                    ),
                )),
            }
        }
        Some(Value::String(s)) => Ok(feel_string(s)),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(Value::Array(items)) => {
            let parts = items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Array(_) | Value::Object(_) => Err(refuse(
                        format!("{at}[{i}]"),
                        "list items must be plain values",
                    )),
                    other => operand(Some(other), &format!("{at}[{i}]")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("[{}]", parts.join(", ")))
        }
        Some(Value::Null) => Ok("null".into()),
        Some(Value::Object(_)) | None => Err(refuse(at, "a value or an args.* reference")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn translates_space_cloud_rules_to_feel() {
        let feel = |v: Value| filter_to_feel(&v).unwrap();
        assert_eq!(
            feel(
                json!({"rule": "match", "type": "string", "eval": "==", "f1": "args.data.doc.status", "f2": "delivered"})
            ),
            r#"doc.status = "delivered""#
        );
        assert_eq!(
            feel(json!({"rule": "and", "clauses": [
                {"rule": "match", "eval": ">=", "f1": "args.data.amount", "f2": 10},
                {"rule": "match", "eval": "notIn", "f1": "args.type", "f2": ["a", "b\"c"]}
            ]})),
            r#"(amount >= 10) and (not(event.type in ["a", "b\"c"]))"#
        );
        assert_eq!(feel(json!("amount > 5")), "amount > 5");
        assert_eq!(feel(json!({"rule": "allow"})), "true");
    }

    #[test]
    fn refuses_rules_it_cannot_translate_with_the_path() {
        let field = |v: Value| filter_to_feel(&v).unwrap_err().field;
        assert_eq!(field(json!({"rule": "regex"})), "filter.rule");
        assert_eq!(
            field(
                json!({"rule": "or", "clauses": [{"rule": "match", "f1": "args.data.a b", "f2": 1}]})
            ),
            "filter.clauses[0].f1"
        );
        assert_eq!(
            field(json!({"rule": "match", "eval": "~", "f1": "args.data.a", "f2": 1})),
            "filter.eval"
        );
        assert_eq!(
            field(json!({"rule": "and", "clauses": []})),
            "filter.clauses"
        );
        assert_eq!(field(json!(5)), "filter");
    }

    #[test]
    fn maps_onto_a_subscription_and_back() {
        let t: Trigger = serde_json::from_value(json!({
            "type": "order-paid", "url": "http://127.0.0.1:9/hook", "retries": 0, "timeout": 1500,
            "filter": {"rule": "match", "eval": "==", "f1": "args.data.ok", "f2": true}
        }))
        .unwrap();
        let sub = t.to_subscription("paid", Duration::from_secs(5)).unwrap();
        assert_eq!(sub.id, "paid");
        assert_eq!(sub.types, vec!["order-paid"]);
        assert_eq!(sub.filters, vec![json!({"feel": "ok = true"})]);
        assert_eq!(
            sub.delivery.retry.max_attempts,
            Some(4),
            "retries <= 0 means 3"
        );
        assert_eq!(sub.delivery.timeout, Duration::from_millis(1500));
        assert_eq!(sub.delivery.dead_letter_event.as_deref(), Some("dlq_paid"));
        assert_eq!(sub.delivery.disable_after_failures, 0);
        assert!(sub.delivery.retry.non_retryable_statuses.is_empty());
        let back = Trigger::of(&sub).unwrap();
        assert_eq!(back.id, "paid");
        assert_eq!(back.filter, t.filter);
        assert_eq!(back.effective(), (3, 1500));

        let bad = |v: Value, id: &str| {
            serde_json::from_value::<Trigger>(v)
                .unwrap()
                .to_subscription(id, Duration::from_secs(5))
                .unwrap_err()
                .field
        };
        assert_eq!(bad(json!({"type": "t", "url": "ftp://x"}), "a"), "url");
        assert_eq!(bad(json!({"type": "", "url": "http://x"}), "a"), "type");
        assert_eq!(bad(json!({"type": "t", "url": "http://x"}), "a b"), "id");
        assert_eq!(
            bad(json!({"type": "t", "url": "http://x", "retries": 500}), "a"),
            "retries"
        );
    }
}

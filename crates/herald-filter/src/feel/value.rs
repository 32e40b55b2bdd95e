//! FEEL values, their conversion from and to JSON, and FEEL equality and ordering.
//! Equality and ordering return `None` where FEEL yields `null` (values of different types).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use serde_json::Value as Json;

/// The result of evaluating a FEEL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// FEEL numbers are decimals; here they are `f64` (see the module docs for the rounding rule).
    Number(f64),
    String(String),
    List(Vec<Value>),
    Context(BTreeMap<String, Value>),
    /// `date and time`: always carries an offset (values without one are read as UTC).
    DateTime(DateTime<FixedOffset>),
    Date(NaiveDate),
}

impl Value {
    /// Converts JSON into a FEEL value: objects become contexts, arrays lists.
    pub fn from_json(json: &Json) -> Value {
        let mut unlimited = u64::MAX;
        from_json_counted(json, &mut unlimited)
    }

    /// Converts to JSON; dates become ISO 8601 strings and integral numbers JSON integers.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::String(s) => Json::String(s.clone()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Context(map) => {
                Json::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
            Value::DateTime(dt) => Json::String(format_date_time(dt)),
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        }
    }

    /// Whether this is exactly `true`: the only value that makes a filter match.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }
}

pub(crate) fn format_date_time(dt: &DateTime<FixedOffset>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn number_to_json(n: f64) -> Json {
    // 2^53: beyond it f64 no longer holds every integer, so the exact-integer form would lie.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

/// JSON to FEEL, charging one unit of `budget` per node so that the evaluator's work stays
/// bounded even when an expression touches a large document many times.
pub(crate) fn from_json_counted(json: &Json, budget: &mut u64) -> Value {
    *budget = budget.saturating_sub(1);
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n.as_f64().map_or(Value::Null, Value::Number),
        Json::String(s) => {
            *budget = budget.saturating_sub(string_cost(s));
            Value::String(s.clone())
        }
        Json::Array(items) => {
            Value::List(items.iter().map(|v| from_json_counted(v, budget)).collect())
        }
        Json::Object(map) => Value::Context(
            map.iter()
                .map(|(k, v)| (k.clone(), from_json_counted(v, budget)))
                .collect(),
        ),
    }
}

/// Budget units for touching a string: long strings cost more than one step.
pub(crate) fn string_cost(s: &str) -> u64 {
    (s.len() / 64) as u64
}

/// `Clone` that charges `budget` like [`from_json_counted`], for values copied out of
/// local bindings inside loops.
pub(crate) fn clone_counted(v: &Value, budget: &mut u64) -> Value {
    *budget = budget.saturating_sub(1);
    match v {
        Value::List(items) => Value::List(items.iter().map(|i| clone_counted(i, budget)).collect()),
        Value::Context(map) => Value::Context(
            map.iter()
                .map(|(k, v)| (k.clone(), clone_counted(v, budget)))
                .collect(),
        ),
        Value::String(s) => {
            *budget = budget.saturating_sub(string_cost(s));
            Value::String(s.clone())
        }
        other => other.clone(),
    }
}

/// FEEL `=`: `null = null` is true, `null` against anything else is false, and values of
/// different types are not comparable (`None`, i.e. FEEL null).
pub(crate) fn feel_eq(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(true),
        (Value::Null, _) | (_, Value::Null) => Some(false),
        (Value::Bool(x), Value::Bool(y)) => Some(x == y),
        (Value::Number(x), Value::Number(y)) => Some(x == y),
        (Value::String(x), Value::String(y)) => Some(x == y),
        (Value::Date(x), Value::Date(y)) => Some(x == y),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x == y),
        (Value::List(x), Value::List(y)) => {
            if x.len() != y.len() {
                return Some(false);
            }
            let mut all = true;
            for (l, r) in x.iter().zip(y) {
                all &= feel_eq(l, r)?;
            }
            Some(all)
        }
        (Value::Context(x), Value::Context(y)) => {
            if x.len() != y.len() || x.keys().ne(y.keys()) {
                return Some(false);
            }
            let mut all = true;
            for (l, r) in x.values().zip(y.values()) {
                all &= feel_eq(l, r)?;
            }
            Some(all)
        }
        _ => None,
    }
}

/// FEEL ordering (`<`, `<=`, ...): defined for numbers, strings, dates and date-times of the
/// same type; date-times compare as instants.
pub(crate) fn feel_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

//! Guards: necessary conditions derived from a compiled filter, for the routing index. A
//! filter's guards are alternatives: whenever the filter matches an event, at least one of
//! them holds. So a subscription can be filed under its guards' keys and skipped, without
//! running its expression, for every event that satisfies none of them.
//!
//! Only shapes whose meaning is exactly known are turned into guards (`exact`/`prefix`/
//! `suffix`, CESQL `attr = 'x'`, `attr LIKE 'x%'`, `attr IN (..)`, `attr > 5`, FEEL
//! `field = "x"`, `field > 5`, `event.type = "x"`, joined by and/or); anything else has no
//! guard and is evaluated for every event its other selectors let through.

use std::borrow::Cow;

use herald_core::{Data, Event, ExtValue};
use serde_json::Value;

use crate::cesql;

/// Where a guard reads its value from an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probe {
    /// A context attribute in its string form, as the spec dialects compare it.
    Attribute(String),
    /// A field of JSON object `data`, by path of object keys.
    Data(Vec<String>),
    /// A context attribute as CESQL casts it to Integer.
    SqlInteger(String),
}

/// What a guard requires of the probed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    /// A number greater than `bound` (or equal, when inclusive).
    Above {
        bound: f64,
        inclusive: bool,
    },
    /// A number less than `bound` (or equal, when inclusive).
    Below {
        bound: f64,
        inclusive: bool,
    },
}

impl Test {
    /// How narrowly the test selects, lower is narrower: equality, then prefix or suffix,
    /// then ranges (which tend to admit half of all values).
    pub fn rank(&self) -> u8 {
        match self {
            Test::Equals(_) => 0,
            Test::StartsWith(_) | Test::EndsWith(_) => 1,
            Test::Above { .. } | Test::Below { .. } => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub probe: Probe,
    pub test: Test,
}

/// A probed value: text for the string tests, a number for the ranges.
#[derive(Debug, Clone, PartialEq)]
pub enum Probed<'a> {
    Text(Cow<'a, str>),
    Number(f64),
}

/// Attributes CESQL and FEEL compare as text exactly as the spec dialects do, so their
/// guards can share one index.
pub(crate) fn is_string_attribute(name: &str) -> bool {
    herald_core::event::STRING_ATTRIBUTES.contains(&name)
}

impl Probe {
    /// The event's value under this probe; `None` when it has none (no guard can hold).
    pub fn read<'e>(&self, event: &'e Event) -> Option<Probed<'e>> {
        match self {
            Probe::Attribute(name) => match event.attribute_str(name) {
                Some(s) => Some(Probed::Text(Cow::Borrowed(s))),
                None => event.attribute(name).map(|s| Probed::Text(Cow::Owned(s))),
            },
            Probe::Data(path) => {
                let Some(Data::Json(root)) = &event.data else {
                    return None;
                };
                let mut v = root;
                for key in path {
                    v = v.as_object()?.get(key)?;
                }
                match v {
                    Value::String(s) => Some(Probed::Text(Cow::Borrowed(s))),
                    Value::Number(n) => n.as_f64().map(Probed::Number),
                    _ => None,
                }
            }
            Probe::SqlInteger(name) => {
                let i = match event.attribute_str(name) {
                    Some(s) => cesql::integer_of_str(s),
                    None => cesql::integer_of(&cesql_attribute(event, name)?),
                };
                i.map(|i| Probed::Number(f64::from(i)))
            }
        }
    }
}

impl Guard {
    /// Does the guard hold for the event? (The index answers the same question by lookup.)
    pub fn holds(&self, event: &Event) -> bool {
        match (self.probe.read(event), &self.test) {
            (Some(Probed::Text(s)), Test::Equals(w)) => s == w.as_str(),
            (Some(Probed::Text(s)), Test::StartsWith(w)) => s.starts_with(w.as_str()),
            (Some(Probed::Text(s)), Test::EndsWith(w)) => s.ends_with(w.as_str()),
            (Some(Probed::Number(n)), Test::Above { bound, inclusive }) => {
                n > *bound || (*inclusive && n == *bound)
            }
            (Some(Probed::Number(n)), Test::Below { bound, inclusive }) => {
                n < *bound || (*inclusive && n == *bound)
            }
            _ => false,
        }
    }
}

/// CESQL's view of a context attribute, with its CloudEvents type.
pub(crate) fn cesql_attribute(event: &Event, name: &str) -> Option<cesql::Value> {
    match event.extensions.get(name) {
        Some(ExtValue::Integer(i)) => Some(match i32::try_from(*i) {
            Ok(i) => cesql::Value::Integer(i),
            Err(_) => cesql::Value::String(i.to_string()),
        }),
        Some(ExtValue::Bool(b)) => Some(cesql::Value::Boolean(*b)),
        _ => event.attribute(name).map(cesql::Value::String),
    }
}

/// What a filter requires, as a conjunction of guard sets: each set is alternatives, and
/// every set has one guard that holds whenever the filter matches. Empty when nothing is
/// known.
pub type Required = Vec<Vec<Guard>>;

/// The requirements of a conjunction: all of its parts' requirements.
pub(crate) fn all_of(parts: impl IntoIterator<Item = Required>) -> Required {
    parts.into_iter().flatten().collect()
}

/// The requirements of a disjunction: one set, the union of each part's narrowest set;
/// nothing when a part has no requirement.
pub(crate) fn any_of(parts: impl IntoIterator<Item = Required>) -> Required {
    let mut out = Vec::new();
    for part in parts {
        match narrowest(part) {
            Some(set) => out.extend(set),
            None => return Vec::new(),
        }
    }
    if out.is_empty() {
        Vec::new()
    } else {
        vec![out]
    }
}

/// The narrowest set of a requirement, by [`cost`].
pub fn narrowest(required: Required) -> Option<Vec<Guard>> {
    required.into_iter().min_by_key(|g| cost(g))
}

/// Does one of the alternatives hold?
pub fn any_holds(set: &[Guard], event: &Event) -> bool {
    set.iter().any(|g| g.holds(event))
}

/// Comparable cost of a set of alternatives: its widest test, then how many there are.
pub fn cost(guards: &[Guard]) -> (u8, usize) {
    let widest = guards
        .iter()
        .map(|g| g.test.rank())
        .max()
        .unwrap_or(u8::MAX);
    (widest, guards.len())
}

/// The guard test of a numeric comparison `value > bound` (`greater`) or `value < bound`,
/// `or_equal` for `>=` and `<=`.
pub(crate) fn range(greater: bool, or_equal: bool, bound: f64) -> Test {
    if greater {
        Test::Above {
            bound,
            inclusive: or_equal,
        }
    } else {
        Test::Below {
            bound,
            inclusive: or_equal,
        }
    }
}

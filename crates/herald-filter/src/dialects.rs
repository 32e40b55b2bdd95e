//! The Subscriptions API `filters` array compiled into a [`Filter`] tree. The array is an
//! implicit `all`; unknown dialects are refused at compile time, as the spec requires.
//! `sql` (CESQL) and `feel` expressions are parsed here, once, with their error position.

use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::{Data, Event};
use serde_json::Value;

use crate::guard::{self, Guard, Probe, Required, Test};
use crate::{cesql, feel};

static EVALUATION_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Filter evaluations that failed (CESQL error, FEEL null) and so did not match.
pub fn evaluation_errors() -> u64 {
    EVALUATION_ERRORS.load(Ordering::Relaxed)
}

/// Deepest nesting of `all`/`any`/`not` accepted.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub enum Filter {
    Exact(Vec<(String, String)>),
    Prefix(Vec<(String, String)>),
    Suffix(Vec<(String, String)>),
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    /// CloudEvents SQL: true only for a Boolean `TRUE` without error.
    Sql(cesql::Expression),
    /// FEEL over the event's data fields (context attributes under `event.`).
    Feel(feel::Expression),
}

/// Why a filter was refused, with the JSON path of the offending part (`filters[0].all[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Parse a FEEL expression, with its error position in the message.
pub fn compile_feel(src: &str) -> Result<feel::Expression, String> {
    feel::Expression::parse(src).map_err(|e| format!("invalid FEEL expression {e}"))
}

/// Compile a subscription's `filters` array (empty = match everything).
pub fn compile(filters: &[Value]) -> Result<Filter, FilterError> {
    let compiled = filters
        .iter()
        .enumerate()
        .map(|(i, f)| compile_one(f, &format!("filters[{i}]"), 1))
        .collect::<Result<_, _>>()?;
    Ok(Filter::All(compiled))
}

fn compile_one(v: &Value, path: &str, depth: usize) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(err(
            path,
            format!("filters nest deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Value::Object(obj) = v else {
        return Err(err(path, "a filter is an object with exactly one dialect key, e.g. {\"exact\": {\"type\": \"x\"}}"));
    };
    if obj.len() != 1 {
        return Err(err(
            path,
            format!("a filter has exactly one dialect key; found {}", obj.len()),
        ));
    }
    let (dialect, body) = obj.iter().next().expect("one key");
    let here = format!("{path}.{dialect}");
    match dialect.as_str() {
        "exact" => Ok(Filter::Exact(attribute_map(body, &here)?)),
        "prefix" => Ok(Filter::Prefix(attribute_map(body, &here)?)),
        "suffix" => Ok(Filter::Suffix(attribute_map(body, &here)?)),
        "all" | "any" => {
            let Value::Array(items) = body else {
                return Err(err(&here, "must be an array of filters"));
            };
            if items.is_empty() {
                return Err(err(&here, "must hold at least one filter"));
            }
            let nested = items
                .iter()
                .enumerate()
                .map(|(i, f)| compile_one(f, &format!("{here}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if dialect == "all" { Filter::All(nested) } else { Filter::Any(nested) })
        }
        "not" => Ok(Filter::Not(Box::new(compile_one(body, &here, depth + 1)?))),
        "sql" => {
            let Value::String(src) = body else {
                return Err(err(&here, "must be a CloudEvents SQL expression string"));
            };
            cesql::Expression::parse(src)
                .map(Filter::Sql)
                .map_err(|e| err(&here, format!("invalid CloudEvents SQL {e}")))
        }
        "feel" => {
            let Value::String(src) = body else {
                return Err(err(&here, "must be a FEEL expression string"));
            };
            compile_feel(src).map(Filter::Feel).map_err(|e| err(&here, e))
        }
        other => Err(err(
            path,
            format!("filter dialect '{other}' is not supported; supported dialects: exact, prefix, suffix, all, any, not, sql, feel"),
        )),
    }
}

fn attribute_map(v: &Value, path: &str) -> Result<Vec<(String, String)>, FilterError> {
    let Value::Object(obj) = v else {
        return Err(err(
            path,
            "must be an object of attribute name to string value",
        ));
    };
    if obj.is_empty() {
        return Err(err(path, "must name at least one attribute"));
    }
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) if !k.is_empty() && !s.is_empty() => Ok((k.clone(), s.clone())),
            Value::String(_) => Err(err(
                path,
                "attribute names and values must not be empty strings",
            )),
            _ => Err(err(&format!("{path}.{k}"), "must be a string")),
        })
        .collect()
}

impl Filter {
    /// Does the event pass? Missing attributes never match `exact`/`prefix`/`suffix`.
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_view(&EventView::new(event))
    }

    /// As [`Filter::matches`], sharing what is derived from the event (the attribute map
    /// FEEL reads) between every filter evaluated against it.
    pub fn matches_view(&self, view: &EventView<'_>) -> bool {
        let event = view.event;
        let test = |pairs: &[(String, String)], f: fn(&str, &str) -> bool| {
            pairs
                .iter()
                .all(|(name, want)| match event.attribute_str(name) {
                    Some(have) => f(have, want),
                    None => event.attribute(name).is_some_and(|have| f(&have, want)),
                })
        };
        match self {
            Filter::Exact(p) => test(p, |h, w| h == w),
            Filter::Prefix(p) => test(p, |h, w| h.starts_with(w)),
            Filter::Suffix(p) => test(p, |h, w| h.ends_with(w)),
            Filter::All(fs) => fs.iter().all(|f| f.matches_view(view)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches_view(view)),
            Filter::Not(f) => !f.matches_view(view),
            Filter::Sql(expr) => {
                let eval = expr.evaluate(&EventAttributes(event));
                if eval.error.is_some() {
                    EVALUATION_ERRORS.fetch_add(1, Ordering::Relaxed);
                }
                eval.error.is_none() && matches!(eval.value, cesql::Value::Boolean(true))
            }
            Filter::Feel(expr) => feel_matches_view(expr, view),
        }
    }

    /// Necessary conditions for a match (see [`crate::guard`]): for each set, the filter
    /// can only pass an event for which one of its guards holds. Empty when none is known.
    pub fn required(&self) -> Required {
        let pairs = |p: &[(String, String)], test: fn(String) -> Test| {
            p.iter()
                .map(|(name, value)| {
                    vec![Guard {
                        probe: Probe::Attribute(name.clone()),
                        test: test(value.clone()),
                    }]
                })
                .collect()
        };
        match self {
            Filter::Exact(p) => pairs(p, Test::Equals),
            Filter::Prefix(p) => pairs(p, Test::StartsWith),
            Filter::Suffix(p) => pairs(p, Test::EndsWith),
            Filter::All(fs) => guard::all_of(fs.iter().map(Filter::required)),
            Filter::Any(fs) => guard::any_of(fs.iter().map(Filter::required)),
            Filter::Not(_) => Vec::new(),
            Filter::Sql(expr) => expr.required(),
            Filter::Feel(expr) => expr.required(),
        }
    }

    /// The narrowest set of [`Filter::required`]: the routing index files under it.
    pub fn guards(&self) -> Option<Vec<Guard>> {
        guard::narrowest(self.required())
    }

    /// True for the empty filter (matches everything without looking).
    pub fn is_trivial(&self) -> bool {
        matches!(self, Filter::All(fs) if fs.is_empty())
    }
}

/// An event being routed, with what filters derive from it computed once, on first use.
pub struct EventView<'a> {
    pub event: &'a Event,
    attributes: std::cell::OnceCell<serde_json::Map<String, Value>>,
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a Event) -> Self {
        EventView {
            event,
            attributes: std::cell::OnceCell::new(),
        }
    }

    /// The context attributes as a JSON object (FEEL's `event`).
    pub fn attributes(&self) -> &serde_json::Map<String, Value> {
        self.attributes.get_or_init(|| self.event.attributes_json())
    }
}

/// Evaluate a FEEL filter: data fields as variables, context attributes under `event`.
pub fn feel_matches(expr: &feel::Expression, event: &Event) -> bool {
    feel_matches_view(expr, &EventView::new(event))
}

fn feel_matches_view(expr: &feel::Expression, view: &EventView<'_>) -> bool {
    let data = match &view.event.data {
        Some(Data::Json(v)) => v,
        _ => &Value::Null,
    };
    let result = expr.evaluate(data, view.attributes());
    if matches!(result, feel::Value::Null) {
        EVALUATION_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    result.is_true()
}

/// CESQL's view of an event: context attributes with their CloudEvents types.
struct EventAttributes<'a>(&'a Event);

impl cesql::EventContext for EventAttributes<'_> {
    fn attribute(&self, name: &str) -> Option<cesql::Value> {
        guard::cesql_attribute(self.0, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ExtValue;
    use serde_json::json;

    fn event() -> Event {
        let mut e = Event::new(
            "1",
            "https://github.com/cloudevents/spec",
            "com.github.push",
        );
        e.subject = Some("https://github.com/cloudevents/spec".into());
        e.extensions.insert("count".into(), ExtValue::Integer(7));
        e
    }

    fn check(filters: Value) -> bool {
        compile(filters.as_array().unwrap())
            .unwrap()
            .matches(&event())
    }

    #[test]
    fn spec_dialects_match() {
        assert!(check(json!([])));
        assert!(check(
            json!([{"exact": {"type": "com.github.push", "subject": "https://github.com/cloudevents/spec"}}])
        ));
        assert!(!check(json!([{"exact": {"type": "com.github.Push"}}])));
        assert!(check(json!([{"prefix": {"type": "com.github."}}])));
        assert!(check(json!([{"suffix": {"subject": "/cloudevents/spec"}}])));
        assert!(!check(json!([{"suffix": {"dataschema": "x"}}])));
        assert!(check(json!([{"exact": {"count": "7"}}])));
        assert!(check(
            json!([{"any": [{"exact": {"type": "nope"}}, {"prefix": {"source": "https://github.com"}}]}])
        ));
        assert!(!check(
            json!([{"all": [{"exact": {"type": "nope"}}, {"prefix": {"source": "https://github.com"}}]}])
        ));
        assert!(!check(
            json!([{"not": {"exact": {"type": "com.github.push"}}}])
        ));
        assert!(
            !check(json!([{"prefix": {"type": "com."}}, {"exact": {"type": "x"}}])),
            "array is AND"
        );
    }

    #[test]
    fn sql_and_feel_dialects_match_alone_and_nested() {
        let mut e = event();
        e.data = Some(Data::Json(json!({"amount": 150, "items": [{"price": 12}]})));
        let check = |f: Value| compile(f.as_array().unwrap()).unwrap().matches(&e);
        assert!(check(
            json!([{"sql": "type = 'com.github.push' AND count > 5"}])
        ));
        assert!(!check(json!([{"sql": "count > 7"}])));
        assert!(
            !check(json!([{"sql": "1 / 0 = 0"}])),
            "an evaluation error never matches"
        );
        assert!(check(json!([{"not": {"sql": "source LIKE '%gitlab%'"}}])));
        assert!(check(
            json!([{"any": [{"exact": {"type": "x"}}, {"sql": "EXISTS subject"}]}])
        ));
        assert!(check(
            json!([{"all": [{"feel": "amount > 100"}, {"sql": "TRUE"}]}])
        ));
        assert!(check(
            json!([{"feel": "some i in items satisfies i.price > 10 and event.type = \"com.github.push\""}])
        ));
        assert!(
            !check(json!([{"feel": "amount > \"x\""}])),
            "FEEL null never matches"
        );
    }

    #[test]
    fn refuses_unsupported_and_malformed() {
        let cases = [
            (json!([{"jsonpath": "$.x"}]), "filters[0]", "not supported"),
            (json!([{"sql": "type = "}]), "filters[0].sql", "position"),
            (
                json!([{"all": [{"feel": "amount >"}]}]),
                "filters[0].all[0].feel",
                "position",
            ),
            (json!([{"sql": 1}]), "filters[0].sql", "string"),
            (json!([{"all": []}]), "filters[0].all", "at least one"),
            (
                json!([{"exact": {"type": ""}}]),
                "filters[0].exact",
                "empty",
            ),
            (
                json!([{"exact": {"type": 1}}]),
                "filters[0].exact.type",
                "string",
            ),
            (
                json!([{"any": [{"not": {"bogus": {}}}]}]),
                "filters[0].any[0].not",
                "not supported",
            ),
            (
                json!([{"exact": {"a": "b"}, "prefix": {"a": "b"}}]),
                "filters[0]",
                "exactly one",
            ),
        ];
        for (f, path, msg) in cases {
            let e = compile(f.as_array().unwrap()).unwrap_err();
            assert_eq!(e.path, path);
            assert!(e.message.contains(msg), "{}", e.message);
        }
        let mut deep = json!({"exact": {"type": "x"}});
        for _ in 0..40 {
            deep = json!({"not": deep});
        }
        assert!(compile(&[deep]).unwrap_err().message.contains("deeper"));
    }
}

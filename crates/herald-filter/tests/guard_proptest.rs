//! The routing index may skip a subscription only when none of its filter's guards holds,
//! so guards must be necessary conditions: whenever a filter matches an event, one of its
//! guards holds. Checked here over random filters built from the shapes guards understand
//! (and some they must refuse), against random events whose values collide with the
//! filters' literals often.

use herald_core::{Data, Event, ExtValue};
use herald_filter::compile;
use proptest::prelude::*;
use serde_json::{json, Value};

const WORDS: [&str; 5] = ["a", "ab", "b", "5", "eu/x"];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS.to_vec()).prop_map(str::to_string)
}

fn attribute() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["type", "source", "subject", "prio", "id"])
}

fn number() -> impl Strategy<Value = i32> {
    -2..8i32
}

/// One filter in the Subscriptions API JSON shape.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (attribute(), word()).prop_map(|(a, w)| json!({"exact": {a: w}})),
        (attribute(), word()).prop_map(|(a, w)| json!({"prefix": {a: w}})),
        (attribute(), word()).prop_map(|(a, w)| json!({"suffix": {a: w}})),
        (attribute(), word()).prop_map(|(a, w)| json!({"sql": format!("{a} = '{w}'")})),
        (attribute(), word()).prop_map(|(a, w)| json!({"sql": format!("'{w}' = {a}")})),
        (
            attribute(),
            word(),
            prop::sample::select(vec!["%", "", "_"]),
            any::<bool>()
        )
            .prop_map(|(a, w, wild, at_end)| {
                let pattern = if at_end {
                    format!("{w}{wild}")
                } else {
                    format!("{wild}{w}")
                };
                json!({"sql": format!("{a} LIKE '{pattern}'")})
            }),
        (attribute(), word(), word())
            .prop_map(|(a, x, y)| json!({"sql": format!("{a} IN ('{x}', '{y}')")})),
        (
            attribute(),
            prop::sample::select(vec![">", ">=", "<", "<=", "="]),
            number(),
            any::<bool>()
        )
            .prop_map(|(a, op, n, left)| {
                let sql = if left {
                    format!("{a} {op} {n}")
                } else {
                    format!("{n} {op} {a}")
                };
                json!({ "sql": sql })
            }),
        (
            prop::sample::select(vec!["cur", "amount", "nested.k"]),
            word()
        )
            .prop_map(|(f, w)| json!({"feel": format!("{f} = \"{w}\"")})),
        (
            prop::sample::select(vec!["cur", "amount", "nested.k"]),
            prop::sample::select(vec![">", ">=", "<", "<="]),
            number(),
            any::<bool>()
        )
            .prop_map(|(f, op, n, left)| {
                let feel = if left {
                    format!("{f} {op} {n}")
                } else {
                    format!("{n} {op} {f}")
                };
                json!({ "feel": feel })
            }),
        (attribute(), word()).prop_map(|(a, w)| json!({"feel": format!("event.{a} = \"{w}\"")})),
        (word(), word()).prop_map(|(x, y)| json!({"feel": format!("cur in [\"{x}\", \"{y}\"]")})),
    ]
}

/// Leaves joined by all/any/not and by the expression languages' own and/or.
fn filter() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "all": v })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "any": v })),
            inner.clone().prop_map(|v| json!({ "not": v })),
            (inner.clone(), inner, any::<bool>()).prop_filter_map(
                "same language",
                |(a, b, and)| {
                    let joined = |l: &str, r: &str, op: &str| format!("({l}) {op} ({r})");
                    match (&a, &b) {
                        (Value::Object(x), Value::Object(y)) => {
                            match (x.get("sql"), y.get("sql"), x.get("feel"), y.get("feel")) {
                                (Some(Value::String(l)), Some(Value::String(r)), _, _) => Some(
                                    json!({"sql": joined(l, r, if and { "AND" } else { "OR" })}),
                                ),
                                (_, _, Some(Value::String(l)), Some(Value::String(r))) => Some(
                                    json!({"feel": joined(l, r, if and { "and" } else { "or" })}),
                                ),
                                _ => None,
                            }
                        }
                        _ => None,
                    }
                },
            ),
        ]
    })
}

fn data_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(Value::String),
        number().prop_map(|n| json!(n)),
        number().prop_map(|n| json!(f64::from(n) + 0.5)),
        Just(Value::Null),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        word(),
        word(),
        prop::option::of(word()),
        prop_oneof![
            Just(None),
            word().prop_map(|w| Some(ExtValue::String(w))),
            number().prop_map(|n| Some(ExtValue::Integer(i64::from(n)))),
            any::<bool>().prop_map(|b| Some(ExtValue::Bool(b))),
        ],
        prop::option::of((data_value(), data_value(), data_value())),
    )
        .prop_map(|(ty, source, subject, prio, data)| {
            let mut e = Event::new("5", &source, &ty);
            e.subject = subject;
            if let Some(p) = prio {
                e.extensions.insert("prio".into(), p);
            }
            e.data = data.map(|(cur, amount, k)| {
                Data::Json(json!({"cur": cur, "amount": amount, "nested": {"k": k}}))
            });
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn a_matching_filter_satisfies_every_required_guard_set(
        filters in prop::collection::vec(filter(), 1..3),
        events in prop::collection::vec(event(), 8),
    ) {
        let Ok(compiled) = compile(&filters) else { return Ok(()) };
        let required = compiled.required();
        for e in &events {
            if compiled.matches(e) {
                for set in &required {
                    prop_assert!(
                        herald_filter::guard::any_holds(set, e),
                        "filters {filters:?} match {e:?} but no guard of {set:?} holds"
                    );
                }
            }
        }
    }
}

#[test]
fn guards_narrow_what_they_can() {
    let g = |f: Value| compile(f.as_array().unwrap()).unwrap().guards();
    assert!(g(json!([{"sql": "subject LIKE 'eu/%' AND prio > 5"}])).is_some());
    assert!(g(json!([{"not": {"exact": {"type": "x"}}}])).is_none());
    assert!(
        g(json!([])).is_none(),
        "the empty filter matches everything"
    );
    let narrowest = g(json!([{"sql": "prio > 1"}, {"exact": {"subject": "a"}}])).unwrap();
    assert_eq!(narrowest.len(), 1);
    assert_eq!(
        narrowest[0].test,
        herald_filter::guard::Test::Equals("a".into())
    );
}

//! Property tests of the HTTP binding decoder: arbitrary header lists and bodies never make
//! `decode_request` panic, every refusal is a 400, 413 or 415 problem, and every accepted
//! event survives a structured-mode round trip (`encode_structured` then `decode_request`)
//! unchanged.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use base64::Engine as _;
use herald_core::binding::{
    decode_header_value, decode_request, encode_binary, encode_header_value, encode_structured,
    Mode,
};
use herald_core::{Data, Event, Limits, Problem};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

const CASES: u32 = 512;

/// Header pairs as received: a name and raw value bytes.
type Headers = Vec<(String, Vec<u8>)>;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Never write `proptest-regressions/` files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

const CE_NAMES: &[&str] = &[
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-subject",
    "ce-time",
    "ce-dataschema",
    "ce-schemaurl",
    "ce-datacontentencoding",
    "ce-datacontenttype",
    "ce-data",
    "ce-data_base64",
    "ce-traceparent",
    "ce-comexampleextension1",
    "CE-ID",
    "Ce-Subject",
    "ce-Ext",
    "ce-",
    "ce-with-dash",
    "ce-\u{e9}t\u{e9}",
    "ce-a0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
];

const CONTENT_TYPE_NAMES: &[&str] = &["content-type", "Content-Type", "CONTENT-TYPE"];

const CONTENT_TYPES: &[&str] = &[
    "application/cloudevents+json",
    "application/cloudevents+json; charset=utf-8",
    "Application/CloudEvents+JSON",
    "application/cloudevents-batch+json",
    "application/cloudevents-batch+json; charset=utf-8",
    "application/cloudevents+avro",
    "application/cloudevents",
    "application/json",
    "application/json; charset=utf-8",
    "text/json",
    "application/vnd.example+json",
    "text/plain",
    "text/plain; charset=us-ascii",
    "application/xml",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "",
    ";",
    " ",
    "garbage",
];

/// Data content types for binary mode (plus one event format, which is a 415).
const BINARY_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "text/json",
    "application/vnd.example+json",
    "text/plain",
    "text/plain; charset=us-ascii",
    "text/html",
    "application/xml",
    "application/atom+xml",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "image/png",
    "",
    "application/cloudevents+avro",
];

const PLAUSIBLE_VALUES: &[&str] = &[
    "1.0",
    "0.3",
    " 1.0 ",
    "\"1.0\"",
    "2.0",
    "2018-04-05T03:56:24Z",
    "2018-04-05T03:56:24.123+02:00",
    "yesterday",
    "/mycontext/subcontext",
    "com.example.someevent",
    "4321-4321-4321",
    "base64",
    "application/json",
    "%",
    "%%",
    "%2",
    "%zz",
    "%20",
    "%00",
    "%7F",
    "%C0%A0",
    "%E2%82%AC",
    "%E2%82",
    "%F0%9F%98%80",
    "\"",
    "\"\"",
    "\"\\\"",
    "\"a\\\"b\"",
    "\"%22\"",
    "\"  \"",
    "",
    "\t",
];

/// Header values: plausible attribute values, percent-encoded arbitrary strings, strings
/// heavy in `%`, quotes and backslashes, and arbitrary (often invalid UTF-8) bytes.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let tricky: &'static [u8] = b"%\"\\ \t09afAFxz\x00\x7f\x80\xc0\xe2\x82\xac\xff";
    prop_oneof![
        4 => select(PLAUSIBLE_VALUES).prop_map(|s| s.as_bytes().to_vec()),
        3 => any::<String>().prop_map(|s| encode_header_value(&s).into_bytes()),
        2 => "[\"%\\\\ \ta-fA-F0-9xyz]{0,16}".prop_map(String::into_bytes),
        2 => vec(select(tricky), 0..24),
        1 => vec(any::<u8>(), 0..24),
    ]
}

fn content_type_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => select(CONTENT_TYPES).prop_map(|s| s.as_bytes().to_vec()),
        1 => "[a-zA-Z/+;= -]{0,32}".prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..16),
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(CE_NAMES).prop_map(str::to_string),
        1 => select(CONTENT_TYPE_NAMES).prop_map(str::to_string),
        2 => "[a-zA-Z0-9-]{1,16}",
        1 => "ce-[a-z0-9]{1,10}",
        1 => any::<String>(),
    ]
}

/// An arbitrary header: content-type headers get content-type-like values.
fn any_header() -> impl Strategy<Value = (String, Vec<u8>)> {
    header_name().prop_flat_map(|name| {
        let value = if name.eq_ignore_ascii_case("content-type") {
            content_type_value().boxed()
        } else {
            header_value().boxed()
        };
        (Just(name), value)
    })
}

/// The required binary-mode headers, with mostly valid values, so that a good share of
/// binary requests is accepted and the round trip is actually exercised.
fn required_headers() -> impl Strategy<Value = Headers> {
    let simple = || {
        prop_oneof![
            4 => "[a-zA-Z0-9/:.-]{1,12}".prop_map(String::into_bytes),
            1 => header_value(),
        ]
    };
    (
        prop_oneof![
            4 => select(&["1.0", "0.3", " 1.0", "\"0.3\""][..]).prop_map(|s| s.as_bytes().to_vec()),
            1 => header_value(),
        ],
        simple(),
        simple(),
        simple(),
    )
        .prop_map(|(sv, id, source, ty)| {
            vec![
                ("ce-specversion".to_string(), sv),
                ("ce-id".to_string(), id),
                ("ce-source".to_string(), source),
                ("ce-type".to_string(), ty),
            ]
        })
}

fn headers() -> impl Strategy<Value = Headers> {
    (
        prop_oneof![1 => Just(Vec::new()), 2 => required_headers()],
        proptest::option::weighted(
            0.8,
            (
                select(CONTENT_TYPE_NAMES).prop_map(str::to_string),
                content_type_value(),
            ),
        ),
        vec(any_header(), 0..6),
    )
        .prop_flat_map(|(mut all, ct, extra)| {
            all.extend(ct);
            all.extend(extra);
            Just(all).prop_shuffle()
        })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-100i64..100).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-z ]{0,8}".prop_map(Value::String),
    ]
}

/// JSON values with random nesting.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(prop_oneof!["[a-z_]{0,6}", any::<String>()], inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON value for a string attribute: mostly a short valid string, sometimes anything.
fn attr_value(valid: &'static str) -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => valid.prop_map(Value::String),
        1 => any::<String>().prop_map(Value::String),
        1 => json_leaf(),
    ]
}

fn ext_name() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[a-z0-9]{1,10}",
        1 => select(&[
            "schemaurl",
            "datacontentencoding",
            "data_base64",
            "Upper",
            "with-dash",
            "",
            "a0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
        ][..])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn ext_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => "[ -~]{0,12}".prop_map(Value::String),
        3 => (i32::MIN as i64..=i32::MAX as i64).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        2 => any::<bool>().prop_map(Value::Bool),
        1 => json_value(),
    ]
}

/// How an event-like object carries its data.
fn data_fields() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    prop_oneof![
        2 => Just(Vec::new()),
        3 => json_value().prop_map(|v| vec![("data", v)]),
        2 => any::<String>().prop_map(|s| vec![("data", Value::String(s))]),
        2 => vec(any::<u8>(), 0..24).prop_map(|b| {
            vec![(
                "data_base64",
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            )]
        }),
        1 => (json_leaf(), json_leaf()).prop_map(|(d, b)| vec![("data", d), ("data_base64", b)]),
        1 => json_leaf().prop_map(|b| vec![("data_base64", b)]),
    ]
}

/// Objects that look like CloudEvents (1.0 and 0.3), valid or nearly so.
fn event_json() -> impl Strategy<Value = Value> {
    let optional = |s: BoxedStrategy<Value>| proptest::option::weighted(0.4, s);
    (
        (
            prop_oneof![
                8 => select(&["1.0", "0.3"][..]).prop_map(Value::from),
                1 => json_leaf(),
            ],
            attr_value("[a-zA-Z0-9-]{1,12}"),
            attr_value("/[a-z/]{0,12}"),
            attr_value("com\\.example\\.[a-z]{1,8}"),
        ),
        (
            optional(
                prop_oneof![
                    4 => select(CONTENT_TYPES).prop_map(Value::from),
                    1 => json_leaf(),
                ]
                .boxed(),
            ),
            optional(attr_value("https://example\\.com/[a-z]{0,8}").boxed()),
            optional(attr_value("[ -~]{0,16}").boxed()),
            optional(
                prop_oneof![
                    3 => select(&[
                        "2018-04-05T03:56:24Z",
                        "2018-04-05T03:56:24.000000001-07:00",
                        "1985-04-12T23:20:50.52Z",
                    ][..])
                    .prop_map(Value::from),
                    1 => attr_value("[0-9TZ:.-]{0,24}"),
                ]
                .boxed(),
            ),
            optional(attr_value("https://example\\.com/[a-z]{0,8}").boxed()),
            proptest::option::weighted(
                0.15,
                prop_oneof![
                    3 => select(&["base64", "BASE64", "gzip"][..]).prop_map(Value::from),
                    1 => json_leaf(),
                ],
            ),
        ),
        data_fields(),
        btree_map(ext_name(), ext_value(), 0..5),
    )
        .prop_map(
            |((sv, id, source, ty), (ct, schema, subject, time, schemaurl, enc), data, exts)| {
                let mut m = Map::new();
                for (k, v) in exts {
                    m.insert(k, v);
                }
                m.insert("specversion".into(), sv);
                m.insert("id".into(), id);
                m.insert("source".into(), source);
                m.insert("type".into(), ty);
                for (k, v) in [
                    ("datacontenttype", ct),
                    ("dataschema", schema),
                    ("subject", subject),
                    ("time", time),
                    ("schemaurl", schemaurl),
                    ("datacontentencoding", enc),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                for (k, v) in data {
                    m.insert(k.into(), v);
                }
                Value::Object(m)
            },
        )
}

fn serialise(v: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(v).expect("serialise")
    } else {
        serde_json::to_vec(v).expect("serialise")
    }
}

/// Bodies: random bytes, JSON values, event objects and arrays of them.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        2 => (json_value(), any::<bool>()).prop_map(|(v, p)| serialise(&v, p)),
        4 => (event_json(), any::<bool>()).prop_map(|(v, p)| serialise(&v, p)),
        2 => (vec(event_json(), 0..4), any::<bool>())
            .prop_map(|(v, p)| serialise(&Value::Array(v), p)),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::default()),
        1 => (0usize..4, 1usize..32, 1usize..12, 0usize..4).prop_map(
            |(batch, attr, name, exts)| Limits {
                max_batch_events: batch,
                max_attribute_bytes: attr,
                max_extension_name_len: name,
                max_extensions: exts,
                ..Limits::default()
            }
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn decode(
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    limits: &Limits,
) -> Result<(Mode, Vec<Event>), Problem> {
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    decode_request(&pairs, body, limits)
}

fn check_structured_round_trip(
    event: &Event,
    pretty: bool,
    limits: &Limits,
) -> Result<(), TestCaseError> {
    let msg = encode_structured(event, pretty);
    let mut headers: Headers = msg
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    if let Some(ct) = &msg.content_type {
        headers.push(("content-type".into(), ct.clone().into_bytes()));
    }
    let again = decode(&headers, &msg.body, limits);
    let (mode, events) = match again {
        Ok(ok) => ok,
        Err(p) => {
            return Err(TestCaseError::fail(format!(
                "re-encoded event refused: {p}\nevent: {event:?}\nbody: {}",
                String::from_utf8_lossy(&msg.body)
            )))
        }
    };
    prop_assert_eq!(mode, Mode::Structured);
    prop_assert_eq!(events.len(), 1);
    prop_assert_eq!(&events[0], event, "round trip changed the event");
    Ok(())
}

/// What the request properties saw, printed at the end of each test so a run shows that
/// the round trip was actually exercised.
#[derive(Default)]
struct Stats {
    cases: Cell<usize>,
    refused: RefCell<BTreeMap<u16, usize>>,
    accepted: RefCell<BTreeMap<&'static str, usize>>,
    events_round_tripped: Cell<usize>,
}

impl Stats {
    fn bump(c: &Cell<usize>) {
        c.set(c.get() + 1);
    }

    fn accepted(&self) -> usize {
        self.accepted.borrow().values().sum()
    }
}

fn check_request(
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    limits: &Limits,
    pretty: bool,
    stats: &Stats,
) -> Result<(), TestCaseError> {
    Stats::bump(&stats.cases);
    match decode(headers, body, limits) {
        Err(p) => {
            prop_assert!(
                [400, 413, 415].contains(&p.status),
                "unexpected status {} ({p})",
                p.status
            );
            prop_assert!(p.kind.starts_with("urn:herald:problem:"), "{}", p.kind);
            prop_assert!(!p.detail.is_empty());
            *stats.refused.borrow_mut().entry(p.status).or_default() += 1;
        }
        Ok((mode, events)) => {
            let name = match mode {
                Mode::Binary => "binary",
                Mode::Structured => "structured",
                Mode::Batch => "batch",
            };
            *stats.accepted.borrow_mut().entry(name).or_default() += 1;
            if mode == Mode::Batch {
                prop_assert!(events.len() <= limits.max_batch_events);
            } else {
                prop_assert_eq!(events.len(), 1);
            }
            for event in &events {
                prop_assert!(event.validate(limits).is_ok(), "accepted but invalid");
                check_structured_round_trip(event, pretty, limits)?;
                Stats::bump(&stats.events_round_tripped);
                // Binary re-encoding is lossy by design (extension types, content type
                // defaults), but decoding what Herald itself sends must not panic and
                // may only fail with a client-error problem.
                let msg = encode_binary(event);
                let mut hs: Headers = msg
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                if let Some(ct) = &msg.content_type {
                    hs.push(("content-type".into(), ct.clone().into_bytes()));
                }
                if let Err(p) = decode(&hs, &msg.body, limits) {
                    prop_assert!([400, 413, 415].contains(&p.status), "{p}");
                }
            }
        }
    }
    Ok(())
}

type RequestCase = (Headers, Vec<u8>, Limits, bool);

/// Run `check_request` over `strategy`, print what was seen, and require that at least
/// `min_accepted_pct` percent of the requests were accepted (so the round trip is tested).
fn run_requests(name: &str, strategy: impl Strategy<Value = RequestCase>, min_accepted_pct: usize) {
    let stats = Stats::default();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&strategy, |(headers, body, limits, pretty)| {
        check_request(&headers, &body, &limits, pretty, &stats)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let cases = stats.cases.get();
    println!(
        "{name}: {cases} requests (incl. shrinking), accepted {:?}, refused by status {:?}, \
         {} events round-tripped",
        stats.accepted.borrow(),
        stats.refused.borrow(),
        stats.events_round_tripped.get(),
    );
    assert!(
        stats.accepted() * 100 >= cases * min_accepted_pct,
        "{name}: only {} of {cases} requests accepted",
        stats.accepted()
    );
}

/// Arbitrary header lists and bodies: no panic, only 400/413/415 problems, and every
/// accepted event survives `encode_structured` + `decode_request` unchanged.
#[test]
fn decode_request_never_panics_and_round_trips() {
    let strategy = (headers(), body(), limits(), any::<bool>());
    run_requests("arbitrary requests", strategy, 2);
}

/// Structured and batch requests built from event-like JSON: the same properties, with
/// a share of accepted events high enough for the round trip to be meaningful.
#[test]
fn structured_and_batch_bodies_round_trip() {
    let strategy = (
        vec(event_json(), 0..4),
        any::<bool>(),
        select(&["", "; charset=utf-8", " ; charset=UTF-8"][..]),
        any::<bool>(),
        limits(),
    )
        .prop_map(|(events, batch, params, pretty, limits)| {
            let (ct, body) = match events.first() {
                Some(first) if !batch => (
                    format!("application/cloudevents+json{params}"),
                    serialise(first, pretty),
                ),
                _ => (
                    format!("application/cloudevents-batch+json{params}"),
                    serialise(&Value::Array(events), pretty),
                ),
            };
            let headers = vec![("Content-Type".to_string(), ct.into_bytes())];
            (headers, body, limits, pretty)
        });
    run_requests("structured/batch requests", strategy, 20);
}

/// Binary requests with JSON, text and opaque data: the same properties.
#[test]
fn binary_bodies_round_trip() {
    // Mostly valid extension headers, whose values exercise percent-encoding.
    let extension = prop_oneof![
        4 => (
            "ce-[a-z0-9]{1,10}",
            prop_oneof![
                3 => "[ -~]{0,16}",
                1 => any::<String>(),
            ]
            .prop_map(|v| encode_header_value(&v).into_bytes()),
        ),
        1 => any_header(),
    ];
    let strategy = (
        required_headers(),
        vec(extension, 0..4),
        proptest::option::weighted(0.9, select(BINARY_CONTENT_TYPES)),
        prop_oneof![
            4 => json_value().prop_map(|v| serialise(&v, false)),
            1 => Just(b" null ".to_vec()),
            2 => any::<String>().prop_map(String::into_bytes),
            2 => vec(any::<u8>(), 0..32),
        ],
        limits(),
        any::<bool>(),
    )
        .prop_map(|(mut headers, extra, ct, body, limits, pretty)| {
            headers.extend(extra);
            if let Some(ct) = ct {
                headers.push(("content-type".to_string(), ct.as_bytes().to_vec()));
            }
            (headers, body, limits, pretty)
        });
    run_requests("binary requests", strategy, 20);
}

proptest! {
    #![proptest_config(config())]

    /// `encode_header_value` output is a valid header value that decodes to the input.
    #[test]
    fn header_value_encoding_round_trips(s in any::<String>()) {
        let enc = encode_header_value(&s);
        prop_assert!(enc.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"'), "{enc}");
        let back = decode_header_value(enc.as_bytes());
        prop_assert_eq!(back.as_deref(), Ok(s.as_str()));
    }

    /// Decoding arbitrary header bytes never panics and only yields UTF-8 (by type) or an error.
    #[test]
    fn header_value_decoding_never_panics(raw in header_value()) {
        let _ = decode_header_value(&raw);
    }
}

// ---------------------------------------------------------------------------------------
// Regressions for bugs the properties above found
// ---------------------------------------------------------------------------------------

fn binary_headers(content_type: &str) -> Headers {
    [
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
        ("content-type", content_type),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect()
}

#[test]
fn binary_json_null_data_round_trips() {
    // JSON `null` data is no data (as `"data": null` is in the JSON event format).
    let limits = Limits::default();
    let (_, events) = decode(&binary_headers("application/json"), b"null", &limits).unwrap();
    let event = &events[0];
    assert_eq!(event.data, None);
    check_structured_round_trip(event, false, &limits).unwrap();
}

#[test]
fn deepest_accepted_binary_json_round_trips() {
    // Herald stores every accepted event in the JSON event format and the delivery
    // engine parses it back; an event it accepts must survive that.
    let limits = Limits::default();
    let headers = binary_headers("application/json");
    let nested = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
    let deepest = (1..=256)
        .take_while(|&d| decode(&headers, nested(d).as_bytes(), &limits).is_ok())
        .last()
        .unwrap();
    println!("deepest JSON data accepted in binary mode: {deepest} levels");
    let (_, events) = decode(&headers, nested(deepest).as_bytes(), &limits).unwrap();
    check_structured_round_trip(&events[0], false, &limits).unwrap();
}

#[test]
fn float_data_is_parsed_exactly() {
    // -1.6304275469334392e268 is the shortest representation of an f64 (Rust's own
    // `str::parse` and `Display` agree); Herald must keep that exact number.
    let text = "-1.6304275469334392e268";
    let exact: f64 = text.parse().unwrap();
    assert_eq!(exact.to_string().parse::<f64>().unwrap(), exact);
    let limits = Limits::default();
    let body =
        format!(r#"{{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{text}}}"#);
    let headers = vec![(
        "content-type".to_string(),
        b"application/cloudevents+json".to_vec(),
    )];
    let (_, events) = decode(&headers, body.as_bytes(), &limits).unwrap();
    let got = match &events[0].data {
        Some(Data::Json(Value::Number(n))) => n.as_f64().unwrap(),
        other => panic!("unexpected data {other:?}"),
    };
    assert_eq!(got, exact, "decoded {got:e}, sent {exact:e}");
    let msg = encode_structured(&events[0], false);
    let (_, again) = decode(&headers, &msg.body, &limits).unwrap();
    assert_eq!(again[0], events[0], "the number drifted on a second parse");
}

#[test]
fn reference_events_round_trip() {
    // Sanity anchors for the properties: a few hand-written events of each mode.
    let limits = Limits::default();
    let structured = json!({
        "specversion": "0.3", "id": "1", "source": "/s", "type": "t",
        "schemaurl": "https://example.com/s", "datacontentencoding": "base64",
        "data": "aGk=", "ext": 5, "flag": true
    });
    let cases: Vec<(Headers, Vec<u8>)> = vec![
        (
            vec![(
                "content-type".into(),
                b"application/cloudevents+json".to_vec(),
            )],
            serialise(&structured, false),
        ),
        (
            binary_headers("text/plain; charset=utf-8"),
            "h\u{e9}llo".as_bytes().to_vec(),
        ),
        (
            binary_headers("application/json"),
            br#"{"a":[1,2.5]}"#.to_vec(),
        ),
        (binary_headers("application/octet-stream"), vec![0, 1, 255]),
    ];
    let mut by_data: BTreeMap<&str, usize> = BTreeMap::new();
    for (headers, body) in &cases {
        let (_, events) = decode(headers, body, &limits).unwrap();
        let kind = match events[0].data {
            Some(Data::Json(_)) => "json",
            Some(Data::Text(_)) => "text",
            Some(Data::Binary(_)) => "binary",
            None => "none",
        };
        *by_data.entry(kind).or_default() += 1;
        check_structured_round_trip(&events[0], true, &limits).unwrap();
    }
    assert_eq!(by_data.get("binary"), Some(&2));
}

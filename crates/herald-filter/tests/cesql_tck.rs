//! Runs every case of the CloudEvents SQL TCK (the YAML files of the shared conformance
//! checkout, read in place) against `herald_filter::cesql`, checking result value and error kind.
//! Cases without `event` use a minimal valid event, with `eventOverrides` applied on top.

use std::fs;
use std::path::{Path, PathBuf};

use herald_filter::cesql::{Expression, Value};
use serde::Deserialize;
use serde_json::{json, Map};

/// Number of test cases in the CESQL 1.0 TCK.
const EXPECTED_CASES: usize = 275;

#[derive(Deserialize)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Deserialised as a string so that plain scalars (`TRUE`, `-10`) keep their exact text.
    expression: String,
    result: Option<serde_yaml::Value>,
    error: Option<String>,
    event: Option<serde_yaml::Value>,
    #[serde(rename = "eventOverrides")]
    event_overrides: Option<serde_yaml::Value>,
}

fn tck_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/cloudevents-spec/cesql/cesql_tck")
}

fn yaml_to_json(v: &serde_yaml::Value) -> serde_json::Value {
    match v {
        serde_yaml::Value::Null => serde_json::Value::Null,
        serde_yaml::Value::Bool(b) => json!(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        serde_yaml::Value::String(s) => json!(s),
        serde_yaml::Value::Sequence(items) => items.iter().map(yaml_to_json).collect(),
        serde_yaml::Value::Mapping(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (yaml_key(k), yaml_to_json(v)))
                .collect(),
        ),
        serde_yaml::Value::Tagged(t) => yaml_to_json(&t.value),
    }
}

fn yaml_key(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// The input event of a case: `event`, or a minimal valid event, plus `eventOverrides`.
fn build_event(case: &Case) -> Map<String, serde_json::Value> {
    let base = match &case.event {
        Some(ev) => yaml_to_json(ev),
        None => json!({
            "specversion": "1.0",
            "id": "tck-event-id",
            "source": "https://example.com/tck",
            "type": "com.example.tck",
        }),
    };
    let serde_json::Value::Object(mut event) = base else {
        panic!("case {:?}: event is not a mapping", case.name);
    };
    if let Some(serde_json::Value::Object(overrides)) =
        case.event_overrides.as_ref().map(yaml_to_json)
    {
        event.extend(overrides);
    }
    event
}

fn expected_value(v: &serde_yaml::Value) -> Option<Value> {
    match v {
        serde_yaml::Value::Bool(b) => Some(Value::Boolean(*b)),
        serde_yaml::Value::Number(n) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Integer),
        serde_yaml::Value::String(s) => Some(Value::String(s.clone())),
        _ => None,
    }
}

/// Runs one case; `Err` describes the mismatch.
fn run_case(case: &Case) -> Result<(), String> {
    let expected = case
        .result
        .as_ref()
        .map(|r| expected_value(r).ok_or_else(|| format!("unsupported expected result {r:?}")))
        .transpose()?;
    let parsed = Expression::parse(&case.expression);
    if case.error.as_deref() == Some("parse") {
        // A parse failure produces no evaluation; the TCK's `result`, when given, is `false`.
        if let Ok(e) = parsed {
            return Err(format!("expected a parse error, but it parsed: {e:?}"));
        }
        if expected
            .as_ref()
            .is_some_and(|v| *v != Value::Boolean(false))
        {
            return Err(format!(
                "parse error case with non-false result {expected:?}"
            ));
        }
        return Ok(());
    }
    let expr = parsed.map_err(|e| format!("unexpected parse error {e}"))?;
    let out = expr.evaluate(&build_event(case));
    let got_error = out.error.as_ref().map(|e| e.kind.tck_name());
    if got_error != case.error.as_deref() {
        return Err(format!(
            "expected error {:?}, got {:?} (value {:?})",
            case.error, out.error, out.value
        ));
    }
    if let Some(expected) = expected {
        if out.value != expected {
            return Err(format!("expected {expected:?}, got {:?}", out.value));
        }
    }
    Ok(())
}

#[test]
fn cesql_tck() {
    let dir = tck_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read TCK directory {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no TCK files in {}", dir.display());

    let (mut total, mut passed) = (0, 0);
    let mut failures = Vec::new();
    for file in &files {
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(file).expect("read TCK file");
        let suite: Suite = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{file_name}: invalid TCK file: {e}"));
        for case in &suite.tests {
            total += 1;
            match run_case(case) {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!(
                    "{file_name} [{}] {:?} `{}`: {why}",
                    suite.name, case.name, case.expression
                )),
            }
        }
    }
    println!("CESQL TCK: {passed}/{total} cases passed");
    assert!(
        failures.is_empty(),
        "{} TCK failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, EXPECTED_CASES, "unexpected number of TCK cases");
}

#[test]
fn cesql_tck_plain_yaml_scalars_keep_their_text() {
    let case: Case = serde_yaml::from_str("name: x\nexpression: TRUE\n").unwrap();
    assert_eq!(case.expression, "TRUE");
    let case: Case = serde_yaml::from_str("name: x\nexpression: -10\n").unwrap();
    assert_eq!(case.expression, "-10");
}

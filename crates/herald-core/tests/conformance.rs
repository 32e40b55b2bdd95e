//! CloudEvents conformance: the YAML fixtures and the HTTP protocol binding Gherkin feature
//! of the CloudEvents conformance suite (read in place from `shared/conformance`), turned
//! into HTTP requests and decoded with `decode_request`.
//!
//! YAML fixtures: each document becomes the request the HTTP binding defines for its
//! `Mode` (both modes when the document names none). As in the suite's own tool
//! (`pkg/http/http.go`, `addHeader`), attribute values are whitespace-trimmed, so a
//! YAML block scalar's trailing newline is not part of the value; `Data` is sent as is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use herald_core::binding::{decode_request, encode_header_value, Mode, STRUCTURED_CONTENT_TYPE};
use herald_core::event::is_json_media_type;
use herald_core::{Data, Event, ExtValue, Limits};
use serde::Deserialize;
use serde_json::Value;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/cloudevents-conformance")
}

/// A decoded HTTP request: header pairs and body.
struct Request {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    fn decode(&self) -> Result<(Mode, Vec<Event>), herald_core::Problem> {
        let pairs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        decode_request(&pairs, &self.body, &Limits::default())
    }
}

// ---------------------------------------------------------------------------------------
// YAML fixtures
// ---------------------------------------------------------------------------------------

/// One YAML document of the conformance suite.
#[derive(Debug, Clone)]
struct Fixture {
    origin: String,
    mode: Option<Mode>,
    /// Context attributes other than `Extensions`, as strings (trimmed).
    attrs: BTreeMap<String, String>,
    extensions: BTreeMap<String, String>,
    transport: BTreeMap<String, String>,
    data: Option<String>,
}

fn yaml_scalar(v: &serde_yaml::Value, what: &str) -> String {
    let s = match v {
        serde_yaml::Value::String(s) => s.clone(),
        // `specversion: 1.0` is a YAML float; its text form is what the fixture means.
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => panic!("{what}: expected a scalar, got {other:?}"),
    };
    s.trim().to_string()
}

fn yaml_string_map(v: Option<&serde_yaml::Value>, what: &str) -> BTreeMap<String, String> {
    let Some(v) = v else {
        return BTreeMap::new();
    };
    if v.is_null() {
        return BTreeMap::new();
    }
    let m = v
        .as_mapping()
        .unwrap_or_else(|| panic!("{what}: expected a mapping, got {v:?}"));
    m.iter()
        .map(|(k, v)| {
            let k = yaml_scalar(k, what);
            let v = yaml_scalar(v, &format!("{what}.{k}"));
            (k, v)
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

fn load_fixtures() -> (usize, Vec<Fixture>) {
    let root = suite_dir().join("yaml");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let mut fixtures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let origin = format!("{rel}#{i}");
            let v = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"));
            if v.is_null() {
                continue;
            }
            let mode = match v.get("Mode").map(|m| yaml_scalar(m, "Mode")) {
                None => None,
                Some(m) if m.eq_ignore_ascii_case("binary") => Some(Mode::Binary),
                Some(m) if m.eq_ignore_ascii_case("structured") => Some(Mode::Structured),
                Some(m) => panic!("{origin}: unknown Mode '{m}'"),
            };
            let ctx = v
                .get("ContextAttributes")
                .unwrap_or_else(|| panic!("{origin}: no ContextAttributes"));
            let extensions = yaml_string_map(ctx.get("Extensions"), "Extensions");
            let attrs = ctx
                .as_mapping()
                .unwrap_or_else(|| panic!("{origin}: ContextAttributes is not a mapping"))
                .iter()
                .filter(|(k, _)| k.as_str() != Some("Extensions"))
                .map(|(k, v)| {
                    let k = yaml_scalar(k, "ContextAttributes");
                    let v = yaml_scalar(v, &k);
                    (k, v)
                })
                .filter(|(_, v)| !v.is_empty())
                .collect();
            let transport = yaml_string_map(v.get("TransportExtensions"), "TransportExtensions");
            let data = v.get("Data").map(|d| match d {
                serde_yaml::Value::String(s) => s.clone(),
                other => panic!("{origin}: Data must be a string, got {other:?}"),
            });
            fixtures.push(Fixture {
                origin,
                mode,
                attrs,
                extensions,
                transport,
                data,
            });
        }
    }
    (files.len(), fixtures)
}

fn binary_request(f: &Fixture) -> Request {
    let mut headers = Vec::new();
    for (k, v) in f.attrs.iter().chain(&f.extensions) {
        if k == "datacontenttype" {
            continue;
        }
        headers.push((format!("ce-{k}"), encode_header_value(v).into_bytes()));
    }
    let ct = f
        .attrs
        .get("datacontenttype")
        .map_or("application/json", String::as_str);
    headers.push(("Content-Type".to_string(), ct.as_bytes().to_vec()));
    for (k, v) in &f.transport {
        headers.push((k.clone(), v.as_bytes().to_vec()));
    }
    Request {
        headers,
        body: f.data.clone().unwrap_or_default().into_bytes(),
    }
}

/// The data the structured request embeds: JSON when the data content type is JSON (or
/// absent) and the text parses as JSON, else a string.
fn structured_data(f: &Fixture) -> Option<Value> {
    let data = f.data.as_ref()?;
    let json_ct = f
        .attrs
        .get("datacontenttype")
        .is_none_or(|ct| is_json_media_type(ct));
    match serde_json::from_str::<Value>(data) {
        Ok(v) if json_ct => Some(v),
        _ => Some(Value::String(data.clone())),
    }
}

fn structured_request(f: &Fixture) -> Request {
    let mut obj = serde_json::Map::new();
    for (k, v) in f.attrs.iter().chain(&f.extensions) {
        obj.insert(k.clone(), Value::String(v.clone()));
    }
    if let Some(d) = structured_data(f) {
        obj.insert("data".into(), d);
    }
    let mut headers = vec![(
        "Content-Type".to_string(),
        STRUCTURED_CONTENT_TYPE.as_bytes().to_vec(),
    )];
    for (k, v) in &f.transport {
        headers.push((k.clone(), v.as_bytes().to_vec()));
    }
    Request {
        headers,
        body: serde_json::to_vec(&Value::Object(obj)).expect("serialise"),
    }
}

/// What the decoded event's data must be.
#[derive(Debug, PartialEq)]
enum ExpectedData {
    None,
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

fn is_text_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/") || essence == "application/xml" || essence.ends_with("+xml")
}

fn expected_data(f: &Fixture, mode: Mode) -> ExpectedData {
    let Some(data) = f.data.as_ref().filter(|d| !d.is_empty()) else {
        return ExpectedData::None;
    };
    match mode {
        Mode::Binary => {
            let ct = f
                .attrs
                .get("datacontenttype")
                .map_or("application/json", String::as_str);
            if is_json_media_type(ct) {
                ExpectedData::Json(serde_json::from_str(data).unwrap_or_else(|e| {
                    panic!("{}: data declared as JSON does not parse: {e}", f.origin)
                }))
            } else if is_text_type(ct) {
                ExpectedData::Text(data.clone())
            } else {
                ExpectedData::Bytes(data.clone().into_bytes())
            }
        }
        _ => match structured_data(f) {
            Some(Value::String(s))
                if f.attrs
                    .get("datacontenttype")
                    .is_some_and(|ct| !is_json_media_type(ct)) =>
            {
                ExpectedData::Text(s)
            }
            Some(v) => ExpectedData::Json(v),
            None => ExpectedData::None,
        },
    }
}

fn actual_data(e: &Event) -> ExpectedData {
    match &e.data {
        None => ExpectedData::None,
        Some(Data::Json(v)) => ExpectedData::Json(v.clone()),
        Some(Data::Text(s)) => ExpectedData::Text(s.clone()),
        Some(Data::Binary(b)) => ExpectedData::Bytes(b.clone()),
    }
}

/// Check a decoded event against its fixture: every context attribute (0.3 ones under
/// their 1.0 names), exactly the fixture's extensions, nothing else, and the data.
fn check_fixture_event(f: &Fixture, mode: Mode, what: &str, e: &Event) {
    let v03 = match f.attrs.get("specversion").map(String::as_str) {
        Some("1.0") => false,
        Some("0.3") => true,
        other => panic!("{what}: fixture specversion {other:?}"),
    };
    let mut expected: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in &f.attrs {
        let name = match k.as_str() {
            // Every event comes out as a CloudEvents 1.0 event.
            "specversion" => {
                expected.insert("specversion", "1.0".to_string());
                continue;
            }
            "schemaurl" if v03 => "dataschema",
            "datacontentencoding" if v03 => continue,
            other => other,
        };
        expected.insert(name, v.clone());
    }
    if mode == Mode::Binary {
        expected
            .entry("datacontenttype")
            .or_insert_with(|| "application/json".to_string());
    }
    for (name, value) in &expected {
        assert_eq!(
            e.attribute(name).as_deref(),
            Some(value.as_str()),
            "{what}: attribute '{name}'"
        );
    }
    for name in ["datacontenttype", "dataschema", "subject", "time"] {
        if !expected.contains_key(name) {
            assert_eq!(e.attribute(name), None, "{what}: unexpected '{name}'");
        }
    }
    let want_ext: BTreeMap<String, ExtValue> = f
        .extensions
        .iter()
        .map(|(k, v)| (k.clone(), ExtValue::String(v.clone())))
        .collect();
    assert_eq!(e.extensions, want_ext, "{what}: extensions");
    assert_eq!(actual_data(e), expected_data(f, mode), "{what}: data");
}

fn run_fixture(f: &Fixture, mode: Mode) {
    let what = format!("{} ({mode:?})", f.origin);
    let req = match mode {
        Mode::Binary => binary_request(f),
        _ => structured_request(f),
    };
    let (got_mode, events) = req
        .decode()
        .unwrap_or_else(|p| panic!("{what}: refused: {p}"));
    assert_eq!(got_mode, mode, "{what}: mode");
    assert_eq!(events.len(), 1, "{what}: one event");
    check_fixture_event(f, mode, &what, &events[0]);
}

#[test]
fn yaml_fixtures_decode_and_round_trip() {
    let (files, fixtures) = load_fixtures();
    let mut requests = 0;
    let mut v03_conversions = 0;
    for f in &fixtures {
        let modes = match f.mode {
            Some(m) => vec![m],
            None => vec![Mode::Binary, Mode::Structured],
        };
        for &mode in &modes {
            run_fixture(f, mode);
            requests += 1;
        }
        // 0.3 -> 1.0 conversion of the attributes that were renamed: the same document
        // with a `schemaurl` must come out with that URL as `dataschema`.
        if f.attrs.get("specversion").map(String::as_str) == Some("0.3") {
            let mut g = f.clone();
            g.origin = format!("{} +schemaurl", f.origin);
            g.attrs.insert(
                "schemaurl".into(),
                "https://example.com/schemas/someevent.json".into(),
            );
            for &mode in &modes {
                run_fixture(&g, mode);
                requests += 1;
                v03_conversions += 1;
            }
        }
    }
    println!(
        "conformance YAML: {files} files, {} documents, {requests} requests decoded ({v03_conversions} extra 0.3 schemaurl conversions)",
        fixtures.len()
    );
    assert!(files > 0 && !fixtures.is_empty(), "no YAML fixtures found");
    // Both versions must be represented, so a vanished directory is noticed.
    for v in ["1.0", "0.3"] {
        assert!(
            fixtures
                .iter()
                .any(|f| f.attrs.get("specversion").map(String::as_str) == Some(v)),
            "no {v} fixtures"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Gherkin feature
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Outline {
    name: String,
    request: Option<String>,
    attributes: Vec<(String, String)>,
    data_json: Option<String>,
    examples: Vec<BTreeMap<String, String>>,
}

#[derive(PartialEq)]
enum Table {
    None,
    Attributes,
    Examples,
}

fn table_cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// A small Gherkin reader: enough for scenario outlines made of steps, doc strings
/// (`"""`, indentation stripped as far as the opening delimiter's) and tables.
fn parse_feature(text: &str) -> Vec<Outline> {
    let lines: Vec<&str> = text.lines().collect();
    let mut outlines: Vec<Outline> = Vec::new();
    let mut last_step = String::new();
    let mut table = Table::None;
    let mut example_header: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        i += 1;
        if let Some(name) = t
            .strip_prefix("Scenario Outline:")
            .or_else(|| t.strip_prefix("Scenario:"))
        {
            outlines.push(Outline {
                name: name.trim().to_string(),
                ..Outline::default()
            });
            table = Table::None;
            last_step.clear();
        } else if t == "\"\"\"" {
            let indent = line.len() - line.trim_start().len();
            let mut doc = Vec::new();
            while i < lines.len() && lines[i].trim() != "\"\"\"" {
                let l = lines[i];
                let strip = l
                    .char_indices()
                    .take_while(|(n, c)| *n < indent && c.is_whitespace())
                    .count();
                doc.push(&l[strip..]);
                i += 1;
            }
            assert!(i < lines.len(), "unterminated doc string");
            i += 1;
            let doc = doc.join("\n");
            let Some(o) = outlines.last_mut() else {
                continue;
            };
            if last_step.contains("an HTTP request") {
                o.request = Some(doc);
            } else if last_step.contains("following JSON") {
                o.data_json = Some(doc);
            } else {
                panic!("doc string after unknown step '{last_step}'");
            }
        } else if t.starts_with('|') {
            let cells = table_cells(t);
            let Some(o) = outlines.last_mut() else {
                continue;
            };
            match table {
                Table::Attributes => {
                    assert_eq!(cells.len(), 2, "attribute row {t}");
                    if cells != ["key", "value"] {
                        o.attributes.push((cells[0].clone(), cells[1].clone()));
                    }
                }
                Table::Examples if example_header.is_empty() => example_header = cells,
                Table::Examples => {
                    assert_eq!(cells.len(), example_header.len(), "example row {t}");
                    o.examples
                        .push(example_header.iter().cloned().zip(cells).collect());
                }
                Table::None => panic!("table row outside a known table: {t}"),
            }
        } else if t.starts_with("Examples:") {
            table = Table::Examples;
            example_header.clear();
        } else if !t.is_empty() && !t.starts_with('#') && !t.starts_with('@') {
            table = if t.starts_with("Then the attributes are") {
                Table::Attributes
            } else {
                Table::None
            };
            last_step = t.to_string();
        }
    }
    outlines
}

fn substitute(s: &str, row: &BTreeMap<String, String>) -> String {
    row.iter().fold(s.to_string(), |acc, (k, v)| {
        acc.replace(&format!("<{k}>"), v)
    })
}

/// Split a raw HTTP/1.1 request (as written in the feature file) into header pairs and
/// the body, honouring `Content-Length`.
fn split_raw_request(raw: &str, what: &str) -> Request {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    assert!(
        request_line.ends_with("HTTP/1.1"),
        "{what}: request line '{request_line}'"
    );
    let headers: Vec<(String, Vec<u8>)> = lines
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("{what}: bad header line '{l}'"));
            (k.trim().to_string(), v.trim().as_bytes().to_vec())
        })
        .collect();
    let mut body = body.as_bytes().to_vec();
    if let Some((_, cl)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let cl: usize = std::str::from_utf8(cl)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: bad Content-Length"));
        assert!(cl <= body.len(), "{what}: body shorter than Content-Length");
        body.truncate(cl);
    }
    Request { headers, body }
}

#[test]
fn http_protocol_binding_feature() {
    let path = suite_dir().join("features/http-protocol-binding.feature");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let outlines = parse_feature(&text);
    let mut runs = 0;
    for o in &outlines {
        let request = o
            .request
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no HTTP request", o.name));
        assert!(!o.attributes.is_empty(), "{}: no attributes table", o.name);
        assert!(!o.examples.is_empty(), "{}: no examples", o.name);
        for row in &o.examples {
            let what = substitute(&o.name, row);
            let req = split_raw_request(&substitute(request, row), &what);
            let (mode, events) = req
                .decode()
                .unwrap_or_else(|p| panic!("{what}: refused: {p}"));
            let want_mode = if o.name.starts_with("Binary") {
                Mode::Binary
            } else if o.name.starts_with("Structured") {
                Mode::Structured
            } else {
                panic!("{what}: unknown content mode");
            };
            assert_eq!(mode, want_mode, "{what}: mode");
            assert_eq!(events.len(), 1, "{what}: one event");
            let e = &events[0];
            for (k, v) in &o.attributes {
                let v = substitute(v, row);
                assert_eq!(
                    e.attribute(k).as_deref(),
                    Some(v.as_str()),
                    "{what}: attribute '{k}'"
                );
            }
            if let Some(json) = &o.data_json {
                let want: Value = serde_json::from_str(&substitute(json, row))
                    .unwrap_or_else(|e| panic!("{what}: expected data is not JSON: {e}"));
                assert_eq!(e.data, Some(Data::Json(want)), "{what}: data");
            }
            runs += 1;
        }
    }
    println!(
        "conformance feature: {} scenario outlines, {runs} example rows decoded",
        outlines.len()
    );
    assert!(runs > 0, "no scenarios found in {}", path.display());
}

//! End-to-end filters and metrics: CESQL (`sql`) and FEEL (`feel`) subscription filters,
//! alone and nested in `all`/`any`/`not`, deliver exactly the matching events; syntax
//! errors are refused with their path and position; evaluation errors never deliver and
//! are counted on `GET /metrics`, which also counts ingested, duplicate and rejected events.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(10);
/// How long to keep watching for deliveries that must not come.
const QUIET: Duration = Duration::from_millis(800);

/// Extension attributes as (name, value) pairs.
type Extensions<'a> = &'a [(&'a str, &'a str)];

/// POST a binary-mode event with extension attributes as `ce-` headers.
async fn send_with_extensions(
    h: &Herald,
    id: &str,
    ty: &str,
    extensions: Extensions<'_>,
    data: Value,
) -> u16 {
    let mut req = client()
        .post(h.api("default/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/tests")
        .header("ce-type", ty)
        .header("content-type", "application/json");
    for (name, value) in extensions {
        req = req.header(format!("ce-{name}"), *value);
    }
    let resp = req.body(data.to_string()).send().await.unwrap();
    resp.status().as_u16()
}

/// POST a raw body to an ingest path; returns the status.
async fn post_raw(h: &Herald, path: &str, content_type: &str, body: &str) -> u16 {
    let resp = client()
        .post(h.api(path))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

/// A subscription with only a sink path on `r` and the given filters.
async fn subscribe_filtered(h: &Herald, r: &Receiver, path: &str, filters: Value) -> Value {
    subscribe(
        h,
        "default",
        json!({"sink": format!("{}{path}", r.url), "filters": filters}),
    )
    .await
}

/// Delivered event ids by sink path, each list sorted.
fn delivered_by_path(r: &Receiver) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for post in r.posts() {
        let id = post.event_id().expect("a delivered event has an id");
        out.entry(post.path.clone()).or_default().push(id);
    }
    for ids in out.values_mut() {
        ids.sort();
    }
    out
}

fn expected(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(path, ids)| {
            (
                path.to_string(),
                ids.iter().map(|id| id.to_string()).collect(),
            )
        })
        .collect()
}

/// Wait for exactly `want` deliveries, then a quiet period in which nothing else may come.
async fn settle(r: &Receiver, want: usize) {
    assert!(
        wait_until(WAIT, || r.posts().len() >= want).await,
        "expected {want} deliveries, got {:?}",
        delivered_by_path(r)
    );
    tokio::time::sleep(QUIET).await;
}

/// `GET /metrics` parsed into sample name (with labels) to value.
async fn metrics(h: &Herald) -> HashMap<String, f64> {
    let resp = client()
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("a sample is `name value`");
            (name.to_string(), value.parse().expect("a numeric sample"))
        })
        .collect()
}

fn sample(m: &HashMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {m:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_filters_alone_and_nested_deliver_only_matching_events() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe_filtered(
        &h,
        &r,
        "/sql",
        json!([{"sql": "region LIKE 'eu-%' AND UPPER(tier) = 'GOLD'"}]),
    )
    .await;
    subscribe_filtered(
        &h,
        &r,
        "/all",
        json!([{"all": [{"sql": "EXISTS priority"}, {"exact": {"type": "order.created"}}]}]),
    )
    .await;
    subscribe_filtered(
        &h,
        &r,
        "/any",
        json!([{"any": [{"sql": "tier = 'platinum'"}, {"sql": "region LIKE '%-north'"}]}]),
    )
    .await;
    subscribe_filtered(&h, &r, "/not", json!([{"not": {"sql": "EXISTS region"}}])).await;

    let events: [(&str, &str, Extensions); 5] = [
        (
            "e1",
            "order.created",
            &[("region", "eu-west"), ("tier", "gold")],
        ),
        (
            "e2",
            "order.created",
            &[
                ("region", "us-east"),
                ("tier", "GOLD"),
                ("priority", "high"),
            ],
        ),
        (
            "e3",
            "order.updated",
            &[
                ("region", "eu-north"),
                ("tier", "silver"),
                ("priority", "low"),
            ],
        ),
        ("e4", "order.created", &[("tier", "platinum")]),
        ("e5", "order.created", &[]),
    ];
    for (id, ty, exts) in events {
        assert_eq!(
            send_with_extensions(&h, id, ty, exts, json!({"n": 1})).await,
            202
        );
    }

    settle(&r, 6).await;
    assert_eq!(
        delivered_by_path(&r),
        expected(&[
            ("/sql", &["e1"]),
            ("/all", &["e2"]),
            ("/any", &["e3", "e4"]),
            ("/not", &["e4", "e5"]),
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_compares_a_structured_json_number_extension_as_an_integer() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe_filtered(&h, &r, "/big", json!([{"sql": "quantity > 10"}])).await;

    // As strings, "7" > "10" would hold: only an integer comparison refuses q-7.
    for (id, quantity) in [("q-42", 42), ("q-7", 7), ("q-10", 10), ("q-100", 100)] {
        let event = json!({
            "specversion": "1.0", "id": id, "source": "/tests", "type": "stock.counted",
            "quantity": quantity, "data": {"n": 1}
        });
        let status = post_raw(
            &h,
            "default/events",
            "application/cloudevents+json",
            &event.to_string(),
        )
        .await;
        assert_eq!(status, 202);
    }

    settle(&r, 2).await;
    assert_eq!(
        delivered_by_path(&r),
        expected(&[("/big", &["q-100", "q-42"])])
    );
    // The extension travels on as a JSON number.
    let delivered = r.posts().into_iter().find(|p| p.json()["id"] == "q-42");
    assert_eq!(delivered.unwrap().json()["quantity"], json!(42));
}

#[tokio::test(flavor = "multi_thread")]
async fn feel_filters_match_on_data_fields() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe_filtered(
        &h,
        &r,
        "/amount",
        json!([{"feel": "amount > 100 and event.type = \"order.created\""}]),
    )
    .await;
    subscribe_filtered(
        &h,
        &r,
        "/items",
        json!([{"feel": "some i in items satisfies i.price > 10"}]),
    )
    .await;

    let events = [
        (
            "f1",
            "order.created",
            json!({"amount": 150, "items": [{"price": 5}]}),
        ),
        (
            "f2",
            "order.updated",
            json!({"amount": 150, "items": [{"price": 20}]}),
        ),
        (
            "f3",
            "order.created",
            json!({"amount": 100, "items": [{"price": 10}, {"price": 11}]}),
        ),
        ("f4", "order.created", json!({"amount": 50, "items": []})),
    ];
    for (id, ty, data) in events {
        let (status, _) = send_binary(&h, "default", id, ty, data).await;
        assert_eq!(status, 202);
    }

    settle(&r, 3).await;
    assert_eq!(
        delivered_by_path(&r),
        expected(&[("/amount", &["f1"]), ("/items", &["f2", "f3"])])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn syntax_errors_are_refused_with_the_filter_path_and_position() {
    let h = Herald::start();
    let cases = [
        (json!([{"sql": "region = "}]), "filters[0].sql"),
        (
            json!([{"exact": {"type": "order.created"}}, {"any": [{"not": {"feel": "amount >"}}]}]),
            "filters[1].any[0].not.feel",
        ),
    ];
    for (filters, path) in cases {
        let resp = client()
            .post(h.api("default/subscriptions"))
            .json(&json!({"sink": "http://127.0.0.1:9/hook", "filters": filters}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(
            problem["type"], "urn:herald:problem:invalid-filter",
            "{problem}"
        );
        assert_eq!(problem["status"], 400);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with(&format!("{path}: ")), "{detail}");
        assert!(detail.contains("position"), "{detail}");
    }
    // Nothing was created.
    assert_eq!(get_json(&h.api("default/subscriptions")).await, json!([]));
    assert_eq!(sample(&metrics(&h).await, "herald_subscriptions"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn evaluation_errors_never_deliver_and_are_counted() {
    let h = Herald::start();
    let r = Receiver::start().await;
    // An error propagates as the zero value: `1/0 = 0` is FALSE with an error.
    subscribe_filtered(&h, &r, "/division", json!([{"sql": "1/0 = 0"}])).await;
    // `source` ('/tests') fails the implicit cast to Integer, becomes 0, and `0 != 1`:
    // TRUE, but with an error, so it must not match either.
    subscribe_filtered(&h, &r, "/cast", json!([{"sql": "source != 1"}])).await;
    subscribe_filtered(&h, &r, "/feel", json!([{"feel": "amount > \"x\""}])).await;
    subscribe_filtered(&h, &r, "/control", json!([])).await;
    assert_eq!(
        sample(&metrics(&h).await, "herald_filter_evaluation_errors_total"),
        0.0
    );

    for id in ["x1", "x2", "x3"] {
        let (status, _) =
            send_binary(&h, "default", id, "order.created", json!({"amount": 5})).await;
        assert_eq!(status, 202);
    }

    settle(&r, 3).await;
    assert_eq!(
        delivered_by_path(&r),
        expected(&[("/control", &["x1", "x2", "x3"])])
    );
    // Each event failed each of the three erroring filters once.
    let m = metrics(&h).await;
    assert_eq!(sample(&m, "herald_filter_evaluation_errors_total"), 9.0);
    assert_eq!(sample(&m, "herald_subscriptions"), 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_ingested_duplicates_rejections_and_subscriptions() {
    let h = Herald::start();
    let r = Receiver::start().await;
    let m = metrics(&h).await;
    assert_eq!(sample(&m, "herald_events_ingested_total"), 0.0);
    assert_eq!(sample(&m, "herald_events_duplicate_total"), 0.0);
    assert_eq!(sample(&m, "herald_subscriptions"), 0.0);
    assert!(!m
        .keys()
        .any(|k| k.starts_with("herald_ingest_requests_rejected_total")));

    let a = subscribe_filtered(&h, &r, "/a", json!([])).await;
    subscribe_filtered(&h, &r, "/b", json!([{"sql": "TRUE"}])).await;
    assert_eq!(sample(&metrics(&h).await, "herald_subscriptions"), 2.0);

    for id in ["m-1", "m-2", "m-3", "m-1"] {
        let (status, _) = send_binary(&h, "default", id, "t", json!({})).await;
        assert_eq!(status, 202);
    }
    let batch = json!([
        {"specversion": "1.0", "id": "m-2", "source": "/tests", "type": "t"},
        {"specversion": "1.0", "id": "m-4", "source": "/tests", "type": "t"}
    ]);
    let status = post_raw(
        &h,
        "default/events",
        "application/cloudevents-batch+json",
        &batch.to_string(),
    )
    .await;
    assert_eq!(status, 202);

    // Refused: a binary event without ce-type, a structured body that is not JSON, an
    // unsupported event format, an unknown project, a topic path without /events.
    let refused = client()
        .post(h.api("default/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "bad")
        .header("ce-source", "/tests")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        post_raw(&h, "default/events", "application/cloudevents+json", "{").await,
        400
    );
    assert_eq!(
        post_raw(&h, "default/events", "application/cloudevents+xml", "<e/>").await,
        415
    );
    assert_eq!(
        post_raw(&h, "nope/events", "application/cloudevents+json", "{}").await,
        404
    );
    assert_eq!(
        post_raw(
            &h,
            "default/topics/a/b",
            "application/cloudevents+json",
            "{}"
        )
        .await,
        404
    );

    let m = metrics(&h).await;
    assert_eq!(sample(&m, "herald_events_ingested_total"), 4.0);
    assert_eq!(sample(&m, "herald_events_duplicate_total"), 2.0);
    let rejected = |status: &str| {
        sample(
            &m,
            &format!("herald_ingest_requests_rejected_total{{status=\"{status}\"}}"),
        )
    };
    assert_eq!(rejected("400"), 2.0);
    assert_eq!(rejected("404"), 2.0);
    assert_eq!(rejected("415"), 1.0);
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("herald_ingest_requests_rejected_total"))
            .count(),
        3,
        "{m:?}"
    );

    // Four stored events, two subscriptions: eight deliveries, no more.
    settle(&r, 8).await;
    assert_eq!(
        delivered_by_path(&r),
        expected(&[
            ("/a", &["m-1", "m-2", "m-3", "m-4"]),
            ("/b", &["m-1", "m-2", "m-3", "m-4"]),
        ])
    );

    let resp = client()
        .delete(h.api(&format!(
            "default/subscriptions/{}",
            a["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(sample(&metrics(&h).await, "herald_subscriptions"), 1.0);
}

//! End-to-end ingest: the three HTTP modes, 0.3 conversion, dedup, projects and topics,
//! problem+json errors and limits, and the OPTIONS handshake on the ingest side.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

async fn post(h: &Herald, path: &str, ct: &str, body: &str) -> (u16, String, Value) {
    let resp = client()
        .post(h.api(path))
        .header("content-type", ct)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_and_batch_modes_are_delivered() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(&h, "default", json!({"sink": r.url})).await;
    let (s, _, _) = post(&h, "default/events", "application/cloudevents+json; charset=utf-8",
        r#"{"specversion":"1.0","id":"s-1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hello"}"#).await;
    assert_eq!(s, 202);
    let batch = json!([
        {"specversion": "1.0", "id": "b-1", "source": "/s", "type": "t", "data": {"n": 1}},
        {"specversion": "1.0", "id": "b-2", "source": "/s", "type": "t", "data_base64": "AAEC"},
        {"specversion": "0.3", "id": "b-3", "source": "/s", "type": "t", "schemaurl": "http://s/1"}
    ]);
    let (s, _, body) = post(
        &h,
        "default/events",
        "application/cloudevents-batch+json",
        &batch.to_string(),
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(body["accepted"], 3);
    assert!(wait_until(WAIT, || r.posts().len() == 4).await);
    let by_id = |id: &str| {
        r.posts()
            .into_iter()
            .map(|p| p.json())
            .find(|j| j["id"] == id)
            .unwrap()
    };
    assert_eq!(by_id("s-1")["data"], "hello");
    assert_eq!(by_id("b-1")["data"], json!({"n": 1}));
    assert_eq!(by_id("b-2")["data_base64"], "AAEC");
    let v03 = by_id("b-3");
    assert_eq!(v03["specversion"], "1.0");
    assert_eq!(v03["dataschema"], "http://s/1");
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_mode_percent_decodes_and_keeps_bytes() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "protocolsettings": {"mode": "binary"}}),
    )
    .await;
    let resp = client()
        .post(h.api("default/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "bin-1")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .header("ce-subject", "Euro%20%E2%82%AC")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(wait_until(WAIT, || r.posts().len() == 1).await);
    let p = &r.posts()[0];
    assert_eq!(p.body, vec![0u8, 159, 146, 150]);
    assert_eq!(p.header("ce-subject"), Some("Euro%20%E2%82%AC"));
    assert_eq!(p.header("content-type"), Some("application/octet-stream"));
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_source_and_id_is_acknowledged_but_not_delivered_again() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(&h, "default", json!({"sink": r.url})).await;
    let (s1, b1) = send_binary(&h, "default", "dup-1", "t", json!({})).await;
    let (s2, b2) = send_binary(&h, "default", "dup-1", "t", json!({"changed": true})).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1["events"][0]["duplicate"], false);
    assert_eq!(b2["events"][0]["duplicate"], true);
    assert_eq!(b2["events"][0]["seq"], b1["events"][0]["seq"]);
    // A batch repeating itself is deduplicated inside the batch too.
    let batch = json!([
        {"specversion": "1.0", "id": "dup-2", "source": "/s", "type": "t"},
        {"specversion": "1.0", "id": "dup-2", "source": "/s", "type": "t"}
    ]);
    let (_, _, b3) = post(
        &h,
        "default/events",
        "application/cloudevents-batch+json",
        &batch.to_string(),
    )
    .await;
    assert_eq!(
        (b3["accepted"].as_i64(), b3["duplicates"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(wait_until(WAIT, || r.posts().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(r.posts().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn dedup_window_is_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Herald::start_in(
        tmp.path(),
        &format!("dedup_window = \"200ms\"\n{TEST_CONFIG}"),
    );
    let (_, a) = send_binary(&h, "default", "w-1", "t", json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, b) = send_binary(&h, "default", "w-1", "t", json!({})).await;
    assert_eq!(a["accepted"], 1);
    assert_eq!(
        b["accepted"], 1,
        "outside the window the event is new again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_clear_problem_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("{TEST_CONFIG}\n[limits]\nmax_body_bytes = 2048\nmax_batch_events = 3\n");
    let h = Herald::start_in(tmp.path(), &config);
    let r = Receiver::start().await;
    subscribe(&h, "default", json!({"sink": r.url})).await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("application/json", "{}".into(), 400, "invalid-event"),
        ("application/cloudevents+json", "{not json".into(), 400, "invalid-event"),
        ("application/cloudevents+json", r#"{"specversion":"2.0","id":"1","source":"/s","type":"t"}"#.into(), 400, "unsupported-specversion"),
        ("application/cloudevents+xml", "<e/>".into(), 415, "unsupported-media-type"),
        ("application/cloudevents+json", format!(r#"{{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"{}"}}"#, "x".repeat(4000)), 413, "payload-too-large"),
        ("application/cloudevents-batch+json", r#"[{"specversion":"1.0","id":"ok","source":"/s","type":"t"},{"specversion":"1.0","id":"","source":"/s","type":"t"}]"#.into(), 400, "invalid-event"),
        ("application/cloudevents-batch+json", r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t"},{"specversion":"1.0","id":"3","source":"/s","type":"t"},{"specversion":"1.0","id":"4","source":"/s","type":"t"}]"#.into(), 413, "batch-too-large"),
    ];
    for (ct, body, status, slug) in cases {
        let (s, got_ct, problem) = post(&h, "default/events", ct, &body).await;
        assert_eq!(s, status, "{ct} {problem}");
        assert_eq!(got_ct, "application/problem+json");
        assert_eq!(problem["type"], format!("urn:herald:problem:{slug}"));
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    // Nothing of the refused batch was stored: its valid first event is new.
    let (_, ok) = send_binary(&h, "default", "ok", "t", json!({})).await;
    assert_eq!(ok["events"][0]["duplicate"], false);
    assert!(wait_until(WAIT, || r.posts().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.delivered_ids(), ["ok"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_and_topics() {
    let h = Herald::start();
    let (s, _) = send_binary(&h, "shop", "p-1", "t", json!({})).await;
    assert_eq!(s, 404, "unknown project");
    let resp = client().put(h.api("shop")).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let resp = client().put(h.api("shop")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "idempotent");
    assert_eq!(
        client()
            .put(h.api("Bad%20Name"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let r = Receiver::start().await;
    subscribe(&h, "shop", json!({"sink": r.url})).await;
    let (s, _) = send_binary(&h, "shop", "p-1", "t", json!({})).await;
    assert_eq!(s, 202);
    let (s, _, p) = post(
        &h,
        "shop/topics/a b/events",
        "application/cloudevents+json",
        "{}",
    )
    .await;
    assert_eq!(s, 400, "{p}");
    let (s, _, _) = post(
        &h,
        "shop/topics/a/b/nope",
        "application/cloudevents+json",
        "{}",
    )
    .await;
    assert_eq!(s, 404);
    assert!(wait_until(WAIT, || r.posts().len() == 1).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_answers_the_webhook_validation_handshake() {
    let h = Herald::start();
    let resp = client()
        .request(reqwest::Method::OPTIONS, h.api("default/events"))
        .header("WebHook-Request-Origin", "eventemitter.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["webhook-allowed-origin"],
        "eventemitter.example.com"
    );
    assert_eq!(resp.headers()["webhook-allowed-rate"], "*");
    assert!(resp.headers()["allow"].to_str().unwrap().contains("POST"));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_api_refuses_bad_definitions() {
    let h = Herald::start();
    let cases = [
        (
            json!({"sink": "http://x", "filters": [{"jsonpath": "$.a"}]}),
            "invalid-filter",
            "not supported",
        ),
        (json!({"sink": "ftp://x"}), "invalid-subscription", "sink"),
        (
            json!({"sink": "http://x", "protocol": "MQTT5"}),
            "invalid-subscription",
            "protocol",
        ),
        (
            json!({"sink": "http://x", "unknown": 1}),
            "invalid-subscription",
            "unknown field",
        ),
        (
            json!({"sink": "http://x", "delivery": {"timeout": "soon"}}),
            "invalid-subscription",
            "invalid duration",
        ),
    ];
    for (body, slug, needle) in cases {
        let resp = client()
            .post(h.api("default/subscriptions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["type"], format!("urn:herald:problem:{slug}"));
        assert!(p["detail"].as_str().unwrap().contains(needle), "{p}");
    }
    let list = get_json(&h.api("default/subscriptions")).await;
    assert_eq!(list, json!([]), "nothing half-created");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_crud_keeps_write_only_secrets() {
    let h = Herald::start();
    let created = subscribe(
        &h,
        "default",
        json!({"id": "ignored", "sink": "http://127.0.0.1:9/x",
        "sinkcredential": {"credentialtype": "PLAIN", "identifier": "u", "secret": "p"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    assert_ne!(id, "ignored");
    let url = h.api(&format!("default/subscriptions/{id}"));
    let got = get_json(&url).await;
    assert_eq!(got["sinkcredential"], json!({"credentialtype": "PLAIN"}));
    let resp = client()
        .put(&url)
        .json(&json!({"sink": "http://127.0.0.1:9/y", "types": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = get_json(&url).await;
    assert_eq!(got["sink"], "http://127.0.0.1:9/y");
    assert_eq!(got["types"], json!(["a"]));
    assert_eq!(
        got["sinkcredential"],
        json!({"credentialtype": "PLAIN"}),
        "kept when omitted"
    );
    // What a GET shows can be PUT back as it is.
    let mut shown = get_json(&url).await;
    shown["owner"] = json!("team-x");
    let resp = client().put(&url).json(&shown).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let got = get_json(&url).await;
    assert_eq!(got["owner"], "team-x");
    assert_eq!(got["sinkcredential"], json!({"credentialtype": "PLAIN"}));
    let secret = get_json(&format!("{url}/secret")).await;
    assert_eq!(secret["signing_secret"], created["signing_secret"]);
    assert_eq!(client().delete(&url).send().await.unwrap().status(), 204);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_is_problem_json() {
    let h = Herald::start();
    let sub = subscribe(&h, "default", json!({"sink": "http://127.0.0.1:9/x"})).await;
    let id = sub["id"].as_str().unwrap();
    let cases = [
        (
            reqwest::Method::DELETE,
            h.api("default/events"),
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::GET,
            h.api(&format!("default/subscriptions/{id}/attempts?limit=-1")),
            400,
            "invalid-query",
        ),
        (
            reqwest::Method::POST,
            h.api(&format!(
                "default/subscriptions/{id}/dead-letters/abc/redeliver"
            )),
            400,
            "invalid-path",
        ),
        (
            reqwest::Method::GET,
            format!("{}/nowhere", h.url),
            404,
            "route-not-found",
        ),
    ];
    for (method, url, status, slug) in cases {
        let resp = client().request(method, &url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{url}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["type"], format!("urn:herald:problem:{slug}"), "{url}");
    }
}

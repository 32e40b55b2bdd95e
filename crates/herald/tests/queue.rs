//! The scheduling queue API (Space Cloud's `eventing/queue`) end to end against the real
//! binary and a real receiver: events due now, later (also across a `kill -9`), and
//! synchronous requests answered with the webhook's own response.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// POST a queue request; returns the status, the content type and the body (JSON when
/// it parses, else the text).
async fn queue_raw(h: &Herald, body: Value) -> (u16, Option<String>, Value) {
    let resp = client()
        .post(h.api("default/eventing/queue"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, ct, v)
}

/// As [`queue_raw`]; an error Herald answers itself must be a problem document.
async fn queue(h: &Herald, body: Value) -> (u16, Value) {
    let (status, ct, v) = queue_raw(h, body).await;
    if status >= 400 {
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{v}");
    }
    (status, v)
}

async fn subscribe_to(h: &Herald, rx: &Receiver, ty: &str) -> String {
    let sub = subscribe(
        h,
        "default",
        json!({"types": [ty], "sink": format!("{}/hook", rx.url), "delivery": fast_retry(&["200ms"])}),
    )
    .await;
    sub["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_event_due_now_is_delivered_as_a_structured_cloudevent() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    subscribe_to(&h, &rx, "sent-email").await;

    let (status, body) = queue(
        &h,
        json!({"type": "sent-email", "data": {"to": "user1@email.com"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    // `payload` (Space Cloud's code) is a synonym of `data` (its documents).
    let (status, _) = queue(&h, json!({"type": "sent-email", "payload": {"n": 2}})).await;
    assert_eq!(status, 202);

    assert!(wait_until(Duration::from_secs(5), || rx.posts().len() == 2).await);
    let mut events: Vec<Value> = rx.posts().iter().map(Received::json).collect();
    events.sort_by_key(|e| e["data"].to_string());
    assert_eq!(events[0]["data"], json!({"n": 2}));
    assert_eq!(events[1]["data"], json!({"to": "user1@email.com"}));
    assert_eq!(events[1]["type"], "sent-email");
    assert_eq!(events[1]["specversion"], "1.0");
    assert_eq!(events[1]["id"], body["id"]);
    assert_eq!(events[1]["source"], "/v1/api/default/eventing/queue");
}

#[tokio::test]
async fn a_delayed_event_enters_the_log_at_its_due_time() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    subscribe_to(&h, &rx, "reminder").await;

    let sent = Instant::now();
    let (status, body) = queue(
        &h,
        json!({"type": "reminder", "delay": 2, "data": {"k": 1}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "scheduled");
    // A timestamp in the past (epoch seconds, as the documents' example) fires at once.
    let past = herald_core::now_millis() / 1000 - 60;
    let (status, early) = queue(&h, json!({"type": "reminder", "timestamp": past})).await;
    assert_eq!(status, 202);
    assert!(wait_until(Duration::from_secs(5), || rx.posts().len() == 1).await);
    assert_eq!(
        rx.posts()[0].event_id(),
        early["id"].as_str().map(str::to_string)
    );

    assert!(wait_until(Duration::from_secs(6), || rx.posts().len() == 2).await);
    let at = rx.posts()[1].at.duration_since(sent);
    assert!(
        at >= Duration::from_millis(1_900) && at <= Duration::from_millis(3_100),
        "due after 2 s, delivered after {at:?}"
    );
    let delivered = rx.posts()[1].json();
    assert_eq!(delivered["id"], body["id"]);
    assert_eq!(delivered["time"], body["due"], "time is the due time");
}

#[tokio::test]
async fn a_scheduled_event_survives_a_kill_between_scheduling_and_firing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Herald::start_in(dir.path(), TEST_CONFIG);
    let rx = Receiver::start().await;
    subscribe_to(&h, &rx, "later").await;
    let due = herald_core::now_millis() + 3_000;
    let stamp = chrono::DateTime::from_timestamp_millis(due)
        .unwrap()
        .to_rfc3339();
    let (status, body) = queue(&h, json!({"type": "later", "timestamp": stamp, "data": 1})).await;
    assert_eq!(status, 202, "{body}");
    h.kill9();

    let h = Herald::start_in(dir.path(), TEST_CONFIG);
    assert!(
        wait_until(Duration::from_secs(8), || rx.posts().len() == 1).await,
        "the scheduled event fired after the restart"
    );
    let late = herald_core::now_millis() - due;
    assert!((-100..1_000).contains(&late), "fired {late} ms after due");
    assert_eq!(rx.posts()[0].json()["id"], body["id"]);
    // Exactly once: nothing fires again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rx.posts().len(), 1);
    drop(h);
}

#[tokio::test]
async fn synchronous_requests_answer_with_the_webhooks_response() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TEST_CONFIG}\n[queue]\nsync_timeout = \"700ms\"\n");
    let h = Herald::start_in(dir.path(), &config);
    let rx = Receiver::start().await;
    rx.script(|req, _| {
        let ev = req.json();
        match ev["data"]["mode"].as_str() {
            Some("space-cloud") => Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"response": {"ok": true, "n": 7}}"#),
            Some("json") => Reply::status(201)
                .header("content-type", "application/json")
                .body(r#"[1, 2]"#),
            Some("text") => Reply::status(422).body("nope"),
            _ => Reply::status(200).delay(Duration::from_secs(3)),
        }
    });
    subscribe_to(&h, &rx, "compute").await;

    let (status, body) = queue(
        &h,
        json!({"type": "compute", "isSynchronous": true, "data": {"mode": "space-cloud"}}),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": {"ok": true, "n": 7}}))
    );
    let (status, body) = queue(
        &h,
        json!({"type": "compute", "isSynchronous": true, "data": {"mode": "json"}}),
    )
    .await;
    assert_eq!((status, body), (201, json!({"result": [1, 2]})));
    // The webhook's own error status and text pass through as they are.
    let (status, ct, body) = queue_raw(
        &h,
        json!({"type": "compute", "isSynchronous": true, "data": {"mode": "text"}}),
    )
    .await;
    assert_eq!((status, body), (422, json!("nope")));
    assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));

    let started = Instant::now();
    let (status, body) = queue(
        &h,
        json!({"type": "compute", "isSynchronous": true, "data": {"mode": "slow"}}),
    )
    .await;
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_millis(2_500));

    let (status, body) = queue(&h, json!({"type": "nobody-listens", "isSynchronous": true})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("nobody-listens"));
    // A webhook that took its event gets it once; one that failed (422) or did not
    // answer in time gets it again through the queue, on its subscription's schedule.
    let posts_of = |mode: &str| {
        rx.posts()
            .iter()
            .filter(|r| r.json()["data"]["mode"] == mode)
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || posts_of("text") >= 2
            && posts_of("slow") >= 2)
        .await,
        "failed synchronous deliveries are retried: {} / {}",
        posts_of("text"),
        posts_of("slow")
    );
    tokio::time::sleep(Duration::from_millis(6_000)).await; // past the 700 ms + 5 s hold
    assert_eq!((posts_of("space-cloud"), posts_of("json")), (1, 1));
}

#[tokio::test]
async fn a_synchronous_request_the_webhook_failed_is_delivered_later() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    rx.script(|_, n| {
        if n == 0 {
            Reply::status(503).body("busy")
        } else {
            Reply::status(200)
        }
    });
    let id = subscribe_to(&h, &rx, "compute").await;
    let (status, _, body) = queue_raw(
        &h,
        json!({"type": "compute", "id": "c-1", "isSynchronous": true, "data": {"n": 1}}),
    )
    .await;
    assert_eq!(
        (status, body),
        (503, json!("busy")),
        "the caller hears the webhook's answer"
    );
    assert!(
        wait_until(Duration::from_secs(10), || rx.posts().len() >= 2).await,
        "retried through the queue"
    );
    let ids: Vec<String> = rx
        .posts()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["c-1", "c-1"]);
    let attempts = get_json(&h.api(&format!("default/subscriptions/{id}/attempts"))).await;
    assert!(attempts.to_string().contains("200"), "{attempts}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(rx.posts().len(), 2, "delivered, then nothing more");
}

#[tokio::test]
async fn bad_requests_name_the_field_and_store_nothing() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    let sub = subscribe_to(&h, &rx, "t").await;
    for (body, field) in [
        (json!({"data": {}}), "type"),
        (json!({"type": "t", "delay": "soon"}), "delay"),
        (json!({"type": "t", "delay": -1}), "delay"),
        (
            json!({"type": "t", "timestamp": "next tuesday"}),
            "timestamp",
        ),
        (json!({"type": "t", "data": 1, "payload": 2}), "payload"),
        (
            json!({"type": "t", "isSynchronous": true, "delay": 5}),
            "isSynchronous",
        ),
    ] {
        let (status, problem) = queue(&h, body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().starts_with(field),
            "{body}: {problem}"
        );
    }
    let resp = client()
        .post(h.api("default/eventing/queue"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = client()
        .post(h.api("nope/eventing/queue"))
        .json(&json!({"type": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let view = get_json(&h.api(&format!("default/subscriptions/{sub}"))).await;
    assert_eq!(view["backlog"]["pending"], 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.posts().is_empty());
}

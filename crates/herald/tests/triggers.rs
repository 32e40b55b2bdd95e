//! Event triggers in Space Cloud's config API shape, end to end against the real binary
//! and real receivers: a trigger is a subscription delivering structured CloudEvents,
//! retried `retries` times, and a `dlq_<id>` event is published when it gives up.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// Trigger retries 200 ms apart instead of Space Cloud's 5 s, to keep the tests short.
fn config() -> String {
    format!("{TEST_CONFIG}\n[triggers]\nretry_delay = \"200ms\"\n")
}

fn trigger_url(h: &Herald, id: &str) -> String {
    format!(
        "{}/v1/config/projects/default/eventing/triggers/{id}",
        h.url
    )
}

async fn put_trigger(h: &Herald, id: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .put(trigger_url(h, id))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn queue(h: &Herald, body: Value) {
    let resp = client()
        .post(h.api("default/eventing/queue"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn a_trigger_delivers_matching_events_and_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let rx = Receiver::start().await;
    let trigger = json!({
        "type": "order-paid",
        "url": format!("{}/paid", rx.url),
        "retries": 2,
        "timeout": 2000,
        "filter": {"rule": "match", "type": "string", "eval": "==", "f1": "args.data.doc.status", "f2": "delivered"}
    });
    let (status, body) = put_trigger(&h, "paid", trigger.clone()).await;
    assert_eq!(status, 200, "{body}");

    let mut expected = trigger.clone();
    expected["id"] = json!("paid");
    assert_eq!(
        get_json(&trigger_url(&h, "paid")).await,
        json!({"result": [expected.clone()]})
    );
    let list = get_json(&format!(
        "{}/v1/config/projects/default/eventing/triggers",
        h.url
    ))
    .await;
    assert_eq!(list, json!({"result": [expected]}));
    // It is a subscription like any other.
    let sub = get_json(&h.api("default/subscriptions/paid")).await;
    assert_eq!(sub["types"], json!(["order-paid"]));

    queue(
        &h,
        json!({"type": "order-paid", "data": {"doc": {"status": "pending"}}}),
    )
    .await;
    queue(
        &h,
        json!({"type": "order-paid", "data": {"doc": {"status": "delivered"}}}),
    )
    .await;
    queue(
        &h,
        json!({"type": "other", "data": {"doc": {"status": "delivered"}}}),
    )
    .await;
    assert!(wait_until(Duration::from_secs(5), || !rx.posts().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = rx.posts();
    assert_eq!(posts.len(), 1, "only the matching event");
    assert_eq!(posts[0].path, "/paid");
    assert!(posts[0]
        .header("content-type")
        .unwrap()
        .starts_with("application/cloudevents+json"));
    let ev = posts[0].json();
    assert_eq!(ev["type"], "order-paid");
    assert_eq!(ev["data"]["doc"]["status"], "delivered");

    // Edit: a FEEL filter instead; delete: gone from both APIs.
    let (status, _) = put_trigger(
        &h,
        "paid",
        json!({"type": "order-paid", "url": format!("{}/paid", rx.url), "filter": "amount > 10"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_json(&trigger_url(&h, "paid")).await["result"][0]["filter"],
        "amount > 10"
    );
    let resp = client()
        .delete(trigger_url(&h, "paid"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client().get(trigger_url(&h, "paid")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client()
        .get(h.api("default/subscriptions/paid"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn when_retries_run_out_a_dlq_event_carries_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let failing = Receiver::start().await;
    // Slower than the trigger's timeout: every attempt times out.
    failing.script(|_, _| Reply::status(200).delay(Duration::from_millis(1500)));
    let watcher = Receiver::start().await;
    let (status, body) = put_trigger(
        &h,
        "mailer",
        json!({"type": "send-mail", "url": failing.url, "retries": 1, "timeout": 300}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Space Cloud style: a trigger on the dead-letter event type.
    let (status, _) = put_trigger(
        &h,
        "mailer-dlq",
        json!({"type": "dlq_mailer", "url": watcher.url}),
    )
    .await;
    assert_eq!(status, 200);

    queue(
        &h,
        json!({"type": "send-mail", "id": "mail-1", "data": {"to": "a@b.c"}}),
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || !watcher.posts().is_empty()).await,
        "the dlq event was delivered"
    );
    assert_eq!(failing.posts().len(), 2, "retries + 1 attempts");
    let gap = failing.posts()[1].at.duration_since(failing.posts()[0].at);
    assert!(
        gap >= Duration::from_millis(450),
        "timeout then the retry delay: {gap:?}"
    );
    let dlq = watcher.posts()[0].json();
    assert_eq!(dlq["type"], "dlq_mailer");
    assert_eq!(dlq["data"]["event_id"], "mail-1");
    assert_eq!(dlq["data"]["event_type"], "send-mail");
    assert_eq!(dlq["data"]["event_payload"], json!({"to": "a@b.c"}));
    assert_eq!(dlq["data"]["event_name"], "mailer");
    assert!(dlq["data"]["event_timestamp"].is_string());
    let attempts = get_json(&h.api("default/subscriptions/mailer/attempts")).await;
    assert!(
        attempts.to_string().contains("timed out"),
        "the timeout is the trigger's: {attempts}"
    );
    // The announcement is published as the delivery dies; its dead-letter record is
    // written with the engine's next batch of outcomes, a moment later.
    let mut dead = Value::Null;
    for _ in 0..100 {
        dead = get_json(&h.api("default/subscriptions/mailer/dead-letters")).await;
        if dead["dead_letters"].as_array().map(Vec::len) == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        dead["dead_letters"].as_array().map(Vec::len),
        Some(1),
        "{dead}"
    );
}

#[tokio::test]
async fn bad_triggers_are_refused_with_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let cases = [
        (json!({"url": "http://127.0.0.1:9/x"}), "trigger"),
        (json!({"type": "t", "url": "nope"}), "url"),
        (
            json!({"type": "t", "url": "http://127.0.0.1:9/x", "retries": 1000}),
            "retries",
        ),
        (
            json!({"type": "t", "url": "http://127.0.0.1:9/x", "filter": {"rule": "match", "eval": "~", "f1": "args.data.a", "f2": 1}}),
            "filter.eval",
        ),
        (
            json!({"type": "t", "url": "http://127.0.0.1:9/x", "filter": "amount >"}),
            "filters[0].feel",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = put_trigger(&h, "t1", body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{body}: {problem}"
        );
    }
    let (status, _) = put_trigger(&h, "bad id", json!({"type": "t", "url": "http://x"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        get_json(&format!(
            "{}/v1/config/projects/default/eventing/triggers",
            h.url
        ))
        .await,
        json!({"result": []})
    );
    let resp = client()
        .put(format!(
            "{}/v1/config/projects/nope/eventing/triggers/t1",
            h.url
        ))
        .json(&json!({"type": "t", "url": "http://127.0.0.1:9/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client().delete(trigger_url(&h, "t1")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

//! Callers and the `user`/`ip` extension attributes: events sent by a person (a bearer
//! token of a configured user) carry who sent them and from where; a service account's
//! and anonymous events do not; an unknown token stores nothing.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const ALICE: &str = "alice-token-0123456789";
const BATCH_JOB: &str = "batch-token-0123456789";

fn config() -> String {
    format!(
        "{TEST_CONFIG}\n[[users]]\nname = \"alice\"\ntoken = \"{ALICE}\"\n\n[[users]]\nname = \"nightly-import\"\ntoken = \"{BATCH_JOB}\"\nservice = true\n"
    )
}

async fn send(h: &Herald, id: &str, token: Option<&str>, extra: &[(&str, &str)]) -> u16 {
    let mut req = client()
        .post(h.api("default/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/ui")
        .header("ce-type", "order.approved")
        .header("content-type", "application/json")
        .body("{}");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn events_from_a_person_carry_user_and_ip() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let rx = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": rx.url, "protocolsettings": {"mode": "binary"}}),
    )
    .await;

    assert_eq!(
        send(&h, "by-alice", Some(ALICE), &[("ce-user", "mallory")]).await,
        202
    );
    assert_eq!(send(&h, "by-job", Some(BATCH_JOB), &[]).await, 202);
    assert_eq!(send(&h, "anonymous", None, &[]).await, 202);
    // The queue API stamps too.
    let resp = client()
        .post(h.api("default/eventing/queue"))
        .bearer_auth(ALICE)
        .json(&json!({"type": "order.approved", "id": "queued-by-alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    assert!(wait_until(Duration::from_secs(5), || rx.posts().len() == 4).await);
    let by_id = |id: &str| {
        rx.posts()
            .into_iter()
            .find(|r| r.event_id().as_deref() == Some(id))
            .unwrap()
    };
    let alice = by_id("by-alice");
    assert_eq!(
        alice.header("ce-user"),
        Some("alice"),
        "Herald's value replaces the client's"
    );
    assert_eq!(alice.header("ce-ip"), Some("127.0.0.1"));
    let queued = by_id("queued-by-alice");
    assert_eq!(queued.header("ce-user"), Some("alice"));
    assert_eq!(queued.header("ce-ip"), Some("127.0.0.1"));
    for id in ["by-job", "anonymous"] {
        let r = by_id(id);
        assert_eq!(r.header("ce-user"), None, "{id}");
        assert_eq!(r.header("ce-ip"), None, "{id}");
    }
}

#[tokio::test]
async fn an_unknown_token_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let rx = Receiver::start().await;
    let sub = subscribe(&h, "default", json!({"sink": rx.url})).await;
    for token in ["wrong-token-0123456789", ""] {
        let resp = client()
            .post(h.api("default/events"))
            .header("authorization", format!("Bearer {token}"))
            .header("ce-specversion", "1.0")
            .header("ce-id", "x")
            .header("ce-source", "/ui")
            .header("ce-type", "t")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["type"], "urn:herald:problem:unauthenticated");
    }
    let view = get_json(&h.api(&format!(
        "default/subscriptions/{}",
        sub["id"].as_str().unwrap()
    )))
    .await;
    assert_eq!(view["backlog"]["pending"], 0);
}

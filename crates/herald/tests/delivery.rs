//! End-to-end delivery: the real server delivering to a real receiver, covering signing,
//! both content modes, retries, non-retryable codes, abort, dead letters and redeliver,
//! the dead-letter sink, auto-disable and enable, the in-flight cap and the handshake.

mod support;

use std::time::Duration;

use herald_core::signing::{secret_key, verify};
use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn delivers_structured_signed_with_custom_headers() {
    let h = Herald::start();
    let r = Receiver::start().await;
    let sub = subscribe(
        &h,
        "default",
        json!({
            "sink": format!("{}/hook", r.url),
            "protocol": "HTTP",
            "protocolsettings": {"headers": {"x-team": "blue"}},
        }),
    )
    .await;
    let secret = sub["signing_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let (status, _) = send_binary(&h, "default", "e-1", "order.created", json!({"n": 1})).await;
    assert_eq!(status, 202);
    assert!(wait_until(WAIT, || r.posts().len() == 1).await);
    let req = &r.posts()[0];
    assert_eq!(req.path, "/hook");
    assert_eq!(req.header("x-team"), Some("blue"));
    assert!(req
        .header("content-type")
        .unwrap()
        .starts_with("application/cloudevents+json"));
    let body = req.json();
    assert_eq!(body["id"], "e-1");
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["data"], json!({"n": 1}));
    let key = secret_key(&secret).unwrap();
    let ts: i64 = req.header("webhook-timestamp").unwrap().parse().unwrap();
    let id = req.header("webhook-id").unwrap();
    assert!(verify(
        &key,
        id,
        ts,
        &req.body,
        req.header("webhook-signature").unwrap()
    ));
    assert!(!verify(
        &key,
        id,
        ts + 1,
        &req.body,
        req.header("webhook-signature").unwrap()
    ));

    // Reads never show the secret; the dedicated endpoint does.
    let got = get_json(&h.api(&format!(
        "default/subscriptions/{}",
        sub["id"].as_str().unwrap()
    )))
    .await;
    assert!(got.get("signing_secret").is_none());
    assert_eq!(got["state"]["status"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_binary_mode() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "protocolsettings": {"mode": "binary"},
        "sinkcredential": {"credentialtype": "ACCESSTOKEN", "accesstoken": "tok-1"}}),
    )
    .await;
    send_binary(&h, "default", "b-1", "t", json!({"x": "€"})).await;
    assert!(wait_until(WAIT, || r.posts().len() == 1).await);
    let req = &r.posts()[0];
    assert_eq!(req.header("ce-id"), Some("b-1"));
    assert_eq!(req.header("ce-specversion"), Some("1.0"));
    assert_eq!(req.header("ce-source"), Some("/tests"));
    assert_eq!(req.header("authorization"), Some("Bearer tok-1"));
    assert_eq!(req.json(), json!({"x": "€"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_until_the_receiver_recovers() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|_, i| {
        if i < 2 {
            Reply::status(500)
        } else {
            Reply::status(204)
        }
    });
    let sub = subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": fast_retry(&["0s", "200ms", "200ms", "200ms"])}),
    )
    .await;
    send_binary(&h, "default", "r-1", "t", json!({})).await;
    assert!(wait_until(WAIT, || r.posts().len() == 3).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.posts().len(), 3, "no attempt after success");
    let posts = r.posts();
    assert!(
        posts[1].at - posts[0].at >= Duration::from_millis(180),
        "backoff respected"
    );
    // All three attempts carry the same webhook-id (idempotency key).
    assert!(posts
        .iter()
        .all(|p| p.header("webhook-id") == posts[0].header("webhook-id")));
    let id = sub["id"].as_str().unwrap();
    let attempts = get_json(&h.api(&format!("default/subscriptions/{id}/attempts"))).await;
    let list = attempts["attempts"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["status"], 204, "newest first");
    assert_eq!(list[2]["status"], 500);
    assert_eq!(list[2]["error"], "HTTP 500");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|_, i| {
        if i == 0 {
            Reply::status(429).header("retry-after", "1")
        } else {
            Reply::status(200)
        }
    });
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": fast_retry(&["0s", "10ms", "10ms"])}),
    )
    .await;
    send_binary(&h, "default", "ra-1", "t", json!({})).await;
    assert!(wait_until(WAIT, || r.posts().len() == 2).await);
    let posts = r.posts();
    assert!(
        posts[1].at - posts[0].at >= Duration::from_millis(950),
        "waited for Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn non_retryable_status_and_abort_dead_letter_at_once_then_redeliver() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|req, _| match req.event_id().as_deref() {
        Some("bad") => Reply::status(400).body("{\"error\":\"nope\"}"),
        Some("abort") => Reply::status(500).header("webhook-delivery", "abort-message"),
        _ => Reply::status(200),
    });
    let sub = subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": fast_retry(&["0s", "50ms", "50ms", "50ms"])}),
    )
    .await;
    let id = sub["id"].as_str().unwrap().to_string();
    send_binary(&h, "default", "bad", "t", json!({})).await;
    send_binary(&h, "default", "abort", "t", json!({})).await;
    let dl_url = h.api(&format!("default/subscriptions/{id}/dead-letters"));
    let mut dead = Value::Null;
    for _ in 0..200 {
        dead = get_json(&dl_url).await;
        if dead["dead_letters"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = dead["dead_letters"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{dead}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.posts().len(), 2, "one attempt each: no retries");
    let bad = list.iter().find(|d| d["event"]["id"] == "bad").unwrap();
    assert_eq!(bad["attempts"], 1);
    let attempts = get_json(&h.api(&format!("default/subscriptions/{id}/attempts"))).await;
    assert!(attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["response_body"] == "{\"error\":\"nope\"}"));

    // The receiver is fixed; redeliver one dead letter by id, then the rest.
    r.script(|_, _| Reply::status(200));
    let one = bad["delivery_id"].as_i64().unwrap();
    let resp = client()
        .post(format!("{dl_url}/{one}/redeliver"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(wait_until(WAIT, || r.posts().len() == 3).await);
    assert_eq!(r.posts()[2].event_id().as_deref(), Some("bad"));
    let resp: Value = client()
        .post(format!("{dl_url}/redeliver"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["redelivered"], 1);
    assert!(wait_until(WAIT, || r.posts().len() == 4).await);
    assert_eq!(
        get_json(&dl_url).await["dead_letters"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_deliveries_go_to_the_dead_letter_sink() {
    let h = Herald::start();
    let r = Receiver::start().await;
    let dls = Receiver::start().await;
    r.script(|_, _| Reply::status(503));
    let mut delivery = fast_retry(&["0s", "50ms", "50ms"]);
    delivery["dead_letter_sink"] = json!(dls.url);
    subscribe(&h, "default", json!({"sink": r.url, "delivery": delivery})).await;
    send_binary(&h, "default", "dl-1", "t", json!({"k": 1})).await;
    assert!(wait_until(WAIT, || dls.posts().len() == 1).await);
    assert_eq!(r.posts().len(), 3, "max attempts = schedule length");
    let got = dls.posts()[0].json();
    assert_eq!(got["id"], "dl-1");
    assert_eq!(got["data"], json!({"k": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_disable_then_enable_loses_nothing() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|_, _| Reply::status(500));
    let mut delivery = fast_retry(&["0s", "1h"]);
    delivery["disable_after_failures"] = json!(3);
    let sub = subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": delivery, "owner": "team-shop",
        "types": ["t"]}),
    )
    .await;
    // Someone watching the system topic to tell owners.
    let watcher = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": watcher.url, "topics": [["system", "emitters"]],
        "types": ["EmitterDisabled"]}),
    )
    .await;
    let id = sub["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        send_binary(&h, "default", &format!("d-{i}"), "t", json!({})).await;
    }
    let sub_url = h.api(&format!("default/subscriptions/{id}"));
    let mut state = Value::Null;
    for _ in 0..200 {
        state = get_json(&sub_url).await["state"].clone();
        if state["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state["status"], "disabled", "{state}");
    assert!(state["reason"]
        .as_str()
        .unwrap()
        .contains("3 consecutive failed attempts"));
    assert!(
        wait_until(WAIT, || watcher.posts().len() == 1).await,
        "EmitterDisabled announced"
    );
    let note = watcher.posts()[0].json();
    assert_eq!(note["type"], "EmitterDisabled");
    assert_eq!(note["subject"], id);
    assert_eq!(note["data"]["owner"], "team-shop");
    assert!(note["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("consecutive failed attempts"));
    // Events arriving while disabled are kept, not attempted.
    for i in 3..6 {
        send_binary(&h, "default", &format!("d-{i}"), "t", json!({})).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.posts().len(), 3, "nothing attempted while disabled");
    assert_eq!(get_json(&sub_url).await["backlog"]["pending"], 6);

    r.script(|_, _| Reply::status(200));
    let resp = client()
        .post(format!("{sub_url}/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        wait_until(WAIT, || {
            let mut ids = r.posts()[3..]
                .iter()
                .filter_map(|p| p.event_id())
                .collect::<Vec<_>>();
            ids.sort();
            ids == ["d-0", "d-1", "d-2", "d-3", "d-4", "d-5"]
        })
        .await,
        "every event delivered after enable: {:?}",
        r.delivered_ids()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_cap_is_respected() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|_, _| Reply::status(200).delay(Duration::from_millis(100)));
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": {"max_in_flight": 3}}),
    )
    .await;
    for i in 0..20 {
        send_binary(&h, "default", &format!("c-{i}"), "t", json!({})).await;
    }
    assert!(wait_until(WAIT, || r.posts().len() == 20).await);
    assert!(
        r.max_concurrent() <= 3,
        "max concurrent {}",
        r.max_concurrent()
    );
    assert!(r.max_concurrent() >= 2, "deliveries do run in parallel");
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_leased_ahead_are_not_sent_after_a_disable() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|_, _| Reply::status(200).delay(Duration::from_millis(600)));
    let sub = subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": {"max_in_flight": 1}}),
    )
    .await;
    let sub_url = h.api(&format!(
        "default/subscriptions/{}",
        sub["id"].as_str().unwrap()
    ));
    for i in 0..3 {
        send_binary(&h, "default", &format!("d-{i}"), "t", json!({})).await;
    }
    // The first is being sent; the next is leased, waiting for its slot.
    assert!(wait_until(WAIT, || r.posts().len() == 1).await);
    let resp = client()
        .post(format!("{sub_url}/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.posts().len(), 1, "nothing is sent once disabled");
    let resp = client()
        .post(format!("{sub_url}/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(wait_until(WAIT, || r.posts().len() == 3).await);
    let mut ids = r.delivered_ids();
    ids.sort();
    assert_eq!(ids, ["d-0", "d-1", "d-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_timeout_counts_as_failure() {
    let h = Herald::start();
    let r = Receiver::start().await;
    r.script(|_, i| {
        if i == 0 {
            Reply::status(200).delay(Duration::from_secs(3))
        } else {
            Reply::status(200)
        }
    });
    let mut delivery = fast_retry(&["0s", "100ms"]);
    delivery["timeout"] = json!("300ms");
    let sub = subscribe(&h, "default", json!({"sink": r.url, "delivery": delivery})).await;
    send_binary(&h, "default", "to-1", "t", json!({})).await;
    assert!(wait_until(WAIT, || r.posts().len() == 2).await);
    let id = sub["id"].as_str().unwrap();
    // The receiver saw both; the second outcome may still be on its way to the store.
    let url = h.api(&format!("default/subscriptions/{id}/attempts"));
    let mut attempts = get_json(&url).await;
    for _ in 0..100 {
        if attempts["attempts"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        attempts = get_json(&url).await;
    }
    let last = &attempts["attempts"].as_array().unwrap()[1];
    assert!(
        last["error"].as_str().unwrap().contains("timed out"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_gates_delivery_until_the_sink_allows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Herald::start_in(
        tmp.path(),
        "[delivery]\npoll_interval = \"100ms\"\nhandshake_retry = \"2s\"\n",
    );
    let r = Receiver::start().await;
    r.allow_origin(None);
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "protocolsettings": {"handshake": true}}),
    )
    .await;
    for i in 0..5 {
        send_binary(&h, "default", &format!("hs-{i}"), "t", json!({})).await;
    }
    let options = || {
        r.requests()
            .iter()
            .filter(|q| q.method == "OPTIONS")
            .count()
    };
    assert!(wait_until(WAIT, || options() >= 1).await);
    let opt = r
        .requests()
        .into_iter()
        .find(|q| q.method == "OPTIONS")
        .unwrap();
    assert_eq!(
        opt.header("webhook-request-origin"),
        Some("herald.localhost")
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        options(),
        1,
        "one handshake at a time, however many deliveries wait"
    );
    assert!(
        r.posts().is_empty(),
        "no delivery before the sink allows it"
    );
    r.allow_origin(Some("herald.localhost"));
    assert!(wait_until(WAIT, || r.posts().len() == 5).await);
    assert_eq!(
        options(),
        2,
        "asked again after handshake_retry, then allowed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_topic_type_and_filter() {
    let h = Herald::start();
    let prod = Receiver::start().await;
    let orders = Receiver::start().await;
    let filtered = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": prod.url, "topics": [["service", "production"]]}),
    )
    .await;
    subscribe(
        &h,
        "default",
        json!({"sink": orders.url, "types": ["order.created"]}),
    )
    .await;
    subscribe(
        &h,
        "default",
        json!({"sink": filtered.url,
        "filters": [{"any": [{"prefix": {"type": "invoice."}}, {"exact": {"subject": "vip"}}]}]}),
    )
    .await;
    let post = |path: &str, id: &str, ty: &str, subject: Option<&str>| {
        let mut req = client()
            .post(h.api(path))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/t")
            .header("ce-type", ty);
        if let Some(s) = subject {
            req = req.header("ce-subject", s);
        }
        req.send()
    };
    assert_eq!(
        post(
            "default/topics/service/production/finance/events",
            "1",
            "invoice.paid",
            None
        )
        .await
        .unwrap()
        .status(),
        202
    );
    post("default/events", "2", "order.created", Some("vip"))
        .await
        .unwrap();
    post("default/topics/service/staging/events", "3", "other", None)
        .await
        .unwrap();
    assert!(
        wait_until(WAIT, || prod.posts().len() == 1
            && orders.posts().len() == 1
            && filtered.posts().len() == 2)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(prod.delivered_ids(), ["1"]);
    assert_eq!(orders.delivered_ids(), ["2"]);
    let mut f = filtered.delivered_ids();
    f.sort();
    assert_eq!(f, ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_header_and_url_templates() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": format!("{}/hooks/{{{{type}}}}", r.url),
        "sinkcredential": {"credentialtype": "APIKEY", "apikey": "key-123"}}),
    )
    .await;
    subscribe(&h, "default", json!({"sink": format!("{}/t/{{{{trigger}}}}", r.url),
        "sinkcredential": {"credentialtype": "APIKEY", "apikey": "key-456", "headername": "X-Token"}})).await;
    send_binary(&h, "default", "k-1", "order.created", json!({})).await;
    assert!(wait_until(WAIT, || r.posts().len() == 2).await);
    let posts = r.posts();
    let hook = posts
        .iter()
        .find(|p| p.path.starts_with("/hooks/"))
        .unwrap();
    assert_eq!(hook.path, "/hooks/order.created");
    assert_eq!(hook.header("x-api-key"), Some("key-123"));
    let t = posts.iter().find(|p| p.path.starts_with("/t/")).unwrap();
    assert_eq!(t.path, "/t/order.created");
    assert_eq!(t.header("x-token"), Some("key-456"));
    let got = get_json(&h.api("default/subscriptions")).await;
    assert!(
        !got.to_string().contains("key-123"),
        "api keys are write-only: {got}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_client_credentials_are_fetched_cached_and_renewed_on_401() {
    let h = Herald::start();
    let r = Receiver::start().await;
    // The receiver is also the token endpoint: tokens tok-1, tok-2, ... in order.
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let revoked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (i2, rv) = (issued.clone(), revoked.clone());
    r.script(move |req, _| {
        use std::sync::atomic::Ordering::SeqCst;
        if req.path == "/token" {
            let body = String::from_utf8_lossy(&req.body).to_string();
            assert!(
                body.contains("grant_type=client_credentials")
                    && body.contains("client_id=herald")
                    && body.contains("scope=events.write"),
                "{body}"
            );
            let n = i2.fetch_add(1, SeqCst) + 1;
            return Reply::status(200).body(&format!(
                "{{\"access_token\":\"tok-{n}\",\"expires_in\":3600}}"
            ));
        }
        let auth = req.header("authorization").unwrap_or("").to_string();
        if auth == "Bearer tok-1" && rv.load(SeqCst) {
            return Reply::status(401);
        }
        if auth.starts_with("Bearer tok-") {
            Reply::status(200)
        } else {
            Reply::status(401)
        }
    });
    subscribe(
        &h,
        "default",
        json!({"sink": format!("{}/hook", r.url), "sinkcredential": {
        "credentialtype": "OAUTH2", "accesstokenurl": format!("{}/token", r.url),
        "clientid": "herald", "clientsecret": "s3cret", "scope": "events.write"}}),
    )
    .await;
    let hook_posts = || {
        r.posts()
            .into_iter()
            .filter(|p| p.path == "/hook")
            .collect::<Vec<_>>()
    };
    send_binary(&h, "default", "o-1", "t", json!({})).await;
    send_binary(&h, "default", "o-2", "t", json!({})).await;
    assert!(wait_until(WAIT, || hook_posts().len() == 2).await);
    assert_eq!(
        issued.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one token, cached for both"
    );
    assert!(hook_posts()
        .iter()
        .all(|p| p.header("authorization") == Some("Bearer tok-1")));
    // The receiver stops accepting tok-1: Herald fetches tok-2 and the same attempt succeeds.
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    send_binary(&h, "default", "o-3", "t", json!({})).await;
    assert!(wait_until(WAIT, || hook_posts().len() == 4).await);
    let last = hook_posts().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer tok-2"));
    assert_eq!(last.event_id().as_deref(), Some("o-3"));
    assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hook_posts().len(),
        4,
        "delivered on the renewed token, no further retry"
    );
}

//! Emitters in Trisotech's public API shape, end to end against the real binary: Webhook
//! (binary by default, structured, pretty, constant source/subject), Audit with its
//! owner-only log by time range, File (rolling daily) and Console, and who may do what.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-01234567890";
const ADMIN: &str = "admin-token-0123456789";

fn config() -> String {
    format!(
        "{TEST_CONFIG}\n[[users]]\nname = \"alice\"\ntoken = \"{ALICE}\"\n\n[[users]]\nname = \"bob\"\ntoken = \"{BOB}\"\n\n[[users]]\nname = \"root\"\ntoken = \"{ADMIN}\"\nadmin = true\n"
    )
}

fn definitions(h: &Herald) -> String {
    format!("{}/publicapi/emitters/definitions", h.url)
}

async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn create(h: &Herald, token: &str, def: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        &definitions(h),
        Some(token),
        Some(def),
    )
    .await
}

/// Send an event on a topic with JSON data.
async fn emit(h: &Herald, topic: &str, id: &str, ty: &str, data: Value) {
    let resp = client()
        .post(h.api(&format!("default/topics/{topic}/events")))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/des")
        .header("ce-type", ty)
        .header("content-type", "application/json")
        .body(data.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn webhook_emitters_filter_by_topic_message_and_feel() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let rx = Receiver::start().await;
    let (status, structured) = create(
        &h,
        ALICE,
        json!({"type": "Webhook", "topics": [["repository"]], "messages": ["ModelSaved"],
               "filter": "size > 5",
               "parameters": {"url": format!("{}/s", rx.url), "mode": "structured", "prettyPrint": true,
                              "source": "des-prod", "subject": "modeling"}}),
    )
    .await;
    assert_eq!(status, 201, "{structured}");
    assert_eq!(structured["owner"], "alice");
    assert_eq!(structured["enabled"], true);
    let id = structured["id"].as_str().unwrap().to_string();
    let (status, binary) = create(
        &h,
        ALICE,
        json!({"id": "bin", "type": "Webhook", "topics": [["repository"]],
               "parameters": {"url": format!("{}/b", rx.url)}}),
    )
    .await;
    assert_eq!(status, 201, "{binary}");

    emit(
        &h,
        "repository/models",
        "e1",
        "ModelSaved",
        json!({"size": 10}),
    )
    .await;
    emit(&h, "repository", "e2", "ModelSaved", json!({"size": 1})).await;
    emit(&h, "service", "e3", "ModelSaved", json!({"size": 10})).await;
    assert!(wait_until(Duration::from_secs(5), || rx.posts().len() == 3).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts = rx.posts();
    let to = |path: &str| posts.iter().filter(|r| r.path == path).collect::<Vec<_>>();
    let s = to("/s");
    assert_eq!(s.len(), 1, "topic, message and FEEL filter");
    let body = String::from_utf8(s[0].body.clone()).unwrap();
    assert!(body.contains("\n  \"id\""), "pretty printed: {body}");
    let ev = s[0].json();
    assert_eq!(
        (
            ev["id"].as_str(),
            ev["source"].as_str(),
            ev["subject"].as_str()
        ),
        (Some("e1"), Some("des-prod"), Some("modeling"))
    );
    let b = to("/b");
    assert_eq!(
        b.len(),
        2,
        "binary emitter takes every message of its topic"
    );
    assert!(
        b.iter().all(|r| r.header("ce-source") == Some("/des")),
        "binary by default"
    );

    // Read, list and edit rules.
    let (status, got) = call(
        reqwest::Method::GET,
        &format!("{}/{id}", definitions(&h)),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["parameters"]["mode"], "structured");
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{}/{id}", definitions(&h)),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(status, 404, "another user's emitter is invisible");
    let (_, listed) = call(reqwest::Method::GET, &definitions(&h), Some(BOB), None).await;
    assert_eq!(listed, json!([]));
    let (_, listed) = call(reqwest::Method::GET, &definitions(&h), Some(ADMIN), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let (status, _) = call(reqwest::Method::GET, &definitions(&h), None, None).await;
    assert_eq!(status, 401);

    // Disable keeps what arrives; enable delivers it.
    let (status, off) = call(
        reqwest::Method::POST,
        &format!("{}/bin/disable", definitions(&h)),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!((status, &off["enabled"]), (200, &json!(false)));
    emit(&h, "repository", "e4", "Other", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.posts().len(), 3);
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{}/bin/enable", definitions(&h)),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(wait_until(Duration::from_secs(5), || rx.posts().len() == 4).await);

    let mut edited = got.clone();
    edited["parameters"]["mode"] = json!("binary");
    let (status, put) = call(
        reqwest::Method::PUT,
        &format!("{}/{id}", definitions(&h)),
        Some(ALICE),
        Some(edited),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["parameters"]["mode"], "binary");
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{}/{id}", definitions(&h)),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{}/{id}", definitions(&h)),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn the_audit_log_is_read_by_time_range_by_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let (status, audit) = create(
        &h,
        ALICE,
        json!({"id": "trail", "type": "Audit", "topics": [["user"]]}),
    )
    .await;
    assert_eq!(status, 201, "{audit}");
    let log = format!("{}/publicapi/emitters/audit/trail", h.url);
    emit(&h, "user", "a1", "UserLoggedIn", json!({"n": 1})).await;
    emit(&h, "user", "a2", "UserLoggedIn", json!({"n": 2})).await;
    let read_all = || call(reqwest::Method::GET, &log, Some(ALICE), None);
    let mut all = Value::Null;
    for _ in 0..100 {
        all = read_all().await.1;
        if all.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let middle = herald_core::now_millis();
    tokio::time::sleep(Duration::from_millis(30)).await;
    emit(&h, "user", "a3", "UserLoggedOut", json!({"n": 3})).await;
    emit(&h, "service", "not-audited", "X", json!({})).await;
    let mut later = Value::Null;
    for _ in 0..100 {
        later = call(
            reqwest::Method::GET,
            &format!("{log}?start={middle}"),
            Some(ALICE),
            None,
        )
        .await
        .1;
        if later.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&later),
        vec!["a3"],
        "start is included, earlier events are not"
    );
    let (_, earlier) = call(
        reqwest::Method::GET,
        &format!("{log}?end={middle}"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(ids(&earlier), vec!["a1", "a2"], "end is excluded");
    let stamp = chrono::DateTime::from_timestamp_millis(middle)
        .unwrap()
        .to_rfc3339();
    let (_, by_date) = call(
        reqwest::Method::GET,
        &format!("{log}?start={}", stamp.replace('+', "%2B")),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(ids(&by_date), vec!["a3"]);
    assert_eq!(later[0]["data"], json!({"n": 3}));

    for (token, status) in [(Some(BOB), 404), (Some(ADMIN), 403), (None, 401)] {
        let (got, body) = call(reqwest::Method::GET, &log, token, None).await;
        assert_eq!(got, status, "{body}");
    }
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{log}?start=yesterday"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn file_and_console_emitters_write_on_the_server_and_need_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let logs = dir.path().join("logs");
    let path = logs.join("everything.log");
    let file =
        json!({"type": "File", "parameters": {"path": path, "rolling": true, "subject": "all"}});
    let (status, body) = create(&h, ALICE, file.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = create(&h, ADMIN, file).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = create(
        &h,
        ADMIN,
        json!({"type": "Console", "messages": ["Shout"], "parameters": {"output": "out", "logPrefix": "ignored-for-out"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    emit(&h, "a", "f1", "Shout", json!({"loud": true})).await;
    emit(&h, "b", "f2", "Quiet", json!({})).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let rolled = logs.join(format!("everything-{today}.log"));
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&rolled)
            .is_ok_and(|t| t.lines().count() == 2))
        .await,
        "two lines in {rolled:?}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&rolled)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ids: Vec<&str> = lines.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["f1", "f2"]);
    assert!(lines.iter().all(|e| e["subject"] == "all"));
    assert!(
        wait_until(Duration::from_secs(5), || h
            .stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"id\":\"f1\"")))
        .await,
        "the console emitter printed the event"
    );
    assert!(!h
        .stdout
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("\"id\":\"f2\"")));
    let printed = h
        .stdout
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("\"id\":\"f1\""))
        .cloned()
        .unwrap();
    assert!(
        printed.starts_with('{'),
        "logPrefix is for the log output only: {printed}"
    );
}

#[tokio::test]
async fn a_webhook_emitter_answering_a_synchronous_request_sets_its_source_and_subject() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let rx = Receiver::start().await;
    rx.script(|_, _| Reply::status(200).body(r#"{"ok": true}"#));
    let (status, body) = create(
        &h,
        ALICE,
        json!({"id": "answering", "type": "Webhook", "messages": ["lookup"],
               "parameters": {"url": format!("{}/hook", rx.url), "source": "/custom", "subject": "fixed"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let resp = client()
        .post(h.api("default/eventing/queue"))
        .json(&json!({"type": "lookup", "data": {"q": 1}, "isSynchronous": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = &rx.posts()[0];
    assert_eq!(got.header("ce-source"), Some("/custom"));
    assert_eq!(got.header("ce-subject"), Some("fixed"));
}

#[tokio::test]
async fn concurrent_creates_with_one_id_make_one_emitter() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let (url, token) = (definitions(&h), if n % 2 == 0 { ALICE } else { BOB });
            tokio::spawn(async move {
                let def = json!({"id": "shared", "type": "Audit", "messages": [format!("t{n}")]});
                let resp = client()
                    .post(url)
                    .bearer_auth(token)
                    .json(&def)
                    .send()
                    .await
                    .unwrap();
                resp.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn bad_definitions_are_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start_in(dir.path(), &config());
    for (def, field) in [
        (json!({"type": "Pigeon"}), "type"),
        (json!({"type": "Webhook"}), "parameters.url"),
        (
            json!({"type": "Webhook", "parameters": {"url": "http://127.0.0.1:9", "colour": "red"}}),
            "parameters.colour",
        ),
        (json!({"type": "Audit", "filter": "size >"}), "feel"),
        (
            json!({"type": "Audit", "topics": [["no spaces"]]}),
            "topics",
        ),
        (json!({"type": "Audit", "owner": "bob"}), "another owner"),
    ] {
        let (status, problem) = create(&h, ALICE, def.clone()).await;
        assert!(status == 400 || status == 403, "{def}: {status} {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{def}: {problem}"
        );
    }
    let (_, listed) = call(reqwest::Method::GET, &definitions(&h), Some(ADMIN), None).await;
    assert_eq!(listed, json!([]));
    // The subscriptions API does not create local sinks.
    let (status, _) = call(
        reqwest::Method::POST,
        &h.api("default/subscriptions"),
        None,
        Some(json!({"sink": "file:/tmp/x", "protocol": "FILE"})),
    )
    .await;
    assert_eq!(status, 400);
    // Nor does it let a webhook subscription borrow an emitter's definition.
    let (status, problem) = call(
        reqwest::Method::POST,
        &h.api("default/subscriptions"),
        None,
        Some(json!({"sink": "http://127.0.0.1:9/x",
                    "config": {"trisotech.emitter": {"type": "File", "parameters": {"path": "/tmp/x"}}}})),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    // And it cannot reach an emitter: not its secret, not its definition, not its switch.
    let (status, _) = create(&h, ALICE, json!({"id": "mine", "type": "Audit"})).await;
    assert_eq!(status, 201);
    for (method, path) in [
        (reqwest::Method::GET, "default/subscriptions/mine/secret"),
        (reqwest::Method::GET, "default/subscriptions/mine"),
        (reqwest::Method::GET, "default/subscriptions/mine/attempts"),
        (reqwest::Method::POST, "default/subscriptions/mine/disable"),
        (reqwest::Method::DELETE, "default/subscriptions/mine"),
    ] {
        let (status, _) = call(method, &h.api(path), None, None).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = call(
        reqwest::Method::PUT,
        &h.api("default/subscriptions/mine"),
        None,
        Some(json!({"sink": "http://127.0.0.1:9/x"})),
    )
    .await;
    assert_eq!(status, 403);
    let (_, listed) = call(
        reqwest::Method::GET,
        &h.api("default/subscriptions"),
        None,
        None,
    )
    .await;
    assert_eq!(
        listed,
        json!([]),
        "emitters are not listed as subscriptions"
    );
}

#[tokio::test]
async fn system_emitters_follow_their_folder_and_stay_out_of_reach_of_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("data").join("system-emitters");
    std::fs::create_dir_all(&folder).unwrap();
    let rx = Receiver::start().await;
    let hook = |path: &str| {
        json!({"type": "Webhook", "topics": [["service"]], "parameters": {"url": format!("{}/{path}", rx.url), "mode": "structured"}})
            .to_string()
    };
    std::fs::write(folder.join("ops.json"), hook("ops")).unwrap();
    std::fs::write(folder.join("broken.json"), "{\"type\": \"Webhook\", ").unwrap();
    std::fs::write(
        folder.join("owned.json"),
        json!({"type": "Audit", "owner": "alice"}).to_string(),
    )
    .unwrap();
    let h = Herald::start_in(dir.path(), &config());

    // Loaded at start; the broken files are reported by name and the good one works.
    let (_, status) = call(
        reqwest::Method::GET,
        &format!("{}/publicapi/emitters/system", h.url),
        Some(BOB),
        None,
    )
    .await;
    let by_file = |v: &Value, f: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["file"] == f)
            .cloned()
            .unwrap()
    };
    assert!(by_file(&status, "ops.json")["error"].is_null(), "{status}");
    assert!(by_file(&status, "broken.json")["error"]
        .as_str()
        .unwrap()
        .contains("not an emitter definition"));
    assert!(by_file(&status, "owned.json")["error"]
        .as_str()
        .unwrap()
        .contains("owner"));
    emit(&h, "service", "s1", "ServiceStarted", json!({})).await;
    assert!(
        wait_until(Duration::from_secs(5), || rx
            .posts()
            .iter()
            .any(|r| r.path == "/ops"))
        .await
    );

    // Visible to every user, with no owner; not changeable through either API.
    let (status, got) = call(
        reqwest::Method::GET,
        &format!("{}/ops", definitions(&h)),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(got.get("owner").is_none(), "{got}");
    for token in [BOB, ADMIN] {
        let (status, _) = call(
            reqwest::Method::DELETE,
            &format!("{}/ops", definitions(&h)),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = call(
            reqwest::Method::PUT,
            &format!("{}/ops", definitions(&h)),
            Some(token),
            Some(json!({"type": "Audit"})),
        )
        .await;
        assert_eq!(status, 403);
    }
    let (status, _) = call(
        reqwest::Method::DELETE,
        &h.api("default/subscriptions/ops"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Edited, added and removed files take effect while running.
    std::fs::write(folder.join("ops.json"), hook("ops-v2")).unwrap();
    std::fs::write(folder.join("broken.json"), hook("fixed")).unwrap();
    std::fs::write(folder.join("owned.json"), "").unwrap();
    std::fs::remove_file(folder.join("owned.json")).unwrap();
    let mut delivered = false;
    for i in 0..40 {
        emit(
            &h,
            "service",
            &format!("s2-{i}"),
            "ServiceStarted",
            json!({}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let posts = rx.posts();
        if posts.iter().any(|r| r.path == "/ops-v2") && posts.iter().any(|r| r.path == "/fixed") {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "edited and repaired files were picked up");
    let (_, status) = call(
        reqwest::Method::GET,
        &format!("{}/publicapi/emitters/system", h.url),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(
        status.as_array().unwrap().len(),
        2,
        "the removed file is gone: {status}"
    );
    std::fs::remove_file(folder.join("ops.json")).unwrap();
    let mut gone = false;
    for _ in 0..40 {
        let (status, _) = call(
            reqwest::Method::GET,
            &format!("{}/ops", definitions(&h)),
            Some(ADMIN),
            None,
        )
        .await;
        if status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "a removed file removes its emitter");
}

#[tokio::test]
async fn a_failing_emitter_is_disabled_its_owner_told_and_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "\n[emitters.delivery]\ndisable_after_failures = 3\nretry = { backoff = { schedule = [\"0s\", \"1h\"] }, jitter = 0.0 }\n";
    let h = Herald::start_in(dir.path(), &format!("{}{policy}", config()));
    let failing = Receiver::start().await;
    failing.script(|_, _| Reply::status(500));
    let (status, em) = create(
        &h,
        ALICE,
        json!({"id": "flaky", "type": "Webhook", "topics": [["jobs"]], "parameters": {"url": failing.url}}),
    )
    .await;
    assert_eq!(status, 201, "{em}");
    // Whoever tells owners watches the system topic.
    let mailer = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": mailer.url, "topics": [["system", "emitters"]], "types": ["EmitterDisabled"]}),
    )
    .await;
    for i in 0..3 {
        emit(&h, "jobs", &format!("j{i}"), "JobDone", json!({"i": i})).await;
    }
    assert!(
        wait_until(Duration::from_secs(10), || !mailer.posts().is_empty()).await,
        "EmitterDisabled was published"
    );
    let notice = mailer.posts()[0].json();
    assert_eq!(notice["data"]["id"], "flaky");
    assert_eq!(notice["data"]["owner"], "alice");
    let (_, got) = call(
        reqwest::Method::GET,
        &format!("{}/flaky", definitions(&h)),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(got["enabled"], false);
    assert!(got["disabled"]["reason"]
        .as_str()
        .unwrap()
        .contains("3 consecutive failed attempts"));

    // Disabled: what arrives is kept, not attempted; enabled again, everything goes.
    let attempts = failing.posts().len();
    emit(&h, "jobs", "j-late", "JobDone", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failing.posts().len(), attempts);
    failing.script(|_, _| Reply::status(200));
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{}/flaky/enable", definitions(&h)),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let ok: Vec<String> = failing
                .posts()
                .iter()
                .skip(attempts)
                .filter_map(|r| r.event_id())
                .collect();
            ["j0", "j1", "j2", "j-late"]
                .iter()
                .all(|id| ok.iter().any(|o| o == id))
        })
        .await,
        "everything kept while disabled is delivered after enable"
    );
}

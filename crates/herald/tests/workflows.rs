//! Workflows (value streams) end to end against the real binary and a real receiver:
//! start on an event, actions, waits woken by `ce-instanceid`, emits, delays, versions,
//! refusals, concurrent wakes, `kill -9`, cancel and retry.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

async fn post_workflow(h: &Herald, def: Value) -> (u16, Value) {
    let resp = client()
        .post(h.api("default/workflows"))
        .json(&def)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create_workflow(h: &Herald, def: Value) -> Value {
    let (status, body) = post_workflow(h, def).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// A binary-mode event addressed to `instance`; returns (status, body).
async fn wake(h: &Herald, instance: &str, ty: &str, id: &str, data: Value) -> (u16, Value) {
    let headers = [("ce-source", "/payments"), ("ce-instanceid", instance)];
    send_binary_with(h, "default", id, ty, data, &headers).await
}

/// The status of a request's answer.
async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

async fn instances(h: &Herald, wf: &str, state: Option<&str>) -> Vec<Value> {
    let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
    let v = get_json(&h.api(&format!("default/workflows/{wf}/instances{q}"))).await;
    v["instances"].as_array().cloned().unwrap_or_default()
}

async fn instance(h: &Herald, wf: &str, id: &str) -> Value {
    get_json(&h.api(&format!("default/workflows/{wf}/instances/{id}"))).await
}

/// Poll until the instance is in `state`; returns it.
async fn until_state(h: &Herald, wf: &str, id: &str, state: &str) -> Value {
    until(h, wf, id, |v| v["state"] == state).await
}

/// Poll until the instance satisfies `f`; returns it.
async fn until(h: &Herald, wf: &str, id: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = instance(h, wf, id).await;
        if f(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never as expected: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll until the workflow has `n` instances; returns them (newest first).
async fn until_instances(h: &Herald, wf: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = instances(h, wf, None).await;
        if all.len() >= n {
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} instances",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id of the workflow's first instance, once there is one.
async fn first_instance(h: &Herald, wf: &str) -> String {
    until_instances(h, wf, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn kinds(inst: &Value) -> Vec<String> {
    inst["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn operate(h: &Herald, wf: &str, id: &str, op: &str) -> (u16, Value) {
    let resp = client()
        .post(h.api(&format!("default/workflows/{wf}/instances/{id}/{op}")))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_value_stream_acts_sleeps_wakes_on_its_instance_id_and_emits() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    rx.script(|req, _| {
        if req.path == "/reserve" {
            Reply::status(200).body(r#"{"reserved": true}"#)
        } else {
            Reply::status(200)
        }
    });
    subscribe(
        &h,
        "default",
        json!({"types": ["herald.workflow.started", "order.paid"], "sink": format!("{}/hook", rx.url)}),
    )
    .await;
    create_workflow(
        &h,
        json!({
            "id": "order-to-cash",
            "start": {"type": "order.created", "filter": "total > 0"},
            "steps": [
                {"name": "reserve", "action": {"url": format!("{}/reserve", rx.url), "headers": {"authorization": "Bearer t"}}},
                {"wait": {"types": ["payment.received"]}},
                {"emit": {"type": "order.paid", "subject": "orders"}}
            ]
        }),
    )
    .await;

    // A start event's instanceid is ignored; one that fails the start filter starts nothing.
    let (status, _) = wake(&h, "made-up", "order.created", "o1", json!({"total": 10})).await;
    assert_eq!(status, 202);
    let (status, _) = send_binary(&h, "default", "o0", "order.created", json!({"total": 0})).await;
    assert_eq!(status, 202);
    let all = until_instances(&h, "order-to-cash", 1).await;
    let id = all[0]["id"].as_str().unwrap().to_string();
    assert_eq!(all[0]["context"]["order.created"], json!({"total": 10}));

    let waiting = until_state(&h, "order-to-cash", &id, "waiting").await;
    assert_eq!(
        instances(&h, "order-to-cash", None).await.len(),
        1,
        "an event failing the start filter starts nothing"
    );
    assert_eq!(waiting["waiting_for"], json!(["payment.received"]));
    assert_eq!(
        instances(&h, "order-to-cash", Some("waiting")).await.len(),
        1
    );
    assert!(instances(&h, "order-to-cash", Some("completed"))
        .await
        .is_empty());

    // The action got the context, the instance id and its own headers.
    let action = rx
        .posts()
        .into_iter()
        .find(|r| r.path == "/reserve")
        .unwrap();
    assert_eq!(action.header("ce-instanceid"), Some(id.as_str()));
    assert_eq!(action.header("authorization"), Some("Bearer t"));
    assert_eq!(action.json(), json!({"order.created": {"total": 10}}));
    // The start was announced.
    assert!(
        wait_until(Duration::from_secs(10), || rx.posts().iter().any(|r| {
            let e = r.json();
            e["type"] == "herald.workflow.started" && e["data"]["instance"] == id.as_str()
        }))
        .await
    );

    let (status, body) = wake(&h, &id, "payment.received", "p1", json!({"amount": 10})).await;
    assert_eq!(status, 202, "{body}");
    let done = until_state(&h, "order-to-cash", &id, "completed").await;
    assert_eq!(
        kinds(&done),
        [
            "started",
            "action_succeeded",
            "waiting",
            "woken",
            "emitted",
            "completed"
        ]
    );
    assert_eq!(
        done["context"],
        json!({"order.created": {"total": 10}, "reserve": {"reserved": true}, "payment.received": {"amount": 10}})
    );
    assert!(
        wait_until(Duration::from_secs(10), || rx
            .posts()
            .iter()
            .any(|r| r.json()["type"] == "order.paid"))
        .await
    );
    let paid = rx
        .posts()
        .into_iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "order.paid")
        .unwrap();
    assert_eq!(paid["instanceid"], id.as_str());
    assert_eq!(paid["data"]["reserve"], json!({"reserved": true}));

    let metrics = client()
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "herald_workflow_instances_total{event=\"started\"} 1",
        "herald_workflow_instances_total{event=\"completed\"} 1",
        "herald_workflow_wakes_total 1",
        "herald_workflow_actions_total{outcome=\"succeeded\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // A finished instance refuses wakes, and nothing of the refused request is stored.
    let (status, body) = wake(&h, &id, "payment.received", "p2", json!({})).await;
    assert_eq!(status, 409, "{body}");
    // An unknown instance: 404.
    let (status, body) = wake(&h, "no-such", "payment.received", "p3", json!({})).await;
    assert_eq!(status, 404, "{body}");
    // A type the workflow never awaits: 422 (checked on a second, waiting instance).
    send_binary(&h, "default", "o2", "order.created", json!({"total": 3})).await;
    let all = until_instances(&h, "order-to-cash", 2).await;
    let second = all
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .find(|i| *i != id)
        .unwrap();
    until_state(&h, "order-to-cash", &second, "waiting").await;
    let (status, body) = wake(&h, &second, "order.shipped", "s1", json!({})).await;
    assert_eq!(status, 422, "{body}");
    // The refused ids were not stored: sending them again (validly) is not a duplicate.
    let (status, body) = wake(&h, &second, "payment.received", "p3", json!({})).await;
    assert_eq!(
        (status, body["duplicates"].as_u64()),
        (202, Some(0)),
        "{body}"
    );
    until_state(&h, "order-to-cash", &second, "completed").await;

    // Structured and batch mode carry the instance id as the `instanceid` attribute.
    for (n, ct) in [
        (4, "application/cloudevents+json"),
        (5, "application/cloudevents-batch+json"),
    ] {
        send_binary(
            &h,
            "default",
            &format!("o{n}"),
            "order.created",
            json!({"total": n}),
        )
        .await;
        let all = until_instances(&h, "order-to-cash", n - 1).await;
        let inst = all[0]["id"].as_str().unwrap().to_string();
        until_state(&h, "order-to-cash", &inst, "waiting").await;
        let event = json!({"specversion": "1.0", "id": format!("p{n}"), "source": "/payments",
                           "type": "payment.received", "instanceid": inst, "data": {"amount": n}});
        let body = if ct.contains("batch") {
            json!([event])
        } else {
            event
        };
        let req = client()
            .post(h.api("default/events"))
            .header("content-type", ct)
            .body(body.to_string());
        assert_eq!(status_of(req).await, 202, "{ct}");
        let v = until_state(&h, "order-to-cash", &inst, "completed").await;
        assert_eq!(v["context"]["payment.received"], json!({"amount": n}));
    }
}

#[tokio::test]
async fn a_wake_that_comes_early_is_kept_until_its_wait_step() {
    let h = Herald::start();
    create_workflow(
        &h,
        json!({"id": "early", "start": {"type": "go"},
               "steps": [{"delay": "3s"}, {"wait": {"types": ["ready"]}}]}),
    )
    .await;
    send_binary(&h, "default", "g1", "go", json!({})).await;
    let id = first_instance(&h, "early").await;
    let sleeping = until_state(&h, "early", &id, "waiting").await;
    assert!(
        sleeping["waiting_for"].is_null(),
        "a delay waits for no event"
    );
    let (status, _) = wake(&h, &id, "ready", "r1", json!({"n": 1})).await;
    assert_eq!(status, 202);
    let v = instance(&h, "early", &id).await;
    assert_eq!(v["kept_events"][0]["type"], "ready", "{v:#}");
    let done = until_state(&h, "early", &id, "completed").await;
    assert_eq!(done["context"]["ready"], json!({"n": 1}));
    assert!(done["kept_events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_wakes_advance_an_instance_exactly_once_each() {
    let h = Herald::start();
    const STEPS: usize = 25;
    let steps: Vec<Value> = (0..STEPS)
        .map(|_| json!({"wait": {"types": ["tick"]}}))
        .collect();
    create_workflow(
        &h,
        json!({"id": "ticks", "start": {"type": "begin"}, "steps": steps}),
    )
    .await;
    send_binary(&h, "default", "b1", "begin", json!({})).await;
    let id = first_instance(&h, "ticks").await;
    until_state(&h, "ticks", &id, "waiting").await;

    // Every tick is sent twice at once (a retrying client): each must count once.
    let mut tasks = Vec::new();
    for n in 0..STEPS * 2 {
        let (url, id) = (h.url.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            client()
                .post(format!("{url}/v1/api/default/events"))
                .header("ce-specversion", "1.0")
                .header("ce-id", format!("tick-{}", n % STEPS))
                .header("ce-source", "/clock")
                .header("ce-type", "tick")
                .header("ce-instanceid", id)
                .header("content-type", "application/json")
                .body(json!({"n": n % STEPS}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    let done = until_state(&h, "ticks", &id, "completed").await;
    let woken: Vec<String> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "woken")
        .map(|e| e["detail"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(woken.len(), STEPS, "one step per awaited event: {woken:?}");
    let distinct: HashSet<_> = woken.iter().collect();
    assert_eq!(distinct.len(), STEPS, "no event consumed twice: {woken:?}");
    let steps_woken: Vec<i64> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "woken")
        .map(|e| e["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps_woken, (0..STEPS as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn instances_timers_and_kept_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Herald::start_in(dir.path(), TEST_CONFIG);
    let rx = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"types": ["done"], "sink": format!("{}/hook", rx.url)}),
    )
    .await;
    create_workflow(
        &h,
        json!({"id": "durable", "start": {"type": "go"},
               "steps": [{"wait": {"types": ["first"]}}, {"delay": "3s"},
                         {"wait": {"types": ["second"]}}, {"emit": {"type": "done"}}]}),
    )
    .await;
    for n in 0..3 {
        send_binary(&h, "default", &format!("g{n}"), "go", json!({"n": n})).await;
    }
    let ids: Vec<String> = until_instances(&h, "durable", 3)
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        until_state(&h, "durable", id, "waiting").await;
    }
    h.kill9();

    // Asleep across the crash: the wakes are taken after the restart...
    let h = {
        let mut h = Herald::start_in(dir.path(), TEST_CONFIG);
        for id in &ids {
            assert_eq!(
                wake(&h, id, "first", &format!("f-{id}"), json!({})).await.0,
                202
            );
            // ...and the second wake arrives while the instance sleeps in its delay.
            assert_eq!(
                wake(&h, id, "second", &format!("s-{id}"), json!({}))
                    .await
                    .0,
                202
            );
        }
        for id in &ids {
            until(&h, "durable", id, |v| v["step"].as_i64() >= Some(1)).await;
        }
        // Crash in the middle of the delays, with the second wakes kept.
        h.kill9();
        Herald::start_in(dir.path(), TEST_CONFIG)
    };
    for id in &ids {
        let done = until_state(&h, "durable", id, "completed").await;
        assert_eq!(kinds(&done).iter().filter(|k| *k == "woken").count(), 2);
    }
    assert!(
        wait_until(Duration::from_secs(10), || rx
            .posts()
            .iter()
            .filter(|r| r.json()["type"] == "done")
            .count()
            >= 3)
        .await
    );
    let done: HashSet<String> = rx
        .posts()
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "done")
        .map(|e| e["instanceid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(done, ids.iter().cloned().collect());
}

#[tokio::test]
async fn definitions_are_versioned_yaml_readable_and_refused_with_the_bad_path() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"types": ["v1.done", "v2.done"], "sink": format!("{}/hook", rx.url)}),
    )
    .await;
    let v1 = json!({"id": "flow", "start": {"type": "go"},
                    "steps": [{"wait": {"types": ["next"]}}, {"emit": {"type": "v1.done"}}]});
    let created = create_workflow(&h, v1.clone()).await;
    assert_eq!(created["version"], 1);
    let (status, body) = post_workflow(&h, v1).await;
    assert_eq!(status, 409, "{body}");

    send_binary(&h, "default", "g1", "go", json!({})).await;
    let old = first_instance(&h, "flow").await;
    until_state(&h, "flow", &old, "waiting").await;

    // Version 2 in YAML.
    let yaml = "start:\n  type: go\nsteps:\n  - wait:\n      types: [next]\n  - emit:\n      type: v2.done\n";
    let put = |body: reqwest::RequestBuilder| async move {
        let resp = body.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["version"].clone()
    };
    let flow = h.api("default/workflows/flow");
    let put_yaml = || {
        client()
            .put(&flow)
            .header("content-type", "application/yaml")
            .body(yaml)
    };
    assert_eq!(put(put_yaml()).await, 2);
    let text = client()
        .get(h.api("default/workflows/flow"))
        .header("accept", "application/yaml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("type: v2.done") && text.contains("version: 2"),
        "{text}"
    );
    let first = get_json(&h.api("default/workflows/flow?version=1")).await;
    assert_eq!(first["steps"][1]["emit"]["type"], "v1.done");
    // The GET view can be written back (a new version).
    assert_eq!(put(client().put(&flow).json(&first)).await, 3);
    assert_eq!(put(put_yaml()).await, 4);

    // The running instance keeps version 1; a new one runs the latest.
    send_binary(&h, "default", "g2", "go", json!({})).await;
    let all = until_instances(&h, "flow", 2).await;
    let new = all[0]["id"].as_str().unwrap().to_string();
    assert_eq!(all[0]["version"], 4);
    until_state(&h, "flow", &new, "waiting").await;
    assert_eq!(wake(&h, &old, "next", "n1", json!({})).await.0, 202);
    assert_eq!(wake(&h, &new, "next", "n2", json!({})).await.0, 202);
    assert!(wait_until(Duration::from_secs(10), || rx.posts().len() >= 2).await);
    let mut types: Vec<String> = rx
        .posts()
        .iter()
        .map(|r| {
            let e = r.json();
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["instanceid"].as_str().unwrap()
            )
        })
        .collect();
    types.sort();
    let mut expect = vec![format!("v1.done:{old}"), format!("v2.done:{new}")];
    expect.sort();
    assert_eq!(types, expect);

    // Refusals name the bad field.
    for (def, path) in [
        (
            json!({"id": "bad", "start": {"type": "a"}, "steps": [{"action": {"url": "ftp://x"}}]}),
            "steps[0].action.url",
        ),
        (
            json!({"id": "bad", "start": {"type": "a"}, "steps": [{"wait": {"types": ["b"], "filter": "x >"}}]}),
            "steps[0].wait.filter",
        ),
        (
            json!({"id": "bad", "start": {"type": "a", "filter": "("}, "steps": []}),
            "start.filter",
        ),
        (
            json!({"id": "bad", "start": {"type": "a"}, "steps": [{"delay": "1s"}, {"wait": {"types": ["b"], "timeout": "0s"}}]}),
            "steps[1].wait.timeout",
        ),
        (
            json!({"id": "b d", "start": {"type": "a"}, "steps": []}),
            "id",
        ),
    ] {
        let (status, body) = post_workflow(&h, def).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["type"], "urn:herald:problem:invalid-workflow");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{path}:")),
            "{path}: {body}"
        );
    }
    let resp = client()
        .post(h.api("default/workflows"))
        .header("content-type", "application/yaml")
        .body("start: [unclosed")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(get_json(&h.api("default/workflows")).await["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["id"] == "flow"));

    assert_eq!(
        status_of(client().get(h.api("default/workflows/nope/instances"))).await,
        404
    );

    // Deleted: no new instance starts, and its reads are gone.
    assert_eq!(
        status_of(client().delete(h.api("default/workflows/flow"))).await,
        204
    );
    assert_eq!(
        status_of(client().get(h.api("default/workflows/flow"))).await,
        404
    );
    send_binary(&h, "default", "g3", "go", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        instances(&h, "flow", None).await.len(),
        2,
        "a deleted workflow's instances stay listable"
    );
}

#[tokio::test]
async fn a_failed_step_is_retried_by_hand_and_an_instance_cancelled() {
    let h = Herald::start();
    let rx = Receiver::start().await;
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    rx.script(move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(200).body(r#"{"ok": 1}"#)
        } else {
            Reply::status(500).body("down")
        }
    });
    create_workflow(
        &h,
        json!({"id": "fragile", "start": {"type": "go"},
               "steps": [{"name": "call", "action": {"url": format!("{}/act", rx.url), "attempts": 2, "retry_delay": "200ms"}},
                         {"wait": {"types": ["never"], "timeout": "300ms", "on_timeout": "continue"}},
                         {"wait": {"types": ["also-never"], "timeout": "300ms", "on_timeout": "fail"}}]}),
    )
    .await;
    send_binary(&h, "default", "g1", "go", json!({})).await;
    let id = first_instance(&h, "fragile").await;
    let failed = until_state(&h, "fragile", &id, "failed").await;
    assert_eq!(rx.posts().len(), 2, "two attempts");
    assert!(
        failed["error"].as_str().unwrap().contains("HTTP 500"),
        "{failed}"
    );
    assert_eq!(
        kinds(&failed),
        ["started", "action_failed", "action_failed", "failed"]
    );
    assert_eq!(instances(&h, "fragile", Some("failed")).await.len(), 1);
    assert_eq!(operate(&h, "fragile", "nope", "retry").await.0, 404);
    // A failed instance may be retried, so it still takes (and keeps) wakes.
    assert_eq!(
        wake(&h, &id, "never", "n1", json!({"kept": true})).await.0,
        202
    );

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = operate(&h, "fragile", &id, "retry").await;
    assert_eq!(status, 200, "{body}");
    // Retried, it runs on: the first wait takes the kept event, the second times out.
    let failed = until_state(&h, "fragile", &id, "failed").await;
    let k = kinds(&failed);
    assert!(
        k.ends_with(&[
            "retried".into(),
            "action_succeeded".into(),
            "woken".into(),
            "waiting".into(),
            "timed_out".into(),
            "failed".into()
        ]),
        "{k:?}"
    );
    assert_eq!(failed["context"]["never"], json!({"kept": true}));
    assert_eq!(failed["context"]["call"], json!({"ok": 1}));
    let (status, _) = operate(&h, "fragile", &id, "cancel").await;
    assert_eq!(status, 409, "a finished instance is not cancelled");

    // Cancel a waiting instance: then it takes no wake.
    rx.script(|_, _| Reply::status(200));
    create_workflow(
        &h,
        json!({"id": "patient", "start": {"type": "wait-here"}, "steps": [{"wait": {"types": ["x"]}}]}),
    )
    .await;
    send_binary(&h, "default", "w1", "wait-here", json!({})).await;
    let id = first_instance(&h, "patient").await;
    until_state(&h, "patient", &id, "waiting").await;
    let (status, body) = operate(&h, "patient", &id, "cancel").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("cancelled")));
    assert_eq!(wake(&h, &id, "x", "x1", json!({})).await.0, 409);
    assert_eq!(operate(&h, "patient", &id, "retry").await.0, 409);
    // An instance id belongs to its own workflow.
    assert_eq!(operate(&h, "fragile", &id, "cancel").await.0, 404);
}

#[tokio::test]
async fn a_start_event_wakes_an_instance_of_another_workflow_and_loops_stop() {
    let h = Herald::start();
    create_workflow(
        &h,
        json!({"id": "payments", "start": {"type": "payment.received"}, "steps": []}),
    )
    .await;
    create_workflow(
        &h,
        json!({"id": "orders", "start": {"type": "order.created"},
               "steps": [{"wait": {"types": ["payment.received"]}}]}),
    )
    .await;
    send_binary(&h, "default", "o1", "order.created", json!({})).await;
    let order = first_instance(&h, "orders").await;
    until_state(&h, "orders", &order, "waiting").await;
    // It starts a `payments` instance (its instanceid ignored there) and wakes the order.
    let (status, body) = wake(&h, &order, "payment.received", "p1", json!({"n": 1})).await;
    assert_eq!(status, 202, "{body}");
    until_instances(&h, "payments", 1).await;
    until_state(&h, "orders", &order, "completed").await;
    // A start event addressed to nobody known still starts (nothing to refuse it for).
    let (status, body) = wake(&h, "nobody", "payment.received", "p2", json!({})).await;
    assert_eq!(status, 202, "{body}");
    until_instances(&h, "payments", 2).await;

    // A workflow that would start itself is refused; two that start each other stop at
    // the depth limit.
    let (status, body) = post_workflow(
        &h,
        json!({"id": "echo", "start": {"type": "echo"}, "steps": [{"emit": {"type": "echo"}}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("steps[0].emit.type"));
    for (id, from, to) in [("ping", "ping", "pong"), ("pong", "pong", "ping")] {
        create_workflow(
            &h,
            json!({"id": id, "start": {"type": from}, "steps": [{"emit": {"type": to}}]}),
        )
        .await;
    }
    send_binary(&h, "default", "e1", "ping", json!({})).await;
    let total = || async {
        instances(&h, "ping", None).await.len() + instances(&h, "pong", None).await.len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while total().await < 16 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} instances",
            total().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(total().await, 16, "depths 0 to 15, then no more starts");
}

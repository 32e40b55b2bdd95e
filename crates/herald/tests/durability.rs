//! Durability end to end: a `kill -9` in the middle of a loaded backlog loses no
//! acknowledged event, and a client that disconnects mid-request never leaves a
//! committed event undelivered.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_loaded_backlog_loses_no_acknowledged_event() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Herald::start_in(tmp.path(), TEST_CONFIG);
    let r = Receiver::start().await;
    // A slow receiver with a small in-flight cap: the backlog grows on disk.
    r.script(|_, _| Reply::status(200).delay(Duration::from_millis(20)));
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "delivery": {"max_in_flight": 4}}),
    )
    .await;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = h.api("default/events");
    let mut senders = Vec::new();
    for worker in 0..16 {
        let (acked, url) = (acked.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let client = client();
            for i in 0..100 {
                let id = format!("k-{worker}-{i}");
                let resp = client
                    .post(&url)
                    .header("ce-specversion", "1.0")
                    .header("ce-id", &id)
                    .header("ce-source", "/kill")
                    .header("ce-type", "t")
                    .header("content-type", "application/json")
                    .body(r#"{"payload":"some bytes to make the event realistic"}"#)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 202 => acked.lock().unwrap().push(id),
                    _ => return,
                }
            }
        }));
    }
    assert!(
        wait_until(Duration::from_secs(30), || acked.lock().unwrap().len()
            >= 400)
        .await
    );
    h.kill9();
    for s in senders {
        let _ = s.await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let delivered_before = r.delivered_ids().len();
    assert!(
        delivered_before < acked.len(),
        "the backlog was not drained before the kill ({delivered_before} of {})",
        acked.len()
    );

    let _h2 = Herald::start_in(tmp.path(), TEST_CONFIG);
    let done = wait_until(Duration::from_secs(60), || {
        let got: HashSet<String> = r.delivered_ids().into_iter().collect();
        acked.iter().all(|id| got.contains(id))
    })
    .await;
    let got: HashSet<String> = r.delivered_ids().into_iter().collect();
    let missing: Vec<_> = acked.iter().filter(|id| !got.contains(*id)).collect();
    assert!(
        done,
        "{} acknowledged events never delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_mid_request_leaves_no_committed_event_behind() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(&h, "default", json!({"sink": r.url})).await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let body = r#"{"hello":"world"}"#;
    for i in 0..40 {
        let request = format!(
            "POST /v1/api/default/events HTTP/1.1\r\nhost: {addr}\r\nce-specversion: 1.0\r\nce-id: dc-{i}\r\nce-source: /tests\r\nce-type: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        // Gone before the answer, at varying points of the server's work (parsing,
        // routing, commit): the server sees the connection close mid-request.
        std::thread::sleep(Duration::from_micros(i * 250));
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Whatever was committed is a duplicate now, and must have been (or be) delivered.
    let mut committed = Vec::new();
    for i in 0..40 {
        let id = format!("dc-{i}");
        let (status, resp) = send_binary(&h, "default", &id, "t", json!({"hello": "world"})).await;
        assert_eq!(status, 202);
        if resp["duplicates"] == 1 {
            committed.push(id);
        }
    }
    assert!(
        !committed.is_empty(),
        "at least some disconnected requests were committed"
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let got: HashSet<String> = r.delivered_ids().into_iter().collect();
            (0..40).all(|i| got.contains(&format!("dc-{i}")))
        })
        .await,
        "every event delivered (committed before the disconnect or on the resend)"
    );
    // And exactly those re-sent as duplicates were not stored twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = r.delivered_ids();
    for id in &committed {
        assert_eq!(
            ids.iter().filter(|x| *x == id).count(),
            1,
            "{id} delivered once"
        );
    }
}

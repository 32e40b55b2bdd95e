//! The CLI against a running server: `subscriptions create|list|enable|delete`, `send`
//! in both modes, `workflows`, and `--help` on every command.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn herald(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output()
        .expect("run herald");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `herald` with these arguments, off the async runtime.
async fn herald_async(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        herald(&args)
    })
    .await
    .unwrap()
}

macro_rules! run {
    ($($arg:expr),* $(,)?) => { herald_async(vec![$($arg.to_string()),*]).await };
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["send", "--help"],
        vec!["subscriptions", "--help"],
        vec!["subscriptions", "create", "--help"],
        vec!["subscriptions", "list", "--help"],
        vec!["subscriptions", "delete", "--help"],
        vec!["subscriptions", "enable", "--help"],
        vec!["workflows", "--help"],
        vec!["workflows", "apply", "--help"],
        vec!["workflows", "list", "--help"],
        vec!["workflows", "show", "--help"],
        vec!["workflows", "instances", "--help"],
        vec!["workflows", "instance", "--help"],
        vec!["workflows", "cancel", "--help"],
        vec!["workflows", "retry", "--help"],
    ] {
        let (ok, out, _) = herald(&args);
        assert!(ok, "{args:?}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let (_, out, _) = herald(&["serve", "--help"]);
    assert!(
        out.contains("--data-dir") && out.contains("HERALD_DATA_DIR") && out.contains("--config")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_and_send_round_trip() {
    let h = Herald::start();
    let r = Receiver::start().await;
    let server = h.url.as_str();
    let (ok, out, err) = run!(
        "subscriptions",
        "create",
        "--server",
        server,
        "--sink",
        r.url,
        "--type",
        "cli.test",
        "--mode",
        "binary"
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();

    let (ok, _, err) = run!(
        "send",
        "--server",
        server,
        "--type",
        "cli.test",
        "--id",
        "cli-1",
        "--data",
        r#"{"n": 1}"#,
        "-e",
        "traceparent=00-1"
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run!(
        "send",
        "--server",
        server,
        "--type",
        "cli.test",
        "--id",
        "cli-2",
        "--mode",
        "structured"
    );
    assert!(ok, "{err}");
    assert!(wait_until(Duration::from_secs(10), || r.posts().len() == 2).await);
    let first = r
        .posts()
        .into_iter()
        .find(|p| p.header("ce-id") == Some("cli-1"))
        .unwrap();
    assert_eq!(first.json(), serde_json::json!({"n": 1}));
    assert_eq!(first.header("ce-traceparent"), Some("00-1"));

    let (ok, out, _) = run!("subscriptions", "list", "--server", server);
    assert!(ok);
    assert!(out.contains(&id));
    let (ok, out, _) = run!("subscriptions", "enable", "--server", server, id);
    assert!(ok);
    assert!(out.contains("\"active\""));
    let (ok, _, _) = run!("subscriptions", "delete", "--server", server, id);
    assert!(ok);
    // A failing call exits non-zero and prints the problem.
    let (ok, _, err) = run!("subscriptions", "delete", "--server", server, id);
    assert!(!ok);
    assert!(err.contains("subscription-not-found"), "{err}");
    let (ok, _, err) = run!(
        "send",
        "--server",
        server,
        "--type",
        "x",
        "--data",
        "{not json"
    );
    assert!(!ok);
    assert!(err.contains("--data must be JSON"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn workflows_apply_show_and_operate() {
    let h = Herald::start();
    let server = h.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(
        &file,
        "id: flow\nstart:\n  type: go\nsteps:\n  - wait:\n      types: [next]\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = run!("workflows", "apply", "--server", server, path);
    assert!(ok, "{err}");
    assert!(out.contains("\"version\": 1"), "{out}");
    let (ok, out, _) = run!("workflows", "apply", "--server", server, path);
    assert!(ok && out.contains("\"version\": 2"), "{out}");
    let (ok, out, _) = run!("workflows", "list", "--server", server);
    assert!(ok && out.contains("\"flow\""), "{out}");

    send_binary(&h, "default", "g1", "go", serde_json::json!({})).await;
    let mut instance = String::new();
    for _ in 0..200 {
        let (_, out, _) = run!(
            "workflows",
            "instances",
            "--server",
            server,
            "flow",
            "--state",
            "waiting"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        if let Some(id) = v["instances"][0]["id"].as_str() {
            instance = id.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!instance.is_empty(), "the instance sleeps");
    let (ok, out, _) = run!("workflows", "show", "--server", server, "flow");
    assert!(ok && out.contains("\"waiting\": 1"), "{out}");
    let (ok, out, _) = run!("workflows", "cancel", "--server", server, "flow", instance);
    assert!(ok && out.contains("\"cancelled\""), "{out}");
    let (ok, out, _) = run!(
        "workflows",
        "instance",
        "--server",
        server,
        "flow",
        instance
    );
    assert!(ok && out.contains("\"history\""), "{out}");
    // A failing call exits non-zero with the problem.
    let (ok, _, err) = run!("workflows", "retry", "--server", server, "flow", instance);
    assert!(!ok && err.contains("instance-state"), "{err}");
    let bad = dir.path().join("no-id.yaml");
    std::fs::write(&bad, "start:\n  type: go\nsteps: []\n").unwrap();
    let (ok, _, err) = run!(
        "workflows",
        "apply",
        "--server",
        server,
        bad.to_str().unwrap()
    );
    assert!(!ok && err.contains("--id"), "{err}");
}

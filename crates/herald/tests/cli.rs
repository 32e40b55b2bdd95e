//! The CLI against a running server: `subscriptions create|list|enable|delete` and
//! `send` in both modes, and `--help` on every command.

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

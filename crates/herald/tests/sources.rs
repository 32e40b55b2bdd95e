//! Signed sources end to end: registration (secrets write-only), requests signed as
//! Emporix OE signs them (base64 HMAC-SHA256 of the raw body in `x-emporix-hmac`), secret
//! rotation, hex encoding, refusals that store nothing, and the `/e/{source}` endpoint.

mod support;

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::*;

fn hmac(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn post_signed(
    url: &str,
    source: &str,
    id: &str,
    body: &str,
    signature: Option<(&str, String)>,
) -> (u16, Value) {
    let mut req = client()
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-type", "order.created")
        .header("content-type", "application/json");
    if !source.is_empty() {
        req = req.header("ce-source", source);
    }
    if let Some((name, value)) = signature {
        req = req.header(name, value);
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_sources_must_sign_their_requests() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(&h, "default", json!({"sink": r.url})).await;
    let resp = client()
        .post(h.api("default/sources"))
        .json(&json!({"source": "src_w34a44rft567", "secrets": ["old-secret-1", "new-secret-2"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert!(
        created.get("secrets").is_none(),
        "secrets are write-only: {created}"
    );
    assert_eq!(created["secret_count"], 2);
    assert_eq!(
        created["signature"],
        json!({"header": "x-emporix-hmac", "encoding": "base64"})
    );
    let listed = get_json(&h.api("default/sources")).await;
    assert!(!listed.to_string().contains("secret-"), "{listed}");

    let url = h.api("default/events");
    let body = r#"{"orderId":"ord-1","total":42}"#;
    let src = "src_w34a44rft567";
    // Unsigned, wrongly signed, signed over other bytes: 401, nothing stored.
    let (s, p) = post_signed(&url, src, "e-1", body, None).await;
    assert_eq!(
        (s, p["type"].as_str()),
        (401, Some("urn:herald:problem:invalid-signature"))
    );
    let (s, _) = post_signed(
        &url,
        src,
        "e-1",
        body,
        Some((
            "x-emporix-hmac",
            b64(&hmac("wrong-secret", body.as_bytes())),
        )),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = post_signed(
        &url,
        src,
        "e-1",
        body,
        Some(("x-emporix-hmac", b64(&hmac("new-secret-2", b"{}")))),
    )
    .await;
    assert_eq!(s, 401);
    // Signed with either secret (rotation): accepted, and e-1 is new (nothing was stored before).
    let (s, p) = post_signed(
        &url,
        src,
        "e-1",
        body,
        Some((
            "x-emporix-hmac",
            b64(&hmac("new-secret-2", body.as_bytes())),
        )),
    )
    .await;
    assert_eq!(
        (s, p["events"][0]["duplicate"].as_bool()),
        (202, Some(false)),
        "{p}"
    );
    let (s, _) = post_signed(
        &url,
        src,
        "e-2",
        body,
        Some((
            "x-emporix-hmac",
            b64(&hmac("old-secret-1", body.as_bytes())),
        )),
    )
    .await;
    assert_eq!(s, 202);
    // Unregistered sources need no signature.
    let (s, _) = post_signed(&url, "/other", "e-3", body, None).await;
    assert_eq!(s, 202);
    assert!(wait_until(Duration::from_secs(10), || r.posts().len() == 3).await);
    let mut ids = r.delivered_ids();
    ids.sort();
    assert_eq!(ids, ["e-1", "e-2", "e-3"]);

    // Rotation done: PUT with the new secret only and hex encoding in another header.
    let resp = client()
        .put(h.api("default/sources/src_w34a44rft567"))
        .json(&json!({"source": src, "secrets": ["new-secret-2"], "signature": {"header": "x-signature", "encoding": "hex"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hex: String = hmac("new-secret-2", body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (s, _) = post_signed(&url, src, "e-4", body, Some(("x-signature", hex))).await;
    assert_eq!(s, 202);
    let (s, _) = post_signed(
        &url,
        src,
        "e-5",
        body,
        Some((
            "x-emporix-hmac",
            b64(&hmac("old-secret-1", body.as_bytes())),
        )),
    )
    .await;
    assert_eq!(s, 401, "the retired secret no longer works");

    // Deleted: no signature needed any more.
    assert_eq!(
        client()
            .delete(h.api("default/sources/src_w34a44rft567"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (s, _) = post_signed(&url, src, "e-6", body, None).await;
    assert_eq!(s, 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_endpoint_takes_binary_events_for_its_source() {
    let h = Herald::start();
    let r = Receiver::start().await;
    subscribe(
        &h,
        "default",
        json!({"sink": r.url, "protocolsettings": {"mode": "binary"}}),
    )
    .await;
    let src = "src_abc123";
    let resp = client()
        .post(h.api("default/sources"))
        .json(&json!({"source": src, "secrets": ["signal-secret"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let dup = client()
        .post(h.api("default/sources"))
        .json(&json!({"source": src, "secrets": ["signal-secret"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let body = r#"{"customer":"cus-1"}"#;
    let url = format!("{}/e/{src}", h.url);
    let sig = || {
        Some((
            "x-emporix-hmac",
            b64(&hmac("signal-secret", body.as_bytes())),
        ))
    };
    // ce-source defaults to the path's source.
    let (s, p) = post_signed(&url, "", "sig-1", body, sig()).await;
    assert_eq!(s, 202, "{p}");
    let (s, _) = post_signed(&url, "", "sig-2", body, None).await;
    assert_eq!(s, 401);
    let (s, _) = post_signed(&url, "/someone-else", "sig-3", body, sig()).await;
    assert_eq!(s, 400);
    let (s, _) = post_signed(
        &format!("{}/e/src_unknown", h.url),
        "",
        "sig-4",
        body,
        sig(),
    )
    .await;
    assert_eq!(s, 404);
    assert!(wait_until(Duration::from_secs(10), || r.posts().len() == 1).await);
    let p = &r.posts()[0];
    assert_eq!(p.header("ce-source"), Some(src));
    assert_eq!(p.header("ce-id"), Some("sig-1"));
    assert_eq!(p.json(), json!({"customer": "cus-1"}));
}

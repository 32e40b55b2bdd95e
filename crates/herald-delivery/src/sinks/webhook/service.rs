//! Sending webhook requests and reading answers: one attempt per call, with the
//! subscription's timeout, the response body capped, and `Retry-After` and
//! `webhook-delivery: abort-message` picked up for the retry policy.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;
use herald_core::retry::{classify, parse_retry_after, Outcome};
use reqwest::{Client, Method};

use super::{build_request, WebhookConfig};
use crate::sinks::{AttemptReport, Outbound, Sink, MAX_RESPONSE_BODY};

pub struct WebhookSink {
    client: Client,
    cfg: Arc<WebhookConfig>,
}

impl WebhookSink {
    pub fn new(client: Client, cfg: Arc<WebhookConfig>) -> WebhookSink {
        WebhookSink { client, cfg }
    }

    async fn attempt(&self, out: &Outbound) -> AttemptReport {
        let msg = build_request(&self.cfg, out);
        let method = Method::from_bytes(self.cfg.method.as_bytes()).unwrap_or(Method::POST);
        let mut req = self
            .client
            .request(method, &self.cfg.url)
            .timeout(self.cfg.timeout);
        for (k, v) in &msg.headers {
            req = req.header(k, v);
        }
        if let Some(ct) = &msg.content_type {
            req = req.header("content-type", ct);
        }
        let started = Instant::now();
        let result = req.body(msg.body).send().await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                return AttemptReport {
                    status: None,
                    outcome: Outcome::Retryable { retry_after: None },
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: Some(describe(&e)),
                    response_body: None,
                }
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after =
            header("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let abort =
            header("webhook-delivery").is_some_and(|v| v.eq_ignore_ascii_case("abort-message"));
        let mut body = Vec::new();
        let mut read_error = None;
        while body.len() < MAX_RESPONSE_BODY {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(describe(&e));
                    break;
                }
            }
        }
        body.truncate(MAX_RESPONSE_BODY);
        let outcome = classify(status, &self.cfg.non_retryable, abort, retry_after);
        let error = match (&outcome, read_error) {
            (Outcome::Delivered, _) => None,
            (_, Some(e)) => Some(e),
            (_, None) if abort => Some(format!(
                "HTTP {status}; receiver answered webhook-delivery: abort-message"
            )),
            (_, None) => Some(format!("HTTP {status}")),
        };
        AttemptReport {
            status: Some(status),
            outcome,
            latency_ms: started.elapsed().as_millis() as i64,
            error,
            response_body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        }
    }
}

impl Sink for WebhookSink {
    fn deliver<'a>(&'a self, out: &'a Outbound) -> BoxFuture<'a, AttemptReport> {
        Box::pin(self.attempt(out))
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The CloudEvents webhook validation handshake (abuse protection): `OPTIONS` with
/// `WebHook-Request-Origin`; the sink must answer 2xx with a `WebHook-Allowed-Origin` of
/// our origin or `*`. Returns the status (if any) and why it failed.
pub async fn handshake(
    client: &Client,
    cfg: &WebhookConfig,
    origin: &str,
) -> Result<u16, (Option<u16>, String)> {
    let resp = client
        .request(Method::OPTIONS, &cfg.url)
        .timeout(cfg.timeout)
        .header("WebHook-Request-Origin", origin)
        .header("WebHook-Request-Rate", "120")
        .send()
        .await
        .map_err(|e| (None, format!("handshake failed: {}", describe(&e))))?;
    let status = resp.status().as_u16();
    let allowed = resp
        .headers()
        .get("webhook-allowed-origin")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .any(|o| o.trim() == "*" || o.trim().eq_ignore_ascii_case(origin))
        })
        .unwrap_or(false);
    if resp.status().is_success() && allowed {
        Ok(status)
    } else {
        Err((Some(status), format!("handshake refused: OPTIONS answered {status} without WebHook-Allowed-Origin for '{origin}'")))
    }
}

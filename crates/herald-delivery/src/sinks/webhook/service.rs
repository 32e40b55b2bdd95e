//! Sending webhook requests and reading answers: one attempt per call, with the
//! subscription's timeout, the response body capped, and `Retry-After` and
//! `webhook-delivery: abort-message` picked up for the retry policy.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;
use herald_core::retry::{classify, parse_retry_after, Outcome};
use reqwest::{Client, Method};

use herald_core::subscription::SinkCredential;

use super::{build_request, expand_url, TokenCache, WebhookConfig};
use crate::sinks::{AttemptReport, Outbound, Sink, MAX_RESPONSE_BODY};

pub struct WebhookSink {
    client: Client,
    cfg: Arc<WebhookConfig>,
    /// The subscription's OAuth2 token cache (used when the credential is OAUTH2).
    tokens: Option<Arc<TokenCache>>,
    /// How much of the receiver's answer is kept.
    max_body: usize,
}

impl WebhookSink {
    pub fn new(
        client: Client,
        cfg: Arc<WebhookConfig>,
        tokens: Option<Arc<TokenCache>>,
    ) -> WebhookSink {
        WebhookSink {
            client,
            cfg,
            tokens,
            max_body: MAX_RESPONSE_BODY,
        }
    }

    /// Keep up to `max_body` bytes of the answer (the synchronous queue API returns it).
    pub fn with_max_body(mut self, max_body: usize) -> WebhookSink {
        self.max_body = max_body;
        self
    }

    /// One HTTP request for `out`; a failure to get an answer at all is the report.
    async fn send(
        &self,
        out: &Outbound,
        started: Instant,
    ) -> Result<reqwest::Response, AttemptReport> {
        let failed = |error: String| AttemptReport {
            status: None,
            outcome: Outcome::Retryable { retry_after: None },
            latency_ms: started.elapsed().as_millis() as i64,
            error: Some(error),
            response_body: None,
        };
        let token = match (&self.cfg.credential, &self.tokens) {
            (
                Some(SinkCredential::Oauth2 {
                    accesstokenurl,
                    clientid,
                    clientsecret,
                    scope,
                }),
                Some(cache),
            ) => Some(
                cache
                    .token(
                        &self.client,
                        accesstokenurl,
                        clientid,
                        clientsecret,
                        scope.as_deref(),
                    )
                    .await
                    .map_err(failed)?,
            ),
            _ => None,
        };
        let msg = build_request(&self.cfg, out, token.as_deref());
        let method = Method::from_bytes(self.cfg.method.as_bytes()).unwrap_or(Method::POST);
        let url = expand_url(&self.cfg.url, &out.event.ty);
        let mut req = self.client.request(method, url).timeout(self.cfg.timeout);
        for (k, v) in &msg.headers {
            req = req.header(k, v);
        }
        if let Some(ct) = &msg.content_type {
            req = req.header("content-type", ct);
        }
        req.body(msg.body)
            .send()
            .await
            .map_err(|e| failed(describe(&e)))
    }

    async fn attempt(&self, out: &Outbound) -> AttemptReport {
        let started = Instant::now();
        let mut resp = match self.send(out, started).await {
            Ok(r) => r,
            Err(report) => return report,
        };
        // An OAuth2 token the receiver no longer accepts: fetch a new one and try again.
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            if let (Some(SinkCredential::Oauth2 { .. }), Some(cache)) =
                (&self.cfg.credential, &self.tokens)
            {
                cache.invalidate().await;
                resp = match self.send(out, started).await {
                    Ok(r) => r,
                    Err(report) => return report,
                };
            }
        }
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
        while body.len() < self.max_body {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(describe(&e));
                    break;
                }
            }
        }
        body.truncate(self.max_body);
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

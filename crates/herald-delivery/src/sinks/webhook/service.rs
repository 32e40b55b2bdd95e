//! Sending webhook requests and reading answers: one attempt per call, with the
//! subscription's timeout, the response body capped, and `Retry-After` and
//! `webhook-delivery: abort-message` picked up for the retry policy.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use herald_core::binding::HttpMessage;
use herald_core::retry::{classify, parse_retry_after, Outcome};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Response, Uri};
use reqwest::Client;

use herald_core::subscription::SinkCredential;

use super::client::{Body, HttpClient};
use super::{build_request, expand_url, TokenCache, WebhookConfig};
use crate::sinks::{AttemptReport, Outbound, Sink, MAX_RESPONSE_BODY};

const USER_AGENT_VALUE: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

pub struct WebhookSink {
    http: HttpClient,
    /// For the OAuth2 token endpoint.
    client: Client,
    cfg: Arc<WebhookConfig>,
    /// The subscription's OAuth2 token cache (used when the credential is OAUTH2).
    tokens: Option<Arc<TokenCache>>,
    /// How much of the receiver's answer is kept.
    max_body: usize,
}

impl WebhookSink {
    pub fn new(
        http: HttpClient,
        client: Client,
        cfg: Arc<WebhookConfig>,
        tokens: Option<Arc<TokenCache>>,
    ) -> WebhookSink {
        WebhookSink {
            http,
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
    ) -> Result<Response<hyper::body::Incoming>, AttemptReport> {
        let failed = |error: String| AttemptReport::failed(error, started);
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
        let req = self.http_request(msg, &out.event.ty).map_err(failed)?;
        self.http.send(req).await.map_err(|e| failed(describe(&e)))
    }

    /// The request as hyper takes it: the sink URL (parsed once per subscription unless it
    /// is a template), the method and the headers.
    fn http_request(&self, msg: HttpMessage, event_type: &str) -> Result<Request<Body>, String> {
        let uri = match &self.cfg.parsed_url {
            Some(uri) => uri.clone(),
            None => sink_uri(&expand_url(&self.cfg.url, event_type))?,
        };
        let mut req = Request::new(Full::new(Bytes::from(msg.body)));
        *req.method_mut() = Method::from_bytes(self.cfg.method.as_bytes()).unwrap_or(Method::POST);
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.reserve(msg.headers.len() + 2);
        for (name, value) in msg.headers {
            let n = header_name(&name).ok_or_else(|| format!("invalid header name '{name}'"))?;
            // Takes the string's buffer instead of copying it.
            let v = HeaderValue::from_maybe_shared(Bytes::from(value))
                .map_err(|_| format!("invalid value for header '{name}'"))?;
            headers.append(n, v);
        }
        if let Some(ct) = msg.content_type {
            let v = HeaderValue::from_maybe_shared(Bytes::from(ct))
                .map_err(|_| "invalid content type".to_string())?;
            headers.insert(CONTENT_TYPE, v);
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        }
        Ok(req)
    }

    /// The attempt, bounded by the subscription's timeout as a whole (connect, request,
    /// answer and the part of its body that is kept).
    async fn attempt(&self, out: &Outbound) -> AttemptReport {
        let started = Instant::now();
        match tokio::time::timeout(self.cfg.timeout, self.exchange(out, started)).await {
            Ok(report) => report,
            Err(_) => AttemptReport::failed(
                format!("timed out after {} ms", self.cfg.timeout.as_millis()),
                started,
            ),
        }
    }

    async fn exchange(&self, out: &Outbound, started: Instant) -> AttemptReport {
        let mut resp = match self.send(out, started).await {
            Ok(r) => r,
            Err(report) => return report,
        };
        // An OAuth2 token the receiver no longer accepts: fetch a new one and try again.
        if resp.status() == hyper::StatusCode::UNAUTHORIZED {
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
        let mut answer = resp.into_body();
        let mut body = Vec::new();
        let mut read_error = None;
        while body.len() < self.max_body {
            match answer.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        body.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    read_error = Some(describe(&e));
                    break;
                }
                None => break,
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

/// A sink URL as hyper takes it. Parsed by the URL standard first, which normalises what
/// a subscription may hold (host case, IDNA, spaces) into what a request line can carry.
pub fn sink_uri(url: &str) -> Result<Uri, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid sink URL: {e}"))?;
    parsed
        .as_str()
        .parse::<Uri>()
        .map_err(|e| format!("invalid sink URL: {e}"))
}

impl Sink for WebhookSink {
    fn deliver<'a>(&'a self, out: &'a Outbound) -> BoxFuture<'a, AttemptReport> {
        Box::pin(self.attempt(out))
    }
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else {
        describe(e)
    }
}

/// The names every binary-mode or signed request carries are static (no allocation);
/// others, custom headers, are parsed.
fn header_name(name: &str) -> Option<HeaderName> {
    const KNOWN: [&str; 11] = [
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-subject",
        "ce-time",
        "ce-dataschema",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "authorization",
    ];
    match KNOWN.iter().find(|k| **k == name) {
        Some(k) => Some(HeaderName::from_static(k)),
        None => HeaderName::from_bytes(name.as_bytes()).ok(),
    }
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
        .map_err(|e| (None, format!("handshake failed: {}", describe_reqwest(&e))))?;
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

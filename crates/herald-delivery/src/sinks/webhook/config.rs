//! What a webhook sink needs to know, taken from a subscription (or its dead-letter sink).

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::signing::secret_key;
use herald_core::subscription::{ContentMode, SinkCredential, Subscription};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// `url` parsed once, when it holds no `{{type}}` template (parsing per request is a
    /// measurable share of a delivery's CPU).
    pub parsed_url: Option<hyper::Uri>,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub mode: ContentMode,
    pub credential: Option<SinkCredential>,
    /// The `whsec_` key bytes; requests are signed when present.
    pub signing_key: Option<Vec<u8>>,
    pub timeout: Duration,
    pub non_retryable: Vec<u16>,
    /// Structured bodies pretty-printed (a Webhook emitter's `prettyPrint`).
    pub pretty: bool,
}

impl WebhookConfig {
    /// The subscription's own sink.
    pub fn for_sink(sub: &Subscription) -> WebhookConfig {
        WebhookConfig {
            url: sub.sink.clone(),
            parsed_url: parse_fixed(&sub.sink),
            method: sub.protocolsettings.method.to_ascii_uppercase(),
            headers: sub.protocolsettings.headers.clone(),
            mode: sub.protocolsettings.mode,
            credential: sub.sinkcredential.clone(),
            signing_key: sub.signing_secret.as_deref().and_then(secret_key),
            timeout: sub.delivery.timeout,
            non_retryable: sub.delivery.retry.non_retryable_statuses.clone(),
            pretty: false,
        }
    }

    /// The dead-letter sink: always a signed structured POST of the original event.
    pub fn for_dead_letter(sub: &Subscription, url: &str) -> WebhookConfig {
        WebhookConfig {
            url: url.to_string(),
            parsed_url: parse_fixed(url),
            method: "POST".into(),
            headers: BTreeMap::new(),
            mode: ContentMode::Structured,
            credential: None,
            ..WebhookConfig::for_sink(sub)
        }
    }
}

fn parse_fixed(url: &str) -> Option<hyper::Uri> {
    if url.contains("{{") {
        return None;
    }
    super::sink_uri(url).ok()
}

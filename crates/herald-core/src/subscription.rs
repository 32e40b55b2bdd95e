//! The subscription model in the shape of the CloudEvents Subscriptions API, plus what
//! Herald adds: topics, a delivery policy, a signing secret, an owner and a state.
//! Filters are kept as their JSON here and compiled by `herald-filter`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::topic::validate_segment;
use crate::{Millis, Problem};

/// A subscription as stored. `signing_secret` and `sinkcredential` are secrets: the API
/// layer hides them on reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
    pub sink: String,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default)]
    pub protocolsettings: ProtocolSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinkcredential: Option<SinkCredential>,
    #[serde(default = "all_topics")]
    pub topics: Vec<Vec<String>>,
    #[serde(default)]
    pub delivery: DeliveryPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub state: SubscriptionState,
    #[serde(default)]
    pub created_at: Millis,
    #[serde(default)]
    pub updated_at: Millis,
}

fn default_protocol() -> String {
    "HTTP".to_string()
}

fn all_topics() -> Vec<Vec<String>> {
    vec![Vec::new()]
}

/// `protocolsettings` for HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolSettings {
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub mode: ContentMode,
    /// Validate the sink with the CloudEvents webhook OPTIONS handshake before delivering.
    #[serde(default)]
    pub handshake: bool,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings {
            method: default_method(),
            headers: BTreeMap::new(),
            mode: ContentMode::default(),
            handshake: false,
        }
    }
}

fn default_method() -> String {
    "POST".to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentMode {
    #[default]
    Structured,
    Binary,
}

/// `sinkcredential` of the Subscriptions API: PLAIN (HTTP basic) or ACCESSTOKEN (bearer),
/// and two of Herald's: APIKEY (a key in a named header) and OAUTH2 (client credentials:
/// a token fetched from `accesstokenurl`, cached until it expires, renewed on a 401).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "credentialtype", rename_all = "UPPERCASE", deny_unknown_fields)]
pub enum SinkCredential {
    Plain {
        identifier: String,
        secret: String,
    },
    Accesstoken {
        accesstoken: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accesstokentype: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accesstokenexpiresutc: Option<String>,
    },
    Apikey {
        apikey: String,
        #[serde(default = "default_api_key_header")]
        headername: String,
    },
    Oauth2 {
        accesstokenurl: String,
        clientid: String,
        clientsecret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
}

fn default_api_key_header() -> String {
    "x-api-key".to_string()
}

impl SinkCredential {
    /// The write-only view: the credential type, without the secrets.
    pub fn redacted(&self) -> Value {
        match self {
            SinkCredential::Plain { .. } => serde_json::json!({"credentialtype": "PLAIN"}),
            SinkCredential::Accesstoken { .. } => {
                serde_json::json!({"credentialtype": "ACCESSTOKEN"})
            }
            SinkCredential::Apikey { .. } => serde_json::json!({"credentialtype": "APIKEY"}),
            SinkCredential::Oauth2 { .. } => serde_json::json!({"credentialtype": "OAUTH2"}),
        }
    }
}

/// How a subscription's deliveries are attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryPolicy {
    pub retry: RetryPolicy,
    #[serde(with = "duration_str")]
    pub timeout: Duration,
    pub max_in_flight: u32,
    /// Disable the subscription after this many consecutive failed attempts (0 = never).
    pub disable_after_failures: u32,
    /// Where exhausted deliveries are sent (an HTTP URL), besides the dead-letter list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<String>,
    /// When a delivery is exhausted, publish an event of this type into the project
    /// carrying the original (Space Cloud's `dlq_<trigger>` events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_event: Option<String>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            max_in_flight: 64,
            disable_after_failures: 20,
            dead_letter_sink: None,
            dead_letter_event: None,
        }
    }
}

/// Retry policy: a fixed schedule (default) or capped exponential backoff, jitter,
/// limits by attempts and age, and how receiver hints are treated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Most attempts in all (default: the schedule's length, or 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// No attempt starts later than this after the event arrived.
    #[serde(with = "opt_duration_str", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    pub jitter: f64,
    /// Longest `Retry-After` honoured on 429/503.
    #[serde(with = "duration_str")]
    pub retry_after_max: Duration,
    /// Statuses that end retries at once.
    pub non_retryable_statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff::default(),
            max_attempts: None,
            max_age: None,
            jitter: 0.1,
            retry_after_max: Duration::from_secs(3600),
            non_retryable_statuses: vec![400, 401, 403, 404, 413],
        }
    }
}

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(match &self.backoff {
            Backoff::Schedule(s) => s.len().max(1) as u32,
            Backoff::Exponential { .. } => 8,
        })
    }

    /// Delay before attempt `n` (1-based) counted from the previous failure.
    pub fn delay_before_attempt(&self, n: u32) -> Duration {
        match &self.backoff {
            Backoff::Schedule(s) => {
                let i = (n.saturating_sub(1) as usize).min(s.len().saturating_sub(1));
                s.get(i).copied().unwrap_or_default()
            }
            Backoff::Exponential {
                initial,
                multiplier,
                max,
            } => {
                if n <= 1 {
                    return Duration::ZERO;
                }
                let factor = multiplier.max(1.0).powi(n.saturating_sub(2).min(64) as i32);
                let secs = (initial.as_secs_f64() * factor).min(max.as_secs_f64());
                Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Backoff {
    /// Delay before each attempt, the first being the initial one (usually `0s`).
    Schedule(#[serde(with = "duration_list")] Vec<Duration>),
    Exponential {
        #[serde(with = "duration_str")]
        initial: Duration,
        multiplier: f64,
        #[serde(with = "duration_str")]
        max: Duration,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        let s = |n| Duration::from_secs(n);
        Backoff::Schedule(vec![
            s(0),
            s(5),
            s(300),
            s(1800),
            s(7200),
            s(18000),
            s(36000),
            s(36000),
        ])
    }
}

/// `active`, or `disabled` with why and since when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SubscriptionState {
    #[default]
    Active,
    Disabled {
        reason: String,
        since: Millis,
    },
}

impl Subscription {
    /// Take over what a definition API (emitters, triggers, system emitter files) does not
    /// carry: from the `previous` copy its state, creation time and signing secret, or,
    /// for a new one, active now with a fresh secret.
    pub fn succeed(&mut self, previous: Option<&Subscription>, now: Millis) {
        match previous {
            Some(p) => {
                self.state = p.state.clone();
                self.created_at = p.created_at;
                self.signing_secret = p.signing_secret.clone();
            }
            None => {
                self.state = SubscriptionState::Active;
                self.created_at = now;
                self.signing_secret = Some(crate::signing::generate_secret());
            }
        }
        self.updated_at = now;
    }

    /// Check what serde cannot: protocol, sink URL, topics, headers, numbers. Filters are
    /// checked separately by the filter compiler.
    pub fn validate(&self) -> Result<(), Problem> {
        let bad = |field: &str, why: String| {
            Problem::bad_request("invalid-subscription", format!("{field}: {why}"))
        };
        // The local sink kinds exist only as emitters, whose definition says how.
        let local = [
            crate::emitter::AUDIT,
            crate::emitter::FILE,
            crate::emitter::CONSOLE,
        ];
        if local.contains(&self.protocol.as_str()) {
            if !self.config.contains_key(crate::emitter::CONFIG_KEY) {
                return Err(bad(
                    "protocol",
                    format!(
                        "'{}' sinks are created through the emitters API",
                        self.protocol
                    ),
                ));
            }
        } else if self.protocol != "HTTP" {
            return Err(bad(
                "protocol",
                format!(
                    "'{}' is not supported; this server delivers with 'HTTP'",
                    self.protocol
                ),
            ));
        } else {
            validate_http_url(&self.sink).map_err(|why| bad("sink", why))?;
        }
        match &self.sinkcredential {
            Some(SinkCredential::Oauth2 { accesstokenurl, .. }) => {
                validate_http_url(accesstokenurl)
                    .map_err(|why| bad("sinkcredential.accesstokenurl", why))?
            }
            Some(SinkCredential::Apikey { headername, .. })
                if headername.is_empty()
                    || !headername
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                return Err(bad(
                    "sinkcredential.headername",
                    format!("'{headername}' is not an HTTP header name"),
                ));
            }
            _ => {}
        }
        if let Some(ty) = &self.delivery.dead_letter_event {
            if ty.trim().is_empty() || ty.len() > 256 {
                return Err(bad(
                    "delivery.dead_letter_event",
                    "an event type of 1-256 bytes".into(),
                ));
            }
        }
        if let Some(dl) = &self.delivery.dead_letter_sink {
            validate_http_url(dl).map_err(|why| bad("delivery.dead_letter_sink", why))?;
        }
        let method = self.protocolsettings.method.to_ascii_uppercase();
        if !["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            return Err(bad(
                "protocolsettings.method",
                format!("'{method}' cannot carry an event; use POST, PUT or PATCH"),
            ));
        }
        for (name, value) in &self.protocolsettings.headers {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid_name || value.bytes().any(|b| b < 0x20 && b != b'\t') {
                return Err(bad(
                    "protocolsettings.headers",
                    format!("header '{name}' is not a valid HTTP header"),
                ));
            }
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("ce-")
                || lower.starts_with("webhook-")
                || lower == "content-type"
                || lower == "content-length"
            {
                return Err(bad(
                    "protocolsettings.headers",
                    format!("header '{name}' is set by Herald and cannot be overridden"),
                ));
            }
        }
        if self.topics.is_empty() {
            return Err(bad(
                "topics",
                "must hold at least one topic prefix; use [[]] for all topics".into(),
            ));
        }
        for prefix in &self.topics {
            for seg in prefix {
                validate_segment(seg).map_err(|p| bad("topics", p.detail))?;
            }
        }
        if self.types.iter().any(String::is_empty) {
            return Err(bad("types", "event types must be non-empty strings".into()));
        }
        if let Some(secret) = &self.signing_secret {
            if crate::signing::secret_key(secret).is_none() {
                return Err(bad(
                    "signing_secret",
                    "must be 'whsec_' followed by base64 key bytes".into(),
                ));
            }
        }
        let d = &self.delivery;
        if d.max_in_flight == 0 || d.max_in_flight > 10_000 {
            return Err(bad(
                "delivery.max_in_flight",
                "must be between 1 and 10000".into(),
            ));
        }
        if d.timeout.is_zero() || d.timeout > Duration::from_secs(300) {
            return Err(bad(
                "delivery.timeout",
                "must be between 1ms and 300s".into(),
            ));
        }
        let r = &d.retry;
        if r.max_attempts == Some(0) || r.max_attempts() > 100 {
            return Err(bad(
                "delivery.retry.max_attempts",
                "must be between 1 and 100".into(),
            ));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return Err(bad(
                "delivery.retry.jitter",
                "must be between 0 and 1".into(),
            ));
        }
        const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);
        let too_long = |d: &Duration| *d > MAX_DELAY;
        let delays: Vec<&Duration> = match &r.backoff {
            Backoff::Schedule(s) => s.iter().collect(),
            Backoff::Exponential { initial, max, .. } => vec![initial, max],
        };
        if delays
            .into_iter()
            .chain(r.max_age.as_ref())
            .chain([&r.retry_after_max])
            .any(too_long)
        {
            return Err(bad(
                "delivery.retry",
                "delays, max_age and retry_after_max must be at most 30 days".into(),
            ));
        }
        match &r.backoff {
            Backoff::Schedule(s) if s.is_empty() => {
                return Err(bad(
                    "delivery.retry.backoff.schedule",
                    "must hold at least one delay".into(),
                ))
            }
            Backoff::Exponential { multiplier, .. } if !(1.0..=100.0).contains(multiplier) => {
                return Err(bad(
                    "delivery.retry.backoff.exponential.multiplier",
                    "must be between 1 and 100".into(),
                ))
            }
            _ => {}
        }
        Ok(())
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, SubscriptionState::Active)
    }

    /// Topic and type/source pre-filter (before filter expressions run).
    pub fn wants(&self, topic: &crate::Topic, event: &crate::Event) -> bool {
        self.topics.iter().any(|p| topic.starts_with(p))
            && (self.types.is_empty() || self.types.contains(&event.ty))
            && self.source.as_ref().is_none_or(|s| *s == event.source)
    }
}

fn validate_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("'{url}' is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{url}' is not a valid URL"));
    }
    Ok(())
}

/// Durations as human strings ("500ms", "5s", "2h") in JSON and TOML.
pub mod duration_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration '{s}': {e} (write e.g. \"500ms\", \"5s\", \"2h\")"
            ))
        })
    }
}

pub mod opt_duration_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_str::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                humantime::parse_duration(&s)
                    .map_err(|e| serde::de::Error::custom(format!("invalid duration '{s}': {e}")))
            })
            .transpose()
    }
}

mod duration_list {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(d.iter().map(|d| humantime::format_duration(*d).to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| {
                humantime::parse_duration(&s)
                    .map_err(|e| serde::de::Error::custom(format!("invalid duration '{s}': {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Subscription {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn minimal_subscription_gets_defaults() {
        let s = parse(json!({"sink": "http://localhost:9/hook"}));
        s.validate().unwrap();
        assert_eq!(s.topics, vec![Vec::<String>::new()]);
        assert_eq!(s.delivery.max_in_flight, 64);
        assert_eq!(s.delivery.timeout, Duration::from_secs(30));
        assert_eq!(s.delivery.retry.max_attempts(), 8);
        assert_eq!(s.protocolsettings.mode, ContentMode::Structured);
    }

    #[test]
    fn custom_policy_round_trips() {
        let v = json!({"sink": "https://x.example/h", "delivery": {"timeout": "2s",
            "retry": {"backoff": {"schedule": ["0s", "100ms"]}, "max_age": "1h"}},
            "sinkcredential": {"credentialtype": "PLAIN", "identifier": "u", "secret": "p"}});
        let s = parse(v);
        s.validate().unwrap();
        assert_eq!(s.delivery.retry.max_attempts(), 2);
        let back: Subscription = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn refuses_bad_fields_naming_them() {
        for (v, field) in [
            (json!({"sink": "ftp://x"}), "sink"),
            (json!({"sink": "http://x", "protocol": "KAFKA"}), "protocol"),
            (json!({"sink": "http://x", "topics": [["a b"]]}), "topics"),
            (
                json!({"sink": "http://x", "delivery": {"max_in_flight": 0}}),
                "delivery.max_in_flight",
            ),
            (
                json!({"sink": "http://x", "protocolsettings": {"headers": {"ce-id": "x"}}}),
                "protocolsettings.headers",
            ),
            (
                json!({"sink": "http://x", "signing_secret": "abc"}),
                "signing_secret",
            ),
        ] {
            let err = parse(v).validate().unwrap_err();
            assert!(err.detail.starts_with(field), "{}", err.detail);
        }
        assert!(
            serde_json::from_value::<Subscription>(json!({"sink": "http://x", "bogus": 1}))
                .is_err()
        );
    }
}

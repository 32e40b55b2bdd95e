//! Server configuration: defaults that run with no file, overridable by `herald.toml`,
//! `HERALD_*` environment variables and flags (the binary merges those).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_core::subscription::duration_str;
use herald_core::Limits;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// A repeated (source, id) within this window is acknowledged and dropped.
    #[serde(with = "duration_str")]
    pub dedup_window: Duration,
    pub delivery: DeliveryConfig,
    pub retention: RetentionConfig,
    pub webhook: WebhookIngestConfig,
    pub queue: QueueConfig,
    pub triggers: TriggersConfig,
    /// Callers that authenticate with a bearer token (see auth.rs).
    pub users: Vec<crate::auth::UserConfig>,
    pub emitters: EmittersConfig,
    /// The system emitters folder (default `<data_dir>/system-emitters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_emitters: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8765".parse().expect("valid address"),
            data_dir: PathBuf::from("./herald-data"),
            limits: Limits::default(),
            dedup_window: Duration::from_secs(24 * 3600),
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            webhook: WebhookIngestConfig::default(),
            queue: QueueConfig::default(),
            triggers: TriggersConfig::default(),
            users: Vec::new(),
            emitters: EmittersConfig::default(),
            system_emitters: None,
        }
    }
}

/// Event triggers in Space Cloud's shape (`/v1/config/projects/{project}/eventing/triggers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriggersConfig {
    /// The fixed wait between a trigger's attempts (Space Cloud waits 5 s).
    #[serde(with = "duration_str")]
    pub retry_delay: Duration,
}

impl Default for TriggersConfig {
    fn default() -> Self {
        TriggersConfig {
            retry_delay: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// What serde cannot check: user names and tokens, the emitters' delivery policy.
    pub fn check(&self) -> Result<(), String> {
        let mut probe: herald_core::subscription::Subscription =
            serde_json::from_value(serde_json::json!({"sink": "http://emitters.invalid/"}))
                .map_err(|e| e.to_string())?;
        probe.delivery = self.emitters.delivery.clone();
        probe
            .validate()
            .map_err(|p| format!("emitters.{}", p.detail))?;
        let mut names = std::collections::HashSet::new();
        let mut tokens = std::collections::HashSet::new();
        for u in &self.users {
            if u.name.trim().is_empty() || !names.insert(&u.name) {
                return Err(format!("users: the name '{}' is empty or repeated", u.name));
            }
            let digest = match (&u.token, &u.token_sha256) {
                (Some(token), None) if token.len() >= 16 => crate::auth::token_digest(token),
                (None, Some(hash))
                    if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    hash.to_ascii_lowercase()
                }
                _ => {
                    return Err(format!(
                        "users: '{}' needs a token of at least 16 characters or a token_sha256 of 64 hex digits, not both",
                        u.name
                    ))
                }
            };
            if !tokens.insert(digest) {
                return Err(format!("users: the token of '{}' is repeated", u.name));
            }
        }
        Ok(())
    }
}

/// Emitters (the Trisotech-shaped API and system emitters).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmittersConfig {
    /// The delivery policy of every emitter (their definitions have none): retries,
    /// timeout, in-flight cap, and after how many consecutive failures one is disabled.
    pub delivery: herald_core::subscription::DeliveryPolicy,
}

/// The scheduling queue API (`POST /v1/api/{project}/eventing/queue`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a synchronous request waits for the webhook's answer.
    #[serde(with = "duration_str")]
    pub sync_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            sync_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries leased across all subscriptions (sending, or waiting for a request slot).
    pub max_concurrency: usize,
    /// Longest idle sleep of the dispatcher.
    #[serde(with = "duration_str")]
    pub poll_interval: Duration,
    /// `WebHook-Request-Origin` sent in sink handshakes.
    pub origin: String,
    #[serde(with = "duration_str")]
    pub handshake_retry: Duration,
    /// PEM bundle of extra root certificates trusted for `https` sinks and workflow
    /// actions, beside the platform's (for receivers behind a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_concurrency: 512,
            poll_interval: Duration::from_secs(1),
            origin: "herald.localhost".into(),
            handshake_retry: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Attempts kept per subscription (newest first).
    pub attempts_per_subscription: usize,
    /// Events no delivery needs any more are dropped after this long.
    #[serde(with = "duration_str")]
    pub events: Duration,
    /// Finished workflow instances (completed, failed, cancelled), with their history,
    /// are dropped this long after they finished.
    #[serde(with = "duration_str")]
    pub instances: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            attempts_per_subscription: 1000,
            events: Duration::from_secs(7 * 24 * 3600),
            instances: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// How the ingest endpoints answer the CloudEvents webhook validation handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookIngestConfig {
    /// Origins allowed to send; `*` allows any (the request origin is echoed back).
    pub allowed_origins: Vec<String>,
    /// `WebHook-Allowed-Rate` (requests per minute, or `*`).
    pub allowed_rate: String,
}

impl Default for WebhookIngestConfig {
    fn default() -> Self {
        WebhookIngestConfig {
            allowed_origins: vec!["*".into()],
            allowed_rate: "*".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{token_digest, UserConfig};

    fn user(name: &str, token: Option<&str>, hash: Option<&str>) -> UserConfig {
        UserConfig {
            name: name.into(),
            token: token.map(str::to_string),
            token_sha256: hash.map(str::to_string),
            admin: false,
            service: false,
        }
    }

    fn check(users: Vec<UserConfig>) -> Result<(), String> {
        Config {
            users,
            ..Config::default()
        }
        .check()
    }

    #[test]
    fn users_need_one_long_token_or_its_digest_and_no_repeats() {
        let digest = token_digest("token-cccccccccccc");
        let d = Some(digest.as_str());
        assert!(check(vec![
            user("a", Some("token-aaaaaaaaaaaa"), None),
            user("c", None, d)
        ])
        .is_ok());
        for bad in [
            vec![user("a", Some("short"), None)],
            vec![user("a", None, None)],
            vec![user("a", None, Some("abc"))],
            vec![user("a", Some("token-cccccccccccc"), d)],
            // The same token twice, once as its digest.
            vec![
                user("a", Some("token-cccccccccccc"), None),
                user("c", None, d),
            ],
        ] {
            assert!(check(bad).is_err());
        }
    }
}

//! OAuth2 client credentials for a sink: the token is fetched from the credential's
//! `accesstokenurl`, cached until shortly before it expires, and dropped when the sink
//! answers 401 so the next request fetches a new one.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde::Deserialize;
use tokio::sync::Mutex;

/// One subscription's cached token (kept with its runtime state, so edits keep it).
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<Option<(String, Instant)>>);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenCache {
    /// A valid token: the cached one, or a new one from the token endpoint.
    pub async fn token(
        &self,
        client: &Client,
        url: &str,
        id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> Result<String, String> {
        let mut cached = self.0.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let resp = client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("token request to {url} failed: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("token endpoint {url} answered {status}"));
        }
        let body: TokenResponse = resp
            .json()
            .await
            .map_err(|e| format!("token endpoint {url} answered no token: {e}"))?;
        // Renew a little before the end, so a token never expires in flight.
        let life = Duration::from_secs(body.expires_in.unwrap_or(300))
            .saturating_sub(Duration::from_secs(10));
        *cached = Some((body.access_token.clone(), Instant::now() + life));
        Ok(body.access_token)
    }

    pub async fn invalidate(&self) {
        *self.0.lock().await = None;
    }
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

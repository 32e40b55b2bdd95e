//! Who is calling. People and services authenticate with `Authorization: Bearer <token>`
//! against the `[[users]]` of the configuration; requests without the header are
//! anonymous. Ingest stamps events sent by a person with the `user` and `ip` extension
//! attributes, and emitters record their owner from here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use herald_core::{Event, ExtValue, Problem};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// One caller Herald knows, from `[[users]]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The bearer token (at least 16 characters), or instead:
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The SHA-256 of the token, in hex, so the file need not hold the token itself
    /// (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Admins may read and change every emitter, not only their own.
    #[serde(default)]
    pub admin: bool,
    /// A service account rather than a person: its events are not stamped with `user`.
    #[serde(default)]
    pub service: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub admin: bool,
    pub person: bool,
}

/// The caller of a request: who (when authenticated) and from where.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub identity: Option<Identity>,
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// Stamp events sent by a person with `user` and `ip`; Herald's values replace any
    /// the client put there, so they can be trusted on authenticated requests.
    pub fn stamp(&self, events: &mut [Event]) {
        let Some(who) = self.identity.as_ref().filter(|i| i.person) else {
            // Only Herald says who sent an event: what a client claims is dropped.
            for e in events {
                e.extensions.remove("user");
                e.extensions.remove("ip");
            }
            return;
        };
        for e in events {
            e.extensions
                .insert("user".into(), ExtValue::String(who.name.clone()));
            match self.ip {
                Some(ip) => {
                    e.extensions
                        .insert("ip".into(), ExtValue::String(ip.to_string()));
                }
                None => {
                    e.extensions.remove("ip");
                }
            }
        }
    }

    /// The identity, or 401 for an anonymous request.
    pub fn require(&self) -> Result<&Identity, ApiError> {
        self.identity.as_ref().ok_or_else(|| {
            ApiError(Problem::new(
                401,
                "unauthenticated",
                "Unauthenticated",
                "this endpoint needs Authorization: Bearer <token> of a configured user",
            ))
        })
    }
}

/// The SHA-256 of a token, in lowercase hex (as `token_sha256` holds it).
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The user whose token this is; every user is compared, in constant time.
pub fn user_for_token<'a>(users: &'a [UserConfig], token: &str) -> Option<&'a UserConfig> {
    let digest = token_digest(token);
    let mut found = None;
    for u in users {
        let matches = match (&u.token, &u.token_sha256) {
            (Some(plain), _) => plain.as_bytes().ct_eq(token.as_bytes()),
            (None, Some(hash)) => hash
                .to_ascii_lowercase()
                .as_bytes()
                .ct_eq(digest.as_bytes()),
            (None, None) => continue,
        };
        if bool::from(matches) {
            found = Some(u);
        }
    }
    found
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        let Some(header) = parts.headers.get("authorization") else {
            return Ok(Caller { identity: None, ip });
        };
        let unauthorized = |detail: &str| {
            ApiError(Problem::new(
                401,
                "unauthenticated",
                "Unauthenticated",
                detail,
            ))
        };
        // Other schemes (Basic from a webhook provider, say) are not ours: anonymous.
        let value = header.to_str().unwrap_or("").trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Caller { identity: None, ip });
        }
        let user = user_for_token(&app.config.users, token.trim())
            .ok_or_else(|| unauthorized("the bearer token is not one of a configured user"))?;
        Ok(Caller {
            identity: Some(Identity {
                name: user.name.clone(),
                admin: user.admin,
                person: !user.service,
            }),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_events_sent_by_a_person() {
        let person = Caller {
            identity: Some(Identity {
                name: "alice".into(),
                admin: false,
                person: true,
            }),
            ip: Some("10.0.0.7".parse().unwrap()),
        };
        let mut events = vec![Event::new("1", "/s", "t")];
        events[0]
            .extensions
            .insert("user".into(), ExtValue::String("mallory".into()));
        person.stamp(&mut events);
        assert_eq!(
            events[0].extensions.get("user"),
            Some(&ExtValue::String("alice".into()))
        );
        assert_eq!(
            events[0].extensions.get("ip"),
            Some(&ExtValue::String("10.0.0.7".into()))
        );

        let mut service = person.clone();
        service.identity.as_mut().unwrap().person = false;
        let mut events = vec![Event::new("1", "/s", "t")];
        events[0]
            .extensions
            .insert("user".into(), ExtValue::String("mallory".into()));
        service.stamp(&mut events);
        assert!(events[0].extensions.is_empty(), "a claimed user is dropped");
        Caller::default().stamp(&mut events);
        assert!(events[0].extensions.is_empty());
    }

    #[test]
    fn finds_the_user_of_a_token_or_of_its_digest() {
        let user = |name: &str, token: Option<&str>, hash: Option<String>| UserConfig {
            name: name.into(),
            token: token.map(str::to_string),
            token_sha256: hash,
            admin: false,
            service: false,
        };
        let users = vec![
            user("a", Some("token-aaaaaaaaaaaa"), None),
            user("b", Some("token-bbbbbbbbbbbb"), None),
            user(
                "c",
                None,
                Some(token_digest("token-cccccccccccc").to_uppercase()),
            ),
        ];
        assert_eq!(
            user_for_token(&users, "token-bbbbbbbbbbbb").unwrap().name,
            "b"
        );
        assert_eq!(
            user_for_token(&users, "token-cccccccccccc").unwrap().name,
            "c"
        );
        assert!(user_for_token(&users, "token-bbbbbbbbbbb").is_none());
        assert!(user_for_token(&users, "").is_none());
        // The known answer of SHA-256("abc").
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

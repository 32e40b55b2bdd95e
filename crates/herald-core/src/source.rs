//! Signed sources: a registered `ce-source` whose requests must carry an HMAC-SHA256 of
//! the exact raw body under one of its secrets (several at once, for rotation), in a
//! named header, base64 (default) or hex. Checked in constant time.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::signing::{constant_time_eq, hmac_sha256};
use crate::Problem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSource {
    /// The `ce-source` value this registration covers.
    pub source: String,
    /// Write-only: never shown by the API.
    pub secrets: Vec<String>,
    #[serde(default)]
    pub signature: SignatureSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignatureSpec {
    pub header: String,
    pub encoding: SignatureEncoding,
}

impl Default for SignatureSpec {
    fn default() -> Self {
        SignatureSpec {
            header: "x-emporix-hmac".into(),
            encoding: SignatureEncoding::Base64,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Base64,
    Hex,
}

pub const MAX_SECRETS: usize = 10;

impl SignedSource {
    pub fn validate(&self) -> Result<(), Problem> {
        let bad = |field: &str, why: &str| {
            Problem::bad_request("invalid-source", format!("{field}: {why}"))
        };
        if self.source.is_empty() || self.source.chars().any(char::is_control) {
            return Err(bad("source", "must be a non-empty ce-source value"));
        }
        if self.secrets.is_empty() || self.secrets.len() > MAX_SECRETS {
            return Err(bad("secrets", "must hold between 1 and 10 secrets"));
        }
        if self.secrets.iter().any(|s| s.len() < 8) {
            return Err(bad(
                "secrets",
                "every secret must be at least 8 characters long",
            ));
        }
        let h = &self.signature.header;
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("signature.header", "must be an HTTP header name"));
        }
        Ok(())
    }

    /// Does `presented` (the header value) sign `body` under any of the secrets?
    pub fn verify(&self, body: &[u8], presented: &[u8]) -> bool {
        let presented = presented.trim_ascii();
        self.secrets.iter().fold(false, |ok, secret| {
            let mac = hmac_sha256(secret.as_bytes(), &[body]);
            let expected = match self.signature.encoding {
                SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
                SignatureEncoding::Hex => mac.iter().map(|b| format!("{b:02x}")).collect(),
            };
            let matches = match self.signature.encoding {
                SignatureEncoding::Base64 => constant_time_eq(expected.as_bytes(), presented),
                SignatureEncoding::Hex => {
                    constant_time_eq(expected.as_bytes(), &presented.to_ascii_lowercase())
                }
            };
            // Every secret is tried, so timing does not tell which one matched.
            ok | matches
        })
    }

    /// The read view: everything but the secrets, and how many there are.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({"source": self.source, "signature": self.signature, "secret_count": self.secrets.len()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(encoding: SignatureEncoding) -> SignedSource {
        SignedSource {
            source: "src_w34a44rft567".into(),
            secrets: vec!["old-secret-1".into(), "new-secret-2".into()],
            signature: SignatureSpec {
                header: "x-emporix-hmac".into(),
                encoding,
            },
        }
    }

    #[test]
    fn verifies_under_any_secret() {
        let body = br#"{"orderId":"1"}"#;
        let mac = hmac_sha256(b"new-secret-2", &[body]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(mac);
        let s = source(SignatureEncoding::Base64);
        assert!(s.verify(body, b64.as_bytes()));
        assert!(
            !s.verify(b"{\"orderId\":\"2\"}", b64.as_bytes()),
            "another body"
        );
        assert!(!s.verify(body, b"bm9wZQ=="));
        let hex: String = mac.iter().map(|b| format!("{b:02X}")).collect();
        assert!(source(SignatureEncoding::Hex).verify(body, hex.as_bytes()));
        assert!(!source(SignatureEncoding::Hex).verify(body, b64.as_bytes()));
    }

    #[test]
    fn refuses_bad_registrations() {
        let mut s = source(SignatureEncoding::Base64);
        s.secrets.clear();
        assert!(s.validate().unwrap_err().detail.starts_with("secrets"));
        let mut s = source(SignatureEncoding::Base64);
        s.signature.header = "x bad".into();
        assert!(s
            .validate()
            .unwrap_err()
            .detail
            .starts_with("signature.header"));
        let v: Result<SignedSource, _> = serde_json::from_value(
            serde_json::json!({"source": "s", "secrets": ["12345678"], "signature": {"encoding": "rot13"}}),
        );
        assert!(v.is_err());
        let v: SignedSource =
            serde_json::from_value(serde_json::json!({"source": "s", "secrets": ["12345678"]}))
                .unwrap();
        assert_eq!(v.signature, SignatureSpec::default());
    }
}

//! RFC 9457 problem details: the one error shape of every Herald API. Each problem has a
//! stable `type` (a URN under `urn:herald:problem:`), an HTTP status, and a detail that
//! says what to fix.

use serde::Serialize;

/// An API error rendered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    /// `slug` is the stable, documented part of the type (`urn:herald:problem:<slug>`).
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:herald:problem:{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(400, slug, "Bad request", detail)
    }

    pub fn invalid_event(detail: impl Into<String>) -> Self {
        Self::new(400, "invalid-event", "Invalid CloudEvent", detail)
    }

    pub fn not_found(what: &str, detail: impl Into<String>) -> Self {
        Self::new(404, &format!("{what}-not-found"), "Not found", detail)
    }

    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(409, slug, "Conflict", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(413, "payload-too-large", "Payload too large", detail)
    }

    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        Self::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "internal", "Internal error", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, "unavailable", "Service unavailable", detail)
    }

    /// The stable slug of this problem's type.
    pub fn slug(&self) -> &str {
        self.kind
            .strip_prefix("urn:herald:problem:")
            .unwrap_or(&self.kind)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.status, self.detail)
    }
}

impl std::error::Error for Problem {}

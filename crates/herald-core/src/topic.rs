//! Topics: hierarchical paths such as `service/production/finance`. Events are published
//! on one topic; subscriptions name topic prefixes (`[["service","production"]]`, `[[]]`
//! for everything).

use crate::Problem;

pub const MAX_TOPIC_SEGMENTS: usize = 16;
pub const MAX_SEGMENT_LEN: usize = 128;

/// A validated topic path; the root topic has no segments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Vec<String>);

impl Topic {
    pub fn root() -> Self {
        Topic(Vec::new())
    }

    /// Parse a `/`-separated path (leading/trailing slashes ignored; empty = root).
    pub fn parse(path: &str) -> Result<Topic, Problem> {
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Topic::root());
        }
        Topic::from_segments(trimmed.split('/').map(str::to_string).collect())
    }

    pub fn from_segments(segments: Vec<String>) -> Result<Topic, Problem> {
        if segments.len() > MAX_TOPIC_SEGMENTS {
            return Err(Problem::bad_request(
                "invalid-topic",
                format!("a topic has at most {MAX_TOPIC_SEGMENTS} segments"),
            ));
        }
        for s in &segments {
            validate_segment(s)?;
        }
        Ok(Topic(segments))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// True when `prefix` is a prefix of this topic (segment-wise).
    pub fn starts_with(&self, prefix: &[String]) -> bool {
        prefix.len() <= self.0.len() && self.0.iter().zip(prefix).all(|(a, b)| a == b)
    }

    /// The `/`-joined form used in storage and APIs.
    pub fn as_path(&self) -> String {
        self.0.join("/")
    }
}

/// Segments are 1-128 characters of letters, digits and `-_.~` (URL-safe, so a topic can
/// be written in a request path as it is).
pub fn validate_segment(s: &str) -> Result<(), Problem> {
    let ok = !s.is_empty()
        && s.len() <= MAX_SEGMENT_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-topic",
            format!("topic segment '{s}' is invalid: use 1-{MAX_SEGMENT_LEN} letters, digits, '-', '_', '.' or '~'"),
        ))
    }
}

/// Percent-encode `s` for one URL path segment: everything but letters, digits and
/// `-_.~` (the characters a topic segment may hold) becomes `%XX`.
pub fn encode_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_prefixes() {
        let t = Topic::parse("service/production/finance").unwrap();
        assert!(t.starts_with(&[]));
        assert!(t.starts_with(&["service".into(), "production".into()]));
        assert!(!t.starts_with(&["service".into(), "staging".into()]));
        assert!(!Topic::parse("service")
            .unwrap()
            .starts_with(&["service".into(), "x".into()]));
        assert_eq!(Topic::parse("/").unwrap(), Topic::root());
    }

    #[test]
    fn refuses_bad_segments() {
        assert!(Topic::parse("a//b").is_err());
        assert!(Topic::parse("a/b c").is_err());
        assert!(Topic::parse(&"a/".repeat(20)).is_err());
    }
}

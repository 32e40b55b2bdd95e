//! Input limits enforced at ingest. Each is configurable (`[limits]` in herald.toml) and
//! documented in docs/limits.md; exceeding one is a 4xx problem, never a truncation.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most events in one batch-mode request.
    pub max_batch_events: usize,
    /// Longest value of any context attribute (id, source, type, extensions...) in bytes.
    pub max_attribute_bytes: usize,
    /// Longest extension attribute name (the spec recommends 20; we accept up to this).
    pub max_extension_name_len: usize,
    /// Most extension attributes on one event.
    pub max_extensions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_batch_events: 1000,
            max_attribute_bytes: 4096,
            max_extension_name_len: 64,
            max_extensions: 64,
        }
    }
}

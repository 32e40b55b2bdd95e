//! The event model and the pure logic every other Herald crate builds on: CloudEvents
//! (spec 1.0, JSON format, HTTP binding), topics, subscriptions, retry arithmetic,
//! Standard Webhooks signing and problem+json errors. Nothing here does I/O.

pub mod binding;
pub mod emitter;
pub mod event;
pub mod limits;
pub mod problem;
pub mod queue;
pub mod retry;
pub mod signing;
pub mod source;
pub mod subscription;
pub mod topic;
pub mod trigger;
pub mod workflow;

pub use event::{Data, Event, ExtValue};
pub use limits::Limits;
pub use problem::Problem;
pub use topic::Topic;

/// Milliseconds since the Unix epoch; the one clock unit stored and compared everywhere.
pub type Millis = i64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` as an RFC 3339 UTC timestamp with milliseconds (a CloudEvents `time`).
pub fn rfc3339_millis(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

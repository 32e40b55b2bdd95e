//! Sinks: where a subscription hands events over. Every sink kind implements [`Sink`]
//! (one attempt, one [`AttemptReport`]); retries, dead letters and disabling are the
//! engine's job, so a sink stays a small adapter over its protocol. One folder per kind.

pub mod console;
pub mod file;
pub mod render;
pub mod webhook;

use futures::future::BoxFuture;
use herald_core::retry::Outcome;
use herald_core::Event;

/// One event to hand over, with its stable message id (the same on every retry).
#[derive(Debug, Clone)]
pub struct Outbound {
    pub event: Event,
    pub msg_id: String,
    /// Unix seconds, signed into Standard Webhooks signatures.
    pub timestamp: i64,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The receiver's answer, truncated to [`MAX_RESPONSE_BODY`] bytes.
    pub response_body: Option<String>,
}

impl AttemptReport {
    /// No answer at all (refused connection, timeout, a request that could not be built):
    /// worth retrying.
    pub fn failed(error: String, started: std::time::Instant) -> AttemptReport {
        AttemptReport::local(Err(error), started)
    }

    /// The report of a sink without a protocol status (file, console, audit log): done,
    /// or an error worth retrying.
    pub fn local(result: Result<(), String>, started: std::time::Instant) -> AttemptReport {
        let failed = result.is_err();
        AttemptReport {
            status: None,
            outcome: if failed {
                Outcome::Retryable { retry_after: None }
            } else {
                Outcome::Delivered
            },
            latency_ms: started.elapsed().as_millis() as i64,
            error: result.err(),
            response_body: None,
        }
    }
}

/// Longest response body kept in the attempts log.
pub const MAX_RESPONSE_BODY: usize = 4096;

pub trait Sink: Send + Sync {
    /// Make one attempt. Never panics; every failure is a report.
    fn deliver<'a>(&'a self, out: &'a Outbound) -> BoxFuture<'a, AttemptReport>;
}

//! The records that cross the [`crate::Store`] boundary.

use herald_core::subscription::Subscription;
use serde::Serialize;

/// Events of one ingest request (or one group of requests from the same caller).
#[derive(Debug, Clone)]
pub struct AppendBatch {
    pub project: String,
    pub dedup_window_ms: i64,
    pub events: Vec<NewEvent>,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub topic: String,
    pub received_at: i64,
    /// The event in the JSON event format.
    pub body: Vec<u8>,
    /// Subscriptions (ids within the project) the router matched.
    pub deliveries: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum AppendOutcome {
    Stored { seq: i64 },
    Duplicate { seq: i64 },
}

/// A subscription with what only the server tracks about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub project: String,
    pub sub: Subscription,
}

/// Where a delivery goes: the subscription's sink or, once dead, its dead-letter sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Sink,
    DeadLetterSink,
}

impl Target {
    pub fn code(self) -> i64 {
        match self {
            Target::Sink => 0,
            Target::DeadLetterSink => 1,
        }
    }

    pub fn from_code(c: i64) -> Target {
        if c == 1 {
            Target::DeadLetterSink
        } else {
            Target::Sink
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: i64,
    pub project: String,
    pub subscription_id: String,
    pub seq: i64,
    pub target: Target,
    /// Attempts already made.
    pub attempts: u32,
    pub created_at: i64,
    pub body: Vec<u8>,
}

/// One attempt to hand an event over, as kept in the attempts log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub id: i64,
    pub delivery_id: i64,
    pub seq: i64,
    pub event_id: String,
    pub target: Target,
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// What happens to a leased delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Delivered,
    RetryAt(i64),
    /// Exhausted: keep it as a dead letter; `dead_letter_sink` queues a copy there.
    Dead {
        dead_letter_sink: bool,
    },
    /// Not attempted (e.g. subscription disabled or handshake pending): due again at.
    Release(i64),
}

#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    pub delivery_id: i64,
    pub project: String,
    pub subscription_id: String,
    pub attempt: Option<Attempt>,
    pub next: Next,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub delivery_id: i64,
    pub seq: i64,
    pub attempts: u32,
    pub created_at: i64,
    pub dead_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub event: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    pub pending: u64,
    pub dead: u64,
}

/// Lease up to `limit` due deliveries of one subscription.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub project: String,
    pub subscription_id: String,
    pub limit: usize,
}

/// The answer to one [`ClaimRequest`].
#[derive(Debug, Clone)]
pub struct Claimed {
    pub deliveries: Vec<ClaimedDelivery>,
    /// When the subscription next has an unleased delivery due, if it has any.
    pub next_due: Option<i64>,
}

/// An event accepted now and appended to the log at `due_at` (queue API scheduling).
#[derive(Debug, Clone)]
pub struct NewScheduled {
    pub project: String,
    /// The topic path the event will be appended under.
    pub topic: String,
    pub due_at: i64,
    /// The event in the JSON event format.
    pub body: Vec<u8>,
}

/// A scheduled event, as kept until it is due.
#[derive(Debug, Clone)]
pub struct ScheduledEvent {
    pub id: i64,
    pub project: String,
    pub topic: String,
    pub due_at: i64,
    pub body: Vec<u8>,
}

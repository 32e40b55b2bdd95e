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
    /// Subscriptions whose delivery is held until the given time: one a synchronous
    /// request is delivering to right now. Its outcome settles the held delivery
    /// (`Store::settle_held`); should the process die first, it is delivered when due.
    pub held: Vec<(String, i64)>,
    /// What the event does to workflows, decided at ingest like its deliveries.
    pub flow: FlowRouting,
}

/// The workflow side of routing: instances an event starts, or the instance it wakes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowRouting {
    pub starts: Vec<NewInstance>,
    /// The instance (`instanceid`) this event is addressed to. It is kept for that
    /// instance in the same transaction; an unknown or finished instance, or a type its
    /// workflow never awaits, refuses the whole append ([`crate::StoreError::Wake`]),
    /// unless the event starts instances: then a wake it cannot make, or one addressed to
    /// an instance of a workflow it starts, is ignored.
    pub wake: Option<String>,
}

/// An instance created by a start event, with the context it starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    pub id: String,
    pub workflow: String,
    pub version: i64,
    /// JSON object.
    pub context: String,
    /// How many workflow emits led to the start event (0: it came from outside).
    pub depth: i64,
}

/// Why a wake event was refused; nothing of its append is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeRefusal {
    UnknownInstance,
    /// Completed or cancelled (a failed instance still takes wakes: it may be retried).
    Finished(InstanceState),
    /// The instance's workflow (version) has no wait step for this type.
    NotAwaited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Created by its start event, not yet announced.
    Starting,
    /// Has a step to run (now, or at `due_at` for an action retry).
    Running,
    /// Sleeping in a `wait` or `delay` step.
    Waiting,
    Completed,
    Failed,
    Cancelled,
}

impl InstanceState {
    pub const ALL: [InstanceState; 6] = [
        InstanceState::Starting,
        InstanceState::Running,
        InstanceState::Waiting,
        InstanceState::Completed,
        InstanceState::Failed,
        InstanceState::Cancelled,
    ];

    /// Whether an event may still wake it (not completed, not cancelled).
    pub fn takes_wakes(self) -> bool {
        !matches!(self, InstanceState::Completed | InstanceState::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Waiting => "waiting",
            InstanceState::Completed => "completed",
            InstanceState::Failed => "failed",
            InstanceState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<InstanceState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No step will run again (a failed instance may be retried by hand).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            InstanceState::Completed | InstanceState::Failed | InstanceState::Cancelled
        )
    }
}

/// One version of a workflow definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowVersion {
    pub project: String,
    pub id: String,
    pub version: i64,
    /// The definition as JSON.
    pub body: String,
    pub created_at: i64,
}

/// How `save_workflow` treats an existing workflow of the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Only when none exists (else nothing is written).
    Create,
    /// Only when one exists.
    Replace,
    Upsert,
}

/// A workflow instance as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub project: String,
    pub id: String,
    pub workflow: String,
    pub version: i64,
    pub state: InstanceState,
    pub step: i64,
    /// Attempts made at the current step (actions).
    pub attempt: i64,
    /// JSON object: event payloads by event type, action outputs by step name.
    pub context: String,
    /// The event types the current `wait` step awaits.
    pub waiting_for: Vec<String>,
    /// When the current `delay` or `wait` step ends.
    pub deadline: Option<i64>,
    pub due_at: Option<i64>,
    pub rev: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub error: Option<String>,
    /// See [`NewInstance::depth`].
    pub depth: i64,
}

/// A wake event kept for an instance until a `wait` step consumes it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptEvent {
    pub id: i64,
    pub ty: String,
    pub seq: i64,
    pub received_at: i64,
    /// The event in the JSON event format.
    pub body: Vec<u8>,
}

/// A line of an instance's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// One change of an instance, applied only if the instance is still at `expect_rev` and
/// every kept event in `consume` is still there; with it, the events the step publishes
/// (routed like ingest) and lines of history, all in one transaction.
#[derive(Debug, Clone)]
pub struct InstanceChange {
    /// The instance as the change leaves it (`updated_at` is the time of the change;
    /// `rev`, `created_at` and the rest of its identity are the store's to keep).
    pub next: InstanceRow,
    pub expect_rev: i64,
    /// Kept events consumed (or dropped) by this change.
    pub consume: Vec<i64>,
    pub history: Vec<HistoryEntry>,
    pub publish: Vec<NewEvent>,
    pub dedup_window_ms: i64,
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

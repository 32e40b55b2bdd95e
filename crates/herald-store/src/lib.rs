//! Durable state behind one trait, [`Store`]: the event log, dedup keys, subscriptions,
//! the delivery backlog (pending, leased, dead), and the attempts log. `sqlite` is the
//! embedded default; a PostgreSQL implementation plugs in behind the same trait.

pub mod model;
pub mod sqlite;

use async_trait::async_trait;

pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Backend(String),
    #[error("the store is shutting down")]
    Closed,
    /// Event `index` of an append names an instance it may not wake.
    #[error("event {index} cannot wake instance '{instance}': {refusal:?}")]
    Wake {
        index: usize,
        instance: String,
        refusal: WakeRefusal,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything Herald keeps. Each write method is durable when its future resolves
/// (implementations share commits between concurrent callers: group commit).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create a project if it does not exist; true when it was created now.
    async fn ensure_project(&self, name: &str) -> Result<bool>;
    async fn list_projects(&self) -> Result<Vec<String>>;

    /// Append events and their routed deliveries in one transaction. Events whose
    /// (project, source, id) was seen within `dedup_window_ms` are not stored again.
    /// All events of one call commit together or not at all.
    async fn append(&self, batch: AppendBatch) -> Result<Vec<AppendOutcome>>;

    /// Insert or replace a subscription.
    async fn put_subscription(&self, project: &str, sub: &StoredSubscription) -> Result<()>;
    /// Insert a subscription whose id is new; false (and nothing written) when the id is
    /// taken, so two creates with one id cannot overwrite each other.
    async fn insert_subscription(&self, project: &str, sub: &StoredSubscription) -> Result<bool>;
    /// Replace an existing subscription; false (and nothing written) when it is gone, so
    /// an edit racing a delete cannot bring the subscription back.
    async fn update_subscription(&self, project: &str, sub: &StoredSubscription) -> Result<bool>;
    /// Delete a subscription with its backlog, dead letters, attempts and audit log.
    async fn delete_subscription(&self, project: &str, id: &str) -> Result<bool>;
    async fn load_subscriptions(&self) -> Result<Vec<StoredSubscription>>;

    /// Register or replace a signed source of a project.
    async fn put_source(
        &self,
        project: &str,
        source: &herald_core::source::SignedSource,
    ) -> Result<()>;
    async fn delete_source(&self, project: &str, source: &str) -> Result<bool>;
    async fn load_sources(&self) -> Result<Vec<(String, herald_core::source::SignedSource)>>;

    /// Lease up to `limit` due deliveries of active subscriptions, oldest due first,
    /// skipping the subscriptions named in `skip` (`project/id`, those at their in-flight cap).
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Lease, per subscription, up to its `limit` due deliveries (oldest due first), all in
    /// one step. Each answer also says when that subscription next has an unleased
    /// delivery due, so the dispatcher knows when to look again (a leased delivery's
    /// outcome, recorded by `complete`, says when it is due again).
    async fn claim_for(
        &self,
        requests: Vec<ClaimRequest>,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<Claimed>>;
    /// Every subscription with pending deliveries, with its earliest due time.
    async fn pending_subscriptions(&self) -> Result<Vec<(String, String, i64)>>;
    /// Settle a held delivery (see [`NewEvent::held`]) of the event `seq`: delivered
    /// (`retry_at` `None`), it is gone; failed, it counts one attempt and is due at
    /// `retry_at`, then retried like any other. False when there was none.
    async fn settle_held(
        &self,
        project: &str,
        subscription: &str,
        seq: i64,
        retry_at: Option<i64>,
    ) -> Result<bool>;
    /// Record attempt outcomes and move deliveries on (delete, reschedule, dead-letter, release).
    async fn complete(&self, updates: Vec<DeliveryUpdate>) -> Result<()>;
    /// The earliest due time of a pending, unleased delivery (for the dispatcher's sleep).
    async fn next_due(&self) -> Result<Option<i64>>;

    async fn list_dead_letters(
        &self,
        project: &str,
        subscription: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<DeadLetter>>;
    /// Put dead deliveries (all of the subscription's, or the listed ids) back in the queue.
    async fn redeliver(
        &self,
        project: &str,
        subscription: &str,
        ids: Option<Vec<i64>>,
        now: i64,
    ) -> Result<u64>;
    async fn list_attempts(
        &self,
        project: &str,
        subscription: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<Attempt>>;
    /// Make every pending delivery of a subscription due now (after it is re-enabled).
    async fn make_due(&self, project: &str, subscription: &str, now: i64) -> Result<u64>;
    async fn backlog(&self, project: &str, subscription: &str) -> Result<Backlog>;

    /// Keep an event until `due_at`; returns its schedule id. Durable when it resolves.
    async fn schedule(&self, event: NewScheduled) -> Result<i64>;
    /// Scheduled events due at `now`, earliest first, at most `limit`.
    async fn due_scheduled(&self, now: i64, limit: usize) -> Result<Vec<ScheduledEvent>>;
    /// The earliest due time of a scheduled event.
    async fn next_scheduled(&self) -> Result<Option<i64>>;
    /// Append due scheduled events of one project (each with the deliveries routed at
    /// firing time) and forget their schedule, in one transaction. A schedule id that is
    /// already gone (fired elsewhere) appends nothing, and an event whose (source, id) was
    /// seen within `dedup_window_ms` is a duplicate as at ingest; returns how many were
    /// appended.
    async fn fire_scheduled(
        &self,
        project: &str,
        dedup_window_ms: i64,
        fired: Vec<(i64, NewEvent)>,
    ) -> Result<usize>;

    /// Keep an event in an Audit emitter's log, stamped `at`.
    async fn append_audit(
        &self,
        project: &str,
        emitter: &str,
        at: i64,
        body: Vec<u8>,
    ) -> Result<()>;
    /// An Audit emitter's log from `start` (included) to `end` (excluded), oldest first,
    /// at most `limit` entries: `(at, body)`.
    async fn read_audit(
        &self,
        project: &str,
        emitter: &str,
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>>;

    /// Save a new version of a workflow definition (`awaits`: the types its wait steps
    /// await); returns the version, or `None` when `mode` forbids the write.
    async fn save_workflow(
        &self,
        project: &str,
        id: &str,
        body: String,
        awaits: Vec<String>,
        mode: SaveMode,
    ) -> Result<Option<i64>>;
    /// A version of a live workflow (the latest when `version` is `None`). Versions of a
    /// deleted workflow stay readable by number, for its instances.
    async fn get_workflow(
        &self,
        project: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<WorkflowVersion>>;
    /// The latest version of every live workflow (of one project, or all of them).
    async fn list_workflows(&self, project: Option<&str>) -> Result<Vec<WorkflowVersion>>;
    /// Mark every version deleted: no new instance starts; running ones go on.
    async fn delete_workflow(&self, project: &str, id: &str) -> Result<bool>;

    /// `(project, id)` of instances due at `now`, earliest first (keys only: the engine
    /// asks often, and skips the ones it is already working on).
    async fn due_instances(&self, now: i64, limit: usize) -> Result<Vec<(String, String)>>;
    /// The earliest `due_at` of any instance.
    async fn next_instance_due(&self) -> Result<Option<i64>>;
    async fn get_instance(&self, project: &str, id: &str) -> Result<Option<InstanceRow>>;
    /// Instances of a workflow by descending id (ids are time-ordered: newest first),
    /// optionally in one state; `before` (an instance id) pages.
    async fn list_instances(
        &self,
        project: &str,
        workflow: &str,
        state: Option<InstanceState>,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<InstanceRow>>;
    /// How many instances of a workflow are in each state (states with none left out).
    async fn instance_counts(
        &self,
        project: &str,
        workflow: &str,
    ) -> Result<Vec<(InstanceState, u64)>>;
    /// Wake events kept for an instance, oldest first.
    async fn kept_events(&self, project: &str, instance: &str) -> Result<Vec<KeptEvent>>;
    async fn instance_history(&self, project: &str, instance: &str) -> Result<Vec<HistoryEntry>>;
    /// Apply one change of an instance (see [`InstanceChange`]); `None` when it was moved
    /// on meanwhile (nothing written), else the outcomes of the published events.
    async fn change_instance(&self, change: InstanceChange) -> Result<Option<Vec<AppendOutcome>>>;

    /// Drop instances that finished (completed, failed, cancelled) before `finished_before`,
    /// with their history and kept events; returns how many.
    async fn prune_instances(&self, finished_before: i64) -> Result<u64>;

    /// Drop attempts beyond the newest `attempts_keep` per subscription, and events
    /// received before `events_before` that no delivery needs any more. Events are also
    /// the dedup keys: callers keep them at least for the dedup window.
    async fn prune(&self, attempts_keep: usize, events_before: i64) -> Result<()>;
}

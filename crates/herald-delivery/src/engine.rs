//! The delivery engine. The dispatcher keeps, per subscription with work, only the time
//! its next delivery is due (the backlog itself stays on disk); it leases, per
//! subscription, as many due deliveries as that subscription and the global cap have free
//! slots for, runs each attempt in its own task, and a completer writes outcomes back in
//! batches. Auto-disable and the handshake gate live here too.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::retry::{self, Outcome};
use herald_core::subscription::SubscriptionState;
use herald_core::{now_millis, Data, Event, Topic};
use herald_store::{
    AppendBatch, Attempt, ClaimRequest, ClaimedDelivery, DeliveryUpdate, NewEvent, Next, Store,
    StoredSubscription, Target,
};
use rand::Rng;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::registry::{Delivery, Entry, Handshake, Registry};
use crate::sinks::webhook::{handshake, HttpClient, WebhookConfig, WebhookSink};
use crate::sinks::{AttemptReport, Outbound, Sink};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Deliveries leased across all subscriptions (sending, or waiting for a request slot).
    pub max_concurrency: usize,
    /// Most deliveries leased per store round trip.
    pub claim_batch: usize,
    /// Longest idle sleep between looks at the store (a new event wakes it sooner).
    pub poll_interval: Duration,
    /// How long a lease outlives the longest request timeout.
    pub lease_slack: Duration,
    /// Our origin in the webhook validation handshake (`WebHook-Request-Origin`).
    pub origin: String,
    /// Wait before trying a refused handshake again.
    pub handshake_retry: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrency: 512,
            claim_batch: 256,
            poll_interval: Duration::from_secs(1),
            lease_slack: Duration::from_secs(60),
            origin: "herald.localhost".into(),
            handshake_retry: Duration::from_secs(30),
        }
    }
}

pub struct Engine {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// Webhook attempts.
    http: HttpClient,
    /// Handshakes and OAuth2 token requests.
    client: reqwest::Client,
    cfg: EngineConfig,
    wake: Notify,
    /// `project/id` -> when that subscription next has a delivery due.
    due: Mutex<HashMap<String, DueHint>>,
}

#[derive(Debug, Clone)]
struct DueHint {
    project: String,
    subscription_id: String,
    at: i64,
}

/// How often the due hints are checked against the store (a safety net: every change of
/// the backlog already updates them).
const RESYNC: Duration = Duration::from_secs(30);

/// The longest request timeout a subscription may set. An attempt is at most a handshake
/// and a request, so a lease of twice this (plus slack) outlives any attempt.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

impl Engine {
    /// `tls` from [`crate::tls::client_config`].
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        cfg: EngineConfig,
        tls: &rustls::ClientConfig,
    ) -> Result<Arc<Engine>, String> {
        let client = crate::tls::reqwest_builder(tls)
            .pool_max_idle_per_host(16)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Arc::new(Engine {
            store,
            registry,
            http: HttpClient::new(256, tls.clone()),
            client,
            cfg,
            wake: Notify::new(),
            due: Mutex::new(HashMap::new()),
        }))
    }

    /// Tell the dispatcher there may be new work (after an ingest commit or an enable).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A subscription has a delivery due at `at` (new events, a retry, a redeliver, an
    /// enable): the dispatcher will look at it then.
    ///
    /// Cheap when nothing changes (the usual case under load): no wake-up if the
    /// dispatcher already knows of an earlier due time, nothing for a disabled
    /// subscription (enabling notifies again).
    pub fn notify(&self, project: &str, subscription_id: &str, at: i64) {
        if self
            .registry
            .get(project, subscription_id)
            .is_some_and(|e| !e.sub.is_active())
        {
            return;
        }
        {
            let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
            let key = format!("{project}/{subscription_id}");
            match due.get_mut(&key) {
                Some(hint) if hint.at <= at => return,
                Some(hint) => hint.at = at,
                None => {
                    due.insert(
                        key,
                        DueHint {
                            project: project.to_string(),
                            subscription_id: subscription_id.to_string(),
                            at,
                        },
                    );
                }
            }
        }
        self.wake();
    }

    /// One attempt to a subscription's webhook now, outside the queue (the queue API's
    /// synchronous mode): no retry, no attempts-log entry, at most `timeout`, and up to
    /// `max_body` bytes of the answer kept for the caller.
    pub async fn deliver_now(
        &self,
        entry: &Entry,
        event: Event,
        timeout: Duration,
        max_body: usize,
    ) -> AttemptReport {
        let handshake = *entry
            .runtime
            .handshake
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !matches!(handshake, Handshake::NotNeeded | Handshake::Allowed) {
            return AttemptReport {
                status: None,
                outcome: herald_core::retry::Outcome::Retryable { retry_after: None },
                latency_ms: 0,
                error: Some("the sink has not passed the webhook validation handshake yet".into()),
                response_body: None,
            };
        }
        let mut cfg = (*entry.webhook).clone();
        cfg.timeout = cfg.timeout.min(timeout);
        let out = Outbound {
            msg_id: format!("msg_{}", event.id),
            timestamp: now_millis() / 1000,
            event: rendered(entry, event),
        };
        WebhookSink::new(
            self.http.clone(),
            self.client.clone(),
            Arc::new(cfg),
            Some(entry.runtime.oauth.clone()),
        )
        .with_max_body(max_body)
        .deliver(&out)
        .await
    }

    /// Start the dispatcher and the completer.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (done_tx, done_rx) = mpsc::channel(self.cfg.max_concurrency * 2);
        tokio::spawn(self.clone().completer(done_rx));
        tokio::spawn(self.clone().dispatcher(done_tx))
    }

    async fn resync(&self) {
        match self.store.pending_subscriptions().await {
            Ok(pending) => {
                for (project, id, at) in pending {
                    self.notify(&project, &id, at);
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the backlog failed"),
        }
    }

    /// Pick what to lease now: subscriptions due, active, with free slots; at most
    /// `budget` deliveries in all. Their hints are taken out (the lease answer puts the
    /// next due time back). Also returns when the earliest remaining hint is due.
    fn plan(&self, now: i64, mut budget: usize) -> (Vec<ClaimRequest>, Option<i64>) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let mut requests = Vec::new();
        let mut taken = Vec::new();
        let mut earliest: Option<i64> = None;
        for (key, hint) in due.iter() {
            if hint.at > now {
                earliest = Some(earliest.map_or(hint.at, |e| e.min(hint.at)));
                continue;
            }
            let Some(entry) = self.registry.get(&hint.project, &hint.subscription_id) else {
                taken.push(key.clone());
                continue;
            };
            if !entry.sub.is_active() {
                // Its backlog is parked in the store; enabling notifies again.
                taken.push(key.clone());
                continue;
            }
            // Up to two windows are leased: `max_in_flight` requests sending, as many
            // waiting to send the moment one finishes. A lease waits for the writer's
            // current group commit, so leasing only when a slot frees would leave slots
            // idle for that long.
            let leased = entry.runtime.in_flight.load(Ordering::Acquire);
            let max = entry.sub.delivery.max_in_flight.max(1);
            let free = max.saturating_mul(2).saturating_sub(leased) as usize;
            // A lease reads past the subscription's leased rows, so leasing one delivery
            // at a time costs a scan of the whole window per delivery: lease a quarter
            // of a window at least.
            let worth_it = leased == 0 || free >= (max as usize / 4).max(1);
            if !worth_it || budget == 0 {
                continue;
            }
            let limit = free.min(budget);
            budget -= limit;
            requests.push(ClaimRequest {
                project: hint.project.clone(),
                subscription_id: hint.subscription_id.clone(),
                limit,
            });
            taken.push(key.clone());
        }
        for key in taken {
            due.remove(&key);
        }
        (requests, earliest)
    }

    async fn dispatcher(self: Arc<Self>, done: mpsc::Sender<DeliveryUpdate>) {
        let slots = Arc::new(Semaphore::new(self.cfg.max_concurrency));
        self.resync().await;
        let mut last_resync = std::time::Instant::now();
        loop {
            if last_resync.elapsed() >= RESYNC {
                self.resync().await;
                last_resync = std::time::Instant::now();
            }
            let now = now_millis();
            let budget = slots.available_permits().min(self.cfg.claim_batch);
            let (requests, earliest) = self.plan(now, budget);
            if requests.is_empty() {
                let sleep = earliest
                    .map(|at| Duration::from_millis((at - now).max(1) as u64))
                    .unwrap_or(self.cfg.poll_interval)
                    .min(self.cfg.poll_interval);
                let _ = tokio::time::timeout(sleep, self.wake.notified()).await;
                continue;
            }
            let lease_until = now + (2 * MAX_TIMEOUT + self.cfg.lease_slack).as_millis() as i64;
            let claimed = match self
                .store
                .claim_for(requests.clone(), now, lease_until)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "leasing due deliveries failed");
                    for r in &requests {
                        self.notify(&r.project, &r.subscription_id, now + 1000);
                    }
                    tokio::time::sleep(self.cfg.poll_interval).await;
                    continue;
                }
            };
            for (request, claim) in requests.iter().zip(claimed) {
                if let Some(at) = claim.next_due {
                    self.notify(&request.project, &request.subscription_id, at);
                }
                let Some(entry) = self
                    .registry
                    .get(&request.project, &request.subscription_id)
                else {
                    continue;
                };
                for d in claim.deliveries {
                    entry.runtime.in_flight.fetch_add(1, Ordering::AcqRel);
                    let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                    tokio::spawn(self.clone().attempt(entry.clone(), d, permit, done.clone()));
                }
            }
        }
    }

    fn still_active(&self, entry: &Entry) -> bool {
        self.registry
            .get(&entry.project, &entry.sub.id)
            .is_some_and(|current| current.sub.is_active())
    }

    fn give_slot(&self, entry: &Entry) {
        entry.runtime.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    async fn attempt(
        self: Arc<Self>,
        entry: Arc<Entry>,
        d: ClaimedDelivery,
        permit: OwnedSemaphorePermit,
        done: mpsc::Sender<DeliveryUpdate>,
    ) {
        // The slot is held until the outcome is queued, so a stalled completer stops the
        // dispatcher instead of letting finished attempts pile up.
        let slot = SlotGuard {
            engine: &self,
            entry: &entry,
        };
        let sending = SendSlot::acquire(&entry).await;
        let update = if self.still_active(&entry) {
            self.run_attempt(&entry, &d).await
        } else {
            // Disabled or deleted while this lease waited: not attempted, due as it was.
            DeliveryUpdate {
                delivery_id: d.delivery_id,
                project: d.project.clone(),
                subscription_id: d.subscription_id.clone(),
                attempt: None,
                next: Next::Release(now_millis()),
                last_error: None,
            }
        };
        drop(sending);
        let _ = done.send(update).await;
        drop(slot);
        drop(permit);
        self.wake();
    }

    async fn run_attempt(&self, entry: &Entry, d: &ClaimedDelivery) -> DeliveryUpdate {
        let now = now_millis();
        let sub = &entry.sub;
        let update = |attempt, next, last_error| DeliveryUpdate {
            delivery_id: d.delivery_id,
            project: d.project.clone(),
            subscription_id: d.subscription_id.clone(),
            attempt,
            next,
            last_error,
        };
        let event = match Event::from_stored_json(&d.body) {
            Ok(e) => e,
            Err(p) => {
                return update(
                    None,
                    Next::Dead {
                        dead_letter_sink: false,
                    },
                    Some(format!("stored event unreadable: {}", p.detail)),
                )
            }
        };
        let cfg = match d.target {
            Target::Sink => entry.webhook.clone(),
            Target::DeadLetterSink => match &sub.delivery.dead_letter_sink {
                Some(url) => Arc::new(WebhookConfig::for_dead_letter(sub, url)),
                None => {
                    return update(
                        None,
                        Next::Dead {
                            dead_letter_sink: false,
                        },
                        Some("dead-letter sink removed".into()),
                    )
                }
            },
        };
        let event_id = event.id.clone();
        let record = |r: &AttemptReport| Attempt {
            id: 0,
            delivery_id: d.delivery_id,
            seq: d.seq,
            event_id: event_id.clone(),
            target: d.target,
            at: now,
            status: r.status,
            latency_ms: r.latency_ms,
            error: r.error.clone(),
            response_body: r.response_body.clone(),
        };

        if d.target == Target::Sink {
            if let Some(retry_at) = self.handshake_gate(entry, &cfg, now).await {
                let (report, at) = retry_at;
                return update(
                    report.as_ref().map(record),
                    Next::Release(at),
                    report.and_then(|r| r.error),
                );
            }
        }

        let event = if d.target == Target::Sink {
            rendered(entry, event)
        } else {
            event
        };
        let out = Outbound {
            event,
            msg_id: format!("msg_{}", d.seq),
            timestamp: now / 1000,
        };
        let report = match (&entry.delivery, d.target) {
            (Delivery::Local(sink), Target::Sink) => sink.deliver(&out).await,
            (Delivery::Audit { pretty }, Target::Sink) => {
                self.keep_audit(entry, &out.event, *pretty, now).await
            }
            _ => {
                WebhookSink::new(
                    self.http.clone(),
                    self.client.clone(),
                    cfg,
                    Some(entry.runtime.oauth.clone()),
                )
                .deliver(&out)
                .await
            }
        };
        let dead = Next::Dead {
            dead_letter_sink: d.target == Target::Sink && sub.delivery.dead_letter_sink.is_some(),
        };
        let next = match &report.outcome {
            Outcome::Delivered => Next::Delivered,
            Outcome::Final => dead,
            Outcome::Retryable { retry_after } => {
                let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
                match retry::next_attempt(
                    &sub.delivery.retry,
                    d.attempts + 1,
                    d.created_at,
                    now_millis(),
                    *retry_after,
                    jitter,
                ) {
                    retry::Next::RetryAt(at) => Next::RetryAt(at),
                    retry::Next::Exhausted => dead,
                }
            }
        };
        // A dead-letter event that itself dies is not announced again: no feedback loop.
        if let (Next::Dead { .. }, Target::Sink, Some(ty), false) = (
            &next,
            d.target,
            &sub.delivery.dead_letter_event,
            out.event.source == DEAD_LETTER_SOURCE,
        ) {
            let announcement = dead_letter_event(ty, sub, &entry.project, d, &out.event);
            self.publish(
                &entry.project,
                &Topic::root(),
                announcement,
                DEAD_LETTER_DEDUP_MS,
            )
            .await;
        }
        if d.target == Target::Sink {
            if report.outcome == Outcome::Delivered {
                Registry::record_success(entry);
            } else {
                let failures = Registry::record_failure(entry);
                let limit = sub.delivery.disable_after_failures;
                if limit > 0 && failures >= limit {
                    let why = format!(
                        "{failures} consecutive failed attempts; last: {}",
                        report.error.as_deref().unwrap_or("unknown error")
                    );
                    self.disable(entry, why).await;
                }
            }
        }
        update(Some(record(&report)), next, report.error)
    }

    /// An Audit emitter's "delivery": the event kept in the store for its owner to pull.
    async fn keep_audit(
        &self,
        entry: &Entry,
        event: &Event,
        pretty: bool,
        now: i64,
    ) -> AttemptReport {
        let started = std::time::Instant::now();
        let opts = crate::sinks::render::RenderOptions {
            pretty_print: pretty,
            ..Default::default()
        };
        let body = crate::sinks::render::render(event, &opts);
        let result = self
            .store
            .append_audit(&entry.project, &entry.sub.id, now, body)
            .await;
        AttemptReport::local(result.map_err(|e| format!("audit log: {e}")), started)
    }

    /// `None` when the sink may receive events; otherwise when to look again (and the
    /// handshake attempt to log, if one was made).
    async fn handshake_gate(
        &self,
        entry: &Entry,
        cfg: &WebhookConfig,
        now: i64,
    ) -> Option<(Option<AttemptReport>, i64)> {
        {
            let mut state = entry
                .runtime
                .handshake
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match *state {
                Handshake::NotNeeded | Handshake::Allowed => return None,
                Handshake::RetryAt(at) if at > now => return Some((None, at)),
                Handshake::InProgress => return Some((None, now + 1000)),
                _ => *state = Handshake::InProgress,
            }
        }
        let started = std::time::Instant::now();
        let result = handshake(&self.client, cfg, &self.cfg.origin).await;
        // The sink may have been edited meanwhile (which resets the state to Pending):
        // a consent given by the old URL says nothing about the new one.
        let still_same_sink = self
            .registry
            .get(&entry.project, &entry.sub.id)
            .is_some_and(|current| current.webhook.url == cfg.url);
        let mut state = entry
            .runtime
            .handshake
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !still_same_sink || *state != Handshake::InProgress {
            return Some((None, now));
        }
        match result {
            Ok(_) => {
                *state = Handshake::Allowed;
                None
            }
            Err((status, why)) => {
                let at = now + self.cfg.handshake_retry.as_millis() as i64;
                *state = Handshake::RetryAt(at);
                let report = AttemptReport {
                    status,
                    outcome: Outcome::Retryable { retry_after: None },
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: Some(why),
                    response_body: None,
                };
                Some((Some(report), at))
            }
        }
    }

    /// Disable a subscription (auto-disable). Its deliveries stay queued.
    async fn disable(&self, entry: &Entry, reason: String) {
        let _editing = entry.runtime.edit.lock().await;
        let Some(current) = self.registry.get(&entry.project, &entry.sub.id) else {
            return;
        };
        if !current.sub.is_active() {
            return;
        }
        let mut sub = current.sub.clone();
        sub.state = SubscriptionState::Disabled {
            reason: reason.clone(),
            since: now_millis(),
        };
        let stored = StoredSubscription {
            project: entry.project.clone(),
            sub: sub.clone(),
        };
        match self
            .store
            .update_subscription(&entry.project, &stored)
            .await
        {
            Ok(true) => {}
            Ok(false) => return, // deleted meanwhile: nothing to disable
            Err(e) => {
                tracing::error!(error = %e, "could not persist auto-disable");
                return;
            }
        }
        tracing::warn!(project = %entry.project, subscription = %sub.id, %reason, "subscription disabled");
        let since = match &sub.state {
            SubscriptionState::Disabled { since, .. } => *since,
            SubscriptionState::Active => now_millis(),
        };
        let announcement = disabled_event(&sub, &reason, since);
        self.registry
            .upsert(&entry.project, sub, current.filter.clone());
        self.publish(
            &entry.project,
            &Topic::parse(SYSTEM_TOPIC).expect("valid topic"),
            announcement,
            0,
        )
        .await;
    }

    /// Append an event Herald itself raises, routed like any other. With a deterministic
    /// id, `dedup_window_ms` makes raising it again (after a crash) a no-op.
    async fn publish(&self, project: &str, topic: &Topic, event: Event, dedup_window_ms: i64) {
        let deliveries = self.registry.route(project, topic, &event);
        let batch = AppendBatch {
            project: project.to_string(),
            dedup_window_ms,
            events: vec![NewEvent {
                id: event.id.clone(),
                source: event.source.clone(),
                ty: event.ty.clone(),
                topic: topic.as_path(),
                received_at: now_millis(),
                body: event.to_json_bytes(),
                deliveries: deliveries.clone(),
                held: Vec::new(),
                flow: Default::default(),
            }],
        };
        match self.store.append(batch).await {
            Ok(_) => {
                for id in &deliveries {
                    self.notify(project, id, now_millis());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, event_type = %event.ty, "could not publish a system event")
            }
        }
    }

    async fn completer(self: Arc<Self>, mut rx: mpsc::Receiver<DeliveryUpdate>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(u) => batch.push(u),
                    Err(_) => break,
                }
            }
            loop {
                match self.store.complete(batch.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "recording delivery outcomes failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            let now = now_millis();
            for u in &batch {
                match u.next {
                    Next::RetryAt(at) | Next::Release(at) => {
                        self.notify(&u.project, &u.subscription_id, at)
                    }
                    Next::Dead {
                        dead_letter_sink: true,
                    } => self.notify(&u.project, &u.subscription_id, now),
                    _ => {}
                }
            }
            self.wake();
        }
    }
}

/// The topic of the events Herald raises about its own subscriptions.
pub const SYSTEM_TOPIC: &str = "system/emitters";

/// `EmitterDisabled`: a subscription was disabled after repeated failures, so that a
/// subscription on the system topic can tell its owner.
fn disabled_event(
    sub: &herald_core::subscription::Subscription,
    reason: &str,
    since: i64,
) -> Event {
    let mut e = Event::new(
        format!("{}-disabled-{since}", sub.id),
        "herald",
        "EmitterDisabled",
    );
    e.subject = Some(sub.id.clone());
    e.time = chrono::DateTime::from_timestamp_millis(since)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    e.datacontenttype = Some("application/json".into());
    e.data = Some(Data::Json(serde_json::json!({
        "id": sub.id, "owner": sub.owner, "sink": sub.sink, "reason": reason, "since": since,
    })));
    e
}

/// How long a dead-letter event's id stays a dedup key: an attempt that dies again after
/// a crash (its outcome was not yet recorded) does not announce it twice.
const DEAD_LETTER_DEDUP_MS: i64 = 7 * 24 * 3600 * 1000;

/// The event announcing an exhausted delivery, in Space Cloud's `dlq_<trigger>` shape:
/// `{event_id, event_type, event_payload, event_timestamp, event_name}`.
const DEAD_LETTER_SOURCE: &str = "herald/dead-letters";

/// The event as the subscription's sink receives it: with the source and subject its
/// definition sets (emitters), if any.
fn rendered(entry: &Entry, mut event: Event) -> Event {
    if let Some(source) = &entry.render.source {
        event.source = source.clone();
    }
    if let Some(subject) = &entry.render.subject {
        event.subject = Some(subject.clone());
    }
    event
}

fn dead_letter_event(
    ty: &str,
    sub: &herald_core::subscription::Subscription,
    project: &str,
    d: &herald_store::ClaimedDelivery,
    original: &Event,
) -> Event {
    // The delivery and its creation time: a redelivered letter that dies again (its
    // creation time reset) is announced again.
    let mut e = Event::new(
        format!("dlq-{project}-{}-{}", d.delivery_id, d.created_at),
        DEAD_LETTER_SOURCE,
        ty,
    );
    e.subject = Some(sub.id.clone());
    e.time = chrono::DateTime::from_timestamp_millis(now_millis())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let payload = original
        .data
        .as_ref()
        .map_or(serde_json::Value::Null, Data::to_json_value);
    e.datacontenttype = Some("application/json".into());
    e.data = Some(Data::Json(serde_json::json!({
        "event_id": original.id,
        "event_type": original.ty,
        "event_payload": payload,
        "event_timestamp": original.time,
        "event_name": sub.id,
    })));
    e
}

/// Gives the subscription's in-flight slot back however the attempt ends (even by panic).
/// One of a subscription's `max_in_flight` request slots, held while an attempt runs.
struct SendSlot<'a> {
    entry: &'a Entry,
}

impl<'a> SendSlot<'a> {
    async fn acquire(entry: &'a Entry) -> SendSlot<'a> {
        let rt = &entry.runtime;
        let max = entry.sub.delivery.max_in_flight.max(1);
        loop {
            // Registered before looking, so a slot freed in between is not missed.
            let freed = rt.send_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let n = rt.sending.load(Ordering::Acquire);
            if n < max {
                if rt
                    .sending
                    .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return SendSlot { entry };
                }
                continue;
            }
            freed.await;
        }
    }
}

impl Drop for SendSlot<'_> {
    fn drop(&mut self) {
        self.entry.runtime.sending.fetch_sub(1, Ordering::AcqRel);
        self.entry.runtime.send_freed.notify_one();
    }
}

struct SlotGuard<'a> {
    engine: &'a Engine,
    entry: &'a Entry,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.engine.give_slot(self.entry);
    }
}

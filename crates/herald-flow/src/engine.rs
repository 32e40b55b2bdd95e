//! The workflow engine: finds due instances in the store, runs at most `MAX_IN_FLIGHT` of
//! them at once (each by one task), runs their actions over HTTP and commits each
//! [`machine`](crate::machine) change. Nothing waits in memory: a sleeping instance is a
//! row with a deadline, and a crash leaves every instance where its last commit put it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::event::Event;
use herald_core::now_millis;
use herald_core::workflow::{Action, StepKind, WorkflowDefinition};
use herald_store::{
    FlowRouting, InstanceChange, InstanceRow, InstanceState, NewEvent, Result, Store,
};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::compiled::{addressed_instance, CompiledWorkflow, StartIndex};
use crate::machine::{self, ActionOutcome, Change, Kept, Plan};
use crate::INSTANCE_ATTRIBUTE;

/// Instances worked on at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// The most of an action's answer kept as its output.
pub const MAX_ACTION_RESPONSE: usize = 256 * 1024;
/// Statuses another attempt of an action cannot fix (as for webhooks).
const FINAL_STATUSES: [u16; 5] = [400, 401, 403, 404, 413];

/// What the engine needs of the rest of the hub to publish an event.
pub trait Hub: Send + Sync + 'static {
    /// The subscriptions `event` is delivered to (routed like an ingested event).
    fn route(&self, project: &str, event: &Event, received_at: i64) -> NewEvent;
    /// These events were committed: hand their deliveries over.
    fn committed(&self, project: &str, events: &[NewEvent]);
}

/// An operation on one instance asked through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Cancel,
    Retry,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operated {
    Done(Box<InstanceRow>),
    NotFound,
    /// Not possible in the instance's state.
    Refused(InstanceState),
}

/// What the engine has done since the process started (for `/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowCounters {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Events consumed by `wait` steps.
    pub wakes: u64,
    pub actions_succeeded: u64,
    pub actions_failed: u64,
    /// Changes refused because the instance had moved on (then worked on again).
    pub conflicts: u64,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    wakes: AtomicU64,
    actions_succeeded: AtomicU64,
    actions_failed: AtomicU64,
    conflicts: AtomicU64,
}

impl Counters {
    /// Count what a committed change's history says happened.
    fn record(&self, history: &[herald_store::HistoryEntry]) {
        for h in history {
            let counter = match h.kind.as_str() {
                "started" => &self.started,
                "completed" => &self.completed,
                "failed" => &self.failed,
                "woken" => &self.wakes,
                "action_succeeded" => &self.actions_succeeded,
                "action_failed" => &self.actions_failed,
                _ => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct FlowEngine {
    store: Arc<dyn Store>,
    counters: Counters,
    hub: Arc<dyn Hub>,
    starts: StartIndex,
    /// Definition versions never change, so compiled ones are kept by (project, id, version).
    compiled: Mutex<HashMap<(String, String, i64), Arc<CompiledWorkflow>>>,
    http: reqwest::Client,
    wake: Notify,
    in_flight: Mutex<HashSet<(String, String)>>,
    dedup_window_ms: i64,
}

impl FlowEngine {
    /// `http` carries actions' calls.
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<dyn Hub>,
        dedup_window_ms: i64,
        http: reqwest::Client,
    ) -> Arc<FlowEngine> {
        Arc::new(FlowEngine {
            store,
            counters: Counters::default(),
            hub,
            starts: StartIndex::default(),
            compiled: Mutex::new(HashMap::new()),
            http,
            wake: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            dedup_window_ms,
        })
    }

    /// Load every live workflow's latest version into the start index.
    pub async fn load(&self) -> Result<()> {
        for w in self.store.list_workflows(None).await? {
            match parse_stored(&w.project, w.version, &w.body) {
                Some(c) => {
                    self.starts.put(c.clone());
                    self.cache(c);
                }
                None => {
                    tracing::error!(project = %w.project, workflow = %w.id, "stored workflow does not compile; it starts nothing")
                }
            }
        }
        Ok(())
    }

    /// Make a just-saved version the one that starts instances.
    pub fn install(&self, project: &str, version: i64, def: WorkflowDefinition) {
        match CompiledWorkflow::compile(project, version, def) {
            Ok(c) => {
                let c = Arc::new(c);
                self.starts.put(c.clone());
                self.cache(c);
            }
            Err(e) => {
                tracing::error!(path = %e.path, "saved workflow does not compile: {}", e.message)
            }
        }
    }

    pub fn uninstall(&self, project: &str, id: &str) {
        self.starts.remove(project, id);
    }

    /// What an ingested event does to workflows: the instances it starts, and the
    /// instance its `instanceid` addresses (which the store ignores for a workflow the
    /// event starts).
    pub fn routing(&self, project: &str, event: &Event) -> FlowRouting {
        FlowRouting {
            starts: self.starts.starts(project, event),
            wake: addressed_instance(event),
        }
    }

    pub fn counters(&self) -> FlowCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FlowCounters {
            started: get(&c.started),
            completed: get(&c.completed),
            failed: get(&c.failed),
            wakes: get(&c.wakes),
            actions_succeeded: get(&c.actions_succeeded),
            actions_failed: get(&c.actions_failed),
            conflicts: get(&c.conflicts),
        }
    }

    /// Look for due instances now (after a commit that started or woke some).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Find and work on due instances until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = now_millis();
            let busy = self.busy();
            if busy < MAX_IN_FLIGHT {
                // Rows being worked on come back too (they are still due), so ask for more.
                match self.store.due_instances(now, MAX_IN_FLIGHT + busy).await {
                    Ok(keys) => {
                        for key in keys {
                            self.start_task(key);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read due workflow instances");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let next = self.store.next_instance_due().await.ok().flatten();
            let wait = match next {
                Some(t) if t > now => (t - now).min(1_000),
                _ => 1_000,
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    }

    fn busy(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn start_task(self: &Arc<Self>, key: (String, String)) {
        {
            let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if set.len() >= MAX_IN_FLIGHT || !set.insert(key.clone()) {
                return;
            }
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let worked = match engine.store.get_instance(&key.0, &key.1).await {
                Ok(Some(row)) => engine.work_on(row).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = worked {
                tracing::warn!(instance = %key.1, error = %e, "workflow instance not moved on; retrying");
                // The instance stays due; give the store a moment before it is retried.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            engine
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            engine.notify();
        });
    }

    /// Move one instance on until it sleeps, finishes or waits for a retry. Its changes,
    /// an action's outcome among them, are chained and committed as one: a crash before
    /// that commit repeats the chain, so actions run at least once (like deliveries).
    async fn work_on(&self, row: InstanceRow) -> Result<()> {
        let mut committed = row; // as the store has it
        let mut current = committed.clone(); // with `pending` applied
        let mut pending: Option<Change> = None;
        let mut acted = false; // `pending` holds an action's outcome
                               // Bounded: a workflow has at most MAX_STEPS steps, each taking a change or two.
        for _ in 0..4 * herald_core::workflow::MAX_STEPS + 8 {
            let now = now_millis();
            if current.due_at.is_none_or(|d| d > now) {
                break;
            }
            let Some(wf) = self
                .workflow(&current.project, &current.workflow, current.version)
                .await?
            else {
                let reason = format!(
                    "version {} of workflow '{}' is missing or no longer valid",
                    current.version, current.workflow
                );
                tracing::error!(instance = %current.id, "{reason}");
                // Failed, it is due no more (and may be retried once the cause is fixed).
                if let Some(ch) = machine::broken(&current, context_of(&current), &reason, now) {
                    pending = Some(match pending {
                        Some(chain) => chain.then(ch),
                        None => ch,
                    });
                }
                break;
            };
            let context = context_of(&current);
            let waiting = matches!(
                wf.def.steps.get(current.step as usize).map(|s| &s.kind),
                Some(StepKind::Wait(_))
            );
            let (mut kept, mut unreadable) = (Vec::new(), Vec::new());
            if waiting && !current.state.is_finished() {
                (kept, unreadable) = self.kept(&current).await?;
                // Consumed by the uncommitted chain already.
                if let Some(p) = &pending {
                    kept.retain(|k| !p.consume.contains(&k.id));
                    unreadable.retain(|id| !p.consume.contains(id));
                }
            }
            let mut change = match machine::plan(&wf, &current, context.clone(), &kept, now) {
                Plan::Change(c) => c,
                Plan::Act(action) => {
                    // What an action must not wait for (published events, an earlier
                    // action's outcome) is committed before it runs.
                    let must_commit = pending
                        .as_ref()
                        .is_some_and(|p| acted || !p.publish.is_empty());
                    if must_commit {
                        let chain = pending.take().expect("checked above");
                        acted = false;
                        committed = match self.commit(&committed, chain).await? {
                            Some(next) => next,
                            // Moved on meanwhile (a wake, a cancel, another node).
                            None => match self
                                .store
                                .get_instance(&current.project, &current.id)
                                .await?
                            {
                                Some(fresh) => fresh,
                                None => return Ok(()),
                            },
                        };
                        current = committed.clone();
                        continue;
                    }
                    acted = true;
                    let outcome = self.act(&current, &context, &action).await;
                    machine::after_action(&wf, &current, context, &action, outcome, now_millis())
                }
            };
            if !unreadable.is_empty() {
                // Herald wrote them; should one not read back, it must not keep the
                // instance due forever.
                change.note_unreadable(&unreadable, now);
                change.consume.extend(unreadable);
            }
            current = change.applied_to(&current, now);
            pending = Some(match pending {
                Some(chain) => chain.then(change),
                None => change,
            });
        }
        if let Some(chain) = pending {
            // If the instance moved on meanwhile, this chain is dropped; the instance is
            // still due and is worked on again from what the store has.
            self.commit(&committed, chain).await?;
        }
        Ok(())
    }

    /// The events kept for an instance, and the ids of any whose body does not read back.
    async fn kept(&self, row: &InstanceRow) -> Result<(Vec<Kept>, Vec<i64>)> {
        let (mut kept, mut unreadable) = (Vec::new(), Vec::new());
        for k in self.store.kept_events(&row.project, &row.id).await? {
            match Event::from_stored_json(&k.body) {
                Ok(event) => kept.push(Kept {
                    id: k.id,
                    seq: k.seq,
                    event,
                }),
                Err(_) => unreadable.push(k.id),
            }
        }
        Ok((kept, unreadable))
    }

    /// A definition version, compiled (from the cache or the store).
    async fn workflow(
        &self,
        project: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<Arc<CompiledWorkflow>>> {
        let key = (project.to_string(), id.to_string(), version);
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(c.clone()));
        }
        let Some(stored) = self.store.get_workflow(project, id, Some(version)).await? else {
            return Ok(None);
        };
        Ok(parse_stored(project, version, &stored.body).inspect(|c| self.cache(c.clone())))
    }

    fn cache(&self, c: Arc<CompiledWorkflow>) {
        let key = (c.project.clone(), c.id().to_string(), c.version);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, c);
    }

    /// Commit a change if the instance is still as read; the instance as it is now, or
    /// `None` when it moved on meanwhile.
    async fn commit(&self, row: &InstanceRow, change: Change) -> Result<Option<InstanceRow>> {
        let now = now_millis();
        let publish: Vec<NewEvent> = change
            .publish
            .iter()
            .map(|e| {
                let mut routed = self.hub.route(&row.project, e, now);
                // Published events start workflows too, but never wake one.
                routed.flow = FlowRouting {
                    starts: self.starts.starts(&row.project, e),
                    wake: None,
                };
                routed
            })
            .collect();
        let starts_any = publish.iter().any(|e| !e.flow.starts.is_empty());
        let next = InstanceRow {
            rev: row.rev + 1,
            ..change.applied_to(row, now)
        };
        let committed = self
            .store
            .change_instance(InstanceChange {
                next: next.clone(),
                expect_rev: row.rev,
                consume: change.consume,
                history: change.history.clone(),
                publish: publish.clone(),
                dedup_window_ms: self.dedup_window_ms,
            })
            .await?;
        if committed.is_none() {
            self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        self.counters.record(&change.history);
        self.hub.committed(&row.project, &publish);
        if starts_any {
            self.notify();
        }
        Ok(Some(next))
    }

    /// POST the context to an action's URL; its JSON answer is the output.
    async fn act(
        &self,
        row: &InstanceRow,
        context: &Map<String, Value>,
        action: &Action,
    ) -> ActionOutcome {
        let mut req = self
            .http
            .post(&action.url)
            .timeout(action.timeout)
            .header("content-type", "application/json")
            .header(format!("ce-{INSTANCE_ATTRIBUTE}"), &row.id)
            .header("herald-workflow", &row.workflow)
            // The same until the attempt's outcome is committed (a repeat after a crash
            // keeps it); a retry by hand has a new revision, so a new key.
            .header(
                "idempotency-key",
                format!("{}.{}.{}.{}", row.id, row.step, row.attempt, row.rev),
            );
        for (k, v) in &action.headers {
            req = req.header(k, v);
        }
        let answer = req
            .body(Value::Object(context.clone()).to_string())
            .send()
            .await;
        let mut resp = match answer {
            Ok(r) => r,
            Err(e) => {
                return ActionOutcome::Failed {
                    status: None,
                    error: if e.is_timeout() {
                        format!("no answer within {:?}", action.timeout)
                    } else {
                        format!("request failed: {e}")
                    },
                    retryable: true,
                }
            }
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ACTION_RESPONSE => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return ActionOutcome::Failed {
                        status: Some(status),
                        error: format!("the answer exceeds {MAX_ACTION_RESPONSE} bytes"),
                        retryable: false,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return ActionOutcome::Failed {
                        status: Some(status),
                        error: format!("reading the answer failed: {e}"),
                        retryable: true,
                    }
                }
            }
        }
        if (200..300).contains(&status) {
            let output = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
            };
            ActionOutcome::Succeeded { status, output }
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            ActionOutcome::Failed {
                status: Some(status),
                error: format!("HTTP {status}: {text}"),
                retryable: !FINAL_STATUSES.contains(&status),
            }
        }
    }

    /// Cancel or retry an instance on behalf of the API.
    pub async fn operate(&self, project: &str, id: &str, op: Operation) -> Result<Operated> {
        // A change races the engine's own; re-read and try again a few times.
        for _ in 0..8 {
            let Some(row) = self.store.get_instance(project, id).await? else {
                return Ok(Operated::NotFound);
            };
            let now = now_millis();
            let change = match op {
                Operation::Cancel => machine::cancel(&row, context_of(&row), now),
                Operation::Retry => machine::retry(&row, context_of(&row), now),
            };
            let Some(change) = change else {
                return Ok(Operated::Refused(row.state));
            };
            if let Some(done) = self.commit(&row, change).await? {
                self.notify();
                return Ok(Operated::Done(Box::new(done)));
            }
        }
        Err(herald_store::StoreError::Backend(
            "the instance kept changing; try again".into(),
        ))
    }
}

fn context_of(row: &InstanceRow) -> Map<String, Value> {
    match serde_json::from_str(&row.context) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn parse_stored(project: &str, version: i64, body: &str) -> Option<Arc<CompiledWorkflow>> {
    let def = WorkflowDefinition::from_stored(body).ok()?;
    CompiledWorkflow::compile(project, version, def)
        .ok()
        .map(Arc::new)
}

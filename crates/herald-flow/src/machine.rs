//! The instance state machine, without I/O: given an instance, its compiled definition,
//! the events kept for it and the clock, what happens next. Each [`Change`] moves an
//! instance by at most one step; the engine commits it (refused if the instance moved
//! meanwhile) and asks again.
//!
//! The context is a JSON object: each consumed event's payload under its type (the start
//! event's too), and each action's output under its step name.

use herald_core::event::{Data, Event, ExtValue};
use herald_core::rfc3339_millis;
use herald_core::workflow::{Action, OnTimeout, StepKind};
use herald_store::{HistoryEntry, InstanceRow, InstanceState};
use serde_json::{json, Map, Value};

use crate::compiled::{payload, CompiledWorkflow};
use crate::{ANNOUNCE_SOURCE, DEPTH_ATTRIBUTE, INSTANCE_ATTRIBUTE};

/// A wake event kept for the instance.
#[derive(Debug, Clone)]
pub struct Kept {
    pub id: i64,
    pub seq: i64,
    pub event: Event,
}

/// The next state of an instance, with what to record and publish alongside.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub state: InstanceState,
    pub step: i64,
    pub attempt: i64,
    pub context: Map<String, Value>,
    pub waiting_for: Vec<String>,
    pub deadline: Option<i64>,
    pub due_at: Option<i64>,
    pub error: Option<String>,
    /// Kept events this change consumes (or drops).
    pub consume: Vec<i64>,
    pub history: Vec<HistoryEntry>,
    pub publish: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Change(Change),
    /// Run the current step's action, then ask [`after_action`].
    Act(Action),
}

/// How an action's HTTP call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    Succeeded {
        status: u16,
        output: Value,
    },
    Failed {
        status: Option<u16>,
        error: String,
        /// False for answers another try cannot fix (400, 401, 403, 404, 413).
        retryable: bool,
    },
}

impl Change {
    /// The instance as it is: the base every change edits.
    fn keep(row: &InstanceRow, context: Map<String, Value>) -> Change {
        Change {
            state: row.state,
            step: row.step,
            attempt: row.attempt,
            context,
            waiting_for: row.waiting_for.clone(),
            deadline: row.deadline,
            due_at: row.due_at,
            error: row.error.clone(),
            consume: Vec::new(),
            history: Vec::new(),
            publish: Vec::new(),
        }
    }

    /// This change followed by `next` (computed from this one's result), as one change:
    /// `next`'s state, both changes' consumed events, history and publications.
    pub fn then(mut self, next: Change) -> Change {
        let mut consume = std::mem::take(&mut self.consume);
        let mut history = std::mem::take(&mut self.history);
        let mut publish = std::mem::take(&mut self.publish);
        consume.extend(next.consume);
        history.extend(next.history);
        publish.extend(next.publish);
        Change {
            consume,
            history,
            publish,
            ..next
        }
    }

    /// `row` as this change leaves it (its revision is the store's to move).
    pub fn applied_to(&self, row: &InstanceRow, now: i64) -> InstanceRow {
        InstanceRow {
            state: self.state,
            step: self.step,
            attempt: self.attempt,
            context: Value::Object(self.context.clone()).to_string(),
            waiting_for: self.waiting_for.clone(),
            deadline: self.deadline,
            due_at: self.due_at,
            error: self.error.clone(),
            updated_at: now,
            ..row.clone()
        }
    }

    fn note(&mut self, at: i64, step: Option<i64>, kind: &str, detail: Value) {
        self.history.push(HistoryEntry {
            at,
            step,
            kind: kind.to_string(),
            detail,
        });
    }

    /// Kept events that do not read back, dropped.
    pub fn note_unreadable(&mut self, ids: &[i64], now: i64) {
        self.note(
            now,
            Some(self.step),
            "event_unreadable",
            json!({ "kept": ids }),
        );
    }

    /// On to step `step + 1`, due now.
    fn advance(&mut self, now: i64) {
        self.state = InstanceState::Running;
        self.step += 1;
        self.attempt = 0;
        self.waiting_for.clear();
        self.deadline = None;
        self.due_at = Some(now);
    }

    fn fail(&mut self, wf: &CompiledWorkflow, row: &InstanceRow, error: String, now: i64) {
        self.state = InstanceState::Failed;
        self.waiting_for.clear();
        self.deadline = None;
        self.due_at = None;
        self.note(now, Some(row.step), "failed", json!({"error": error}));
        self.publish.push(announce(
            wf,
            row,
            "failed",
            json!({"step": wf.def.step_name(row.step as usize), "error": error}),
            now,
        ));
        self.error = Some(error);
    }
}

/// What a due instance does next.
pub fn plan(
    wf: &CompiledWorkflow,
    row: &InstanceRow,
    context: Map<String, Value>,
    kept: &[Kept],
    now: i64,
) -> Plan {
    let mut ch = Change::keep(row, context);
    let i = row.step as usize;
    match row.state {
        InstanceState::Starting => {
            ch.state = InstanceState::Running;
            ch.due_at = Some(now);
            ch.note(now, None, "started", json!({"version": row.version}));
            ch.publish
                .push(announce(wf, row, "started", json!({}), now));
            return Plan::Change(ch);
        }
        s if s.is_finished() => {
            ch.due_at = None;
            return Plan::Change(ch);
        }
        _ => {}
    }
    let Some(step) = wf.def.steps.get(i) else {
        ch.state = InstanceState::Completed;
        ch.due_at = None;
        ch.waiting_for.clear();
        ch.deadline = None;
        ch.note(now, None, "completed", Value::Null);
        let context = Value::Object(ch.context.clone());
        ch.publish.push(announce(
            wf,
            row,
            "completed",
            json!({ "context": context }),
            now,
        ));
        return Plan::Change(ch);
    };
    let name = wf.def.step_name(i);
    match &step.kind {
        StepKind::Action(a) => {
            if row.due_at.is_some_and(|d| d > now) {
                ch.due_at = row.due_at;
                return Plan::Change(ch);
            }
            return Plan::Act(a.clone());
        }
        StepKind::Emit(e) => {
            let mut event = Event::new(
                format!("{}.{}", row.id, name),
                format!("{ANNOUNCE_SOURCE}/{}", wf.id()),
                e.ty.clone(),
            );
            event.subject = e.subject.clone();
            event.time = Some(rfc3339_millis(now));
            event.datacontenttype = Some("application/json".into());
            event.data = Some(Data::Json(wf.emit_data(i, &ch.context)));
            event
                .extensions
                .insert(INSTANCE_ATTRIBUTE.into(), ExtValue::String(row.id.clone()));
            event
                .extensions
                .insert(DEPTH_ATTRIBUTE.into(), ExtValue::Integer(row.depth + 1));
            ch.note(
                now,
                Some(row.step),
                "emitted",
                json!({"step": name, "type": e.ty, "id": event.id}),
            );
            ch.publish.push(event);
            ch.advance(now);
        }
        StepKind::Delay(d) => {
            if row.state == InstanceState::Waiting && row.deadline.is_some_and(|t| t <= now) {
                ch.note(now, Some(row.step), "delay_elapsed", json!({"step": name}));
                ch.advance(now);
            } else if row.state == InstanceState::Waiting {
                ch.due_at = row.deadline;
            } else {
                let until = now.saturating_add(d.as_millis() as i64);
                ch.state = InstanceState::Waiting;
                ch.deadline = Some(until);
                ch.due_at = Some(until);
                ch.note(
                    now,
                    Some(row.step),
                    "sleeping",
                    json!({"step": name, "until": until}),
                );
            }
        }
        StepKind::Wait(w) => {
            for k in kept {
                if !w.types.contains(&k.event.ty) {
                    continue; // kept for a later wait step
                }
                ch.consume.push(k.id);
                if !wf.wait_accepts(i, &k.event) {
                    ch.note(
                        now,
                        Some(row.step),
                        "event_ignored",
                        json!({"step": name, "id": k.event.id, "type": k.event.ty, "seq": k.seq, "reason": "the wait filter does not match"}),
                    );
                    continue;
                }
                ch.context.insert(k.event.ty.clone(), payload(&k.event));
                ch.note(
                    now,
                    Some(row.step),
                    "woken",
                    json!({"step": name, "id": k.event.id, "source": k.event.source, "type": k.event.ty, "seq": k.seq}),
                );
                ch.advance(now);
                return Plan::Change(ch);
            }
            if row.state == InstanceState::Waiting {
                if row.deadline.is_some_and(|t| t <= now) {
                    ch.note(now, Some(row.step), "timed_out", json!({"step": name}));
                    match w.on_timeout {
                        OnTimeout::Continue => ch.advance(now),
                        OnTimeout::Fail => ch.fail(
                            wf,
                            row,
                            format!("step '{name}' waited for {:?} in vain", w.types),
                            now,
                        ),
                    }
                } else {
                    ch.due_at = row.deadline;
                }
            } else {
                let until = w.timeout.map(|t| now.saturating_add(t.as_millis() as i64));
                ch.state = InstanceState::Waiting;
                ch.waiting_for = w.types.clone();
                ch.deadline = until;
                ch.due_at = until;
                ch.note(
                    now,
                    Some(row.step),
                    "waiting",
                    json!({"step": name, "types": w.types, "until": until}),
                );
            }
        }
    }
    Plan::Change(ch)
}

/// The change after the current step's action ran.
pub fn after_action(
    wf: &CompiledWorkflow,
    row: &InstanceRow,
    context: Map<String, Value>,
    action: &Action,
    outcome: ActionOutcome,
    now: i64,
) -> Change {
    let mut ch = Change::keep(row, context);
    let name = wf.def.step_name(row.step as usize);
    let attempt = row.attempt + 1;
    match outcome {
        ActionOutcome::Succeeded { status, output } => {
            ch.note(
                now,
                Some(row.step),
                "action_succeeded",
                json!({"step": name, "attempt": attempt, "status": status, "output": output}),
            );
            ch.context.insert(name, output);
            ch.advance(now);
        }
        ActionOutcome::Failed {
            status,
            error,
            retryable,
        } => {
            ch.note(
                now,
                Some(row.step),
                "action_failed",
                json!({"step": name, "attempt": attempt, "status": status, "error": error}),
            );
            if retryable && attempt < i64::from(action.attempts) {
                ch.state = InstanceState::Running;
                ch.attempt = attempt;
                ch.due_at = Some(now.saturating_add(action.retry_delay.as_millis() as i64));
            } else {
                ch.attempt = attempt;
                let why = format!("step '{name}' failed after {attempt} attempt(s): {error}");
                ch.fail(wf, row, why, now);
            }
        }
    }
    ch
}

/// Cancel an unfinished instance; `None` when it has finished.
pub fn cancel(row: &InstanceRow, context: Map<String, Value>, now: i64) -> Option<Change> {
    if row.state.is_finished() {
        return None;
    }
    let mut ch = Change::keep(row, context);
    ch.state = InstanceState::Cancelled;
    ch.waiting_for.clear();
    ch.deadline = None;
    ch.due_at = None;
    ch.note(now, Some(row.step), "cancelled", Value::Null);
    Some(ch)
}

/// Fail an instance that cannot run (its definition version is missing or no longer
/// compiles), so that it stops being due; `None` when it has finished already.
pub fn broken(
    row: &InstanceRow,
    context: Map<String, Value>,
    reason: &str,
    now: i64,
) -> Option<Change> {
    if row.state.is_finished() {
        return None;
    }
    let mut ch = Change::keep(row, context);
    ch.state = InstanceState::Failed;
    ch.waiting_for.clear();
    ch.deadline = None;
    ch.due_at = None;
    ch.error = Some(reason.to_string());
    ch.note(now, Some(row.step), "failed", json!({"error": reason}));
    Some(ch)
}

/// Run a failed instance's failed step again from its first attempt; `None` unless failed.
pub fn retry(row: &InstanceRow, context: Map<String, Value>, now: i64) -> Option<Change> {
    if row.state != InstanceState::Failed {
        return None;
    }
    let mut ch = Change::keep(row, context);
    ch.state = InstanceState::Running;
    ch.attempt = 0;
    ch.error = None;
    ch.due_at = Some(now);
    ch.note(now, Some(row.step), "retried", Value::Null);
    Some(ch)
}

/// A `herald.workflow.<what>` announcement about an instance.
fn announce(wf: &CompiledWorkflow, row: &InstanceRow, what: &str, extra: Value, now: i64) -> Event {
    // The revision makes the id unique per announcement (a retried instance may fail again).
    let mut event = Event::new(
        format!("{}.{what}.{}", row.id, row.rev),
        ANNOUNCE_SOURCE,
        format!("herald.workflow.{what}"),
    );
    event.subject = Some(row.id.clone());
    event.time = Some(rfc3339_millis(now));
    event.datacontenttype = Some("application/json".into());
    let mut data = json!({"workflow": wf.id(), "version": row.version, "instance": row.id});
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    event.data = Some(Data::Json(data));
    event
        .extensions
        .insert(INSTANCE_ATTRIBUTE.into(), ExtValue::String(row.id.clone()));
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::workflow::WorkflowDefinition;

    fn wf(steps: Value) -> CompiledWorkflow {
        let def = WorkflowDefinition::parse(&json!({
            "id": "w", "start": {"type": "order.created"}, "steps": steps
        }))
        .unwrap();
        CompiledWorkflow::compile("p", 1, def).unwrap()
    }

    fn row(state: InstanceState, step: i64) -> InstanceRow {
        InstanceRow {
            project: "p".into(),
            id: "i1".into(),
            workflow: "w".into(),
            version: 1,
            state,
            step,
            attempt: 0,
            context: "{}".into(),
            waiting_for: Vec::new(),
            deadline: None,
            due_at: Some(0),
            rev: 3,
            created_at: 0,
            updated_at: 0,
            error: None,
            depth: 0,
        }
    }

    /// Apply a change to a row, as the store does.
    fn apply(r: &InstanceRow, ch: &Change) -> InstanceRow {
        InstanceRow {
            rev: r.rev + 1,
            ..ch.applied_to(r, 0)
        }
    }

    fn change(p: Plan) -> Change {
        match p {
            Plan::Change(c) => c,
            Plan::Act(_) => panic!("expected a change"),
        }
    }

    fn kept(id: i64, ty: &str, data: Value) -> Kept {
        let mut event = Event::new(format!("e{id}"), "/pay", ty);
        event.data = Some(Data::Json(data));
        Kept { id, seq: id, event }
    }

    #[test]
    fn a_start_is_announced_then_the_steps_run_in_order() {
        let w = wf(json!([{"emit": {"type": "order.accepted"}}]));
        let mut r = row(InstanceState::Starting, 0);
        r.context = json!({"order.created": {"n": 1}}).to_string();
        let ctx = |r: &InstanceRow| serde_json::from_str(&r.context).unwrap();
        let c = change(plan(&w, &r, ctx(&r), &[], 10));
        assert_eq!(c.state, InstanceState::Running);
        assert_eq!(c.publish[0].ty, "herald.workflow.started");
        assert_eq!(c.history[0].kind, "started");
        let r = apply(&r, &c);
        let c = change(plan(&w, &r, ctx(&r), &[], 11));
        assert_eq!(c.publish[0].ty, "order.accepted");
        assert_eq!(
            c.publish[0].data,
            Some(Data::Json(json!({"order.created": {"n": 1}}))),
            "without a data expression, an emit publishes the context"
        );
        assert_eq!(c.step, 1);
        let r = apply(&r, &c);
        let c = change(plan(&w, &r, ctx(&r), &[], 12));
        assert_eq!(c.state, InstanceState::Completed);
        assert_eq!(c.due_at, None);
        assert_eq!(c.publish[0].ty, "herald.workflow.completed");
    }

    #[test]
    fn a_wait_consumes_a_kept_event_of_its_type_and_keeps_others() {
        let w = wf(json!([
            {"wait": {"types": ["payment.received"], "timeout": "1h"}},
            {"wait": {"types": ["order.shipped"]}}
        ]));
        let r = row(InstanceState::Running, 0);
        let early = [
            kept(7, "order.shipped", json!({"by": "dhl"})),
            kept(8, "payment.received", json!({"amount": 3})),
        ];
        // An event that arrived before the wait step is consumed when it is reached.
        let c = change(plan(&w, &r, Map::new(), &early, 100));
        assert_eq!(c.consume, vec![8]);
        assert_eq!(c.context["payment.received"], json!({"amount": 3}));
        assert_eq!((c.state, c.step), (InstanceState::Running, 1));
        let r = apply(&r, &c);
        let c = change(plan(&w, &r, c.context.clone(), &early[..1], 101));
        assert_eq!(c.consume, vec![7]);
        assert_eq!(
            c.context.len(),
            2,
            "the context accumulates payloads by type"
        );
    }

    #[test]
    fn a_wait_sleeps_until_its_deadline_then_continues_or_fails() {
        for (on_timeout, expect) in [
            ("continue", InstanceState::Running),
            ("fail", InstanceState::Failed),
        ] {
            let w =
                wf(json!([{"wait": {"types": ["x"], "timeout": "10s", "on_timeout": on_timeout}}]));
            let r = row(InstanceState::Running, 0);
            let c = change(plan(&w, &r, Map::new(), &[], 1_000));
            assert_eq!(c.state, InstanceState::Waiting);
            assert_eq!((c.deadline, c.due_at), (Some(11_000), Some(11_000)));
            assert_eq!(c.waiting_for, vec!["x".to_string()]);
            let r = apply(&r, &c);
            // Woken early with nothing for it: back to sleep until the deadline.
            let mut early = r.clone();
            early.due_at = Some(5_000);
            let c2 = change(plan(&w, &early, Map::new(), &[], 5_000));
            assert_eq!(
                (c2.state, c2.due_at),
                (InstanceState::Waiting, Some(11_000))
            );
            let c3 = change(plan(&w, &r, Map::new(), &[], 11_000));
            assert_eq!(c3.state, expect);
            assert_eq!(c3.history[0].kind, "timed_out");
        }
    }

    #[test]
    fn an_event_failing_the_wait_filter_is_dropped_with_a_note() {
        let w = wf(json!([{"wait": {"types": ["pay"], "filter": "amount > 10"}}]));
        let r = row(InstanceState::Waiting, 0);
        let c = change(plan(
            &w,
            &r,
            Map::new(),
            &[
                kept(1, "pay", json!({"amount": 5})),
                kept(2, "pay", json!({"amount": 50})),
            ],
            0,
        ));
        assert_eq!(c.consume, vec![1, 2]);
        assert_eq!(c.history[0].kind, "event_ignored");
        assert_eq!(c.context["pay"], json!({"amount": 50}));
        assert_eq!(c.step, 1);
    }

    #[test]
    fn a_delay_sleeps_on_a_timer() {
        let w = wf(json!([{"delay": "2s"}]));
        let r = row(InstanceState::Running, 0);
        let c = change(plan(&w, &r, Map::new(), &[], 0));
        assert_eq!((c.state, c.due_at), (InstanceState::Waiting, Some(2_000)));
        let r = apply(&r, &c);
        assert_eq!(change(plan(&w, &r, Map::new(), &[], 1_000)).step, 0);
        assert_eq!(change(plan(&w, &r, Map::new(), &[], 2_000)).step, 1);
    }

    #[test]
    fn actions_retry_then_fail_and_a_failed_step_can_be_retried() {
        let w = wf(
            json!([{"name": "reserve", "action": {"url": "http://x/", "attempts": 2, "retry_delay": "1s"}}]),
        );
        let r = row(InstanceState::Running, 0);
        let Plan::Act(a) = plan(&w, &r, Map::new(), &[], 0) else {
            panic!("an action step acts")
        };
        let failed = |retryable| ActionOutcome::Failed {
            status: Some(500),
            error: "HTTP 500".into(),
            retryable,
        };
        let c = after_action(&w, &r, Map::new(), &a, failed(true), 0);
        assert_eq!(
            (c.state, c.attempt, c.due_at),
            (InstanceState::Running, 1, Some(1_000))
        );
        let r1 = apply(&r, &c);
        let c = after_action(&w, &r1, Map::new(), &a, failed(true), 1_000);
        assert_eq!(c.state, InstanceState::Failed);
        assert!(c.error.as_deref().unwrap().contains("2 attempt"));
        assert_eq!(c.publish[0].ty, "herald.workflow.failed");
        // A final status fails at once.
        let c = after_action(&w, &r, Map::new(), &a, failed(false), 0);
        assert_eq!(c.state, InstanceState::Failed);

        let failed_row = apply(&r1, &c);
        let again = retry(&failed_row, Map::new(), 5).unwrap();
        assert_eq!(
            (again.state, again.attempt, again.error),
            (InstanceState::Running, 0, None)
        );
        assert!(
            retry(&r, Map::new(), 5).is_none(),
            "only a failed instance is retried"
        );

        let ok = ActionOutcome::Succeeded {
            status: 200,
            output: json!({"reserved": true}),
        };
        let c = after_action(&w, &r, Map::new(), &a, ok, 0);
        assert_eq!(c.context["reserve"], json!({"reserved": true}));
        assert_eq!(c.step, 1);
    }

    #[test]
    fn changes_chain_into_one() {
        let w = wf(json!([{"wait": {"types": ["pay"]}}, {"emit": {"type": "paid"}}]));
        let r = row(InstanceState::Waiting, 0);
        let woken = change(plan(&w, &r, Map::new(), &[kept(4, "pay", json!(1))], 0));
        let r1 = woken.applied_to(&r, 0);
        let emitted = change(plan(&w, &r1, woken.context.clone(), &[], 0));
        let both = woken.clone().then(emitted.clone());
        assert_eq!((both.state, both.step), (emitted.state, 2));
        assert_eq!(both.consume, vec![4]);
        assert_eq!(both.history.len(), 2);
        assert_eq!(both.publish.len(), 1);
        assert_eq!(both.context, emitted.context);
    }

    #[test]
    fn cancel_ends_an_unfinished_instance_only() {
        let c = cancel(&row(InstanceState::Waiting, 0), Map::new(), 1).unwrap();
        assert_eq!((c.state, c.due_at), (InstanceState::Cancelled, None));
        assert!(cancel(&row(InstanceState::Completed, 0), Map::new(), 1).is_none());
    }
}

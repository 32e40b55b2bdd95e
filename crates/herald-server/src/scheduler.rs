//! Fires scheduled events (the queue API's `delay` and `timestamp`). When one is due it is
//! routed with the subscriptions of that moment and appended to the log, and its schedule
//! is forgotten in the same transaction, so a crash fires it later rather than twice. The
//! store is asked for the next due time at least every second, and at once when an event
//! is scheduled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{now_millis, Event, Topic};
use herald_store::{NewEvent, ScheduledEvent, StoreError};

use crate::AppState;

/// Scheduled events fired per store round trip.
const BATCH: usize = 256;
/// Longest sleep between looks at the schedule.
const MAX_SLEEP_MS: i64 = 1_000;

pub async fn run(app: Arc<AppState>) {
    loop {
        match fire_due(&app).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not fire scheduled events; trying again in a second");
                tokio::time::sleep(Duration::from_millis(MAX_SLEEP_MS as u64)).await;
                continue;
            }
        }
        let next = app.store.next_scheduled().await.ok().flatten();
        let wait = next.map_or(MAX_SLEEP_MS, |t| (t - now_millis()).clamp(0, MAX_SLEEP_MS));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = app.scheduled.notified() => {}
        }
    }
}

/// Fire what is due; true when a full batch went out (more may be due).
async fn fire_due(app: &AppState) -> Result<bool, StoreError> {
    let due = app.store.due_scheduled(now_millis(), BATCH).await?;
    let full = due.len() == BATCH;
    let mut by_project: BTreeMap<String, Vec<(i64, NewEvent)>> = BTreeMap::new();
    let now = now_millis();
    for row in due {
        let fired = routed(app, &row, now);
        by_project
            .entry(row.project)
            .or_default()
            .push((row.id, fired));
    }
    for (project, fired) in by_project {
        let routed: Vec<String> = fired
            .iter()
            .flat_map(|(_, e)| e.deliveries.iter().cloned())
            .collect();
        let window = app.config.dedup_window.as_millis() as i64;
        app.store.fire_scheduled(&project, window, fired).await?;
        for id in routed {
            app.engine.notify(&project, &id, now);
        }
        app.flow.notify();
    }
    Ok(full)
}

/// A due scheduled event as an append, routed now.
fn routed(app: &AppState, row: &ScheduledEvent, now: i64) -> NewEvent {
    let topic = Topic::parse(&row.topic).unwrap_or_else(|_| Topic::root());
    match Event::from_stored_json(&row.body) {
        Ok(event) => NewEvent {
            deliveries: app.registry.route(&row.project, &topic, &event),
            held: Vec::new(),
            flow: app.flow.routing(&row.project, &event),
            id: event.id,
            source: event.source,
            ty: event.ty,
            topic: row.topic.clone(),
            received_at: now,
            body: row.body.clone(),
        },
        // Herald wrote the body itself; should it ever not read back, keep it in the log
        // (unrouted) rather than fire it again and again.
        Err(e) => {
            tracing::error!(schedule = row.id, error = %e, "scheduled event does not parse; logged unrouted");
            NewEvent {
                id: format!("scheduled-{}", row.id),
                source: "herald/scheduler".into(),
                ty: "herald.unreadable".into(),
                topic: row.topic.clone(),
                received_at: now,
                body: row.body.clone(),
                deliveries: Vec::new(),
                held: Vec::new(),
                flow: Default::default(),
            }
        }
    }
}

//! The scheduling queue, in Space Cloud's shape: `POST /v1/api/{project}/eventing/queue`
//! with `{type, data | payload, timestamp, delay, isSynchronous}`. An event due now is
//! routed and appended like any ingest; a later one waits durably in the store's schedule
//! (see `scheduler.rs`); a synchronous one goes at once to the first matching webhook
//! subscription, whose answer is the response. Units: `herald_core::queue`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::queue::QueueRequest;
use herald_core::retry::{self, Outcome};
use herald_core::{now_millis, Data, Event, Problem, Topic};
use herald_store::{AppendBatch, AppendOutcome, NewEvent, NewScheduled};
use serde_json::{json, Value};

use super::ingest::commit;
use super::projects::require;
use crate::auth::Caller;
use crate::error::{parse_json, ApiError, ApiResult};
use crate::AppState;

pub async fn enqueue(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
    caller: Caller,
    body: Body,
) -> ApiResult<Response> {
    require(&app, &project)?;
    let limit = app.config.limits.max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError(Problem::too_large(format!(
            "the request body exceeds the limit of {limit} bytes"
        )))
    })?;
    let request: QueueRequest = parse_json(&body, "queue-request")?;
    let now = now_millis();
    let queued = request.validate(now).map_err(|e| {
        ApiError(Problem::bad_request(
            "invalid-queue-request",
            format!("{}: {}", e.field, e.message),
        ))
    })?;

    let id = queued
        .id
        .clone()
        .unwrap_or_else(|| format!("evt_{}", uuid::Uuid::now_v7().simple()));
    let mut event = Event::new(id, format!("/v1/api/{project}/eventing/queue"), queued.ty);
    event.time = chrono::DateTime::from_timestamp_millis(queued.due_at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    if let Some(data) = queued.data {
        event.datacontenttype = Some("application/json".into());
        event.data = Some(Data::Json(data));
    }
    caller.stamp(std::slice::from_mut(&mut event));
    event.validate(&app.config.limits)?;

    if queued.synchronous {
        return synchronous(&app, &project, event).await;
    }
    if queued.due_at > now {
        app.store
            .schedule(NewScheduled {
                project,
                topic: String::new(),
                due_at: queued.due_at,
                body: event.to_json_bytes(),
            })
            .await?;
        app.scheduled.notify_one();
        let body = json!({"id": event.id, "status": "scheduled", "due": event.time});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let deliveries = app.registry.route(&project, &Topic::root(), &event);
    let outcome = append(&app, &project, &event, deliveries, Vec::new(), now).await?;
    let body = json!({
        "id": event.id,
        "status": if matches!(outcome, AppendOutcome::Duplicate { .. }) { "duplicate" } else { "queued" },
        "seq": seq_of(outcome),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn seq_of(o: AppendOutcome) -> i64 {
    match o {
        AppendOutcome::Stored { seq } | AppendOutcome::Duplicate { seq } => seq,
    }
}

async fn append(
    app: &Arc<AppState>,
    project: &str,
    event: &Event,
    deliveries: Vec<String>,
    held: Vec<(String, i64)>,
    now: i64,
) -> ApiResult<AppendOutcome> {
    let batch = AppendBatch {
        project: project.to_string(),
        dedup_window_ms: app.config.dedup_window.as_millis() as i64,
        events: vec![NewEvent {
            id: event.id.clone(),
            source: event.source.clone(),
            ty: event.ty.clone(),
            topic: String::new(),
            received_at: now,
            body: event.to_json_bytes(),
            deliveries,
            held,
            flow: app.flow.routing(project, event),
        }],
    };
    let outcomes = commit(app, batch, now).await?;
    outcomes
        .into_iter()
        .next()
        .ok_or_else(|| ApiError(Problem::internal("the store returned no outcome")))
}

/// How much longer than the synchronous timeout the answering delivery is held.
const HOLD_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Settle the answering subscription's held delivery: gone when the webhook took the
/// event, else retried on its subscription's schedule like any failed first attempt.
async fn settle(
    app: &AppState,
    project: &str,
    sub: &herald_core::subscription::Subscription,
    seq: i64,
    report: &herald_delivery::sinks::AttemptReport,
) {
    let now = now_millis();
    let retry_at = match &report.outcome {
        Outcome::Delivered => None,
        // Another try cannot help (e.g. 400): leave it to the queue's own handling.
        Outcome::Final => Some(now),
        Outcome::Retryable { retry_after } => Some(
            match retry::next_attempt(&sub.delivery.retry, 1, now, now, *retry_after, 0.0) {
                retry::Next::RetryAt(at) => at,
                retry::Next::Exhausted => now,
            },
        ),
    };
    match app.store.settle_held(project, &sub.id, seq, retry_at).await {
        Ok(true) => {
            if let Some(at) = retry_at {
                app.engine.notify(project, &sub.id, at);
            }
        }
        Ok(false) => {}
        Err(e) => {
            // Still held: the queue delivers it once the hold ends.
            tracing::warn!(subscription = %sub.id, error = %e, "could not settle a synchronous delivery");
        }
    }
}

/// Deliver at once to the first matching active subscription (by id) and answer with
/// its webhook's status and body. The event is logged, and any other matching
/// subscriptions get it through the queue as usual.
async fn synchronous(app: &Arc<AppState>, project: &str, event: Event) -> ApiResult<Response> {
    let now = now_millis();
    let mut matching: Vec<_> = app
        .registry
        .route(project, &Topic::root(), &event)
        .into_iter()
        .filter_map(|id| app.registry.get(project, &id))
        .filter(|e| e.sub.is_active())
        .collect();
    matching.sort_by(|a, b| a.sub.id.cmp(&b.sub.id));
    // Only a webhook can answer; emitters of other kinds get the event through the queue.
    let Some(answering) = matching.iter().find(|e| e.sub.protocol == "HTTP").cloned() else {
        return Err(ApiError(Problem::not_found(
            "subscription",
            format!(
                "no active webhook subscription of project '{project}' matches an event of type '{}'; nothing was stored",
                event.ty
            ),
        )));
    };
    let others = matching
        .iter()
        .filter(|e| e.sub.id != answering.sub.id)
        .map(|e| e.sub.id.clone())
        .collect();
    // The answering subscription's delivery is stored too, held while this request
    // delivers it: its outcome settles it below, and a crash leaves it to the queue.
    let sync_timeout = app.config.queue.sync_timeout;
    let hold_until = now + (sync_timeout + HOLD_MARGIN).as_millis() as i64;
    let held = vec![(answering.sub.id.clone(), hold_until)];
    let seq = match append(app, project, &event, others, held, now).await? {
        AppendOutcome::Stored { seq } => seq,
        AppendOutcome::Duplicate { .. } => {
            return Err(ApiError(Problem::conflict(
                "duplicate-event",
                format!(
                    "an event with id '{}' was already queued; it is not delivered again",
                    event.id
                ),
            )))
        }
    };
    let report = app
        .engine
        .deliver_now(
            &answering,
            event,
            sync_timeout,
            app.config.limits.max_body_bytes,
        )
        .await;
    settle(app, project, &answering.sub, seq, &report).await;
    let Some(status) = report.status else {
        let error = report.error.unwrap_or_default();
        let problem = if error.starts_with("timed out") {
            Problem::new(
                504,
                "webhook-timeout",
                "Webhook timeout",
                format!(
                    "the webhook of subscription '{}' did not answer within {:?}",
                    answering.sub.id,
                    app.config
                        .queue
                        .sync_timeout
                        .min(answering.sub.delivery.timeout)
                ),
            )
        } else {
            Problem::new(
                502,
                "webhook-failed",
                "Webhook failed",
                format!(
                    "the webhook of subscription '{}' could not be reached: {error}",
                    answering.sub.id
                ),
            )
        };
        return Err(ApiError(problem));
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let text = report.response_body.unwrap_or_default();
    let mut response = match serde_json::from_str::<Value>(&text) {
        // Space Cloud's webhooks answer `{"response": ...}` for the synchronous caller.
        Ok(Value::Object(mut o)) if o.contains_key("response") => {
            let result = o.remove("response").unwrap_or(Value::Null);
            (status, Json(json!({ "result": result }))).into_response()
        }
        Ok(v) => (status, Json(json!({ "result": v }))).into_response(),
        Err(_) => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&answering.sub.id) {
        response.headers_mut().insert("herald-subscription", v);
    }
    Ok(response)
}

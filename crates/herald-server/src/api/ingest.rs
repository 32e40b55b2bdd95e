//! Ingest: `POST /v1/api/{project}/events` and `.../topics/{topic path}/events` in binary,
//! structured and batch mode. The answer is 202 only once the events and their routed
//! deliveries are committed; `OPTIONS` answers the CloudEvents webhook handshake.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::binding::decode_request;
use herald_core::{now_millis, Event, Problem, Topic};
use herald_store::{AppendBatch, AppendOutcome, NewEvent};
use serde_json::json;

use super::projects::require;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::hub::routed;
use crate::metrics::METRICS;
use crate::AppState;

pub async fn root(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    counted(ingest(app, project, Topic::root(), &caller, headers, body).await)
}

pub async fn topic(
    State(app): State<Arc<AppState>>,
    Path((project, path)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    counted(async { ingest(app, project, topic_of(&path)?, &caller, headers, body).await }.await)
}

/// Count every problem ingest answers, by its status.
fn counted(result: ApiResult<Response>) -> ApiResult<Response> {
    if let Err(ApiError(problem)) = &result {
        METRICS.record_rejected(problem.status);
    }
    result
}

fn topic_of(path: &str) -> ApiResult<Topic> {
    let Some(topic) =
        path.strip_suffix("/events")
            .or(if path == "events" { Some("") } else { None })
    else {
        return Err(ApiError(Problem::not_found(
            "route",
            "topic ingest paths end with /events, e.g. /v1/api/default/topics/service/production/events",
        )));
    };
    Ok(Topic::parse(topic)?)
}

async fn ingest(
    app: Arc<AppState>,
    project: String,
    topic: Topic,
    caller: &Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require(&app, &project)?;
    let limit = app.config.limits.max_body_bytes;
    let too_large = || {
        ApiError(Problem::too_large(format!(
            "the request body exceeds the limit of {limit} bytes"
        )))
    };
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    let (_, mut events) = decode_request(&pairs, &body, &app.config.limits)?;
    check_signatures(&app, &project, &headers, &body, &events)?;
    caller.stamp(&mut events);

    let received_at = now_millis();
    let new_events: Vec<NewEvent> = events
        .iter()
        .map(|e| NewEvent {
            flow: app.flow.routing(&project, e),
            ..routed(&app.registry, &project, &topic, e, received_at)
        })
        .collect();
    let batch = AppendBatch {
        project: project.clone(),
        dedup_window_ms: app.config.dedup_window.as_millis() as i64,
        events: new_events,
    };
    let outcomes = commit(&app, batch, received_at).await?;

    let items: Vec<_> = events
        .iter()
        .zip(&outcomes)
        .map(|(e, o)| match o {
            AppendOutcome::Stored { seq } => {
                json!({"id": e.id, "source": e.source, "seq": seq, "duplicate": false})
            }
            AppendOutcome::Duplicate { seq } => {
                json!({"id": e.id, "source": e.source, "seq": seq, "duplicate": true})
            }
        })
        .collect();
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, AppendOutcome::Duplicate { .. }))
        .count();
    METRICS.record_ingest((outcomes.len() - duplicates) as u64, duplicates as u64);
    let body =
        json!({"accepted": outcomes.len() - duplicates, "duplicates": duplicates, "events": items});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Append routed events and hand their deliveries to the engine. The commit runs in its
/// own task: if the client goes away mid-request, what was committed is still delivered.
pub(crate) async fn commit(
    app: &Arc<AppState>,
    batch: AppendBatch,
    received_at: i64,
) -> ApiResult<Vec<AppendOutcome>> {
    let mut routed: Vec<String> = batch
        .events
        .iter()
        .flat_map(|e| e.deliveries.iter().cloned())
        .collect();
    routed.sort_unstable();
    routed.dedup();
    let flows = batch
        .events
        .iter()
        .any(|e| !e.flow.starts.is_empty() || e.flow.wake.is_some());
    let (store, engine, flow) = (app.store.clone(), app.engine.clone(), app.flow.clone());
    let outcomes = tokio::spawn(async move {
        let project = batch.project.clone();
        let r = store.append(batch).await;
        if r.is_ok() {
            for id in &routed {
                engine.notify(&project, id, received_at);
            }
            if flows {
                flow.notify();
            }
        }
        r
    })
    .await
    .map_err(|e| ApiError(Problem::internal(format!("ingest task failed: {e}"))))??;
    Ok(outcomes)
}

/// Events from a registered source must carry a valid signature of the raw body;
/// otherwise nothing of the request is stored.
fn check_signatures(
    app: &AppState,
    project: &str,
    headers: &HeaderMap,
    body: &[u8],
    events: &[Event],
) -> ApiResult<()> {
    let mut checked: Vec<&str> = Vec::new();
    for e in events {
        if checked.contains(&e.source.as_str()) {
            continue;
        }
        checked.push(&e.source);
        let Some(source) = app.source(project, &e.source) else {
            continue;
        };
        let header = &source.signature.header;
        let valid = headers
            .get(header.as_str())
            .is_some_and(|v| source.verify(body, v.as_bytes()));
        if !valid {
            return Err(ApiError(Problem::new(
                401,
                "invalid-signature",
                "Unauthorized",
                format!(
                    "source '{}' is registered: sign the exact request body with HMAC-SHA256 under one of its secrets and send it ({:?}) in the '{header}' header",
                    e.source, source.signature.encoding
                ),
            )));
        }
    }
    Ok(())
}

/// `POST /e/{source}`: a binary-mode event from a registered source into the default
/// project (the shape of Emporix's signals endpoint). `ce-source` defaults to the path.
pub async fn signal(
    State(app): State<Arc<AppState>>,
    Path(source): Path<String>,
    caller: Caller,
    mut headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    counted(signal_inner(app, source, &caller, &mut headers, body).await)
}

async fn signal_inner(
    app: Arc<AppState>,
    source: String,
    caller: &Caller,
    headers: &mut HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    const PROJECT: &str = "default";
    if app.source(PROJECT, &source).is_none() {
        return Err(ApiError(Problem::not_found(
            "source",
            format!("source '{source}' is not registered in project '{PROJECT}'"),
        )));
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct
        .to_ascii_lowercase()
        .starts_with("application/cloudevents")
    {
        return Err(ApiError(Problem::unsupported_media(
            "this endpoint takes binary mode: ce- headers and the data as the body",
        )));
    }
    match headers
        .get("ce-source")
        .map(|v| herald_core::binding::decode_header_value(v.as_bytes()))
    {
        None => {
            let value = HeaderValue::from_str(&herald_core::binding::encode_header_value(&source))
                .map_err(|_| {
                    ApiError(Problem::bad_request(
                        "invalid-source",
                        "the source cannot be a header value",
                    ))
                })?;
            headers.insert("ce-source", value);
        }
        Some(Ok(given)) if given == source => {}
        Some(_) => {
            return Err(ApiError(Problem::bad_request(
                "invalid-event",
                format!("ce-source must be '{source}' (the path's source) or absent"),
            )))
        }
    }
    ingest(
        app,
        PROJECT.to_string(),
        Topic::root(),
        caller,
        headers.clone(),
        body,
    )
    .await
}

/// The CloudEvents webhook validation handshake (abuse protection), receiving side.
pub async fn handshake(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let cfg = &app.config.webhook;
    let origin = headers
        .get("webhook-request-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let allowed = match origin {
        Some(o)
            if cfg
                .allowed_origins
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(o)) =>
        {
            Some(o.to_string())
        }
        Some(_) => None,
        None if cfg.allowed_origins.iter().any(|a| a == "*") => Some("*".to_string()),
        None => None,
    };
    let Some(allowed) = allowed else {
        return ApiError(Problem::new(
            403,
            "origin-not-allowed",
            "Forbidden",
            "this origin may not send events here",
        ))
        .into_response();
    };
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert("allow", HeaderValue::from_static("POST, OPTIONS"));
    if let Ok(v) = HeaderValue::from_str(&allowed) {
        h.insert("webhook-allowed-origin", v);
    }
    if let Ok(v) = HeaderValue::from_str(&cfg.allowed_rate) {
        h.insert("webhook-allowed-rate", v);
    }
    resp
}

//! Emitters in Trisotech's public API shape, on the `default` project:
//! `POST/GET /publicapi/emitters/definitions`, `GET/PUT/DELETE .../definitions/{id}`,
//! `POST .../{id}/enable` and `.../disable`, and `GET /publicapi/emitters/audit/{id}` for
//! an Audit emitter's log. Each emitter is a subscription (`herald_core::emitter` maps
//! it). Callers must authenticate: owners manage their own emitters, admins all; `File`
//! and `Console` write on the server, so only admins may define them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::emitter::{EmitterDefinition, EmitterSink};
use herald_core::subscription::{Subscription, SubscriptionState};
use herald_core::{now_millis, Problem};
use herald_delivery::registry::Entry;
use serde::Deserialize;
use serde_json::{json, Value};

use super::subscriptions::{compile, find_for_edit, save, save_new, set_enabled};
use crate::auth::{Caller, Identity};
use crate::error::{parse_json, query, ApiError, ApiResult};
use crate::AppState;

/// Emitters live in this project.
const PROJECT: &str = "default";
/// Most audit entries in one answer.
const MAX_AUDIT_ENTRIES: usize = 10_000;

fn forbidden(detail: String) -> ApiError {
    ApiError(Problem::new(403, "forbidden", "Forbidden", detail))
}

fn not_found(id: &str) -> ApiError {
    ApiError(Problem::not_found(
        "emitter",
        format!("emitter '{id}' does not exist"),
    ))
}

fn invalid(e: herald_core::emitter::EmitterError) -> ApiError {
    ApiError(Problem::bad_request(
        "invalid-emitter",
        format!("{}: {}", e.field, e.message),
    ))
}

/// The read view: the definition as written, with its state.
fn view(sub: &Subscription, def: &EmitterDefinition) -> Value {
    let mut v = serde_json::to_value(def).unwrap_or_default();
    v["enabled"] = json!(sub.is_active());
    if let SubscriptionState::Disabled { reason, since } = &sub.state {
        v["disabled"] = json!({"reason": reason, "since": since});
    }
    v
}

/// An emitter the caller may read: its own, a system emitter (no owner), or any for admins.
fn readable(
    app: &AppState,
    who: &Identity,
    id: &str,
) -> ApiResult<(Arc<Entry>, EmitterDefinition)> {
    let entry = app.registry.get(PROJECT, id).ok_or_else(|| not_found(id))?;
    let def = EmitterDefinition::of(&entry.sub).ok_or_else(|| not_found(id))?;
    match &def.owner {
        Some(owner) if owner != &who.name && !who.admin => Err(not_found(id)),
        _ => Ok((entry, def)),
    }
}

/// An emitter the caller may change: its own, or any but system emitters for admins.
fn writable(app: &AppState, who: &Identity, id: &str) -> ApiResult<EmitterDefinition> {
    let (_, def) = readable(app, who, id)?;
    match &def.owner {
        None => Err(forbidden(format!(
            "'{id}' is a system emitter: it is configured by its file, not through the API"
        ))),
        Some(owner) if owner != &who.name && !who.admin => Err(not_found(id)),
        _ => Ok(def),
    }
}

/// Check a definition the caller submits and fix its owner.
fn admit(who: &Identity, def: &mut EmitterDefinition) -> ApiResult<()> {
    match &def.owner {
        Some(owner) if owner != &who.name && !who.admin => {
            return Err(forbidden(format!(
                "only admins may define emitters for another owner ('{owner}')"
            )))
        }
        None => def.owner = Some(who.name.clone()),
        Some(_) => {}
    }
    let sink = def.sink().map_err(invalid)?;
    if sink.is_local_io() && !who.admin {
        return Err(forbidden(format!(
            "{} emitters write on the server; only admins may define them",
            def.ty
        )));
    }
    Ok(())
}

pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let who = caller.require()?.clone();
    let mut def: EmitterDefinition = parse_json(&body, "emitter")?;
    admit(&who, &mut def)?;
    let id = if def.id.is_empty() {
        format!("em_{}", uuid::Uuid::now_v7().simple())
    } else {
        herald_core::trigger::validate_id(&def.id).map_err(|e| {
            ApiError(Problem::bad_request(
                "invalid-emitter",
                format!("id: {}", e.message.replace("trigger", "emitter")),
            ))
        })?;
        def.id.clone()
    };
    if app.registry.get(PROJECT, &id).is_some() {
        return Err(ApiError(Problem::conflict(
            "emitter-exists",
            format!("an emitter or subscription '{id}' already exists"),
        )));
    }
    let mut sub = def.to_subscription(&id).map_err(invalid)?;
    sub.delivery = app.config.emitters.delivery.clone();
    let filter = compile(&sub)?;
    sub.succeed(None, now_millis());
    let Some(entry) = save_new(&app, PROJECT, sub, filter).await? else {
        // Created by a request racing this one since the check above.
        return Err(ApiError(Problem::conflict(
            "emitter-exists",
            format!("an emitter or subscription '{id}' already exists"),
        )));
    };
    let def = EmitterDefinition::of(&entry.sub).unwrap_or(def);
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/publicapi/emitters/definitions/{id}"),
        )],
        Json(view(&entry.sub, &def)),
    )
        .into_response())
}

pub async fn list(State(app): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<Value>> {
    let who = caller.require()?;
    let items: Vec<Value> = app
        .registry
        .list(PROJECT)
        .iter()
        .filter_map(|e| EmitterDefinition::of(&e.sub).map(|d| (e, d)))
        .filter(|(_, d)| d.owner.as_ref().is_none_or(|o| o == &who.name || who.admin))
        .map(|(e, d)| view(&e.sub, &d))
        .collect();
    Ok(Json(Value::Array(items)))
}

pub async fn get(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let (entry, def) = readable(&app, caller.require()?, &id)?;
    Ok(Json(view(&entry.sub, &def)))
}

pub async fn replace(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let who = caller.require()?.clone();
    let current = writable(&app, &who, &id)?;
    let mut value: Value = parse_json(&body, "emitter")?;
    if let Some(obj) = value.as_object_mut() {
        // A GET view can be PUT back: its read-only parts are ignored.
        for read_only in ["id", "enabled", "disabled"] {
            obj.remove(read_only);
        }
    }
    let mut def: EmitterDefinition = serde_json::from_value(value)
        .map_err(|e| ApiError(Problem::bad_request("invalid-emitter", e.to_string())))?;
    if def.owner.is_none() {
        def.owner = current.owner;
    }
    admit(&who, &mut def)?;
    let (entry, _editing) = find_for_edit(&app, PROJECT, &id).await?;
    let mut sub = def.to_subscription(&id).map_err(invalid)?;
    sub.delivery = app.config.emitters.delivery.clone();
    let filter = compile(&sub)?;
    sub.succeed(Some(&entry.sub), now_millis());
    let entry = save(&app, PROJECT, sub, filter).await?;
    let def = EmitterDefinition::of(&entry.sub).unwrap_or(def);
    Ok(Json(view(&entry.sub, &def)))
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    writable(&app, caller.require()?, &id)?;
    let (_, _editing) = find_for_edit(&app, PROJECT, &id).await?;
    app.store.delete_subscription(PROJECT, &id).await?;
    app.registry.remove(PROJECT, &id);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    switch(app, id, caller, true).await
}

pub async fn disable(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    switch(app, id, caller, false).await
}

async fn switch(
    app: Arc<AppState>,
    id: String,
    caller: Caller,
    on: bool,
) -> ApiResult<Json<Value>> {
    let def = writable(&app, caller.require()?, &id)?;
    let entry = set_enabled(&app, PROJECT, &id, on).await?;
    Ok(Json(view(&entry.sub, &def)))
}

/// The system emitter files and whether each loaded (any authenticated caller).
pub async fn system(State(app): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require()?;
    Ok(Json(json!(app.system_emitters())))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
}

/// A time bound: RFC 3339 or epoch milliseconds.
fn bound(v: Option<&str>, name: &str, default: i64) -> ApiResult<i64> {
    let Some(v) = v else { return Ok(default) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError(Problem::bad_request(
                "invalid-query",
                format!("{name}: '{v}' is neither an RFC 3339 date-time nor epoch milliseconds"),
            ))
        })
}

/// An Audit emitter's log, to its owner only: events kept from `start` (included) to
/// `end` (excluded), oldest first, as a JSON array.
pub async fn audit(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let who = caller.require()?;
    let q = query(q)?;
    let entry = app
        .registry
        .get(PROJECT, &id)
        .ok_or_else(|| not_found(&id))?;
    let def = EmitterDefinition::of(&entry.sub).ok_or_else(|| not_found(&id))?;
    if def.owner.as_deref() != Some(who.name.as_str()) {
        // The owner alone reads the log (admins included); a stranger learns nothing.
        return Err(if who.admin || def.owner.is_none() {
            forbidden(format!("only the owner of emitter '{id}' may read its log"))
        } else {
            not_found(&id)
        });
    }
    let pretty = match def.sink() {
        Ok(EmitterSink::Audit { pretty_print }) => pretty_print,
        _ => {
            return Err(ApiError(Problem::bad_request(
                "not-an-audit-emitter",
                format!(
                    "emitter '{id}' is a {} emitter; only Audit emitters keep a log",
                    def.ty
                ),
            )))
        }
    };
    let start = bound(q.start.as_deref(), "start", 0)?;
    let end = bound(q.end.as_deref(), "end", i64::MAX)?;
    let limit = q.limit.unwrap_or(1000).clamp(1, MAX_AUDIT_ENTRIES);
    let rows = app
        .store
        .read_audit(PROJECT, &id, start, end, limit)
        .await?;
    let mut body = Vec::new();
    body.push(b'[');
    for (i, (_, event)) in rows.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(if pretty { b",\n" } else { b"," });
        }
        body.extend_from_slice(event);
    }
    body.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

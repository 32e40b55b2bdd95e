//! Subscriptions in the shape of the CloudEvents Subscriptions API, plus their delivery
//! records: attempts, dead letters (with redeliver), enable/disable. Secrets
//! (`signing_secret`, `sinkcredential`) are write-only: shown on create, never on reads.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::signing::generate_secret;
use herald_core::subscription::{Subscription, SubscriptionState};
use herald_core::{now_millis, Problem};
use herald_delivery::registry::Entry;
use herald_filter::Filter;
use herald_store::StoredSubscription;
use serde::Deserialize;
use serde_json::{json, Value};

use super::projects::require;
use crate::error::{parse_json, ApiError, ApiResult};
use crate::AppState;

type SubPath = Path<(String, String)>;

/// The read view: secrets removed, credential reduced to its type.
fn view(sub: &Subscription) -> Value {
    let mut v = serde_json::to_value(sub).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("signing_secret");
        if let Some(c) = &sub.sinkcredential {
            obj.insert("sinkcredential".into(), c.redacted());
        }
    }
    v
}

/// A subscription this API may show and operate: not an emitter.
fn find_plain(app: &AppState, project: &str, id: &str) -> ApiResult<Arc<Entry>> {
    let entry = find(app, project, id)?;
    not_an_emitter(&entry)?;
    Ok(entry)
}

/// `config` keys Herald gives meaning to (emitter and trigger definitions, system
/// emitter files): set only by their own APIs, never by a subscription's author.
const RESERVED_CONFIG: [&str; 3] = ["trisotech.", "spacecloud.", "herald."];

fn no_reserved_config(sub: &Subscription) -> ApiResult<()> {
    match sub
        .config
        .keys()
        .find(|k| RESERVED_CONFIG.iter().any(|r| k.starts_with(r)))
    {
        Some(k) => Err(ApiError(Problem::bad_request(
            "invalid-subscription",
            format!("config.{k}: keys starting with trisotech., spacecloud. or herald. are Herald's own"),
        ))),
        None => Ok(()),
    }
}

/// Emitters are managed through the emitters API, which checks their owner (and system
/// emitters by their files only); this API, which asks no one who they are, leaves them be.
fn not_an_emitter(entry: &Entry) -> ApiResult<()> {
    if !entry
        .sub
        .config
        .contains_key(herald_core::emitter::CONFIG_KEY)
    {
        return Ok(());
    }
    let how = if crate::system_emitters::is_system(&entry.sub) {
        "change or remove its file instead"
    } else {
        "use /publicapi/emitters/definitions, which checks its owner"
    };
    Err(ApiError(Problem::new(
        403,
        "forbidden",
        "Forbidden",
        format!("'{}' is an emitter: {how}", entry.sub.id),
    )))
}

/// The subscriptions API creates webhook subscriptions; the local sink kinds belong to
/// the emitters API, which checks who may create them.
fn http_only(sub: &Subscription) -> ApiResult<()> {
    if sub.protocol == "HTTP" {
        return Ok(());
    }
    Err(ApiError(Problem::bad_request(
        "invalid-subscription",
        format!(
            "protocol: '{}' sinks are managed through /publicapi/emitters/definitions",
            sub.protocol
        ),
    )))
}

pub(super) fn compile(sub: &Subscription) -> ApiResult<Filter> {
    herald_filter::compile(&sub.filters)
        .map_err(|e| ApiError(Problem::bad_request("invalid-filter", e.to_string())))
}

fn find(app: &AppState, project: &str, id: &str) -> ApiResult<Arc<Entry>> {
    require(app, project)?;
    app.registry.get(project, id).ok_or_else(|| {
        ApiError(Problem::not_found(
            "subscription",
            format!("subscription '{id}' does not exist in project '{project}'"),
        ))
    })
}

/// The subscription, read again once its edit lock is held (see `Runtime::edit`), so
/// that the caller modifies the latest copy and no concurrent edit is lost.
pub(super) async fn find_for_edit(
    app: &AppState,
    project: &str,
    id: &str,
) -> ApiResult<(Arc<Entry>, tokio::sync::OwnedMutexGuard<()>)> {
    let lock = find(app, project, id)?.runtime.edit.clone();
    let guard = lock.lock_owned().await;
    Ok((find(app, project, id)?, guard))
}

/// Create a subscription under an id nobody has and register it; `None` (nothing
/// written) when the id is taken, even by a create racing this one.
pub(super) async fn save_new(
    app: &AppState,
    project: &str,
    sub: Subscription,
    filter: Filter,
) -> ApiResult<Option<Arc<Entry>>> {
    let stored = StoredSubscription {
        project: project.to_string(),
        sub: sub.clone(),
    };
    if !app.store.insert_subscription(project, &stored).await? {
        return Ok(None);
    }
    Ok(Some(app.registry.upsert(project, sub, filter)))
}

/// Replace an existing subscription; 404 if it was deleted meanwhile (never re-created).
pub(super) async fn save(
    app: &AppState,
    project: &str,
    sub: Subscription,
    filter: Filter,
) -> ApiResult<Arc<Entry>> {
    let stored = StoredSubscription {
        project: project.to_string(),
        sub: sub.clone(),
    };
    if !app.store.update_subscription(project, &stored).await? {
        return Err(ApiError(Problem::not_found(
            "subscription",
            format!(
                "subscription '{}' does not exist in project '{project}'",
                sub.id
            ),
        )));
    }
    Ok(app.registry.upsert(project, sub, filter))
}

pub async fn create(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require(&app, &project)?;
    let mut sub: Subscription = parse_json(&body, "subscription")?;
    // The spec: an `id` on input is ignored; the manager assigns one.
    sub.id = format!("sub_{}", uuid::Uuid::now_v7().simple());
    sub.state = SubscriptionState::Active;
    sub.created_at = now_millis();
    sub.updated_at = sub.created_at;
    http_only(&sub)?;
    no_reserved_config(&sub)?;
    sub.validate()?;
    let filter = compile(&sub)?;
    if sub.signing_secret.is_none() {
        sub.signing_secret = Some(generate_secret());
    }
    if save_new(&app, &project, sub.clone(), filter)
        .await?
        .is_none()
    {
        // Ids are generated: only a stored id that is somehow reused gets here.
        return Err(ApiError(Problem::conflict(
            "subscription-exists",
            format!("subscription '{}' exists; try again", sub.id),
        )));
    }
    let mut body = view(&sub);
    body["signing_secret"] = json!(sub.signing_secret);
    let location = format!("/v1/api/{project}/subscriptions/{}", sub.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

pub async fn list(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let subs: Vec<Value> = app
        .registry
        .list(&project)
        .iter()
        .filter(|e| not_an_emitter(e).is_ok())
        .map(|e| view(&e.sub))
        .collect();
    Ok(Json(Value::Array(subs)))
}

pub async fn get(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
) -> ApiResult<Json<Value>> {
    let entry = find_plain(&app, &project, &id)?;
    let backlog = app.store.backlog(&project, &id).await?;
    let mut body = view(&entry.sub);
    body["backlog"] = json!(backlog);
    Ok(Json(body))
}

pub async fn replace(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (current, _editing) = find_for_edit(&app, &project, &id).await?;
    not_an_emitter(&current)?;
    let mut sub = parse_replacement(&body)?;
    sub.id = id;
    sub.state = current.sub.state.clone();
    sub.created_at = current.sub.created_at;
    sub.updated_at = now_millis();
    // Write-only fields keep their value when a client (who cannot read them) omits them.
    if sub.signing_secret.is_none() {
        sub.signing_secret = current.sub.signing_secret.clone();
    }
    if sub.sinkcredential.is_none() {
        sub.sinkcredential = current.sub.sinkcredential.clone();
    }
    http_only(&sub)?;
    no_reserved_config(&sub)?;
    sub.validate()?;
    let filter = compile(&sub)?;
    let entry = save(&app, &project, sub, filter).await?;
    Ok(Json(view(&entry.sub)))
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
) -> ApiResult<StatusCode> {
    let (current, _editing) = find_for_edit(&app, &project, &id).await?;
    not_an_emitter(&current)?;
    app.store.delete_subscription(&project, &id).await?;
    app.registry.remove(&project, &id);
    Ok(StatusCode::NO_CONTENT)
}

/// A PUT body is a subscription; what a GET shows beyond that (`backlog`, `state`, times,
/// a credential reduced to its type) is accepted and ignored, so a GET can be edited and
/// PUT back as it is.
fn parse_replacement(body: &[u8]) -> ApiResult<Subscription> {
    let mut value: Value = parse_json(body, "subscription")?;
    if let Some(obj) = value.as_object_mut() {
        for read_only in ["id", "backlog", "state", "created_at", "updated_at"] {
            obj.remove(read_only);
        }
        let redacted = obj
            .get("sinkcredential")
            .and_then(Value::as_object)
            .is_some_and(|c| c.len() == 1 && c.contains_key("credentialtype"));
        if redacted {
            obj.remove("sinkcredential");
        }
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError(Problem::bad_request(
            "invalid-subscription",
            format!("the subscription is not valid: {e}"),
        ))
    })
}

/// Re-activate a subscription; everything queued meanwhile becomes due at once.
pub async fn enable(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
) -> ApiResult<Json<Value>> {
    not_an_emitter(&*find(&app, &project, &id)?)?;
    let entry = set_enabled(&app, &project, &id, true).await?;
    Ok(Json(view(&entry.sub)))
}

/// Pause deliveries by hand; events keep being queued for the subscription.
pub async fn disable(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
) -> ApiResult<Json<Value>> {
    not_an_emitter(&*find(&app, &project, &id)?)?;
    let entry = set_enabled(&app, &project, &id, false).await?;
    Ok(Json(view(&entry.sub)))
}

/// Enable (queued deliveries become due at once) or disable (events keep queuing).
pub(super) async fn set_enabled(
    app: &Arc<AppState>,
    project: &str,
    id: &str,
    enabled: bool,
) -> ApiResult<Arc<Entry>> {
    let (entry, _editing) = find_for_edit(app, project, id).await?;
    let mut sub = entry.sub.clone();
    let now = now_millis();
    if enabled {
        sub.state = SubscriptionState::Active;
        sub.updated_at = now;
        herald_delivery::Registry::record_success(&entry);
    } else if sub.is_active() {
        sub.state = SubscriptionState::Disabled {
            reason: "disabled through the API".into(),
            since: now,
        };
        sub.updated_at = now;
    }
    let entry = save(app, project, sub, entry.filter.clone()).await?;
    if enabled {
        app.store.make_due(project, id, now).await?;
        app.engine.notify(project, id, now);
    }
    Ok(entry)
}

pub async fn secret(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
) -> ApiResult<Json<Value>> {
    let entry = find_plain(&app, &project, &id)?;
    Ok(Json(json!({"signing_secret": entry.sub.signing_secret})))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<usize>,
    before: Option<i64>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

pub async fn attempts(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let page = crate::error::query(page)?;
    find_plain(&app, &project, &id)?;
    let items = app
        .store
        .list_attempts(&project, &id, page.limit(), page.before)
        .await?;
    Ok(Json(json!({"attempts": items})))
}

pub async fn dead_letters(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let page = crate::error::query(page)?;
    find_plain(&app, &project, &id)?;
    let items = app
        .store
        .list_dead_letters(&project, &id, page.limit(), page.before)
        .await?;
    Ok(Json(json!({"dead_letters": items})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    ids: Option<Vec<i64>>,
}

/// Redeliver all dead letters of the subscription, or those listed in `{"ids": [...]}`.
pub async fn redeliver_all(
    State(app): State<Arc<AppState>>,
    Path((project, id)): SubPath,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    find_plain(&app, &project, &id)?;
    let req: RedeliverBody = if body.is_empty() {
        RedeliverBody::default()
    } else {
        parse_json(&body, "redeliver-request")?
    };
    let n = app
        .store
        .redeliver(&project, &id, req.ids, now_millis())
        .await?;
    app.engine.notify(&project, &id, now_millis());
    Ok(Json(json!({"redelivered": n})))
}

pub async fn redeliver_one(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String, i64)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let (project, id, delivery) = crate::error::path(path)?;
    find_plain(&app, &project, &id)?;
    let n = app
        .store
        .redeliver(&project, &id, Some(vec![delivery]), now_millis())
        .await?;
    if n == 0 {
        return Err(ApiError(Problem::not_found(
            "dead-letter",
            format!("no dead letter {delivery} for subscription '{id}'"),
        )));
    }
    app.engine.notify(&project, &id, now_millis());
    Ok(Json(json!({"redelivered": n})))
}

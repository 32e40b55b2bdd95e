//! Event triggers in Space Cloud's config API shape:
//! `PUT/GET/DELETE /v1/config/projects/{project}/eventing/triggers/{id}` and `GET .../triggers`
//! (optionally `?id=`). Each trigger is a subscription (`herald_core::trigger` maps it), so
//! it shows in the subscriptions API too, with its attempts and dead letters.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use herald_core::trigger::{validate_id, Trigger};
use herald_core::{now_millis, Problem};
use serde::Deserialize;
use serde_json::{json, Value};

use super::projects::require;
use super::subscriptions::{compile, find_for_edit, save, save_new};
use crate::error::{parse_json, query, ApiError, ApiResult};
use crate::AppState;

fn not_found(project: &str, id: &str) -> ApiError {
    ApiError(Problem::not_found(
        "trigger",
        format!("trigger '{id}' does not exist in project '{project}'"),
    ))
}

pub async fn put(
    State(app): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let invalid = |e: herald_core::trigger::TriggerError| {
        ApiError(Problem::bad_request(
            "invalid-trigger",
            format!("{}: {}", e.field, e.message),
        ))
    };
    validate_id(&id).map_err(invalid)?;
    let trigger: Trigger = parse_json(&body, "trigger")?;
    let sub = trigger
        .to_subscription(&id, app.config.triggers.retry_delay)
        .map_err(invalid)?;
    let filter = compile(&sub)?;
    let now = now_millis();
    // Create, or edit what is there; a PUT or DELETE racing this one can change which
    // applies between the two, so try again a few times.
    for _ in 0..4 {
        if app.registry.get(&project, &id).is_none() {
            let mut new = sub.clone();
            new.succeed(None, now);
            if save_new(&app, &project, new, filter.clone())
                .await?
                .is_some()
            {
                return Ok(Json(json!({})));
            }
            // Created by a racing PUT; its registry entry may lag its row a moment.
            tokio::task::yield_now().await;
            continue;
        }
        let Ok((current, _editing)) = find_for_edit(&app, &project, &id).await else {
            continue; // deleted meanwhile: create it
        };
        if Trigger::of(&current.sub).is_none() {
            return Err(ApiError(Problem::conflict(
                "not-a-trigger",
                format!("subscription '{id}' exists in project '{project}' and is not a trigger; choose another id"),
            )));
        }
        let mut edited = sub.clone();
        edited.succeed(Some(&current.sub), now);
        if save(&app, &project, edited, filter.clone()).await.is_ok() {
            return Ok(Json(json!({})));
        }
    }
    Err(ApiError(Problem::conflict(
        "trigger-busy",
        format!("trigger '{id}' kept changing while this request ran; send it again"),
    )))
}

#[derive(Deserialize)]
pub struct ListQuery {
    id: Option<String>,
}

/// `{"result": [trigger, ...]}`, ordered by id.
pub async fn list(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let q = query(q)?;
    let triggers: Vec<Trigger> = app
        .registry
        .list(&project)
        .iter()
        .filter(|e| q.id.as_ref().is_none_or(|id| *id == e.sub.id))
        .filter_map(|e| Trigger::of(&e.sub))
        .collect();
    Ok(Json(json!({ "result": triggers })))
}

pub async fn get(
    State(app): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let trigger = app
        .registry
        .get(&project, &id)
        .and_then(|e| Trigger::of(&e.sub))
        .ok_or_else(|| not_found(&project, &id))?;
    Ok(Json(json!({ "result": [trigger] })))
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let is_trigger = app
        .registry
        .get(&project, &id)
        .is_some_and(|e| Trigger::of(&e.sub).is_some());
    if !is_trigger {
        return Err(not_found(&project, &id));
    }
    let (_, _editing) = find_for_edit(&app, &project, &id).await?;
    app.store.delete_subscription(&project, &id).await?;
    app.registry.remove(&project, &id);
    Ok(Json(json!({})))
}

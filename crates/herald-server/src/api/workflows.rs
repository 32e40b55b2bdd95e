//! Workflow definitions (JSON, or YAML with `content-type`/`accept: application/yaml`),
//! versioned: every write adds a version and running instances keep theirs. Instances
//! are listed, inspected with their history, cancelled and retried here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::workflow::WorkflowDefinition;
use herald_core::Problem;
use herald_flow::engine::{Operated, Operation};
use herald_flow::CompiledWorkflow;
use herald_store::{InstanceRow, InstanceState, SaveMode, WorkflowVersion};
use serde::Deserialize;
use serde_json::{json, Value};

use super::projects::require;
use crate::error::{self, ApiError, ApiResult};
use crate::AppState;

/// Largest definition accepted.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Most instances in one page of a listing.
const MAX_PAGE: usize = 1000;

fn wants_yaml(headers: &HeaderMap, key: header::HeaderName) -> bool {
    headers
        .get(key)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("yaml"))
}

/// A JSON body, or YAML when the request asks for it.
fn reply(headers: &HeaderMap, status: StatusCode, body: Value) -> Response {
    if wants_yaml(headers, header::ACCEPT) {
        let text = serde_yaml::to_string(&body).unwrap_or_default();
        return (status, [(header::CONTENT_TYPE, "application/yaml")], text).into_response();
    }
    (status, axum::Json(body)).into_response()
}

/// Parse and fully check a definition (shape, then its FEEL), with the bad field's path.
fn definition(headers: &HeaderMap, body: &[u8], id: Option<&str>) -> ApiResult<WorkflowDefinition> {
    if body.len() > MAX_DEFINITION_BYTES {
        return Err(ApiError(Problem::too_large(format!(
            "a workflow definition may have at most {MAX_DEFINITION_BYTES} bytes"
        ))));
    }
    let mut json: Value = if wants_yaml(headers, header::CONTENT_TYPE) {
        serde_yaml::from_slice(body).map_err(|e| invalid("", format!("not valid YAML: {e}")))?
    } else {
        error::parse_json(body, "workflow")?
    };
    if let Some(obj) = json.as_object_mut() {
        // Read-only fields of the read view, so that a view can be written back.
        obj.remove("version");
        obj.remove("created_at");
        obj.remove("instances");
    }
    if let (Some(id), Some(obj)) = (id, json.as_object_mut()) {
        match obj.get("id") {
            None => {
                obj.insert("id".into(), Value::String(id.to_string()));
            }
            Some(given) if given != id => {
                return Err(invalid("id", format!("must be '{id}', as in the path")));
            }
            Some(_) => {}
        }
    }
    let def = WorkflowDefinition::parse(&json).map_err(|e| invalid(&e.path, e.message))?;
    CompiledWorkflow::compile("", 0, def.clone()).map_err(|e| invalid(&e.path, e.message))?;
    Ok(def)
}

fn invalid(path: &str, message: impl std::fmt::Display) -> ApiError {
    let detail = if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    };
    ApiError(Problem::bad_request("invalid-workflow", detail))
}

fn view(w: &WorkflowVersion) -> Value {
    let mut v: Value = serde_json::from_str(&w.body).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("version".into(), json!(w.version));
        obj.insert("created_at".into(), json!(w.created_at));
    }
    v
}

fn not_found(id: &str) -> ApiError {
    ApiError(Problem::not_found(
        "workflow",
        format!("no workflow '{id}' in this project"),
    ))
}

/// Save a checked definition as a new version and let it start instances.
async fn save(
    app: &AppState,
    project: &str,
    def: WorkflowDefinition,
    mode: SaveMode,
) -> ApiResult<Option<i64>> {
    let body = serde_json::to_string(&def).unwrap_or_default();
    let awaits = def.awaited_types().map(str::to_string).collect();
    let version = app
        .store
        .save_workflow(project, &def.id, body, awaits, mode)
        .await?;
    if let Some(v) = version {
        app.flow.install(project, v, def);
    }
    Ok(version)
}

pub async fn list(
    State(app): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let project = error::path(path)?;
    require(&app, &project)?;
    let all = app.store.list_workflows(Some(&project)).await?;
    let items: Vec<Value> = all.iter().map(view).collect();
    Ok(reply(
        &headers,
        StatusCode::OK,
        json!({ "workflows": items }),
    ))
}

pub async fn create(
    State(app): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let project = error::path(path)?;
    require(&app, &project)?;
    let def = definition(&headers, &body, None)?;
    let id = def.id.clone();
    let Some(version) = save(&app, &project, def, SaveMode::Create).await? else {
        return Err(ApiError(Problem::conflict(
            "workflow-exists",
            format!("workflow '{id}' exists; PUT /v1/api/{project}/workflows/{id} adds a version"),
        )));
    };
    let saved = app.store.get_workflow(&project, &id, Some(version)).await?;
    let mut resp = reply(
        &headers,
        StatusCode::CREATED,
        saved.as_ref().map(view).unwrap_or_default(),
    );
    located(&mut resp, &project, &id);
    Ok(resp)
}

fn located(resp: &mut Response, project: &str, id: &str) {
    if let Ok(loc) = format!("/v1/api/{project}/workflows/{id}").parse() {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<i64>,
}

pub async fn get(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<VersionQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (project, id) = error::path(path)?;
    let q = error::query(query)?;
    require(&app, &project)?;
    let w = app
        .store
        .get_workflow(&project, &id, q.version)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let mut v = view(&w);
    if q.version.is_none() {
        let counts: serde_json::Map<String, Value> = app
            .store
            .instance_counts(&project, &id)
            .await?
            .into_iter()
            .map(|(state, n)| (state.as_str().to_string(), json!(n)))
            .collect();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("instances".into(), Value::Object(counts));
        }
    }
    Ok(reply(&headers, StatusCode::OK, v))
}

pub async fn replace(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (project, id) = error::path(path)?;
    require(&app, &project)?;
    let def = definition(&headers, &body, Some(&id))?;
    let existed = app.store.get_workflow(&project, &id, None).await?.is_some();
    let version = save(&app, &project, def, SaveMode::Upsert).await?;
    let saved = match version {
        Some(v) => app.store.get_workflow(&project, &id, Some(v)).await?,
        None => None,
    };
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut resp = reply(
        &headers,
        status,
        saved.as_ref().map(view).unwrap_or_default(),
    );
    if !existed {
        located(&mut resp, &project, &id);
    }
    Ok(resp)
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let (project, id) = error::path(path)?;
    require(&app, &project)?;
    if !app.store.delete_workflow(&project, &id).await? {
        return Err(not_found(&id));
    }
    app.flow.uninstall(&project, &id);
    Ok(StatusCode::NO_CONTENT)
}

fn instance_view(row: &InstanceRow) -> Value {
    let context: Value = serde_json::from_str(&row.context).unwrap_or(Value::Null);
    let mut v = json!({
        "id": row.id,
        "workflow": row.workflow,
        "version": row.version,
        "state": row.state,
        "step": row.step,
        "attempt": row.attempt,
        "context": context,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    });
    let obj = v.as_object_mut().expect("an object");
    if !row.waiting_for.is_empty() {
        obj.insert("waiting_for".into(), json!(row.waiting_for));
    }
    if let Some(d) = row.deadline {
        obj.insert("deadline".into(), json!(d));
    }
    if let Some(e) = &row.error {
        obj.insert("error".into(), json!(e));
    }
    v
}

#[derive(Deserialize)]
pub struct InstancesQuery {
    state: Option<String>,
    limit: Option<usize>,
    /// An instance id: the page after it.
    before: Option<String>,
}

pub async fn instances(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<InstancesQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (project, id) = error::path(path)?;
    let q = error::query(query)?;
    require(&app, &project)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(InstanceState::parse(s).ok_or_else(|| {
            ApiError(Problem::bad_request(
                "invalid-query",
                format!("state: one of starting, running, waiting, completed, failed, cancelled (not '{s}')"),
            ))
        })?),
    };
    // Version 1 exists for every workflow ever created (numbers go on across a delete),
    // so the instances of a deleted workflow stay listable.
    if app
        .store
        .get_workflow(&project, &id, Some(1))
        .await?
        .is_none()
    {
        return Err(not_found(&id));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let rows = app
        .store
        .list_instances(&project, &id, state, limit, q.before.as_deref())
        .await?;
    let items: Vec<Value> = rows.iter().map(instance_view).collect();
    Ok(reply(
        &headers,
        StatusCode::OK,
        json!({ "instances": items }),
    ))
}

/// An instance of this workflow, or 404 (an instance id belongs to one workflow).
async fn instance_of(
    app: &AppState,
    project: &str,
    workflow: &str,
    id: &str,
) -> ApiResult<InstanceRow> {
    match app.store.get_instance(project, id).await? {
        Some(row) if row.workflow == workflow => Ok(row),
        _ => Err(ApiError(Problem::not_found(
            "instance",
            format!("workflow '{workflow}' has no instance '{id}'"),
        ))),
    }
}

pub async fn instance(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (project, workflow, id) = error::path(path)?;
    require(&app, &project)?;
    let row = instance_of(&app, &project, &workflow, &id).await?;
    let history = app.store.instance_history(&project, &id).await?;
    let kept = app.store.kept_events(&project, &id).await?;
    let mut v = instance_view(&row);
    let obj = v.as_object_mut().expect("an object");
    obj.insert("history".into(), json!(history));
    let kept: Vec<Value> = kept
        .iter()
        .map(|k| json!({"type": k.ty, "seq": k.seq, "received_at": k.received_at}))
        .collect();
    obj.insert("kept_events".into(), json!(kept));
    Ok(reply(&headers, StatusCode::OK, v))
}

async fn operate(
    app: Arc<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    op: Operation,
) -> ApiResult<Response> {
    let (project, workflow, id) = error::path(path)?;
    require(&app, &project)?;
    instance_of(&app, &project, &workflow, &id).await?;
    match app.flow.operate(&project, &id, op).await? {
        Operated::Done(row) => Ok(reply(&headers, StatusCode::OK, instance_view(&row))),
        Operated::NotFound => Err(ApiError(Problem::not_found(
            "instance",
            format!("workflow '{workflow}' has no instance '{id}'"),
        ))),
        Operated::Refused(state) => {
            let what = match op {
                Operation::Cancel => "only an unfinished instance can be cancelled",
                Operation::Retry => "only a failed instance can be retried",
            };
            Err(ApiError(Problem::conflict(
                "instance-state",
                format!("instance '{id}' is {}: {what}", state.as_str()),
            )))
        }
    }
}

pub async fn cancel(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    operate(app, path, headers, Operation::Cancel).await
}

pub async fn retry(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    operate(app, path, headers, Operation::Retry).await
}

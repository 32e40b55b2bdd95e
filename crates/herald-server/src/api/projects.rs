//! Projects: tenants. `default` always exists; `PUT /v1/api/{project}` creates others.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use herald_core::Problem;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub async fn list(State(app): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"projects": app.list_projects()}))
}

pub async fn get(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    Ok(Json(json!({"name": project})))
}

pub async fn put(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    validate_name(&project)?;
    let created = app.store.ensure_project(&project).await?;
    app.add_project(&project);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"name": project}))))
}

/// 404 unless the project exists.
pub fn require(app: &AppState, project: &str) -> ApiResult<()> {
    if app.project_exists(project) {
        Ok(())
    } else {
        Err(ApiError(Problem::not_found(
            "project",
            format!("project '{project}' does not exist; create it with PUT /v1/api/{project}"),
        )))
    }
}

fn validate_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError(Problem::bad_request(
            "invalid-project",
            format!("project name '{name}' is invalid: use 1-64 characters a-z, 0-9, '-' or '_'"),
        )))
    }
}

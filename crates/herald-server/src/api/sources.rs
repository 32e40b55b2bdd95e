//! Signed sources (`/v1/api/{project}/sources`): a registered `ce-source` must sign its
//! requests with an HMAC of the raw body under one of its secrets. Secrets are write-only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::source::SignedSource;
use herald_core::Problem;
use serde_json::Value;

use super::projects::require;
use crate::error::{parse_json, ApiError, ApiResult};
use crate::AppState;

fn not_found(project: &str, source: &str) -> ApiError {
    ApiError(Problem::not_found(
        "source",
        format!("source '{source}' is not registered in project '{project}'"),
    ))
}

fn parse(body: &[u8]) -> ApiResult<SignedSource> {
    let source: SignedSource = parse_json(body, "source")?;
    source.validate()?;
    Ok(source)
}

pub async fn create(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require(&app, &project)?;
    let source = parse(&body)?;
    if app.source(&project, &source.source).is_some() {
        return Err(ApiError(Problem::conflict(
            "source-exists",
            format!(
                "source '{}' is already registered; PUT it to change it",
                source.source
            ),
        )));
    }
    app.store.put_source(&project, &source).await?;
    let location = format!(
        "/v1/api/{project}/sources/{}",
        herald_core::topic::encode_path_segment(&source.source)
    );
    let view = source.redacted();
    app.put_source(&project, source);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

pub async fn list(
    State(app): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    Ok(Json(Value::Array(
        app.list_sources(&project)
            .iter()
            .map(|s| s.redacted())
            .collect(),
    )))
}

pub async fn get(
    State(app): State<Arc<AppState>>,
    Path((project, source)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let found = app
        .source(&project, &source)
        .ok_or_else(|| not_found(&project, &source))?;
    Ok(Json(found.redacted()))
}

pub async fn replace(
    State(app): State<Arc<AppState>>,
    Path((project, source)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require(&app, &project)?;
    let replacement = parse(&body)?;
    if replacement.source != source {
        return Err(ApiError(Problem::bad_request(
            "invalid-source",
            format!(
                "source: the body names '{}' but the path '{source}'",
                replacement.source
            ),
        )));
    }
    app.store.put_source(&project, &replacement).await?;
    let view = replacement.redacted();
    app.put_source(&project, replacement);
    Ok(Json(view))
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((project, source)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require(&app, &project)?;
    if !app.store.delete_source(&project, &source).await? {
        return Err(not_found(&project, &source));
    }
    app.remove_source(&project, &source);
    Ok(StatusCode::NO_CONTENT)
}

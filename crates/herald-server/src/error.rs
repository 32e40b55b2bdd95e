//! The one error type of every handler: a [`Problem`] rendered as `application/problem+json`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::Problem;
use herald_store::{StoreError, WakeRefusal};

pub struct ApiError(pub Problem);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError(p)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Wake {
            index,
            instance,
            refusal,
        } = &e
        {
            return ApiError(wake_refused(*index, instance, refusal));
        }
        tracing::error!(error = %e, "store error");
        ApiError(Problem::unavailable(format!(
            "the event store is unavailable ({e}); retry later"
        )))
    }
}

/// An event addressed (`instanceid`) to an instance that cannot take it.
fn wake_refused(index: usize, instance: &str, refusal: &WakeRefusal) -> Problem {
    let which =
        format!("event #{index} of the request is addressed to workflow instance '{instance}'");
    match refusal {
        WakeRefusal::UnknownInstance => Problem::not_found(
            "instance",
            format!("{which}, which does not exist in this project; nothing was stored"),
        ),
        WakeRefusal::Finished(state) => Problem::conflict(
            "instance-finished",
            format!("{which}, which is {}; nothing was stored", state.as_str()),
        ),
        WakeRefusal::NotAwaited => Problem::new(
            422,
            "type-not-awaited",
            "Unprocessable Content",
            format!(
                "{which}, whose workflow never waits for an event of this type; nothing was stored"
            ),
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

/// Parse a JSON request body into `T`, explaining what is wrong in problem terms.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Problem::bad_request(
            &format!("invalid-{what}"),
            format!("the {what} is not valid: {e}"),
        ))
    })
}

/// Query-string and path rejections as problems (axum's own are plain text).
pub fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<T> {
    q.map(|axum::extract::Query(v)| v).map_err(|e| {
        ApiError(Problem::bad_request(
            "invalid-query",
            format!("the query string is not valid: {}", e.body_text()),
        ))
    })
}

pub fn path<T>(
    p: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> ApiResult<T> {
    p.map(|axum::extract::Path(v)| v).map_err(|e| {
        ApiError(Problem::bad_request(
            "invalid-path",
            format!("the request path is not valid: {}", e.body_text()),
        ))
    })
}

//! The HTTP API: one module per resource; this file is the route table.

mod emitters;
mod ingest;
mod projects;
mod queue;
mod sources;
mod subscriptions;
mod triggers;
mod workflows;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(crate::metrics::handler))
        .route("/e/{source}", post(ingest::signal))
        .route(
            "/v1/api/{project}/sources",
            get(sources::list).post(sources::create),
        )
        .route(
            "/v1/api/{project}/sources/{source}",
            get(sources::get)
                .put(sources::replace)
                .delete(sources::delete),
        )
        .route("/v1/api/{project}/eventing/queue", post(queue::enqueue))
        .route(
            "/v1/config/projects/{project}/eventing/triggers",
            get(triggers::list),
        )
        .route(
            "/v1/config/projects/{project}/eventing/triggers/{id}",
            get(triggers::get)
                .put(triggers::put)
                .delete(triggers::delete),
        )
        .route(
            "/publicapi/emitters/definitions",
            get(emitters::list).post(emitters::create),
        )
        .route(
            "/publicapi/emitters/definitions/{id}",
            get(emitters::get)
                .put(emitters::replace)
                .delete(emitters::delete),
        )
        .route(
            "/publicapi/emitters/definitions/{id}/enable",
            post(emitters::enable),
        )
        .route(
            "/publicapi/emitters/definitions/{id}/disable",
            post(emitters::disable),
        )
        .route("/publicapi/emitters/audit/{id}", get(emitters::audit))
        .route("/publicapi/emitters/system", get(emitters::system))
        .route(
            "/v1/api/{project}/workflows",
            get(workflows::list).post(workflows::create),
        )
        .route(
            "/v1/api/{project}/workflows/{id}",
            get(workflows::get)
                .put(workflows::replace)
                .delete(workflows::delete),
        )
        .route(
            "/v1/api/{project}/workflows/{id}/instances",
            get(workflows::instances),
        )
        .route(
            "/v1/api/{project}/workflows/{id}/instances/{instance}",
            get(workflows::instance),
        )
        .route(
            "/v1/api/{project}/workflows/{id}/instances/{instance}/cancel",
            post(workflows::cancel),
        )
        .route(
            "/v1/api/{project}/workflows/{id}/instances/{instance}/retry",
            post(workflows::retry),
        )
        .route("/v1/api", get(projects::list))
        .route("/v1/api/{project}", get(projects::get).put(projects::put))
        .route(
            "/v1/api/{project}/events",
            post(ingest::root).options(ingest::handshake),
        )
        .route(
            "/v1/api/{project}/topics/{*path}",
            post(ingest::topic).options(ingest::handshake),
        )
        .route(
            "/v1/api/{project}/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}",
            get(subscriptions::get)
                .put(subscriptions::replace)
                .delete(subscriptions::delete),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/enable",
            post(subscriptions::enable),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/disable",
            post(subscriptions::disable),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/secret",
            get(subscriptions::secret),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/attempts",
            get(subscriptions::attempts),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/dead-letters",
            get(subscriptions::dead_letters),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/dead-letters/redeliver",
            post(subscriptions::redeliver_all),
        )
        .route(
            "/v1/api/{project}/subscriptions/{id}/dead-letters/{delivery}/redeliver",
            post(subscriptions::redeliver_one),
        )
        .method_not_allowed_fallback(|| async {
            crate::error::ApiError(herald_core::Problem::new(
                405,
                "method-not-allowed",
                "Method not allowed",
                "this endpoint does not accept that method; see the README for the API",
            ))
        })
        .fallback(|| async {
            crate::error::ApiError(herald_core::Problem::not_found(
                "route",
                "no such endpoint; see the README for the API",
            ))
        })
        .with_state(state)
}

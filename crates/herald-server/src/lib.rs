//! The Herald HTTP server: ingest (CloudEvents over HTTP in every mode), projects,
//! subscriptions and their delivery records, wired to the store and the delivery engine.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
mod hub;
pub mod metrics;
mod scheduler;
mod state;
pub mod system_emitters;

use std::sync::Arc;

use herald_delivery::{Engine, EngineConfig, Registry};
use herald_store::sqlite::SqliteStore;
use herald_store::Store;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// Open the store, load subscriptions, start delivery, and build the app state.
pub async fn start(config: Config) -> anyhow_like::Result<Arc<AppState>> {
    config.check().map_err(anyhow_like::Error)?;
    let tls = herald_delivery::tls::client_config(config.delivery.ca_file.as_deref())
        .map_err(|e| anyhow_like::Error(format!("delivery.{e}")))?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.data_dir)?);
    let registry = Arc::new(Registry::new());
    for stored in store.load_subscriptions().await? {
        match herald_filter::compile(&stored.sub.filters) {
            Ok(filter) => {
                registry.upsert(&stored.project, stored.sub, filter);
            }
            Err(e) => {
                // Keep it visible and manageable (GET, PUT, DELETE), but deliver nothing
                // until its filter is fixed: an empty `any` never matches.
                tracing::error!(project = %stored.project, subscription = %stored.sub.id, error = %e,
                    "stored subscription has a filter this version cannot compile; it is disabled");
                let mut sub = stored.sub;
                sub.state = herald_core::subscription::SubscriptionState::Disabled {
                    reason: format!("filter no longer compiles: {e}"),
                    since: herald_core::now_millis(),
                };
                registry.upsert(&stored.project, sub, herald_filter::Filter::Any(Vec::new()));
            }
        }
    }
    let engine = Engine::new(
        store.clone(),
        registry.clone(),
        EngineConfig {
            max_concurrency: config.delivery.max_concurrency,
            poll_interval: config.delivery.poll_interval,
            origin: config.delivery.origin.clone(),
            handshake_retry: config.delivery.handshake_retry,
            ..EngineConfig::default()
        },
        &tls,
    )
    .map_err(anyhow_like::Error)?;
    engine.spawn();
    let flow = herald_flow::FlowEngine::new(
        store.clone(),
        Arc::new(hub::DeliveryHub {
            registry: registry.clone(),
            engine: engine.clone(),
        }),
        config.dedup_window.as_millis() as i64,
        herald_delivery::tls::reqwest_builder(&tls)
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| anyhow_like::Error(format!("cannot build the HTTP client: {e}")))?,
    );
    flow.load().await?;
    let projects = store.list_projects().await?;
    let sources = store.load_sources().await?;
    let state = Arc::new(AppState::new(
        config, store, registry, engine, flow, projects,
    ));
    for (project, source) in sources {
        state.put_source(&project, source);
    }
    tokio::spawn(state::maintenance(state.clone()));
    let mut watch = system_emitters::Watch::default();
    system_emitters::sync(&state, &mut watch).await;
    tokio::spawn(system_emitters::run(state.clone(), watch));
    // After every subscription (system emitters too) is registered: events that fell
    // due while Herald was down are routed to all of them.
    tokio::spawn(scheduler::run(state.clone()));
    tokio::spawn(state.flow.clone().run());
    Ok(state)
}

/// Serve until `shutdown` resolves. Prints the bound address on stdout (tests read it).
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow_like::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow_like::Error(format!("cannot listen on {}: {e}", config.listen)))?;
    let state = start(config).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| anyhow_like::Error(e.to_string()))?;
    println!("herald listening on http://{addr}");
    tracing::info!(%addr, data_dir = %state.config.data_dir.display(), "herald is serving");
    // The peer address reaches handlers, for the `ip` of events sent by a person.
    let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow_like::Error(e.to_string()))
}

/// A minimal error type for start-up failures (kept local so the library has no anyhow).
pub mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl From<herald_store::StoreError> for Error {
        fn from(e: herald_store::StoreError) -> Self {
            Error(e.to_string())
        }
    }
    pub type Result<T> = std::result::Result<T, Error>;
}

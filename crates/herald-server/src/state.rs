//! Shared server state and the periodic maintenance task (retention).

use std::collections::{HashMap, HashSet};

use herald_core::source::SignedSource;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use herald_core::now_millis;
use herald_delivery::{Engine, Registry};
use herald_store::Store;

use crate::Config;

pub struct AppState {
    pub config: Config,
    /// Signed sources by project, then `ce-source` (looked up per ingest request, so a
    /// lookup allocates nothing).
    sources: RwLock<HashMap<String, HashMap<String, Arc<SignedSource>>>>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub engine: Arc<Engine>,
    /// The workflow engine and its start index.
    pub flow: Arc<herald_flow::FlowEngine>,
    projects: RwLock<HashSet<String>>,
    /// Woken when an event is scheduled, so the scheduler can fire an earlier one in time.
    pub scheduled: tokio::sync::Notify,
    /// The system emitter files as last loaded.
    system_emitters: RwLock<Vec<crate::system_emitters::FileStatus>>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        engine: Arc<Engine>,
        flow: Arc<herald_flow::FlowEngine>,
        projects: Vec<String>,
    ) -> Self {
        AppState {
            config,
            sources: RwLock::new(HashMap::new()),
            store,
            registry,
            engine,
            flow,
            projects: RwLock::new(projects.into_iter().collect()),
            scheduled: tokio::sync::Notify::new(),
            system_emitters: RwLock::new(Vec::new()),
        }
    }

    pub fn project_exists(&self, name: &str) -> bool {
        self.projects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    pub fn add_project(&self, name: &str) {
        self.projects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    pub fn source(&self, project: &str, source: &str) -> Option<Arc<SignedSource>> {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
        sources.get(project)?.get(source).cloned()
    }

    pub fn put_source(&self, project: &str, source: SignedSource) {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        let project = sources.entry(project.to_string()).or_default();
        project.insert(source.source.clone(), Arc::new(source));
    }

    pub fn remove_source(&self, project: &str, source: &str) -> bool {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        sources
            .get_mut(project)
            .and_then(|p| p.remove(source))
            .is_some()
    }

    /// A project's sources, ordered by name.
    pub fn list_sources(&self, project: &str) -> Vec<Arc<SignedSource>> {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = sources
            .get(project)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.source.cmp(&b.source));
        v
    }

    pub fn set_system_emitters(&self, status: Vec<crate::system_emitters::FileStatus>) {
        *self
            .system_emitters
            .write()
            .unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub fn system_emitters(&self) -> Vec<crate::system_emitters::FileStatus> {
        self.system_emitters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The load error of a system emitter file, as last reported.
    pub fn system_emitter_error(&self, file: &str) -> Option<String> {
        self.system_emitters()
            .into_iter()
            .find(|s| s.file == file)
            .and_then(|s| s.error)
    }

    pub fn list_projects(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .projects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// Every minute: drop expired dedup keys, old attempts and events nothing needs.
pub async fn maintenance(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = now_millis();
        let r = &state.config.retention;
        let result = state
            .store
            // Events are the dedup keys: keep them for the dedup window at least.
            .prune(
                r.attempts_per_subscription,
                now - r.events.max(state.config.dedup_window).as_millis() as i64,
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "retention pass failed");
        }
        let finished_before = now - r.instances.as_millis() as i64;
        if let Err(e) = state.store.prune_instances(finished_before).await {
            tracing::warn!(error = %e, "workflow instance retention pass failed");
        }
    }
}

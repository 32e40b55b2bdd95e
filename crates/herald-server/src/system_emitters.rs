//! System emitters: emitter definitions in JSON files of a folder
//! (`<data-dir>/system-emitters/` unless configured), loaded at start and whenever a file
//! is added, edited or removed. Each is identified by its file name (`everything.json` is
//! emitter `everything`), has no owner, and cannot be changed through the API. A broken
//! file is reported by name (log and `GET /publicapi/emitters/system`) and the others
//! carry on. The folder is polled: no platform file-watching API is needed and a poll
//! every second is cheap for a handful of files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald_core::emitter::EmitterDefinition;
use herald_core::now_millis;
use herald_store::StoredSubscription;
use serde::Serialize;

use crate::AppState;

/// The project system emitters live in (as the emitters API's).
const PROJECT: &str = "default";
/// The `config` key marking a subscription as a system emitter (value: its file name).
pub const MARKER: &str = "herald.system-emitter";
const POLL: Duration = Duration::from_secs(1);

/// What became of one file, for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileStatus {
    pub file: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The folder's files by name, with their content as last seen.
#[derive(Default)]
pub struct Watch {
    seen: BTreeMap<String, Vec<u8>>,
}

pub fn folder(app: &AppState) -> PathBuf {
    app.config
        .system_emitters
        .clone()
        .unwrap_or_else(|| app.config.data_dir.join("system-emitters"))
}

/// Whether a subscription is a system emitter.
pub fn is_system(sub: &herald_core::subscription::Subscription) -> bool {
    sub.config.contains_key(MARKER)
}

/// `*.json` files of the folder with their bytes (a missing folder has none). A file that
/// cannot be read right now (an editor rewriting it) keeps the bytes last seen, so a
/// glitch never removes its emitter; `None` when the folder exists but cannot be listed.
fn read_folder(dir: &Path, seen: &BTreeMap<String, Vec<u8>>) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(out),
        Err(e) => {
            tracing::warn!(folder = %dir.display(), error = %e, "cannot list the system emitters folder");
            return None;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || !entry.path().is_file() {
            continue;
        }
        match std::fs::read(entry.path()) {
            Ok(bytes) => {
                out.insert(name, bytes);
            }
            Err(_) => {
                if let Some(bytes) = seen.get(&name) {
                    out.insert(name, bytes.clone());
                }
            }
        }
    }
    Some(out)
}

/// Bring the system emitters in line with the folder; returns the status of each file.
pub async fn sync(app: &Arc<AppState>, watch: &mut Watch) -> Vec<FileStatus> {
    let Some(files) = read_folder(&folder(app), &watch.seen) else {
        return app.system_emitters();
    };
    let mut status = Vec::new();
    for (name, bytes) in &files {
        let id = name.strip_suffix(".json").unwrap_or(name).to_string();
        let unchanged = watch.seen.get(name) == Some(bytes);
        let result = if unchanged {
            app.system_emitter_error(name)
        } else {
            load(app, name, &id, bytes).await.err()
        };
        if let Some(e) = &result {
            if !unchanged {
                tracing::error!(file = %name, error = %e, "system emitter not loaded");
            }
        } else if !unchanged {
            tracing::info!(file = %name, emitter = %id, "system emitter loaded");
        }
        status.push(FileStatus {
            file: name.clone(),
            id,
            error: result,
        });
    }
    // Files gone: their emitters go too.
    for sub in app.registry.list(PROJECT) {
        if let Some(file) = sub.sub.config.get(MARKER).and_then(|v| v.as_str()) {
            if !files.contains_key(file) {
                let _ = app.store.delete_subscription(PROJECT, &sub.sub.id).await;
                app.registry.remove(PROJECT, &sub.sub.id);
                tracing::info!(file = %file, "system emitter removed");
            }
        }
    }
    watch.seen = files;
    app.set_system_emitters(status.clone());
    status
}

async fn load(app: &AppState, name: &str, id: &str, bytes: &[u8]) -> Result<(), String> {
    herald_core::trigger::validate_id(id).map_err(|_| {
        "the file name must be 1-64 characters of A-Z a-z 0-9 _ - . before .json".to_string()
    })?;
    let mut def: EmitterDefinition =
        serde_json::from_slice(bytes).map_err(|e| format!("not an emitter definition: {e}"))?;
    if def.owner.is_some() {
        return Err("system emitters carry no owner".into());
    }
    if def.ty == "Audit" {
        return Err("Audit emitters are user emitters: their log is read by their owner".into());
    }
    def.owner = None;
    def.id.clear();
    let mut sub = def
        .to_subscription(id)
        .map_err(|e| format!("{}: {}", e.field, e.message))?;
    sub.delivery = app.config.emitters.delivery.clone();
    let filter = herald_filter::compile(&sub.filters).map_err(|e| e.to_string())?;
    sub.config.insert(MARKER.into(), name.into());
    let existing = app.registry.get(PROJECT, id);
    if let Some(e) = &existing {
        if !is_system(&e.sub) {
            return Err(format!(
                "emitter or subscription '{id}' exists already and is not a system emitter"
            ));
        }
    }
    let now = now_millis();
    sub.succeed(existing.as_ref().map(|e| &e.sub), now);
    let stored = StoredSubscription {
        project: PROJECT.into(),
        sub: sub.clone(),
    };
    app.store
        .put_subscription(PROJECT, &stored)
        .await
        .map_err(|e| format!("could not save: {e}"))?;
    app.registry.upsert(PROJECT, sub, filter);
    Ok(())
}

/// Poll the folder for ever.
pub async fn run(app: Arc<AppState>, mut watch: Watch) {
    loop {
        tokio::time::sleep(POLL).await;
        sync(&app, &mut watch).await;
    }
}

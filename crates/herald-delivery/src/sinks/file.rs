//! The file sink: appends each event as one line of JSON (JSON Lines) to a file, or with
//! `rolling` to one file per UTC day. A write that fails is a retryable attempt, so the
//! engine tries again once the disk or the permissions are fixed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;

use super::render::{render, RenderOptions};
use crate::sinks::{AttemptReport, Outbound, Sink};

#[derive(Debug, Clone, PartialEq)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// One file per UTC day of delivery, named by [`rolled_path`].
    pub rolling: bool,
    pub render: RenderOptions,
}

pub struct FileSink {
    cfg: FileSinkConfig,
}

impl FileSink {
    pub fn new(cfg: FileSinkConfig) -> FileSink {
        FileSink { cfg }
    }

    async fn attempt(&self, out: &Outbound) -> AttemptReport {
        let started = Instant::now();
        let path = if self.cfg.rolling {
            rolled_path(&self.cfg.path, chrono::Utc::now().date_naive())
        } else {
            self.cfg.path.clone()
        };
        let mut line = render(&out.event, &self.cfg.render);
        line.push(b'\n');
        let target = path.clone();
        let result = tokio::task::spawn_blocking(move || append(&target, &line))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        AttemptReport::local(
            result.map_err(|e| format!("{}: {e}", path.display())),
            started,
        )
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a self, out: &'a Outbound) -> BoxFuture<'a, AttemptReport> {
        Box::pin(self.attempt(out))
    }
}

/// The file for `date` when rolling: the date goes before the extension, so the day's
/// files keep their type (`events.json` -> `events-2026-11-25.json`).
pub fn rolled_path(path: &Path, date: chrono::NaiveDate) -> PathBuf {
    let day = date.format("%Y-%m-%d").to_string();
    let Some(stem) = path.file_stem() else {
        // No file name at all (`/`, `..`): the day is the file name.
        return path.join(day);
    };
    let mut name = OsString::from(stem);
    name.push("-");
    name.push(&day);
    if let Some(ext) = path.extension() {
        name.push(".");
        name.push(ext);
    }
    path.with_file_name(name)
}

/// One lock per file written by this process. Several subscriptions (or concurrent
/// attempts of one) may share a file, and `write_all` may take several `write` calls, so
/// without it lines could interleave. Entries are never removed: one per file (per day
/// when rolling) is a few bytes.
static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);

fn lock_for(path: &Path) -> Arc<Mutex<()>> {
    // A poisoned lock only means another writer panicked; the map itself is still sound.
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(path.to_path_buf()).or_default().clone()
}

fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let lock = lock_for(path);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line)?;
    // No fsync per event: it would cost a disk round trip per line, and buys nothing.
    // The attempt is recorded only after this write, so a crash at worst writes the
    // line again on the retry; delivery is at-least-once anyway.
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use herald_core::retry::Outcome;
    use herald_core::Event;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop (also on failure).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "herald-file-sink-{}-{name}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn outbound(id: &str) -> Outbound {
        Outbound {
            event: Event::new(id, "/orders", "order.created"),
            msg_id: format!("msg_{id}"),
            timestamp: 0,
        }
    }

    fn sink(path: PathBuf, rolling: bool, render: RenderOptions) -> FileSink {
        FileSink::new(FileSinkConfig {
            path,
            rolling,
            render,
        })
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn rolled_path_puts_the_date_before_the_extension() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let cases = [
            ("/x/events.json", "/x/events-2026-11-25.json"),
            ("/x/events", "/x/events-2026-11-25"),
            ("events.log", "events-2026-11-25.log"),
            ("/x/events.tar.gz", "/x/events.tar-2026-11-25.gz"),
            ("/x/.events", "/x/.events-2026-11-25"),
            ("/", "/2026-11-25"),
        ];
        for (path, want) in cases {
            assert_eq!(
                rolled_path(Path::new(path), day),
                PathBuf::from(want),
                "{path}"
            );
        }
        let day = NaiveDate::from_ymd_opt(2027, 1, 5).unwrap();
        assert_eq!(
            rolled_path(Path::new("/x/e.json"), day),
            PathBuf::from("/x/e-2027-01-05.json")
        );
    }

    #[tokio::test]
    async fn appends_one_line_per_event() {
        let dir = TempDir::new("append");
        let path = dir.0.join("events.json");
        let s = sink(path.clone(), false, RenderOptions::default());
        for id in ["1", "2"] {
            let r = s.deliver(&outbound(id)).await;
            assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
            assert_eq!((r.status, r.error), (None, None));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        let got = lines(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], outbound("1").event.to_json());
        assert_eq!(got[1]["id"], "2");
    }

    #[tokio::test]
    async fn creates_parent_directories() {
        let dir = TempDir::new("parents");
        let path = dir.0.join("a/b/c/events.json");
        let r = sink(path.clone(), false, RenderOptions::default())
            .deliver(&outbound("1"))
            .await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(lines(&path).len(), 1);
    }

    #[tokio::test]
    async fn rolling_writes_to_the_file_of_the_day() {
        let dir = TempDir::new("rolling");
        let path = dir.0.join("events.json");
        let before = chrono::Utc::now().date_naive();
        let r = sink(path.clone(), true, RenderOptions::default())
            .deliver(&outbound("1"))
            .await;
        let after = chrono::Utc::now().date_naive();
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert!(!path.exists());
        // Around midnight the delivery may land on either side.
        let written: Vec<_> = [before, after]
            .into_iter()
            .map(|d| rolled_path(&path, d))
            .filter(|p| p.exists())
            .collect();
        assert!(!written.is_empty());
        assert_eq!(lines(&written[0]).len(), 1);
    }

    #[tokio::test]
    async fn pretty_print_and_overrides() {
        let dir = TempDir::new("pretty");
        let path = dir.0.join("events.json");
        let opts = RenderOptions {
            pretty_print: true,
            source: Some("/hub".into()),
            subject: Some("sub".into()),
        };
        let r = sink(path.clone(), false, opts)
            .deliver(&outbound("1"))
            .await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"specversion\": \"1.0\""));
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["source"], "/hub");
        assert_eq!(v["subject"], "sub");
    }

    #[tokio::test]
    async fn concurrent_deliveries_never_interleave() {
        let dir = TempDir::new("concurrent");
        let path = dir.0.join("events.json");
        let s = Arc::new(sink(path.clone(), false, RenderOptions::default()));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = outbound(&i.to_string());
                // Long lines give an unguarded writer the most room to interleave.
                out.event.data = Some(herald_core::Data::Text("x".repeat(100_000)));
                s.deliver(&out).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().outcome, Outcome::Delivered);
        }
        let mut ids: Vec<usize> = lines(&path)
            .iter()
            .map(|v| v["id"].as_str().unwrap().parse().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn unwritable_path_is_a_retryable_report() {
        let dir = TempDir::new("unwritable");
        // A regular file where a directory should be: fails even for root.
        let blocker = dir.0.join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let path = blocker.join("events.json");
        let r = sink(path.clone(), false, RenderOptions::default())
            .deliver(&outbound("1"))
            .await;
        assert_eq!(r.outcome, Outcome::Retryable { retry_after: None });
        assert_eq!(r.status, None);
        let error = r.error.unwrap();
        assert!(
            error.starts_with(&format!("{}: ", path.display())),
            "{error}"
        );

        // A directory where the file should be.
        let r = sink(dir.0.clone(), false, RenderOptions::default())
            .deliver(&outbound("1"))
            .await;
        assert_eq!(r.outcome, Outcome::Retryable { retry_after: None });
        assert!(r.error.unwrap().contains(&dir.0.display().to_string()));
    }
}

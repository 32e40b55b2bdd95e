//! The embedded store: one SQLite file in WAL mode, one writer thread with group commit
//! (see `writer`), and a small pool of read-only connections for queries.

mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::*;
use crate::{Result, Store, StoreError};
use herald_core::now_millis;
use writer::Writer;

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Open (or create) `herald.db` in `dir`. Leases left by a previous process are
    /// cleared: this process is the only one using the file.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(format!("cannot create data dir {}: {e}", dir.display())))?;
        let path = dir.join("herald.db");
        let conn = Connection::open(&path).map_err(backend)?;
        schema::configure(&conn, true).map_err(backend)?;
        conn.execute_batch(schema::SCHEMA).map_err(backend)?;
        // A lease moves due_at to the lease's end and keeps the real due time in
        // leased_from; nobody else holds leases on this file, so undo every lease.
        conn.execute(
            "UPDATE deliveries SET due_at = leased_from, leased_from = NULL WHERE leased_from IS NOT NULL",
            [],
        )
        .map_err(backend)?;
        let now = now_millis();
        conn.execute(
            "INSERT OR IGNORE INTO projects(name, created_at) VALUES ('default', ?1)",
            [now],
        )
        .map_err(backend)?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let r = Connection::open(&path).map_err(backend)?;
            schema::configure(&r, false).map_err(backend)?;
            readers.push(r);
        }
        Ok(SqliteStore {
            writer: Writer::start(conn),
            readers: Arc::new(Mutex::new(readers)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read-only query on a pooled connection, off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open(&path)?;
                    schema::configure(&c, false)?;
                    c
                }
            };
            let out = f(&conn);
            let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(backend)?
        .map_err(backend)
    }
}

fn event_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_project(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "INSERT OR IGNORE INTO projects(name, created_at) VALUES (?1, ?2)",
                    params![name, now_millis()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn list_projects(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT name FROM projects ORDER BY name")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<AppendOutcome>> {
        self.writer
            .write(move |c| {
                let mut find = c.prepare_cached(
                    "SELECT seq, received_at FROM dedup WHERE project = ?1 AND source = ?2 AND id = ?3",
                )?;
                let mut insert_event = c.prepare_cached(
                    "INSERT INTO events(project, id, source, type, topic, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let mut remember = c.prepare_cached(
                    "INSERT OR REPLACE INTO dedup(project, source, id, seq, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                // A disabled subscription's deliveries are parked (state 2) as they arrive.
                let mut route = c.prepare_cached(
                    "INSERT INTO deliveries(project, subscription_id, seq, target, state, attempts, due_at, created_at)
                     SELECT ?1, ?2, ?3, 0, CASE WHEN s.active = 1 THEN 0 ELSE 2 END, 0, ?4, ?4
                     FROM subscriptions s WHERE s.project = ?1 AND s.id = ?2",
                )?;
                let mut out = Vec::with_capacity(batch.events.len());
                for ev in &batch.events {
                    let seen: Option<(i64, i64)> = find
                        .query_row(params![batch.project, ev.source, ev.id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if let Some((seq, at)) = seen {
                        if at >= ev.received_at - batch.dedup_window_ms {
                            out.push(AppendOutcome::Duplicate { seq });
                            continue;
                        }
                    }
                    insert_event.execute(params![batch.project, ev.id, ev.source, ev.ty, ev.topic, ev.received_at, ev.body])?;
                    let seq = c.last_insert_rowid();
                    remember.execute(params![batch.project, ev.source, ev.id, seq, ev.received_at])?;
                    for sub in &ev.deliveries {
                        route.execute(params![batch.project, sub, seq, ev.received_at])?;
                    }
                    out.push(AppendOutcome::Stored { seq });
                }
                Ok(out)
            })
            .await
    }

    async fn put_subscription(&self, project: &str, sub: &StoredSubscription) -> Result<()> {
        let body = serde_json::to_string(&sub.sub).map_err(backend)?;
        let (project, id, active) = (project.to_string(), sub.sub.id.clone(), sub.sub.is_active());
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO subscriptions(project, id, active, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(project, id) DO UPDATE SET active = excluded.active, body = excluded.body",
                    params![project, id, active, body],
                )?;
                // Park or unpark the backlog so leasing never scans a disabled subscription's.
                let (from, to) = if active { (2, 0) } else { (0, 2) };
                c.prepare_cached(
                    "UPDATE deliveries SET state = ?4 WHERE project = ?1 AND subscription_id = ?2 AND state = ?3",
                )?
                .execute(params![project, id, from, to])?;
                Ok(())
            })
            .await
    }

    async fn delete_subscription(&self, project: &str, id: &str) -> Result<bool> {
        let (project, id) = (project.to_string(), id.to_string());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM subscriptions WHERE project = ?1 AND id = ?2",
                    params![project, id],
                )?;
                c.execute(
                    "DELETE FROM deliveries WHERE project = ?1 AND subscription_id = ?2",
                    params![project, id],
                )?;
                c.execute(
                    "DELETE FROM attempts WHERE project = ?1 AND subscription_id = ?2",
                    params![project, id],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn load_subscriptions(&self) -> Result<Vec<StoredSubscription>> {
        let rows: Vec<(String, String)> = self
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT project, body FROM subscriptions ORDER BY project, id",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(project, body)| {
                let sub = serde_json::from_str(&body).map_err(backend)?;
                Ok(StoredSubscription { project, sub })
            })
            .collect()
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<ClaimedDelivery>> {
        let skip = serde_json::to_string(skip).map_err(backend)?;
        self.writer
            .write(move |c| {
                let mut due = c.prepare_cached(
                    "SELECT id, project, subscription_id, seq, target, attempts, created_at, due_at FROM deliveries
                     WHERE state = 0 AND due_at <= ?1
                       AND (project || '/' || subscription_id) NOT IN (SELECT value FROM json_each(?2))
                     ORDER BY due_at, id LIMIT ?3",
                )?;
                let rows: Vec<(i64, String, String, i64, i64, u32, i64, i64)> = due
                    .query_map(params![now, skip, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                // The lease moves the row out of the due range until it ends.
                let mut lease = c.prepare_cached("UPDATE deliveries SET leased_from = due_at, due_at = ?2 WHERE id = ?1")?;
                for r in &rows {
                    lease.execute(params![r.0, lease_until])?;
                }
                let mut body = c.prepare_cached("SELECT body FROM events WHERE seq = ?1")?;
                let mut out = Vec::with_capacity(rows.len());
                for (delivery_id, project, subscription_id, seq, target, attempts, created_at, _) in rows {
                    let body: Vec<u8> = body.query_row([seq], |r| r.get(0))?;
                    out.push(ClaimedDelivery {
                        delivery_id,
                        project,
                        subscription_id,
                        seq,
                        target: Target::from_code(target),
                        attempts,
                        created_at,
                        body,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn claim_for(
        &self,
        requests: Vec<ClaimRequest>,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<Claimed>> {
        self.writer
            .write(move |c| {
                let mut due = c.prepare_cached(
                    "SELECT d.id, d.seq, d.target, d.attempts, d.created_at, e.body
                     FROM deliveries d JOIN events e ON e.seq = d.seq
                     WHERE d.project = ?1 AND d.subscription_id = ?2 AND d.state = 0 AND d.due_at <= ?3
                     ORDER BY d.due_at, d.id LIMIT ?4",
                )?;
                let mut lease = c.prepare_cached("UPDATE deliveries SET leased_from = due_at, due_at = ?2 WHERE id = ?1")?;
                let mut next = c.prepare_cached(
                    "SELECT MIN(due_at) FROM deliveries WHERE project = ?1 AND subscription_id = ?2 AND state = 0",
                )?;
                let mut out = Vec::with_capacity(requests.len());
                for r in &requests {
                    let rows = due
                        .query_map(params![r.project, r.subscription_id, now, r.limit as i64], |row| {
                            Ok(ClaimedDelivery {
                                delivery_id: row.get(0)?,
                                project: r.project.clone(),
                                subscription_id: r.subscription_id.clone(),
                                seq: row.get(1)?,
                                target: Target::from_code(row.get(2)?),
                                attempts: row.get(3)?,
                                created_at: row.get(4)?,
                                body: row.get(5)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    for d in &rows {
                        lease.execute(params![d.delivery_id, lease_until])?;
                    }
                    let next_due: Option<i64> = next.query_row(params![r.project, r.subscription_id], |row| row.get(0))?;
                    out.push(Claimed { deliveries: rows, next_due });
                }
                Ok(out)
            })
            .await
    }

    async fn pending_subscriptions(&self) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT project, subscription_id, MIN(due_at) FROM deliveries WHERE state = 0 GROUP BY project, subscription_id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    async fn complete(&self, updates: Vec<DeliveryUpdate>) -> Result<()> {
        self.writer
            .write(move |c| {
                let now = now_millis();
                let mut log = c.prepare_cached(
                    "INSERT INTO attempts(project, subscription_id, delivery_id, seq, event_id, target, at, status, latency_ms, error, response_body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for u in &updates {
                    if let Some(a) = &u.attempt {
                        log.execute(params![
                            u.project, u.subscription_id, u.delivery_id, a.seq, a.event_id, a.target.code(), a.at,
                            a.status, a.latency_ms, a.error, a.response_body
                        ])?;
                    }
                    match &u.next {
                        Next::Delivered => {
                            c.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?.execute([u.delivery_id])?;
                        }
                        Next::RetryAt(at) => {
                            c.prepare_cached(
                                "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, leased_from = NULL, last_error = ?3 WHERE id = ?1",
                            )?
                            .execute(params![u.delivery_id, at, u.last_error])?;
                        }
                        Next::Dead { dead_letter_sink } => {
                            c.prepare_cached(
                                "UPDATE deliveries SET state = 1, attempts = attempts + 1, dead_at = ?2, leased_from = NULL, last_error = ?3 WHERE id = ?1",
                            )?
                            .execute(params![u.delivery_id, now, u.last_error])?;
                            // A copy for the dead-letter sink that dies too is dropped: the
                            // original stays listed as the dead letter, the attempts keep why.
                            c.prepare_cached("DELETE FROM deliveries WHERE id = ?1 AND target = 1")?
                                .execute([u.delivery_id])?;
                            if *dead_letter_sink {
                                c.prepare_cached(
                                    "INSERT INTO deliveries(project, subscription_id, seq, target, state, attempts, due_at, created_at)
                                     SELECT d.project, d.subscription_id, d.seq, 1, CASE WHEN s.active = 1 THEN 0 ELSE 2 END, 0, ?2, ?2
                                     FROM deliveries d JOIN subscriptions s ON s.project = d.project AND s.id = d.subscription_id
                                     WHERE d.id = ?1 AND d.target = 0",
                                )?
                                .execute(params![u.delivery_id, now])?;
                            }
                        }
                        Next::Release(at) => {
                            c.prepare_cached("UPDATE deliveries SET due_at = ?2, leased_from = NULL WHERE id = ?1")?
                                .execute(params![u.delivery_id, at])?;
                        }
                    }
                }
                Ok(())
            })
            .await
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        self.read(|c| {
            c.prepare_cached("SELECT MIN(due_at) FROM deliveries WHERE state = 0")?
                .query_row([], |r| r.get(0))
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        project: &str,
        subscription: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<DeadLetter>> {
        let (project, subscription) = (project.to_string(), subscription.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT d.id, d.seq, d.attempts, d.created_at, d.dead_at, d.last_error, e.body
                 FROM deliveries d JOIN events e ON e.seq = d.seq
                 WHERE d.project = ?1 AND d.subscription_id = ?2 AND d.state = 1 AND d.target = 0 AND d.id < ?3
                 ORDER BY d.id DESC LIMIT ?4",
            )?;
            let rows = st.query_map(params![project, subscription, before.unwrap_or(i64::MAX), limit as i64], |r| {
                let body: Vec<u8> = r.get(6)?;
                Ok(DeadLetter {
                    delivery_id: r.get(0)?,
                    seq: r.get(1)?,
                    attempts: r.get(2)?,
                    created_at: r.get(3)?,
                    dead_at: r.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                    last_error: r.get(5)?,
                    event: event_json(&body),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn redeliver(
        &self,
        project: &str,
        subscription: &str,
        ids: Option<Vec<i64>>,
        now: i64,
    ) -> Result<u64> {
        let (project, subscription) = (project.to_string(), subscription.to_string());
        let ids = ids.map(|ids| serde_json::to_string(&ids).unwrap_or_default());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE deliveries SET attempts = 0, due_at = ?3, created_at = ?3, dead_at = NULL, leased_from = NULL,
                       state = (SELECT CASE WHEN s.active = 1 THEN 0 ELSE 2 END FROM subscriptions s
                                WHERE s.project = ?1 AND s.id = ?2)
                     WHERE project = ?1 AND subscription_id = ?2 AND state = 1 AND target = 0
                       AND (?4 IS NULL OR id IN (SELECT value FROM json_each(?4)))",
                    params![project, subscription, now, ids],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn list_attempts(
        &self,
        project: &str,
        subscription: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<Attempt>> {
        let (project, subscription) = (project.to_string(), subscription.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, delivery_id, seq, event_id, target, at, status, latency_ms, error, response_body FROM attempts
                 WHERE project = ?1 AND subscription_id = ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4",
            )?;
            let rows = st.query_map(params![project, subscription, before.unwrap_or(i64::MAX), limit as i64], |r| {
                Ok(Attempt {
                    id: r.get(0)?,
                    delivery_id: r.get(1)?,
                    seq: r.get(2)?,
                    event_id: r.get(3)?,
                    target: Target::from_code(r.get(4)?),
                    at: r.get(5)?,
                    status: r.get(6)?,
                    latency_ms: r.get(7)?,
                    error: r.get(8)?,
                    response_body: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn make_due(&self, project: &str, subscription: &str, now: i64) -> Result<u64> {
        let (project, subscription) = (project.to_string(), subscription.to_string());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE deliveries SET due_at = ?3 WHERE project = ?1 AND subscription_id = ?2 AND state = 0 AND due_at > ?3 AND leased_from IS NULL",
                    params![project, subscription, now],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn backlog(&self, project: &str, subscription: &str) -> Result<Backlog> {
        let (project, subscription) = (project.to_string(), subscription.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT state, COUNT(*) FROM deliveries WHERE project = ?1 AND subscription_id = ?2 GROUP BY state",
            )?;
            let mut b = Backlog::default();
            let rows = st.query_map(params![project, subscription], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u64>(1)?)))?;
            for row in rows {
                match row? {
                    (1, n) => b.dead = n,
                    (_, n) => b.pending += n,
                }
            }
            Ok(b)
        })
        .await
    }

    async fn prune(
        &self,
        dedup_before: i64,
        attempts_keep: usize,
        events_before: i64,
    ) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute("DELETE FROM dedup WHERE received_at < ?1", [dedup_before])?;
                c.execute(
                    "DELETE FROM attempts WHERE id IN (SELECT id FROM (
                        SELECT id, ROW_NUMBER() OVER (PARTITION BY project, subscription_id ORDER BY id DESC) AS rn FROM attempts)
                     WHERE rn > ?1)",
                    [attempts_keep as i64],
                )?;
                c.execute(
                    "DELETE FROM events WHERE received_at < ?1 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = events.seq)",
                    [events_before],
                )?;
                Ok(())
            })
            .await
    }
}

//! The embedded store: one SQLite file in WAL mode, one writer thread with group commit
//! (see `writer`), and a small pool of read-only connections for queries.

mod flows;
mod leases;
mod schema;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::*;
use crate::{Result, Store, StoreError};
use herald_core::now_millis;
use leases::Leases;
use writer::Writer;

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Writer,
    /// Leases live in memory: this process is the only one using the file, so a restart
    /// (which clears them) is exactly when every lease must end. No write, no fsync.
    leases: Arc<Leases>,
    /// Queries for the reader threads (bounded: callers wait rather than queue without limit).
    reads: tokio::sync::mpsc::Sender<ReadJob>,
    path: PathBuf,
}

/// A query, run on one of the reader threads with its connection.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// `READERS` threads, each with its own read-only connection, taking queries from one
/// queue. Long-lived threads, rather than the runtime's blocking pool: a connection keeps
/// its page cache, and the allocator's per-thread memory is reused instead of being left
/// behind on threads that come and go.
fn start_readers(path: &Path) -> Result<tokio::sync::mpsc::Sender<ReadJob>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<ReadJob>(1024);
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..READERS {
        let conn = Connection::open(path).map_err(backend)?;
        schema::configure(&conn, false).map_err(backend)?;
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("herald-sqlite-reader-{n}"))
            .spawn(move || loop {
                let job = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
                match job {
                    // A panicking query loses its answer (the caller sees `Closed`), not the thread.
                    Some(job) => {
                        let _ =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
                    }
                    None => return,
                }
            })
            .map_err(backend)?;
    }
    Ok(tx)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Open (or create) `herald.db` in `dir`. This process must be the only one using it.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(format!("cannot create data dir {}: {e}", dir.display())))?;
        let path = dir.join("herald.db");
        let conn = Connection::open(&path).map_err(backend)?;
        schema::configure(&conn, true).map_err(backend)?;
        conn.execute_batch(schema::SCHEMA).map_err(backend)?;
        schema::migrate(&conn).map_err(backend)?;
        let now = now_millis();
        conn.execute(
            "INSERT OR IGNORE INTO projects(name, created_at) VALUES ('default', ?1)",
            [now],
        )
        .map_err(backend)?;
        Ok(SqliteStore {
            writer: Writer::start(conn),
            leases: Arc::new(Leases::default()),
            reads: start_readers(&path)?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read-only query on a reader thread, off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.reads.send(job).await.map_err(|_| StoreError::Closed)?;
        // No answer: the query panicked (the reader caught it and lives on).
        answer
            .await
            .map_err(|_| backend("a query failed unexpectedly; see the log"))?
            .map_err(backend)
    }
}

fn event_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
}

/// What an append does with a wake its instance refuses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wakes {
    /// Refuse the whole append (ingest: the caller hears why).
    Refuse,
    /// Append the event without waking (events Herald itself fires or publishes).
    Skip,
}

/// A refused wake: the event's index, its instance and why.
type Refused = (usize, String, WakeRefusal);

fn refused_error(r: Refused) -> StoreError {
    StoreError::Wake {
        index: r.0,
        instance: r.1,
        refusal: r.2,
    }
}

/// Insert events, their routed deliveries and their workflow starts and wakes within the
/// writer's transaction. Wakes are checked before anything is written, so a refused one
/// leaves the transaction untouched.
fn append_in<'a>(
    c: &Connection,
    project: &str,
    dedup_window_ms: i64,
    events: impl Iterator<Item = &'a NewEvent> + Clone,
    wakes: Wakes,
) -> rusqlite::Result<std::result::Result<Vec<AppendOutcome>, Refused>> {
    let mut skip_wake = std::collections::HashSet::new();
    for (i, ev) in events.clone().enumerate() {
        let Some(instance) = &ev.flow.wake else {
            continue;
        };
        match flows::wake_target(c, project, instance, &ev.ty)? {
            // A start event's `instanceid` is ignored by the workflows it starts.
            Ok(workflow) => {
                if ev.flow.starts.iter().any(|s| s.workflow == workflow) {
                    skip_wake.insert(i);
                }
            }
            Err(refusal) => {
                // A duplicate is acknowledged as at ingest; a start event is not refused
                // for an address it does not need.
                let refuse = wakes == Wakes::Refuse
                    && ev.flow.starts.is_empty()
                    && seen_within(
                        &mut c.prepare_cached(FIND_EVENT)?,
                        project,
                        ev,
                        dedup_window_ms,
                    )?
                    .is_none();
                if refuse {
                    return Ok(Err((i, instance.clone(), refusal)));
                }
                skip_wake.insert(i);
            }
        }
    }
    let mut insert_event = c.prepare_cached(
        "INSERT INTO events(project, id, source, type, topic, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    // Through the subscriptions table: nothing is routed to one deleted meanwhile.
    let mut route = c.prepare_cached(
        "INSERT INTO deliveries(project, subscription_id, seq, target, state, attempts, due_at, created_at)
         SELECT ?1, ?2, ?3, 0, 0, 0, ?4, ?4
         FROM subscriptions s WHERE s.project = ?1 AND s.id = ?2",
    )?;
    let mut hold = c.prepare_cached(
        "INSERT INTO deliveries(project, subscription_id, seq, target, state, attempts, due_at, created_at)
         SELECT ?1, ?2, ?3, 0, 0, 0, ?4, ?5
         FROM subscriptions s WHERE s.project = ?1 AND s.id = ?2",
    )?;
    // Prepared once per append, not per event: this loop is the ingest hot path.
    let mut find = c.prepare_cached(FIND_EVENT)?;
    let mut out = Vec::new();
    for (i, ev) in events.enumerate() {
        if let Some(seq) = seen_within(&mut find, project, ev, dedup_window_ms)? {
            out.push(AppendOutcome::Duplicate { seq });
            continue;
        }
        insert_event.execute(params![
            project,
            ev.id,
            ev.source,
            ev.ty,
            ev.topic,
            ev.received_at,
            ev.body
        ])?;
        let seq = c.last_insert_rowid();
        for sub in &ev.deliveries {
            route.execute(params![project, sub, seq, ev.received_at])?;
        }
        for (sub, until) in &ev.held {
            hold.execute(params![project, sub, seq, until, ev.received_at])?;
        }
        for start in &ev.flow.starts {
            flows::create_instance(c, project, start, ev.received_at)?;
        }
        if let Some(instance) = ev.flow.wake.as_deref().filter(|_| !skip_wake.contains(&i)) {
            flows::keep_wake(c, project, instance, ev, seq)?;
        }
        out.push(AppendOutcome::Stored { seq });
    }
    Ok(Ok(out))
}

/// The seq of an earlier copy of `ev` within the dedup window, if any.
fn seen_within(
    find: &mut rusqlite::CachedStatement<'_>,
    project: &str,
    ev: &NewEvent,
    dedup_window_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let seen: Option<(i64, i64)> = find
        .query_row(params![project, ev.source, ev.id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(seen
        .filter(|(_, at)| *at >= ev.received_at - dedup_window_ms)
        .map(|(seq, _)| seq))
}

/// The latest copy of an event by (project, source, id), for dedup.
const FIND_EVENT: &str =
    "SELECT seq, received_at FROM events WHERE project = ?1 AND source = ?2 AND id = ?3
     ORDER BY seq DESC LIMIT 1";

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
                append_in(
                    c,
                    &batch.project,
                    batch.dedup_window_ms,
                    batch.events.iter(),
                    Wakes::Refuse,
                )
            })
            .await?
            .map_err(refused_error)
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
                Ok(())
            })
            .await
    }

    async fn insert_subscription(&self, project: &str, sub: &StoredSubscription) -> Result<bool> {
        let body = serde_json::to_string(&sub.sub).map_err(backend)?;
        let (project, id, active) = (project.to_string(), sub.sub.id.clone(), sub.sub.is_active());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "INSERT OR IGNORE INTO subscriptions(project, id, active, body) VALUES (?1, ?2, ?3, ?4)",
                    params![project, id, active, body],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn update_subscription(&self, project: &str, sub: &StoredSubscription) -> Result<bool> {
        let body = serde_json::to_string(&sub.sub).map_err(backend)?;
        let (project, id, active) = (project.to_string(), sub.sub.id.clone(), sub.sub.is_active());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE subscriptions SET active = ?3, body = ?4 WHERE project = ?1 AND id = ?2",
                    params![project, id, active, body],
                )?;
                Ok(n == 1)
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
                c.execute(
                    "DELETE FROM audit WHERE project = ?1 AND emitter = ?2",
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

    async fn put_source(
        &self,
        project: &str,
        source: &herald_core::source::SignedSource,
    ) -> Result<()> {
        let body = serde_json::to_string(source).map_err(backend)?;
        let (project, name) = (project.to_string(), source.source.clone());
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO sources(project, source, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(project, source) DO UPDATE SET body = excluded.body",
                    params![project, name, body],
                )?;
                Ok(())
            })
            .await
    }

    async fn delete_source(&self, project: &str, source: &str) -> Result<bool> {
        let (project, source) = (project.to_string(), source.to_string());
        self.writer
            .write(move |c| {
                Ok(c.execute(
                    "DELETE FROM sources WHERE project = ?1 AND source = ?2",
                    params![project, source],
                )? == 1)
            })
            .await
    }

    async fn load_sources(&self) -> Result<Vec<(String, herald_core::source::SignedSource)>> {
        let rows: Vec<(String, String)> = self
            .read(|c| {
                let mut st =
                    c.prepare_cached("SELECT project, body FROM sources ORDER BY project, source")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(project, body)| Ok((project, serde_json::from_str(&body).map_err(backend)?)))
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
        let leases = self.leases.clone();
        self.read(move |c| {
            let mut held = leases.lock();
            held.expire(now);
            let mut due = c.prepare_cached(
                "SELECT d.id, d.due_at FROM deliveries d
                 JOIN subscriptions s ON s.project = d.project AND s.id = d.subscription_id
                 WHERE d.state = 0 AND d.due_at <= ?1 AND s.active = 1
                   AND (d.project || '/' || d.subscription_id) NOT IN (SELECT value FROM json_each(?2))
                 ORDER BY d.due_at, d.id LIMIT ?3",
            )?;
            let rows = due
                .query_map(params![now, skip, (limit + held.len()) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
            let ids: Vec<i64> = rows
                .iter()
                .map(|r| r.0)
                .filter(|id| !held.contains(*id))
                .take(limit)
                .collect();
            let out = load_claimed(c, &ids)?;
            for id in &ids {
                held.insert(*id, lease_until);
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
        let leases = self.leases.clone();
        self.writer.read(move |c| {
            // One snapshot (and one round of WAL locking) for every query of this claim.
            let tx = c.unchecked_transaction()?;
            // The lease table is locked only while picking: completions release their
            // leases from async tasks, which must not wait for this claim's reads.
            let held_before = {
                let mut held = leases.lock();
                held.expire(now);
                held.len()
            };
            let mut queue = tx.prepare_cached(
                "SELECT id, due_at FROM deliveries WHERE project = ?1 AND subscription_id = ?2 AND state = 0
                 ORDER BY due_at, id LIMIT ?3",
            )?;
            let mut active = tx.prepare_cached("SELECT active FROM subscriptions WHERE project = ?1 AND id = ?2")?;
            let mut out = Vec::with_capacity(requests.len());
            for r in &requests {
                let is_active: Option<bool> = active
                    .query_row(params![r.project, r.subscription_id], |row| row.get(0))
                    .optional()?;
                if is_active != Some(true) {
                    out.push(Claimed { deliveries: Vec::new(), next_due: None });
                    continue;
                }
                // Leased rows are still in the queue; read past them.
                let window = r.limit + held_before + 1;
                let rows = queue
                    .query_map(params![r.project, r.subscription_id, window as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
                let mut ids = Vec::new();
                let mut next_due = None;
                {
                    let mut held = leases.lock();
                    for (id, due_at) in &rows {
                        if held.contains(*id) {
                            continue;
                        }
                        if *due_at <= now && ids.len() < r.limit {
                            ids.push(*id);
                        } else {
                            next_due = Some(*due_at);
                            break;
                        }
                    }
                    for id in &ids {
                        held.insert(*id, lease_until);
                    }
                }
                if next_due.is_none() && rows.len() == window {
                    // More rows than we looked at: look again right away.
                    next_due = Some(now);
                }
                let deliveries = load_claimed(&tx, &ids)?;
                if deliveries.len() < ids.len() {
                    // Gone since the scan: no lease for them.
                    let missing: Vec<i64> =
                        ids.iter().copied().filter(|id| !deliveries.iter().any(|d| d.delivery_id == *id)).collect();
                    leases.lock().release(&missing);
                }
                out.push(Claimed { deliveries, next_due });
            }
            drop((queue, active));
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn pending_subscriptions(&self) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT project, id, due FROM (
                   SELECT s.project, s.id, (SELECT MIN(d.due_at) FROM deliveries d
                       WHERE d.project = s.project AND d.subscription_id = s.id AND d.state = 0) AS due
                   FROM subscriptions s WHERE s.active = 1)
                 WHERE due IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    async fn complete(&self, updates: Vec<DeliveryUpdate>) -> Result<()> {
        let ids: Vec<i64> = updates.iter().map(|u| u.delivery_id).collect();
        self.writer
            .write(move |c| {
                let now = now_millis();
                let mut log = c.prepare_cached(
                    "INSERT INTO attempts(project, subscription_id, delivery_id, seq, event_id, target, at, status, latency_ms, error, response_body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                // A subscription deleted while its attempt ran gets no log entry (its log
                // went with it). Looked up once per subscription in the batch.
                let mut exists = c.prepare_cached("SELECT 1 FROM subscriptions WHERE project = ?1 AND id = ?2")?;
                let mut known: HashMap<(&str, &str), bool> = HashMap::new();
                for u in &updates {
                    if let Some(a) = &u.attempt {
                        let key = (u.project.as_str(), u.subscription_id.as_str());
                        let subscribed = match known.get(&key) {
                            Some(s) => *s,
                            None => {
                                let s = exists.exists(params![u.project, u.subscription_id])?;
                                known.insert(key, s);
                                s
                            }
                        };
                        if subscribed {
                            log.execute(params![
                                u.project, u.subscription_id, u.delivery_id, a.seq, a.event_id, a.target.code(), a.at,
                                a.status, a.latency_ms, a.error, a.response_body
                            ])?;
                        }
                    }
                    match &u.next {
                        Next::Delivered => {
                            c.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?.execute([u.delivery_id])?;
                        }
                        Next::RetryAt(at) => {
                            c.prepare_cached(
                                "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, last_error = ?3 WHERE id = ?1",
                            )?
                            .execute(params![u.delivery_id, at, u.last_error])?;
                        }
                        Next::Dead { dead_letter_sink } => {
                            c.prepare_cached(
                                "UPDATE deliveries SET state = 1, attempts = attempts + 1, dead_at = ?2, last_error = ?3 WHERE id = ?1",
                            )?
                            .execute(params![u.delivery_id, now, u.last_error])?;
                            // A copy for the dead-letter sink that dies too is dropped: the
                            // original stays listed as the dead letter, the attempts keep why.
                            c.prepare_cached("DELETE FROM deliveries WHERE id = ?1 AND target = 1")?
                                .execute([u.delivery_id])?;
                            if *dead_letter_sink {
                                c.prepare_cached(
                                    "INSERT INTO deliveries(project, subscription_id, seq, target, state, attempts, due_at, created_at)
                                     SELECT d.project, d.subscription_id, d.seq, 1, 0, 0, ?2, ?2
                                     FROM deliveries d JOIN subscriptions s ON s.project = d.project AND s.id = d.subscription_id
                                     WHERE d.id = ?1 AND d.target = 0",
                                )?
                                .execute(params![u.delivery_id, now])?;
                            }
                        }
                        Next::Release(at) => {
                            c.prepare_cached("UPDATE deliveries SET due_at = ?2 WHERE id = ?1")?
                                .execute(params![u.delivery_id, at])?;
                        }
                    }
                }
                Ok(())
            })
            .await?;
        // Only once the outcome is committed may the delivery be leased again.
        self.leases.lock().release(&ids);
        Ok(())
    }

    async fn settle_held(
        &self,
        project: &str,
        subscription: &str,
        seq: i64,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let (project, subscription) = (project.to_string(), subscription.to_string());
        self.writer
            .write(move |c| {
                let n = match retry_at {
                    None => c
                        .prepare_cached(
                            "DELETE FROM deliveries WHERE project = ?1 AND subscription_id = ?2
                             AND seq = ?3 AND target = 0 AND state = 0",
                        )?
                        .execute(params![project, subscription, seq])?,
                    Some(at) => c
                        .prepare_cached(
                            "UPDATE deliveries SET attempts = attempts + 1, due_at = ?4
                             WHERE project = ?1 AND subscription_id = ?2 AND seq = ?3
                             AND target = 0 AND state = 0",
                        )?
                        .execute(params![project, subscription, seq, at])?,
                };
                Ok(n > 0)
            })
            .await
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        let leases = self.leases.clone();
        self.read(move |c| {
            let mut held = leases.lock();
            held.expire(now_millis());
            let mut st = c.prepare_cached(
                "SELECT d.id, d.due_at FROM deliveries d
                 JOIN subscriptions s ON s.project = d.project AND s.id = d.subscription_id
                 WHERE d.state = 0 AND s.active = 1 ORDER BY d.due_at, d.id LIMIT ?1",
            )?;
            let rows = st
                .query_map([(held.len() + 1) as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
            Ok(rows
                .into_iter()
                .find(|(id, _)| !held.contains(*id))
                .map(|(_, due)| due))
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
                    "UPDATE deliveries SET attempts = 0, due_at = ?3, created_at = ?3, dead_at = NULL, state = 0
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
                    "UPDATE deliveries SET due_at = ?3 WHERE project = ?1 AND subscription_id = ?2 AND state = 0 AND due_at > ?3",
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

    async fn schedule(&self, event: NewScheduled) -> Result<i64> {
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO scheduled(project, topic, due_at, body) VALUES (?1, ?2, ?3, ?4)",
                    params![event.project, event.topic, event.due_at, event.body],
                )?;
                Ok(c.last_insert_rowid())
            })
            .await
    }

    async fn due_scheduled(&self, now: i64, limit: usize) -> Result<Vec<ScheduledEvent>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, project, topic, due_at, body FROM scheduled WHERE due_at <= ?1
                 ORDER BY due_at, id LIMIT ?2",
            )?;
            let rows = st.query_map(params![now, limit as i64], |r| {
                Ok(ScheduledEvent {
                    id: r.get(0)?,
                    project: r.get(1)?,
                    topic: r.get(2)?,
                    due_at: r.get(3)?,
                    body: r.get(4)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn next_scheduled(&self) -> Result<Option<i64>> {
        self.read(|c| c.query_row("SELECT MIN(due_at) FROM scheduled", [], |r| r.get(0)))
            .await
    }

    async fn fire_scheduled(
        &self,
        project: &str,
        dedup_window_ms: i64,
        fired: Vec<(i64, NewEvent)>,
    ) -> Result<usize> {
        let project = project.to_string();
        self.writer
            .write(move |c| {
                let mut forget = c.prepare_cached("DELETE FROM scheduled WHERE id = ?1")?;
                let mut due = Vec::with_capacity(fired.len());
                for (id, ev) in &fired {
                    if forget.execute(params![id])? == 1 {
                        due.push(ev);
                    }
                }
                let out = append_in(c, &project, dedup_window_ms, due.into_iter(), Wakes::Skip)?
                    .unwrap_or_default();
                Ok(out
                    .iter()
                    .filter(|o| matches!(o, AppendOutcome::Stored { .. }))
                    .count())
            })
            .await
    }

    async fn append_audit(
        &self,
        project: &str,
        emitter: &str,
        at: i64,
        body: Vec<u8>,
    ) -> Result<()> {
        let (project, emitter) = (project.to_string(), emitter.to_string());
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO audit(project, emitter, at, body) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![project, emitter, at, body])?;
                Ok(())
            })
            .await
    }

    async fn read_audit(
        &self,
        project: &str,
        emitter: &str,
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let (project, emitter) = (project.to_string(), emitter.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT at, body FROM audit WHERE project = ?1 AND emitter = ?2 AND at >= ?3 AND at < ?4
                 ORDER BY at, id LIMIT ?5",
            )?;
            let rows = st.query_map(params![project, emitter, start, end, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect()
        })
        .await
    }

    async fn save_workflow(
        &self,
        project: &str,
        id: &str,
        body: String,
        awaits: Vec<String>,
        mode: SaveMode,
    ) -> Result<Option<i64>> {
        let (project, id, now) = (project.to_string(), id.to_string(), now_millis());
        self.writer
            .write(move |c| flows::save_workflow(c, &project, &id, &body, &awaits, mode, now))
            .await
    }

    async fn get_workflow(
        &self,
        project: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<WorkflowVersion>> {
        let (project, id) = (project.to_string(), id.to_string());
        self.read(move |c| {
            let sql = if version.is_some() {
                "SELECT project, id, version, body, created_at FROM workflows
                 WHERE project = ?1 AND id = ?2 AND version = ?3"
            } else {
                "SELECT project, id, version, body, created_at FROM workflows
                 WHERE project = ?1 AND id = ?2 AND deleted = 0 AND ?3 IS NULL ORDER BY version DESC LIMIT 1"
            };
            c.prepare_cached(sql)?
                .query_row(params![project, id, version], flows::workflow_from_row)
                .optional()
        })
        .await
    }

    async fn list_workflows(&self, project: Option<&str>) -> Result<Vec<WorkflowVersion>> {
        let project = project.map(str::to_string);
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT w.project, w.id, w.version, w.body, w.created_at FROM workflows w
                 WHERE w.deleted = 0 AND (?1 IS NULL OR w.project = ?1) AND w.version =
                   (SELECT MAX(version) FROM workflows v WHERE v.project = w.project AND v.id = w.id)
                 ORDER BY w.project, w.id",
            )?;
            let rows = st.query_map(params![project], flows::workflow_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn delete_workflow(&self, project: &str, id: &str) -> Result<bool> {
        let (project, id) = (project.to_string(), id.to_string());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE workflows SET deleted = 1 WHERE project = ?1 AND id = ?2 AND deleted = 0",
                    params![project, id],
                )?;
                Ok(n > 0)
            })
            .await
    }

    async fn due_instances(&self, now: i64, limit: usize) -> Result<Vec<(String, String)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT project, id FROM instances WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
            )?;
            let rows = st.query_map(params![now, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn next_instance_due(&self) -> Result<Option<i64>> {
        self.read(|c| {
            c.prepare_cached("SELECT MIN(due_at) FROM instances WHERE due_at IS NOT NULL")?
                .query_row([], |r| r.get(0))
        })
        .await
    }

    async fn get_instance(&self, project: &str, id: &str) -> Result<Option<InstanceRow>> {
        let (project, id) = (project.to_string(), id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM instances WHERE project = ?1 AND id = ?2",
                flows::INSTANCE_COLUMNS
            ))?
            .query_row(params![project, id], flows::instance_from_row)
            .optional()
        })
        .await
    }

    async fn list_instances(
        &self,
        project: &str,
        workflow: &str,
        state: Option<InstanceState>,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<InstanceRow>> {
        let (project, workflow) = (project.to_string(), workflow.to_string());
        let before = before.map(str::to_string);
        let state = state.map(InstanceState::as_str);
        self.read(move |c| {
            // Each form reads its index in order; without statistics the planner would
            // rather walk the primary key through every instance of the project.
            let (index, in_state) = if state.is_some() {
                ("instances_by_workflow", "state = ?3")
            } else {
                ("instances_by_workflow_id", "?3 IS NULL")
            };
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM instances INDEXED BY {index} WHERE project = ?1 AND workflow = ?2
                 AND {in_state} AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5",
                flows::INSTANCE_COLUMNS
            ))?;
            let rows = st.query_map(
                params![project, workflow, state, before, limit as i64],
                flows::instance_from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn instance_counts(
        &self,
        project: &str,
        workflow: &str,
    ) -> Result<Vec<(InstanceState, u64)>> {
        let (project, workflow) = (project.to_string(), workflow.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT state, COUNT(*) FROM instances WHERE project = ?1 AND workflow = ?2 GROUP BY state",
            )?;
            let rows = st.query_map(params![project, workflow], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (state, n) = row?;
                if let Some(state) = InstanceState::parse(&state) {
                    out.push((state, n as u64));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn kept_events(&self, project: &str, instance: &str) -> Result<Vec<KeptEvent>> {
        let (project, instance) = (project.to_string(), instance.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, type, seq, received_at, body FROM kept_events
                 WHERE project = ?1 AND instance = ?2 ORDER BY id",
            )?;
            let rows = st.query_map(params![project, instance], |r| {
                Ok(KeptEvent {
                    id: r.get(0)?,
                    ty: r.get(1)?,
                    seq: r.get(2)?,
                    received_at: r.get(3)?,
                    body: r.get(4)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn instance_history(&self, project: &str, instance: &str) -> Result<Vec<HistoryEntry>> {
        let (project, instance) = (project.to_string(), instance.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT at, step, kind, detail FROM instance_history
                 WHERE project = ?1 AND instance = ?2 ORDER BY id",
            )?;
            let rows = st.query_map(params![project, instance], |r| {
                let detail: String = r.get(3)?;
                Ok(HistoryEntry {
                    at: r.get(0)?,
                    step: r.get(1)?,
                    kind: r.get(2)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn change_instance(&self, change: InstanceChange) -> Result<Option<Vec<AppendOutcome>>> {
        self.writer
            .write(move |c| {
                if !flows::change_instance(c, &change)? {
                    return Ok(None);
                }
                let out = append_in(
                    c,
                    &change.next.project,
                    change.dedup_window_ms,
                    change.publish.iter(),
                    Wakes::Skip,
                )?;
                Ok(Some(out.unwrap_or_default()))
            })
            .await
    }

    async fn prune_instances(&self, finished_before: i64) -> Result<u64> {
        // Found by a reader (a scan: no index on the hot columns), removed by key in
        // small writes, so the writer never stalls on the scan.
        let mut pruned = 0;
        let mut after = None;
        loop {
            let from = after.clone();
            let keys = self
                .read(move |c| flows::finished_before(c, finished_before, from, 500))
                .await?;
            let n = keys.len();
            after = keys.last().cloned();
            pruned += self
                .writer
                .write(move |c| flows::prune_instances(c, &keys, finished_before))
                .await?;
            if n < 500 {
                return Ok(pruned);
            }
        }
    }

    async fn prune(&self, attempts_keep: usize, events_before: i64) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "DELETE FROM attempts WHERE id IN (SELECT id FROM (
                        SELECT id, ROW_NUMBER() OVER (PARTITION BY project, subscription_id ORDER BY id DESC) AS rn FROM attempts)
                     WHERE rn > ?1)",
                    [attempts_keep as i64],
                )?;
                // seq grows with arrival, so the events received before the cutoff are a
                // seq range: find its end by bisection over the primary key instead of
                // paying for an index on received_at at every insert.
                let cutoff = first_seq_received_at_or_after(c, events_before)?;
                c.execute(
                    "DELETE FROM events WHERE seq < ?1 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = events.seq)",
                    [cutoff],
                )?;
                Ok(())
            })
            .await
    }
}

/// Details and event bodies of the deliveries just leased, in the order of `ids`.
fn load_claimed(c: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<ClaimedDelivery>> {
    // One indexed lookup per id, in the order given: cheaper than an `IN` list, which
    // builds a temporary index of the ids and returns rows in any order.
    let mut st = c.prepare_cached(
        "SELECT d.project, d.subscription_id, d.seq, d.target, d.attempts, d.created_at, e.body
         FROM deliveries d JOIN events e ON e.seq = d.seq
         WHERE d.id = ?1",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let row = st
            .query_row([id], |r| {
                Ok(ClaimedDelivery {
                    delivery_id: id,
                    project: r.get(0)?,
                    subscription_id: r.get(1)?,
                    seq: r.get(2)?,
                    target: Target::from_code(r.get(3)?),
                    attempts: r.get(4)?,
                    created_at: r.get(5)?,
                    body: r.get(6)?,
                })
            })
            .optional()?;
        out.extend(row);
    }
    Ok(out)
}

/// The smallest seq whose event was received at or after `at` (one past the last seq when
/// none was). Arrival times follow seq order up to the few milliseconds between a request
/// taking its time and its commit, which a retention cutoff does not notice.
fn first_seq_received_at_or_after(c: &Connection, at: i64) -> rusqlite::Result<i64> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        c.query_row("SELECT MIN(seq), MAX(seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut lo), Some(hi)) = (lo, hi) else {
        return Ok(0);
    };
    let mut at_or_after = c.prepare_cached(
        "SELECT seq, received_at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
    )?;
    let mut hi = hi + 1;
    // Invariant: every event below lo arrived before `at`; every event from hi on at or after it.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (seq, received): (i64, i64) =
            at_or_after.query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if received < at {
            lo = seq + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

//! The SQLite schema and connection settings. WAL with `synchronous=FULL`: a commit is
//! durable when it returns, and the writer's group commit keeps that to one fsync per group.

use rusqlite::Connection;

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    topic TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
-- Dedup looks up (project, source, id) here: no separate dedup table to write.
CREATE INDEX IF NOT EXISTS events_by_key ON events(project, source, id);
CREATE TABLE IF NOT EXISTS subscriptions (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    active INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (project, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    project TEXT NOT NULL,
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (project, source)
) WITHOUT ROWID;
-- state: 0 pending, 1 dead. Leasing goes through deliveries_by_subscription; every
-- index here costs on each ingest and each delivery, so there is no other.
-- Leases are held in memory by the one process that owns the file (see leases.rs).
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    target INTEGER NOT NULL,
    state INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    dead_at INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_subscription ON deliveries(project, subscription_id, state, due_at);
CREATE INDEX IF NOT EXISTS deliveries_by_seq ON deliveries(seq);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    delivery_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    target INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response_body TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_subscription ON attempts(project, subscription_id, id);
-- Events accepted for later (queue API delay/timestamp): appended to the log when due.
CREATE TABLE IF NOT EXISTS scheduled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    topic TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS scheduled_by_due ON scheduled(due_at);
-- What Audit emitters kept, read back by time range by their owner.
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    emitter TEXT NOT NULL,
    at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_emitter ON audit(project, emitter, at);
-- Workflow definitions, one row per version; an edit adds a version, a delete marks every
-- version deleted (running instances keep theirs). `awaits`: the event types its wait
-- steps await, one per line (a wake of any other type is refused).
CREATE TABLE IF NOT EXISTS workflows (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    awaits TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, id, version)
) WITHOUT ROWID;
-- Workflow instances. `rev` grows with every change: a change computed from an older
-- read is refused, so concurrent wakes advance an instance once. `deadline` ends a delay
-- or a wait; `due_at` is when the engine must look at it next (a wake makes it due at
-- once; NULL: only a wake can move it).
CREATE TABLE IF NOT EXISTS instances (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    step INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    context TEXT NOT NULL,
    waiting_for TEXT NOT NULL,
    deadline INTEGER,
    due_at INTEGER,
    rev INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    error TEXT,
    depth INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS instances_due ON instances(due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS instances_by_workflow ON instances(project, workflow, state, id);
-- Listing a workflow's instances without a state: written once per instance (neither
-- column ever changes).
CREATE INDEX IF NOT EXISTS instances_by_workflow_id ON instances(project, workflow, id);
-- Wake events kept for an instance until it consumes them (no lost wake-ups).
CREATE TABLE IF NOT EXISTS kept_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    instance TEXT NOT NULL,
    type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kept_by_instance ON kept_events(project, instance, id);
CREATE TABLE IF NOT EXISTS instance_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    instance TEXT NOT NULL,
    at INTEGER NOT NULL,
    step INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_instance ON instance_history(project, instance, id);
"#;

/// Columns added after their table first shipped, for files created before.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info('instances')")?;
    let columns = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !columns.iter().any(|c| c == "depth") {
        conn.execute_batch("ALTER TABLE instances ADD COLUMN depth INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

pub fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // A commit writes every page it dirtied to the WAL and index inserts dirty pages all
    // over, so smaller pages mean fewer bytes per commit (2 KiB against the 4 KiB default).
    conn.pragma_update(None, "page_size", 2048)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Page caches are the store's memory: they are capped, so it stays flat however much
    // is on disk. The writer's is no larger than the readers': below 1 GiB of database,
    // SQLite walks the writer's whole page cache at the end of every commit that split a
    // B-tree page onto free pages (`balance_nonroot` renumbers pages through the page at
    // the 1 GiB mark, and the cache truncation then scans every hash slot). With 16 MiB
    // that walk was a third of the writer's CPU while delivering (perf).
    conn.pragma_update(None, "cache_size", -4_000)?;
    if writer {
        // No `temp_store=MEMORY`: the in-memory temp database's page cache was truncated
        // (its whole hash scanned) at the end of every transaction, ~20% of the writer's
        // CPU while delivering (perf); nothing here needs temp storage that large anyway.
        // Checkpoints copy the WAL into the database and fsync it, stalling the writer;
        // 10,000 pages (20 MiB of WAL at 2 KiB pages) between them instead of 1,000.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    } else {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instances_table_without_depth_gains_it() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE instances (project TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (project, id));
             INSERT INTO instances VALUES ('p', 'i');",
        )
        .unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap(); // and again: nothing to do
        let depth: i64 = conn
            .query_row("SELECT depth FROM instances", [], |r| r.get(0))
            .unwrap();
        assert_eq!(depth, 0);
    }
}

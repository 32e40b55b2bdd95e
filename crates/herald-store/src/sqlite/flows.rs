//! Workflow rows in SQLite: definitions by version, instances, kept wake events and
//! history. Everything here runs inside the writer's transaction or a reader's query;
//! `mod.rs` wires it to the [`crate::Store`] methods.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::model::*;

pub(super) const INSTANCE_COLUMNS: &str = "project, id, workflow, version, state, step, attempt, context, waiting_for, deadline, due_at, rev, created_at, updated_at, error, depth";

pub(super) fn instance_from_row(r: &Row) -> rusqlite::Result<InstanceRow> {
    let state: String = r.get(4)?;
    let waiting: String = r.get(8)?;
    Ok(InstanceRow {
        project: r.get(0)?,
        id: r.get(1)?,
        workflow: r.get(2)?,
        version: r.get(3)?,
        state: InstanceState::parse(&state).unwrap_or(InstanceState::Failed),
        step: r.get(5)?,
        attempt: r.get(6)?,
        context: r.get(7)?,
        waiting_for: split_lines(&waiting),
        deadline: r.get(9)?,
        due_at: r.get(10)?,
        rev: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        error: r.get(14)?,
        depth: r.get(15)?,
    })
}

fn split_lines(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The workflow of `instance`, or why it may not be woken by an event of type `ty`.
pub(super) fn wake_target(
    c: &Connection,
    project: &str,
    instance: &str,
    ty: &str,
) -> rusqlite::Result<Result<String, WakeRefusal>> {
    let found: Option<(String, String, String)> = c
        .prepare_cached(
            "SELECT i.state, i.workflow, w.awaits FROM instances i
             JOIN workflows w ON w.project = i.project AND w.id = i.workflow AND w.version = i.version
             WHERE i.project = ?1 AND i.id = ?2",
        )?
        .query_row(params![project, instance], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((state, workflow, awaits)) = found else {
        return Ok(Err(WakeRefusal::UnknownInstance));
    };
    let state = InstanceState::parse(&state).unwrap_or(InstanceState::Failed);
    if !state.takes_wakes() {
        return Ok(Err(WakeRefusal::Finished(state)));
    }
    if !awaits.lines().any(|t| t == ty) {
        return Ok(Err(WakeRefusal::NotAwaited));
    }
    Ok(Ok(workflow))
}

/// Keep a wake event for its instance; if the instance waits for this type now, make it
/// due at once.
pub(super) fn keep_wake(
    c: &Connection,
    project: &str,
    instance: &str,
    ev: &NewEvent,
    seq: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO kept_events(project, instance, type, seq, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![project, instance, ev.ty, seq, ev.received_at, ev.body])?;
    wake_if_awaited(c, project, instance, ev.received_at)
}

/// Make a waiting instance due now if a kept event has a type it waits for.
fn wake_if_awaited(
    c: &Connection,
    project: &str,
    instance: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let waiting: Option<String> = c
        .prepare_cached(
            "SELECT waiting_for FROM instances WHERE project = ?1 AND id = ?2 AND state = 'waiting'",
        )?
        .query_row(params![project, instance], |r| r.get(0))
        .optional()?;
    let Some(waiting) = waiting.filter(|w| !w.is_empty()) else {
        return Ok(());
    };
    let mut kept = c.prepare_cached(
        "SELECT type FROM kept_events WHERE project = ?1 AND instance = ?2 ORDER BY id",
    )?;
    let types = kept
        .query_map(params![project, instance], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if types.iter().any(|t| waiting.lines().any(|w| w == t)) {
        c.prepare_cached(
            "UPDATE instances SET due_at = ?3 WHERE project = ?1 AND id = ?2 AND (due_at IS NULL OR due_at > ?3)",
        )?
        .execute(params![project, instance, now])?;
    }
    Ok(())
}

pub(super) fn create_instance(
    c: &Connection,
    project: &str,
    new: &NewInstance,
    now: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO instances(project, id, workflow, version, state, step, attempt, context, waiting_for, due_at, rev, created_at, updated_at, depth)
         VALUES (?1, ?2, ?3, ?4, 'starting', 0, 0, ?5, '', ?6, 0, ?6, ?6, ?7)",
    )?
    .execute(params![project, new.id, new.workflow, new.version, new.context, now, new.depth])?;
    Ok(())
}

/// Apply a change if the instance is still at the expected revision and every consumed
/// kept event is still there; false (nothing written) otherwise.
pub(super) fn change_instance(c: &Connection, ch: &InstanceChange) -> rusqlite::Result<bool> {
    let next = &ch.next;
    let rev: Option<i64> = c
        .prepare_cached("SELECT rev FROM instances WHERE project = ?1 AND id = ?2")?
        .query_row(params![next.project, next.id], |r| r.get(0))
        .optional()?;
    if rev != Some(ch.expect_rev) {
        return Ok(false);
    }
    let mut present = c.prepare_cached(
        "SELECT 1 FROM kept_events WHERE id = ?1 AND project = ?2 AND instance = ?3",
    )?;
    for id in &ch.consume {
        if present
            .query_row(params![id, next.project, next.id], |_| Ok(()))
            .optional()?
            .is_none()
        {
            return Ok(false);
        }
    }
    let mut forget = c.prepare_cached("DELETE FROM kept_events WHERE id = ?1")?;
    for id in &ch.consume {
        forget.execute(params![id])?;
    }
    c.prepare_cached(
        "UPDATE instances SET state = ?3, step = ?4, attempt = ?5, context = ?6, waiting_for = ?7,
         due_at = ?8, error = ?9, updated_at = ?10, deadline = ?11, rev = rev + 1
         WHERE project = ?1 AND id = ?2",
    )?
    .execute(params![
        next.project,
        next.id,
        next.state.as_str(),
        next.step,
        next.attempt,
        next.context,
        next.waiting_for.join("\n"),
        next.due_at,
        next.error,
        next.updated_at,
        next.deadline
    ])?;
    let mut history = c.prepare_cached(
        "INSERT INTO instance_history(project, instance, at, step, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for h in &ch.history {
        history.execute(params![
            next.project,
            next.id,
            h.at,
            h.step,
            h.kind,
            h.detail.to_string()
        ])?;
    }
    if next.state == InstanceState::Waiting {
        wake_if_awaited(c, &next.project, &next.id, next.updated_at)?;
    }
    if !next.state.takes_wakes() {
        // Nothing can consume them any more (a failed instance may be retried).
        c.prepare_cached("DELETE FROM kept_events WHERE project = ?1 AND instance = ?2")?
            .execute(params![next.project, next.id])?;
    }
    Ok(true)
}

pub(super) fn save_workflow(
    c: &Connection,
    project: &str,
    id: &str,
    body: &str,
    awaits: &[String],
    mode: SaveMode,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    let (latest, live): (Option<i64>, Option<i64>) = c
        .prepare_cached(
            "SELECT MAX(version), MAX(CASE WHEN deleted = 0 THEN version END) FROM workflows WHERE project = ?1 AND id = ?2",
        )?
        .query_row(params![project, id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    match (mode, live) {
        (SaveMode::Create, Some(_)) | (SaveMode::Replace, None) => return Ok(None),
        _ => {}
    }
    // Numbers keep growing across a delete, so an old instance's version stays its own.
    let version = latest.unwrap_or(0) + 1;
    c.prepare_cached(
        "INSERT INTO workflows(project, id, version, body, awaits, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![project, id, version, body, awaits.join("\n"), now])?;
    Ok(Some(version))
}

pub(super) fn workflow_from_row(r: &Row) -> rusqlite::Result<WorkflowVersion> {
    Ok(WorkflowVersion {
        project: r.get(0)?,
        id: r.get(1)?,
        version: r.get(2)?,
        body: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const FINISHED_BEFORE: &str = "state IN ('completed', 'failed', 'cancelled') AND updated_at < ?";

/// Up to `limit` instances that finished before `before`, in key order after `after`
/// (the last key of the previous batch), so that batches never scan the same rows twice.
pub(super) fn finished_before(
    c: &Connection,
    before: i64,
    after: Option<(String, String)>,
    limit: usize,
) -> rusqlite::Result<Vec<(String, String)>> {
    let (p, i) = after.unwrap_or_default();
    let mut st = c.prepare_cached(&format!(
        "SELECT project, id FROM instances WHERE (project, id) > (?2, ?3) AND {}
         ORDER BY project, id LIMIT {limit}",
        FINISHED_BEFORE.replace('?', "?1")
    ))?;
    let rows = st.query_map(params![before, p, i], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Drop these instances, with their history and kept events, if they are still finished
/// before `before` (one may have been retried since it was found).
pub(super) fn prune_instances(
    c: &Connection,
    keys: &[(String, String)],
    before: i64,
) -> rusqlite::Result<u64> {
    let mut instance = c.prepare_cached(&format!(
        "DELETE FROM instances WHERE project = ?2 AND id = ?3 AND {}",
        FINISHED_BEFORE.replace('?', "?1")
    ))?;
    let mut history =
        c.prepare_cached("DELETE FROM instance_history WHERE project = ?1 AND instance = ?2")?;
    let mut kept =
        c.prepare_cached("DELETE FROM kept_events WHERE project = ?1 AND instance = ?2")?;
    let mut n = 0;
    for (project, id) in keys {
        if instance.execute(params![before, project, id])? == 1 {
            history.execute(params![project, id])?;
            kept.execute(params![project, id])?;
            n += 1;
        }
    }
    Ok(n)
}

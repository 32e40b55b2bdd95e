//! The single writer thread and its group commit: every write is a job; the thread takes
//! all jobs waiting, runs them in one transaction, commits once (one fsync) and only then
//! answers each caller. Jobs run without savepoints (a savepoint copies every page a job
//! touches); if one fails, the transaction is rolled back and the group is run again with
//! a savepoint per job, so the failing job rolls back alone.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Most jobs in one group; bounds the latency a group adds to its first caller.
const MAX_GROUP: usize = 2048;

/// A write waiting for the next group commit. `run` may be called twice (see above).
trait Job: Send {
    /// A read: run at once, outside the group's transaction (see [`Writer::read`]).
    fn read_only(&self) -> bool {
        false
    }
    /// Run inside the open transaction; false when it failed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answer the caller once the group's commit is known.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Typed<T, F> {
    f: F,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: Fn(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let r = (self.f)(conn);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let answer = match (self.result, committed) {
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Err(e)), _) => Err(StoreError::Backend(e.to_string())),
            (_, Err(e)) => Err(StoreError::Backend(e)),
            (None, Ok(())) => Err(StoreError::Backend("write was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// A read on the writer's connection; answers its caller itself.
struct Read<F> {
    f: Option<F>,
}

impl<F> Job for Read<F>
where
    F: FnOnce(&Connection) + Send,
{
    fn read_only(&self) -> bool {
        true
    }

    fn run(&mut self, conn: &Connection) -> bool {
        if let Some(f) = self.f.take() {
            f(conn);
        }
        true
    }

    fn finish(self: Box<Self>, _committed: std::result::Result<(), String>) {}
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Start the writer thread on `conn`. The channel is bounded: callers wait (backpressure)
    /// rather than queue without limit.
    pub fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(8192);
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawn writer thread");
        Writer { tx }
    }

    /// Run `f` in the next group commit; resolves after the commit is durable. `f` may run
    /// twice (then only its second run is kept), so it must not have effects outside `conn`.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<T>>();
        let job = Box::new(Typed {
            f,
            result: None,
            reply,
        });
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run the read `f` on the writer's connection, between two groups. For reads that
    /// come right after writes, again and again (leasing due deliveries): every commit
    /// resets a reader connection's page cache, so a reader fetches each page again,
    /// while the writer's cache stays valid (it made the changes).
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<rusqlite::Result<T>>();
        let job = Box::new(Read {
            f: Some(move |conn: &Connection| {
                let _ = reply.send(f(conn));
            }),
        });
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Backend("a read failed unexpectedly; see the log".into()))?
            .map_err(|e| StoreError::Backend(e.to_string()))
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Reads first: they see what is committed, and their callers need not wait for
        // this group's fsync. A panicking read loses its answer, not the writer.
        jobs.retain_mut(|job| {
            if !job.read_only() {
                return true;
            }
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&conn)));
            false
        });
        if jobs.is_empty() {
            continue;
        }
        let committed = commit_group(&conn, &mut jobs);
        for job in jobs {
            job.finish(committed.clone());
        }
    }
}

/// Run every job and commit; on a failing job, redo the group with savepoints.
fn commit_group(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| format!("could not begin transaction: {e}"))?;
    let mut all_ok = true;
    for job in jobs.iter_mut() {
        all_ok &= job.run(conn);
        if !all_ok {
            break;
        }
    }
    if !all_ok {
        let _ = exec(conn, "ROLLBACK");
        exec(conn, "BEGIN IMMEDIATE").map_err(|e| format!("could not begin transaction: {e}"))?;
        for job in jobs.iter_mut() {
            let _ = exec(conn, "SAVEPOINT job");
            if !job.run(conn) {
                if conn.is_autocommit() {
                    // The failure (disk full, I/O error) ended the whole transaction: nothing
                    // of this group is written, so no job may be answered as committed.
                    return Err("the transaction was aborted by a storage error".into());
                }
                let _ = exec(conn, "ROLLBACK TO job");
            }
            let _ = exec(conn, "RELEASE job");
        }
    }
    exec(conn, "COMMIT").map_err(|e| {
        let _ = exec(conn, "ROLLBACK");
        format!("commit failed: {e}")
    })
}

/// Run a transaction-control statement from the statement cache (they run per group).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn reads_see_what_is_committed_and_a_panicking_read_spares_the_writer() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        let w = Writer::start(conn);
        w.write(|c| c.execute("INSERT INTO t (v) VALUES (7)", []))
            .await
            .unwrap();
        let count = |c: &Connection| -> rusqlite::Result<i64> {
            c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
        };
        assert_eq!(w.read(count).await.unwrap(), 1);
        let lost = w
            .read(|_| -> rusqlite::Result<i64> { panic!("a bug in a read") })
            .await;
        assert!(matches!(lost, Err(StoreError::Backend(_))));
        w.write(|c| c.execute("INSERT INTO t (v) VALUES (8)", []))
            .await
            .unwrap();
        assert_eq!(w.read(count).await.unwrap(), 2);
        let failed = w
            .read(|c| c.execute("INSERT INTO missing VALUES (1)", []))
            .await;
        assert!(matches!(failed, Err(StoreError::Backend(m)) if m.contains("missing")));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_job_rolls_back_alone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        let w = Writer::start(conn);
        let mut tasks = Vec::new();
        for i in 0..50i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i])?;
                    if i % 10 == 3 {
                        // Fails after a write of its own: that write must vanish too.
                        c.execute("INSERT INTO missing (v) VALUES (1)", [])?;
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut failed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => {}
                Err(StoreError::Backend(msg)) => {
                    assert!(msg.contains("missing"), "{msg}");
                    failed += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(failed, 5);
        let (n, sum): (i64, i64) = w
            .write(|c| {
                c.query_row("SELECT COUNT(*), SUM(v) FROM t", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .await
            .unwrap();
        let expected: i64 = (0..50).filter(|i| i % 10 != 3).sum();
        assert_eq!((n, sum), (45, expected));
    }
}

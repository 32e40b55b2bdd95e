//! The single writer thread and its group commit: every write is a job; the thread takes
//! all jobs waiting, runs each in its own savepoint inside one transaction, commits once
//! (one fsync) and only then answers each caller. A failing job rolls back alone.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Runs inside the transaction (`None`: the transaction could not begin, so the job only
/// fails); returns whether it succeeded and what to do after commit.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;
type Finish = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// Most jobs in one group; bounds the latency a group adds to its first caller.
const MAX_GROUP: usize = 2048;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer thread on `conn`. The channel is bounded: callers wait (backpressure)
    /// rather than queue without limit.
    pub fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(8192);
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawn writer thread");
        Writer { tx }
    }

    /// Run `f` in the next group commit; resolves after the commit is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| match conn.map(f) {
            None => (
                false,
                Box::new(move |outcome: std::result::Result<(), String>| {
                    let _ = reply.send(Err(StoreError::Backend(outcome.err().unwrap_or_default())));
                }),
            ),
            Some(Ok(value)) => (
                true,
                Box::new(move |committed| {
                    let _ = reply.send(committed.map(|_| value).map_err(StoreError::Backend));
                }),
            ),
            Some(Err(e)) => {
                let msg = e.to_string();
                (
                    false,
                    Box::new(move |_| {
                        let _ = reply.send(Err(StoreError::Backend(msg)));
                    }),
                )
            }
        });
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut finishers = Vec::with_capacity(jobs.len());
        let began = exec(&conn, "BEGIN IMMEDIATE");
        if let Err(e) = began {
            for job in jobs {
                let (_, finish) = job(None);
                finish(Err(format!("could not begin transaction: {e}")));
            }
            continue;
        }
        for job in jobs {
            let _ = exec(&conn, "SAVEPOINT job");
            let (ok, finish) = job(Some(&conn));
            if !ok {
                let _ = exec(&conn, "ROLLBACK TO job");
            }
            let _ = exec(&conn, "RELEASE job");
            finishers.push(finish);
        }
        let committed = exec(&conn, "COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            format!("commit failed: {e}")
        });
        for finish in finishers {
            finish(committed.clone());
        }
    }
}

/// Run a transaction-control statement from the statement cache (they run per job).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

//! The baseline servers and the measuring receiver. They do the least work the real
//! thing must do, so Herald's numbers read as a fraction of what the machine allows.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

async fn listen(port: u16, app: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready");
    axum::serve(listener, app).await?;
    Ok(())
}

pub async fn bare_202(port: u16) -> anyhow::Result<()> {
    listen(
        port,
        Router::new().fallback(|| async { StatusCode::ACCEPTED }),
    )
    .await
}

type Append = (Bytes, oneshot::Sender<()>);

/// Group commit in its barest form: a writer thread takes every body waiting, appends
/// them, fsyncs once, then answers each request.
pub async fn bare_append(port: u16, file: PathBuf) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Append>(8192);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)?;
    std::thread::spawn(move || {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            for (body, _) in &group {
                let _ = f.write_all(body);
                let _ = f.write_all(b"\n");
            }
            let _ = f.sync_data();
            for (_, done) in group {
                let _ = done.send(());
            }
        }
    });
    let app = Router::new().fallback(move |body: Bytes| {
        let tx = tx.clone();
        async move {
            let (done, wait) = oneshot::channel();
            if tx.send((body, done)).await.is_err() || wait.await.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            StatusCode::ACCEPTED
        }
    });
    listen(port, app).await
}

#[derive(Default)]
struct Stats {
    count: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Counts requests; when the body is JSON with `ts` (µs since epoch), records latency.
pub async fn receiver(port: u16) -> anyhow::Result<()> {
    let stats = Arc::new(Stats::default());
    let app = Router::new()
        .route("/stats", get(report))
        .route("/count", get(count))
        .route("/reset", post(reset))
        .fallback(hit)
        .with_state(stats);
    listen(port, app).await
}

async fn hit(State(s): State<Arc<Stats>>, body: Bytes) -> StatusCode {
    s.count.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        let ts = v["ts"].as_u64().or_else(|| v["data"]["ts"].as_u64());
        if let Some(ts) = ts {
            s.latencies_us
                .lock()
                .unwrap()
                .push(now_us().saturating_sub(ts));
        }
    }
    StatusCode::OK
}

async fn report(State(s): State<Arc<Stats>>) -> Json<serde_json::Value> {
    let mut l = s.latencies_us.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            0
        } else {
            l[((l.len() - 1) as f64 * p) as usize]
        }
    };
    Json(
        serde_json::json!({"count": s.count.load(Ordering::Relaxed), "p50_us": pct(0.5), "p99_us": pct(0.99), "samples": l.len()}),
    )
}

/// Cheap enough to poll while a measurement runs (`/stats` sorts every sample).
async fn count(State(s): State<Arc<Stats>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"count": s.count.load(Ordering::Relaxed)}))
}

async fn reset(State(s): State<Arc<Stats>>) -> StatusCode {
    s.count.store(0, Ordering::Relaxed);
    s.latencies_us.lock().unwrap().clear();
    StatusCode::OK
}

pub fn payload(pad: usize) -> String {
    format!(
        r#"{{"ts":{},"order":"ord-0000001","customer":"cus-42","amount":129.95,"currency":"EUR","pad":"{}"}}"#,
        now_us(),
        "x".repeat(pad)
    )
}

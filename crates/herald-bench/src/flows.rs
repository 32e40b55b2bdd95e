//! The workflow benchmark: a workflow whose instances sleep in a `wait` step until an
//! event with their `ce-instanceid` wakes them, then call an action on a local receiver.
//! It fills Herald with 100,000 sleeping instances and reports RSS as they pile up (state
//! is on disk, so memory must stay flat), then wake latency (wake request sent -> the
//! instance's action arrives) at a light paced rate and at full load, and wakes/s beside
//! plain ingest of the same event measured in the same run.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::load::{closed_loop, open_loop, MakeRequest};
use crate::server::{send_json, start_herald, Herald};

#[derive(clap::Args)]
pub struct Args {
    /// Sleeping instances to create.
    #[arg(long, default_value_t = 100_000)]
    instances: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections at full load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Wakes per second of the light, paced measurement.
    #[arg(long, default_value_t = 100.0)]
    paced_rate: f64,
    /// Start events per batch-mode request while filling.
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

const WORKFLOW: &str = "sleepy";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Wake latencies seen by the action receiver (µs), and how many actions arrived.
#[derive(Default)]
struct Woken {
    arrived: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Woken {
    fn take(&self) -> Vec<u64> {
        let mut l = std::mem::take(&mut *self.latencies_us.lock().unwrap());
        l.sort_unstable();
        l
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

/// The action's body is the instance context: the wake's payload carries `ts`.
async fn action(State(w): State<Arc<Woken>>, body: Bytes) -> StatusCode {
    w.arrived.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        if let Some(ts) = v["bench.wake"]["ts"].as_u64() {
            w.latencies_us
                .lock()
                .unwrap()
                .push(now_us().saturating_sub(ts));
        }
    }
    StatusCode::OK
}

async fn start_receiver(woken: Arc<Woken>) -> Result<String> {
    let app = axum::Router::new().fallback(action).with_state(woken);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Instances in each state, from the workflow's view.
async fn counts(client: &reqwest::Client, api: &str) -> Result<Value> {
    let wf = send_json(client.get(format!("{api}/workflows/{WORKFLOW}"))).await?;
    Ok(wf["instances"].clone())
}

/// Wait until `n` instances sleep; returns the seconds it took.
async fn until_waiting(client: &reqwest::Client, api: &str, n: u64) -> Result<f64> {
    let start = Instant::now();
    loop {
        let c = counts(client, api).await?;
        if c["waiting"].as_u64().unwrap_or(0) >= n {
            return Ok(start.elapsed().as_secs_f64());
        }
        if c["failed"].as_u64().unwrap_or(0) > 0 {
            bail!("instances failed: {c}");
        }
        if start.elapsed() > Duration::from_secs(1800) {
            bail!("instances never all slept: {c}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Send `n` start events in batch mode, `batch` per request, 4 requests in flight.
async fn start_instances(api: &str, from: usize, n: usize, batch: usize) -> Result<()> {
    let client = crate::load::client(4);
    let next = Arc::new(AtomicUsize::new(from));
    let end = from + n;
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, next, url) = (client.clone(), next.clone(), format!("{api}/events"));
        workers.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= end {
                    return Ok::<_, anyhow::Error>(());
                }
                let events: Vec<Value> = (first..(first + batch).min(end))
                    .map(|i| {
                        json!({"specversion": "1.0", "id": format!("start-{i}"), "source": "/bench",
                               "type": "bench.start", "data": {"order": i}})
                    })
                    .collect();
                send_json(
                    client
                        .post(&url)
                        .header("content-type", "application/cloudevents-batch+json")
                        .body(Value::Array(events).to_string()),
                )
                .await?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Ids of every sleeping instance, paged from the API.
async fn sleeping_ids(client: &reqwest::Client, api: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut url = format!("{api}/workflows/{WORKFLOW}/instances?state=waiting&limit=1000");
        if let Some(b) = &before {
            url.push_str(&format!("&before={b}"));
        }
        let page = send_json(client.get(url)).await?;
        let page = page["instances"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return Ok(ids);
        }
        for i in &page {
            ids.push(i["id"].as_str().context("instance id")?.to_string());
        }
        before = ids.last().cloned();
    }
}

/// A wake for the next unused instance, stamped with its send time.
fn wake_request(url: String, ids: Arc<Vec<String>>, next: Arc<AtomicUsize>) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        // Past the last sleeping instance: an unknown one, refused (counted as an error).
        let id = ids
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("exhausted-{i}"));
        c.post(&url)
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("wake-{i}"))
            .header("ce-source", "/bench")
            .header("ce-type", "bench.wake")
            .header("ce-instanceid", id)
            .header("content-type", "application/json")
            .body(format!(r#"{{"ts":{},"paid":true}}"#, now_us()))
    })
}

/// The same event, addressed to no instance (the plain-ingest baseline).
fn plain_request(url: String, counter: Arc<AtomicU64>) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client| {
        let i = counter.fetch_add(1, Ordering::Relaxed);
        c.post(&url)
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("plain-{i}"))
            .header("ce-source", "/bench")
            .header("ce-type", "bench.other")
            .header("content-type", "application/json")
            .body(format!(r#"{{"ts":{},"paid":true}}"#, now_us()))
    })
}

/// Wait until `n` actions arrived (or 60 s pass); returns when the last one came.
async fn drain(woken: &Woken, n: u64, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    while woken.arrived.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    since.elapsed()
}

pub async fn run(args: Args) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("herald-bench-flows-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = measure(&args, &tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn measure(args: &Args, tmp: &std::path::Path) -> Result<()> {
    let n = args.instances;
    let d = Duration::from_secs(args.seconds);
    println!(
        "# workflow benchmark: {n} sleeping instances, {} connections, {}s per measurement\n",
        args.connections, args.seconds
    );
    let herald: Herald = start_herald(&tmp.join("herald-data"))?;
    let api = format!("{}/v1/api/default", herald.url);
    let client = reqwest::Client::new();
    let woken = Arc::new(Woken::default());
    let receiver = start_receiver(woken.clone()).await?;
    send_json(client.post(format!("{api}/workflows")).json(&json!({
        "id": WORKFLOW,
        "start": {"type": "bench.start"},
        "steps": [
            {"wait": {"types": ["bench.wake"]}},
            {"name": "fulfil", "action": {"url": format!("{receiver}/fulfil")}}
        ]
    })))
    .await?;
    let rss_empty = herald.rss_kib("VmRSS:");

    // Fill in steps, reading RSS with each step's instances all asleep.
    let mut rss = Vec::new();
    let mut created = 0;
    let fill_start = Instant::now();
    for target in [1_000, 10_000, 50_000, n] {
        let target = target.min(n);
        if target <= created {
            continue;
        }
        start_instances(&api, created, target - created, args.batch).await?;
        until_waiting(&client, &api, target as u64).await?;
        created = target;
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss.push((created, herald.rss_kib("VmRSS:")));
        eprintln!(
            "{created} sleeping after {:.1}s, RSS {:.1} MiB",
            fill_start.elapsed().as_secs_f64(),
            mib(rss.last().unwrap().1)
        );
    }
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let ids = Arc::new(sleeping_ids(&client, &api).await?);
    if ids.len() != n {
        bail!("{} sleeping instances listed, expected {n}", ids.len());
    }

    // Baseline: plain ingest of the same event, no instance addressed.
    let counter = Arc::new(AtomicU64::new(0));
    let url = format!("{api}/events");
    closed_loop(
        args.connections,
        Duration::from_secs(2),
        plain_request(url.clone(), counter.clone()),
    )
    .await;
    let plain = closed_loop(args.connections, d, plain_request(url.clone(), counter)).await;
    eprintln!(
        "plain ingest {:.0} ev/s; RSS {:.1} MiB",
        plain.per_sec(),
        mib(herald.rss_kib("VmRSS:"))
    );

    // Light, paced wakes: latency without queueing.
    let next = Arc::new(AtomicUsize::new(0));
    woken.take();
    let before = woken.arrived.load(Ordering::Relaxed);
    let paced = open_loop(
        args.paced_rate,
        d,
        wake_request(url.clone(), ids.clone(), next.clone()),
    )
    .await;
    drain(&woken, before + paced.ok, Instant::now()).await;
    let paced_lat = woken.take();

    // Full load: as many wakes as `connections` clients can send.
    let before = woken.arrived.load(Ordering::Relaxed);
    let start = Instant::now();
    let full = closed_loop(
        args.connections,
        d,
        wake_request(url.clone(), ids.clone(), next.clone()),
    )
    .await;
    eprintln!(
        "{} wakes accepted in {:.1}s; RSS {:.1} MiB",
        full.ok,
        full.elapsed.as_secs_f64(),
        mib(herald.rss_kib("VmRSS:"))
    );
    let took = drain(&woken, before + full.ok, start).await;
    let arrived = woken.arrived.load(Ordering::Relaxed) - before;
    let full_lat = woken.take();
    let wakes_per_sec = arrived as f64 / took.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = herald.rss_kib("VmRSS:");
    let rss_peak = herald.rss_kib("VmHWM:");

    println!("| measurement | result | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| fill: {n} instances started (batch mode, {} per request) and asleep | {fill_secs:.1} s ({:.0} instances/s) | | |",
        args.batch,
        n as f64 / fill_secs
    );
    println!(
        "| RSS, workflow defined, no instance | {:.1} MiB | | |",
        mib(rss_empty)
    );
    // The baseline is the 10,000 point: by then the store's page caches (capped) are warm.
    let (base_n, base) = rss.get(1).or(rss.first()).copied().unwrap_or((0, 1));
    for (k, r) in &rss {
        println!(
            "| RSS with {k} instances asleep | {:.1} MiB | {:.1} MiB ({base_n} asleep) | {:.2}x |",
            mib(*r),
            mib(base),
            *r as f64 / base as f64
        );
    }
    println!(
        "| wake latency, paced {:.0}/s (sent -> action arrives): p50 / p99 | {:.1} / {:.1} ms | | |",
        args.paced_rate,
        pct(&paced_lat, 0.5),
        pct(&paced_lat, 0.99)
    );
    println!(
        "| wakes/s at full load ({} conns; sent -> action arrived) | {wakes_per_sec:.0} /s | {:.0} ev/s (plain ingest, same event) | {:.2}x |",
        args.connections,
        plain.per_sec(),
        wakes_per_sec / plain.per_sec()
    );
    println!(
        "| wake latency at full load: p50 / p99 | {:.1} / {:.1} ms | | |",
        pct(&full_lat, 0.5),
        pct(&full_lat, 0.99)
    );
    println!(
        "| RSS after the wakes / peak of the run | {:.1} / {:.1} MiB | | |",
        mib(rss_end),
        mib(rss_peak)
    );
    let used = next.load(Ordering::Relaxed);
    if used > ids.len() {
        println!(
            "\nwarning: ran out of sleeping instances ({used} wakes for {}): raise --instances or lower --seconds",
            ids.len()
        );
    }
    if paced.errors + full.errors + plain.errors > 0 || arrived < full.ok {
        println!(
            "\nwarnings: errors paced {} / full {} / plain {}; {} of {} accepted wakes ran their action",
            paced.errors, full.errors, plain.errors, arrived, full.ok
        );
    }
    Ok(())
}

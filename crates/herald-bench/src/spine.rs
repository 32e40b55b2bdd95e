//! The spine benchmark: durable ingest against a bare 202 server and a bare group-commit
//! appender, batch ingest, delivery against a bare pooled client, ingest->delivery latency
//! at half and a quarter of the measured maximum, and Herald's RSS idle and under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::baselines::payload;
use crate::load::{closed_loop, fixed_count, open_loop, MakeRequest};
use crate::server::{median, start_herald, Process};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Repetitions of each ingest measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrent connections for ingest and delivery baselines.
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

fn binary_event(url: String, counter: Arc<AtomicU64>) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        c.post(&url)
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("bench-{n}"))
            .header("ce-source", "/bench")
            .header("ce-type", "com.example.order.created")
            .header("content-type", "application/json")
            .body(payload(160))
    })
}

fn batch_request(url: String, counter: Arc<AtomicU64>, size: usize) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client| {
        let events: Vec<Value> = (0..size)
            .map(|_| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let data: Value = serde_json::from_str(&payload(100)).unwrap();
                json!({"specversion": "1.0", "id": format!("batch-{n}"), "source": "/bench",
                    "type": "com.example.order.batched", "data": data})
            })
            .collect();
        c.post(&url)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&events).unwrap())
    })
}

async fn post_json(url: &str, body: Value) -> Result<Value> {
    let resp = reqwest::Client::new().post(url).json(&body).send().await?;
    if !resp.status().is_success() {
        bail!("{url}: {}", resp.text().await?);
    }
    Ok(resp.json().await.unwrap_or(Value::Null))
}

async fn get_json(url: &str) -> Result<Value> {
    Ok(reqwest::Client::new().get(url).send().await?.json().await?)
}

/// Start a baseline server (this binary with `args`), load it, stop it: requests/s.
async fn measure_baseline(
    server: Process,
    conns: usize,
    d: Duration,
    load: MakeRequest,
) -> Result<f64> {
    let r = closed_loop(conns, d, load).await;
    drop(server);
    Ok(r.per_sec())
}

/// Closed-loop binary ingest against `url` (for profiling a running server).
pub async fn ingest_only(url: String, seconds: u64, connections: usize) -> Result<()> {
    let r = closed_loop(
        connections,
        Duration::from_secs(seconds),
        binary_event(url, Arc::new(AtomicU64::new(0))),
    )
    .await;
    println!(
        "{:.0} events/s ({} ok, {} errors)",
        r.per_sec(),
        r.ok,
        r.errors
    );
    Ok(())
}

pub async fn run(args: Args) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("herald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let d = Duration::from_secs(args.seconds);
    let conns = args.connections;
    println!(
        "# spine benchmark: {conns} connections, {}s per measurement, median of {} runs\n",
        args.seconds, args.runs
    );

    // The receiver stays up for the whole run.
    let receiver = Process::start_bench("receiver", &[])?;
    let recv_url = receiver.url.clone();

    // Herald, with one subscription that is paused so ingest measures routing and
    // durability without delivery competing for the CPU.
    let data_dir = tmp.join("herald-data");
    let herald_proc = start_herald(&data_dir)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = herald_proc.rss_kib("VmRSS:");
    let api = format!("{}/v1/api/default", herald_proc.url);
    let sub = post_json(
        &format!("{api}/subscriptions"),
        json!({"sink": format!("{recv_url}/hook"),
        "protocolsettings": {"mode": "binary"}, "types": ["com.example.order.created"]}),
    )
    .await?;
    let sub_id = sub["id"].as_str().context("subscription id")?.to_string();
    post_json(&format!("{api}/subscriptions/{sub_id}/disable"), json!({})).await?;

    let counter = Arc::new(AtomicU64::new(0));
    let (mut bare, mut append, mut durable) = (Vec::new(), Vec::new(), Vec::new());
    let mut herald_errors = 0;
    for run in 0..args.runs {
        let load = |server: &Process| binary_event(format!("{}/", server.url), counter.clone());
        let server = Process::start_bench("bare202", &[])?;
        let l = load(&server);
        bare.push(measure_baseline(server, conns, d, l).await?);
        let file = tmp.join(format!("append-{run}.log")).display().to_string();
        let server = Process::start_bench("bare-append", &["--file", &file])?;
        let l = load(&server);
        append.push(measure_baseline(server, conns, d, l).await?);

        let r = closed_loop(
            conns,
            d,
            binary_event(format!("{api}/events"), counter.clone()),
        )
        .await;
        herald_errors += r.errors;
        durable.push(r.per_sec());
        eprintln!(
            "run {run}: bare 202 {:.0}/s, bare group-commit {:.0}/s, herald {:.0}/s",
            bare[run], append[run], durable[run]
        );
    }
    let rss_ingest_peak = herald_proc.rss_kib("VmHWM:");
    // Paired ratios (the runs share their minute of machine noise), then the median.
    let paired = median(durable.iter().zip(&append).map(|(d, a)| d / a).collect());
    let (bare_m, append_m, durable_m) = (median(bare), median(append), median(durable));

    // Batch mode: 100 events per request, 16 connections.
    let r = closed_loop(
        16,
        d,
        batch_request(format!("{api}/events"), counter.clone(), 100),
    )
    .await;
    let batch_events = r.per_sec() * 100.0;

    // Delivery: drain the backlog ingest left behind vs a bare pooled client.
    let pending = get_json(&format!("{api}/subscriptions/{sub_id}")).await?["backlog"]["pending"]
        .as_u64()
        .unwrap_or(0);
    let target = pending.min(30_000);
    post_json(&format!("{recv_url}/reset"), json!({})).await?;
    let start = Instant::now();
    post_json(&format!("{api}/subscriptions/{sub_id}/enable"), json!({})).await?;
    loop {
        let n = get_json(&format!("{recv_url}/count")).await?["count"]
            .as_u64()
            .unwrap_or(0);
        if n >= target || start.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let herald_delivery = target as f64 / start.elapsed().as_secs_f64();
    // Drop the rest of the backlog with the subscription; the latency run gets a new one.
    reqwest::Client::new()
        .delete(format!("{api}/subscriptions/{sub_id}"))
        .send()
        .await?;
    post_json(
        &format!("{api}/subscriptions"),
        json!({"sink": format!("{recv_url}/hook"),
        "protocolsettings": {"mode": "binary"}, "types": ["com.example.order.created"]}),
    )
    .await?;
    let rss_delivery_peak = herald_proc.rss_kib("VmHWM:");
    let hook = format!("{recv_url}/hook");
    let body = payload(160);
    let bare_client = fixed_count(
        conns,
        target,
        Arc::new(move |c: &reqwest::Client| {
            c.post(&hook)
                .header("content-type", "application/json")
                .body(body.clone())
        }),
    )
    .await;
    let client_rate = bare_client.per_sec();

    // Latency: ingest -> delivery at half (the target's load) and a quarter of the
    // measured durable maximum.
    let mut latencies = Vec::new();
    for share in [2.0, 4.0] {
        post_json(&format!("{recv_url}/reset"), json!({})).await?;
        let rate = (durable_m / share).max(10.0);
        let r = open_loop(
            rate,
            d,
            binary_event(format!("{api}/events"), counter.clone()),
        )
        .await;
        loop {
            let n = get_json(&format!("{recv_url}/count")).await?["count"]
                .as_u64()
                .unwrap_or(0);
            if n >= r.ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        latencies.push((share, rate, get_json(&format!("{recv_url}/stats")).await?));
    }
    let rss_end = herald_proc.rss_kib("VmRSS:");
    let rss_peak = herald_proc.rss_kib("VmHWM:");

    println!("| measurement | result | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| ingest, binary mode, ~300 B, {conns} conns: bare axum 202 | {bare_m:.0} req/s | | | |"
    );
    println!(
        "| ingest: bare group-commit appender (fsync per group) | {append_m:.0} req/s | | | |"
    );
    println!(
        "| ingest: Herald durable (routed to 1 subscription) | {durable_m:.0} ev/s | {append_m:.0} (group commit) | {:.2}x | >= 0.7x |",
        durable_m / append_m
    );
    println!(
        "| ingest: Herald / group commit, median of per-run ratios | | | {paired:.2}x | >= 0.7x |"
    );
    println!(
        "| ingest: Herald vs bare 202 | | {bare_m:.0} | {:.2}x | |",
        durable_m / bare_m
    );
    println!("| batch mode (100 events/request, 16 conns) | {batch_events:.0} ev/s | | | |");
    println!(
        "| delivery to local receiver ({target} events, max_in_flight 64) | {herald_delivery:.0} ev/s | {client_rate:.0} (bare pooled reqwest, {conns} conc.) | {:.2}x | >= 0.6x |",
        herald_delivery / client_rate
    );
    for (share, rate, stats) in &latencies {
        println!(
            "| ingest->delivery latency at {rate:.0} ev/s (1/{share} of max), {} samples | p50 {:.1} ms, p99 {:.1} ms | | | |",
            stats["samples"],
            stats["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
            stats["p99_us"].as_f64().unwrap_or(0.0) / 1000.0
        );
    }
    println!(
        "| Herald RSS idle | {:.1} MiB | | | |",
        rss_idle as f64 / 1024.0
    );
    println!(
        "| Herald RSS peak during ingest | {:.1} MiB | | | |",
        rss_ingest_peak as f64 / 1024.0
    );
    println!(
        "| Herald RSS peak incl. delivery | {:.1} MiB (now {:.1}) | | | |",
        rss_peak.max(rss_delivery_peak) as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    if herald_errors > 0 {
        println!("\nerrors: ingest {herald_errors}");
    }
    drop(herald_proc);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

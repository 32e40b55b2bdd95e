//! The delivery benchmark: Herald drains a stored backlog to a local receiver, beside a
//! bare pooled client posting the same bodies to the same receiver, several times in one
//! run. Besides events/s it reads the CPU time each process spent, because on a shared
//! 2-core machine CPU per event is the steadier number and says where the gap is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::baselines::payload;
use crate::load::{fixed_count, MakeRequest};
use crate::server::{cpu_micros, median, send_json, start_herald, Process};

#[derive(clap::Args)]
pub struct Args {
    /// Events delivered per measurement.
    #[arg(long, default_value_t = 30_000)]
    events: u64,
    /// Repetitions (medians and the median of paired ratios are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrent requests of the bare client (Herald's `max_in_flight` is the same).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Herald's content mode: `binary` (the body is the data, as the bare clients post)
    /// or `structured` (the whole event as JSON, a larger body).
    #[arg(long, default_value = "binary")]
    mode: String,
}

/// The event the spine benchmark ingests (~300 B of JSON data), 100 to a batch.
fn batch_of_orders(url: String, counter: Arc<AtomicU64>) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client| {
        let events: Vec<Value> = (0..100)
            .map(|_| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let data: Value = serde_json::from_str(&payload(160)).expect("payload is JSON");
                json!({"specversion": "1.0", "id": format!("dlv-{n}"), "source": "/bench",
                    "type": "com.example.order.created", "data": data})
            })
            .collect();
        c.post(&url)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&events).expect("serializable"))
    })
}

struct Run {
    herald_per_sec: f64,
    client_per_sec: f64,
    hyper_per_sec: f64,
    hyper_cpu: f64,
    /// CPU µs per event: Herald, the receiver while Herald delivered, the bare client,
    /// the receiver while the bare client posted.
    herald_cpu: f64,
    receiver_herald_cpu: f64,
    client_cpu: f64,
    receiver_client_cpu: f64,
}

async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    while !done().await? {
        if start.elapsed() > limit {
            bail!("{what}: not done after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn run(args: Args) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("herald-bench-delivery-{}", std::process::id()));
    let result = measure(&args, &tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn measure(args: &Args, tmp: &std::path::Path) -> Result<()> {
    let receiver = Process::start_bench("receiver", &[])?;
    let herald = start_herald(&tmp.join("herald-data"))?;
    let http = reqwest::Client::new();
    let api = format!("{}/v1/api/default", herald.url);
    let hook = format!("{}/hook", receiver.url);
    let count_url = format!("{}/count", receiver.url);
    let count = async || -> Result<u64> {
        let v = send_json(http.get(&count_url)).await?;
        v["count"].as_u64().context("receiver count")
    };
    let reset = async || send_json(http.post(format!("{}/reset", receiver.url))).await;

    let counter = Arc::new(AtomicU64::new(0));
    let mut runs = Vec::new();
    for run in 0..args.runs {
        // A backlog of `events` for a paused subscription.
        let sub = send_json(http.post(format!("{api}/subscriptions")).json(&json!({
            "sink": hook, "protocolsettings": {"mode": args.mode},
            "types": ["com.example.order.created"],
            "delivery": {"max_in_flight": args.connections}
        })))
        .await?;
        let sub_url = format!(
            "{api}/subscriptions/{}",
            sub["id"].as_str().context("subscription id")?
        );
        send_json(http.post(format!("{sub_url}/disable"))).await?;
        let batches = args.events.div_ceil(100);
        let load = batch_of_orders(format!("{api}/events"), counter.clone());
        let r = fixed_count(16, batches, load).await;
        if r.errors > 0 {
            bail!("{} batch requests failed", r.errors);
        }
        let target = batches * 100;
        wait_until("backlog", Duration::from_secs(30), async || {
            let v = send_json(http.get(&sub_url)).await?;
            Ok(v["backlog"]["pending"].as_u64() == Some(target))
        })
        .await?;

        // Herald drains it.
        reset().await?;
        let (h0, r0) = (herald.cpu_micros(), receiver.cpu_micros());
        let start = Instant::now();
        send_json(http.post(format!("{sub_url}/enable"))).await?;
        wait_until("delivery", Duration::from_secs(300), async || {
            Ok(count().await? >= target)
        })
        .await?;
        let elapsed = start.elapsed();
        let (h1, r1) = (herald.cpu_micros(), receiver.cpu_micros());
        send_json(http.delete(&sub_url)).await?;

        // The bare client posts as many bodies.
        reset().await?;
        let body = payload(160);
        let make: MakeRequest = {
            let hook = hook.clone();
            Arc::new(move |c: &reqwest::Client| {
                c.post(&hook)
                    .header("content-type", "application/json")
                    .body(body.clone())
            })
        };
        let (c0, r2) = (self_cpu_micros(), receiver.cpu_micros());
        let bare = fixed_count(args.connections, target, make).await;
        let (c1, r3) = (self_cpu_micros(), receiver.cpu_micros());
        let per = |a: u64, b: u64| (b - a) as f64 / target as f64;
        let c2 = self_cpu_micros();
        let hyper_per_sec = bare_hyper(&hook, args.connections, target, payload(160)).await;
        let c3 = self_cpu_micros();
        let one = Run {
            herald_per_sec: target as f64 / elapsed.as_secs_f64(),
            client_per_sec: bare.per_sec(),
            hyper_per_sec,
            hyper_cpu: per(c2, c3),
            herald_cpu: per(h0, h1),
            receiver_herald_cpu: per(r0, r1),
            client_cpu: per(c0, c1),
            receiver_client_cpu: per(r2, r3),
        };
        eprintln!(
            "run {run}: herald {:.0} ev/s ({:.1} µs CPU/event, receiver {:.1}), bare client {:.0}/s ({:.1} µs, receiver {:.1}): {:.2}x; bare hyper {:.0}/s ({:.1} µs)",
            one.herald_per_sec,
            one.herald_cpu,
            one.receiver_herald_cpu,
            one.client_per_sec,
            one.client_cpu,
            one.receiver_client_cpu,
            one.herald_per_sec / one.client_per_sec,
            one.hyper_per_sec,
            one.hyper_cpu
        );
        runs.push(one);
    }
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    println!(
        "\n## Delivery ({} runs x {} events, {} mode, max_in_flight / connections {})\n",
        args.runs, args.events, args.mode, args.connections
    );
    println!("| measurement | Herald | bare pooled reqwest client | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| events/s to a local receiver (medians) | {:.0} | {:.0} | {:.2}x (median of per-run ratios) | >= 0.6x |",
        m(|r| r.herald_per_sec),
        m(|r| r.client_per_sec),
        m(|r| r.herald_per_sec / r.client_per_sec)
    );
    println!(
        "| CPU µs per event, sender | {:.1} | {:.1} | {:.2}x | |",
        m(|r| r.herald_cpu),
        m(|r| r.client_cpu),
        m(|r| r.herald_cpu / r.client_cpu)
    );
    println!(
        "| CPU µs per event, receiver | {:.1} | {:.1} | | |",
        m(|r| r.receiver_herald_cpu),
        m(|r| r.receiver_client_cpu)
    );
    println!(
        "| for reference: bare hyper client (what Herald sends with), requests/s and CPU µs per request | | {:.0} /s, {:.1} µs | | |",
        m(|r| r.hyper_per_sec),
        m(|r| r.hyper_cpu)
    );
    Ok(())
}

fn self_cpu_micros() -> u64 {
    cpu_micros(std::process::id())
}

/// The same posts over hyper-util's pooled client, which Herald's webhook sink uses: the
/// floor of what sending costs, without reqwest's layers.
pub async fn bare_hyper(url: &str, connections: usize, total: u64, body: String) -> f64 {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http();
    let uri: hyper::Uri = url.parse().expect("uri");
    let body = bytes::Bytes::from(body);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, uri, body, next) =
                (client.clone(), uri.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let req = hyper::Request::post(uri.clone())
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    if let Ok(resp) = client.request(req).await {
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    total as f64 / start.elapsed().as_secs_f64()
}

//! Load generation: closed loop (N connections, each sending as fast as answers come
//! back), a fixed number of requests, and open loop (a fixed request rate), all over one
//! pooled HTTP client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub type MakeRequest = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client")
}

#[derive(Clone)]
struct Counters {
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            ok: Arc::new(AtomicU64::new(0)),
            errors: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) {
        match req.send().await {
            Ok(r) if r.status().is_success() => self.ok.fetch_add(1, Ordering::Relaxed),
            _ => self.errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn result(&self, start: Instant) -> LoadResult {
        LoadResult {
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            elapsed: start.elapsed(),
        }
    }
}

/// `connections` workers, each sending the next request when the last is answered,
/// until `duration` has passed.
pub async fn closed_loop(connections: usize, duration: Duration, make: MakeRequest) -> LoadResult {
    let client = client(connections);
    let counters = Counters::new();
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, make, counters) = (client.clone(), make.clone(), counters.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    counters.send(make(&client)).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    counters.result(start)
}

/// Exactly `total` requests with at most `connections` in flight.
pub async fn fixed_count(connections: usize, total: u64, make: MakeRequest) -> LoadResult {
    let client = client(connections);
    let counters = Counters::new();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, make, counters, next) =
                (client.clone(), make.clone(), counters.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    counters.send(make(&client)).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    counters.result(start)
}

/// `rate` requests per second for `duration`, at most 512 in flight.
pub async fn open_loop(rate: f64, duration: Duration, make: MakeRequest) -> LoadResult {
    const MAX_IN_FLIGHT: u32 = 512;
    let client = client(MAX_IN_FLIGHT as usize);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let counters = Counters::new();
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    for i in 0..total {
        tokio::time::sleep_until((start + interval.mul_f64(i as f64)).into()).await;
        let permit = slots.clone().acquire_owned().await.expect("open");
        let (req, counters) = (make(&client), counters.clone());
        tokio::spawn(async move {
            counters.send(req).await;
            drop(permit);
        });
    }
    let _ = slots.acquire_many(MAX_IN_FLIGHT).await;
    counters.result(start)
}

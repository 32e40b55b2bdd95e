//! The routing benchmark: ingest throughput with 10,000 subscriptions in a project (a mix
//! of types, sources, topic prefixes and filter expressions, few matching the event) against
//! the same ingest into a project with one subscription, both in one server and one run.
//! Every subscription is disabled, so deliveries queue on disk and do not compete with
//! ingest for the CPU.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::baselines::payload;
use crate::load::{closed_loop, MakeRequest};
use crate::server::{median, send_json, start_herald};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Measurements of each project, alternating (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Subscriptions in the crowded project.
    #[arg(long, default_value_t = 10_000)]
    subscriptions: usize,
    /// Concurrent API requests while creating subscriptions.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// Subscriptions of the crowd the event matches (1 to 3: by type + CESQL, by source +
    /// FEEL, by topic prefix + prefix filter). The baseline's one subscription is the
    /// first; with more, the crowd also writes more deliveries per event than the
    /// baseline, which the "only the matching ones" line measures apart.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    matching: u8,
    /// Percent of the crowd selecting by event type.
    #[arg(long, default_value_t = 40)]
    types_percent: usize,
    /// Percent of the crowd selecting by source.
    #[arg(long, default_value_t = 20)]
    source_percent: usize,
    /// Percent of the crowd selecting by topic prefix only; the rest has no selector,
    /// only a filter.
    #[arg(long, default_value_t = 30)]
    topics_percent: usize,
}

/// The one event both projects receive, as routing sees it.
const TOPIC: [&str; 3] = ["shop", "eu", "orders"];
const TYPE: &str = "com.example.order.created";
const SOURCE: &str = "/bench/shop-eu";
const SUBJECT: &str = "eu/berlin/ord-0000001";
const PRIORITY: &str = "5";

/// A tiny deterministic generator (xorshift64*), so every run builds the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const DOMAINS: [&str; 40] = [
    "order",
    "payment",
    "invoice",
    "refund",
    "cart",
    "customer",
    "account",
    "user",
    "session",
    "product",
    "price",
    "stock",
    "warehouse",
    "shipment",
    "parcel",
    "carrier",
    "return",
    "review",
    "coupon",
    "campaign",
    "email",
    "sms",
    "push",
    "ticket",
    "chat",
    "subscription",
    "plan",
    "usage",
    "quota",
    "report",
    "export",
    "import",
    "job",
    "build",
    "deploy",
    "alert",
    "incident",
    "audit",
    "login",
    "device",
];
const VERBS: [&str; 10] = [
    "created",
    "updated",
    "deleted",
    "cancelled",
    "completed",
    "failed",
    "approved",
    "rejected",
    "expired",
    "archived",
];
const SERVICES: [&str; 25] = [
    "shop",
    "billing",
    "inventory",
    "shipping",
    "users",
    "audit",
    "search",
    "mail",
    "crm",
    "erp",
    "cms",
    "auth",
    "gateway",
    "ledger",
    "fraud",
    "catalog",
    "pricing",
    "support",
    "ads",
    "analytics",
    "notify",
    "payments",
    "returns",
    "reviews",
    "loyalty",
];
const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
const TOPIC_TOP: [&str; 6] = ["shop", "billing", "inventory", "shipping", "users", "audit"];
const TOPIC_MID: [&str; 3] = ["eu", "us", "apac"];
const TOPIC_LEAF: [&str; 3] = ["orders", "refunds", "stock"];
const OTHER_REGIONS: [&str; 3] = ["us", "apac", "latam"];
const OTHER_CITIES: [&str; 4] = ["paris", "madrid", "rome", "vienna"];

/// One subscription to create: its selectors and filters, and whether it was built to
/// match the event.
struct Spec {
    types: Vec<String>,
    source: Option<String>,
    topics: Vec<Vec<String>>,
    filters: Vec<Value>,
    intended_match: bool,
}

impl Spec {
    fn body(&self, sink: &str) -> Value {
        let mut v = json!({"sink": sink, "topics": self.topics});
        if !self.types.is_empty() {
            v["types"] = json!(self.types);
        }
        if let Some(s) = &self.source {
            v["source"] = json!(s);
        }
        if !self.filters.is_empty() {
            v["filters"] = json!(self.filters);
        }
        v
    }

    /// Whether type, source and topic let the event through: the filters of these
    /// subscriptions run for every event, whatever an index does.
    fn selects_event(&self) -> bool {
        let topic_ok = self
            .topics
            .iter()
            .any(|p| p.len() <= TOPIC.len() && p.iter().zip(TOPIC).all(|(a, b)| a == b));
        topic_ok
            && (self.types.is_empty() || self.types.iter().any(|t| t == TYPE))
            && self.source.as_deref().is_none_or(|s| s == SOURCE)
    }
}

/// A filter of a random dialect that the event does not pass.
fn non_matching_filter(rng: &mut Rng) -> Value {
    let n = 2 + rng.below(9_999_998);
    match rng.below(100) {
        0..=19 => {
            json!({"exact": {"subject": format!("{}/{}/ord-{n:07}", rng.pick(&REGIONS), rng.pick(&OTHER_CITIES))}})
        }
        20..=34 => {
            if rng.chance(50) {
                json!({"prefix": {"subject": format!("{}/", rng.pick(&OTHER_REGIONS))}})
            } else {
                json!({"prefix": {"subject": format!("eu/{}/", rng.pick(&OTHER_CITIES))}})
            }
        }
        35..=44 => {
            if rng.chance(50) {
                json!({"suffix": {"subject": format!("/refund-{n}")}})
            } else {
                json!({"suffix": {"type": format!(".{}", rng.pick(&VERBS[1..]))}})
            }
        }
        45..=74 => {
            let sql = match rng.below(3) {
                0 => format!(
                    "subject LIKE '{}/%' AND priority > {}",
                    rng.pick(&OTHER_REGIONS),
                    rng.below(10)
                ),
                1 => format!("subject LIKE 'eu/%' AND priority > {}", 5 + rng.below(5)),
                _ => format!(
                    "type = 'com.example.{}.{}' OR priority > {}",
                    rng.pick(&DOMAINS[1..]),
                    rng.pick(&VERBS),
                    6 + rng.below(4)
                ),
            };
            json!({ "sql": sql })
        }
        _ => {
            let feel = match rng.below(3) {
                0 => format!("amount > {}", 200 + rng.below(4800)),
                1 => format!(
                    "currency = \"{}\" and amount > {}",
                    rng.pick(&["USD", "GBP", "JPY"]),
                    rng.below(500)
                ),
                _ => format!(
                    "customer = \"cus-{}\" and amount > 10",
                    43 + rng.below(100_000)
                ),
            };
            json!({ "feel": feel })
        }
    }
}

/// The subscriptions built to match, one per kind of index key; the first `n`.
fn matching_specs(n: u8) -> Vec<Spec> {
    let mut all = vec![
        Spec {
            types: vec![TYPE.into(), "com.example.order.updated".into()],
            source: None,
            topics: vec![vec![]],
            filters: vec![json!({"sql": "subject LIKE 'eu/%' AND priority > 3"})],
            intended_match: true,
        },
        Spec {
            types: vec![],
            source: Some(SOURCE.into()),
            topics: vec![vec![]],
            filters: vec![json!({"feel": "amount > 100"})],
            intended_match: true,
        },
        Spec {
            types: vec![],
            source: None,
            topics: vec![vec!["shop".into(), "eu".into()]],
            filters: vec![json!({"prefix": {"subject": "eu/"}})],
            intended_match: true,
        },
    ];
    all.truncate(n as usize);
    all
}

/// `total` subscriptions, by default ~40% by type, ~20% by source, ~30% by topic prefix
/// only and ~10% with a filter and no selector; the matching ones spread among them.
fn crowd(total: usize, args: &Args) -> Vec<Spec> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut matching = matching_specs(args.matching);
    let every = (total / (matching.len() + 1)).max(1);
    let mut specs = Vec::with_capacity(total);
    for i in 0..total {
        if i > 0 && i % every == 0 {
            if let Some(m) = matching.pop() {
                specs.push(m);
                continue;
            }
        }
        let mut spec = Spec {
            types: vec![],
            source: None,
            topics: vec![vec![]],
            filters: vec![],
            intended_match: false,
        };
        let category = rng.below(100);
        let (t, s) = (args.types_percent, args.types_percent + args.source_percent);
        let filter_percent = match category {
            c if c < t => {
                let n = 1 + rng.below(3);
                spec.types = (0..n)
                    .map(|_| format!("com.example.{}.{}", rng.pick(&DOMAINS), rng.pick(&VERBS)))
                    .collect();
                50
            }
            c if c < s => {
                spec.source = Some(format!(
                    "/bench/{}-{}",
                    rng.pick(&SERVICES),
                    rng.pick(&REGIONS)
                ));
                50
            }
            c if c < s + args.topics_percent => {
                let len = 1 + rng.below(3);
                let prefix = [
                    rng.pick(&TOPIC_TOP),
                    rng.pick(&TOPIC_MID),
                    rng.pick(&TOPIC_LEAF),
                ];
                spec.topics = vec![prefix[..len].iter().map(|s| s.to_string()).collect()];
                80
            }
            _ => 100,
        };
        // Those whose selectors let the event through always carry a filter it fails.
        if spec.selects_event() || rng.chance(filter_percent) {
            spec.filters.push(non_matching_filter(&mut rng));
            if rng.chance(20) {
                spec.filters.push(non_matching_filter(&mut rng));
            }
        }
        specs.push(spec);
    }
    specs.extend(matching);
    specs
}

fn event_request(url: String, counter: Arc<AtomicU64>) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        c.post(&url)
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("route-{n}"))
            .header("ce-source", SOURCE)
            .header("ce-type", TYPE)
            .header("ce-subject", SUBJECT)
            .header("ce-priority", PRIORITY)
            .header("content-type", "application/json")
            .body(payload(160))
    })
}

/// `herald_routing_candidates_total` from `/metrics`.
async fn routing_candidates(client: &reqwest::Client, root: &str) -> Result<u64> {
    let text = client
        .get(format!("{root}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("herald_routing_candidates_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("no herald_routing_candidates_total in /metrics")
}

/// Run `job` over `items` with `concurrency` requests in flight; results keep their order.
async fn for_each<T, F, Fut>(items: Vec<T>, concurrency: usize, job: F) -> Result<Vec<Value>>
where
    T: Send + Sync + 'static,
    F: Fn(reqwest::Client, Arc<Vec<T>>, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Value>> + Send + 'static,
{
    let client = crate::load::client(concurrency);
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, items, next, job) =
                (client.clone(), items.clone(), next.clone(), job.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        return Ok::<_, anyhow::Error>(done);
                    }
                    done.push((i, job(client.clone(), items.clone(), i).await?));
                }
            })
        })
        .collect();
    let mut out = vec![Value::Null; items.len()];
    for w in workers {
        for (i, v) in w.await?? {
            out[i] = v;
        }
    }
    Ok(out)
}

/// Create the subscriptions of `specs` in `api` and disable each; returns their ids.
async fn create_disabled(
    api: &str,
    sink: &str,
    specs: &[Spec],
    concurrency: usize,
) -> Result<Vec<String>> {
    let bodies: Vec<Value> = specs.iter().map(|s| s.body(sink)).collect();
    let api = api.to_string();
    let ids = for_each(bodies, concurrency, move |c, bodies, i| {
        let api = api.clone();
        async move {
            let created =
                send_json(c.post(format!("{api}/subscriptions")).json(&bodies[i])).await?;
            let id = created["id"]
                .as_str()
                .context("subscription id")?
                .to_string();
            send_json(
                c.post(format!("{api}/subscriptions/{id}/disable"))
                    .json(&json!({})),
            )
            .await?;
            Ok(Value::String(id))
        }
    })
    .await?;
    Ok(ids
        .into_iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect())
}

/// Pending deliveries of each subscription.
async fn pending(api: &str, ids: &[String], concurrency: usize) -> Result<Vec<u64>> {
    let api = api.to_string();
    let got = for_each(ids.to_vec(), concurrency, move |c, ids, i| {
        let api = api.clone();
        async move {
            let sub = send_json(c.get(format!("{api}/subscriptions/{}", ids[i]))).await?;
            Ok(sub["backlog"]["pending"].clone())
        }
    })
    .await?;
    Ok(got.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
}

pub async fn run(args: Args) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("herald-bench-routing-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = measure(&args, &tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn measure(args: &Args, tmp: &std::path::Path) -> Result<()> {
    let d = Duration::from_secs(args.seconds);
    let conns = args.connections;
    let total = args.subscriptions;
    println!(
        "# routing benchmark: {total} subscriptions vs 1, {conns} connections, {}s per measurement, median of {} runs\n",
        args.seconds, args.runs
    );
    let herald = start_herald(&tmp.join("herald-data"))?;
    let root = herald.url.clone();
    let setup = reqwest::Client::new();
    // Nothing is delivered (all disabled), so the sink need not exist.
    let sink = "http://127.0.0.1:9/hook";

    // Three projects: the baseline with one (matching) subscription, one with only the
    // matching subscriptions of the crowd (the cost of writing their deliveries), and
    // the crowd.
    let specs = crowd(total, args);
    let projects: [(&str, Vec<Spec>); 3] = [
        ("one", matching_specs(1)),
        ("matching", matching_specs(args.matching)),
        ("crowd", Vec::new()),
    ];
    let mut apis = Vec::new();
    let mut ids = Vec::new();
    let mut setup_secs = 0.0;
    for (name, own) in &projects {
        send_json(setup.put(format!("{root}/v1/api/{name}"))).await?;
        let api = format!("{root}/v1/api/{name}");
        let list = if *name == "crowd" { &specs } else { own };
        let start = Instant::now();
        ids.push(create_disabled(&api, sink, list, args.setup_concurrency).await?);
        if *name == "crowd" {
            setup_secs = start.elapsed().as_secs_f64();
        }
        apis.push(api);
    }

    let selected = specs.iter().filter(|s| s.selects_event()).count();
    let intended = specs.iter().filter(|s| s.intended_match).count();
    let mix = |f: &dyn Fn(&Spec) -> bool| specs.iter().filter(|s| f(s)).count();
    let by_type = mix(&|s| !s.types.is_empty());
    let by_source = mix(&|s| s.source.is_some());
    let by_topic = mix(&|s| {
        s.types.is_empty() && s.source.is_none() && s.topics.iter().any(|p| !p.is_empty())
    });
    let bare = total - by_type - by_source - by_topic;
    let with_filters = mix(&|s| !s.filters.is_empty());
    let dialect = |d: &str| {
        specs
            .iter()
            .flat_map(|s| &s.filters)
            .filter(|f| f.get(d).is_some())
            .count()
    };
    let dialects = format!(
        "exact {}, prefix {}, suffix {}, sql {}, feel {}",
        dialect("exact"),
        dialect("prefix"),
        dialect("suffix"),
        dialect("sql"),
        dialect("feel")
    );
    eprintln!(
        "crowd: {by_type} by type, {by_source} by source, {by_topic} by topic only, {bare} without selector; \
         {with_filters} with filters ({dialects}); created and disabled in {setup_secs:.1}s"
    );

    // One probe event each, then count which subscriptions it was routed to.
    let counter = Arc::new(AtomicU64::new(0));
    let urls: Vec<String> = apis
        .iter()
        .map(|api| format!("{api}/topics/{}/events", TOPIC.join("/")))
        .collect();
    let mut candidates = 0;
    for (i, url) in urls.iter().enumerate() {
        let before = routing_candidates(&setup, &root).await?;
        send_json(event_request(url.clone(), counter.clone())(&setup)).await?;
        if i == 2 {
            candidates = routing_candidates(&setup, &root).await? - before;
        }
    }
    let mut matched = Vec::new();
    for (api, ids) in apis.iter().zip(&ids) {
        let backlog = pending(api, ids, args.setup_concurrency).await?;
        matched.push(
            (0..ids.len())
                .filter(|&i| backlog[i] > 0)
                .collect::<Vec<_>>(),
        );
    }
    let as_intended = matched[2].iter().all(|&i| specs[i].intended_match)
        && matched[2].len() == intended
        && matched[1].len() == intended
        && matched[0].len() == 1;
    eprintln!(
        "probe: routed to {} of {total} ({selected} let through by type/source/topic; the index handed {candidates} to the full match){}",
        matched[2].len(),
        if as_intended { "" } else { " -- NOT as intended" }
    );

    // Warm up each, then rotate which project goes first.
    for url in &urls {
        let make = event_request(url.clone(), counter.clone());
        closed_loop(conns, Duration::from_secs(2), make).await;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    let mut errors = 0;
    for run in 0..args.runs {
        for k in 0..urls.len() {
            let p = (run + k) % urls.len();
            let r = closed_loop(conns, d, event_request(urls[p].clone(), counter.clone())).await;
            errors += r.errors;
            rates[p].push(r.per_sec());
        }
        eprintln!(
            "run {run}: 1 subscription {:.0} ev/s, {} matching only {:.0} ev/s, {total} subscriptions {:.0} ev/s ({:.2}x)",
            rates[0][run],
            intended,
            rates[1][run],
            rates[2][run],
            rates[2][run] / rates[0][run]
        );
    }
    let m: Vec<f64> = rates.into_iter().map(median).collect();
    let (one_m, matching_m, crowd_m) = (m[0], m[1], m[2]);

    println!("| measurement | result | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| ingest, binary mode, ~300 B, {conns} conns: project with 1 subscription | {one_m:.0} ev/s | | | |"
    );
    println!(
        "| ingest: project with {total} subscriptions, event routed to {} | {crowd_m:.0} ev/s | {one_m:.0} (1 subscription) | {:.2}x | >= 0.8x |",
        matched[2].len(),
        crowd_m / one_m
    );
    println!(
        "| ingest: project with only the {} matching subscription(s), no crowd (with 1: the baseline again, i.e. noise) | {matching_m:.0} ev/s | {one_m:.0} (1 subscription) | {:.2}x | |",
        matched[1].len(),
        matching_m / one_m
    );
    println!(
        "| ingest with the crowd vs without it (same deliveries per event) | | {matching_m:.0} ({} subscription(s)) | {:.2}x | |",
        matched[1].len(),
        crowd_m / matching_m
    );
    println!(
        "| subscriptions the event was routed to | {} of {total} (baseline: {} of 1) | | | few |",
        matched[2].len(),
        matched[0].len()
    );
    println!(
        "| subscriptions whose type/source/topic admit the event | {selected} of {total} | | | |"
    );
    println!(
        "| subscriptions the routing index could not rule out (their filters ran) | {candidates} of {total} | | | |"
    );
    println!(
        "| mix: by type / by source / topic prefix only / no selector | {by_type} / {by_source} / {by_topic} / {bare}; {with_filters} with filters ({dialects}) | | | |"
    );
    println!(
        "| setup: create + disable {total} subscriptions ({} concurrent) | {setup_secs:.1} s ({:.0}/s) | | | |",
        args.setup_concurrency,
        total as f64 / setup_secs
    );
    if errors > 0 || !as_intended {
        println!(
            "\nwarnings: {errors} ingest errors; probe routed as intended: {as_intended} (matched {:?})",
            matched.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
    drop(herald);
    Ok(())
}

//! Subscriptions in memory, compiled, with the routing index used at ingest. Each
//! subscription is filed under the narrowest necessary condition known for it: its types,
//! its source, its filter's guards (`herald_filter::guard`: `subject LIKE 'eu/%'`,
//! `amount > 100`, ...) or its topic prefixes. An event looks only at what is filed under
//! values it has, so the cost of routing does not grow with subscriptions that cannot match.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use herald_core::subscription::Subscription;
use herald_core::{Event, Topic};
use herald_filter::guard::{self, Guard, Probe, Probed, Test};
use herald_filter::{EventView, Filter};

use herald_core::emitter::{EmitterDefinition, EmitterSink, Render};

use crate::sinks::console::{ConsoleSink, ConsoleSinkConfig};
use crate::sinks::file::{FileSink, FileSinkConfig};
use crate::sinks::render::RenderOptions;
use crate::sinks::webhook::WebhookConfig;
use crate::sinks::Sink;

/// Whether a sink passed the CloudEvents webhook validation handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    NotNeeded,
    Pending,
    /// One attempt is asking the sink now; the others wait rather than ask too.
    InProgress,
    /// Refused or failed; try again at this time (ms).
    RetryAt(i64),
    Allowed,
}

/// Per-subscription runtime state that survives edits of the subscription.
#[derive(Debug)]
pub struct Runtime {
    /// Deliveries leased and not yet finished: sending, or waiting to send.
    pub in_flight: AtomicU32,
    /// Requests being sent; at most the subscription's `max_in_flight`.
    pub sending: AtomicU32,
    /// A request finished: a leased delivery waiting to send may go.
    pub send_freed: tokio::sync::Notify,
    pub consecutive_failures: AtomicU32,
    pub handshake: Mutex<Handshake>,
    /// Held across every read-modify-write of the subscription (API edits, auto-disable),
    /// so that one never writes back an older copy over another.
    pub edit: Arc<tokio::sync::Mutex<()>>,
    /// The OAuth2 token of the sink's credential, when it has one.
    pub oauth: Arc<crate::sinks::webhook::TokenCache>,
}

/// How an entry's events leave: its webhook, or the local sink of an emitter.
pub enum Delivery {
    Webhook,
    /// File or Console: writes on this server.
    Local(Arc<dyn Sink>),
    /// Kept in the store for the emitter's owner to pull.
    Audit {
        pretty: bool,
    },
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivery::Webhook => f.write_str("Webhook"),
            Delivery::Local(_) => f.write_str("Local"),
            Delivery::Audit { pretty } => write!(f, "Audit {{ pretty: {pretty} }}"),
        }
    }
}

/// The sink kind of a subscription, from its emitter definition when it has one, and
/// the `source`/`subject` a Webhook emitter puts on its events.
fn delivery_of(sub: &Subscription) -> (Delivery, Render) {
    let render_options = |r: &Render| RenderOptions {
        pretty_print: r.pretty_print,
        source: r.source.clone(),
        subject: r.subject.clone(),
    };
    // The protocol, which only the emitters API sets to a local kind, must agree with
    // the definition: `config` alone never turns a webhook into a file writer.
    let sink = EmitterDefinition::of(sub).and_then(|d| d.sink().ok());
    let agrees = match &sink {
        Some(EmitterSink::Webhook { .. }) | None => sub.protocol == "HTTP",
        Some(EmitterSink::Audit { .. }) => sub.protocol == herald_core::emitter::AUDIT,
        Some(EmitterSink::File { .. }) => sub.protocol == herald_core::emitter::FILE,
        Some(EmitterSink::Console { .. }) => sub.protocol == herald_core::emitter::CONSOLE,
    };
    if !agrees {
        return (Delivery::Webhook, Render::default());
    }
    match sink {
        Some(EmitterSink::Webhook { render, .. }) => (Delivery::Webhook, render),
        Some(EmitterSink::Audit { pretty_print }) => (
            Delivery::Audit {
                pretty: pretty_print,
            },
            Render::default(),
        ),
        Some(EmitterSink::File {
            path,
            rolling,
            render,
        }) => (
            Delivery::Local(Arc::new(FileSink::new(FileSinkConfig {
                path: path.into(),
                rolling,
                render: render_options(&render),
            }))),
            Render::default(),
        ),
        Some(EmitterSink::Console {
            output,
            log_prefix,
            level,
            render,
        }) => {
            let named = |s: &str| serde_json::Value::String(s.to_string());
            (
                Delivery::Local(Arc::new(ConsoleSink::new(ConsoleSinkConfig {
                    output: serde_json::from_value(named(&output)).unwrap_or_default(),
                    log_prefix,
                    level: serde_json::from_value(named(&level)).unwrap_or_default(),
                    render: render_options(&render),
                }))),
                Render::default(),
            )
        }
        None => (Delivery::Webhook, Render::default()),
    }
}

/// A compiled subscription.
#[derive(Debug)]
pub struct Entry {
    pub project: String,
    pub sub: Subscription,
    pub filter: Filter,
    /// The sink's request settings, derived once per edit rather than per attempt.
    pub webhook: Arc<WebhookConfig>,
    pub delivery: Delivery,
    /// Constant `source`/`subject` put on delivered events (Webhook emitters).
    pub render: Render,
    pub runtime: Arc<Runtime>,
    /// Where the routing index files it, derived once per edit.
    slots: Vec<Slot>,
    /// The filter's other required guard sets (a few): checked before the filter runs,
    /// because a guard is far cheaper to test than an expression.
    checks: Vec<Vec<Guard>>,
}

impl Entry {
    /// Full match: topic prefix, type, source, then the filter expression.
    pub fn matches(&self, topic: &Topic, view: &EventView<'_>) -> bool {
        self.sub.wants(topic, view.event)
            && (self.filter.is_trivial()
                || (self
                    .checks
                    .iter()
                    .all(|set| guard::any_holds(set, view.event))
                    && self.filter.matches_view(view)))
    }
}

/// One place a subscription is filed in a project's index.
#[derive(Debug, Clone)]
enum Slot {
    /// The `/`-joined topic prefix (`""` for all topics).
    TopicPrefix(String),
    Guard(Guard),
}

/// Rank of topic prefixes among guard tests (see [`Test::rank`]): a real prefix selects
/// about as narrowly as a string prefix; the root prefix selects everything.
const TOPIC_RANK: u8 = 2;
const ROOT_TOPIC_RANK: u8 = u8::MAX;

/// Most required guard sets kept as checks besides the one filed under.
const MAX_CHECKS: usize = 3;

/// Where to file `sub` (with its compiled `filter`): slots for the narrowest known
/// necessary condition of it wanting an event (one slot holds for every event it wants),
/// and the filter's other required guard sets as checks.
fn placement(sub: &Subscription, filter: &Filter) -> (Vec<Slot>, Vec<Vec<Guard>>) {
    let attribute = |name: &str, values: &[String]| -> Vec<Guard> {
        values
            .iter()
            .map(|v| Guard {
                probe: Probe::Attribute(name.to_string()),
                test: Test::Equals(v.clone()),
            })
            .collect()
    };
    let mut required = filter.required();
    required.sort_by_key(|set| guard::cost(set));
    let mut options = Vec::new();
    if !sub.types.is_empty() {
        options.push(attribute("type", &sub.types));
    }
    if let Some(source) = &sub.source {
        options.push(attribute("source", std::slice::from_ref(source)));
    }
    options.extend(required.first().cloned());
    let best = options.into_iter().min_by_key(|g| guard::cost(g));
    let mut prefixes: Vec<String> = sub.topics.iter().map(|p| p.join("/")).collect();
    prefixes.sort();
    prefixes.dedup();
    let topic_rank = if prefixes.iter().any(String::is_empty) {
        ROOT_TOPIC_RANK
    } else {
        TOPIC_RANK
    };
    let filed = best.filter(|g| guard::cost(g) < (topic_rank, prefixes.len()));
    let checks = required
        .into_iter()
        .filter(|set| Some(set) != filed.as_ref())
        .take(MAX_CHECKS)
        .collect();
    let slots = match filed {
        Some(g) => g.into_iter().map(Slot::Guard).collect(),
        None => prefixes.into_iter().map(Slot::TopicPrefix).collect(),
    };
    (slots, checks)
}

/// The subscriptions filed under one probe, by test.
#[derive(Debug, Default)]
struct ProbeIndex {
    equals: HashMap<String, Vec<Arc<Entry>>>,
    starts_with: HashMap<String, Vec<Arc<Entry>>>,
    ends_with: HashMap<String, Vec<Arc<Entry>>>,
    /// Byte lengths of the `starts_with` and `ends_with` keys, with how many filings use
    /// each: a value is looked up once per distinct length, not once per character.
    prefix_lengths: BTreeMap<usize, usize>,
    suffix_lengths: BTreeMap<usize, usize>,
    /// `(bound, inclusive, entry)`, sorted by bound.
    above: Vec<(f64, bool, Arc<Entry>)>,
    below: Vec<(f64, bool, Arc<Entry>)>,
}

fn count(lengths: &mut BTreeMap<usize, usize>, len: usize, delta: isize) {
    let n = lengths.entry(len).or_default();
    *n = n.saturating_add_signed(delta);
    if *n == 0 {
        lengths.remove(&len);
    }
}

fn remove_from(map: &mut HashMap<String, Vec<Arc<Entry>>>, key: &str, id: &str) -> usize {
    let Some(bucket) = map.get_mut(key) else {
        return 0;
    };
    let before = bucket.len();
    bucket.retain(|e| e.sub.id != id);
    let removed = before - bucket.len();
    if bucket.is_empty() {
        map.remove(key);
    }
    removed
}

impl ProbeIndex {
    fn insert(&mut self, test: &Test, e: Arc<Entry>) {
        match test {
            Test::Equals(v) => self.equals.entry(v.clone()).or_default().push(e),
            Test::StartsWith(v) => {
                self.starts_with.entry(v.clone()).or_default().push(e);
                count(&mut self.prefix_lengths, v.len(), 1);
            }
            Test::EndsWith(v) => {
                self.ends_with.entry(v.clone()).or_default().push(e);
                count(&mut self.suffix_lengths, v.len(), 1);
            }
            Test::Above { bound, inclusive } => {
                let at = self.above.partition_point(|(b, ..)| b < bound);
                self.above.insert(at, (*bound, *inclusive, e));
            }
            Test::Below { bound, inclusive } => {
                let at = self.below.partition_point(|(b, ..)| b < bound);
                self.below.insert(at, (*bound, *inclusive, e));
            }
        }
    }

    fn remove(&mut self, test: &Test, id: &str) {
        match test {
            Test::Equals(v) => {
                remove_from(&mut self.equals, v, id);
            }
            Test::StartsWith(v) => {
                let n = remove_from(&mut self.starts_with, v, id);
                count(&mut self.prefix_lengths, v.len(), -(n as isize));
            }
            Test::EndsWith(v) => {
                let n = remove_from(&mut self.ends_with, v, id);
                count(&mut self.suffix_lengths, v.len(), -(n as isize));
            }
            Test::Above { .. } => self.above.retain(|(_, _, e)| e.sub.id != id),
            Test::Below { .. } => self.below.retain(|(_, _, e)| e.sub.id != id),
        }
    }

    fn is_empty(&self) -> bool {
        self.equals.is_empty()
            && self.starts_with.is_empty()
            && self.ends_with.is_empty()
            && self.above.is_empty()
            && self.below.is_empty()
    }

    /// Everything filed under a test that `value` passes.
    fn candidates<'a>(&'a self, value: &Probed<'_>, out: &mut Vec<&'a Arc<Entry>>) {
        match value {
            Probed::Text(s) => {
                let s: &str = s;
                if let Some(v) = self.equals.get(s) {
                    out.extend(v);
                }
                for &len in self.prefix_lengths.keys() {
                    if len > s.len() {
                        break;
                    }
                    if let Some(v) = s.get(..len).and_then(|p| self.starts_with.get(p)) {
                        out.extend(v);
                    }
                }
                for &len in self.suffix_lengths.keys() {
                    if len > s.len() {
                        break;
                    }
                    if let Some(v) = s.get(s.len() - len..).and_then(|p| self.ends_with.get(p)) {
                        out.extend(v);
                    }
                }
            }
            Probed::Number(n) => {
                let n = *n;
                for (bound, inclusive, e) in &self.above {
                    if *bound > n {
                        break;
                    }
                    if *bound < n || *inclusive {
                        out.push(e);
                    }
                }
                let from = self.below.partition_point(|(b, ..)| *b < n);
                for (bound, inclusive, e) in &self.below[from..] {
                    if *bound > n || *inclusive {
                        out.push(e);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct ProjectIndex {
    by_id: HashMap<String, Arc<Entry>>,
    /// Keyed by the `/`-joined topic prefix (`""` for all topics).
    by_topic_prefix: HashMap<String, Vec<Arc<Entry>>>,
    by_probe: HashMap<Probe, ProbeIndex>,
}

impl ProjectIndex {
    fn insert(&mut self, e: Arc<Entry>) {
        self.remove(&e.sub.id);
        for slot in &e.slots {
            match slot {
                Slot::TopicPrefix(p) => self
                    .by_topic_prefix
                    .entry(p.clone())
                    .or_default()
                    .push(e.clone()),
                Slot::Guard(g) => self
                    .by_probe
                    .entry(g.probe.clone())
                    .or_default()
                    .insert(&g.test, e.clone()),
            }
        }
        self.by_id.insert(e.sub.id.clone(), e);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Entry>> {
        let old = self.by_id.remove(id)?;
        for slot in &old.slots {
            match slot {
                Slot::TopicPrefix(p) => {
                    remove_from(&mut self.by_topic_prefix, p, id);
                }
                Slot::Guard(g) => {
                    if let Some(pi) = self.by_probe.get_mut(&g.probe) {
                        pi.remove(&g.test, id);
                        if pi.is_empty() {
                            self.by_probe.remove(&g.probe);
                        }
                    }
                }
            }
        }
        Some(old)
    }

    /// Every subscription filed under a slot this event satisfies.
    fn candidates<'a>(&'a self, topic: &Topic, event: &Event) -> Vec<&'a Arc<Entry>> {
        let mut out = Vec::new();
        for (probe, index) in &self.by_probe {
            if let Some(value) = probe.read(event) {
                index.candidates(&value, &mut out);
            }
        }
        let mut prefix = String::new();
        let mut add = |k: &str| {
            if let Some(v) = self.by_topic_prefix.get(k) {
                out.extend(v.iter());
            }
        };
        add(&prefix);
        for (i, seg) in topic.segments().iter().enumerate() {
            if i > 0 {
                prefix.push('/');
            }
            prefix.push_str(seg);
            add(&prefix);
        }
        out
    }
}

/// All subscriptions of all projects, indexed for routing. Edits patch a project's index
/// in place (no rebuild, so loading or creating many subscriptions stays linear).
#[derive(Default)]
pub struct Registry {
    projects: RwLock<HashMap<String, ProjectIndex>>,
    routed: AtomicU64,
    candidates: AtomicU64,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, ProjectIndex>> {
        self.projects.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Add or replace a subscription. Runtime state carries over; the handshake is
    /// redone when the sink or the handshake setting changed.
    pub fn upsert(&self, project: &str, sub: Subscription, filter: Filter) -> Arc<Entry> {
        let mut map = self.projects.write().unwrap_or_else(|p| p.into_inner());
        let index = map.entry(project.to_string()).or_default();
        let handshake = if sub.protocolsettings.handshake {
            Handshake::Pending
        } else {
            Handshake::NotNeeded
        };
        let runtime = match index.by_id.get(&sub.id) {
            Some(o) => {
                let same_sink = o.sub.sink == sub.sink
                    && o.sub.protocolsettings.handshake == sub.protocolsettings.handshake;
                if !same_sink {
                    *o.runtime
                        .handshake
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = handshake;
                }
                o.runtime.clone()
            }
            None => Arc::new(Runtime {
                in_flight: AtomicU32::new(0),
                sending: AtomicU32::new(0),
                send_freed: tokio::sync::Notify::new(),
                consecutive_failures: AtomicU32::new(0),
                handshake: Mutex::new(handshake),
                edit: Arc::new(tokio::sync::Mutex::new(())),
                oauth: Arc::default(),
            }),
        };
        let (slots, checks) = placement(&sub, &filter);
        let (delivery, render) = delivery_of(&sub);
        let mut webhook = WebhookConfig::for_sink(&sub);
        webhook.pretty = render.pretty_print;
        let entry = Arc::new(Entry {
            project: project.to_string(),
            webhook: Arc::new(webhook),
            delivery,
            render,
            slots,
            checks,
            sub,
            filter,
            runtime,
        });
        index.insert(entry.clone());
        entry
    }

    pub fn remove(&self, project: &str, id: &str) -> Option<Arc<Entry>> {
        let mut map = self.projects.write().unwrap_or_else(|p| p.into_inner());
        map.get_mut(project)?.remove(id)
    }

    pub fn get(&self, project: &str, id: &str) -> Option<Arc<Entry>> {
        self.read().get(project)?.by_id.get(id).cloned()
    }

    /// Subscriptions of a project, ordered by id.
    pub fn list(&self, project: &str) -> Vec<Arc<Entry>> {
        let mut v: Vec<_> = self
            .read()
            .get(project)
            .map(|i| i.by_id.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.sub.id.cmp(&b.sub.id));
        v
    }

    /// Subscriptions across all projects.
    pub fn count(&self) -> usize {
        self.read().values().map(|idx| idx.by_id.len()).sum()
    }

    /// Ids of the subscriptions (active or not: a disabled one keeps its backlog) that
    /// want this event.
    pub fn route(&self, project: &str, topic: &Topic, event: &Event) -> Vec<String> {
        let map = self.read();
        let Some(idx) = map.get(project) else {
            return Vec::new();
        };
        let view = EventView::new(event);
        // A subscription filed under two slots this event satisfies comes up twice; only
        // those with several slots need the sort.
        let (mut candidates, mut several): (Vec<_>, Vec<_>) = idx
            .candidates(topic, event)
            .into_iter()
            .partition(|e| e.slots.len() == 1);
        several.sort_unstable_by_key(|e| Arc::as_ptr(e));
        several.dedup_by(|a, b| Arc::ptr_eq(a, b));
        candidates.extend(several);
        self.routed.fetch_add(1, Ordering::Relaxed);
        self.candidates
            .fetch_add(candidates.len() as u64, Ordering::Relaxed);
        candidates
            .into_iter()
            .filter(|e| e.matches(topic, &view))
            .map(|e| e.sub.id.clone())
            .collect()
    }

    /// Events routed so far, and the candidates the index let through to the full match.
    pub fn routing_counts(&self) -> (u64, u64) {
        (
            self.routed.load(Ordering::Relaxed),
            self.candidates.load(Ordering::Relaxed),
        )
    }

    /// Count a failed attempt; returns the new consecutive-failure count.
    pub fn record_failure(entry: &Entry) -> u32 {
        entry
            .runtime
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }

    pub fn record_success(entry: &Entry) {
        entry
            .runtime
            .consecutive_failures
            .store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(v: serde_json::Value) -> (Subscription, Filter) {
        let s: Subscription = serde_json::from_value(v).unwrap();
        let f = herald_filter::compile(&s.filters).unwrap();
        (s, f)
    }

    #[test]
    fn routes_by_type_topic_source_and_filter() {
        let r = Registry::new();
        let (s, f) = sub(json!({"id": "a", "sink": "http://x", "types": ["order.created"]}));
        r.upsert("p", s, f);
        let (s, f) =
            sub(json!({"id": "b", "sink": "http://x", "topics": [["service", "production"]]}));
        r.upsert("p", s, f);
        let (s, f) = sub(
            json!({"id": "c", "sink": "http://x", "filters": [{"prefix": {"subject": "vip/"}}]}),
        );
        r.upsert("p", s, f);
        let (s, f) = sub(json!({"id": "d", "sink": "http://x", "source": "/shop"}));
        r.upsert("p", s, f);

        let mut e = Event::new("1", "/shop", "order.created");
        let root = Topic::root();
        let mut got = r.route("p", &root, &e);
        got.sort();
        assert_eq!(got, vec!["a", "d"]);
        let prod = Topic::parse("service/production/finance").unwrap();
        let mut got = r.route("p", &prod, &e);
        got.sort();
        assert_eq!(got, vec!["a", "b", "d"]);
        e.subject = Some("vip/1".into());
        e.source = "/other".into();
        let mut got = r.route("p", &root, &e);
        got.sort();
        assert_eq!(got, vec!["a", "c"]);
        assert!(r.route("other-project", &root, &e).is_empty());

        r.remove("p", "a");
        assert_eq!(r.route("p", &root, &e), vec!["c"]);
    }

    #[test]
    fn edits_move_a_subscription_between_index_keys() {
        let r = Registry::new();
        let (s, f) = sub(json!({"id": "a", "sink": "http://x", "types": ["t1"]}));
        r.upsert("p", s, f);
        let root = Topic::root();
        assert_eq!(r.route("p", &root, &Event::new("1", "/s", "t1")), vec!["a"]);
        let (s, f) = sub(json!({"id": "a", "sink": "http://x", "source": "/only"}));
        r.upsert("p", s, f);
        assert!(
            r.route("p", &root, &Event::new("1", "/s", "t1")).is_empty(),
            "old key gone"
        );
        assert_eq!(
            r.route("p", &root, &Event::new("1", "/only", "t9")),
            vec!["a"]
        );
        assert_eq!(r.count(), 1);
        r.remove("p", "a");
        assert!(r
            .route("p", &root, &Event::new("1", "/only", "t9"))
            .is_empty());
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn overlapping_topic_prefixes_route_once() {
        let r = Registry::new();
        let (s, f) = sub(json!({"id": "a", "sink": "http://x", "topics": [["a"], ["a", "b"], []]}));
        r.upsert("p", s, f);
        let topic = Topic::parse("a/b/c").unwrap();
        assert_eq!(r.route("p", &topic, &Event::new("1", "/s", "t")), vec!["a"]);
    }

    #[test]
    fn filter_guards_file_subscriptions_and_edits_refile_them() {
        let r = Registry::new();
        let add = |id: &str, filters: serde_json::Value| {
            let (s, f) = sub(json!({"id": id, "sink": "http://x", "filters": filters}));
            r.upsert("p", s, f);
        };
        add("eu", json!([{"sql": "subject LIKE 'eu/%' AND prio > 2"}]));
        add("big", json!([{"feel": "amount >= 100"}]));
        add("small", json!([{"feel": "amount < 10"}]));
        add(
            "gold",
            json!([{"any": [{"exact": {"tier": "gold"}}, {"suffix": {"subject": "/vip"}}]}]),
        );
        let root = Topic::root();
        let route = |subject: &str, prio: i64, amount: f64, tier: &str| {
            let mut e = Event::new("1", "/s", "t");
            e.subject = Some(subject.into());
            e.extensions
                .insert("prio".into(), herald_core::ExtValue::Integer(prio));
            e.extensions
                .insert("tier".into(), herald_core::ExtValue::String(tier.into()));
            e.data = Some(herald_core::Data::Json(json!({ "amount": amount })));
            let mut got = r.route("p", &root, &e);
            got.sort();
            got
        };
        assert_eq!(route("eu/1", 3, 50.0, "x"), vec!["eu"]);
        assert_eq!(route("eu/1", 2, 100.0, "x"), vec!["big"]);
        assert_eq!(route("us/1", 9, 9.5, "gold"), vec!["gold", "small"]);
        assert_eq!(route("us/vip", 0, 10.0, "x"), vec!["gold"]);
        // An edit moves the subscription from its old slots to the new ones.
        add("eu", json!([{"sql": "subject LIKE 'us/%'"}]));
        assert_eq!(route("eu/1", 3, 50.0, "x"), Vec::<String>::new());
        assert_eq!(route("us/1", 3, 50.0, "x"), vec!["eu"]);
        for id in ["eu", "big", "small", "gold"] {
            r.remove("p", id);
        }
        let map = r.read();
        let idx = map.get("p").unwrap();
        assert!(idx.by_probe.is_empty() && idx.by_topic_prefix.is_empty());
    }

    /// Routing through the index equals testing every subscription, over a random mix.
    #[test]
    fn index_routes_exactly_like_a_full_scan() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let words = ["a", "b", "ab", "a/b", "b/a"];
        let r = Registry::new();
        for i in 0..400 {
            let w = |k: usize| words[k];
            let filter = match next(9) {
                0 => json!({"exact": {"subject": w(next(5))}}),
                1 => json!({"prefix": {"subject": w(next(5))}}),
                2 => json!({"suffix": {"type": w(next(5))}}),
                3 => json!({"sql": format!("subject LIKE '{}%' OR n >= {}", w(next(5)), next(6))}),
                4 => json!({"sql": format!("{} < n AND source = '{}'", next(6), w(next(5)))}),
                5 => {
                    json!({"feel": format!("x > {} or k in [\"{}\", \"{}\"]", next(6), w(next(5)), w(next(5)))})
                }
                6 => {
                    json!({"feel": format!("event.subject = \"{}\" and x <= {}", w(next(5)), next(6))})
                }
                7 => json!({"not": {"exact": {"type": w(next(5))}}}),
                _ => json!({"sql": "TRUE"}),
            };
            let mut body = json!({"id": format!("s{i}"), "sink": "http://x", "filters": [filter]});
            match next(4) {
                0 => body["types"] = json!([w(next(5)), w(next(5))]),
                1 => body["source"] = json!(w(next(5))),
                2 => body["topics"] = json!([[w(next(2))], [w(next(2)), w(next(2))]]),
                _ => {}
            }
            let (s, f) = sub(body);
            r.upsert("p", s, f);
        }
        let topics = [
            Topic::root(),
            Topic::parse("a").unwrap(),
            Topic::parse("b/a").unwrap(),
        ];
        for _ in 0..500 {
            let mut e = Event::new("1", words[next(5)], words[next(5)]);
            if next(4) > 0 {
                e.subject = Some(words[next(5)].into());
            }
            if next(2) == 0 {
                e.extensions
                    .insert("n".into(), herald_core::ExtValue::Integer(next(7) as i64));
            }
            e.data = Some(herald_core::Data::Json(
                json!({"x": next(7) as f64 - 0.5, "k": words[next(5)]}),
            ));
            let topic = &topics[next(3)];
            let mut got = r.route("p", topic, &e);
            got.sort();
            let view = EventView::new(&e);
            let mut want: Vec<String> = r
                .list("p")
                .iter()
                .filter(|en| en.matches(topic, &view))
                .map(|en| en.sub.id.clone())
                .collect();
            want.sort();
            assert_eq!(got, want, "{e:?} on {topic:?}");
        }
    }

    #[test]
    fn runtime_state_survives_updates() {
        let r = Registry::new();
        let (s, f) = sub(json!({"id": "a", "sink": "http://x"}));
        let e1 = r.upsert("p", s.clone(), f.clone());
        Registry::record_failure(&e1);
        let e2 = r.upsert("p", s, f);
        assert_eq!(e2.runtime.consecutive_failures.load(Ordering::Relaxed), 1);
    }
}

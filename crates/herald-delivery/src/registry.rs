//! Subscriptions in memory, compiled, with the routing index used at ingest. Each
//! subscription is filed under its most selective exact key (its types, else its source,
//! else its topic prefixes), so an event only looks at subscriptions filed under its own
//! type, its source and the prefixes of its topic before topic, source and filter checks
//! run: cost does not grow with subscriptions that cannot match.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use herald_core::subscription::Subscription;
use herald_core::{Event, Topic};
use herald_filter::{EventView, Filter};

use crate::sinks::webhook::WebhookConfig;

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
    pub in_flight: AtomicU32,
    pub consecutive_failures: AtomicU32,
    pub handshake: Mutex<Handshake>,
    /// Held across every read-modify-write of the subscription (API edits, auto-disable),
    /// so that one never writes back an older copy over another.
    pub edit: Arc<tokio::sync::Mutex<()>>,
    /// The OAuth2 token of the sink's credential, when it has one.
    pub oauth: Arc<crate::sinks::webhook::TokenCache>,
}

/// A compiled subscription.
#[derive(Debug)]
pub struct Entry {
    pub project: String,
    pub sub: Subscription,
    pub filter: Filter,
    /// The sink's request settings, derived once per edit rather than per attempt.
    pub webhook: Arc<WebhookConfig>,
    pub runtime: Arc<Runtime>,
}

impl Entry {
    /// Full match: topic prefix, type, source, then the filter expression.
    pub fn matches(&self, topic: &Topic, view: &EventView<'_>) -> bool {
        self.sub.wants(topic, view.event)
            && (self.filter.is_trivial() || self.filter.matches_view(view))
    }
}

#[derive(Debug, Default)]
struct ProjectIndex {
    by_id: HashMap<String, Arc<Entry>>,
    by_type: HashMap<String, Vec<Arc<Entry>>>,
    by_source: HashMap<String, Vec<Arc<Entry>>>,
    /// Keyed by the `/`-joined topic prefix (`""` for all topics).
    by_topic_prefix: HashMap<String, Vec<Arc<Entry>>>,
}

impl ProjectIndex {
    /// The bucket map and keys a subscription is filed under: its types, else its
    /// source, else its topic prefixes.
    fn slots(
        &mut self,
        sub: &Subscription,
    ) -> (&mut HashMap<String, Vec<Arc<Entry>>>, Vec<String>) {
        let (map, mut keys): (_, Vec<String>) = if !sub.types.is_empty() {
            (&mut self.by_type, sub.types.clone())
        } else if let Some(source) = &sub.source {
            (&mut self.by_source, vec![source.clone()])
        } else {
            (
                &mut self.by_topic_prefix,
                sub.topics.iter().map(|p| p.join("/")).collect(),
            )
        };
        keys.sort();
        keys.dedup();
        (map, keys)
    }

    fn insert(&mut self, e: Arc<Entry>) {
        self.remove(&e.sub.id);
        let (map, keys) = self.slots(&e.sub);
        for k in keys {
            map.entry(k).or_default().push(e.clone());
        }
        self.by_id.insert(e.sub.id.clone(), e);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Entry>> {
        let old = self.by_id.remove(id)?;
        let (map, keys) = self.slots(&old.sub);
        for k in keys {
            if let Some(bucket) = map.get_mut(&k) {
                bucket.retain(|e| e.sub.id != id);
                if bucket.is_empty() {
                    map.remove(&k);
                }
            }
        }
        Some(old)
    }

    /// Every subscription filed under a key this event has.
    fn candidates<'a>(&'a self, topic: &Topic, event: &Event) -> Vec<&'a Arc<Entry>> {
        let mut out = Vec::new();
        let mut add = |m: &'a HashMap<String, Vec<Arc<Entry>>>, k: &str| {
            if let Some(v) = m.get(k) {
                out.extend(v.iter());
            }
        };
        add(&self.by_type, &event.ty);
        add(&self.by_source, &event.source);
        let mut prefix = String::new();
        add(&self.by_topic_prefix, &prefix);
        for (i, seg) in topic.segments().iter().enumerate() {
            if i > 0 {
                prefix.push('/');
            }
            prefix.push_str(seg);
            add(&self.by_topic_prefix, &prefix);
        }
        out
    }
}

/// All subscriptions of all projects, indexed for routing. Edits patch a project's index
/// in place (no rebuild, so loading or creating many subscriptions stays linear).
#[derive(Default)]
pub struct Registry {
    projects: RwLock<HashMap<String, ProjectIndex>>,
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
                consecutive_failures: AtomicU32::new(0),
                handshake: Mutex::new(handshake),
                edit: Arc::new(tokio::sync::Mutex::new(())),
                oauth: Arc::default(),
            }),
        };
        let entry = Arc::new(Entry {
            project: project.to_string(),
            webhook: Arc::new(WebhookConfig::for_sink(&sub)),
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
        let mut candidates = idx.candidates(topic, event);
        // A subscription filed under two prefixes of this event's topic comes up twice.
        candidates.sort_unstable_by_key(|e| Arc::as_ptr(e));
        candidates.dedup_by(|a, b| Arc::ptr_eq(a, b));
        candidates
            .into_iter()
            .filter(|e| e.matches(topic, &view))
            .map(|e| e.sub.id.clone())
            .collect()
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
        assert_eq!(r.route("p", &root, &e), vec!["a", "d"]);
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
    fn runtime_state_survives_updates() {
        let r = Registry::new();
        let (s, f) = sub(json!({"id": "a", "sink": "http://x"}));
        let e1 = r.upsert("p", s.clone(), f.clone());
        Registry::record_failure(&e1);
        let e2 = r.upsert("p", s, f);
        assert_eq!(e2.runtime.consecutive_failures.load(Ordering::Relaxed), 1);
    }
}

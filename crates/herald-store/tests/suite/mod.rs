//! The store conformance suite: what every [`Store`] implementation must do, written
//! against the trait only. Each check is a generic `async fn` taking a fresh, empty store
//! (`Arc<dyn Store>`); a backend's test file (see `conformance.rs`) runs every one of them.
//! The few checks that need more than one store handle or a look behind the trait take
//! closures the backend supplies: `open` (the same durable store, opened again) and
//! `event_exists` (whether the events table still holds a seq).
//!
//! Times: the suite works around `base()`, the wall clock at the start of a check,
//! because `Next::Dead` stamps `dead_at` and queues the dead-letter-sink copy at the
//! store's own clock.

use std::collections::HashSet;
use std::sync::Arc;

use herald_core::subscription::{Subscription, SubscriptionState};
use herald_store::{
    AppendBatch, AppendOutcome, Attempt, Backlog, ClaimedDelivery, DeliveryUpdate, HistoryEntry,
    InstanceChange, InstanceRow, InstanceState, NewEvent, NewInstance, NewScheduled, Next,
    SaveMode, Store, StoreError, StoredSubscription, Target, WakeRefusal,
};
use serde_json::json;

pub type DynStore = Arc<dyn Store>;

/// A dedup window long enough that nothing in a check falls out of it by accident.
pub const WINDOW: i64 = 60_000;
/// How long a claim in the suite leases its deliveries.
pub const LEASE: i64 = 30_000;

// ----------------------------------------------------------------------------- helpers

pub fn base() -> i64 {
    herald_core::now_millis()
}

pub fn subscription(id: &str) -> Subscription {
    serde_json::from_value(json!({"id": id, "sink": "http://x"})).expect("subscription JSON")
}

pub fn stored(project: &str, id: &str) -> StoredSubscription {
    StoredSubscription {
        project: project.to_string(),
        sub: subscription(id),
    }
}

pub async fn put_sub(store: &DynStore, project: &str, id: &str) {
    store
        .put_subscription(project, &stored(project, id))
        .await
        .expect("put_subscription");
}

pub async fn set_active(store: &DynStore, project: &str, id: &str, active: bool) {
    let mut s = stored(project, id);
    if !active {
        s.sub.state = SubscriptionState::Disabled {
            reason: "test".into(),
            since: 1,
        };
    }
    store
        .put_subscription(project, &s)
        .await
        .expect("put_subscription");
}

pub fn body_of(id: &str, source: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": "com.example.test",
        "data": {"n": id},
    }))
    .unwrap()
}

pub fn event(id: &str, source: &str, received_at: i64, deliveries: &[&str]) -> NewEvent {
    NewEvent {
        id: id.to_string(),
        source: source.to_string(),
        ty: "com.example.test".to_string(),
        topic: "orders".to_string(),
        received_at,
        body: body_of(id, source),
        deliveries: deliveries.iter().map(|s| s.to_string()).collect(),
        held: Vec::new(),
        flow: Default::default(),
    }
}

pub async fn append(
    store: &DynStore,
    project: &str,
    window: i64,
    events: Vec<NewEvent>,
) -> Vec<AppendOutcome> {
    let n = events.len();
    let out = store
        .append(AppendBatch {
            project: project.to_string(),
            dedup_window_ms: window,
            events,
        })
        .await
        .expect("append");
    assert_eq!(out.len(), n, "one outcome per event");
    out
}

/// Append one event with `WINDOW` and return its seq (it must be stored).
pub async fn append_one(
    store: &DynStore,
    project: &str,
    id: &str,
    received_at: i64,
    deliveries: &[&str],
) -> i64 {
    let out = append(
        store,
        project,
        WINDOW,
        vec![event(id, "/src", received_at, deliveries)],
    )
    .await;
    stored_seq(out[0])
}

pub fn stored_seq(o: AppendOutcome) -> i64 {
    match o {
        AppendOutcome::Stored { seq } => seq,
        other => panic!("expected Stored, got {other:?}"),
    }
}

pub async fn claim(store: &DynStore, now: i64, limit: usize) -> Vec<ClaimedDelivery> {
    store
        .claim_due(now, now + LEASE, limit, &[])
        .await
        .expect("claim_due")
}

pub async fn claim_one(store: &DynStore, now: i64) -> ClaimedDelivery {
    let mut c = claim(store, now, 100).await;
    assert_eq!(c.len(), 1, "expected exactly one claimable delivery: {c:?}");
    c.pop().unwrap()
}

pub fn event_id_of(d: &ClaimedDelivery) -> String {
    let v: serde_json::Value = serde_json::from_slice(&d.body).expect("body is JSON");
    v["id"].as_str().expect("body has id").to_string()
}

pub fn attempt_for(d: &ClaimedDelivery, at: i64, status: Option<u16>, error: &str) -> Attempt {
    Attempt {
        id: 0,
        delivery_id: d.delivery_id,
        seq: d.seq,
        event_id: event_id_of(d),
        target: d.target,
        at,
        status,
        latency_ms: 12,
        error: Some(error.to_string()),
        response_body: Some(format!("body of {error}")),
    }
}

pub fn update(d: &ClaimedDelivery, attempt: Option<Attempt>, next: Next) -> DeliveryUpdate {
    let last_error = attempt.as_ref().and_then(|a| a.error.clone());
    DeliveryUpdate {
        delivery_id: d.delivery_id,
        project: d.project.clone(),
        subscription_id: d.subscription_id.clone(),
        attempt,
        next,
        last_error,
    }
}

pub async fn complete(store: &DynStore, updates: Vec<DeliveryUpdate>) {
    store.complete(updates).await.expect("complete");
}

/// Claim the single due delivery at `now` and fail it with an attempt record.
pub async fn fail_once(store: &DynStore, now: i64, next: Next, error: &str) -> ClaimedDelivery {
    let d = claim_one(store, now).await;
    let a = attempt_for(&d, now, Some(500), error);
    complete(store, vec![update(&d, Some(a), next)]).await;
    d
}

pub async fn backlog(store: &DynStore, project: &str, sub: &str) -> Backlog {
    store.backlog(project, sub).await.expect("backlog")
}

fn ids(c: &[ClaimedDelivery]) -> Vec<String> {
    c.iter().map(event_id_of).collect()
}

// ----------------------------------------------------------------------------- projects

pub async fn projects_default_and_ensure(store: DynStore) {
    assert_eq!(store.list_projects().await.unwrap(), vec!["default"]);
    assert!(store.ensure_project("zeta").await.unwrap(), "created now");
    assert!(
        !store.ensure_project("zeta").await.unwrap(),
        "already there"
    );
    assert!(store.ensure_project("alpha").await.unwrap());
    assert!(!store.ensure_project("default").await.unwrap());
    let mut got = store.list_projects().await.unwrap();
    got.sort();
    assert_eq!(got, vec!["alpha", "default", "zeta"]);
}

// ----------------------------------------------------------------------------- append

pub async fn append_seqs_increase(store: DynStore) {
    let t = base();
    let first = append(
        &store,
        "default",
        WINDOW,
        (0..5)
            .map(|i| event(&format!("e{i}"), "/src", t, &[]))
            .collect(),
    )
    .await;
    let second = append(
        &store,
        "default",
        WINDOW,
        (5..8)
            .map(|i| event(&format!("e{i}"), "/src", t, &[]))
            .collect(),
    )
    .await;
    let seqs: Vec<i64> = first.into_iter().chain(second).map(stored_seq).collect();
    assert_eq!(seqs.len(), 8);
    for w in seqs.windows(2) {
        assert!(w[1] > w[0], "seqs must strictly increase: {seqs:?}");
    }
    // Another project shares the seq space without going back.
    let other = append_one(&store, "other", "e0", t, &[]).await;
    assert!(other > *seqs.last().unwrap());
}

pub async fn append_dedup_within_window(store: DynStore) {
    let t = base();
    let seq = append_one(&store, "default", "a", t, &[]).await;
    // A later request inside the window.
    let out = append(
        &store,
        "default",
        WINDOW,
        vec![event("a", "/src", t + WINDOW / 2, &[])],
    )
    .await;
    assert_eq!(out, vec![AppendOutcome::Duplicate { seq }]);
    // Twice in the same batch: the second is a duplicate of the first.
    let out = append(
        &store,
        "default",
        WINDOW,
        vec![
            event("b", "/src", t, &[]),
            event("c", "/src", t, &[]),
            event("b", "/src", t, &[]),
        ],
    )
    .await;
    let b = stored_seq(out[0]);
    let c = stored_seq(out[1]);
    assert_ne!(b, c);
    assert_eq!(out[2], AppendOutcome::Duplicate { seq: b });
}

pub async fn append_duplicate_creates_no_delivery(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    let seq = append_one(&store, "default", "a", t, &["s"]).await;
    let out = append(
        &store,
        "default",
        WINDOW,
        vec![event("a", "/src", t + 1, &["s"])],
    )
    .await;
    assert_eq!(out, vec![AppendOutcome::Duplicate { seq }]);
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 1,
            dead: 0
        }
    );
    let c = claim(&store, t + 10, 100).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].seq, seq);
}

pub async fn append_stored_again_after_window(store: DynStore) {
    let t = base();
    let window = 1_000;
    let first =
        stored_seq(append(&store, "default", window, vec![event("a", "/src", t, &[])]).await[0]);
    // Exactly at the edge of the window it is still a duplicate.
    let out = append(
        &store,
        "default",
        window,
        vec![event("a", "/src", t + window, &[])],
    )
    .await;
    assert_eq!(out, vec![AppendOutcome::Duplicate { seq: first }]);
    // Past the window it is a new event with a new seq...
    let later = t + window + 1;
    let second = stored_seq(
        append(
            &store,
            "default",
            window,
            vec![event("a", "/src", later, &[])],
        )
        .await[0],
    );
    assert!(second > first);
    // ...and the window now runs from the new copy.
    let out = append(
        &store,
        "default",
        window,
        vec![event("a", "/src", later + 10, &[])],
    )
    .await;
    assert_eq!(out, vec![AppendOutcome::Duplicate { seq: second }]);
}

pub async fn append_dedup_key_is_project_source_id(store: DynStore) {
    let t = base();
    store.ensure_project("other").await.unwrap();
    let a = append_one(&store, "default", "same", t, &[]).await;
    let out = append(
        &store,
        "default",
        WINDOW,
        vec![event("same", "/other-source", t, &[])],
    )
    .await;
    let b = stored_seq(out[0]);
    let c = append_one(&store, "other", "same", t, &[]).await;
    let all: HashSet<i64> = [a, b, c].into_iter().collect();
    assert_eq!(all.len(), 3, "three distinct events");
    // And each one is still deduplicated within its own key.
    let out = append(
        &store,
        "default",
        WINDOW,
        vec![
            event("same", "/src", t + 1, &[]),
            event("same", "/other-source", t + 1, &[]),
        ],
    )
    .await;
    assert_eq!(
        out,
        vec![
            AppendOutcome::Duplicate { seq: a },
            AppendOutcome::Duplicate { seq: b }
        ]
    );
    let out = append(
        &store,
        "other",
        WINDOW,
        vec![event("same", "/src", t + 1, &[])],
    )
    .await;
    assert_eq!(out, vec![AppendOutcome::Duplicate { seq: c }]);
}

pub async fn append_routes_deliveries(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s1").await;
    put_sub(&store, "default", "s2").await;
    let seq = append_one(&store, "default", "a", t, &["s1", "s2"]).await;
    let only1 = append_one(&store, "default", "b", t, &["s1"]).await;
    let none = append_one(&store, "default", "c", t, &[]).await;

    let c = claim(&store, t, 100).await;
    assert_eq!(c.len(), 3, "{c:?}");
    let mut seen: Vec<(String, i64)> = c
        .iter()
        .map(|d| (d.subscription_id.clone(), d.seq))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("s1".to_string(), seq),
            ("s1".to_string(), only1),
            ("s2".to_string(), seq)
        ]
    );
    assert!(c.iter().all(|d| d.seq != none));
    let ids: HashSet<i64> = c.iter().map(|d| d.delivery_id).collect();
    assert_eq!(ids.len(), 3, "distinct delivery ids");
    for d in &c {
        assert_eq!(d.project, "default");
        assert_eq!(d.target, Target::Sink);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.created_at, t);
        let expect = if d.seq == seq { "a" } else { "b" };
        assert_eq!(
            d.body,
            body_of(expect, "/src"),
            "claim carries the event body"
        );
    }
    assert_eq!(
        backlog(&store, "default", "s1").await,
        Backlog {
            pending: 2,
            dead: 0
        }
    );
    assert_eq!(
        backlog(&store, "default", "s2").await,
        Backlog {
            pending: 1,
            dead: 0
        }
    );
}

// ----------------------------------------------------------------------------- claim_due

pub async fn claim_only_due(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "now", t, &["s"]).await;
    append_one(&store, "default", "later", t + 5_000, &["s"]).await;

    assert!(
        claim(&store, t - 1, 100).await.is_empty(),
        "nothing due yet"
    );
    let c = claim(&store, t, 100).await;
    assert_eq!(ids(&c), vec!["now"]);
    assert!(claim(&store, t + 4_999, 100).await.is_empty());
    let c = claim(&store, t + 5_000, 100).await;
    assert_eq!(ids(&c), vec!["later"], "due_at == now counts as due");
}

pub async fn claim_only_active_subscriptions(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "on").await;
    put_sub(&store, "default", "off").await;
    append_one(&store, "default", "a", t, &["on", "off", "missing"]).await;

    set_active(&store, "default", "off", false).await;
    let c = claim(&store, t, 100).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].subscription_id, "on");
    assert!(claim(&store, t + 1, 100).await.is_empty());

    set_active(&store, "default", "off", true).await;
    let c = claim(&store, t + 2, 100).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].subscription_id, "off");
    // A delivery for a subscription that does not exist is never handed out.
    assert!(claim(&store, t + 3, 100).await.is_empty());
}

pub async fn claim_respects_limit(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    for i in 0..5 {
        append_one(&store, "default", &format!("e{i}"), t, &["s"]).await;
    }
    let a = claim(&store, t, 2).await;
    assert_eq!(a.len(), 2);
    let b = claim(&store, t, 2).await;
    assert_eq!(b.len(), 2);
    let c = claim(&store, t, 2).await;
    assert_eq!(c.len(), 1);
    assert!(claim(&store, t, 2).await.is_empty());
    let all: HashSet<i64> = a
        .iter()
        .chain(&b)
        .chain(&c)
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(all.len(), 5, "each delivery leased once");
    append_one(&store, "default", "e5", t, &["s"]).await;
    assert!(
        claim(&store, t, 0).await.is_empty(),
        "limit 0 leases nothing"
    );
    assert_eq!(claim(&store, t, 2).await.len(), 1);
}

pub async fn claim_respects_skip(store: DynStore) {
    let t = base();
    store.ensure_project("p2").await.unwrap();
    put_sub(&store, "default", "a").await;
    put_sub(&store, "default", "b").await;
    put_sub(&store, "p2", "a").await;
    append_one(&store, "default", "e1", t, &["a", "b"]).await;
    append_one(&store, "p2", "e2", t, &["a"]).await;

    let key = |d: &ClaimedDelivery| format!("{}/{}", d.project, d.subscription_id);
    let all = ["default/a", "default/b", "p2/a"].map(String::from);
    assert!(
        store
            .claim_due(t, t + LEASE, 100, &all)
            .await
            .unwrap()
            .is_empty(),
        "every subscription skipped"
    );

    // Skip names `project/id`: the same id in another project is still claimed.
    let skip = vec!["default/a".to_string()];
    let c = store.claim_due(t, t + LEASE, 100, &skip).await.unwrap();
    let mut got: Vec<String> = c.iter().map(key).collect();
    got.sort();
    assert_eq!(got, vec!["default/b", "p2/a"]);
    assert!(store
        .claim_due(t, t + LEASE, 100, &skip)
        .await
        .unwrap()
        .is_empty());

    // Without the skip, the skipped delivery is claimable.
    let c = store.claim_due(t, t + LEASE, 100, &[]).await.unwrap();
    assert_eq!(c.iter().map(key).collect::<Vec<_>>(), vec!["default/a"]);
}

pub async fn claim_lease_hides_until_expired(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "a", t, &["s"]).await;
    let first = store.claim_due(t, t + 1_000, 10, &[]).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store
        .claim_due(t, t + 1_000, 10, &[])
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .claim_due(t + 999, t + 2_000, 10, &[])
        .await
        .unwrap()
        .is_empty());
    let again = store
        .claim_due(t + 1_001, t + 3_000, 10, &[])
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "an expired lease can be claimed again");
    assert_eq!(again[0].delivery_id, first[0].delivery_id);
    assert_eq!(again[0].attempts, 0, "an expired lease is not an attempt");
    assert!(store
        .claim_due(t + 1_001, t + 3_000, 10, &[])
        .await
        .unwrap()
        .is_empty());
}

/// The deliveries a claim leases under `limit` are the ones due first.
pub async fn claim_takes_oldest_due_first(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    // Appended in an order different from their due order.
    append_one(&store, "default", "third", t + 30, &["s"]).await;
    append_one(&store, "default", "first", t + 10, &["s"]).await;
    append_one(&store, "default", "fourth", t + 40, &["s"]).await;
    append_one(&store, "default", "second", t + 20, &["s"]).await;
    let now = t + 100;
    let mut got = ids(&claim(&store, now, 2).await);
    got.sort();
    assert_eq!(got, vec!["first", "second"]);
    let mut got = ids(&claim(&store, now, 1).await);
    got.sort();
    assert_eq!(got, vec!["third"]);
    assert_eq!(ids(&claim(&store, now, 5).await), vec!["fourth"]);
}

/// The claimed deliveries come back in due order (oldest due first).
pub async fn claim_returns_in_due_order(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "third", t + 30, &["s"]).await;
    append_one(&store, "default", "first", t + 10, &["s"]).await;
    append_one(&store, "default", "fourth", t + 40, &["s"]).await;
    append_one(&store, "default", "second", t + 20, &["s"]).await;
    let got = ids(&claim(&store, t + 100, 10).await);
    assert_eq!(got, vec!["first", "second", "third", "fourth"]);
}

// ----------------------------------------------------------------------------- complete

pub async fn complete_delivered_removes(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "a", t, &["s"]).await;
    append_one(&store, "default", "b", t, &["s"]).await;
    let c = claim(&store, t, 10).await;
    assert_eq!(c.len(), 2);
    let a = c.iter().find(|d| event_id_of(d) == "a").unwrap();
    let mut ok = attempt_for(a, t, Some(200), "none");
    ok.error = None;
    complete(&store, vec![update(a, Some(ok), Next::Delivered)]).await;
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 1,
            dead: 0
        }
    );
    // Far past every lease: only b comes back.
    let later = claim(&store, t + 10 * LEASE, 10).await;
    assert_eq!(ids(&later), vec!["b"]);
    let attempts = store.list_attempts("default", "s", 10, None).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(200));
    assert_eq!(attempts[0].error, None);
}

pub async fn complete_retry_at(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "a", t, &["s"]).await;
    let d = fail_once(&store, t, Next::RetryAt(t + 5_000), "boom").await;
    // The lease is gone, but it is not due before t + 5000.
    assert!(claim(&store, t + 4_999, 10).await.is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(t + 5_000));
    let again = claim_one(&store, t + 5_000).await;
    assert_eq!(again.delivery_id, d.delivery_id);
    assert_eq!(again.attempts, 1);
    assert_eq!(again.body, d.body);
    let a = attempt_for(&again, t + 5_000, Some(503), "boom2");
    complete(
        &store,
        vec![update(&again, Some(a), Next::RetryAt(t + 6_000))],
    )
    .await;
    assert_eq!(claim_one(&store, t + 6_000).await.attempts, 2);
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 1,
            dead: 0
        }
    );
}

pub async fn complete_dead_lists_dead_letter(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    let seq = append_one(&store, "default", "a", t, &["s"]).await;
    fail_once(&store, t, Next::RetryAt(t + 1), "first").await;
    let before_dead = base();
    let d = fail_once(
        &store,
        t + 1,
        Next::Dead {
            dead_letter_sink: false,
        },
        "last",
    )
    .await;

    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 0,
            dead: 1
        }
    );
    assert!(
        claim(&store, t + 10 * LEASE, 10).await.is_empty(),
        "dead is never claimed"
    );
    assert_eq!(store.next_due().await.unwrap(), None);
    let dl = store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap();
    assert_eq!(dl.len(), 1, "{dl:?}");
    let dl = &dl[0];
    assert_eq!(dl.delivery_id, d.delivery_id);
    assert_eq!(dl.seq, seq);
    assert_eq!(dl.attempts, 2);
    assert_eq!(dl.created_at, t);
    assert!(dl.dead_at >= before_dead, "dead_at is when it died");
    assert_eq!(dl.last_error.as_deref(), Some("last"));
    assert_eq!(
        dl.event,
        serde_json::from_slice::<serde_json::Value>(&body_of("a", "/src")).unwrap()
    );
    // Not listed under another subscription or project.
    assert!(store
        .list_dead_letters("default", "other", 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_dead_letters("p2", "s", 10, None)
        .await
        .unwrap()
        .is_empty());
}

pub async fn dead_letters_paging(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    for i in 0..5 {
        append_one(&store, "default", &format!("e{i}"), t, &["s"]).await;
    }
    let c = claim(&store, t, 10).await;
    let updates = c
        .iter()
        .map(|d| {
            let a = attempt_for(d, t, Some(500), "x");
            update(
                d,
                Some(a),
                Next::Dead {
                    dead_letter_sink: false,
                },
            )
        })
        .collect();
    complete(&store, updates).await;
    let page1 = store
        .list_dead_letters("default", "s", 2, None)
        .await
        .unwrap();
    assert_eq!(page1.len(), 2);
    assert!(page1[0].delivery_id > page1[1].delivery_id, "newest first");
    let page2 = store
        .list_dead_letters("default", "s", 2, Some(page1[1].delivery_id))
        .await
        .unwrap();
    assert_eq!(page2.len(), 2);
    assert!(page2[0].delivery_id < page1[1].delivery_id);
    let page3 = store
        .list_dead_letters("default", "s", 2, Some(page2[1].delivery_id))
        .await
        .unwrap();
    assert_eq!(page3.len(), 1);
    let all: HashSet<i64> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(all, c.iter().map(|d| d.delivery_id).collect());
}

pub async fn complete_dead_with_dead_letter_sink(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    let seq = append_one(&store, "default", "a", t, &["s"]).await;
    let d = fail_once(
        &store,
        t,
        Next::Dead {
            dead_letter_sink: true,
        },
        "gone",
    )
    .await;
    let after = base();

    let dl = store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap();
    assert_eq!(dl.len(), 1, "the original is a dead letter");
    assert_eq!(dl[0].delivery_id, d.delivery_id);
    let b = backlog(&store, "default", "s").await;
    assert_eq!(b.dead, 1);
    assert_eq!(b.pending, 1, "the copy for the dead-letter sink is pending");

    let copy = claim_one(&store, after + 1).await;
    assert_eq!(copy.target, Target::DeadLetterSink);
    assert_ne!(copy.delivery_id, d.delivery_id);
    assert_eq!(copy.seq, seq);
    assert_eq!(copy.attempts, 0);
    assert_eq!(copy.subscription_id, "s");
    assert_eq!(copy.body, body_of("a", "/src"));

    // The copy dying too queues nothing more and is not listed as a dead letter.
    let a = attempt_for(&copy, after + 1, Some(500), "dls down");
    complete(
        &store,
        vec![update(
            &copy,
            Some(a),
            Next::Dead {
                dead_letter_sink: true,
            },
        )],
    )
    .await;
    assert!(claim(&store, base() + 10 * LEASE, 10).await.is_empty());
    let dl = store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].delivery_id, d.delivery_id);
    let attempts = store.list_attempts("default", "s", 10, None).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].target, Target::DeadLetterSink);
    assert_eq!(attempts[1].target, Target::Sink);
}

pub async fn complete_release_keeps_attempts(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "a", t, &["s"]).await;
    fail_once(&store, t, Next::RetryAt(t + 10), "boom").await;
    let d = claim_one(&store, t + 10).await;
    assert_eq!(d.attempts, 1);
    complete(&store, vec![update(&d, None, Next::Release(t + 500))]).await;
    assert!(
        claim(&store, t + 499, 10).await.is_empty(),
        "due again at t+500"
    );
    let again = claim_one(&store, t + 500).await;
    assert_eq!(again.delivery_id, d.delivery_id);
    assert_eq!(again.attempts, 1, "a release is not an attempt");
    let logged = store.list_attempts("default", "s", 10, None).await.unwrap();
    assert_eq!(logged.len(), 1, "a release without attempt logs nothing");
}

pub async fn attempts_newest_first_with_paging(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    put_sub(&store, "default", "other").await;
    let seq = append_one(&store, "default", "a", t, &["s", "other"]).await;
    for i in 0..5u16 {
        let now = t + i64::from(i);
        let c = claim(&store, now, 10).await;
        let d = c.iter().find(|d| d.subscription_id == "s").unwrap();
        let a = attempt_for(d, now, Some(500 + i), &format!("err{i}"));
        let mut ups = vec![update(d, Some(a), Next::RetryAt(now + 1))];
        if let Some(o) = c.iter().find(|d| d.subscription_id == "other") {
            ups.push(update(o, None, Next::Release(now + 10 * LEASE)));
        }
        complete(&store, ups).await;
    }
    let all = store
        .list_attempts("default", "s", 100, None)
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    let statuses: Vec<Option<u16>> = all.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        vec![Some(504), Some(503), Some(502), Some(501), Some(500)],
        "newest first"
    );
    for w in all.windows(2) {
        assert!(w[0].id > w[1].id);
    }
    let a = &all[0];
    assert_eq!(a.seq, seq);
    assert_eq!(a.event_id, "a");
    assert_eq!(a.target, Target::Sink);
    assert_eq!(a.at, t + 4);
    assert_eq!(a.latency_ms, 12);
    assert_eq!(a.error.as_deref(), Some("err4"));
    assert_eq!(a.response_body.as_deref(), Some("body of err4"));
    assert!(all.iter().all(|x| x.delivery_id == a.delivery_id));

    let page1 = store.list_attempts("default", "s", 2, None).await.unwrap();
    assert_eq!(page1, all[..2].to_vec());
    let page2 = store
        .list_attempts("default", "s", 2, Some(page1[1].id))
        .await
        .unwrap();
    assert_eq!(page2, all[2..4].to_vec());
    let page3 = store
        .list_attempts("default", "s", 2, Some(page2[1].id))
        .await
        .unwrap();
    assert_eq!(page3, all[4..].to_vec());
    assert!(store
        .list_attempts("default", "s", 2, Some(page3[0].id))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_attempts("default", "other", 10, None)
        .await
        .unwrap()
        .is_empty());
}

// ----------------------------------------------------------------------------- redeliver

/// Route `n` events to `default/s` and let every delivery die after two attempts.
async fn kill_all(store: &DynStore, t: i64, n: usize) {
    put_sub(store, "default", "s").await;
    for i in 0..n {
        append_one(store, "default", &format!("e{i}"), t, &["s"]).await;
    }
    for round in 0..2 {
        let c = claim(store, t + round, 100).await;
        assert_eq!(c.len(), n);
        let next = if round == 0 {
            Next::RetryAt(t + 1)
        } else {
            Next::Dead {
                dead_letter_sink: false,
            }
        };
        let ups = c
            .iter()
            .map(|d| update(d, Some(attempt_for(d, t, Some(500), "x")), next.clone()))
            .collect();
        complete(store, ups).await;
    }
    let dl = store
        .list_dead_letters("default", "s", 100, None)
        .await
        .unwrap();
    assert_eq!(dl.len(), n);
    assert!(dl.iter().all(|d| d.attempts == 2));
}

pub async fn redeliver_all(store: DynStore) {
    let t = base();
    kill_all(&store, t, 3).await;
    let now = t + 1_000;
    assert_eq!(store.redeliver("default", "s", None, now).await.unwrap(), 3);
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 3,
            dead: 0
        }
    );
    assert!(store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(claim(&store, now - 1, 10).await.is_empty(), "due at `now`");
    let c = claim(&store, now, 10).await;
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|d| d.attempts == 0), "attempts reset");
    assert!(c.iter().all(|d| d.target == Target::Sink));
    // Nothing dead any more: a second redeliver does nothing.
    assert_eq!(store.redeliver("default", "s", None, now).await.unwrap(), 0);
}

pub async fn redeliver_by_ids(store: DynStore) {
    let t = base();
    kill_all(&store, t, 3).await;
    let dl = store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap();
    let pick = dl[1].delivery_id;
    let now = t + 1_000;
    assert_eq!(
        store
            .redeliver("default", "s", Some(vec![pick, 999_999_999]), now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .redeliver("default", "other", Some(vec![dl[0].delivery_id]), now)
            .await
            .unwrap(),
        0,
        "ids only count within the named subscription"
    );
    assert_eq!(
        store
            .redeliver("default", "s", Some(vec![]), now)
            .await
            .unwrap(),
        0,
        "an empty id list redelivers nothing"
    );
    let c = claim(&store, now, 10).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].delivery_id, pick);
    assert_eq!(c[0].attempts, 0);
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 1,
            dead: 2
        }
    );
    let left: Vec<i64> = store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap()
        .iter()
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(left, vec![dl[0].delivery_id, dl[2].delivery_id]);
}

// ----------------------------------------------------------------------------- make_due, next_due, backlog

pub async fn make_due_moves_pending_forward(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    put_sub(&store, "default", "other").await;
    append_one(&store, "default", "later1", t + 60_000, &["s", "other"]).await;
    append_one(&store, "default", "later2", t + 90_000, &["s"]).await;
    append_one(&store, "default", "already", t - 5, &["s"]).await;
    assert_eq!(store.make_due("default", "s", t).await.unwrap(), 2);
    let c = claim(&store, t, 10).await;
    let mut got: Vec<(String, String)> = c
        .iter()
        .map(|d| (d.subscription_id.clone(), event_id_of(d)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("s".into(), "already".into()),
            ("s".into(), "later1".into()),
            ("s".into(), "later2".into())
        ],
        "the other subscription's delivery stays in the future"
    );
    assert_eq!(store.make_due("default", "s", t).await.unwrap(), 0);
    assert_eq!(store.make_due("default", "missing", t).await.unwrap(), 0);
}

pub async fn next_due_tracks_earliest(store: DynStore) {
    let t = base();
    assert_eq!(store.next_due().await.unwrap(), None, "empty store");
    put_sub(&store, "default", "s").await;
    put_sub(&store, "default", "off").await;
    append_one(&store, "default", "b", t + 200, &["s"]).await;
    append_one(&store, "default", "a", t + 100, &["s"]).await;
    assert_eq!(store.next_due().await.unwrap(), Some(t + 100));

    // Disabled subscriptions do not count.
    append_one(&store, "default", "c", t + 50, &["off"]).await;
    assert_eq!(store.next_due().await.unwrap(), Some(t + 50));
    set_active(&store, "default", "off", false).await;
    assert_eq!(store.next_due().await.unwrap(), Some(t + 100));

    // Leased deliveries do not count.
    let d = claim_one(&store, t + 100).await;
    assert_eq!(event_id_of(&d), "a");
    assert_eq!(store.next_due().await.unwrap(), Some(t + 200));
    // Released, it counts again at its new time.
    complete(&store, vec![update(&d, None, Next::Release(t + 150))]).await;
    assert_eq!(store.next_due().await.unwrap(), Some(t + 150));

    // Dead deliveries do not count.
    let d = claim_one(&store, t + 150).await;
    complete(
        &store,
        vec![update(
            &d,
            None,
            Next::Dead {
                dead_letter_sink: false,
            },
        )],
    )
    .await;
    assert_eq!(store.next_due().await.unwrap(), Some(t + 200));
    let d = claim_one(&store, t + 200).await;
    complete(&store, vec![update(&d, None, Next::Delivered)]).await;
    assert_eq!(store.next_due().await.unwrap(), None);
}

pub async fn backlog_counts(store: DynStore) {
    let t = base();
    assert_eq!(backlog(&store, "default", "s").await, Backlog::default());
    put_sub(&store, "default", "s").await;
    put_sub(&store, "default", "x").await;
    for i in 0..4 {
        append_one(&store, "default", &format!("e{i}"), t, &["s"]).await;
    }
    append_one(&store, "default", "other", t, &["x"]).await;
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 4,
            dead: 0
        }
    );
    let c: Vec<ClaimedDelivery> = claim(&store, t, 10)
        .await
        .into_iter()
        .filter(|d| d.subscription_id == "s")
        .collect();
    assert_eq!(c.len(), 4);
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 4,
            dead: 0
        },
        "leased deliveries are still pending"
    );
    complete(
        &store,
        vec![
            update(&c[0], None, Next::Delivered),
            update(
                &c[1],
                None,
                Next::Dead {
                    dead_letter_sink: false,
                },
            ),
            update(&c[2], None, Next::RetryAt(t + 10)),
        ],
    )
    .await;
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: 2,
            dead: 1
        }
    );
    assert_eq!(
        backlog(&store, "default", "x").await,
        Backlog {
            pending: 1,
            dead: 0
        }
    );
    assert_eq!(backlog(&store, "p2", "s").await, Backlog::default());
}

// ----------------------------------------------------------------------------- subscriptions

pub async fn delete_subscription_removes_everything(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    put_sub(&store, "default", "keep").await;
    append_one(&store, "default", "a", t, &["s", "keep"]).await;
    append_one(&store, "default", "b", t, &["s", "keep"]).await;
    let c = claim(&store, t, 10).await;
    assert_eq!(c.len(), 4);
    let ups = c
        .iter()
        .map(|d| {
            let a = attempt_for(d, t, Some(500), "x");
            let next = if event_id_of(d) == "a" {
                Next::Dead {
                    dead_letter_sink: false,
                }
            } else {
                Next::RetryAt(t + 10)
            };
            update(d, Some(a), next)
        })
        .collect();
    complete(&store, ups).await;

    assert!(store.delete_subscription("default", "s").await.unwrap());
    assert!(!store.delete_subscription("default", "s").await.unwrap());
    assert!(!store.delete_subscription("default", "never").await.unwrap());

    assert_eq!(backlog(&store, "default", "s").await, Backlog::default());
    assert!(store
        .list_attempts("default", "s", 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap()
        .is_empty());
    let subs = store.load_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].sub.id, "keep");

    // Re-creating the subscription does not bring old deliveries back.
    put_sub(&store, "default", "s").await;
    assert_eq!(backlog(&store, "default", "s").await, Backlog::default());
    let c = claim(&store, t + 10, 10).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].subscription_id, "keep");
    // The other subscription keeps its backlog and attempts.
    assert_eq!(
        backlog(&store, "default", "keep").await,
        Backlog {
            pending: 1,
            dead: 1
        }
    );
    assert_eq!(
        store
            .list_attempts("default", "keep", 10, None)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn load_subscriptions_round_trip(store: DynStore) {
    assert!(store.load_subscriptions().await.unwrap().is_empty());
    store.ensure_project("p2").await.unwrap();
    let full: Subscription = serde_json::from_value(json!({
        "id": "full",
        "sink": "https://example.com/hook",
        "source": "/orders",
        "types": ["a.b", "c.d"],
        "config": {"k": 1},
        "filters": [{"exact": {"type": "a.b"}}],
        "protocolsettings": {"method": "PUT", "headers": {"x-a": "1"}, "mode": "binary"},
        "sinkcredential": {"credentialtype": "PLAIN", "identifier": "u", "secret": "p"},
        "topics": [["orders", "eu"], []],
        "signing_secret": "whsec_abc",
        "owner": "team-a",
        "state": {"status": "disabled", "reason": "sink failing", "since": 42},
        "created_at": 7,
        "updated_at": 9
    }))
    .expect("full subscription JSON");
    let full = StoredSubscription {
        project: "p2".into(),
        sub: full,
    };
    store.put_subscription("p2", &full).await.unwrap();
    let simple = stored("default", "simple");
    store.put_subscription("default", &simple).await.unwrap();

    let mut got = store.load_subscriptions().await.unwrap();
    got.sort_by(|a, b| (&a.project, &a.sub.id).cmp(&(&b.project, &b.sub.id)));
    assert_eq!(got, vec![simple.clone(), full.clone()]);

    // put_subscription replaces.
    let mut changed = simple.clone();
    changed.sub.sink = "http://y".into();
    changed.sub.owner = Some("me".into());
    store.put_subscription("default", &changed).await.unwrap();
    let mut got = store.load_subscriptions().await.unwrap();
    got.sort_by(|a, b| (&a.project, &a.sub.id).cmp(&(&b.project, &b.sub.id)));
    assert_eq!(got, vec![changed, full]);

    // The same id in two projects is two subscriptions.
    put_sub(&store, "p2", "simple").await;
    assert_eq!(store.load_subscriptions().await.unwrap().len(), 3);
}

// ----------------------------------------------------------------------------- prune

pub async fn prune_drops_old_dedup_keys(store: DynStore) {
    let t = base();
    let old = append_one(&store, "default", "old", t, &[]).await;
    let young = append_one(&store, "default", "young", t + 100, &[]).await;
    store.prune(100, t + 50).await.unwrap();
    // Both are still inside the dedup window, but the old event (the key) was pruned.
    let out = append(
        &store,
        "default",
        WINDOW,
        vec![
            event("old", "/src", t + 200, &[]),
            event("young", "/src", t + 200, &[]),
        ],
    )
    .await;
    let again = stored_seq(out[0]);
    assert!(again > young && again != old);
    assert_eq!(out[1], AppendOutcome::Duplicate { seq: young });
}

pub async fn prune_keeps_n_attempts_per_subscription(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "a").await;
    put_sub(&store, "default", "b").await;
    put_sub(&store, "p2", "a").await;
    append_one(&store, "default", "e", t, &["a", "b"]).await;
    append_one(&store, "p2", "e", t, &["a"]).await;
    for i in 0..5 {
        let now = t + i;
        let c = claim(&store, now, 10).await;
        assert_eq!(c.len(), 3);
        let ups = c
            .iter()
            .filter(|d| i < 3 || d.subscription_id == "a")
            .map(|d| {
                let a = attempt_for(d, now, Some(500 + i as u16), "x");
                update(d, Some(a), Next::RetryAt(now + 1))
            })
            .chain(
                c.iter()
                    .filter(|d| i >= 3 && d.subscription_id != "a")
                    .map(|d| update(d, None, Next::Release(now + 1))),
            )
            .collect();
        complete(&store, ups).await;
    }
    let count = |p: &'static str, s: &'static str| {
        let store = store.clone();
        async move { store.list_attempts(p, s, 100, None).await.unwrap() }
    };
    assert_eq!(count("default", "a").await.len(), 5);
    assert_eq!(count("default", "b").await.len(), 3);
    assert_eq!(count("p2", "a").await.len(), 5);
    store.prune(2, i64::MIN).await.unwrap();
    let a = count("default", "a").await;
    let statuses: Vec<Option<u16>> = a.iter().map(|x| x.status).collect();
    assert_eq!(statuses, vec![Some(504), Some(503)], "the newest are kept");
    let b = count("default", "b").await;
    let statuses: Vec<Option<u16>> = b.iter().map(|x| x.status).collect();
    assert_eq!(statuses, vec![Some(502), Some(501)]);
    assert_eq!(count("p2", "a").await.len(), 2, "kept per project too");
    // Pruning attempts does not touch the deliveries.
    assert_eq!(backlog(&store, "default", "a").await.pending, 1);
}

/// `event_exists(seq)` looks behind the trait: does the store still hold the event?
pub async fn prune_drops_unreferenced_old_events<F>(store: DynStore, event_exists: F)
where
    F: Fn(i64) -> bool,
{
    let t = base();
    put_sub(&store, "default", "s").await;
    let unrouted = append_one(&store, "default", "unrouted", t, &[]).await;
    let delivered = append_one(&store, "default", "delivered", t, &["s"]).await;
    let pending = append_one(&store, "default", "pending", t, &["s"]).await;
    let dead = append_one(&store, "default", "dead", t, &["s"]).await;
    let young = append_one(&store, "default", "young", t + 1_000, &[]).await;
    let c = claim(&store, t, 10).await;
    assert_eq!(c.len(), 3);
    let by_id = |id: &str| c.iter().find(|d| event_id_of(d) == id).unwrap();
    complete(
        &store,
        vec![
            update(by_id("delivered"), None, Next::Delivered),
            update(
                by_id("dead"),
                None,
                Next::Dead {
                    dead_letter_sink: false,
                },
            ),
            update(by_id("pending"), None, Next::RetryAt(t + 10)),
        ],
    )
    .await;
    for seq in [unrouted, delivered, pending, dead, young] {
        assert!(event_exists(seq), "seq {seq} present before prune");
    }

    store.prune(100, t + 500).await.unwrap();

    assert!(!event_exists(unrouted), "old, never routed: dropped");
    assert!(!event_exists(delivered), "old, delivered: dropped");
    assert!(event_exists(pending), "pending delivery keeps its event");
    assert!(event_exists(dead), "dead letter keeps its event");
    assert!(event_exists(young), "younger than the cutoff: kept");
    // What the kept events are needed for still works.
    let p = claim_one(&store, t + 10).await;
    assert_eq!(p.seq, pending);
    assert_eq!(p.body, body_of("pending", "/src"));
    let dl = store
        .list_dead_letters("default", "s", 10, None)
        .await
        .unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].seq, dead);
    assert_eq!(dl[0].event["id"], "dead");
}

// ----------------------------------------------------------------------------- durability

/// `open` opens the same durable store again; the suite drops every handle in between.
pub async fn durable_across_reopen<F>(open: F)
where
    F: Fn() -> DynStore,
{
    let t = base();
    let store = open();
    store.ensure_project("p2").await.unwrap();
    put_sub(&store, "p2", "s").await;
    let seq = append_one(&store, "p2", "a", t, &["s"]).await;
    drop(store);

    let store = open();
    let subs = store.load_subscriptions().await.unwrap();
    assert_eq!(subs, vec![stored("p2", "s")]);
    let mut projects = store.list_projects().await.unwrap();
    projects.sort();
    assert_eq!(projects, vec!["default", "p2"]);
    let d = claim_one(&store, t).await;
    assert_eq!(d.seq, seq);
    assert_eq!(d.project, "p2");
    assert_eq!(d.body, body_of("a", "/src"));
    // The dedup key survived too.
    let out = append(&store, "p2", WINDOW, vec![event("a", "/src", t + 1, &[])]).await;
    assert_eq!(out, vec![AppendOutcome::Duplicate { seq }]);
}

pub async fn leases_cleared_on_reopen<F>(open: F)
where
    F: Fn() -> DynStore,
{
    let t = base();
    let store = open();
    put_sub(&store, "default", "s").await;
    append_one(&store, "default", "a", t, &["s"]).await;
    let leased = store.claim_due(t, t + 3_600_000, 10, &[]).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(claim(&store, t + 1, 10).await.is_empty(), "leased");
    drop(store);

    let store = open();
    assert_eq!(store.next_due().await.unwrap(), Some(t));
    let d = claim_one(&store, t + 1).await;
    assert_eq!(d.delivery_id, leased[0].delivery_id);
    assert_eq!(d.attempts, 0);
}

// ----------------------------------------------------------------------------- group commit

pub async fn concurrent_appends_group_commit(store: DynStore) {
    const N: usize = 200;
    let t = base();
    put_sub(&store, "default", "s").await;
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(AppendBatch {
                    project: "default".into(),
                    dedup_window_ms: WINDOW,
                    events: vec![event(&format!("c{i}"), "/src", t, &["s"])],
                })
                .await
        }));
    }
    let mut seqs = HashSet::new();
    for task in tasks {
        let out = task.await.expect("task").expect("append");
        assert_eq!(out.len(), 1);
        assert!(
            seqs.insert(stored_seq(out[0])),
            "duplicate seq {:?}",
            out[0]
        );
    }
    assert_eq!(seqs.len(), N);
    assert_eq!(
        backlog(&store, "default", "s").await,
        Backlog {
            pending: N as u64,
            dead: 0
        }
    );
    let claimed = claim(&store, t, 1_000).await;
    let claimed: HashSet<i64> = claimed.iter().map(|d| d.seq).collect();
    assert_eq!(claimed, seqs);
}

// ---------------------------------------------------------------------- claim_for (per subscription)

fn request(project: &str, sub: &str, limit: usize) -> herald_store::ClaimRequest {
    herald_store::ClaimRequest {
        project: project.into(),
        subscription_id: sub.into(),
        limit,
    }
}

/// Each subscription gets at most its own limit, oldest due first, and learns when its
/// next unleased delivery is due.
pub async fn claim_for_respects_each_limit_and_reports_next_due(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "a").await;
    put_sub(&store, "default", "b").await;
    for (i, at) in [30, 10, 20].iter().enumerate() {
        append_one(&store, "default", &format!("a{i}"), t + at, &["a"]).await;
    }
    append_one(&store, "default", "b0", t + 5, &["b"]).await;
    append_one(&store, "default", "later", t + 500, &["b"]).await;
    let got = store
        .claim_for(
            vec![request("default", "a", 2), request("default", "b", 5)],
            t + 100,
            t + LEASE,
        )
        .await
        .expect("claim_for");
    assert_eq!(got.len(), 2);
    let event_id = |d: &ClaimedDelivery| {
        serde_json::from_slice::<serde_json::Value>(&d.body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a: Vec<_> = got[0].deliveries.iter().map(event_id).collect();
    assert_eq!(a, ["a1", "a2"], "limit 2, oldest due first");
    assert_eq!(got[0].next_due, Some(t + 30), "a0 is still pending");
    let b: Vec<_> = got[1].deliveries.iter().map(event_id).collect();
    assert_eq!(b, ["b0"], "only what is due");
    assert_eq!(got[1].next_due, Some(t + 500));
    assert!(got[0]
        .deliveries
        .iter()
        .all(|d| d.subscription_id == "a" && d.project == "default"));

    // Leased rows are not claimed again; a0 is.
    let again = store
        .claim_for(vec![request("default", "a", 10)], t + 100, t + LEASE)
        .await
        .unwrap();
    let a: Vec<_> = again[0].deliveries.iter().map(event_id).collect();
    assert_eq!(a, ["a0"]);
    assert_eq!(
        again[0].next_due, None,
        "only leased rows left: their outcome says what comes next"
    );
}

/// A disabled subscription's deliveries are never claimed and not in the pending list,
/// but still count as pending; enabling brings them back.
pub async fn claim_for_skips_disabled_subscriptions(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    set_active(&store, "default", "s", false).await;
    append_one(&store, "default", "x", t, &["s"]).await;
    let got = store
        .claim_for(vec![request("default", "s", 10)], t + 1, t + LEASE)
        .await
        .unwrap();
    assert!(got[0].deliveries.is_empty());
    assert_eq!(got[0].next_due, None);
    assert!(store.pending_subscriptions().await.unwrap().is_empty());
    assert_eq!(
        backlog(&store, "default", "s").await.pending,
        1,
        "parked still counts as pending"
    );
    set_active(&store, "default", "s", true).await;
    assert_eq!(
        store.pending_subscriptions().await.unwrap(),
        vec![("default".to_string(), "s".to_string(), t)]
    );
    let got = store
        .claim_for(vec![request("default", "s", 10)], t + 1, t + LEASE)
        .await
        .unwrap();
    assert_eq!(got[0].deliveries.len(), 1);
}

/// The pending list names each subscription once with its earliest due time.
pub async fn pending_subscriptions_lists_earliest_due(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "a").await;
    put_sub(&store, "p2", "b").await;
    store.ensure_project("p2").await.unwrap();
    append_one(&store, "default", "1", t + 20, &["a"]).await;
    append_one(&store, "default", "2", t + 10, &["a"]).await;
    append_one(&store, "p2", "3", t + 7, &["b"]).await;
    let mut got = store.pending_subscriptions().await.unwrap();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("default".to_string(), "a".to_string(), t + 10),
            ("p2".to_string(), "b".to_string(), t + 7)
        ]
    );
}

/// Updating a deleted subscription writes nothing and says so.
pub async fn update_never_recreates_a_deleted_subscription(store: DynStore) {
    put_sub(&store, "default", "s").await;
    let mut s = stored("default", "s");
    s.sub.owner = Some("team".into());
    assert!(store.update_subscription("default", &s).await.unwrap());
    let loaded = store.load_subscriptions().await.unwrap();
    assert_eq!(loaded[0].sub.owner.as_deref(), Some("team"));
    assert!(store.delete_subscription("default", "s").await.unwrap());
    assert!(!store.update_subscription("default", &s).await.unwrap());
    assert!(store.load_subscriptions().await.unwrap().is_empty());
}

/// Creating never overwrites: of two inserts with one id, only the first writes.
pub async fn insert_subscription_never_overwrites(store: DynStore) {
    let mut first = stored("default", "s");
    first.sub.owner = Some("first".into());
    let mut second = stored("default", "s");
    second.sub.owner = Some("second".into());
    let (a, b) = tokio::join!(
        store.insert_subscription("default", &first),
        store.insert_subscription("default", &second)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|x| **x).count(), 1);
    let loaded = store.load_subscriptions().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(
        store.insert_subscription("other", &first).await.unwrap(),
        "ids are per project"
    );
}

/// Signed sources round-trip (secrets included: the API, not the store, hides them).
pub async fn sources_round_trip(store: DynStore) {
    let src: herald_core::source::SignedSource = serde_json::from_value(json!({
        "source": "src_1", "secrets": ["secret-one", "secret-two"],
        "signature": {"header": "x-sig", "encoding": "hex"}
    }))
    .unwrap();
    store.put_source("default", &src).await.unwrap();
    store.put_source("default", &src).await.unwrap();
    assert_eq!(
        store.load_sources().await.unwrap(),
        vec![("default".to_string(), src.clone())]
    );
    assert!(store.delete_source("default", "src_1").await.unwrap());
    assert!(!store.delete_source("default", "src_1").await.unwrap());
    assert!(store.load_sources().await.unwrap().is_empty());
}

/// Scheduled events wait outside the log, come out due-first, and fire exactly once:
/// the append and the forgetting of the schedule are one transaction.
pub async fn scheduled_events_fire_once_in_due_order(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    let mut ids = Vec::new();
    for (i, due) in [t + 2_000, t + 1_000, t + 60_000].into_iter().enumerate() {
        let id = store
            .schedule(NewScheduled {
                project: "default".into(),
                topic: "a/b".into(),
                due_at: due,
                body: body_of(&format!("q{i}"), "/queue"),
            })
            .await
            .expect("schedule");
        ids.push(id);
    }
    assert_eq!(store.next_scheduled().await.unwrap(), Some(t + 1_000));
    assert!(store.due_scheduled(t, 10).await.unwrap().is_empty());
    let due = store.due_scheduled(t + 5_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]],
        "earliest first, the later one not yet"
    );
    assert_eq!(due[0].topic, "a/b");
    assert_eq!(due[0].body, body_of("q1", "/queue"));
    assert_eq!(store.due_scheduled(t + 5_000, 1).await.unwrap().len(), 1);

    let fired: Vec<(i64, NewEvent)> = due
        .iter()
        .map(|d| {
            let id = format!("q-{}", d.id);
            (d.id, event(&id, "/queue", d.due_at, &["s"]))
        })
        .collect();
    let fire = |fired: Vec<(i64, NewEvent)>| {
        let store = store.clone();
        async move {
            store
                .fire_scheduled("default", WINDOW, fired)
                .await
                .unwrap()
        }
    };
    assert_eq!(fire(fired.clone()).await, 2);
    // Fired again (another node, or a retry after a crash): nothing more is appended.
    assert_eq!(fire(fired).await, 0);
    // A scheduled event repeating a (source, id) seen within the window is a duplicate.
    let again = store
        .schedule(NewScheduled {
            project: "default".into(),
            topic: String::new(),
            due_at: t,
            body: body_of("q-again", "/queue"),
        })
        .await
        .unwrap();
    let repeat = event(&format!("q-{}", ids[1]), "/queue", t + 10, &["s"]);
    assert_eq!(fire(vec![(again, repeat)]).await, 0);
    assert!(
        store.due_scheduled(t, 10).await.unwrap().is_empty(),
        "and it is forgotten"
    );
    assert_eq!(backlog(&store, "default", "s").await.pending, 2);
    assert_eq!(store.next_scheduled().await.unwrap(), Some(t + 60_000));
    assert!(store.due_scheduled(t + 5_000, 10).await.unwrap().is_empty());
}

/// A scheduled event survives closing and reopening the store.
pub async fn scheduled_events_survive_reopen<F>(open: F)
where
    F: Fn() -> DynStore,
{
    let t = base();
    let store = open();
    store
        .schedule(NewScheduled {
            project: "default".into(),
            topic: String::new(),
            due_at: t + 500,
            body: body_of("later", "/queue"),
        })
        .await
        .unwrap();
    drop(store);
    let store = open();
    let due = store.due_scheduled(t + 500, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].body, body_of("later", "/queue"));
}

/// An Audit emitter's log reads back by time range (start included, end excluded), per
/// emitter, and goes with its subscription.
pub async fn audit_log_reads_by_range(store: DynStore) {
    put_sub(&store, "default", "a").await;
    for (at, body) in [(100, "one"), (200, "two"), (300, "three")] {
        store
            .append_audit("default", "a", at, body.as_bytes().to_vec())
            .await
            .unwrap();
    }
    store
        .append_audit("default", "other", 200, b"x".to_vec())
        .await
        .unwrap();
    let read = |start, end, limit| {
        let store = store.clone();
        async move {
            store
                .read_audit("default", "a", start, end, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|(at, b)| (at, String::from_utf8(b).unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        read(100, 300, 10).await,
        vec![(100, "one".to_string()), (200, "two".to_string())]
    );
    assert_eq!(read(0, i64::MAX, 1).await, vec![(100, "one".to_string())]);
    assert!(read(301, 400, 10).await.is_empty());
    assert!(store.delete_subscription("default", "a").await.unwrap());
    assert!(read(0, i64::MAX, 10).await.is_empty());
}

/// A held delivery (a synchronous request in progress) is not leased before its time;
/// settled as delivered it is gone, settled as failed it is due at the retry time.
pub async fn held_deliveries_wait_and_settle(store: DynStore) {
    let t = base();
    put_sub(&store, "default", "s").await;
    let claim = |now: i64| {
        let store = store.clone();
        async move {
            let req = herald_store::ClaimRequest {
                project: "default".into(),
                subscription_id: "s".into(),
                limit: 10,
            };
            store.claim_for(vec![req], now, now + LEASE).await.unwrap()[0]
                .deliveries
                .clone()
        }
    };
    let mut ok = event("ok", "/src", t, &[]);
    ok.held = vec![("s".into(), t + 60_000)];
    let mut failed = event("failed", "/src", t, &[]);
    failed.held = vec![("s".into(), t + 60_000)];
    let out = append(&store, "default", WINDOW, vec![ok, failed]).await;
    let (ok_seq, failed_seq) = (stored_seq(out[0]), stored_seq(out[1]));
    assert!(claim(t).await.is_empty(), "held: not due yet");
    assert_eq!(store.backlog("default", "s").await.unwrap().pending, 2);

    assert!(store
        .settle_held("default", "s", ok_seq, None)
        .await
        .unwrap());
    assert!(store
        .settle_held("default", "s", failed_seq, Some(t + 5))
        .await
        .unwrap());
    assert_eq!(store.backlog("default", "s").await.unwrap().pending, 1);
    assert!(claim(t + 4).await.is_empty());
    let due = claim(t + 5).await;
    assert_eq!((due.len(), due[0].seq, due[0].attempts), (1, failed_seq, 1));
    assert!(
        !store
            .settle_held("default", "s", ok_seq, None)
            .await
            .unwrap(),
        "gone"
    );
}

// ----------------------------------------------------------------------------- workflows

/// Append one event to `default` with `WINDOW`.
async fn add(store: &DynStore, event: NewEvent) -> AppendOutcome {
    append(store, "default", WINDOW, vec![event]).await[0]
}

async fn save(store: &DynStore, id: &str, awaits: &[&str], mode: SaveMode) -> Option<i64> {
    store
        .save_workflow(
            "default",
            id,
            json!({"id": id}).to_string(),
            awaits.iter().map(|s| s.to_string()).collect(),
            mode,
        )
        .await
        .expect("save_workflow")
}

/// An event that starts `instance` of workflow `wf` (version 1).
fn starting(id: &str, at: i64, wf: &str, instance: &str) -> NewEvent {
    let mut e = event(id, "/src", at, &[]);
    e.flow.starts.push(NewInstance {
        id: instance.to_string(),
        workflow: wf.to_string(),
        version: 1,
        context: "{}".into(),
        depth: 0,
    });
    e
}

fn waking(id: &str, at: i64, instance: &str, ty: &str) -> NewEvent {
    let mut e = event(id, "/src", at, &[]);
    e.ty = ty.to_string();
    e.flow.wake = Some(instance.to_string());
    e
}

fn change_of(row: &InstanceRow, state: InstanceState, now: i64) -> InstanceChange {
    InstanceChange {
        next: InstanceRow {
            state,
            attempt: 0,
            waiting_for: Vec::new(),
            deadline: None,
            due_at: None,
            error: None,
            updated_at: now,
            ..row.clone()
        },
        expect_rev: row.rev,
        consume: Vec::new(),
        history: Vec::new(),
        publish: Vec::new(),
        dedup_window_ms: WINDOW,
    }
}

pub async fn workflow_versions_and_save_modes(store: DynStore) {
    assert_eq!(save(&store, "w", &[], SaveMode::Replace).await, None);
    assert_eq!(save(&store, "w", &[], SaveMode::Create).await, Some(1));
    assert_eq!(save(&store, "w", &[], SaveMode::Create).await, None);
    assert_eq!(save(&store, "w", &[], SaveMode::Replace).await, Some(2));
    assert_eq!(save(&store, "w", &[], SaveMode::Upsert).await, Some(3));
    let latest = store
        .get_workflow("default", "w", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 3);
    assert!(store
        .get_workflow("default", "w", Some(1))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.list_workflows(Some("default")).await.unwrap().len(),
        1
    );
    assert!(store.delete_workflow("default", "w").await.unwrap());
    assert!(!store.delete_workflow("default", "w").await.unwrap());
    assert!(store
        .get_workflow("default", "w", None)
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .get_workflow("default", "w", Some(2))
            .await
            .unwrap()
            .is_some(),
        "instances still read their version"
    );
    assert!(store.list_workflows(None).await.unwrap().is_empty());
    // Created again, numbering goes on, so old instances keep their own version.
    assert_eq!(save(&store, "w", &[], SaveMode::Create).await, Some(4));
}

pub async fn wakes_are_kept_or_refused_whole(store: DynStore) {
    let t = base();
    save(&store, "w", &["paid", "shipped"], SaveMode::Create).await;
    add(&store, starting("s1", t, "w", "i1")).await;
    let row = store.get_instance("default", "i1").await.unwrap().unwrap();
    assert_eq!(row.state, InstanceState::Starting);
    assert_eq!(row.due_at, Some(t));
    assert_eq!(store.due_instances(t, 10).await.unwrap().len(), 1);

    let refused = |index, refusal| {
        move |r: herald_store::Result<Vec<AppendOutcome>>| match r {
            Err(StoreError::Wake {
                index: i,
                refusal: r,
                ..
            }) => assert_eq!((i, r), (index, refusal)),
            other => panic!("expected a refused wake, got {other:?}"),
        }
    };
    let batch = |events| AppendBatch {
        project: "default".into(),
        dedup_window_ms: WINDOW,
        events,
    };
    // One bad wake refuses the whole batch.
    refused(1, WakeRefusal::UnknownInstance)(
        store
            .append(batch(vec![
                waking("a", t, "i1", "paid"),
                waking("b", t, "nope", "paid"),
            ]))
            .await,
    );
    refused(0, WakeRefusal::NotAwaited)(
        store
            .append(batch(vec![waking("c", t, "i1", "other")]))
            .await,
    );
    assert!(store.kept_events("default", "i1").await.unwrap().is_empty());
    // "a" was not stored: it is not a duplicate now.
    let out = add(&store, waking("a", t, "i1", "paid")).await;
    assert!(matches!(out, AppendOutcome::Stored { .. }));
    let out = add(&store, waking("a", t, "i1", "paid")).await;
    assert!(matches!(out, AppendOutcome::Duplicate { .. }));
    let kept = store.kept_events("default", "i1").await.unwrap();
    assert_eq!(kept.len(), 1, "a duplicate wakes nothing");

    // Waiting for "paid": a kept "paid" makes it due as soon as it waits.
    let mut ch = change_of(&row, InstanceState::Waiting, t + 1);
    ch.next.waiting_for = vec!["paid".into()];
    ch.next.due_at = Some(t + 1_000_000);
    assert!(store.change_instance(ch).await.unwrap().is_some());
    let row = store.get_instance("default", "i1").await.unwrap().unwrap();
    assert_eq!((row.rev, row.due_at), (1, Some(t + 1)));

    // A start event ignores its address for the workflows it starts, and is not refused
    // for an address nobody knows.
    let mut both = starting("s2", t, "w", "i2");
    both.ty = "paid".into();
    both.flow.wake = Some("i1".into());
    let mut stray = starting("s3", t, "w", "i3");
    stray.flow.wake = Some("nope".into());
    append(&store, "default", WINDOW, vec![both, stray]).await;
    let kept_now = store.kept_events("default", "i1").await.unwrap().len();
    assert_eq!(
        kept_now, 1,
        "no new kept event for an instance of the started workflow"
    );

    // A failed instance still takes wakes (it may be retried).
    let failed = change_of(&row, InstanceState::Failed, t + 2);
    assert!(store.change_instance(failed).await.unwrap().is_some());
    let row = store.get_instance("default", "i1").await.unwrap().unwrap();
    add(&store, waking("f1", t, "i1", "shipped")).await;
    assert_eq!(store.kept_events("default", "i1").await.unwrap().len(), 2);

    // A finished instance refuses wakes, except duplicates of what it took.
    let done = change_of(&row, InstanceState::Completed, t + 2);
    assert!(store.change_instance(done).await.unwrap().is_some());
    assert!(store.kept_events("default", "i1").await.unwrap().is_empty());
    refused(0, WakeRefusal::Finished(InstanceState::Completed))(
        store
            .append(batch(vec![waking("d", t, "i1", "paid")]))
            .await,
    );
    let out = add(&store, waking("a", t, "i1", "paid")).await;
    assert!(matches!(out, AppendOutcome::Duplicate { .. }));
}

pub async fn instance_changes_apply_once(store: DynStore) {
    let t = base();
    save(&store, "w", &["tick"], SaveMode::Create).await;
    add(&store, starting("s1", t, "w", "i1")).await;
    add(&store, waking("k1", t, "i1", "tick")).await;
    let row = store.get_instance("default", "i1").await.unwrap().unwrap();
    let kept = store.kept_events("default", "i1").await.unwrap();

    // Two changes from the same read consuming the same event: only the first applies.
    let mut first = change_of(&row, InstanceState::Running, t);
    first.consume = vec![kept[0].id];
    first.next.step = 1;
    first.history = vec![HistoryEntry {
        at: t,
        step: Some(0),
        kind: "woken".into(),
        detail: json!({"id": "k1"}),
    }];
    first.publish = vec![event("out-1", "/w", t, &[])];
    let second = first.clone();
    let (a, b) = tokio::join!(store.change_instance(first), store.change_instance(second));
    let applied = [a.unwrap(), b.unwrap()];
    assert_eq!(applied.iter().filter(|x| x.is_some()).count(), 1);
    let row = store.get_instance("default", "i1").await.unwrap().unwrap();
    assert_eq!((row.step, row.rev), (1, 1));
    assert!(store.kept_events("default", "i1").await.unwrap().is_empty());
    assert_eq!(
        store.instance_history("default", "i1").await.unwrap().len(),
        1
    );

    // A change that consumes an event already gone is refused even at the right rev.
    let mut stale = change_of(&row, InstanceState::Running, t);
    stale.consume = vec![kept[0].id];
    assert!(store.change_instance(stale).await.unwrap().is_none());

    // Listing by state, and the due index.
    let listed = store
        .list_instances("default", "w", Some(InstanceState::Running), 10, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(store
        .list_instances("default", "w", Some(InstanceState::Waiting), 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(store.due_instances(t + 10, 10).await.unwrap().is_empty());
    assert_eq!(store.next_instance_due().await.unwrap(), None);

    // Paging by id, newest first, and counts by state.
    for n in 2..=4 {
        let id = format!("i{n}");
        add(&store, starting(&format!("s{n}"), t, "w", &id)).await;
    }
    let page = store
        .list_instances("default", "w", None, 2, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["i4", "i3"]);
    let page = store
        .list_instances("default", "w", None, 10, Some("i3"))
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["i2", "i1"]);
    let mut counts = store.instance_counts("default", "w").await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [(InstanceState::Running, 1), (InstanceState::Starting, 3)]
    );
}

pub async fn instances_survive_reopen<F>(open: F)
where
    F: Fn() -> DynStore,
{
    let t = base();
    {
        let store = open();
        save(&store, "w", &["tick"], SaveMode::Create).await;
        add(&store, starting("s1", t, "w", "i1")).await;
        add(&store, waking("k1", t, "i1", "tick")).await;
    }
    let store = open();
    let row = store.get_instance("default", "i1").await.unwrap().unwrap();
    assert_eq!(row.state, InstanceState::Starting);
    assert_eq!(store.kept_events("default", "i1").await.unwrap().len(), 1);
    assert_eq!(store.next_instance_due().await.unwrap(), Some(t));
}

pub async fn finished_instances_are_pruned_after_retention(store: DynStore) {
    let t = base();
    save(&store, "w", &["tick"], SaveMode::Create).await;
    for (n, state) in [
        (1, InstanceState::Completed),
        (2, InstanceState::Failed),
        (3, InstanceState::Cancelled),
        (4, InstanceState::Waiting),
    ] {
        let id = format!("i{n}");
        add(&store, starting(&format!("s{n}"), t, "w", &id)).await;
        let row = store.get_instance("default", &id).await.unwrap().unwrap();
        let mut ch = change_of(&row, state, t);
        ch.history = vec![HistoryEntry {
            at: t,
            step: None,
            kind: "x".into(),
            detail: json!(null),
        }];
        assert!(store.change_instance(ch).await.unwrap().is_some());
    }
    // Nothing finished before `t`: nothing goes.
    assert_eq!(store.prune_instances(t).await.unwrap(), 0);
    assert_eq!(store.prune_instances(t + 1).await.unwrap(), 3);
    for n in 1..=3 {
        let id = format!("i{n}");
        assert!(store.get_instance("default", &id).await.unwrap().is_none());
        assert!(store
            .instance_history("default", &id)
            .await
            .unwrap()
            .is_empty());
    }
    assert!(
        store.get_instance("default", "i4").await.unwrap().is_some(),
        "a sleeping one stays"
    );

    // More than one batch of them (the store works in batches of 500).
    let mut start = event("bulk", "/src", t, &[]);
    for n in 0..1_100 {
        start.flow.starts.push(NewInstance {
            id: format!("bulk-{n:04}"),
            workflow: "w".into(),
            version: 1,
            context: "{}".into(),
            depth: 0,
        });
    }
    add(&store, start).await;
    let mut finishing = tokio::task::JoinSet::new();
    for n in 0..1_100 {
        let store = store.clone();
        finishing.spawn(async move {
            let id = format!("bulk-{n:04}");
            let row = store.get_instance("default", &id).await.unwrap().unwrap();
            let ch = change_of(&row, InstanceState::Completed, t);
            assert!(store.change_instance(ch).await.unwrap().is_some());
        });
    }
    while let Some(done) = finishing.join_next().await {
        done.unwrap();
    }
    assert_eq!(store.prune_instances(t + 1).await.unwrap(), 1_100);
    assert!(store.get_instance("default", "i4").await.unwrap().is_some());
    assert_eq!(
        store.instance_history("default", "i4").await.unwrap().len(),
        1
    );
}

//! Runs the store conformance suite (`suite/mod.rs`) against the embedded SQLite store,
//! each check on a fresh data directory.

mod suite;

use std::path::Path;
use std::sync::Arc;

use herald_store::sqlite::SqliteStore;
use suite::DynStore;

fn open(dir: &Path) -> DynStore {
    Arc::new(SqliteStore::open(dir).expect("open sqlite store"))
}

/// One `#[tokio::test]` per suite check that takes a fresh store.
macro_rules! conformance {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            $(#[$meta])*
            async fn $name() {
                let dir = tempfile::tempdir().expect("tempdir");
                suite::$name(open(dir.path())).await;
            }
        )*
    };
}

conformance! {
    projects_default_and_ensure,
    append_seqs_increase,
    append_dedup_within_window,
    append_duplicate_creates_no_delivery,
    append_stored_again_after_window,
    append_dedup_key_is_project_source_id,
    append_routes_deliveries,
    claim_only_due,
    claim_only_active_subscriptions,
    claim_respects_limit,
    claim_respects_skip,
    claim_lease_hides_until_expired,
    claim_takes_oldest_due_first,
    claim_returns_in_due_order,
    claim_for_respects_each_limit_and_reports_next_due,
    claim_for_skips_disabled_subscriptions,
    pending_subscriptions_lists_earliest_due,
    update_never_recreates_a_deleted_subscription,
    sources_round_trip,
    scheduled_events_fire_once_in_due_order,
    audit_log_reads_by_range,
    workflow_versions_and_save_modes,
    wakes_are_kept_or_refused_whole,
    instance_changes_apply_once,
    insert_subscription_never_overwrites,
    held_deliveries_wait_and_settle,
    finished_instances_are_pruned_after_retention,
    complete_delivered_removes,
    complete_retry_at,
    complete_dead_lists_dead_letter,
    dead_letters_paging,
    complete_dead_with_dead_letter_sink,
    complete_release_keeps_attempts,
    attempts_newest_first_with_paging,
    redeliver_all,
    redeliver_by_ids,
    make_due_moves_pending_forward,
    next_due_tracks_earliest,
    backlog_counts,
    delete_subscription_removes_everything,
    load_subscriptions_round_trip,
    prune_drops_old_dedup_keys,
    prune_keeps_n_attempts_per_subscription,
    concurrent_appends_group_commit,
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_drops_unreferenced_old_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("herald.db");
    let store = open(dir.path());
    let event_exists = move |seq: i64| {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        conn.query_row("SELECT COUNT(*) FROM events WHERE seq = ?1", [seq], |r| {
            r.get::<_, i64>(0)
        })
        .expect("count events")
            == 1
    };
    suite::prune_drops_unreferenced_old_events(store, event_exists).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_events_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    suite::scheduled_events_survive_reopen(|| open(dir.path())).await;
}

#[tokio::test]
async fn durable_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::durable_across_reopen(|| open(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_cleared_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::leases_cleared_on_reopen(|| open(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::instances_survive_reopen(|| open(dir.path())).await;
}

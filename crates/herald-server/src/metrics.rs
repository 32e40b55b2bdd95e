//! Process-wide counters and `GET /metrics`, rendered by hand in the Prometheus text
//! exposition format (version 0.0.4): `# HELP`, `# TYPE`, then one line per sample.
//! Counters are atomics bumped by the handlers; gauges are read when rendering.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The counters of this process.
pub static METRICS: Metrics = Metrics::new();

/// Counters kept by the server itself (filter evaluation errors are counted by
/// `herald_filter`, subscriptions are read from the registry).
pub struct Metrics {
    ingested: AtomicU64,
    duplicates: AtomicU64,
    /// Ingest requests answered with a problem, by HTTP status.
    rejected: Mutex<BTreeMap<u16, u64>>,
}

/// Values read at render time from outside these counters.
pub struct Gauges {
    pub subscriptions: usize,
    pub filter_evaluation_errors: u64,
    /// Events routed, and subscriptions the routing index handed to the full match.
    pub routing: (u64, u64),
    pub workflows: herald_flow::FlowCounters,
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            ingested: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: Mutex::new(BTreeMap::new()),
        }
    }

    /// Count the outcome of one accepted ingest request.
    pub fn record_ingest(&self, stored: u64, duplicates: u64) {
        self.ingested.fetch_add(stored, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    }

    /// Count one ingest request answered with a problem of this status.
    pub fn record_rejected(&self, status: u16) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let single = |v: u64| [(String::new(), v)];
        family(
            "herald_events_ingested_total",
            "counter",
            "Events accepted and stored (duplicates not included).",
            &single(self.ingested.load(Ordering::Relaxed)),
        );
        family(
            "herald_events_duplicate_total",
            "counter",
            "Events acknowledged as duplicates of an event within the dedup window.",
            &single(self.duplicates.load(Ordering::Relaxed)),
        );
        let rejected: Vec<(String, u64)> = self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), *n))
            .collect();
        family(
            "herald_ingest_requests_rejected_total",
            "counter",
            "Ingest requests answered with a problem, by HTTP status.",
            &rejected,
        );
        family(
            "herald_filter_evaluation_errors_total",
            "counter",
            "Filter evaluations that failed (CESQL error, FEEL null) and so did not match.",
            &single(gauges.filter_evaluation_errors),
        );
        family(
            "herald_routed_events_total",
            "counter",
            "Events routed to subscriptions (ingested or raised by Herald).",
            &single(gauges.routing.0),
        );
        family(
            "herald_routing_candidates_total",
            "counter",
            "Subscriptions the routing index could not rule out, so their full match ran.",
            &single(gauges.routing.1),
        );
        family(
            "herald_subscriptions",
            "gauge",
            "Subscriptions across all projects, enabled or not.",
            &single(gauges.subscriptions as u64),
        );
        let w = &gauges.workflows;
        family(
            "herald_workflow_instances_total",
            "counter",
            "Workflow instances started, completed and failed, by event.",
            &[
                ("{event=\"started\"}".into(), w.started),
                ("{event=\"completed\"}".into(), w.completed),
                ("{event=\"failed\"}".into(), w.failed),
            ],
        );
        family(
            "herald_workflow_wakes_total",
            "counter",
            "Events that woke a workflow wait step (of an awaited type, passing its filter).",
            &single(w.wakes),
        );
        family(
            "herald_workflow_actions_total",
            "counter",
            "Workflow action outcomes recorded, by outcome.",
            &[
                ("{outcome=\"succeeded\"}".into(), w.actions_succeeded),
                ("{outcome=\"failed\"}".into(), w.actions_failed),
            ],
        );
        family(
            "herald_workflow_conflicts_total",
            "counter",
            "Instance changes refused because the instance had moved on meanwhile.",
            &single(w.conflicts),
        );
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `GET /metrics`.
pub async fn handler(State(app): State<Arc<AppState>>) -> Response {
    let gauges = Gauges {
        subscriptions: app.registry.count(),
        filter_evaluation_errors: herald_filter::dialects::evaluation_errors(),
        routing: app.registry.routing_counts(),
        workflows: app.flow.counters(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        METRICS.render(&gauges),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_exposition_format() {
        let m = Metrics::new();
        m.record_ingest(3, 1);
        m.record_ingest(2, 0);
        m.record_rejected(415);
        m.record_rejected(400);
        m.record_rejected(400);
        let text = m.render(&Gauges {
            subscriptions: 4,
            filter_evaluation_errors: 7,
            routing: (3, 12),
            workflows: herald_flow::FlowCounters {
                started: 2,
                wakes: 5,
                actions_failed: 1,
                ..Default::default()
            },
        });
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "herald_events_ingested_total 5",
                "herald_events_duplicate_total 1",
                "herald_ingest_requests_rejected_total{status=\"400\"} 2",
                "herald_ingest_requests_rejected_total{status=\"415\"} 1",
                "herald_filter_evaluation_errors_total 7",
                "herald_routed_events_total 3",
                "herald_routing_candidates_total 12",
                "herald_subscriptions 4",
                "herald_workflow_instances_total{event=\"started\"} 2",
                "herald_workflow_instances_total{event=\"completed\"} 0",
                "herald_workflow_instances_total{event=\"failed\"} 0",
                "herald_workflow_wakes_total 5",
                "herald_workflow_actions_total{outcome=\"succeeded\"} 0",
                "herald_workflow_actions_total{outcome=\"failed\"} 1",
                "herald_workflow_conflicts_total 0",
            ]
        );
        assert!(text.contains("# TYPE herald_subscriptions gauge\n"));
        assert!(text.contains("# TYPE herald_events_ingested_total counter\n"));
        assert_eq!(text.matches("# HELP ").count(), 11);
        assert!(text.ends_with('\n'));
    }
}

//! Getting events to subscribers: the in-memory subscription [`registry::Registry`] with
//! its routing index, the sinks that hand an event over (webhook today), and the
//! [`engine::Engine`] that leases due deliveries from the store, attempts them with bounded
//! concurrency, and moves each on: delivered, retried later, dead-lettered, or paused by
//! auto-disable.

pub mod engine;
pub mod registry;
pub mod sinks;
pub mod tls;

pub use engine::{Engine, EngineConfig};
pub use registry::Registry;

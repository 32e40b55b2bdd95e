//! Workflows ("value streams"): instances started by an event, running `action`, `emit`,
//! `delay` and `wait` steps, and sleeping on disk until a timer or an event addressed to
//! them (`instanceid`) wakes them.
//!
//! - `compiled`: a definition version with its FEEL expressions compiled, and the index
//!   of start triggers that ingest consults.
//! - `machine`: the pure state machine: from an instance, its definition, its kept
//!   events and the clock, the next change.
//! - `engine`: the I/O loop: finds due instances, runs actions, commits changes.

pub mod compiled;
pub mod engine;
pub mod machine;

pub use compiled::{CompiledWorkflow, StartIndex};
pub use engine::{FlowCounters, FlowEngine, Hub};

/// Source of the events Herald announces about instances (`herald.workflow.*`). Events
/// from it never start an instance, so a workflow cannot start on its own announcement.
pub const ANNOUNCE_SOURCE: &str = "herald/workflows";

/// The extension attribute that addresses an event to an instance.
pub const INSTANCE_ATTRIBUTE: &str = "instanceid";

/// The extension attribute counting how many workflow emits led to an event; an event
/// at [`MAX_DEPTH`] starts no instance, so workflows that start each other stop.
pub const DEPTH_ATTRIBUTE: &str = "heralddepth";
pub const MAX_DEPTH: i64 = 16;

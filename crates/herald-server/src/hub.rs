//! How Herald's own components publish into the hub: an event becomes an append routed
//! like an ingested one, and its deliveries are handed to the delivery engine once
//! committed. The workflow engine publishes through this.

use std::sync::Arc;

use herald_core::{Event, Topic};
use herald_delivery::{Engine, Registry};
use herald_store::NewEvent;

/// An event as an append to `topic`, with the subscriptions it is routed to. Its
/// workflow routing is left to the caller.
pub fn routed(
    registry: &Registry,
    project: &str,
    topic: &Topic,
    event: &Event,
    received_at: i64,
) -> NewEvent {
    NewEvent {
        id: event.id.clone(),
        source: event.source.clone(),
        ty: event.ty.clone(),
        topic: topic.as_path(),
        received_at,
        body: event.to_json_bytes(),
        deliveries: registry.route(project, topic, event),
        held: Vec::new(),
        flow: Default::default(),
    }
}

/// The subscriptions and delivery engine, as the workflow engine sees them.
pub struct DeliveryHub {
    pub registry: Arc<Registry>,
    pub engine: Arc<Engine>,
}

impl herald_flow::Hub for DeliveryHub {
    fn route(&self, project: &str, event: &Event, received_at: i64) -> NewEvent {
        routed(&self.registry, project, &Topic::root(), event, received_at)
    }

    fn committed(&self, project: &str, events: &[NewEvent]) {
        for e in events {
            for id in &e.deliveries {
                self.engine.notify(project, id, e.received_at);
            }
        }
    }
}

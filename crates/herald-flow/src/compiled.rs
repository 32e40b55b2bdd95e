//! A workflow definition version ready to run (its FEEL compiled once), and the start
//! index: per project and event type, the workflows an event starts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use herald_core::event::{Event, ExtValue};
use herald_core::workflow::{DefinitionError, StepKind, WorkflowDefinition};
use herald_filter::dialects::feel_matches;
use herald_filter::feel::Expression;
use herald_store::NewInstance;
use serde_json::{Map, Value};

use crate::{ANNOUNCE_SOURCE, DEPTH_ATTRIBUTE, INSTANCE_ATTRIBUTE, MAX_DEPTH};

#[derive(Debug)]
pub struct CompiledWorkflow {
    pub project: String,
    pub version: i64,
    pub def: WorkflowDefinition,
    start_filter: Option<Expression>,
    /// Per step: the wait filter, or the emit data expression.
    step_exprs: Vec<Option<Expression>>,
}

impl CompiledWorkflow {
    /// Compile a valid definition's expressions; a bad one is refused with its path.
    pub fn compile(
        project: &str,
        version: i64,
        def: WorkflowDefinition,
    ) -> Result<CompiledWorkflow, DefinitionError> {
        let parse = |src: &Option<String>, path: String| {
            src.as_deref()
                .map(|s| {
                    Expression::parse(s).map_err(|e| DefinitionError {
                        path: path.clone(),
                        message: format!("invalid FEEL: {e}"),
                    })
                })
                .transpose()
        };
        let start_filter = parse(&def.start.filter, "start.filter".into())?;
        let mut step_exprs = Vec::with_capacity(def.steps.len());
        for (i, step) in def.steps.iter().enumerate() {
            step_exprs.push(match &step.kind {
                StepKind::Wait(w) => parse(&w.filter, format!("steps[{i}].wait.filter"))?,
                StepKind::Emit(e) => parse(&e.data, format!("steps[{i}].emit.data"))?,
                _ => None,
            });
        }
        Ok(CompiledWorkflow {
            project: project.to_string(),
            version,
            def,
            start_filter,
            step_exprs,
        })
    }

    pub fn id(&self) -> &str {
        &self.def.id
    }

    /// Whether `event` starts an instance of this workflow.
    pub fn starts_on(&self, event: &Event) -> bool {
        if event.ty != self.def.start.ty || event.source == ANNOUNCE_SOURCE {
            return false;
        }
        if self
            .def
            .start
            .source
            .as_ref()
            .is_some_and(|s| *s != event.source)
        {
            return false;
        }
        match &self.start_filter {
            Some(f) => feel_matches(f, event),
            None => true,
        }
    }

    /// Whether a kept event passes step `i`'s wait filter.
    pub fn wait_accepts(&self, i: usize, event: &Event) -> bool {
        match self.step_exprs.get(i).and_then(Option::as_ref) {
            Some(f) => feel_matches(f, event),
            None => true,
        }
    }

    /// The data an emit step publishes: its expression over the context, or the context.
    pub fn emit_data(&self, i: usize, context: &Map<String, Value>) -> Value {
        let ctx = Value::Object(context.clone());
        match self.step_exprs.get(i).and_then(Option::as_ref) {
            Some(e) => e.evaluate_json(&ctx, &Map::new()),
            None => ctx,
        }
    }
}

/// An event's payload as a JSON value (`null` without data).
pub fn payload(event: &Event) -> Value {
    event
        .data
        .as_ref()
        .map_or(Value::Null, |d| d.to_json_value())
}

/// How many workflow emits led to `event` (0 for events from outside).
pub fn depth(event: &Event) -> i64 {
    let n = match event.extensions.get(DEPTH_ATTRIBUTE) {
        Some(ExtValue::Integer(n)) => *n,
        Some(other) => other.to_canonical_string().parse().unwrap_or(0),
        None => 0,
    };
    // A client may send any value; a negative one must not buy a longer loop.
    n.max(0)
}

/// The instance an event is addressed to, if any: `instanceid`, or `cxpinstanceid` as
/// Emporix's Celonis integration names it.
pub fn addressed_instance(event: &Event) -> Option<String> {
    [INSTANCE_ATTRIBUTE, "cxpinstanceid"]
        .iter()
        .filter_map(|name| event.extensions.get(*name))
        .map(|v| v.to_canonical_string())
        .find(|s| !s.is_empty())
}

/// A project's live workflows by start event type.
type ByType = HashMap<String, Vec<Arc<CompiledWorkflow>>>;

/// Live workflows by project and start event type (the latest version of each).
#[derive(Default)]
pub struct StartIndex {
    by_project: RwLock<HashMap<String, ByType>>,
}

impl StartIndex {
    /// Put (or replace) a workflow's current version. An older version than the one in
    /// place is ignored (two saves may install in either order).
    pub fn put(&self, wf: Arc<CompiledWorkflow>) {
        let mut all = self.by_project.write().unwrap_or_else(|p| p.into_inner());
        let project = all.entry(wf.project.clone()).or_default();
        let newer_in_place = project
            .values()
            .flatten()
            .any(|w| w.id() == wf.id() && w.version > wf.version);
        if newer_in_place {
            return;
        }
        for list in project.values_mut() {
            list.retain(|w| w.id() != wf.id());
        }
        project.entry(wf.def.start.ty.clone()).or_default().push(wf);
    }

    pub fn remove(&self, project: &str, id: &str) {
        let mut all = self.by_project.write().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = all.get_mut(project) {
            for list in p.values_mut() {
                list.retain(|w| w.id() != id);
            }
        }
    }

    /// The instances `event` starts, each with a new id and its first context (the
    /// event's payload under its type). An `instanceid` on a start event is ignored.
    pub fn starts(&self, project: &str, event: &Event) -> Vec<NewInstance> {
        let depth = depth(event);
        if depth >= MAX_DEPTH {
            // Workflows starting each other in a loop: this chain has gone far enough.
            tracing::warn!(project, event = %event.id, r#type = %event.ty, depth, "event emitted by a chain of {MAX_DEPTH} workflows starts no more");
            return Vec::new();
        }
        let all = self.by_project.read().unwrap_or_else(|p| p.into_inner());
        let Some(candidates) = all.get(project).and_then(|p| p.get(&event.ty)) else {
            return Vec::new();
        };
        candidates
            .iter()
            .filter(|w| w.starts_on(event))
            .map(|w| {
                let mut context = Map::new();
                context.insert(event.ty.clone(), payload(event));
                NewInstance {
                    id: uuid::Uuid::now_v7().to_string(),
                    workflow: w.id().to_string(),
                    version: w.version,
                    context: Value::Object(context).to_string(),
                    depth,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(project: &str, def: Value) -> Arc<CompiledWorkflow> {
        versioned(project, 1, def)
    }

    fn versioned(project: &str, version: i64, def: Value) -> Arc<CompiledWorkflow> {
        let def = WorkflowDefinition::parse(&def).unwrap();
        Arc::new(CompiledWorkflow::compile(project, version, def).unwrap())
    }

    fn event(ty: &str, data: Value) -> Event {
        let mut e = Event::new("1", "/shop", ty);
        e.data = Some(herald_core::Data::Json(data));
        e
    }

    #[test]
    fn starts_only_matching_workflows_with_fresh_ids() {
        let index = StartIndex::default();
        index.put(workflow(
            "p",
            json!({"id": "big", "start": {"type": "order.created", "filter": "total > 100"}, "steps": []}),
        ));
        index.put(workflow(
            "p",
            json!({"id": "any", "start": {"type": "order.created"}, "steps": []}),
        ));
        let starts = index.starts("p", &event("order.created", json!({"total": 5})));
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].workflow, "any");
        assert_eq!(
            serde_json::from_str::<Value>(&starts[0].context).unwrap(),
            json!({"order.created": {"total": 5}})
        );
        let big = event("order.created", json!({"total": 500}));
        let a = index.starts("p", &big);
        let b = index.starts("p", &big);
        assert_eq!(a.len(), 2);
        assert_ne!(a[0].id, b[0].id, "every start event creates a new instance");
        assert!(index.starts("other", &big).is_empty());
        assert!(index
            .starts("p", &event("order.paid", json!({})))
            .is_empty());

        // A new version replaces the old one (never an older one); a removed workflow
        // starts nothing.
        index.put(versioned(
            "p",
            3,
            json!({"id": "any", "start": {"type": "order.paid"}, "steps": []}),
        ));
        index.put(versioned(
            "p",
            2,
            json!({"id": "any", "start": {"type": "order.created"}, "steps": []}),
        ));
        assert_eq!(index.starts("p", &big).len(), 1);
        index.remove("p", "big");
        assert!(index.starts("p", &big).is_empty());
    }

    #[test]
    fn a_chain_of_emits_stops_starting_at_the_depth_limit() {
        let index = StartIndex::default();
        index.put(workflow(
            "p",
            json!({"id": "echo", "start": {"type": "x"}, "steps": [{"emit": {"type": "y"}}]}),
        ));
        let mut e = event("x", json!({}));
        assert_eq!(index.starts("p", &e)[0].depth, 0);
        e.extensions
            .insert(DEPTH_ATTRIBUTE.into(), ExtValue::Integer(MAX_DEPTH - 1));
        assert_eq!(index.starts("p", &e)[0].depth, MAX_DEPTH - 1);
        e.extensions
            .insert(DEPTH_ATTRIBUTE.into(), ExtValue::Integer(MAX_DEPTH));
        assert!(index.starts("p", &e).is_empty());
        e.extensions
            .insert(DEPTH_ATTRIBUTE.into(), ExtValue::Integer(-1_000_000));
        assert_eq!(
            index.starts("p", &e)[0].depth,
            0,
            "a negative depth counts as 0"
        );
    }

    #[test]
    fn announcements_never_start_instances() {
        let index = StartIndex::default();
        index.put(workflow(
            "p",
            json!({"id": "loop", "start": {"type": "herald.workflow.started"}, "steps": []}),
        ));
        let mut e = event("herald.workflow.started", json!({}));
        e.source = ANNOUNCE_SOURCE.into();
        assert!(index.starts("p", &e).is_empty());
    }

    #[test]
    fn an_event_is_addressed_by_instanceid_or_cxpinstanceid() {
        let mut e = event("x", json!({}));
        assert_eq!(addressed_instance(&e), None);
        e.extensions
            .insert("cxpinstanceid".into(), ExtValue::String("c1".into()));
        assert_eq!(addressed_instance(&e).as_deref(), Some("c1"));
        e.extensions
            .insert("instanceid".into(), ExtValue::String("i1".into()));
        assert_eq!(addressed_instance(&e).as_deref(), Some("i1"));
    }

    #[test]
    fn bad_feel_is_refused_with_its_path() {
        let def = WorkflowDefinition::parse(&json!({
            "id": "w", "start": {"type": "a"},
            "steps": [{"wait": {"types": ["b"], "filter": "x >"}}]
        }))
        .unwrap();
        let err = CompiledWorkflow::compile("p", 1, def).unwrap_err();
        assert_eq!(err.path, "steps[0].wait.filter");
    }
}

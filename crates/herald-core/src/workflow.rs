//! Workflow definitions (Emporix OE's "value streams"): a start trigger and ordered steps
//! (`action`, `wait`, `emit`, `delay`). Parsing and validation only, with the JSON path
//! of every refused field; running instances is the workflow engine's job.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::subscription::{duration_str, opt_duration_str};

/// Longest wait or delay a step may set: a year.
pub const MAX_STEP_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
/// Most steps in one workflow.
pub const MAX_STEPS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub start: StartTrigger,
    pub steps: Vec<Step>,
}

/// The event that creates an instance: its type, optionally its source and a FEEL filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartTrigger {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the workflow; `step-<n>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// POST the instance context to a URL; the JSON answer is the step's output.
    Action(Action),
    /// Sleep until an event of one of `types` addressed to the instance arrives.
    Wait(Wait),
    /// Publish an event into the hub.
    Emit(Emit),
    /// A durable timer.
    Delay(#[serde(with = "duration_str")] Duration),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub url: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_action_timeout", with = "duration_str")]
    pub timeout: Duration,
    /// Attempts in all, a fixed `retry_delay` apart.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_retry_delay", with = "duration_str")]
    pub retry_delay: Duration,
}

fn default_action_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_delay() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Continue,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    pub types: Vec<String>,
    /// FEEL over the waking event's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(
        default,
        with = "opt_duration_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    #[serde(default = "default_on_timeout")]
    pub on_timeout: OnTimeout,
}

fn default_on_timeout() -> OnTimeout {
    OnTimeout::Fail
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emit {
    #[serde(rename = "type")]
    pub ty: String,
    /// The event's data: a FEEL expression over the instance context, or, when absent,
    /// the whole context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// A refused definition: the JSON path of the bad field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    pub path: String,
    pub message: String,
}

fn refuse(path: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        path: path.into(),
        message: message.into(),
    }
}

impl WorkflowDefinition {
    /// Parse JSON and check what serde cannot, with the path of the first bad field.
    pub fn parse(json: &Value) -> Result<WorkflowDefinition, DefinitionError> {
        let def: WorkflowDefinition = serde_json::from_value(json.clone())
            .map_err(|e| refuse(serde_path(json, &e.to_string()), e.to_string()))?;
        def.validate()?;
        Ok(def)
    }

    /// Read a definition Herald stored itself: its shape only. It was checked when it was
    /// saved, and a later, stricter check must not break instances already running it.
    pub fn from_stored(json: &str) -> Result<WorkflowDefinition, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The name of step `i`.
    pub fn step_name(&self, i: usize) -> String {
        self.steps
            .get(i)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| format!("step-{}", i + 1))
    }

    pub fn validate(&self) -> Result<(), DefinitionError> {
        let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.id.is_empty() || self.id.len() > 128 || !self.id.chars().all(id_ok) {
            return Err(refuse(
                "id",
                "1 to 128 characters of A-Z, a-z, 0-9, '-', '_' and '.'",
            ));
        }
        if self.start.ty.trim().is_empty() {
            return Err(refuse("start.type", "the start event type is required"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(refuse("steps", format!("at most {MAX_STEPS} steps")));
        }
        let mut names = std::collections::HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            // Outputs and event payloads share the context, keyed by step name and type.
            if self.step_name(i) == self.start.ty
                || self.awaited_types().any(|t| t == self.step_name(i))
            {
                return Err(refuse(
                    format!("{at}.name"),
                    format!(
                        "'{}' is an event type of this workflow; the context keys both by name",
                        self.step_name(i)
                    ),
                ));
            }
            if !names.insert(self.step_name(i)) {
                return Err(refuse(
                    format!("{at}.name"),
                    format!("'{}' names another step too", self.step_name(i)),
                ));
            }
            match &step.kind {
                StepKind::Action(a) => {
                    let host = a
                        .url
                        .strip_prefix("http://")
                        .or_else(|| a.url.strip_prefix("https://"));
                    let ok = host.is_some_and(|h| !h.is_empty() && !h.starts_with('/'));
                    if !ok || a.url.contains(char::is_whitespace) {
                        return Err(refuse(
                            format!("{at}.action.url"),
                            "an http:// or https:// URL with a host",
                        ));
                    }
                    for (name, value) in &a.headers {
                        let token =
                            |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                        if name.is_empty() || !name.chars().all(token) {
                            return Err(refuse(
                                format!("{at}.action.headers"),
                                format!("'{name}' is not a valid header name"),
                            ));
                        }
                        if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
                            return Err(refuse(
                                format!("{at}.action.headers.{name}"),
                                "a header value may not hold control characters",
                            ));
                        }
                    }
                    if a.retry_delay > MAX_STEP_DURATION {
                        return Err(refuse(
                            format!("{at}.action.retry_delay"),
                            "at most 366 days",
                        ));
                    }
                    if a.attempts == 0 || a.attempts > 100 {
                        return Err(refuse(format!("{at}.action.attempts"), "1 to 100"));
                    }
                    if a.timeout.is_zero() || a.timeout > Duration::from_secs(300) {
                        return Err(refuse(format!("{at}.action.timeout"), "1 ms to 300 s"));
                    }
                }
                StepKind::Wait(w) => {
                    if w.types.is_empty() || w.types.iter().any(|t| t.trim().is_empty()) {
                        return Err(refuse(
                            format!("{at}.wait.types"),
                            "one or more non-empty event types",
                        ));
                    }
                    if w.timeout
                        .is_some_and(|t| t.is_zero() || t > MAX_STEP_DURATION)
                    {
                        return Err(refuse(format!("{at}.wait.timeout"), "1 ms to 366 days"));
                    }
                }
                StepKind::Emit(e) => {
                    if e.ty.trim().is_empty() {
                        return Err(refuse(
                            format!("{at}.emit.type"),
                            "the event type is required",
                        ));
                    }
                    if e.ty == self.start.ty {
                        return Err(refuse(
                            format!("{at}.emit.type"),
                            "this is the start type: every instance would start another",
                        ));
                    }
                }
                StepKind::Delay(d) => {
                    if *d > MAX_STEP_DURATION {
                        return Err(refuse(format!("{at}.delay"), "at most 366 days"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every event type some `wait` step awaits (a wake of another type is refused).
    pub fn awaited_types(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().flat_map(|s| match &s.kind {
            StepKind::Wait(w) => w.types.iter().map(String::as_str).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }
}

/// Best-effort JSON path of a serde error: the step whose shape is wrong, when the error
/// is inside `steps`, else the top-level key serde names.
fn serde_path(json: &Value, message: &str) -> String {
    if let Some(Value::Array(steps)) = json.get("steps") {
        for (i, step) in steps.iter().enumerate() {
            let kinds = ["action", "wait", "emit", "delay"];
            let present = step
                .as_object()
                .map(|o| kinds.iter().filter(|k| o.contains_key(**k)).count())
                .unwrap_or(0);
            if present != 1 {
                return format!("steps[{i}]");
            }
            if serde_json::from_value::<Step>(step.clone()).is_err() {
                let kind = kinds
                    .iter()
                    .find(|k| step.get(**k).is_some())
                    .copied()
                    .unwrap_or("");
                return format!("steps[{i}].{kind}");
            }
        }
    }
    if let Some(Value::Object(start)) = json.get("start") {
        if serde_json::from_value::<StartTrigger>(Value::Object(start.clone())).is_err() {
            return "start".into();
        }
    }
    // "unknown field `x`, expected one of ...": the path is `x`, not the ones expected.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        return rest.split('`').next().unwrap_or_default().to_string();
    }
    for key in ["start", "steps", "id", "name"] {
        if message.contains(&format!("`{key}`")) {
            return key.to_string();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> Value {
        json!({
            "id": "order-to-cash",
            "start": {"type": "order.created", "filter": "total > 0"},
            "steps": [
                {"name": "reserve", "action": {"url": "http://127.0.0.1:9/reserve", "timeout": "2s"}},
                {"wait": {"types": ["payment.received"], "timeout": "1h", "on_timeout": "continue"}},
                {"emit": {"type": "order.paid"}},
                {"delay": "10m"}
            ]
        })
    }

    #[test]
    fn parses_every_step_kind_with_defaults() {
        let def = WorkflowDefinition::parse(&example()).unwrap();
        assert_eq!(def.steps.len(), 4);
        let StepKind::Action(a) = &def.steps[0].kind else {
            panic!()
        };
        assert_eq!((a.attempts, a.timeout), (3, Duration::from_secs(2)));
        let StepKind::Wait(w) = &def.steps[1].kind else {
            panic!()
        };
        assert_eq!(w.on_timeout, OnTimeout::Continue);
        assert_eq!(def.steps[3].kind, StepKind::Delay(Duration::from_secs(600)));
        assert_eq!(def.step_name(1), "step-2");
        assert_eq!(
            def.awaited_types().collect::<Vec<_>>(),
            vec!["payment.received"]
        );
        // It round-trips through its own JSON.
        let again = WorkflowDefinition::parse(&serde_json::to_value(&def).unwrap()).unwrap();
        assert_eq!(again, def);
    }

    #[test]
    fn refuses_with_the_path_of_the_bad_field() {
        let path = |edit: &dyn Fn(&mut Value)| {
            let mut v = example();
            edit(&mut v);
            WorkflowDefinition::parse(&v).unwrap_err().path
        };
        assert_eq!(path(&|v| v["start"]["type"] = json!("")), "start.type");
        assert_eq!(
            path(&|v| v["steps"][0]["action"]["url"] = json!("ftp://x")),
            "steps[0].action.url"
        );
        assert_eq!(
            path(&|v| v["steps"][0]["action"]["attempts"] = json!(0)),
            "steps[0].action.attempts"
        );
        assert_eq!(
            path(&|v| v["steps"][1]["wait"]["types"] = json!([])),
            "steps[1].wait.types"
        );
        assert_eq!(
            path(&|v| v["steps"][1]["wait"]["on_timeout"] = json!("retry")),
            "steps[1].wait"
        );
        assert_eq!(
            path(&|v| v["steps"][2] = json!({"emit": {"type": "a"}, "delay": "1s"})),
            "steps[2]"
        );
        assert_eq!(
            path(&|v| v["steps"][3] = json!({"sleep": "1s"})),
            "steps[3]"
        );
        assert_eq!(
            path(&|v| v["steps"][3]["delay"] = json!("400days")),
            "steps[3].delay"
        );
        assert_eq!(
            path(&|v| v["steps"][2]["name"] = json!("reserve")),
            "steps[2].name"
        );
        assert_eq!(
            path(&|v| {
                v.as_object_mut().unwrap().remove("start");
            }),
            "start"
        );
        assert_eq!(path(&|v| v["trigger"] = json!({})), "trigger");
        assert_eq!(path(&|v| v["start"]["when"] = json!(1)), "start");
        assert_eq!(path(&|v| v["id"] = json!("a b")), "id");
        assert_eq!(
            path(&|v| v["steps"][0]["action"]["url"] = json!("http:///x")),
            "steps[0].action.url"
        );
        assert_eq!(
            path(&|v| v["steps"][0]["action"]["headers"] = json!({"bad name": "x"})),
            "steps[0].action.headers"
        );
        assert_eq!(
            path(&|v| v["steps"][0]["action"]["headers"] = json!({"x-a": "1\r\nx-b: 2"})),
            "steps[0].action.headers.x-a"
        );
        assert_eq!(
            path(&|v| v["steps"][0]["action"]["retry_delay"] = json!("400days")),
            "steps[0].action.retry_delay"
        );
        assert_eq!(
            path(&|v| v["steps"][2]["emit"]["type"] = json!("order.created")),
            "steps[2].emit.type"
        );
        // A step name may not be one of the workflow's event types (they share the context).
        assert_eq!(
            path(&|v| v["steps"][0]["name"] = json!("payment.received")),
            "steps[0].name"
        );
    }
}

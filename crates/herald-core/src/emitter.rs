//! Emitter definitions in Trisotech's shape (`{id, type, filter, topics, messages, owner,
//! identityRef, parameters}`), mapped onto subscriptions: the emitter's type picks the
//! sink kind (`Webhook` -> HTTP, `Audit`, `File`, `Console` -> Herald's local sinks), its
//! FEEL `filter` and `messages` become the subscription's filter and types, and the
//! definition is kept in the subscription's `config` so it reads back as written.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::subscription::{ContentMode, Subscription};

/// The `config` key that marks a subscription as an emitter and keeps its definition.
pub const CONFIG_KEY: &str = "trisotech.emitter";

/// Subscription protocols of the local sink kinds (HTTP is the webhook).
pub const AUDIT: &str = "AUDIT";
pub const FILE: &str = "FILE";
pub const CONSOLE: &str = "CONSOLE";

fn all_topics() -> Vec<Vec<String>> {
    vec![Vec::new()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitterDefinition {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default = "all_topics")]
    pub topics: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(
        default,
        rename = "identityRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
}

/// How an emitter renders events: pretty or compact, with optional constant `source`
/// and `subject` replacing the event's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Render {
    pub pretty_print: bool,
    pub source: Option<String>,
    pub subject: Option<String>,
}

/// The sink an emitter's type and parameters describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitterSink {
    Webhook {
        url: String,
        mode: ContentMode,
        render: Render,
    },
    Audit {
        pretty_print: bool,
    },
    File {
        path: String,
        rolling: bool,
        render: Render,
    },
    Console {
        /// `out`, `err` or `log`.
        output: String,
        log_prefix: String,
        /// `SEVERE`, `WARNING`, `INFO` or `FINE`.
        level: String,
        render: Render,
    },
}

impl EmitterSink {
    /// The local kinds write on the server's own disk or console.
    pub fn is_local_io(&self) -> bool {
        matches!(self, EmitterSink::File { .. } | EmitterSink::Console { .. })
    }
}

/// A refused definition: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitterError {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> EmitterError {
    EmitterError {
        field: field.into(),
        message: message.into(),
    }
}

/// Typed access to `parameters`, refusing keys the type does not know.
struct Params<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    fn new(map: &'a Map<String, Value>, known: &[&str], ty: &str) -> Result<Self, EmitterError> {
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(refuse(
                format!("parameters.{k}"),
                format!(
                    "not a parameter of {ty} emitters (they take: {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(Params { map })
    }

    fn string(&self, key: &str) -> Result<Option<String>, EmitterError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(refuse(format!("parameters.{key}"), "must be a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, EmitterError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(refuse(format!("parameters.{key}"), "must be true or false")),
        }
    }

    fn one_of(&self, key: &str, allowed: &[&str], default: &str) -> Result<String, EmitterError> {
        let v = self.string(key)?.unwrap_or_else(|| default.to_string());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(refuse(
                format!("parameters.{key}"),
                format!("'{v}' is not one of {}", allowed.join(", ")),
            ))
        }
    }

    fn render(&self) -> Result<Render, EmitterError> {
        Ok(Render {
            pretty_print: self.bool("prettyPrint")?,
            source: self.string("source")?,
            subject: self.string("subject")?,
        })
    }
}

impl EmitterDefinition {
    /// The sink its type and parameters describe; 400-worthy errors name the field.
    pub fn sink(&self) -> Result<EmitterSink, EmitterError> {
        let p = &self.parameters;
        match self.ty.as_str() {
            "Webhook" => {
                let p = Params::new(
                    p,
                    &["url", "mode", "prettyPrint", "source", "subject"],
                    "Webhook",
                )?;
                let url = p
                    .string("url")?
                    .ok_or_else(|| refuse("parameters.url", "is required"))?;
                let mode = match p
                    .one_of("mode", &["binary", "structured"], "binary")?
                    .as_str()
                {
                    "structured" => ContentMode::Structured,
                    _ => ContentMode::Binary,
                };
                Ok(EmitterSink::Webhook {
                    url,
                    mode,
                    render: p.render()?,
                })
            }
            "Audit" => {
                let p = Params::new(p, &["prettyPrint"], "Audit")?;
                Ok(EmitterSink::Audit {
                    pretty_print: p.bool("prettyPrint")?,
                })
            }
            "File" => {
                let p = Params::new(
                    p,
                    &["path", "rolling", "prettyPrint", "source", "subject"],
                    "File",
                )?;
                let path = p
                    .string("path")?
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| refuse("parameters.path", "is required"))?;
                Ok(EmitterSink::File {
                    path,
                    rolling: p.bool("rolling")?,
                    render: p.render()?,
                })
            }
            "Console" => {
                let p = Params::new(
                    p,
                    &[
                        "output",
                        "logPrefix",
                        "level",
                        "prettyPrint",
                        "source",
                        "subject",
                    ],
                    "Console",
                )?;
                Ok(EmitterSink::Console {
                    output: p.one_of("output", &["out", "err", "log"], "out")?,
                    log_prefix: p.string("logPrefix")?.unwrap_or_else(|| "event.".into()),
                    level: p.one_of("level", &["SEVERE", "WARNING", "INFO", "FINE"], "INFO")?,
                    render: p.render()?,
                })
            }
            other => Err(refuse(
                "type",
                format!("'{other}' is not an emitter type (Webhook, Audit, File, Console)"),
            )),
        }
    }

    /// The subscription that carries this emitter.
    pub fn to_subscription(&self, id: &str) -> Result<Subscription, EmitterError> {
        let sink = self.sink()?;
        let (protocol, target) = match &sink {
            EmitterSink::Webhook { url, .. } => ("HTTP", url.clone()),
            EmitterSink::Audit { .. } => (AUDIT, format!("audit:{id}")),
            EmitterSink::File { path, .. } => (FILE, format!("file:{path}")),
            EmitterSink::Console { output, .. } => (CONSOLE, format!("console:{output}")),
        };
        let mut sub: Subscription = serde_json::from_value(serde_json::json!({
            "id": id,
            "types": self.messages,
            "topics": self.topics,
            "sink": target,
            "protocol": protocol,
        }))
        .map_err(|e| refuse("topics", e.to_string()))?;
        if let EmitterSink::Webhook { mode, .. } = &sink {
            sub.protocolsettings.mode = *mode;
        }
        if let Some(f) = self.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            sub.filters = vec![serde_json::json!({ "feel": f })];
        }
        sub.owner = self.owner.clone();
        let mut kept = self.clone();
        kept.id = id.to_string();
        sub.config.insert(
            CONFIG_KEY.into(),
            serde_json::to_value(&kept).map_err(|e| refuse("definition", e.to_string()))?,
        );
        sub.validate().map_err(|p| {
            let (field, why) = p
                .detail
                .split_once(": ")
                .unwrap_or(("definition", &p.detail));
            let field = match field {
                "sink" => "parameters.url",
                "types" => "messages",
                other => other,
            };
            refuse(field, why)
        })?;
        Ok(sub)
    }

    /// The definition a subscription carries, if it is an emitter.
    pub fn of(sub: &Subscription) -> Option<EmitterDefinition> {
        serde_json::from_value(sub.config.get(CONFIG_KEY)?.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> EmitterDefinition {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_type_maps_onto_a_subscription() {
        let web = def(
            json!({"type": "Webhook", "topics": [["repository"]], "messages": ["A"],
            "filter": "amount > 5", "owner": "alice",
            "parameters": {"url": "http://127.0.0.1:9/x", "prettyPrint": true, "subject": "s"}}),
        );
        let sub = web.to_subscription("em1").unwrap();
        assert_eq!(sub.protocol, "HTTP");
        assert_eq!(sub.sink, "http://127.0.0.1:9/x");
        assert_eq!(
            sub.protocolsettings.mode,
            ContentMode::Binary,
            "binary by default"
        );
        assert_eq!(sub.topics, vec![vec!["repository".to_string()]]);
        assert_eq!(sub.types, vec!["A"]);
        assert_eq!(sub.filters, vec![json!({"feel": "amount > 5"})]);
        assert_eq!(sub.owner.as_deref(), Some("alice"));
        let back = EmitterDefinition::of(&sub).unwrap();
        assert_eq!(back.id, "em1");
        assert_eq!(back.parameters, web.parameters);

        let file = def(
            json!({"type": "File", "parameters": {"path": "/logs/everything.log", "rolling": true}}),
        );
        let sub = file.to_subscription("everything").unwrap();
        assert_eq!(
            (sub.protocol.as_str(), sub.sink.as_str()),
            (FILE, "file:/logs/everything.log")
        );
        assert_eq!(
            sub.topics,
            vec![Vec::<String>::new()],
            "all topics by default"
        );
        let console =
            def(json!({"type": "Console", "parameters": {"output": "log", "level": "FINE"}}));
        assert_eq!(
            console.sink().unwrap(),
            EmitterSink::Console {
                output: "log".into(),
                log_prefix: "event.".into(),
                level: "FINE".into(),
                render: Render::default()
            }
        );
        let audit = def(json!({"type": "Audit"}));
        assert_eq!(audit.to_subscription("a").unwrap().protocol, AUDIT);
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let field = |v: Value| def(v).to_subscription("x").unwrap_err().field;
        assert_eq!(field(json!({"type": "Kafka2"})), "type");
        assert_eq!(field(json!({"type": "Webhook"})), "parameters.url");
        assert_eq!(
            field(json!({"type": "Webhook", "parameters": {"url": "ftp://x"}})),
            "parameters.url"
        );
        assert_eq!(
            field(json!({"type": "Webhook", "parameters": {"url": "http://x", "mode": "raw"}})),
            "parameters.mode"
        );
        assert_eq!(
            field(json!({"type": "Audit", "parameters": {"path": "/x"}})),
            "parameters.path"
        );
        assert_eq!(
            field(json!({"type": "File", "parameters": {"rolling": "yes", "path": "/x"}})),
            "parameters.rolling"
        );
        assert_eq!(
            field(json!({"type": "Console", "parameters": {"level": "DEBUG"}})),
            "parameters.level"
        );
        assert_eq!(
            field(json!({"type": "Audit", "topics": [["bad topic!"]]})),
            "topics"
        );
    }
}

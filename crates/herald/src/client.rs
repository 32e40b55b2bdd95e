//! Client subcommands: `send`, `subscriptions` and `workflows`, thin wrappers over the HTTP API that
//! print the server's JSON answer (or its problem details) as they are.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

#[derive(Args)]
pub struct Target {
    /// Base URL of the Herald server.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8765")]
    server: String,
    /// Project to talk to.
    #[arg(long, short, env = "HERALD_PROJECT", default_value = "default")]
    project: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    Binary,
    Structured,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    target: Target,
    /// Event type (ce-type), e.g. com.example.order.created.
    #[arg(long = "type", short = 't')]
    ty: Option<String>,
    /// Event source (ce-source).
    #[arg(long, short, default_value = "/herald/cli")]
    source: String,
    /// Event id (ce-id); a random one when absent.
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// JSON data, or @path to read it from a file.
    #[arg(long, short)]
    data: Option<String>,
    /// Extension attributes as name=value (repeatable).
    #[arg(long = "ext", short = 'e')]
    extensions: Vec<String>,
    /// A whole event in the JSON format (structured) instead of the flags above.
    #[arg(long, short, conflicts_with_all = ["ty", "data"])]
    file: Option<PathBuf>,
    /// Topic path, e.g. service/production.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, value_enum, default_value = "binary")]
    mode: Mode,
}

fn base(t: &Target) -> String {
    format!("{}/v1/api/{}", t.server.trim_end_matches('/'), t.project)
}

async fn print_response(resp: reqwest::Response) -> Result<()> {
    let status = resp.status();
    let text = resp.text().await?;
    let pretty = serde_json::from_str::<Value>(&text)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or(text);
    if status.is_success() {
        if !pretty.is_empty() {
            println!("{pretty}");
        }
        Ok(())
    } else {
        eprintln!("{pretty}");
        bail!("server answered {status}")
    }
}

pub async fn send(args: SendArgs) -> Result<()> {
    let event: Value = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).context("the file is not JSON")?
        }
        None => {
            let ty = args.ty.clone().context("--type is required (or --file)")?;
            let mut e = json!({
                "specversion": "1.0",
                "id": args.id.clone().unwrap_or_else(uuid_like),
                "source": args.source,
                "type": ty,
            });
            if let Some(s) = &args.subject {
                e["subject"] = json!(s);
            }
            for ext in &args.extensions {
                let (k, v) = ext.split_once('=').context("--ext takes name=value")?;
                e[k] = json!(v);
            }
            if let Some(d) = &args.data {
                let raw = match d.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {path}"))?,
                    None => d.clone(),
                };
                e["data"] = serde_json::from_str(&raw).context("--data must be JSON")?;
                e["datacontenttype"] = json!("application/json");
            }
            e
        }
    };
    let url = match &args.topic {
        Some(t) => format!(
            "{}/topics/{}/events",
            base(&args.target),
            t.trim_matches('/')
        ),
        None => format!("{}/events", base(&args.target)),
    };
    let client = reqwest::Client::new();
    let req = match (args.mode, &args.file) {
        (Mode::Structured, _) | (_, Some(_)) => client
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(&event)?),
        (Mode::Binary, None) => {
            let mut req = client.post(&url);
            let obj = event.as_object().expect("built as object");
            for (k, v) in obj {
                if k == "data" || k == "datacontenttype" {
                    continue;
                }
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                req = req.header(
                    format!("ce-{k}"),
                    herald_core::binding::encode_header_value(&s),
                );
            }
            match obj.get("data") {
                Some(d) => req
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(d)?),
                None => req,
            }
        }
    };
    print_response(
        req.send()
            .await
            .with_context(|| format!("cannot reach {url}"))?,
    )
    .await
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("cli-{nanos:x}-{}", std::process::id())
}

#[derive(Subcommand)]
pub enum SubscriptionsCommand {
    /// List the project's subscriptions.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Create a subscription from flags or from a JSON file in the Subscriptions API shape.
    Create {
        #[command(flatten)]
        target: Target,
        /// Webhook URL to deliver to.
        #[arg(long, required_unless_present = "file")]
        sink: Option<String>,
        /// Only these event types (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Topic prefix such as service/production (repeatable; none = all topics).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// A filter in the Subscriptions API syntax, e.g. '{"prefix":{"type":"com.example."}}' (repeatable).
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[arg(long, value_enum, default_value = "structured")]
        mode: Mode,
        /// The whole subscription as JSON.
        #[arg(long, conflicts_with = "sink")]
        file: Option<PathBuf>,
    },
    /// Delete a subscription (and its queued deliveries).
    Delete {
        #[command(flatten)]
        target: Target,
        id: String,
    },
    /// Re-enable a disabled subscription; what was queued meanwhile is delivered.
    Enable {
        #[command(flatten)]
        target: Target,
        id: String,
    },
}

pub async fn subscriptions(cmd: SubscriptionsCommand) -> Result<()> {
    let client = reqwest::Client::new();
    let resp = match cmd {
        SubscriptionsCommand::List { target } => {
            client
                .get(format!("{}/subscriptions", base(&target)))
                .send()
                .await?
        }
        SubscriptionsCommand::Create {
            target,
            sink,
            types,
            topics,
            filters,
            mode,
            file,
        } => {
            let body: Value = match file {
                Some(path) => serde_json::from_str(&std::fs::read_to_string(&path)?)
                    .context("the file is not JSON")?,
                None => {
                    let filters = filters
                        .iter()
                        .map(|f| serde_json::from_str::<Value>(f).context("--filter must be JSON"))
                        .collect::<Result<Vec<_>>>()?;
                    let topics: Vec<Vec<&str>> = if topics.is_empty() {
                        vec![vec![]]
                    } else {
                        topics
                            .iter()
                            .map(|t| {
                                t.trim_matches('/')
                                    .split('/')
                                    .filter(|s| !s.is_empty())
                                    .collect()
                            })
                            .collect()
                    };
                    let mode = match mode {
                        Mode::Binary => "binary",
                        Mode::Structured => "structured",
                    };
                    json!({"sink": sink, "types": types, "topics": topics, "filters": filters,
                        "protocol": "HTTP", "protocolsettings": {"mode": mode}})
                }
            };
            client
                .post(format!("{}/subscriptions", base(&target)))
                .json(&body)
                .send()
                .await?
        }
        SubscriptionsCommand::Delete { target, id } => {
            client
                .delete(format!("{}/subscriptions/{id}", base(&target)))
                .send()
                .await?
        }
        SubscriptionsCommand::Enable { target, id } => {
            client
                .post(format!("{}/subscriptions/{id}/enable", base(&target)))
                .send()
                .await?
        }
    };
    print_response(resp).await
}

#[derive(Subcommand)]
pub enum WorkflowsCommand {
    /// List the project's workflows (latest versions, with instance counts on `show`).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Create or add a version of a workflow from a JSON or YAML (.yaml, .yml) file.
    Apply {
        #[command(flatten)]
        target: Target,
        /// The definition file.
        file: PathBuf,
        /// The workflow id; default: the file's top-level `id`.
        #[arg(long)]
        id: Option<String>,
    },
    /// Show a workflow (its latest version, or --version N) with its instance counts.
    Show {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// List a workflow's instances, newest first.
    Instances {
        #[command(flatten)]
        target: Target,
        id: String,
        /// Only instances in this state (starting, running, waiting, completed, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one instance with its history.
    Instance {
        #[command(flatten)]
        target: Target,
        id: String,
        instance: String,
    },
    /// Cancel an unfinished instance.
    Cancel {
        #[command(flatten)]
        target: Target,
        id: String,
        instance: String,
    },
    /// Run a failed instance's failed step again.
    Retry {
        #[command(flatten)]
        target: Target,
        id: String,
        instance: String,
    },
}

/// The top-level `id` of a definition file: JSON's `id`, or a YAML `id:` line at
/// column 0 (enough for the files this command writes and reads).
fn definition_id(text: &str, yaml: bool) -> Option<String> {
    if !yaml {
        let v: Value = serde_json::from_str(text).ok()?;
        return v.get("id")?.as_str().map(str::to_string);
    }
    text.lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.is_empty())
}

pub async fn workflows(cmd: WorkflowsCommand) -> Result<()> {
    let client = reqwest::Client::new();
    let workflows = |t: &Target| format!("{}/workflows", base(t));
    let req = match cmd {
        WorkflowsCommand::List { target } => client.get(workflows(&target)),
        WorkflowsCommand::Apply { target, file, id } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let yaml = matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            let Some(id) = id.or_else(|| definition_id(&text, yaml)) else {
                bail!("{} has no top-level id; pass --id", file.display());
            };
            let content_type = if yaml {
                "application/yaml"
            } else {
                "application/json"
            };
            client
                .put(format!("{}/{id}", workflows(&target)))
                .header("content-type", content_type)
                .body(text)
        }
        WorkflowsCommand::Show {
            target,
            id,
            version,
        } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            client.get(format!("{}/{id}{q}", workflows(&target)))
        }
        WorkflowsCommand::Instances { target, id, state } => {
            let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
            client.get(format!("{}/{id}/instances{q}", workflows(&target)))
        }
        WorkflowsCommand::Instance {
            target,
            id,
            instance,
        } => client.get(format!("{}/{id}/instances/{instance}", workflows(&target))),
        WorkflowsCommand::Cancel {
            target,
            id,
            instance,
        } => client.post(format!(
            "{}/{id}/instances/{instance}/cancel",
            workflows(&target)
        )),
        WorkflowsCommand::Retry {
            target,
            id,
            instance,
        } => client.post(format!(
            "{}/{id}/instances/{instance}/retry",
            workflows(&target)
        )),
    };
    print_response(req.send().await.context("cannot reach the server")?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_file_names_its_id() {
        assert_eq!(
            definition_id(r#"{"id": "a", "steps": []}"#, false).as_deref(),
            Some("a")
        );
        assert_eq!(
            definition_id("name: x\nid: 'flow-1'\nsteps: []\n", true).as_deref(),
            Some("flow-1")
        );
        assert_eq!(definition_id("steps:\n  - id: nested\n", true), None);
        assert_eq!(definition_id("{}", false), None);
    }
}

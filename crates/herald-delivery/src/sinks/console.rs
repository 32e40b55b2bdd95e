//! The console sink: writes each event as a line to stdout or stderr, or through the
//! `tracing` log at a chosen level, for development, demos and container logs. A write
//! that fails (e.g. stdout closed) is a retryable attempt, never a panic.

use std::io::Write;
use std::time::Instant;

use futures::future::BoxFuture;
use herald_core::Event;
use serde::{Deserialize, Serialize};

use super::render::{render, RenderOptions};
use crate::sinks::{AttemptReport, Outbound, Sink};

/// Where the lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleOutput {
    #[default]
    Out,
    Err,
    /// Through `tracing`, at [`ConsoleSinkConfig::level`].
    Log,
}

/// The log level for [`ConsoleOutput::Log`] (the names of the Java levels the Trisotech
/// event hub configurations use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConsoleLevel {
    Severe,
    Warning,
    #[default]
    Info,
    Fine,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsoleSinkConfig {
    pub output: ConsoleOutput,
    /// Put before every event, e.g. `"[orders] "`.
    pub log_prefix: String,
    pub level: ConsoleLevel,
    pub render: RenderOptions,
}

pub struct ConsoleSink {
    cfg: ConsoleSinkConfig,
}

impl ConsoleSink {
    pub fn new(cfg: ConsoleSinkConfig) -> ConsoleSink {
        ConsoleSink { cfg }
    }

    async fn attempt(&self, out: &Outbound) -> AttemptReport {
        let started = Instant::now();
        let text = line(&self.cfg, &out.event);
        let result = match self.cfg.output {
            ConsoleOutput::Log => {
                log(self.cfg.level, &text);
                Ok(())
            }
            // Blocking, because a full pipe on the other end would stall a runtime worker.
            ConsoleOutput::Out => tokio::task::spawn_blocking(move || {
                write_line(std::io::stdout().lock(), &text).map_err(|e| format!("stdout: {e}"))
            })
            .await
            .unwrap_or_else(|e| Err(format!("stdout: {e}"))),
            ConsoleOutput::Err => tokio::task::spawn_blocking(move || {
                write_line(std::io::stderr().lock(), &text).map_err(|e| format!("stderr: {e}"))
            })
            .await
            .unwrap_or_else(|e| Err(format!("stderr: {e}"))),
        };
        AttemptReport::local(result, started)
    }
}

impl Sink for ConsoleSink {
    fn deliver<'a>(&'a self, out: &'a Outbound) -> BoxFuture<'a, AttemptReport> {
        Box::pin(self.attempt(out))
    }
}

/// What is written for `event`, without a newline: the rendered event, after the prefix
/// when the output is the logging system (the prefix is a logger's, as in Trisotech).
pub fn line(cfg: &ConsoleSinkConfig, event: &Event) -> String {
    let rendered = render(event, &cfg.render);
    let prefix = match cfg.output {
        ConsoleOutput::Log => cfg.log_prefix.as_str(),
        ConsoleOutput::Out | ConsoleOutput::Err => "",
    };
    let mut s = String::with_capacity(prefix.len() + rendered.len());
    s.push_str(prefix);
    s.push_str(&String::from_utf8_lossy(&rendered));
    s
}

/// One `write_all` of the whole line, under the caller's lock on the stream, so lines of
/// concurrent deliveries (and other output of the process) do not interleave.
fn write_line(mut w: impl Write, line: &str) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    w.write_all(&buf)?;
    w.flush()
}

fn log(level: ConsoleLevel, line: &str) {
    // `tracing` macros need the level as a constant, hence one call per level.
    match level {
        ConsoleLevel::Severe => tracing::error!(target: "herald::console", "{line}"),
        ConsoleLevel::Warning => tracing::warn!(target: "herald::console", "{line}"),
        ConsoleLevel::Info => tracing::info!(target: "herald::console", "{line}"),
        ConsoleLevel::Fine => tracing::debug!(target: "herald::console", "{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::retry::Outcome;

    fn event() -> Event {
        Event::new("1", "/orders", "order.created")
    }

    #[test]
    fn line_is_prefix_then_compact_event() {
        let mut cfg = ConsoleSinkConfig {
            output: ConsoleOutput::Log,
            log_prefix: "[orders] ".into(),
            ..ConsoleSinkConfig::default()
        };
        assert_eq!(
            line(&cfg, &event()),
            r#"[orders] {"specversion":"1.0","id":"1","source":"/orders","type":"order.created"}"#
        );
        cfg.output = ConsoleOutput::Out;
        assert!(
            line(&cfg, &event()).starts_with('{'),
            "the prefix is the logger's"
        );
        let cfg = ConsoleSinkConfig::default();
        assert_eq!(
            line(&cfg, &event()).as_bytes(),
            event().to_json_bytes().as_slice()
        );
    }

    #[test]
    fn line_applies_render_options() {
        let cfg = ConsoleSinkConfig {
            output: ConsoleOutput::Log,
            log_prefix: "> ".into(),
            render: RenderOptions {
                pretty_print: true,
                source: Some("/hub".into()),
                subject: Some("s".into()),
            },
            ..ConsoleSinkConfig::default()
        };
        let l = line(&cfg, &event());
        assert!(l.starts_with("> {\n  \"specversion\": \"1.0\""), "{l}");
        assert!(!l.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&l[2..]).unwrap();
        assert_eq!(
            (v["source"].as_str(), v["subject"].as_str()),
            (Some("/hub"), Some("s"))
        );
    }

    #[test]
    fn config_names_and_defaults() {
        use serde_json::{from_str, to_string};
        for (o, name) in [
            (ConsoleOutput::Out, "\"out\""),
            (ConsoleOutput::Err, "\"err\""),
            (ConsoleOutput::Log, "\"log\""),
        ] {
            assert_eq!(to_string(&o).unwrap(), name);
            assert_eq!(from_str::<ConsoleOutput>(name).unwrap(), o);
        }
        for (l, name) in [
            (ConsoleLevel::Severe, "\"SEVERE\""),
            (ConsoleLevel::Warning, "\"WARNING\""),
            (ConsoleLevel::Info, "\"INFO\""),
            (ConsoleLevel::Fine, "\"FINE\""),
        ] {
            assert_eq!(to_string(&l).unwrap(), name);
            assert_eq!(from_str::<ConsoleLevel>(name).unwrap(), l);
        }
        assert!(from_str::<ConsoleLevel>("\"info\"").is_err());
        assert_eq!(ConsoleOutput::default(), ConsoleOutput::Out);
        assert_eq!(ConsoleLevel::default(), ConsoleLevel::Info);
    }

    #[test]
    fn write_line_writes_one_terminated_line() {
        let mut buf = Vec::new();
        write_line(&mut buf, "abc").unwrap();
        assert_eq!(buf, b"abc\n");
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_are_retryable_reports() {
        let result = write_line(Closed, "abc").map_err(|e| format!("stdout: {e}"));
        let r = AttemptReport::local(result, Instant::now());
        assert_eq!(r.outcome, Outcome::Retryable { retry_after: None });
        assert_eq!(r.status, None);
        assert!(r.error.unwrap().starts_with("stdout: "));
    }

    #[tokio::test]
    async fn log_output_delivers() {
        for level in [
            ConsoleLevel::Severe,
            ConsoleLevel::Warning,
            ConsoleLevel::Info,
            ConsoleLevel::Fine,
        ] {
            let sink = ConsoleSink::new(ConsoleSinkConfig {
                output: ConsoleOutput::Log,
                level,
                ..ConsoleSinkConfig::default()
            });
            let out = Outbound {
                event: event(),
                msg_id: "msg_1".into(),
                timestamp: 0,
            };
            let r = sink.deliver(&out).await;
            assert_eq!(r.outcome, Outcome::Delivered);
            assert_eq!((r.status, r.error), (None, None));
        }
    }
}

//! The `herald` binary under test, started as its own process on a fresh data dir, and
//! the small JSON and statistics helpers the benchmarks share.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

pub async fn send_json(req: reqwest::RequestBuilder) -> Result<Value> {
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub struct Herald {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_herald(data_dir: &std::path::Path) -> Result<Herald> {
    use std::io::{BufRead, BufReader};
    let program = std::env::current_exe()?.with_file_name("herald");
    if !program.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p herald -p herald-bench)",
            program.display()
        );
    }
    let mut child = std::process::Command::new(&program)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("HERALD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let out = child.stdout.take().context("herald stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("herald listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let mut herald = Herald {
        child,
        url: String::new(),
    };
    herald.url = rx
        .recv_timeout(Duration::from_secs(30))
        .context("herald did not print its listening line")?;
    Ok(herald)
}

impl Herald {
    /// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`).
    pub fn rss_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

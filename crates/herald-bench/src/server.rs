//! The processes under test: the `herald` binary next to this one on a fresh data dir,
//! and this binary's own baseline subcommands, each started as its own process; plus the
//! small JSON and statistics helpers the benchmarks share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A child process, killed when dropped.
pub struct Process {
    pub child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:4321`.
    pub url: String,
}

/// Herald under test.
pub type Herald = Process;

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Start `program` and wait for a stdout line starting with `ready`; the rest of that
    /// line is handed to `url_of`.
    fn start(
        program: &Path,
        args: &[String],
        ready: &str,
        url_of: impl FnOnce(&str) -> String,
    ) -> Result<Process> {
        let mut child = Command::new(program)
            .args(args)
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(&ready) {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let mut process = Process {
            child,
            url: String::new(),
        };
        let rest = rx
            .recv_timeout(Duration::from_secs(30))
            .with_context(|| format!("{} did not become ready", program.display()))?;
        process.url = url_of(&rest);
        Ok(process)
    }

    /// One of this binary's baseline subcommands on a free port.
    pub fn start_bench(subcommand: &str, args: &[&str]) -> Result<Process> {
        let port = free_port();
        let mut all = vec![subcommand.to_string(), "--port".into(), port.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        Process::start(&std::env::current_exe()?, &all, "ready", |_| {
            format!("http://127.0.0.1:{port}")
        })
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`).
    pub fn rss_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU time (user and system) the process has used so far, in µs.
    pub fn cpu_micros(&self) -> u64 {
        cpu_micros(self.child.id())
    }
}

/// CPU time (user and system) of process `pid` so far, in µs, from `/proc/<pid>/stat`
/// (clock ticks of 10 ms: measure over seconds, not milliseconds).
pub fn cpu_micros(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (field 3);
    // utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks * 10_000
}

/// Herald on a fresh `data_dir`, listening on a free port.
pub fn start_herald(data_dir: &Path) -> Result<Herald> {
    let program = std::env::current_exe()?.with_file_name("herald");
    if !program.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p herald -p herald-bench)",
            program.display()
        );
    }
    let args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--data-dir"]
        .iter()
        .map(|a| a.to_string())
        .chain([data_dir.display().to_string()])
        .collect();
    Process::start(&program, &args, "herald listening on ", str::to_string)
}

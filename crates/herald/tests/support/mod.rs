//! Test support: start the real `herald` binary on a fresh data dir, and a real HTTP
//! receiver whose answers a test scripts (status, headers, delay, handshake).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Config used by tests: quick polling so waits stay short.
pub const TEST_CONFIG: &str = r#"
[delivery]
poll_interval = "100ms"
handshake_retry = "300ms"
"#;

pub struct Herald {
    child: Option<Child>,
    pub url: String,
    /// Every line the server printed on stdout (Console emitters write there).
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Herald {
    /// Start on a new temporary data dir.
    pub fn start() -> Herald {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut h = Herald::start_in(tmp.path(), TEST_CONFIG);
        h._tmp = Some(tmp);
        h
    }

    /// Start (or restart) on `dir` with the given TOML config.
    pub fn start_in(dir: &Path, config: &str) -> Herald {
        let cfg = dir.join("herald-test.toml");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&cfg)
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start herald");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("herald listening on ") {
                    let _ = tx.send(url.to_string());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("herald did not start");
        Herald {
            child: Some(child),
            url,
            stdout: lines,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/v1/api/{}", self.url, path.trim_start_matches('/'))
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The CloudEvent id, in binary (`ce-id`) or structured mode.
    pub fn event_id(&self) -> Option<String> {
        self.header("ce-id")
            .map(str::to_string)
            .or_else(|| self.json()["id"].as_str().map(str::to_string))
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.into();
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Script = Box<dyn Fn(&Received, usize) -> Reply + Send + Sync>;

struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    script: Mutex<Arc<Script>>,
    /// Origin to allow in the OPTIONS handshake (None: answer 405).
    allow_origin: Mutex<Option<String>>,
    concurrent: AtomicUsize,
    max_concurrent: AtomicUsize,
}

/// A real HTTP server recording every request and answering as scripted.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(Arc::new(Box::new(|_, _| Reply::status(200)))),
            allow_origin: Mutex::new(Some("*".into())),
            concurrent: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    /// Answer each POST with `f(request, index of this request among POSTs)`.
    pub fn script(&self, f: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) {
        *self.state.script.lock().unwrap() = Arc::new(Box::new(f));
    }

    pub fn allow_origin(&self, origin: Option<&str>) {
        *self.state.allow_origin.lock().unwrap() = origin.map(str::to_string);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn posts(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "OPTIONS")
            .collect()
    }

    pub fn max_concurrent(&self) -> usize {
        self.state.max_concurrent.load(Ordering::SeqCst)
    }

    /// Ids of events answered with 2xx.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.posts().iter().filter_map(Received::event_id).collect()
    }
}

async fn handle(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    if method == Method::OPTIONS {
        state.requests.lock().unwrap().push(req);
        let allowed = state.allow_origin.lock().unwrap().clone();
        return match allowed {
            Some(o) => (StatusCode::OK, [("webhook-allowed-origin", o)]).into_response(),
            None => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        };
    }
    let index = {
        let mut reqs = state.requests.lock().unwrap();
        let n = reqs.iter().filter(|r| r.method != "OPTIONS").count();
        reqs.push(req.clone());
        n
    };
    let now = state.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_concurrent.fetch_max(now, Ordering::SeqCst);
    let script = state.script.lock().unwrap().clone();
    let reply = script(&req, index);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state.concurrent.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

/// Poll `f` until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Create a subscription; returns its JSON (with the signing secret).
pub async fn subscribe(h: &Herald, project: &str, body: Value) -> Value {
    let resp = client()
        .post(h.api(&format!("{project}/subscriptions")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "create subscription: {v}");
    v
}

/// POST a binary-mode event with JSON data; returns (status, body).
pub async fn send_binary(
    h: &Herald,
    project: &str,
    id: &str,
    ty: &str,
    data: Value,
) -> (u16, Value) {
    send_binary_with(h, project, id, ty, data, &[("ce-source", "/tests")]).await
}

/// [`send_binary`] with more (or replaced) headers, e.g. `ce-instanceid`; returns the
/// status and the body (an error must be a problem document).
pub async fn send_binary_with(
    h: &Herald,
    project: &str,
    id: &str,
    ty: &str,
    data: Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = client()
        .post(h.api(&format!("{project}/events")))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-type", ty)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(data.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    if status >= 400 {
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "errors are problems"
        );
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A quick retry schedule for tests.
pub fn fast_retry(schedule: &[&str]) -> Value {
    serde_json::json!({"retry": {"backoff": {"schedule": schedule}, "jitter": 0.0}})
}

//! Delivery to `https` sinks: a real TLS receiver whose certificate a throwaway CA signed
//! (made with the `openssl` command). Herald trusts it only through `[delivery] ca_file`;
//! without it the attempt fails on the certificate and nothing reaches the receiver.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use serde_json::{json, Value};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const WAIT: Duration = Duration::from_secs(10);

/// A CA and a `localhost` / `127.0.0.1` server certificate it signed, in `dir`.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is needed by this test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
        &[
            "-subj",
            "/CN=Herald test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// axum served over TLS: handshakes that fail (a client refusing our certificate) are
/// counted and skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    failed_handshakes: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, addr),
                _ => {
                    self.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

struct TlsReceiver {
    url: String,
    events: Arc<std::sync::Mutex<Vec<Value>>>,
    failed_handshakes: Arc<AtomicUsize>,
}

async fn start_tls_receiver(cert: &Path, key: &Path) -> TlsReceiver {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let failed_handshakes = Arc::new(AtomicUsize::new(0));
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        failed_handshakes: failed_handshakes.clone(),
    };
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = events.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| async move {
            kept.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    TlsReceiver {
        url: format!("https://localhost:{port}/hook"),
        events,
        failed_handshakes,
    }
}

fn config_with_ca(ca: &Path) -> String {
    format!("{TEST_CONFIG}ca_file = {:?}\n", ca.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn https_sink_signed_by_the_configured_ca_file_is_delivered() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(certs.path());
    let r = start_tls_receiver(&cert, &key).await;
    let data = tempfile::tempdir().unwrap();
    let h = Herald::start_in(data.path(), &config_with_ca(&ca));
    subscribe(&h, "default", json!({"sink": r.url, "protocol": "HTTP"})).await;
    let (status, _) = send_binary(&h, "default", "tls-1", "order.created", json!({"n": 1})).await;
    assert_eq!(status, 202);
    assert!(wait_until(WAIT, || r.events.lock().unwrap().len() == 1).await);
    assert_eq!(r.events.lock().unwrap()[0]["id"], "tls-1");
    assert_eq!(r.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_sink_with_an_untrusted_certificate_fails_the_attempt_on_it() {
    let certs = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_certificates(certs.path());
    let r = start_tls_receiver(&cert, &key).await;
    let h = Herald::start();
    let sub = subscribe(
        &h,
        "default",
        json!({"sink": r.url, "protocol": "HTTP", "delivery": fast_retry(&["50ms"])}),
    )
    .await;
    let id = sub["id"].as_str().unwrap();
    let (status, _) = send_binary(&h, "default", "tls-2", "order.created", json!({"n": 2})).await;
    assert_eq!(status, 202);
    let url = h.api(&format!("default/subscriptions/{id}/attempts"));
    let mut attempts = Value::Null;
    for _ in 0..200 {
        attempts = get_json(&url).await;
        if !attempts["attempts"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = &attempts["attempts"].as_array().unwrap()[0];
    let error = first["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("certificate"),
        "attempt error names the certificate: {first}"
    );
    assert!(
        first["status"].is_null(),
        "no HTTP status without a handshake: {first}"
    );
    assert!(r.failed_handshakes.load(Ordering::SeqCst) >= 1);
    assert!(r.events.lock().unwrap().is_empty());
}

#[test]
fn serve_refuses_a_ca_file_without_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&ca, "no certificate here\n").unwrap();
    let cfg = dir.path().join("herald.toml");
    std::fs::write(&cfg, config_with_ca(&ca)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("delivery.ca_file") && stderr.contains("holds no PEM certificate"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created before the config is good"
    );
}

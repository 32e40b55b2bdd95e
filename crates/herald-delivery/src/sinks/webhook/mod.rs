//! The HTTP webhook sink: CloudEvents over HTTP (structured or binary mode), custom headers,
//! sink credentials, Standard Webhooks signatures, and the CloudEvents webhook validation
//! handshake.

mod client;
mod config;
mod oauth;
mod request;
mod service;

pub use client::HttpClient;
pub use config::WebhookConfig;
pub use oauth::TokenCache;
pub use request::{build_request, expand_url};
pub use service::{handshake, sink_uri, WebhookSink};

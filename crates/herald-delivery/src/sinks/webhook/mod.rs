//! The HTTP webhook sink: CloudEvents over HTTP (structured or binary mode), custom headers,
//! sink credentials, Standard Webhooks signatures, and the CloudEvents webhook validation
//! handshake.

mod config;
mod oauth;
mod request;
mod service;

pub use config::WebhookConfig;
pub use oauth::TokenCache;
pub use request::{build_request, expand_url};
pub use service::{handshake, WebhookSink};

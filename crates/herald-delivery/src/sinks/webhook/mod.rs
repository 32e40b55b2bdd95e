//! The HTTP webhook sink: CloudEvents over HTTP (structured or binary mode), custom headers,
//! sink credentials, Standard Webhooks signatures, and the CloudEvents webhook validation
//! handshake.

mod config;
mod request;
mod service;

pub use config::WebhookConfig;
pub use request::build_request;
pub use service::{handshake, WebhookSink};

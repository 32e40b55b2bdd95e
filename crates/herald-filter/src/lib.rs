//! Filter dialects for subscriptions: the CloudEvents Subscriptions API dialects
//! (`exact`, `prefix`, `suffix`, `all`, `any`, `not`), CloudEvents SQL (`sql`) and FEEL.
//! Every expression is compiled once (when a subscription is saved) and evaluated many times.

pub mod cesql;
pub mod dialects;
pub mod feel;
pub mod guard;
mod parse_error;

pub use parse_error::ParseError;

pub use dialects::{compile, EventView, Filter, FilterError};

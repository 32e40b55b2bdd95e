//! herald-store

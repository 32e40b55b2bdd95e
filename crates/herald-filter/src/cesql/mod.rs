//! CloudEvents SQL (placeholder until written).

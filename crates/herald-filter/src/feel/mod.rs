//! FEEL (placeholder until written).

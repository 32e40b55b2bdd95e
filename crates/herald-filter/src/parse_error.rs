//! The compile error shared by the expression languages (CESQL and FEEL): where in the
//! source the problem is, and what it is.

use std::fmt;

/// An expression could not be compiled: a syntax error or a violated limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 0-based offset, in characters (not bytes), of the offending token.
    pub position: usize,
    /// Human-readable description of the problem.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        ParseError {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

//! Error types of CESQL: [`ParseError`] (raised while compiling an expression) and
//! [`EvalError`] / [`EvalErrorKind`] (the secondary output of an evaluation, spec §3.3).
//! Evaluation errors never abort an evaluation: they travel next to a value.

use std::fmt;

pub use crate::parse_error::ParseError;

/// The kinds of evaluation errors defined by the CESQL specification (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalErrorKind {
    /// A mathematical operation failed (division by zero, overflow).
    Math,
    /// An implicit or explicit type cast failed.
    Cast,
    /// A function name/arity combination is not known to the engine.
    MissingFunction,
    /// A built-in function rejected its arguments.
    FunctionEvaluation,
    /// The expression addressed an attribute that the event does not carry.
    MissingAttribute,
    /// Any other error.
    Generic,
}

impl EvalErrorKind {
    /// The name the CESQL TCK uses for this kind (`math`, `cast`, ...).
    pub fn tck_name(self) -> &'static str {
        match self {
            EvalErrorKind::Math => "math",
            EvalErrorKind::Cast => "cast",
            EvalErrorKind::MissingFunction => "missingFunction",
            EvalErrorKind::FunctionEvaluation => "functionEvaluation",
            EvalErrorKind::MissingAttribute => "missingAttribute",
            EvalErrorKind::Generic => "generic",
        }
    }
}

impl fmt::Display for EvalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tck_name())
    }
}

/// An error raised while evaluating an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub kind: EvalErrorKind,
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(kind: EvalErrorKind, message: impl Into<String>) -> Self {
        EvalError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for EvalError {}

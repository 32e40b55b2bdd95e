//! CloudEvents SQL (CESQL 1.0): compile an expression once with [`Expression::parse`], then
//! evaluate it against many events. Evaluation is total: it always yields a [`Value`], plus
//! the first error met (spec §3.3); [`Expression::matches`] is the Subscriptions API filter.

mod ast;
mod context;
mod error;
mod eval;
mod functions;
mod guards;
mod lexer;
mod like;
mod parser;
mod value;

use std::fmt;
use std::str::FromStr;

pub use context::EventContext;
pub use error::{EvalError, EvalErrorKind, ParseError};
pub use value::{Type, Value};

/// Longest accepted expression, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 4096;

/// Deepest accepted nesting: each parenthesised sub-expression, function call, unary
/// operator (`NOT`, `-`) and `LIKE`/`IN` operator opens one level.
pub const MAX_NESTING_DEPTH: usize = 64;

/// A compiled CESQL expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: ast::Expr,
}

/// The outcome of evaluating an expression: always a value, possibly an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub value: Value,
    /// The first error raised during the evaluation, if any.
    pub error: Option<EvalError>,
}

impl Expression {
    /// Compiles `src`, enforcing [`MAX_EXPRESSION_CHARS`] and [`MAX_NESTING_DEPTH`].
    /// Calls of unknown functions compile; they raise a MissingFunctionError when evaluated.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] for a syntax error, an integer literal outside the 32-bit range, a
    /// non-literal `LIKE` pattern, or an expression over the length or nesting limit.
    pub fn parse(src: &str) -> Result<Expression, ParseError> {
        Ok(Expression {
            source: src.to_owned(),
            root: parser::parse(src)?,
        })
    }

    /// The expression text as given to [`Expression::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression against one event. Never panics.
    #[must_use]
    pub fn evaluate(&self, ev: &dyn EventContext) -> Evaluation {
        eval::evaluate(&self.root, ev)
    }

    /// Filter semantics of the Subscriptions API `sql` dialect: the event passes only if the
    /// result is `Boolean(true)` and no error occurred.
    #[must_use]
    pub fn matches(&self, ev: &dyn EventContext) -> bool {
        let out = self.evaluate(ev);
        out.error.is_none() && out.value == Value::Boolean(true)
    }
}

impl Expression {
    /// Necessary conditions for a match, for the routing index (see [`crate::guard`]).
    pub fn required(&self) -> crate::guard::Required {
        guards::required(&self.root)
    }
}

/// A String as CESQL casts it to Integer, or `None` when the cast fails.
pub(crate) fn integer_of_str(s: &str) -> Option<i32> {
    value::parse_integer(s)
}

/// The value as an Integer under CESQL's casts, or `None` when the cast fails.
pub(crate) fn integer_of(v: &Value) -> Option<i32> {
    match value::to_integer(v) {
        (i, None) => Some(i),
        (_, Some(_)) => None,
    }
}

impl FromStr for Expression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expression::parse(s)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn event(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
        let mut ev: HashMap<String, Value> = [
            ("id", "1"),
            ("source", "/src"),
            ("specversion", "1.0"),
            ("type", "t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
        for (k, v) in pairs {
            ev.insert((*k).to_owned(), v.clone());
        }
        ev
    }

    fn eval(src: &str, ev: &HashMap<String, Value>) -> (Value, Option<EvalErrorKind>) {
        let out = Expression::parse(src)
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
            .evaluate(ev);
        (out.value, out.error.map(|e| e.kind))
    }

    #[test]
    fn expression_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Expression>();
        check::<Evaluation>();
    }

    #[test]
    fn matches_requires_true_without_error() {
        let ev = event(&[("n", Value::Integer(3))]);
        let m = |src: &str| Expression::parse(src).unwrap().matches(&ev);
        assert!(m("n = 3"));
        assert!(!m("n = 4"));
        assert!(!m("n + 1")); // not a boolean
        assert!(!m("'true'")); // a string, even if it casts to true
        assert!(m("n = 3 OR missing = 1")); // short-circuit: `missing` is never read
        assert!(!m("missing = 1 OR n = 3")); // the left operand failed
        assert!(!m("NOT 10")); // value true, but with a cast error
        assert!(!m("nosuchfn(1)"));
    }

    #[test]
    fn errors_propagate_as_zero_values() {
        let ev = event(&[]);
        use EvalErrorKind::*;
        assert_eq!(
            eval("NOT missing", &ev),
            (Value::Boolean(false), Some(MissingAttribute))
        );
        assert_eq!(
            eval("NOT (1 / 0 = 0)", &ev),
            (Value::Boolean(false), Some(Math))
        );
        assert_eq!(
            eval("LENGTH(missing)", &ev),
            (Value::Integer(0), Some(MissingAttribute))
        );
        assert_eq!(
            eval("CONCAT('a', missing)", &ev),
            ("".into(), Some(MissingAttribute))
        );
        assert_eq!(
            eval("1 IN (missing, 1)", &ev),
            (Value::Boolean(false), Some(MissingAttribute))
        );
        assert_eq!(
            eval("nosuch(missing)", &ev),
            (Value::Boolean(false), Some(MissingFunction))
        );
        // An operator's own cast error keeps the computed value.
        assert_eq!(eval("'x' + 2", &ev), (Value::Integer(2), Some(Cast)));
        assert_eq!(
            eval("1 IN ('a', 1)", &ev),
            (Value::Boolean(true), Some(Cast))
        );
        assert_eq!(eval("LEFT('abc', 'x')", &ev), ("".into(), Some(Cast)));
    }

    #[test]
    fn integer_overflow_is_a_math_error() {
        let ev = event(&[]);
        use EvalErrorKind::Math;
        assert_eq!(
            eval("2147483647 + 1", &ev),
            (Value::Integer(i32::MAX), Some(Math))
        );
        assert_eq!(
            eval("-2147483648 - 1", &ev),
            (Value::Integer(i32::MIN), Some(Math))
        );
        assert_eq!(
            eval("65536 * 65536", &ev),
            (Value::Integer(i32::MAX), Some(Math))
        );
        assert_eq!(
            eval("-2147483648 / -1", &ev),
            (Value::Integer(i32::MAX), Some(Math))
        );
        assert_eq!(eval("-2147483648 % -1", &ev), (Value::Integer(0), None));
        assert_eq!(
            eval("-(-2147483648)", &ev),
            (Value::Integer(i32::MAX), Some(Math))
        );
        assert_eq!(eval("-7 % 3", &ev), (Value::Integer(-1), None));
        assert_eq!(eval("-7 / 2", &ev), (Value::Integer(-3), None));
    }

    #[test]
    fn exists_is_true_for_required_attributes() {
        let empty: HashMap<String, Value> = HashMap::new();
        let out = Expression::parse("EXISTS id AND EXISTS Type AND NOT EXISTS subject")
            .unwrap()
            .evaluate(&empty);
        assert_eq!(
            out,
            Evaluation {
                value: Value::Boolean(true),
                error: None
            }
        );
    }

    #[test]
    fn equality_uses_the_right_operand_type() {
        let ev = event(&[("seq", "5".into()), ("flag", Value::Boolean(true))]);
        assert_eq!(eval("seq = 5", &ev), (Value::Boolean(true), None));
        assert_eq!(eval("5 = seq", &ev), (Value::Boolean(true), None));
        assert_eq!(eval("flag = 'TRUE'", &ev), (Value::Boolean(false), None));
        assert_eq!(eval("'TRUE' = flag", &ev), (Value::Boolean(true), None));
        assert_eq!(
            eval("'abc' = 1", &ev),
            (Value::Boolean(false), Some(EvalErrorKind::Cast))
        );
    }

    #[test]
    fn parse_error_display() {
        let e = Expression::parse("a = (").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at position 5: expected an expression, found end of expression"
        );
        let ex: Expression = "a = 1".parse().unwrap();
        assert_eq!(ex.to_string(), "a = 1");
        assert_eq!(ex.source(), "a = 1");
    }
}

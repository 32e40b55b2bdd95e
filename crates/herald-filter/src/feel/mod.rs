//! FEEL (DMN 1.4 Friendly Enough Expression Language) filter expressions.
//!
//! An [`Expression`] is parsed once, when a subscription is saved, and evaluated for every
//! event. The fields of the event's `data` object are top-level variables (`amount > 100`);
//! the CloudEvents context attributes, extensions included, are the context `event`
//! (`event.type = "order.created"`). A filter matches only when the result is exactly `true`.
//!
//! # Why our own
//!
//! `dsntk-feel-parser`/`-evaluator` 0.3.0 (MIT OR Apache-2.0): every `parse_*` takes a
//! `FeelScope`, i.e. the variable names up front, but ours are whatever keys each event carries;
//! `evaluate` returns a bare `Value` with failures folded into null; and the evaluator pulls
//! `reqwest` (`blocking`, for Java calls), `regex` and the C `dfp-number-sys` decimal library,
//! 247 packages in its lock file. The subset filters need is small enough to own.
//!
//! # The subset
//!
//! - Literals: numbers (`12`, `1.5`, `.5`; no exponent), strings with `\"`, `\\`, `\n`,
//!   `\r`, `\t`, `\uXXXX` escapes (any other `\x` stays as written, handy in regexes),
//!   `true`, `false`, `null`, lists `[1, 2]`, contexts `{a: 1, "b c": a + 1}` (later entries
//!   see earlier ones).
//! - Names: single words (letters, digits, `_`). Names with spaces or symbols such as
//!   `order-id` cannot be written; use `get value(order, "order-id")`. Top-level keys of that
//!   kind are unreachable, as is the data when it is not a JSON object. `event` always means
//!   the context attributes (a data field called `event` is hidden); iteration variables and
//!   filter items shadow both.
//! - Paths `a.b.c`; on a list a path maps over the elements (`items.price`); on dates and
//!   date-times `year`, `month`, `day`, `weekday` (1 = Monday), plus `hour`, `minute`,
//!   `second` on date-times. Filters `list[cond]` (with `item` and the item's entries in
//!   scope) and `list[n]` (1-based, negative from the end).
//! - Operators, loosest first: `if then else` / `some` / `every` / `for`, `or`, `and`,
//!   comparisons with `between` and `in`, `+ -`, `* /`, `**` (left-associative), unary `-`
//!   (binds tighter than `**`: `-2 ** 2` is 4), then paths and filters.
//! - `and`/`or` use FEEL three-valued logic: `false and null` is false, `true and null` null.
//!   `=`/`!=` on different types give null, `null = null` is true, `null = 1` false.
//!   Ordering works on numbers, strings, dates and date-times of the same type.
//! - `x in` takes one test or a parenthesized, comma-separated group of them: a value (a list
//!   value means membership), `< e`, `<= e`, `> e`, `>= e`, `= e`, `!= e`, or an interval
//!   `[a..b]`, `(a..b)`, `]a..b[`, mixed ends allowed. No `not(...)` or `-` tests, and an
//!   interval's upper endpoint cannot itself end in a filter (`[1..l[2]]`; bracket it).
//! - `some` / `every x in l, y in m satisfies c` and `for x in l return e` (no ranges `1..3`).
//! - Built-ins (positional arguments only): `not`, `contains`, `starts with`, `ends with`,
//!   `upper case`, `lower case`, `substring` (1-based, negative start from the end, start 0
//!   is null), `substring before`, `substring after`, `string length`, `matches`, `string`,
//!   `number` (one argument), `abs`, `floor`, `ceiling`, `count`, `sum`, `min`, `max`, `all`,
//!   `any` (these five take a list or up to 256 arguments; empty `sum`/`min`/`max` is null),
//!   `list contains`, `get value`, `date and time` (one argument), `date` (1 or 3 arguments).
//!   A wrong argument count is a parse error; wrong argument types give null.
//! - Numbers are `f64`. Arithmetic results with a fractional part are rounded to 15
//!   significant digits, so `0.1 + 0.2 = 0.3` holds; integers are exact up to 2^53.
//!   Division by zero and overflow give null. `string + string` concatenates (up to 1 MiB).
//! - Dates and times: `date("2026-01-01")`, `date(2026, 1, 1)`, and `date and time(...)` from
//!   RFC 3339 text (`2026-01-01T10:00:00Z`, `...+02:00`, fractions allowed), from text without
//!   an offset or from a date, both taken as UTC. No time zones by name (`@Europe/Paris`), no
//!   `time`, no durations or date arithmetic; a date and a date-time are not comparable.
//! - `matches(input, pattern, flags?)` supports literals, `.`, classes `[a-z]`, `[^...]`,
//!   `\d \D \w \W \s \S` (`\d` is ASCII digits), escaped punctuation, `\n \r \t`, `^`, `$`,
//!   groups `(...)` / `(?:...)`, `|`, and `* + ? {n} {n,} {n,m}` (lazy forms accepted, up to
//!   1000), flags `i s m x`. No back-references, look-around, `\p{..}` or class subtraction.
//!   Matching runs in linear time; a literal pattern is compiled (and checked) at parse time.
//! - Comments `// ...` and `/* ... */`.
//!
//! Limits: at most [`MAX_SOURCE_CHARS`] characters and [`MAX_NESTING`] levels of brackets and
//! nested constructs (checked before recursing), and a syntax tree at most 128 levels high
//! (long `a + b + ...` chains; `and`/`or` chains do not count). Evaluation is capped at about
//! a million steps (nodes visited, JSON nodes converted, regex steps); past that the result
//! is null. Error positions are 0-based character offsets.

mod ast;
mod eval;
mod functions;
mod guards;
mod lexer;
mod parser;
mod regex;
mod value;

use serde_json::{Map, Value as Json};

pub use value::Value;

/// Longest accepted source text, in characters.
pub const MAX_SOURCE_CHARS: usize = 4096;
/// Deepest accepted nesting of brackets, calls and `if`/`some`/`every`/`for` constructs.
pub const MAX_NESTING: usize = 64;

/// A compiled FEEL expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: ast::Expr,
}

pub use crate::parse_error::ParseError;

impl Expression {
    /// Parses and checks `src`; the result can be evaluated any number of times.
    pub fn parse(src: &str) -> Result<Expression, ParseError> {
        if src.chars().nth(MAX_SOURCE_CHARS).is_some() {
            return Err(ParseError::new(
                MAX_SOURCE_CHARS,
                format!("expression longer than {MAX_SOURCE_CHARS} characters"),
            ));
        }
        Ok(Expression {
            source: src.to_string(),
            root: parser::parse(src)?,
        })
    }

    /// The text this expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against an event: `data` supplies the top-level variables and `event` (the
    /// CloudEvent context attributes as a JSON object) the `event` context.
    pub fn evaluate(&self, data: &Json, event: &Map<String, Json>) -> Value {
        eval::Env::new(data, event).run(&self.root)
    }

    /// [`evaluate`](Self::evaluate), converted to JSON (for key expressions and lookups).
    pub fn evaluate_json(&self, data: &Json, event: &Map<String, Json>) -> Json {
        self.evaluate(data, event).to_json()
    }

    /// Necessary conditions for a match, for the routing index (see [`crate::guard`]).
    pub fn required(&self) -> crate::guard::Required {
        guards::required(&self.root)
    }

    /// Whether the expression evaluates to exactly `true`.
    pub fn matches(&self, data: &Json, event: &Map<String, Json>) -> bool {
        self.evaluate(data, event).is_true()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone + std::fmt::Debug>() {}

    #[test]
    fn expression_is_shareable() {
        assert_send_sync_clone::<Expression>();
        assert_send_sync_clone::<Value>();
    }
}

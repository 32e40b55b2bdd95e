//! CESQL values and types (spec §3.1) and the type casts between them (spec §3.7).
//! Implicit casts (operator operands, function arguments) and explicit casts (`INT`, `BOOL`,
//! `STRING`) share the same table, except that an implicit Integer -> Boolean cast is refused.

use std::fmt;

use super::error::{EvalError, EvalErrorKind};

/// A CESQL value: one of the three primitive types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Boolean(bool),
    Integer(i32),
    String(String),
}

/// The three primitive CESQL types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Boolean,
    Integer,
    String,
}

impl Type {
    /// The zero value of the type (`false`, `0`, `""`).
    pub fn zero(self) -> Value {
        match self {
            Type::Boolean => Value::Boolean(false),
            Type::Integer => Value::Integer(0),
            Type::String => Value::String(String::new()),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Boolean => "Boolean",
            Type::Integer => "Integer",
            Type::String => "String",
        })
    }
}

impl Value {
    /// The type of this value.
    pub fn value_type(&self) -> Type {
        match self {
            Value::Boolean(_) => Type::Boolean,
            Value::Integer(_) => Type::Integer,
            Value::String(_) => Type::String,
        }
    }
}

impl fmt::Display for Value {
    /// Formats the value as the `STRING()` cast would.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Integer(i)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

/// Whether a cast was written by the user (`BOOL(x)`) or inserted by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastMode {
    Explicit,
    Implicit,
}

/// A cast result: the converted value plus the cast error, if any.
pub(crate) type Cast<T> = (T, Option<EvalError>);

fn cast_error(from: &Value, to: Type, why: &str) -> EvalError {
    EvalError::new(
        EvalErrorKind::Cast,
        format!("cannot cast {} {from:?} to {to}: {why}", from.value_type()),
    )
}

/// String -> Integer: base 10 with an optional leading sign, no whitespace.
pub(crate) fn parse_integer(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok()
}

/// String -> Boolean: the lower-case representation must be exactly `true` or `false`.
pub(crate) fn parse_boolean(s: &str) -> Option<bool> {
    // Only strings of length 4 or 5 can match; avoid lower-casing long strings.
    if s.chars().count() > 5 {
        return None;
    }
    match s.to_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

pub(crate) fn to_integer(v: &Value) -> Cast<i32> {
    match v {
        Value::Integer(i) => (*i, None),
        Value::Boolean(b) => (i32::from(*b), None),
        Value::String(s) => match parse_integer(s) {
            Some(i) => (i, None),
            None => (
                0,
                Some(cast_error(v, Type::Integer, "not a 32-bit base 10 integer")),
            ),
        },
    }
}

pub(crate) fn to_boolean(v: &Value, mode: CastMode) -> Cast<bool> {
    match v {
        Value::Boolean(b) => (*b, None),
        Value::Integer(i) => match mode {
            CastMode::Explicit => (*i != 0, None),
            CastMode::Implicit => (
                false,
                Some(cast_error(
                    v,
                    Type::Boolean,
                    "integers are only converted to booleans by BOOL()",
                )),
            ),
        },
        Value::String(s) => match parse_boolean(s) {
            Some(b) => (b, None),
            None => (
                false,
                Some(cast_error(v, Type::Boolean, "expected 'true' or 'false'")),
            ),
        },
    }
}

/// Any value -> String; this cast never fails.
pub(crate) fn to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Casts `v` to `target`.
pub(crate) fn cast(v: &Value, target: Type, mode: CastMode) -> Cast<Value> {
    match target {
        Type::Boolean => {
            let (b, e) = to_boolean(v, mode);
            (Value::Boolean(b), e)
        }
        Type::Integer => {
            let (i, e) = to_integer(v);
            (Value::Integer(i), e)
        }
        Type::String => (Value::String(to_string(v)), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_integer() {
        assert_eq!(to_integer(&"42".into()), (42, None));
        assert_eq!(to_integer(&"+42".into()).0, 42);
        assert_eq!(to_integer(&"-2147483648".into()), (i32::MIN, None));
        for bad in [
            "",
            "+",
            "-",
            " 1",
            "1 ",
            "2147483648",
            "1.0",
            "0x10",
            "++1",
            "١",
        ] {
            let (v, e) = to_integer(&bad.into());
            assert_eq!(v, 0, "{bad:?}");
            assert_eq!(e.unwrap().kind, EvalErrorKind::Cast, "{bad:?}");
        }
    }

    #[test]
    fn string_to_boolean() {
        assert_eq!(to_boolean(&"TrUe".into(), CastMode::Implicit), (true, None));
        assert_eq!(
            to_boolean(&"FALSE".into(), CastMode::Implicit),
            (false, None)
        );
        let (v, e) = to_boolean(&"yes".into(), CastMode::Explicit);
        assert!(!v && e.is_some());
    }

    #[test]
    fn integer_to_boolean_depends_on_mode() {
        assert_eq!(
            to_boolean(&Value::Integer(-5), CastMode::Explicit),
            (true, None)
        );
        assert_eq!(
            to_boolean(&Value::Integer(0), CastMode::Explicit),
            (false, None)
        );
        let (v, e) = to_boolean(&Value::Integer(10), CastMode::Implicit);
        assert!(!v);
        assert_eq!(e.unwrap().kind, EvalErrorKind::Cast);
    }

    #[test]
    fn to_string_forms() {
        assert_eq!(to_string(&Value::Integer(-7)), "-7");
        assert_eq!(to_string(&Value::Boolean(true)), "true");
        assert_eq!(to_string(&Value::Boolean(false)), "false");
    }
}

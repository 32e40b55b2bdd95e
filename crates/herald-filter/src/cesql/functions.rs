//! Built-in functions (spec §3.5 plus the casting functions `INT`, `BOOL`, `STRING`, `IS_INT`,
//! `IS_BOOL`). Calls are resolved by case-insensitive name and arity at parse time; an unknown
//! name/arity compiles to [`Callee::Missing`], which evaluates to `false` + MissingFunctionError.

use super::error::{EvalError, EvalErrorKind};
use super::value::{self, Cast, CastMode, Type, Value};

/// The target of a function invocation, resolved at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Callee {
    Builtin(Builtin),
    /// No function with this name and arity: the name as written.
    Missing(String),
}

impl Callee {
    pub(crate) fn resolve(name: &str, arity: usize) -> Callee {
        Builtin::resolve(&name.to_ascii_uppercase(), arity)
            .map_or_else(|| Callee::Missing(name.to_owned()), Callee::Builtin)
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Callee::Builtin(b) => b.name(),
            Callee::Missing(name) => name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    SubstringLen,
    Abs,
    Int,
    Bool,
    Str,
    IsInt,
    IsBool,
}

/// Declared type of a parameter; `Any` parameters are passed through uncast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    Any,
    Of(Type),
}

impl Builtin {
    fn resolve(upper_name: &str, arity: usize) -> Option<Builtin> {
        use Builtin::*;
        Some(match (upper_name, arity) {
            ("LENGTH", 1) => Length,
            ("CONCAT", _) => Concat,
            ("CONCAT_WS", n) if n >= 1 => ConcatWs,
            ("LOWER", 1) => Lower,
            ("UPPER", 1) => Upper,
            ("TRIM", 1) => Trim,
            ("LEFT", 2) => Left,
            ("RIGHT", 2) => Right,
            ("SUBSTRING", 2) => Substring,
            ("SUBSTRING", 3) => SubstringLen,
            ("ABS", 1) => Abs,
            ("INT", 1) => Int,
            ("BOOL", 1) => Bool,
            ("STRING", 1) => Str,
            ("IS_INT", 1) => IsInt,
            ("IS_BOOL", 1) => IsBool,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        use Builtin::*;
        match self {
            Length => "LENGTH",
            Concat => "CONCAT",
            ConcatWs => "CONCAT_WS",
            Lower => "LOWER",
            Upper => "UPPER",
            Trim => "TRIM",
            Left => "LEFT",
            Right => "RIGHT",
            Substring | SubstringLen => "SUBSTRING",
            Abs => "ABS",
            Int => "INT",
            Bool => "BOOL",
            Str => "STRING",
            IsInt => "IS_INT",
            IsBool => "IS_BOOL",
        }
    }

    pub(crate) fn return_type(self) -> Type {
        use Builtin::*;
        match self {
            Length | Abs | Int => Type::Integer,
            Bool | IsInt | IsBool => Type::Boolean,
            Concat | ConcatWs | Lower | Upper | Trim | Left | Right | Substring | SubstringLen
            | Str => Type::String,
        }
    }

    /// Declared type of the argument at `index` (0-based).
    pub(crate) fn param(self, index: usize) -> Param {
        use Builtin::*;
        match (self, index) {
            (Int | Bool | Str, _) => Param::Any,
            (Abs, _) => Param::Of(Type::Integer),
            (Left | Right | Substring | SubstringLen, i) if i > 0 => Param::Of(Type::Integer),
            _ => Param::Of(Type::String),
        }
    }

    /// Calls the function; `args` have already been cast to the declared parameter types.
    pub(crate) fn call(self, args: &[Value]) -> Cast<Value> {
        use Builtin::*;
        let arg_str = |i: usize| match args.get(i) {
            Some(Value::String(s)) => s.as_str(),
            _ => "",
        };
        let arg_int = |i: usize| match args.get(i) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        };
        let arg_any = |i: usize| args.get(i).cloned().unwrap_or(Value::Boolean(false));
        let string = |s: String| (Value::String(s), None);
        match self {
            Length => {
                let n = arg_str(0).chars().count();
                (Value::Integer(i32::try_from(n).unwrap_or(i32::MAX)), None)
            }
            Concat => string((0..args.len()).map(arg_str).collect()),
            ConcatWs => {
                let parts: Vec<&str> = (1..args.len()).map(arg_str).collect();
                string(parts.join(arg_str(0)))
            }
            Lower => string(arg_str(0).to_lowercase()),
            Upper => string(arg_str(0).to_uppercase()),
            Trim => string(arg_str(0).trim().to_owned()),
            Left | Right => {
                let (x, y) = (arg_str(0), arg_int(1));
                let Ok(y) = usize::try_from(y) else {
                    return (
                        Value::String(x.to_owned()),
                        Some(fn_error(self, format!("negative length {y}"))),
                    );
                };
                let len = x.chars().count();
                if self == Left {
                    string(x.chars().take(y).collect())
                } else {
                    string(x.chars().skip(len.saturating_sub(y)).collect())
                }
            }
            Substring => substring(arg_str(0), arg_int(1), None),
            SubstringLen => substring(arg_str(0), arg_int(1), Some(arg_int(2))),
            Abs => match arg_int(0).checked_abs() {
                Some(n) => (Value::Integer(n), None),
                None => (
                    Value::Integer(i32::MAX),
                    Some(EvalError::new(
                        EvalErrorKind::Math,
                        "ABS(-2147483648) overflows a 32-bit integer",
                    )),
                ),
            },
            Int => value::cast(&arg_any(0), Type::Integer, CastMode::Explicit),
            Bool => value::cast(&arg_any(0), Type::Boolean, CastMode::Explicit),
            Str => value::cast(&arg_any(0), Type::String, CastMode::Explicit),
            IsInt => (
                Value::Boolean(value::parse_integer(arg_str(0)).is_some()),
                None,
            ),
            IsBool => (
                Value::Boolean(value::parse_boolean(arg_str(0)).is_some()),
                None,
            ),
        }
    }
}

fn fn_error(f: Builtin, message: String) -> EvalError {
    EvalError::new(
        EvalErrorKind::FunctionEvaluation,
        format!("{}: {message}", f.name()),
    )
}

/// `SUBSTRING(x, pos[, len])`: 1-based `pos`, negative `pos` counts from the end, `pos = 0`
/// gives `""`; out-of-range `pos` or negative `len` give `""` + FunctionEvaluationError.
fn substring(x: &str, pos: i32, len: Option<i32>) -> Cast<Value> {
    let fail = |message: String| {
        (
            Value::String(String::new()),
            Some(fn_error(Builtin::Substring, message)),
        )
    };
    let n = i64::try_from(x.chars().count()).unwrap_or(i64::MAX);
    let pos = i64::from(pos);
    if let Some(l) = len.filter(|l| *l < 0) {
        return fail(format!("negative length {l}"));
    }
    if pos > n || pos < -n {
        return fail(format!(
            "position {pos} out of range for a string of length {n}"
        ));
    }
    if pos == 0 {
        return (Value::String(String::new()), None);
    }
    let start = if pos > 0 { pos - 1 } else { n + pos };
    let available = n - start;
    let take = len.map_or(available, |l| i64::from(l).min(available));
    let (start, take) = (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(take).unwrap_or(0),
    );
    (
        Value::String(x.chars().skip(start).take(take).collect()),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Value>) -> Cast<Value> {
        match Callee::resolve(name, args.len()) {
            Callee::Builtin(b) => b.call(&args),
            Callee::Missing(_) => panic!("{name}/{} not resolved", args.len()),
        }
    }

    #[test]
    fn resolution_is_case_insensitive_and_arity_aware() {
        assert_eq!(
            Callee::resolve("concat_ws", 1),
            Callee::Builtin(Builtin::ConcatWs)
        );
        assert_eq!(
            Callee::resolve("Concat", 0),
            Callee::Builtin(Builtin::Concat)
        );
        assert_eq!(
            Callee::resolve("CONCAT_WS", 0),
            Callee::Missing("CONCAT_WS".into())
        );
        assert_eq!(
            Callee::resolve("length", 2),
            Callee::Missing("length".into())
        );
        assert_eq!(
            Callee::resolve("SUBSTRING", 3),
            Callee::Builtin(Builtin::SubstringLen)
        );
        assert_eq!(Callee::resolve("nope", 1), Callee::Missing("nope".into()));
    }

    #[test]
    fn string_functions_count_characters() {
        assert_eq!(call("LENGTH", vec!["héllo".into()]).0, Value::Integer(5));
        assert_eq!(call("LEFT", vec!["héllo".into(), 2.into()]).0, "hé".into());
        assert_eq!(
            call("RIGHT", vec!["héllo".into(), 4.into()]).0,
            "éllo".into()
        );
        assert_eq!(
            call("SUBSTRING", vec!["héllo".into(), (-4).into(), 2.into()]).0,
            "él".into()
        );
        assert_eq!(
            call("CONCAT_WS", vec!["-".into(), "a".into(), "b".into()]).0,
            "a-b".into()
        );
        assert_eq!(call("TRIM", vec!["\u{2003} x \n".into()]).0, "x".into());
    }

    #[test]
    fn substring_edge_cases() {
        let s = |pos: i32, len: Option<i32>| substring("abc", pos, len);
        assert_eq!(s(3, None), ("c".into(), None));
        assert_eq!(s(-3, None), ("abc".into(), None));
        assert_eq!(s(1, Some(0)), ("".into(), None));
        assert_eq!(s(2, Some(i32::MAX)), ("bc".into(), None));
        assert_eq!(
            s(i32::MIN, None).1.unwrap().kind,
            EvalErrorKind::FunctionEvaluation
        );
        assert_eq!(
            s(4, None).1.unwrap().kind,
            EvalErrorKind::FunctionEvaluation
        );
        assert_eq!(
            s(1, Some(-1)).1.unwrap().kind,
            EvalErrorKind::FunctionEvaluation
        );
        assert_eq!(substring("", 0, None), ("".into(), None));
    }

    #[test]
    fn casting_functions() {
        assert_eq!(call("INT", vec!["+7".into()]), (Value::Integer(7), None));
        assert_eq!(
            call("BOOL", vec![Value::Integer(2)]),
            (Value::Boolean(true), None)
        );
        assert_eq!(
            call("STRING", vec![Value::Boolean(false)]),
            ("false".into(), None)
        );
        assert_eq!(call("IS_INT", vec!["12".into()]).0, Value::Boolean(true));
        assert_eq!(call("IS_INT", vec!["1x".into()]).0, Value::Boolean(false));
        assert_eq!(
            call("IS_BOOL", vec!["False".into()]).0,
            Value::Boolean(true)
        );
    }
}

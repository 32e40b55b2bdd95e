//! Evaluation of a compiled expression against one event (spec §3.2-3.7). Every node yields a
//! value plus at most one error. An operator whose operand reported an error does not compute:
//! it returns the zero value of its own return type with that error (so `NOT missing` is false).

use super::ast::{BinaryOp, Expr};
use super::context::EventContext;
use super::error::{EvalError, EvalErrorKind};
use super::functions::{Callee, Param};
use super::like::LikePattern;
use super::value::{self, CastMode, Type, Value};
use super::Evaluation;

/// Attributes every valid CloudEvent carries: `EXISTS` is always true for them (spec §3.4.4).
const REQUIRED_ATTRIBUTES: [&str; 4] = ["id", "source", "specversion", "type"];

/// Dispatches on the node kind; kept free of locals so that each level of recursion only
/// pays for the stack frame of the operator actually evaluated.
pub(crate) fn evaluate(expr: &Expr, ev: &dyn EventContext) -> Evaluation {
    match expr {
        Expr::Literal(v) => ok(v.clone()),
        Expr::Attribute(name) => attribute(name, ev),
        Expr::Exists(name) => ok(Value::Boolean(
            REQUIRED_ATTRIBUTES.contains(&name.as_str()) || ev.attribute(name).is_some(),
        )),
        Expr::Not(operand) => not(operand, ev),
        Expr::Negate(operand) => negate(operand, ev),
        Expr::Chain { first, rest } => chain(first, rest, ev),
        Expr::Like {
            operand,
            pattern,
            negated,
        } => like(operand, pattern, *negated, ev),
        Expr::In {
            operand,
            set,
            negated,
        } => in_set(operand, set, *negated, ev),
        Expr::Call { callee, args } => call(callee, args, ev),
    }
}

fn attribute(name: &str, ev: &dyn EventContext) -> Evaluation {
    match ev.attribute(name) {
        Some(v) => ok(v),
        // The type of a bare attribute cannot be known: assume Boolean (spec §3.2).
        None => fail(
            Type::Boolean,
            EvalError::new(
                EvalErrorKind::MissingAttribute,
                format!("the event has no attribute '{name}'"),
            ),
        ),
    }
}

fn not(operand: &Expr, ev: &dyn EventContext) -> Evaluation {
    let v = match operand_value(operand, ev, Type::Boolean) {
        Ok(v) => v,
        Err(out) => return out,
    };
    let (b, error) = value::to_boolean(&v, CastMode::Implicit);
    with(Value::Boolean(!b), error)
}

fn negate(operand: &Expr, ev: &dyn EventContext) -> Evaluation {
    let v = match operand_value(operand, ev, Type::Integer) {
        Ok(v) => v,
        Err(out) => return out,
    };
    let (i, error) = value::to_integer(&v);
    match i.checked_neg() {
        Some(n) => with(Value::Integer(n), error),
        None => with(
            Value::Integer(i32::MAX),
            error.or(Some(overflow("-", i, None))),
        ),
    }
}

fn like(operand: &Expr, pattern: &LikePattern, negated: bool, ev: &dyn EventContext) -> Evaluation {
    let v = match operand_value(operand, ev, Type::Boolean) {
        Ok(v) => v,
        Err(out) => return out,
    };
    let matched = pattern.matches(&value::to_string(&v));
    ok(Value::Boolean(matched != negated))
}

fn ok(value: Value) -> Evaluation {
    Evaluation { value, error: None }
}

fn with(value: Value, error: Option<EvalError>) -> Evaluation {
    Evaluation { value, error }
}

fn fail(result_type: Type, error: EvalError) -> Evaluation {
    with(result_type.zero(), Some(error))
}

/// Evaluates an operand; if it reports an error, the caller must return the `Err` as is:
/// the zero value of the caller's `result_type` together with the operand's error.
fn operand_value(
    expr: &Expr,
    ev: &dyn EventContext,
    result_type: Type,
) -> Result<Value, Evaluation> {
    let out = evaluate(expr, ev);
    match out.error {
        None => Ok(out.value),
        Some(error) => Err(fail(result_type, error)),
    }
}

fn overflow(op: &str, a: i32, b: Option<i32>) -> EvalError {
    let expr = match b {
        Some(b) => format!("{a} {op} {b}"),
        None => format!("{op}({a})"),
    };
    EvalError::new(
        EvalErrorKind::Math,
        format!("{expr} overflows a 32-bit integer"),
    )
}

fn result_type(op: BinaryOp) -> Type {
    match op {
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Add | BinaryOp::Sub => {
            Type::Integer
        }
        _ => Type::Boolean,
    }
}

fn chain(first: &Expr, rest: &[(BinaryOp, Expr)], ev: &dyn EventContext) -> Evaluation {
    let mut acc = evaluate(first, ev);
    for (op, rhs) in rest {
        acc = match acc.error {
            Some(error) => fail(result_type(*op), error),
            None => binary(*op, &acc.value, rhs, ev),
        };
    }
    acc
}

fn binary(op: BinaryOp, left: &Value, rhs: &Expr, ev: &dyn EventContext) -> Evaluation {
    use BinaryOp::*;
    if matches!(op, And | Or) {
        let (l, left_error) = value::to_boolean(left, CastMode::Implicit);
        // Short-circuit: the right operand is not evaluated at all.
        if (op == And && !l) || (op == Or && l) {
            return with(Value::Boolean(l), left_error);
        }
        let right = match operand_value(rhs, ev, Type::Boolean) {
            Ok(v) => v,
            Err(out) => return out,
        };
        let (r, right_error) = value::to_boolean(&right, CastMode::Implicit);
        return with(Value::Boolean(r), left_error.or(right_error));
    }
    let right = match operand_value(rhs, ev, result_type(op)) {
        Ok(v) => v,
        Err(out) => return out,
    };
    match op {
        Xor => {
            let (l, e1) = value::to_boolean(left, CastMode::Implicit);
            let (r, e2) = value::to_boolean(&right, CastMode::Implicit);
            with(Value::Boolean(l != r), e1.or(e2))
        }
        Eq | NotEq => {
            // Ambiguous operator: the right operand's type selects the definition (spec §3.7).
            let (l, error) = value::cast(left, right.value_type(), CastMode::Implicit);
            with(Value::Boolean((l == right) == (op == Eq)), error)
        }
        _ => {
            let (a, e1) = value::to_integer(left);
            let (b, e2) = value::to_integer(&right);
            let (v, e3) = integer_op(op, a, b);
            with(v, e1.or(e2).or(e3))
        }
    }
}

/// The Integer x Integer operators: arithmetic and ordering comparisons.
fn integer_op(op: BinaryOp, a: i32, b: i32) -> (Value, Option<EvalError>) {
    use BinaryOp::*;
    let arithmetic = |checked: Option<i32>, saturated: i32| match checked {
        Some(v) => (Value::Integer(v), None),
        None => (
            Value::Integer(saturated),
            Some(overflow(op.symbol(), a, Some(b))),
        ),
    };
    let by_zero = || {
        (
            Value::Integer(0),
            Some(EvalError::new(
                EvalErrorKind::Math,
                format!("{a} {} 0: division by zero", op.symbol()),
            )),
        )
    };
    match op {
        Add => arithmetic(a.checked_add(b), a.saturating_add(b)),
        Sub => arithmetic(a.checked_sub(b), a.saturating_sub(b)),
        Mul => arithmetic(a.checked_mul(b), a.saturating_mul(b)),
        Div if b == 0 => by_zero(),
        Div => arithmetic(a.checked_div(b), i32::MAX),
        Mod if b == 0 => by_zero(),
        // i32::MIN % -1 only overflows in the machine, mathematically it is 0.
        Mod => (Value::Integer(a.checked_rem(b).unwrap_or(0)), None),
        Lt => (Value::Boolean(a < b), None),
        Le => (Value::Boolean(a <= b), None),
        Gt => (Value::Boolean(a > b), None),
        Ge => (Value::Boolean(a >= b), None),
        Eq | NotEq | And | Or | Xor => (Value::Boolean(false), None),
    }
}

fn in_set(operand: &Expr, set: &[Expr], negated: bool, ev: &dyn EventContext) -> Evaluation {
    let x = match operand_value(operand, ev, Type::Boolean) {
        Ok(v) => v,
        Err(out) => return out,
    };
    // The left operand's type is the target type of the set elements (spec §3.7).
    let target = x.value_type();
    let mut found = false;
    let mut cast_error = None;
    for element in set {
        let v = match operand_value(element, ev, Type::Boolean) {
            Ok(v) => v,
            Err(out) => return out,
        };
        let (v, error) = value::cast(&v, target, CastMode::Implicit);
        cast_error = cast_error.or(error);
        found |= v == x;
    }
    with(Value::Boolean(found != negated), cast_error)
}

fn call(callee: &Callee, args: &[Expr], ev: &dyn EventContext) -> Evaluation {
    let builtin = match callee {
        Callee::Builtin(b) => *b,
        Callee::Missing(name) => {
            return fail(
                Type::Boolean,
                EvalError::new(
                    EvalErrorKind::MissingFunction,
                    format!("no function {name} accepting {} argument(s)", args.len()),
                ),
            )
        }
    };
    let mut values = Vec::with_capacity(args.len());
    let mut cast_error = None;
    for (i, arg) in args.iter().enumerate() {
        let v = match operand_value(arg, ev, builtin.return_type()) {
            Ok(v) => v,
            Err(out) => return out,
        };
        let v = match builtin.param(i) {
            Param::Any => v,
            Param::Of(t) => {
                let (v, error) = value::cast(&v, t, CastMode::Implicit);
                cast_error = cast_error.or(error);
                v
            }
        };
        values.push(v);
    }
    let (value, error) = builtin.call(&values);
    with(value, cast_error.or(error))
}

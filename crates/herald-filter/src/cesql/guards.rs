//! The routing guards of a CESQL expression (see [`crate::guard`]): comparisons of a string
//! context attribute with a literal, `LIKE` with a plain pattern, `IN` a literal list, and
//! Integer comparisons of any attribute, joined by `AND`/`OR`.

use super::ast::{BinaryOp, Expr};
use super::value::Value;
use crate::guard::{self, is_string_attribute, Guard, Probe, Required, Test};

pub(crate) fn required(expr: &Expr) -> Required {
    if let Expr::Chain { first, rest } = expr {
        let parts = || std::iter::once(&**first).chain(rest.iter().map(|(_, e)| e));
        if rest.iter().all(|(op, _)| *op == BinaryOp::And) {
            return guard::all_of(parts().map(required));
        }
        if rest.iter().all(|(op, _)| *op == BinaryOp::Or) {
            return guard::any_of(parts().map(required));
        }
    }
    guards(expr).map(|set| vec![set]).unwrap_or_default()
}

/// The alternatives of one comparison-like expression.
fn guards(expr: &Expr) -> Option<Vec<Guard>> {
    match expr {
        Expr::Chain { first, rest } => match rest.as_slice() {
            [(op, right)] => comparison(*op, first, right),
            _ => None,
        },
        Expr::Like {
            operand,
            pattern,
            negated: false,
        } => {
            let name = string_attribute(operand)?;
            Some(vec![Guard {
                probe: Probe::Attribute(name.to_string()),
                test: pattern.as_test()?,
            }])
        }
        Expr::In {
            operand,
            set,
            negated: false,
        } => {
            let name = string_attribute(operand)?;
            set.iter()
                .map(|e| match e {
                    Expr::Literal(Value::String(s)) => Some(Guard {
                        probe: Probe::Attribute(name.to_string()),
                        test: Test::Equals(s.clone()),
                    }),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

fn string_attribute(e: &Expr) -> Option<&str> {
    match e {
        Expr::Attribute(name) if is_string_attribute(name) => Some(name),
        _ => None,
    }
}

/// `attr = 'x'` (either way round) and `attr > 5`-style comparisons with a literal.
fn comparison(op: BinaryOp, left: &Expr, right: &Expr) -> Option<Vec<Guard>> {
    let (name, literal, attribute_left) = match (left, right) {
        (Expr::Attribute(n), Expr::Literal(v)) => (n, v, true),
        (Expr::Literal(v), Expr::Attribute(n)) => (n, v, false),
        _ => return None,
    };
    let guard = match (op, literal) {
        // A string attribute against a string: both orders compare as strings.
        (BinaryOp::Eq, Value::String(s)) if is_string_attribute(name) => Guard {
            probe: Probe::Attribute(name.clone()),
            test: Test::Equals(s.clone()),
        },
        // Ordering operators cast both sides to Integer; a failed cast never matches.
        (BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Lt | BinaryOp::Le, Value::Integer(bound)) => {
            let greater = matches!(op, BinaryOp::Gt | BinaryOp::Ge) == attribute_left;
            Guard {
                probe: Probe::SqlInteger(name.clone()),
                test: guard::range(
                    greater,
                    matches!(op, BinaryOp::Ge | BinaryOp::Le),
                    f64::from(*bound),
                ),
            }
        }
        _ => return None,
    };
    Some(vec![guard])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cesql::Expression;

    fn guards_of(src: &str) -> Option<Vec<Guard>> {
        guard::narrowest(Expression::parse(src).unwrap().required())
    }

    fn attr(name: &str, test: Test) -> Guard {
        Guard {
            probe: Probe::Attribute(name.into()),
            test,
        }
    }

    #[test]
    fn derives_guards_from_plain_shapes() {
        assert_eq!(
            guards_of("type = 'a.b'"),
            Some(vec![attr("type", Test::Equals("a.b".into()))])
        );
        assert_eq!(
            guards_of("'a.b' = type"),
            Some(vec![attr("type", Test::Equals("a.b".into()))])
        );
        assert_eq!(
            guards_of("subject LIKE 'eu/%' AND priority > 5"),
            Some(vec![attr("subject", Test::StartsWith("eu/".into()))])
        );
        assert_eq!(
            guards_of("type = 'x' OR priority > 6"),
            Some(vec![
                attr("type", Test::Equals("x".into())),
                Guard {
                    probe: Probe::SqlInteger("priority".into()),
                    test: Test::Above {
                        bound: 6.0,
                        inclusive: false
                    }
                }
            ])
        );
        assert_eq!(
            guards_of("6 >= priority").unwrap()[0].test,
            Test::Below {
                bound: 6.0,
                inclusive: true
            }
        );
        assert_eq!(
            guards_of("source IN ('a', 'b')").unwrap().len(),
            2,
            "one alternative per listed value"
        );
    }

    #[test]
    fn refuses_shapes_it_cannot_bound() {
        for src in [
            "NOT (type = 'x')",
            "type = 'x' OR EXISTS subject",
            "myext = 'x'",
            "subject NOT LIKE 'a%'",
            "subject LIKE 'a_%'",
            "type = 'x' XOR subject = 'y'",
            "source IN ('a', subject)",
            "priority + 1 > 5",
            "TRUE",
        ] {
            assert_eq!(guards_of(src), None, "{src}");
        }
    }
}

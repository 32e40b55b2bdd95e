//! The routing guards of a FEEL expression (see [`crate::guard`]): a data field or
//! `event.<string attribute>` compared with a literal (`=` a string, `<`/`>` a number, `in` a
//! list of strings), joined by `and`/`or`. Names here are top-level, never locals: the walk
//! does not enter quantifiers, `for`, filters or calls.

use super::ast::{CmpOp, Expr, UnaryTest};
use crate::guard::{self, is_string_attribute, Guard, Probe, Required, Test};

pub(crate) fn required(expr: &Expr) -> Required {
    match expr {
        Expr::And(parts) => guard::all_of(parts.iter().map(required)),
        Expr::Or(parts) => guard::any_of(parts.iter().map(required)),
        _ => guards(expr).map(|set| vec![set]).unwrap_or_default(),
    }
}

/// The alternatives of one comparison-like expression.
fn guards(expr: &Expr) -> Option<Vec<Guard>> {
    match expr {
        Expr::Compare(op, a, b) => match (probe(a), probe(b)) {
            (Some(p), None) => comparison(p, *op, b, true),
            (None, Some(p)) => comparison(p, *op, a, false),
            _ => None,
        },
        Expr::In(value, tests) => {
            let probe = probe(value)?;
            let equals = |e: &Expr| match e {
                Expr::String(s) => Some(Guard {
                    probe: probe.clone(),
                    test: Test::Equals(s.clone()),
                }),
                _ => None,
            };
            let mut out = Vec::new();
            for t in tests {
                match t {
                    UnaryTest::Equal(Expr::List(items)) => {
                        for item in items {
                            out.push(equals(item)?);
                        }
                    }
                    UnaryTest::Equal(e) => out.push(equals(e)?),
                    _ => return None,
                }
            }
            (!out.is_empty()).then_some(out)
        }
        _ => None,
    }
}

/// A data field path (`a`, `a.b`) or a string context attribute (`event.type`).
fn probe(e: &Expr) -> Option<Probe> {
    let mut keys = Vec::new();
    let mut at = e;
    while let Expr::Path(base, key) = at {
        keys.push(key.clone());
        at = base;
    }
    let Expr::Name(root) = at else {
        return None;
    };
    keys.reverse();
    if root == "event" {
        match keys.as_slice() {
            [name] if is_string_attribute(name) => Some(Probe::Attribute(name.clone())),
            _ => None,
        }
    } else {
        keys.insert(0, root.clone());
        Some(Probe::Data(keys))
    }
}

fn comparison(probe: Probe, op: CmpOp, literal: &Expr, probe_left: bool) -> Option<Vec<Guard>> {
    let test = match (op, literal) {
        (CmpOp::Eq, Expr::String(s)) => Test::Equals(s.clone()),
        (CmpOp::Gt | CmpOp::Ge | CmpOp::Lt | CmpOp::Le, Expr::Number(n))
            if matches!(probe, Probe::Data(_)) =>
        {
            let greater = matches!(op, CmpOp::Gt | CmpOp::Ge) == probe_left;
            guard::range(greater, matches!(op, CmpOp::Ge | CmpOp::Le), *n)
        }
        _ => return None,
    };
    Some(vec![Guard { probe, test }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feel::Expression;

    fn guards_of(src: &str) -> Option<Vec<Guard>> {
        guard::narrowest(Expression::parse(src).unwrap().required())
    }

    fn data(path: &[&str], test: Test) -> Guard {
        Guard {
            probe: Probe::Data(path.iter().map(|s| s.to_string()).collect()),
            test,
        }
    }

    #[test]
    fn derives_guards_from_plain_shapes() {
        assert_eq!(
            guards_of(r#"currency = "USD" and amount > 10"#),
            Some(vec![data(&["currency"], Test::Equals("USD".into()))])
        );
        assert_eq!(
            guards_of("100 < amount"),
            Some(vec![data(
                &["amount"],
                Test::Above {
                    bound: 100.0,
                    inclusive: false
                }
            )])
        );
        assert_eq!(
            guards_of(r#"customer.tier = "gold" or event.type = "x""#),
            Some(vec![
                data(&["customer", "tier"], Test::Equals("gold".into())),
                Guard {
                    probe: Probe::Attribute("type".into()),
                    test: Test::Equals("x".into())
                }
            ])
        );
        assert_eq!(
            guards_of(r#"region in ["eu", "us"]"#).map(|g| g.len()),
            Some(2)
        );
    }

    #[test]
    fn refuses_shapes_it_cannot_bound() {
        for src in [
            r#"not(currency = "USD")"#,
            r#"currency = "USD" or amount * 2 > 10"#,
            "amount = 5",
            r#"event.priority = "5""#,
            r#"some i in items satisfies i = "x""#,
            r#"region in ["eu", 1]"#,
            r#"a = b"#,
            r#"if x then true else false"#,
        ] {
            assert_eq!(guards_of(src), None, "{src}");
        }
    }
}

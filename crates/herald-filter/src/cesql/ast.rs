//! The compiled form of an expression. Runs of same-precedence binary operators are kept as a
//! flat, left-associative [`Expr::Chain`], so long `a OR b OR c ...` lists add no nesting.
//! `Display` prints a fully parenthesised form; the parser tests use it to check precedence.

use std::fmt;

use super::functions::Callee;
use super::like::LikePattern;
use super::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Mul,
    Div,
    Mod,
    Add,
    Sub,
    Eq,
    /// `!=` and `<>`.
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

impl BinaryOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Xor => "XOR",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Literal(Value),
    /// A context attribute, by lower-case name.
    Attribute(String),
    /// `EXISTS name`.
    Exists(String),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    /// `first op1 e1 op2 e2 ...`, evaluated left to right; all ops share one precedence level.
    Chain {
        first: Box<Expr>,
        rest: Vec<(BinaryOp, Expr)>,
    },
    Like {
        operand: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    In {
        operand: Box<Expr>,
        set: Vec<Expr>,
        negated: bool,
    },
    Call {
        callee: Callee,
        args: Vec<Expr>,
    },
}

fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "'{}'", s.replace('\'', "\\'"))
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(Value::String(s)) => quoted(f, s),
            Expr::Literal(Value::Boolean(b)) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Literal(Value::Integer(i)) => write!(f, "{i}"),
            Expr::Attribute(name) => f.write_str(name),
            Expr::Exists(name) => write!(f, "(EXISTS {name})"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::Negate(e) => write!(f, "(-{e})"),
            Expr::Chain { first, rest } => {
                for _ in rest {
                    f.write_str("(")?;
                }
                write!(f, "{first}")?;
                for (op, e) in rest {
                    write!(f, " {} {e})", op.symbol())?;
                }
                Ok(())
            }
            Expr::Like {
                operand,
                pattern,
                negated,
            } => {
                write!(f, "({operand} {}LIKE ", if *negated { "NOT " } else { "" })?;
                quoted(f, pattern.source())?;
                f.write_str(")")
            }
            Expr::In {
                operand,
                set,
                negated,
            } => {
                write!(f, "({operand} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, e) in set.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("))")
            }
            Expr::Call { callee, args } => {
                write!(f, "{}(", callee.name())?;
                for (i, e) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
        }
    }
}

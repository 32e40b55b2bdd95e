//! Syntax tree of a parsed FEEL expression: built once by the parser, then walked by the
//! evaluator for every event. Built-in calls are resolved to [`Builtin`] at parse time.

use super::functions::Builtin;
use super::regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `name in expression` clauses of `some`, `every` and `for`.
pub(crate) type Bindings = Vec<(String, Expr)>;

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Expr>),
    Context(Vec<(String, Expr)>),
    Name(String),
    Path(Box<Expr>, String),
    /// `list[condition]` or `list[index]`.
    Filter(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// Flattened so that long `a and b and c ...` chains do not deepen the tree.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Between(Box<Expr>, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<UnaryTest>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Quantified {
        every: bool,
        bindings: Bindings,
        cond: Box<Expr>,
    },
    For {
        bindings: Bindings,
        body: Box<Expr>,
    },
    Call {
        func: Builtin,
        args: Vec<Expr>,
        /// `matches()` with literal pattern and flags compiles its regex once, here.
        regex: Option<Box<Regex>>,
    },
}

/// The right-hand side of `in`.
#[derive(Debug, Clone)]
pub(crate) enum UnaryTest {
    /// Equality, or membership when the value is a list.
    Equal(Expr),
    Compare(CmpOp, Expr),
    Range {
        low: Expr,
        high: Expr,
        low_closed: bool,
        high_closed: bool,
    },
}

impl Expr {
    fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) | Expr::Name(_) => {
                Vec::new()
            }
            Expr::List(items) | Expr::And(items) | Expr::Or(items) => items.iter().collect(),
            Expr::Call { args, .. } => args.iter().collect(),
            Expr::Context(entries) => entries.iter().map(|(_, e)| e).collect(),
            Expr::Path(base, _) | Expr::Neg(base) => vec![base],
            Expr::Filter(a, b) | Expr::Arith(_, a, b) | Expr::Compare(_, a, b) => vec![a, b],
            Expr::Between(a, b, c) | Expr::If(a, b, c) => vec![a, b, c],
            Expr::In(value, tests) => {
                let mut out: Vec<&Expr> = vec![value];
                for test in tests {
                    match test {
                        UnaryTest::Equal(e) | UnaryTest::Compare(_, e) => out.push(e),
                        UnaryTest::Range { low, high, .. } => {
                            out.push(low);
                            out.push(high);
                        }
                    }
                }
                out
            }
            Expr::Quantified { bindings, cond, .. } => {
                let mut out: Vec<&Expr> = bindings.iter().map(|(_, e)| e).collect();
                out.push(cond);
                out
            }
            Expr::For { bindings, body } => {
                let mut out: Vec<&Expr> = bindings.iter().map(|(_, e)| e).collect();
                out.push(body);
                out
            }
        }
    }

    /// Height of the tree, computed without recursion so that it is safe on any input;
    /// the evaluator recurses, so the parser rejects trees taller than a fixed bound.
    pub(crate) fn height(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((node, depth)) = stack.pop() {
            max = max.max(depth);
            stack.extend(node.children().into_iter().map(|c| (c, depth + 1)));
        }
        max
    }
}

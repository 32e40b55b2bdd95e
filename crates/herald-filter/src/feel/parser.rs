//! Pratt parser from tokens to [`Expr`]. Nesting is counted before every recursive step, so
//! hostile input such as 100 000 `(` gets a clean error instead of overflowing the stack.

use std::collections::HashSet;

use super::ast::{ArithOp, Bindings, CmpOp, Expr, UnaryTest};
use super::functions::{Builtin, MAX_NAME_WORDS};
use super::lexer::{tokenize, Tok, Token};
use super::regex::Regex;
use super::{ParseError, MAX_NESTING};

/// The evaluator recurses over the tree, so its height is bounded too; left-leaning chains
/// such as `a + b + c ...` add height without nesting.
pub(crate) const MAX_HEIGHT: usize = 128;

const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_CMP: u8 = 3;
const BP_ADD: u8 = 4;
const BP_MUL: u8 = 5;
const BP_POW: u8 = 6;
/// Unary minus binds tighter than `**`, as in the DMN precedence table: `-2 ** 2` is 4.
const BP_UNARY: u8 = 7;

/// Words that cannot be variable names because they would make the grammar ambiguous.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "if",
    "then",
    "else",
    "some",
    "every",
    "satisfies",
    "for",
    "return",
    "in",
    "between",
    "instance",
    "of",
    "function",
];

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        tokens,
        i: 0,
        depth: 0,
        high_endpoint: false,
    };
    let expr = parser.expression()?;
    if *parser.peek() != Tok::Eof {
        return Err(parser.unexpected("an operator or the end of the expression"));
    }
    if expr.height() > MAX_HEIGHT {
        return Err(ParseError::new(
            0,
            format!("expression too complex: syntax tree deeper than {MAX_HEIGHT} levels"),
        ));
    }
    Ok(expr)
}

enum Infix {
    Or,
    And,
    Cmp(CmpOp),
    Between,
    In,
    Arith(ArithOp),
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
    /// While parsing the upper endpoint of an interval, `[` closes it (`[1..10[`) rather than
    /// starting a filter.
    high_endpoint: bool,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.i].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.tokens
            .get(self.i + ahead)
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens[self.i].pos
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.i].clone();
        if self.i + 1 < self.tokens.len() {
            self.i += 1;
        }
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w == word)
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        ParseError::new(
            self.pos(),
            format!("expected {expected}, found {}", self.peek().describe()),
        )
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<(), ParseError> {
        if *self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), ParseError> {
        if self.is_word(word) {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{word}`")))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        // The top-level expression is level 0, so MAX_NESTING brackets fit.
        if self.depth > MAX_NESTING {
            return Err(ParseError::new(
                self.pos(),
                format!("expression nested deeper than {MAX_NESTING} levels"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A complete expression, as found at the top level and inside any brackets.
    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let saved = std::mem::replace(&mut self.high_endpoint, false);
        let expr = self.expr_bp(0)?;
        self.high_endpoint = saved;
        self.leave();
        Ok(expr)
    }

    fn expr_bp(&mut self, min_bp: u8) -> Result<Expr, ParseError> {
        let lhs = self.prefix()?;
        self.infix(lhs, min_bp)
    }

    fn infix(&mut self, mut lhs: Expr, min_bp: u8) -> Result<Expr, ParseError> {
        loop {
            let (bp, op) = match self.peek() {
                Tok::Word(w) if w == "or" => (BP_OR, Infix::Or),
                Tok::Word(w) if w == "and" => (BP_AND, Infix::And),
                Tok::Word(w) if w == "between" => (BP_CMP, Infix::Between),
                Tok::Word(w) if w == "in" => (BP_CMP, Infix::In),
                Tok::Eq => (BP_CMP, Infix::Cmp(CmpOp::Eq)),
                Tok::Ne => (BP_CMP, Infix::Cmp(CmpOp::Ne)),
                Tok::Lt => (BP_CMP, Infix::Cmp(CmpOp::Lt)),
                Tok::Le => (BP_CMP, Infix::Cmp(CmpOp::Le)),
                Tok::Gt => (BP_CMP, Infix::Cmp(CmpOp::Gt)),
                Tok::Ge => (BP_CMP, Infix::Cmp(CmpOp::Ge)),
                Tok::Plus => (BP_ADD, Infix::Arith(ArithOp::Add)),
                Tok::Minus => (BP_ADD, Infix::Arith(ArithOp::Sub)),
                Tok::Star => (BP_MUL, Infix::Arith(ArithOp::Mul)),
                Tok::Slash => (BP_MUL, Infix::Arith(ArithOp::Div)),
                Tok::StarStar => (BP_POW, Infix::Arith(ArithOp::Pow)),
                _ => break,
            };
            if bp <= min_bp {
                break;
            }
            self.advance();
            lhs = match op {
                Infix::Or => match (lhs, self.expr_bp(BP_OR)?) {
                    (Expr::Or(mut items), rhs) => {
                        items.push(rhs);
                        Expr::Or(items)
                    }
                    (lhs, rhs) => Expr::Or(vec![lhs, rhs]),
                },
                Infix::And => match (lhs, self.expr_bp(BP_AND)?) {
                    (Expr::And(mut items), rhs) => {
                        items.push(rhs);
                        Expr::And(items)
                    }
                    (lhs, rhs) => Expr::And(vec![lhs, rhs]),
                },
                Infix::Cmp(op) => {
                    let rhs = self.expr_bp(BP_CMP)?;
                    Expr::Compare(op, Box::new(lhs), Box::new(rhs))
                }
                Infix::Between => {
                    let low = self.expr_bp(BP_CMP)?;
                    self.expect_word("and")?;
                    let high = self.expr_bp(BP_CMP)?;
                    Expr::Between(Box::new(lhs), Box::new(low), Box::new(high))
                }
                Infix::In => {
                    let tests = self.in_tests()?;
                    Expr::In(Box::new(lhs), tests)
                }
                Infix::Arith(op) => {
                    let rhs = self.expr_bp(bp)?;
                    Expr::Arith(op, Box::new(lhs), Box::new(rhs))
                }
            };
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let primary = match self.peek().clone() {
            Tok::Number(n) => {
                self.advance();
                Expr::Number(n)
            }
            Tok::Str(s) => {
                self.advance();
                Expr::String(s)
            }
            Tok::Minus => {
                self.advance();
                self.enter()?;
                let operand = self.expr_bp(BP_UNARY)?;
                self.leave();
                return Ok(match operand {
                    Expr::Number(n) => Expr::Number(-n),
                    other => Expr::Neg(Box::new(other)),
                });
            }
            Tok::LParen => {
                self.advance();
                let inner = self.expression()?;
                self.expect(Tok::RParen, "`)`")?;
                inner
            }
            Tok::LBracket => {
                self.advance();
                Expr::List(self.list_rest()?)
            }
            Tok::LBrace => {
                self.advance();
                self.context()?
            }
            Tok::Word(word) => match word.as_str() {
                "true" => self.literal(Expr::Bool(true)),
                "false" => self.literal(Expr::Bool(false)),
                "null" => self.literal(Expr::Null),
                // These end in a full expression, so nothing can follow them at this level.
                "if" => return self.if_expr(),
                "some" => return self.quantified(false),
                "every" => return self.quantified(true),
                "for" => return self.for_expr(),
                _ => self.name_or_call(&word, pos)?,
            },
            _ => return Err(self.unexpected("an expression")),
        };
        self.postfix(primary)
    }

    fn literal(&mut self, expr: Expr) -> Expr {
        self.advance();
        expr
    }

    /// Elements after `[` up to and including `]`.
    fn list_rest(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if *self.peek() == Tok::RBracket {
            self.advance();
            return Ok(items);
        }
        loop {
            items.push(self.expression()?);
            match self.peek() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RBracket => {
                    self.advance();
                    return Ok(items);
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    /// Entries after `{`: keys are strings or (possibly multi-word) names.
    fn context(&mut self) -> Result<Expr, ParseError> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        if *self.peek() == Tok::RBrace {
            self.advance();
            return Ok(Expr::Context(entries));
        }
        loop {
            let key_pos = self.pos();
            let key = match self.peek().clone() {
                Tok::Str(s) => {
                    self.advance();
                    s
                }
                Tok::Word(_) => {
                    let mut words = Vec::new();
                    while let Tok::Word(w) = self.peek().clone() {
                        words.push(w);
                        self.advance();
                    }
                    words.join(" ")
                }
                _ => return Err(self.unexpected("a context key")),
            };
            if !seen.insert(key.clone()) {
                return Err(ParseError::new(
                    key_pos,
                    format!("duplicate context key `{key}`"),
                ));
            }
            self.expect(Tok::Colon, "`:`")?;
            entries.push((key, self.expression()?));
            match self.peek() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RBrace => {
                    self.advance();
                    return Ok(Expr::Context(entries));
                }
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    /// A variable, or a built-in call whose name may span several words (`starts with(`).
    fn name_or_call(&mut self, word: &str, pos: usize) -> Result<Expr, ParseError> {
        for n in (1..=MAX_NAME_WORDS).rev() {
            if *self.peek_at(n) != Tok::LParen {
                continue;
            }
            let words: Option<Vec<&str>> = (0..n)
                .map(|k| match self.peek_at(k) {
                    Tok::Word(w) => Some(w.as_str()),
                    _ => None,
                })
                .collect();
            let Some(words) = words else { continue };
            if let Some(func) = Builtin::lookup(&words.join(" ")) {
                for _ in 0..n {
                    self.advance();
                }
                return self.call(func, pos);
            }
        }
        if *self.peek_at(1) == Tok::LParen {
            return Err(ParseError::new(pos, format!("unknown function `{word}`")));
        }
        if RESERVED.contains(&word) {
            return Err(ParseError::new(pos, format!("unexpected keyword `{word}`")));
        }
        self.advance();
        Ok(Expr::Name(word.to_string()))
    }

    fn call(&mut self, func: Builtin, pos: usize) -> Result<Expr, ParseError> {
        self.expect(Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        let mut positions = Vec::new();
        if *self.peek() == Tok::RParen {
            self.advance();
        } else {
            loop {
                positions.push(self.pos());
                args.push(self.expression()?);
                match self.peek() {
                    Tok::Comma => {
                        self.advance();
                    }
                    Tok::RParen => {
                        self.advance();
                        break;
                    }
                    _ => return Err(self.unexpected("`,` or `)`")),
                }
            }
        }
        if !func.accepts(args.len()) {
            return Err(ParseError::new(
                pos,
                format!(
                    "wrong number of arguments ({}) for `{}`",
                    args.len(),
                    func.name()
                ),
            ));
        }
        let mut regex = None;
        if func == Builtin::Matches {
            // A literal pattern is compiled once here, and a bad one is reported now.
            let flags = match args.get(2) {
                None => Some(""),
                Some(Expr::String(f)) => Some(f.as_str()),
                Some(_) => None,
            };
            if let (Some(Expr::String(pattern)), Some(flags)) = (args.get(1), flags) {
                let compiled = Regex::new(pattern, flags)
                    .map_err(|m| ParseError::new(positions[1], format!("invalid regex: {m}")))?;
                regex = Some(Box::new(compiled));
            }
        }
        Ok(Expr::Call { func, args, regex })
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ParseError> {
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.advance();
                    let Tok::Word(key) = self.peek().clone() else {
                        return Err(self.unexpected("a name after `.`"));
                    };
                    self.advance();
                    expr = Expr::Path(Box::new(expr), key);
                }
                Tok::LBracket if !self.high_endpoint => {
                    self.advance();
                    let cond = self.expression()?;
                    self.expect(Tok::RBracket, "`]`")?;
                    expr = Expr::Filter(Box::new(expr), Box::new(cond));
                }
                _ => return Ok(expr),
            }
        }
    }

    fn if_expr(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        let cond = self.expression()?;
        self.expect_word("then")?;
        let then = self.expression()?;
        self.expect_word("else")?;
        let otherwise = self.expression()?;
        Ok(Expr::If(
            Box::new(cond),
            Box::new(then),
            Box::new(otherwise),
        ))
    }

    fn quantified(&mut self, every: bool) -> Result<Expr, ParseError> {
        self.advance();
        let bindings = self.bindings()?;
        self.expect_word("satisfies")?;
        let cond = Box::new(self.expression()?);
        Ok(Expr::Quantified {
            every,
            bindings,
            cond,
        })
    }

    fn for_expr(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        let bindings = self.bindings()?;
        self.expect_word("return")?;
        let body = Box::new(self.expression()?);
        Ok(Expr::For { bindings, body })
    }

    /// `name in expression {, name in expression}`.
    fn bindings(&mut self) -> Result<Bindings, ParseError> {
        let mut bindings = Vec::new();
        loop {
            let name = match self.peek() {
                Tok::Word(w) if !RESERVED.contains(&w.as_str()) => w.clone(),
                _ => return Err(self.unexpected("a variable name")),
            };
            self.advance();
            self.expect_word("in")?;
            bindings.push((name, self.expression()?));
            if *self.peek() != Tok::Comma {
                return Ok(bindings);
            }
            self.advance();
        }
    }

    /// What follows `in`: one test, or a parenthesized group that is a list of tests, an
    /// interval `(a..b]`, or just a parenthesized expression.
    fn in_tests(&mut self) -> Result<Vec<UnaryTest>, ParseError> {
        if *self.peek() != Tok::LParen {
            return Ok(vec![self.unary_test()?]);
        }
        self.advance();
        self.enter()?;
        let first = self.unary_test()?;
        if *self.peek() == Tok::DotDot {
            let UnaryTest::Equal(low) = first else {
                return Err(self.unexpected("`,` or `)`"));
            };
            let interval = self.interval_rest(low, false)?;
            self.leave();
            return Ok(vec![interval]);
        }
        let mut tests = vec![first];
        while *self.peek() == Tok::Comma {
            self.advance();
            tests.push(self.unary_test()?);
        }
        self.expect(Tok::RParen, "`,` or `)`")?;
        self.leave();
        if let [UnaryTest::Equal(_)] = tests.as_slice() {
            if let Some(UnaryTest::Equal(inner)) = tests.pop() {
                // `x in (a + b) * 2`: the group was only parentheses around an operand.
                return Ok(vec![UnaryTest::Equal(self.continue_operand(inner)?)]);
            }
        }
        Ok(tests)
    }

    /// Lets a bracketed primary that turned out not to be an interval go on as an operand.
    fn continue_operand(&mut self, primary: Expr) -> Result<Expr, ParseError> {
        let expr = self.postfix(primary)?;
        self.infix(expr, BP_CMP)
    }

    fn unary_test(&mut self) -> Result<UnaryTest, ParseError> {
        let op = match self.peek() {
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            return Ok(UnaryTest::Compare(op, self.expr_bp(BP_CMP)?));
        }
        match self.peek() {
            Tok::RBracket => {
                self.advance();
                self.enter()?;
                let low = self.expression()?;
                if *self.peek() != Tok::DotDot {
                    return Err(self.unexpected("`..`"));
                }
                let interval = self.interval_rest(low, false)?;
                self.leave();
                Ok(interval)
            }
            Tok::LBracket => {
                self.advance();
                self.enter()?;
                if *self.peek() == Tok::RBracket {
                    self.advance();
                    self.leave();
                    return Ok(UnaryTest::Equal(self.continue_operand(Expr::List(vec![]))?));
                }
                let first = self.expression()?;
                if *self.peek() == Tok::DotDot {
                    let interval = self.interval_rest(first, true)?;
                    self.leave();
                    return Ok(interval);
                }
                let mut items = vec![first];
                if *self.peek() == Tok::Comma {
                    self.advance();
                    items.extend(self.list_rest()?);
                } else {
                    self.expect(Tok::RBracket, "`,`, `..` or `]`")?;
                }
                self.leave();
                Ok(UnaryTest::Equal(self.continue_operand(Expr::List(items))?))
            }
            Tok::LParen => {
                self.advance();
                self.enter()?;
                let first = self.expression()?;
                if *self.peek() == Tok::DotDot {
                    let interval = self.interval_rest(first, false)?;
                    self.leave();
                    return Ok(interval);
                }
                self.expect(Tok::RParen, "`..` or `)`")?;
                self.leave();
                Ok(UnaryTest::Equal(self.continue_operand(first)?))
            }
            _ => Ok(UnaryTest::Equal(self.expr_bp(BP_CMP)?)),
        }
    }

    /// From `..` to the closing `]` (closed) or `)` / `[` (open).
    fn interval_rest(&mut self, low: Expr, low_closed: bool) -> Result<UnaryTest, ParseError> {
        self.expect(Tok::DotDot, "`..`")?;
        let saved = std::mem::replace(&mut self.high_endpoint, true);
        let high = self.expr_bp(0)?;
        self.high_endpoint = saved;
        let high_closed = match self.peek() {
            Tok::RBracket => true,
            Tok::RParen | Tok::LBracket => false,
            _ => return Err(self.unexpected("`]`, `)` or `[` to close the interval")),
        };
        self.advance();
        Ok(UnaryTest::Range {
            low,
            high,
            low_closed,
            high_closed,
        })
    }
}

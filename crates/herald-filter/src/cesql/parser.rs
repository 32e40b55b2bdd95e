//! Recursive-descent parser for the CESQL grammar (spec §2) with the precedence of spec §3.6:
//! function calls > unary NOT/- > LIKE > EXISTS > IN > `* / %` > `+ -` > comparisons >
//! AND/OR/XOR (one level, left to right). Enforces the length and nesting-depth limits.

use super::ast::{BinaryOp, Expr};
use super::error::ParseError;
use super::functions::Callee;
use super::lexer::{tokenize, Token, TokenKind};
use super::like::LikePattern;
use super::value::Value;
use super::{MAX_EXPRESSION_CHARS, MAX_NESTING_DEPTH};

type PResult<T> = Result<T, ParseError>;

const RESERVED: [&str; 9] = [
    "AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS", "TRUE", "FALSE",
];

/// Number of binary precedence levels (logic, comparison, additive, multiplicative).
const BINARY_LEVELS: usize = 4;

/// Parses a complete expression.
pub(crate) fn parse(src: &str) -> PResult<Expr> {
    let len = src.chars().count();
    if len > MAX_EXPRESSION_CHARS {
        return Err(ParseError::new(
            MAX_EXPRESSION_CHARS,
            format!(
                "expression is {len} characters long; at most {MAX_EXPRESSION_CHARS} are allowed"
            ),
        ));
    }
    let mut parser = Parser {
        tokens: tokenize(src)?,
        next: 0,
        depth: 0,
        peak: 0,
    };
    if parser.peek().kind == TokenKind::Eof {
        return Err(ParseError::new(0, "empty expression"));
    }
    let expr = parser.expression()?;
    let tok = parser.peek();
    if tok.kind != TokenKind::Eof {
        return Err(ParseError::new(
            tok.pos,
            format!(
                "unexpected {} after a complete expression",
                tok.kind.describe()
            ),
        ));
    }
    Ok(expr)
}

fn is_keyword(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| is_keyword(word, k))
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    /// Nesting level of the node being parsed: the number of enclosing parentheses, function
    /// calls, unary operators and LIKE/IN operators.
    depth: usize,
    /// Deepest `depth` reached since the innermost enclosing [`Parser::postfix`] started.
    peak: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1; // always the Eof token
        &self.tokens[(self.next + ahead).min(last)]
    }

    fn advance(&mut self) -> Token {
        let tok = self.peek().clone();
        if self.next < self.tokens.len() - 1 {
            self.next += 1;
        }
        tok
    }

    fn peek_keyword(&self, ahead: usize, keyword: &str) -> bool {
        matches!(&self.peek_at(ahead).kind, TokenKind::Word(w) if is_keyword(w, keyword))
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> PResult<Token> {
        let tok = self.peek();
        if tok.kind == kind {
            return Ok(self.advance());
        }
        Err(ParseError::new(
            tok.pos,
            format!(
                "expected {} {context}, found {}",
                kind.describe(),
                tok.kind.describe()
            ),
        ))
    }

    /// Opens one nesting level; fails before recursing if the limit would be exceeded.
    fn enter(&mut self, pos: usize) -> PResult<()> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(too_deep(pos));
        }
        self.depth += 1;
        self.peak = self.peak.max(self.depth);
        Ok(())
    }

    fn leave(&mut self, levels: usize) {
        self.depth -= levels;
    }

    fn expression(&mut self) -> PResult<Expr> {
        self.binary(0)
    }

    fn binary_op(&self, level: usize) -> Option<BinaryOp> {
        let op = match (level, &self.peek().kind) {
            (0, TokenKind::Word(w)) if is_keyword(w, "AND") => BinaryOp::And,
            (0, TokenKind::Word(w)) if is_keyword(w, "OR") => BinaryOp::Or,
            (0, TokenKind::Word(w)) if is_keyword(w, "XOR") => BinaryOp::Xor,
            (1, TokenKind::Eq) => BinaryOp::Eq,
            (1, TokenKind::NotEq | TokenKind::Diamond) => BinaryOp::NotEq,
            (1, TokenKind::Lt) => BinaryOp::Lt,
            (1, TokenKind::Le) => BinaryOp::Le,
            (1, TokenKind::Gt) => BinaryOp::Gt,
            (1, TokenKind::Ge) => BinaryOp::Ge,
            (2, TokenKind::Plus) => BinaryOp::Add,
            (2, TokenKind::Minus) => BinaryOp::Sub,
            (3, TokenKind::Star) => BinaryOp::Mul,
            (3, TokenKind::Slash) => BinaryOp::Div,
            (3, TokenKind::Percent) => BinaryOp::Mod,
            _ => return None,
        };
        Some(op)
    }

    /// One binary precedence level: a left-associative chain of the next level's operands.
    fn binary(&mut self, level: usize) -> PResult<Expr> {
        if level == BINARY_LEVELS {
            return self.postfix();
        }
        let first = self.binary(level + 1)?;
        let mut rest = Vec::new();
        while let Some(op) = self.binary_op(level) {
            self.advance();
            rest.push((op, self.binary(level + 1)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Chain {
                first: Box::new(first),
                rest,
            }
        })
    }

    /// A unary expression followed by any number of `[NOT] LIKE 'pattern'` / `[NOT] IN (set)`.
    /// Each of these operators wraps everything parsed so far and pushes it one level deeper,
    /// so the height of that expression is tracked (through `peak`) to enforce the limit.
    fn postfix(&mut self) -> PResult<Expr> {
        let base = self.depth;
        let outer_peak = std::mem::replace(&mut self.peak, base);
        let mut expr = self.unary()?;
        let mut height = self.peak - base;
        loop {
            let start = self.peek().pos;
            let negated = self.peek_keyword(0, "NOT");
            if negated {
                if !self.peek_keyword(1, "LIKE") && !self.peek_keyword(1, "IN") {
                    let tok = self.peek_at(1);
                    return Err(ParseError::new(
                        tok.pos,
                        format!(
                            "expected LIKE or IN after NOT, found {}",
                            tok.kind.describe()
                        ),
                    ));
                }
                self.advance();
            }
            let like = self.peek_keyword(0, "LIKE");
            if !like && !self.peek_keyword(0, "IN") {
                break;
            }
            if base + height >= MAX_NESTING_DEPTH {
                return Err(too_deep(start));
            }
            height += 1;
            self.advance();
            let operand = Box::new(expr);
            expr = if like {
                let tok = self.advance();
                let TokenKind::Str(pattern) = tok.kind else {
                    return Err(ParseError::new(
                        tok.pos,
                        format!(
                            "the LIKE pattern must be a string literal, found {}",
                            tok.kind.describe()
                        ),
                    ));
                };
                Expr::Like {
                    operand,
                    pattern: LikePattern::compile(&pattern),
                    negated,
                }
            } else {
                self.peak = base;
                self.enter(start)?;
                let set = self.set()?;
                self.leave(1);
                height = height.max(self.peak - base);
                Expr::In {
                    operand,
                    set,
                    negated,
                }
            };
        }
        self.peak = outer_peak.max(base + height);
        Ok(expr)
    }

    /// The parenthesised, non-empty element list of an IN operator.
    fn set(&mut self) -> PResult<Vec<Expr>> {
        self.expect(TokenKind::LParen, "to open the IN set")?;
        let mut set = vec![self.expression()?];
        while self.peek().kind == TokenKind::Comma {
            self.advance();
            set.push(self.expression()?);
        }
        self.expect(TokenKind::RParen, "to close the IN set")?;
        Ok(set)
    }

    fn unary(&mut self) -> PResult<Expr> {
        let tok = self.peek().clone();
        match &tok.kind {
            TokenKind::Word(w) if is_keyword(w, "NOT") => {
                self.advance();
                self.enter(tok.pos)?;
                let operand = self.unary();
                self.leave(1);
                Ok(Expr::Not(Box::new(operand?)))
            }
            TokenKind::Word(w) if is_keyword(w, "EXISTS") => {
                self.advance();
                let name = self.advance();
                match &name.kind {
                    TokenKind::Word(w) if !is_reserved(w) => {
                        Ok(Expr::Exists(attribute_name(w, name.pos)?))
                    }
                    // All-digit names are valid value identifiers (spec §2.2).
                    TokenKind::Integer(digits) => Ok(Expr::Exists(digits.clone())),
                    other => Err(ParseError::new(
                        name.pos,
                        format!(
                            "expected an attribute name after EXISTS, found {}",
                            other.describe()
                        ),
                    )),
                }
            }
            TokenKind::Minus => {
                self.advance();
                if let TokenKind::Integer(digits) = &self.peek().kind {
                    let digits = digits.clone();
                    self.advance();
                    return integer_literal(&digits, true, tok.pos);
                }
                self.enter(tok.pos)?;
                let operand = self.unary();
                self.leave(1);
                Ok(Expr::Negate(Box::new(operand?)))
            }
            TokenKind::Plus => {
                self.advance();
                match self.advance() {
                    Token {
                        kind: TokenKind::Integer(digits),
                        ..
                    } => integer_literal(&digits, false, tok.pos),
                    _ => Err(ParseError::new(
                        tok.pos,
                        "'+' is only allowed as the sign of an integer literal here",
                    )),
                }
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let tok = self.advance();
        match tok.kind {
            TokenKind::Integer(digits) => integer_literal(&digits, false, tok.pos),
            TokenKind::Str(s) => Ok(Expr::Literal(Value::String(s))),
            TokenKind::LParen => {
                self.enter(tok.pos)?;
                let inner = self.expression();
                self.leave(1);
                let inner = inner?;
                self.expect(TokenKind::RParen, "to close the sub-expression")?;
                Ok(inner)
            }
            TokenKind::Word(w) if is_keyword(&w, "TRUE") => Ok(Expr::Literal(Value::Boolean(true))),
            TokenKind::Word(w) if is_keyword(&w, "FALSE") => {
                Ok(Expr::Literal(Value::Boolean(false)))
            }
            TokenKind::Word(w) if is_reserved(&w) => Err(ParseError::new(
                tok.pos,
                format!("expected an expression, found keyword '{w}'"),
            )),
            TokenKind::Word(w) if self.peek().kind == TokenKind::LParen => self.call(w, tok.pos),
            TokenKind::Word(w) => Ok(Expr::Attribute(attribute_name(&w, tok.pos)?)),
            other => Err(ParseError::new(
                tok.pos,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }

    /// A function invocation; the name has been consumed and `(` is next.
    fn call(&mut self, name: String, pos: usize) -> PResult<Expr> {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid {
            return Err(ParseError::new(
                pos,
                format!(
                    "invalid function name '{name}': letters and '_' only, starting with a letter"
                ),
            ));
        }
        self.enter(pos)?;
        let args = self.arguments();
        self.leave(1);
        let args = args?;
        Ok(Expr::Call {
            callee: Callee::resolve(&name, args.len()),
            args,
        })
    }

    fn arguments(&mut self) -> PResult<Vec<Expr>> {
        self.expect(TokenKind::LParen, "to open the argument list")?;
        let mut args = Vec::new();
        if self.peek().kind == TokenKind::RParen {
            self.advance();
            return Ok(args);
        }
        args.push(self.expression()?);
        while self.peek().kind == TokenKind::Comma {
            self.advance();
            args.push(self.expression()?);
        }
        self.expect(TokenKind::RParen, "to close the argument list")?;
        Ok(args)
    }
}

fn too_deep(pos: usize) -> ParseError {
    ParseError::new(
        pos,
        format!("expression is nested more than {MAX_NESTING_DEPTH} levels deep"),
    )
}

/// Validates a value identifier (letters and digits; case-insensitive) and lower-cases it.
fn attribute_name(word: &str, pos: usize) -> PResult<String> {
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(word.to_ascii_lowercase())
    } else {
        Err(ParseError::new(
            pos,
            format!("invalid attribute name '{word}': only letters and digits are allowed"),
        ))
    }
}

fn integer_literal(digits: &str, negative: bool, pos: usize) -> PResult<Expr> {
    let magnitude = digits.parse::<i64>().ok();
    let value = magnitude
        .map(|m| if negative { -m } else { m })
        .and_then(|v| i32::try_from(v).ok());
    match value {
        Some(v) => Ok(Expr::Literal(Value::Integer(v))),
        None => Err(ParseError::new(
            pos,
            format!(
                "integer literal {}{digits} does not fit in a 32-bit signed integer",
                if negative { "-" } else { "" }
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(src: &str) -> String {
        parse(src)
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
            .to_string()
    }

    fn err(src: &str) -> ParseError {
        match parse(src) {
            Ok(e) => panic!("{src:?} parsed as {e}"),
            Err(e) => e,
        }
    }

    #[test]
    fn arithmetic_precedence() {
        assert_eq!(show("4 * 2 + 4 / 2"), "((4 * 2) + (4 / 2))");
        assert_eq!(show("1 - 2 - 3"), "((1 - 2) - 3)");
        assert_eq!(show("1 + 2 * 3 % 4"), "(1 + ((2 * 3) % 4))");
        assert_eq!(show("4 * (2 + 4) / 2"), "((4 * (2 + 4)) / 2)");
    }

    #[test]
    fn logic_operators_share_one_level_left_to_right() {
        assert_eq!(show("a OR b AND c"), "((a OR b) AND c)");
        assert_eq!(show("a and b xor c or d"), "(((a AND b) XOR c) OR d)");
        assert_eq!(show("a = 1 AND b < 2"), "((a = 1) AND (b < 2))");
    }

    #[test]
    fn unary_binds_tighter_than_like_and_binary() {
        assert_eq!(show("NOT a = b"), "((NOT a) = b)");
        assert_eq!(show("NOT EXISTS time"), "(NOT (EXISTS time))");
        assert_eq!(show("NOT x LIKE 'a'"), "((NOT x) LIKE 'a')");
        assert_eq!(show("-a * 2"), "((-a) * 2)");
    }

    #[test]
    fn like_and_in_bind_tighter_than_binary_operators() {
        assert_eq!(show("1 + 2 IN (3)"), "(1 + (2 IN (3)))");
        assert_eq!(show("x NOT LIKE 'a%' AND y"), "((x NOT LIKE 'a%') AND y)");
        assert_eq!(show("x LIKE 'a' IN (TRUE)"), "((x LIKE 'a') IN (TRUE))");
        assert_eq!(show("a NOT IN (1, b, 'c')"), "(a NOT IN (1, b, 'c'))");
    }

    #[test]
    fn keywords_and_identifiers_are_case_insensitive() {
        assert_eq!(show("tRuE And FaLsE"), "(TRUE AND FALSE)");
        assert_eq!(show("EXISTS SOURCE"), "(EXISTS source)");
        assert_eq!(show("MyExt1"), "myext1");
        assert_eq!(show("123abc"), "123abc");
        assert_eq!(show("concat_ws(',', a)"), "CONCAT_WS(',', a)");
        assert_eq!(show("unknown_fn()"), "unknown_fn()");
    }

    #[test]
    fn integer_literals_and_signs() {
        assert_eq!(show("-2147483648"), "-2147483648");
        assert_eq!(show("2147483647"), "2147483647");
        assert_eq!(show("+5"), "5");
        assert_eq!(show("--10"), "(--10)");
        assert_eq!(show("4 - -1"), "(4 - -1)");
        assert_eq!(show("4 + +1"), "(4 + 1)");
        assert_eq!(show("- 'a'"), "(-'a')");
        assert_eq!(err("2147483648").position, 0);
        assert_eq!(err("1 + -2147483649").position, 4);
        assert!(err("99999999999999999999999").message.contains("32-bit"));
        assert_eq!(err("+a").position, 0);
    }

    #[test]
    fn syntax_errors_have_positions() {
        assert_eq!(err("").message, "empty expression");
        assert_eq!(err("   ").position, 0);
        assert_eq!(err("ABC(").position, 4);
        assert_eq!(err("(1 + 2").position, 6);
        assert_eq!(err("1 2").position, 2);
        assert_eq!(err("x LIKE 123").position, 7);
        assert_eq!(err("x LIKE y").position, 7);
        assert_eq!(err("x NOT 5").position, 6);
        assert_eq!(err("x IN ()").position, 6);
        assert_eq!(err("x IN 1").position, 5);
        assert_eq!(err("EXISTS -1").position, 7);
        assert_eq!(show("EXISTS 1"), "(EXISTS 1)");
        assert_eq!(err("EXISTS and").position, 7);
        assert_eq!(err("a_b = 1").position, 0);
        assert_eq!(err("f1(2)").position, 0);
        assert_eq!(err("_f(2)").position, 0);
        assert_eq!(err("1 +").position, 3);
        assert_eq!(err("AND").position, 0);
        assert_eq!(err("f(1,)").position, 4);
        assert_eq!(err("1 == 1").position, 3);
        assert_eq!(
            err("a = ").to_string(),
            "at position 4: expected an expression, found end of expression"
        );
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}1{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(show(&ok), "1");
        let e = err(&format!("{}1{}", "(".repeat(65), ")".repeat(65)));
        assert_eq!(e.position, 64);
        assert!(e.message.contains("nested"));
        assert_eq!(err(&"NOT ".repeat(65)).position, 256);
        assert_eq!(err(&format!("{}1", "-".repeat(100))).position, 64);
        assert!(err(&format!("{}1{}", "abs(".repeat(65), ")".repeat(65)))
            .message
            .contains("nested"));
        // LIKE/IN wrap what precedes them: the wrapped expression's own nesting counts.
        let mut sawtooth = "x".to_owned();
        for _ in 0..32 {
            sawtooth = format!("ABS({sawtooth}) IN (1)");
        }
        assert!(parse(&sawtooth).is_ok());
        assert!(err(&format!("ABS({sawtooth})")).message.contains("nested"));
        assert!(err(&format!("{sawtooth} LIKE 'a'"))
            .message
            .contains("nested"));
        assert!(err(&format!("NOT {sawtooth}")).message.contains("nested"));
        let not_in = format!("{}x{}", "NOT ".repeat(63), " IN (1)");
        assert!(parse(&not_in).is_ok());
        assert_eq!(err(&format!("{not_in} IN (2)")).position, 261);
        // Long chains of binary operators are flat and do not count as nesting.
        assert!(parse(&vec!["a = 1"; 400].join(" OR ")).is_ok());
    }

    #[test]
    fn length_limit() {
        let long = format!("'{}'", "x".repeat(4094));
        assert!(parse(&long).is_ok());
        let e = err(&format!("'{}'", "x".repeat(4095)));
        assert_eq!(e.position, 4096);
        assert!(e.message.contains("4096"));
    }
}

//! Lexer: turns the expression text into tokens carrying their 0-based character position.
//! Keywords are not recognised here (the parser matches words case-insensitively); string
//! literals are unescaped: only `\'` inside `'...'` and `\"` inside `"..."` are escapes.

use super::error::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A run of ASCII digits (the sign is handled by the parser).
    Integer(String),
    /// A run of ASCII letters, digits and `_` that is not all digits.
    Word(String),
    /// An unescaped string literal.
    Str(String),
    LParen,
    RParen,
    Comma,
    Eq,
    NotEq,
    Diamond,
    Ge,
    Le,
    Lt,
    Gt,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

impl TokenKind {
    /// Short description used in parse error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokenKind::Integer(d) => format!("integer '{d}'"),
            TokenKind::Word(w) => format!("'{w}'"),
            TokenKind::Str(_) => "string literal".to_owned(),
            TokenKind::LParen => "'('".to_owned(),
            TokenKind::RParen => "')'".to_owned(),
            TokenKind::Comma => "','".to_owned(),
            TokenKind::Eq => "'='".to_owned(),
            TokenKind::NotEq => "'!='".to_owned(),
            TokenKind::Diamond => "'<>'".to_owned(),
            TokenKind::Ge => "'>='".to_owned(),
            TokenKind::Le => "'<='".to_owned(),
            TokenKind::Lt => "'<'".to_owned(),
            TokenKind::Gt => "'>'".to_owned(),
            TokenKind::Plus => "'+'".to_owned(),
            TokenKind::Minus => "'-'".to_owned(),
            TokenKind::Star => "'*'".to_owned(),
            TokenKind::Slash => "'/'".to_owned(),
            TokenKind::Percent => "'%'".to_owned(),
            TokenKind::Eof => "end of expression".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// 0-based character offset of the first character of the token.
    pub pos: usize,
}

/// Splits `src` into tokens; the last token is always [`TokenKind::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let kind = if c.is_ascii_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            if text.bytes().all(|b| b.is_ascii_digit()) {
                TokenKind::Integer(text)
            } else {
                TokenKind::Word(text)
            }
        } else if c == '\'' || c == '"' {
            let (text, next) = string_literal(&chars, start)?;
            i = next;
            TokenKind::Str(text)
        } else {
            let next = chars.get(i + 1).copied();
            let (kind, len) = match (c, next) {
                ('(', _) => (TokenKind::LParen, 1),
                (')', _) => (TokenKind::RParen, 1),
                (',', _) => (TokenKind::Comma, 1),
                ('=', _) => (TokenKind::Eq, 1),
                ('!', Some('=')) => (TokenKind::NotEq, 2),
                ('<', Some('>')) => (TokenKind::Diamond, 2),
                ('<', Some('=')) => (TokenKind::Le, 2),
                ('<', _) => (TokenKind::Lt, 1),
                ('>', Some('=')) => (TokenKind::Ge, 2),
                ('>', _) => (TokenKind::Gt, 1),
                ('+', _) => (TokenKind::Plus, 1),
                ('-', _) => (TokenKind::Minus, 1),
                ('*', _) => (TokenKind::Star, 1),
                ('/', _) => (TokenKind::Slash, 1),
                ('%', _) => (TokenKind::Percent, 1),
                _ => {
                    return Err(ParseError::new(
                        start,
                        format!("unexpected character {c:?}"),
                    ))
                }
            };
            i += len;
            kind
        };
        tokens.push(Token { kind, pos: start });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        pos: chars.len(),
    });
    Ok(tokens)
}

/// Reads the string literal opening at `start`; returns its text and the index after it.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(ParseError::new(start, "unterminated string literal")),
            Some('\\') if chars.get(i + 1) == Some(&quote) => {
                text.push(quote);
                i += 2;
            }
            Some(&c) if c == quote => return Ok((text, i + 1)),
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        tokenize(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn operators_and_positions() {
        let toks = tokenize("a<>b != c<=d>=e<f>g").unwrap();
        let k: Vec<_> = toks.iter().map(|t| t.kind.clone()).collect();
        assert_eq!(
            k,
            vec![
                TokenKind::Word("a".into()),
                TokenKind::Diamond,
                TokenKind::Word("b".into()),
                TokenKind::NotEq,
                TokenKind::Word("c".into()),
                TokenKind::Le,
                TokenKind::Word("d".into()),
                TokenKind::Ge,
                TokenKind::Word("e".into()),
                TokenKind::Lt,
                TokenKind::Word("f".into()),
                TokenKind::Gt,
                TokenKind::Word("g".into()),
                TokenKind::Eof,
            ]
        );
        assert_eq!(toks[3].pos, 5);
        assert_eq!(toks.last().unwrap().pos, 19);
    }

    #[test]
    fn numbers_and_words() {
        assert_eq!(
            kinds("123 12a3 a_b"),
            vec![
                TokenKind::Integer("123".into()),
                TokenKind::Word("12a3".into()),
                TokenKind::Word("a_b".into()),
                TokenKind::Eof
            ]
        );
        // The sign is a separate token.
        assert_eq!(
            kinds("-1"),
            vec![
                TokenKind::Minus,
                TokenKind::Integer("1".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(kinds(r#"'a"b\'c'"#)[0], TokenKind::Str(r#"a"b'c"#.into()));
        assert_eq!(kinds(r#""a'b\"c""#)[0], TokenKind::Str(r#"a'b"c"#.into()));
        // Backslashes not followed by the delimiter are kept (LIKE escapes need them).
        assert_eq!(kinds(r"'a\%b\c'")[0], TokenKind::Str(r"a\%b\c".into()));
        assert_eq!(kinds(r#"'a\"'"#)[0], TokenKind::Str(r#"a\""#.into()));
        assert_eq!(kinds("''")[0], TokenKind::Str(String::new()));
        assert_eq!(
            kinds("'héllo wörld'")[0],
            TokenKind::Str("héllo wörld".into())
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let toks = tokenize("'ééé' = x").unwrap();
        assert_eq!(toks[1].pos, 6);
        assert_eq!(toks[2].pos, 8);
    }

    #[test]
    fn lexical_errors() {
        let e = tokenize("'abc").unwrap_err();
        assert_eq!(e.position, 0);
        assert!(e.message.contains("unterminated"));
        let e = tokenize(r"x = 'abc\'").unwrap_err();
        assert_eq!(e.position, 4);
        let e = tokenize("a ! b").unwrap_err();
        assert_eq!(e.position, 2);
        assert!(tokenize("é").is_err());
        assert!(tokenize("a;b").is_err());
        assert!(tokenize("a.b").is_err());
    }
}

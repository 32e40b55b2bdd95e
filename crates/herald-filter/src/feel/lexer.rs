//! Lexer: turns FEEL source text into tokens tagged with their 0-based character position.
//! Words are not classified here: whether `and` is an operator or part of the function name
//! `date and time` depends on what follows, so the parser decides.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    Str(String),
    /// An identifier-like word: a name, a keyword or one word of a multi-word function name.
    Word(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    DotDot,
    Colon,
    Plus,
    Minus,
    Star,
    StarStar,
    Slash,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok {
    /// How the token is shown in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(_) => "string literal".to_string(),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Eof => "end of expression".to_string(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::DotDot => "..",
            Tok::Colon => ":",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::StarStar => "**",
            Tok::Slash => "/",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            _ => "?",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Tokenizes the whole source; the last token is always `Eof`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let start = i;
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err(ParseError::new(start, "unterminated comment"));
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
            continue;
        }
        let start = i;
        let simple = |tok: Tok, len: usize| (tok, len);
        let (tok, len) = match c {
            '(' => simple(Tok::LParen, 1),
            ')' => simple(Tok::RParen, 1),
            '[' => simple(Tok::LBracket, 1),
            ']' => simple(Tok::RBracket, 1),
            '{' => simple(Tok::LBrace, 1),
            '}' => simple(Tok::RBrace, 1),
            ',' => simple(Tok::Comma, 1),
            ':' => simple(Tok::Colon, 1),
            '+' => simple(Tok::Plus, 1),
            '-' => simple(Tok::Minus, 1),
            '/' => simple(Tok::Slash, 1),
            '=' => simple(Tok::Eq, 1),
            '*' if next == Some('*') => simple(Tok::StarStar, 2),
            '*' => simple(Tok::Star, 1),
            '!' if next == Some('=') => simple(Tok::Ne, 2),
            '<' if next == Some('=') => simple(Tok::Le, 2),
            '<' => simple(Tok::Lt, 1),
            '>' if next == Some('=') => simple(Tok::Ge, 2),
            '>' => simple(Tok::Gt, 1),
            // `..` is checked before `.5` so that `[1..5]` is a range, not `1` followed by `.5`.
            '.' if next == Some('.') => simple(Tok::DotDot, 2),
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => number(&chars, i)?,
            '.' => simple(Tok::Dot, 1),
            '"' => string(&chars, i)?,
            c if c.is_ascii_digit() => number(&chars, i)?,
            c if is_word_start(c) => {
                let mut j = i;
                while j < chars.len() && is_word_part(chars[j]) {
                    j += 1;
                }
                (Tok::Word(chars[i..j].iter().collect()), j - i)
            }
            other => {
                return Err(ParseError::new(
                    start,
                    format!("unexpected character `{other}`"),
                ))
            }
        };
        tokens.push(Token { tok, pos: start });
        i += len;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: chars.len(),
    });
    Ok(tokens)
}

/// Reads `123`, `1.5` or `.5`; a `.` is only a decimal point when a digit follows it,
/// which keeps `1..10` lexing as `1`, `..`, `10`.
fn number(chars: &[char], start: usize) -> Result<(Tok, usize), ParseError> {
    let mut j = start;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    if j + 1 < chars.len() && chars[j] == '.' && chars[j + 1].is_ascii_digit() {
        j += 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
    }
    let text: String = chars[start..j].iter().collect();
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok((Tok::Number(n), j - start)),
        _ => Err(ParseError::new(start, "number literal out of range")),
    }
}

fn string(chars: &[char], start: usize) -> Result<(Tok, usize), ParseError> {
    let mut out = String::new();
    let mut j = start + 1;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err(ParseError::new(start, "unterminated string literal"));
        };
        match c {
            '"' => return Ok((Tok::Str(out), j + 1 - start)),
            '\\' => {
                let esc = chars.get(j + 1).copied();
                let decoded = match esc {
                    Some('"') => '"',
                    Some('\'') => '\'',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some('u') => {
                        let hex: String = chars.iter().skip(j + 2).take(4).collect();
                        let code = (hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32);
                        match code {
                            Some(ch) => {
                                out.push(ch);
                                j += 6;
                                continue;
                            }
                            None => {
                                return Err(ParseError::new(j, "invalid \\u escape"));
                            }
                        }
                    }
                    // Unknown escapes stay verbatim, so regex patterns such as "\d+" can be
                    // written without doubling every backslash.
                    Some(other) => {
                        out.push('\\');
                        other
                    }
                    None => return Err(ParseError::new(start, "unterminated string literal")),
                };
                out.push(decoded);
                j += 2;
            }
            c => {
                out.push(c);
                j += 1;
            }
        }
    }
}

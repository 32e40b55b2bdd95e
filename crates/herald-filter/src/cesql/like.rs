//! `LIKE` patterns (spec §3.4.3): `%` matches any run of characters, `_` exactly one, `\%` and
//! `\_` match the literal character; any other character (a lone `\` included) matches itself.
//! Patterns are compiled once; matching is iterative with single-star backtracking, O(n*m).

/// One element of a compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Char(char),
    AnyOne,
    AnyRun,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LikePattern {
    source: String,
    pieces: Vec<Piece>,
    /// The pattern as a plain string test when it is one (most are: `'eu/%'`), matched
    /// without decoding the text into characters.
    plain: Option<crate::guard::Test>,
}

impl LikePattern {
    pub(crate) fn compile(source: &str) -> Self {
        let chars: Vec<char> = source.chars().collect();
        let mut pieces = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let piece = match chars[i] {
                '\\' if matches!(chars.get(i + 1), Some('%' | '_')) => {
                    i += 1;
                    Piece::Char(chars[i])
                }
                '%' => {
                    if pieces.last() == Some(&Piece::AnyRun) {
                        i += 1;
                        continue; // `%%` is the same as `%`
                    }
                    Piece::AnyRun
                }
                '_' => Piece::AnyOne,
                c => Piece::Char(c),
            };
            pieces.push(piece);
            i += 1;
        }
        let mut pattern = LikePattern {
            source: source.to_owned(),
            pieces,
            plain: None,
        };
        pattern.plain = pattern.as_test();
        pattern
    }

    /// The pattern as written in the expression.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The pattern as a plain string test, when it is one: no wildcard (equality), or
    /// one `%` only at the end (prefix) or only at the start (suffix).
    pub(crate) fn as_test(&self) -> Option<crate::guard::Test> {
        use crate::guard::Test;
        let literal = |pieces: &[Piece]| -> Option<String> {
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        match self.pieces.as_slice() {
            [] => Some(Test::Equals(String::new())),
            [rest @ .., Piece::AnyRun] if !rest.is_empty() => literal(rest).map(Test::StartsWith),
            [Piece::AnyRun, rest @ ..] if !rest.is_empty() => literal(rest).map(Test::EndsWith),
            all => literal(all).map(Test::Equals),
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        use crate::guard::Test;
        match &self.plain {
            Some(Test::Equals(s)) => return text == s,
            Some(Test::StartsWith(s)) => return text.starts_with(s.as_str()),
            Some(Test::EndsWith(s)) => return text.ends_with(s.as_str()),
            _ => {}
        }
        let text: Vec<char> = text.chars().collect();
        let pat = &self.pieces;
        let (mut p, mut t) = (0, 0);
        // Position of the last `%` seen and the text position it is currently matched up to.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match pat.get(p) {
                Some(Piece::AnyOne) => {
                    p += 1;
                    t += 1;
                }
                Some(Piece::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                Some(Piece::AnyRun) => {
                    backtrack = Some((p, t));
                    p += 1;
                }
                _ => match backtrack {
                    Some((star, matched)) => {
                        backtrack = Some((star, matched + 1));
                        p = star + 1;
                        t = matched + 1;
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|piece| *piece == Piece::AnyRun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::compile(pattern).matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("", "%"));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "%b%"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(!like("ab.cde", ".%.%."));
        assert!(like("abc", "___"));
        assert!(!like("ab", "___"));
        assert!(like("aaa", "%a%a%a%"));
        assert!(!like("aa", "%a%a%a%"));
        assert!(like("mississippi", "m%iss%ppi"));
        assert!(like("ünïcödé", "_n_c%é"));
        assert!(!like("aBc", "abc"));
    }

    #[test]
    fn escapes() {
        assert!(like("a%b", r"a\%b"));
        assert!(!like("axb", r"a\%b"));
        assert!(like("a_b", r"a\_b"));
        assert!(!like("axb", r"a\_b"));
        assert!(like(r"ab\c", r"ab\c"));
        assert!(like(r"ab\", r"ab\"));
        assert!(like(r"a\%", r"a\\%"));
        assert_eq!(LikePattern::compile(r"a\%").source(), r"a\%");
    }

    #[test]
    fn plain_patterns_become_string_tests() {
        use crate::guard::Test;
        let test = |p: &str| LikePattern::compile(p).as_test();
        assert_eq!(test("eu/%"), Some(Test::StartsWith("eu/".into())));
        assert_eq!(test("%.created"), Some(Test::EndsWith(".created".into())));
        assert_eq!(test("abc"), Some(Test::Equals("abc".into())));
        assert_eq!(test(r"a\%b%"), Some(Test::StartsWith("a%b".into())));
        assert_eq!(test("a_%"), None);
        assert_eq!(test("%a%"), None);
        assert_eq!(test("%"), None);
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(3000);
        let pattern = format!("{}b", "%a".repeat(1000));
        assert!(!like(&text, &pattern));
    }
}

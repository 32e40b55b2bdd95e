//! Built-in FEEL functions: the name table the parser resolves calls against (including the
//! multi-word names such as `starts with`) and their implementations. As FEEL prescribes,
//! arguments of the wrong type make a function return null rather than fail.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, Utc};

use super::regex::Regex;
use super::value::{feel_cmp, feel_eq, format_date_time, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Not,
    Contains,
    StartsWith,
    EndsWith,
    UpperCase,
    LowerCase,
    Substring,
    SubstringBefore,
    SubstringAfter,
    StringLength,
    Matches,
    String,
    Number,
    Abs,
    Floor,
    Ceiling,
    Count,
    Sum,
    Min,
    Max,
    All,
    Any,
    ListContains,
    GetValue,
    DateAndTime,
    Date,
}

/// Varargs functions accept at most this many arguments (a bound, not a FEEL rule).
const MANY: usize = 256;

/// (name, function, minimum arity, maximum arity).
const TABLE: &[(&str, Builtin, usize, usize)] = &[
    ("not", Builtin::Not, 1, 1),
    ("contains", Builtin::Contains, 2, 2),
    ("starts with", Builtin::StartsWith, 2, 2),
    ("ends with", Builtin::EndsWith, 2, 2),
    ("upper case", Builtin::UpperCase, 1, 1),
    ("lower case", Builtin::LowerCase, 1, 1),
    ("substring", Builtin::Substring, 2, 3),
    ("substring before", Builtin::SubstringBefore, 2, 2),
    ("substring after", Builtin::SubstringAfter, 2, 2),
    ("string length", Builtin::StringLength, 1, 1),
    ("matches", Builtin::Matches, 2, 3),
    ("string", Builtin::String, 1, 1),
    ("number", Builtin::Number, 1, 1),
    ("abs", Builtin::Abs, 1, 1),
    ("floor", Builtin::Floor, 1, 1),
    ("ceiling", Builtin::Ceiling, 1, 1),
    ("count", Builtin::Count, 1, 1),
    ("sum", Builtin::Sum, 1, MANY),
    ("min", Builtin::Min, 1, MANY),
    ("max", Builtin::Max, 1, MANY),
    ("all", Builtin::All, 1, MANY),
    ("any", Builtin::Any, 1, MANY),
    ("list contains", Builtin::ListContains, 2, 2),
    ("get value", Builtin::GetValue, 2, 2),
    ("date and time", Builtin::DateAndTime, 1, 1),
    ("date", Builtin::Date, 1, 3),
];

/// The longest built-in name has this many words (`date and time`).
pub(crate) const MAX_NAME_WORDS: usize = 3;

impl Builtin {
    pub(crate) fn lookup(name: &str) -> Option<Builtin> {
        TABLE.iter().find(|(n, ..)| *n == name).map(|(_, f, ..)| *f)
    }

    fn spec(self) -> &'static (&'static str, Builtin, usize, usize) {
        // Every variant has a row; the fallback only satisfies the type checker.
        TABLE
            .iter()
            .find(|(_, f, ..)| *f == self)
            .unwrap_or(&TABLE[0])
    }

    pub(crate) fn name(self) -> &'static str {
        self.spec().0
    }

    /// Whether `n` arguments are accepted; `date` takes one or three, never two.
    pub(crate) fn accepts(self, n: usize) -> bool {
        let (_, _, min, max) = *self.spec();
        (min..=max).contains(&n) && !(self == Builtin::Date && n == 2)
    }
}

/// Calls a built-in. `regex` is the pattern precompiled at parse time, if it was a literal;
/// `budget` bounds the regex work.
pub(crate) fn call(
    func: Builtin,
    args: Vec<Value>,
    regex: Option<&Regex>,
    budget: &mut u64,
) -> Value {
    use Builtin as B;
    use Value as V;
    match (func, args.as_slice()) {
        (B::Not, [V::Bool(b)]) => V::Bool(!b),
        (B::Contains, [V::String(s), V::String(t)]) => V::Bool(s.contains(t.as_str())),
        (B::StartsWith, [V::String(s), V::String(t)]) => V::Bool(s.starts_with(t.as_str())),
        (B::EndsWith, [V::String(s), V::String(t)]) => V::Bool(s.ends_with(t.as_str())),
        (B::UpperCase, [V::String(s)]) => V::String(s.to_uppercase()),
        (B::LowerCase, [V::String(s)]) => V::String(s.to_lowercase()),
        (B::Substring, [V::String(s), V::Number(start), rest @ ..]) => substring(s, *start, rest),
        (B::SubstringBefore, [V::String(s), V::String(m)]) => {
            V::String(s.find(m.as_str()).map_or("", |i| &s[..i]).to_string())
        }
        (B::SubstringAfter, [V::String(s), V::String(m)]) => V::String(
            s.find(m.as_str())
                .map_or("", |i| &s[i + m.len()..])
                .to_string(),
        ),
        (B::StringLength, [V::String(s)]) => V::Number(s.chars().count() as f64),
        (B::Matches, [V::String(input), V::String(pattern), flags @ ..]) => {
            matches(input, pattern, flags, regex, budget)
        }
        (B::String, [v]) => to_string(v).map_or(V::Null, V::String),
        (B::Number, [V::String(s)]) => parse_number(s).map_or(V::Null, V::Number),
        (B::Abs, [V::Number(n)]) => V::Number(n.abs()),
        (B::Floor, [V::Number(n)]) => V::Number(n.floor()),
        (B::Ceiling, [V::Number(n)]) => V::Number(n.ceil()),
        (B::Count, [V::List(items)]) => V::Number(items.len() as f64),
        (B::Sum, _) => sum(&items_of(args)),
        (B::Min, _) => extreme(&items_of(args), std::cmp::Ordering::Less),
        (B::Max, _) => extreme(&items_of(args), std::cmp::Ordering::Greater),
        (B::All, _) => all_any(&items_of(args), false),
        (B::Any, _) => all_any(&items_of(args), true),
        (B::ListContains, [V::List(items), x]) => {
            V::Bool(items.iter().any(|i| feel_eq(i, x) == Some(true)))
        }
        (B::GetValue, [V::Context(map), V::String(key)]) => {
            map.get(key).cloned().unwrap_or(V::Null)
        }
        (B::DateAndTime, [v]) => date_and_time(v).map_or(V::Null, V::DateTime),
        (B::Date, [v]) => date(v).map_or(V::Null, V::Date),
        (B::Date, [V::Number(y), V::Number(m), V::Number(d)]) => {
            date_from_parts(*y, *m, *d).map_or(V::Null, V::Date)
        }
        _ => V::Null,
    }
}

/// `sum(list)` or `sum(a, b, ...)`: a single list argument supplies the items.
fn items_of(mut args: Vec<Value>) -> Vec<Value> {
    if let [Value::List(items)] = args.as_mut_slice() {
        return std::mem::take(items);
    }
    args
}

/// Wraps an arithmetic result, rounding away binary noise such as `0.1 + 0.2`.
pub(crate) fn number(n: f64) -> Value {
    if !n.is_finite() {
        return Value::Null;
    }
    if n.fract() == 0.0 {
        return Value::Number(n);
    }
    // 15 significant digits is the most f64 always round-trips; the binary error lives in
    // the 16th and 17th, so dropping them makes `0.1 + 0.2 = 0.3` hold as in decimal FEEL.
    let rounded = format!("{n:.14e}").parse::<f64>().unwrap_or(n);
    Value::Number(rounded)
}

fn integer(n: f64) -> Option<i64> {
    (n.fract() == 0.0 && n.abs() < 1e15).then_some(n as i64)
}

/// DMN `substring`: positions are 1-based and a negative start counts from the end
/// (-1 is the last character); start 0 or non-integral arguments give null.
fn substring(s: &str, start: f64, rest: &[Value]) -> Value {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let Some(start) = integer(start) else {
        return Value::Null;
    };
    let begin = match start {
        0 => return Value::Null,
        s if s > 0 => s - 1,
        s => (len + s).max(0),
    };
    let begin = begin.min(len);
    let end = match rest {
        [] => len,
        [Value::Number(n)] => match integer(*n) {
            Some(n) if n >= 0 => begin.saturating_add(n).min(len),
            _ => return Value::Null,
        },
        _ => return Value::Null,
    };
    Value::String(chars[begin as usize..end as usize].iter().collect())
}

fn matches(
    input: &str,
    pattern: &str,
    flags: &[Value],
    precompiled: Option<&Regex>,
    budget: &mut u64,
) -> Value {
    let flags = match flags {
        [] => "",
        [Value::String(f)] => f.as_str(),
        _ => return Value::Null,
    };
    let compiled;
    let regex = match precompiled {
        Some(r) => r,
        None => {
            // Compiling costs roughly one unit per pattern character.
            *budget = budget.saturating_sub(pattern.len() as u64);
            match Regex::new(pattern, flags) {
                Ok(r) => {
                    compiled = r;
                    &compiled
                }
                Err(_) => return Value::Null,
            }
        }
    };
    regex
        .is_match(input, budget)
        .map_or(Value::Null, Value::Bool)
}

pub(crate) fn format_number(n: f64) -> String {
    match integer(n) {
        Some(i) => i.to_string(),
        None => n.to_string(),
    }
}

fn to_string(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format_number(*n),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::DateTime(dt) => format_date_time(dt),
        Value::List(_) | Value::Context(_) => v.to_json().to_string(),
    })
}

/// FEEL number syntax only: optional `-`, digits, optional fraction (no exponent, no `inf`).
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let valid = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    if !valid {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn sum(items: &[Value]) -> Value {
    if items.is_empty() {
        return Value::Null;
    }
    let mut total = 0.0;
    for item in items {
        match item {
            Value::Number(n) => total += n,
            _ => return Value::Null,
        }
    }
    number(total)
}

fn extreme(items: &[Value], wanted: std::cmp::Ordering) -> Value {
    let Some(mut best) = items.first() else {
        return Value::Null;
    };
    for item in &items[1..] {
        match feel_cmp(item, best) {
            Some(o) if o == wanted => best = item,
            Some(_) => {}
            None => return Value::Null,
        }
    }
    // A single non-comparable item (e.g. `max([true])`) was never compared.
    match feel_cmp(best, best) {
        Some(_) => best.clone(),
        None => Value::Null,
    }
}

/// `all` (short = false) and `any` (short = true): the short-circuit value wins, then any
/// non-boolean makes the result null.
fn all_any(items: &[Value], short: bool) -> Value {
    let mut unknown = false;
    for item in items {
        match item {
            Value::Bool(b) if *b == short => return Value::Bool(short),
            Value::Bool(_) => {}
            _ => unknown = true,
        }
    }
    if unknown {
        Value::Null
    } else {
        Value::Bool(!short)
    }
}

fn utc() -> FixedOffset {
    Utc.fix()
}

/// Accepts RFC 3339 (`2026-01-01T10:00:00Z`, `...+02:00`), a local date-time without offset
/// and a bare date; values without an offset are taken as UTC.
fn date_and_time(v: &Value) -> Option<DateTime<FixedOffset>> {
    match v {
        Value::DateTime(dt) => Some(*dt),
        Value::Date(d) => Some(midnight_utc(*d)),
        Value::String(s) => {
            if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
                return Some(dt);
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
                if let Ok(ndt) = NaiveDateTime::parse_from_str(s, format) {
                    return Some(DateTime::from_naive_utc_and_offset(ndt, utc()));
                }
            }
            parse_date(s).map(midnight_utc)
        }
        _ => None,
    }
}

fn midnight_utc(d: NaiveDate) -> DateTime<FixedOffset> {
    DateTime::from_naive_utc_and_offset(d.and_time(chrono::NaiveTime::MIN), utc())
}

fn date(v: &Value) -> Option<NaiveDate> {
    match v {
        Value::Date(d) => Some(*d),
        Value::DateTime(dt) => Some(dt.date_naive()),
        Value::String(s) => parse_date(s),
        _ => None,
    }
}

/// Strictly `YYYY-MM-DD` (chrono alone would also accept `2026-1-1`).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn date_from_parts(y: f64, m: f64, d: f64) -> Option<NaiveDate> {
    let y = i32::try_from(integer(y)?).ok()?;
    let m = u32::try_from(integer(m)?).ok()?;
    let d = u32::try_from(integer(d)?).ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

//! Robustness tests for `herald_filter::cesql`: parsing arbitrary text (and token soups or
//! generated valid expressions) never panics, evaluating whatever parses never panics, and
//! the length / nesting-depth limits are enforced with a ParseError instead of a stack overflow.

use std::collections::HashMap;

use herald_filter::cesql::{Expression, Value, MAX_EXPRESSION_CHARS, MAX_NESTING_DEPTH};
use proptest::prelude::*;

/// An event with a few attributes of each type (and none called `missing`).
fn event() -> HashMap<String, Value> {
    [
        ("specversion", Value::from("1.0")),
        ("id", Value::from("abc-123")),
        ("source", Value::from("https://example.com/src")),
        ("type", Value::from("com.example.type")),
        ("subject", Value::from("")),
        ("myint", Value::Integer(i32::MIN)),
        ("mybig", Value::Integer(i32::MAX)),
        ("mybool", Value::Boolean(true)),
        ("mynum", Value::from("42")),
        ("myuni", Value::from("ünï\u{0}cödé ")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Evaluates a parsed expression and checks `matches` agrees with the evaluation.
fn check_evaluation(expr: &Expression) {
    let ev = event();
    let out = expr.evaluate(&ev);
    let expected = out.error.is_none() && out.value == Value::Boolean(true);
    assert_eq!(expr.matches(&ev), expected);
    // Evaluation is deterministic.
    assert_eq!(expr.evaluate(&ev), out);
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    ",",
    "=",
    "!=",
    "<>",
    ">=",
    "<=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    "!",
    "AND",
    "or",
    "XoR",
    "NOT",
    "LIKE",
    "like",
    "IN",
    "EXISTS",
    "TRUE",
    "false",
    "0",
    "1",
    "10",
    "-2147483648",
    "2147483647",
    "2147483648",
    "99999999999999999999",
    "'abc'",
    "\"x\"",
    "'a%b_c\\%'",
    "'%'",
    "'_'",
    "''",
    "'\\'",
    "'",
    "\"",
    "\\",
    "id",
    "source",
    "SUBJECT",
    "missing",
    "myint",
    "mybig",
    "mybool",
    "mynum",
    "myuni",
    "a_b",
    "1x",
    "ABS",
    "LENGTH",
    "SUBSTRING",
    "LEFT",
    "right",
    "CONCAT",
    "CONCAT_WS",
    "INT",
    "BOOL",
    "STRING",
    "IS_INT",
    "lower",
    "TRIM",
    "nosuch",
    "é",
    " ",
    "\t",
    "\n",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40)
        .prop_flat_map(|tokens| {
            let n = tokens.len();
            (Just(tokens), prop::collection::vec(any::<bool>(), n))
        })
        .prop_map(|(tokens, spaces)| {
            let mut s = String::new();
            for (t, space) in tokens.iter().zip(spaces) {
                s.push_str(t);
                if space {
                    s.push(' ');
                }
            }
            s
        })
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        prop::sample::select(vec![
            "TRUE", "false", "0", "-1", "'abc'", "'10'", "'true'", "''"
        ])
        .prop_map(str::to_owned),
        // A backslash right before the closing quote would escape it: keep it off the end.
        "([a-z%_ ]|\\\\[%_a]){0,8}".prop_map(|s| format!("'{s}'")),
        prop::sample::select(vec![
            "id", "source", "subject", "myint", "mybig", "mybool", "mynum", "myuni", "missing",
        ])
        .prop_map(str::to_owned),
    ]
}

fn is_keyword(word: &str) -> bool {
    [
        "and", "or", "xor", "not", "like", "in", "exists", "true", "false",
    ]
    .contains(&word)
}

/// Syntactically valid expressions, built bottom-up.
fn valid_expression() -> impl Strategy<Value = String> {
    literal().prop_recursive(6, 64, 4, |inner| {
        let binary = prop::sample::select(vec![
            "AND", "OR", "XOR", "=", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%",
        ]);
        let function = prop::sample::select(vec![
            "ABS",
            "LENGTH",
            "SUBSTRING",
            "LEFT",
            "RIGHT",
            "CONCAT",
            "CONCAT_WS",
            "INT",
            "BOOL",
            "STRING",
            "IS_BOOL",
            "UPPER",
            "lower",
            "trim",
            "nosuch",
        ]);
        prop_oneof![
            (inner.clone(), binary, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("NOT ({a})")),
            inner.clone().prop_map(|a| format!("-({a})")),
            (function, prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (inner.clone(), any::<bool>(), "([a-z%_]|\\\\[%_a]){0,6}").prop_map(|(a, not, p)| {
                format!("({a}) {}LIKE '{p}'", if not { "NOT " } else { "" })
            }),
            (
                inner.clone(),
                any::<bool>(),
                prop::collection::vec(inner, 1..4)
            )
                .prop_map(|(a, not, set)| format!(
                    "({a}) {}IN ({})",
                    if not { "NOT " } else { "" },
                    set.join(", ")
                )),
            "[a-z0-9]{1,6}"
                .prop_filter("keywords are reserved", |name| !is_keyword(name))
                .prop_map(|name| format!("EXISTS {name}")),
        ]
    })
}

proptest! {
    // No failure persistence: it would write regression files next to this test.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn cesql_parse_arbitrary_text_never_panics(src in any::<String>()) {
        if let Ok(expr) = Expression::parse(&src) {
            check_evaluation(&expr);
        }
    }

    #[test]
    fn cesql_parse_sql_like_text_never_panics(src in "[a-zA-Z0-9_ '\"\\\\()=!<>+*/%,-]{0,60}") {
        if let Ok(expr) = Expression::parse(&src) {
            check_evaluation(&expr);
        }
    }

    #[test]
    fn cesql_parse_token_soup_never_panics(src in token_soup()) {
        if let Ok(expr) = Expression::parse(&src) {
            check_evaluation(&expr);
        }
    }

    #[test]
    fn cesql_valid_expressions_parse_and_evaluate(src in valid_expression()) {
        prop_assume!(src.chars().count() <= MAX_EXPRESSION_CHARS);
        let expr = Expression::parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        check_evaluation(&expr);
    }

    #[test]
    fn cesql_parse_errors_point_inside_the_input(src in token_soup()) {
        if let Err(e) = Expression::parse(&src) {
            prop_assert!(e.position <= src.chars().count(), "{e} for {src:?}");
            let prefix = format!("at position {}: ", e.position);
            prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
        }
    }
}

fn nested_parens(depth: usize) -> String {
    format!("{}1{}", "(".repeat(depth), ")".repeat(depth))
}

#[test]
fn cesql_nesting_up_to_the_limit_is_accepted() {
    let expr = Expression::parse(&nested_parens(MAX_NESTING_DEPTH)).unwrap();
    assert_eq!(expr.evaluate(&event()).value, Value::Integer(1));
    let calls = format!(
        "{}-5{}",
        "ABS(".repeat(MAX_NESTING_DEPTH),
        ")".repeat(MAX_NESTING_DEPTH)
    );
    assert_eq!(
        Expression::parse(&calls).unwrap().evaluate(&event()).value,
        Value::Integer(5)
    );
    let nots = format!("{}TRUE", "NOT ".repeat(MAX_NESTING_DEPTH));
    assert_eq!(
        Expression::parse(&nots).unwrap().evaluate(&event()).value,
        Value::Boolean(true)
    );
}

#[test]
fn cesql_nesting_beyond_the_limit_is_a_parse_error() {
    let err = Expression::parse(&nested_parens(MAX_NESTING_DEPTH + 1)).unwrap_err();
    assert_eq!(err.position, MAX_NESTING_DEPTH);
    assert!(err.message.contains("nested"), "{err}");

    // Within the length limit, but far deeper than the nesting limit.
    for src in [
        "(".repeat(4000),
        "NOT ".repeat(1000),
        "-".repeat(4000),
        "ABS(".repeat(1000),
        format!("x{}", " IN (1)".repeat(500)),
        format!("{}x", "x IN (".repeat(500)),
    ] {
        let err = Expression::parse(&src).unwrap_err();
        assert!(err.message.contains("nested"), "{err}");
    }
}

#[test]
fn cesql_huge_inputs_are_rejected_without_overflowing_the_stack() {
    let err = Expression::parse(&"(".repeat(100_000)).unwrap_err();
    assert_eq!(err.position, MAX_EXPRESSION_CHARS);
    assert!(err.message.contains("4096"), "{err}");
    assert!(Expression::parse(&"NOT ".repeat(100_000)).is_err());
    assert!(Expression::parse(&"-".repeat(100_000)).is_err());
}

#[test]
fn cesql_length_limit_counts_characters() {
    // 4096 characters (some multi-byte) are accepted, 4097 are not.
    let at_limit = format!("'{}'", "é".repeat(MAX_EXPRESSION_CHARS - 2));
    assert!(at_limit.len() > MAX_EXPRESSION_CHARS);
    assert!(Expression::parse(&at_limit).is_ok());
    let over = format!("'{}'", "é".repeat(MAX_EXPRESSION_CHARS - 1));
    let err = Expression::parse(&over).unwrap_err();
    assert_eq!(err.position, MAX_EXPRESSION_CHARS);
}

#[test]
fn cesql_long_flat_chains_are_not_nesting() {
    let src = vec!["myint = 1"; 300].join(" OR ");
    assert!(src.chars().count() <= MAX_EXPRESSION_CHARS);
    let expr = Expression::parse(&src).unwrap();
    assert_eq!(expr.evaluate(&event()).value, Value::Boolean(false));
    let sum = vec!["1"; 2000].join("+");
    assert_eq!(
        Expression::parse(&sum).unwrap().evaluate(&event()).value,
        Value::Integer(2000)
    );
}

#[test]
fn cesql_deepest_expressions_evaluate_on_a_small_stack() {
    // Every nesting level goes through all binary precedence levels, a call and a postfix IN.
    let mut src = "myint".to_owned();
    for _ in 0..(MAX_NESTING_DEPTH / 2) {
        src = format!("ABS(1 * {src} + 1 < 2 AND TRUE OR FALSE) IN (1)");
    }
    assert!(src.chars().count() <= MAX_EXPRESSION_CHARS);
    let expr = Expression::parse(&src).unwrap();
    // This is as deep as it gets: one more level is refused.
    assert!(Expression::parse(&format!("ABS({src})")).is_err());
    // Parse and evaluate on a 1 MiB stack, half of a default thread's. Measured need at this
    // depth: ~512 KiB for an unoptimised build, ~128 KiB for a release build.
    let out = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let reparsed = Expression::parse(&src).unwrap();
            (reparsed.evaluate(&event()), expr.evaluate(&event()))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(out.0, out.1);
}

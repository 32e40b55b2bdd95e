//! FEEL filter expressions: every supported construct and built-in, null propagation, parse
//! errors and limits, and property tests that parsing and evaluation never panic.

// Wrapped in a module so that `cargo test -p herald-filter feel` selects every test here.
mod feel {
    use std::time::{Duration, Instant};

    use herald_filter::feel::{Expression, ParseError, Value, MAX_NESTING, MAX_SOURCE_CHARS};
    use proptest::prelude::*;
    use serde_json::{json, Map, Value as Json};

    fn event() -> Map<String, Json> {
        let event = json!({
            "specversion": "1.0",
            "id": "e-1",
            "source": "/shop",
            "type": "order.created",
            "subject": "orders/1",
            "time": "2026-03-01T12:00:00Z",
            "tenant": "acme"
        });
        event.as_object().cloned().unwrap_or_default()
    }

    fn data() -> Json {
        json!({
            "amount": 150,
            "currency": "EUR",
            "customer": {"name": "Ada", "address": {"city": "Paris"}},
            "items": [
                {"sku": "a", "price": 5, "qty": 2},
                {"sku": "b", "price": 20, "qty": 1}
            ],
            "tags": ["x", "y"],
            "flag": true,
            "nothing": null,
            "created": "2026-02-15",
            "bad pattern": "(",
            "pattern": "[",
            "event": "hidden"
        })
    }

    fn compile(src: &str) -> Expression {
        Expression::parse(src).unwrap_or_else(|e| panic!("`{src}` should parse: {e}"))
    }

    fn eval(src: &str) -> Json {
        compile(src).evaluate_json(&data(), &event())
    }

    fn check(src: &str, expected: Json) {
        assert_eq!(eval(src), expected, "`{src}`");
    }

    fn yes(src: &str) {
        check(src, json!(true));
        assert!(
            compile(src).matches(&data(), &event()),
            "`{src}` should match"
        );
    }

    fn no(src: &str) {
        check(src, json!(false));
        assert!(!compile(src).matches(&data(), &event()));
    }

    fn null(src: &str) {
        check(src, Json::Null);
        assert!(!compile(src).matches(&data(), &event()));
    }

    fn parse_err(src: &str) -> ParseError {
        match Expression::parse(src) {
            Ok(_) => panic!("`{src}` should not parse"),
            Err(e) => e,
        }
    }

    #[test]
    fn literals() {
        check("1", json!(1));
        check("1.5", json!(1.5));
        check(".5", json!(0.5));
        check("-3", json!(-3));
        check(r#""a\"b\\c""#, json!("a\"b\\c"));
        check(r#""\u0041\t""#, json!("A\t"));
        check(r#""\d+""#, json!("\\d+"));
        yes("true");
        no("false");
        null("null");
        check(r#"[1, "a", null, [true]]"#, json!([1, "a", null, [true]]));
        check("[]", json!([]));
        check(r#"{a: 1, "b c": a + 1}"#, json!({"a": 1, "b c": 2}));
        check("{}", json!({}));
        check(
            r#"get value({first name: "Ada"}, "first name")"#,
            json!("Ada"),
        );
        check("{a: {b: 2}}.a.b", json!(2));
        check("1 // comment\n + /* inline */ 2", json!(3));
    }

    #[test]
    fn names_and_paths() {
        check("amount", json!(150));
        check("customer.address.city", json!("Paris"));
        null("customer.missing.city");
        null("customer.name.first");
        null("unknown");
        check("items.price", json!([5, 20]));
        check("items.sku", json!(["a", "b"]));
        check("event.type", json!("order.created"));
        check("event.source", json!("/shop"));
        check("event.subject", json!("orders/1"));
        check("event.tenant", json!("acme"));
        null("event.missing");
        check("event.id", json!("e-1"));
        assert_eq!(eval("event"), Json::Object(event()));
        // A local binding shadows the event context.
        yes(r#"some event in [{type: "x"}] satisfies event.type = "x""#);
        check("for event in [1] return event", json!([1]));
    }

    #[test]
    fn data_that_is_not_an_object_has_no_variables() {
        let e = compile("x = null and event.type = \"order.created\"");
        assert!(e.matches(&json!([1, 2]), &event()));
        assert!(e.matches(&json!("text"), &event()));
        assert_eq!(
            compile("x").evaluate(&json!(null), &Map::new()),
            Value::Null
        );
    }

    #[test]
    fn filters_and_indexes() {
        check("tags[1]", json!("x"));
        check("tags[-1]", json!("y"));
        null("tags[3]");
        null("tags[0]");
        null("tags[1.5]");
        check("items[price > 10].sku", json!(["b"]));
        check("items[item.price > 10].sku", json!(["b"]));
        check("items[price > 100]", json!([]));
        check("[1, 2, 3, 4][item > 2]", json!([3, 4]));
        check("[1, 2, 3][item > \"a\"]", json!([]));
        check("5[item > 1]", json!([5]));
        null("nothing[1]");
        check("items[2].qty", json!(1));
    }

    #[test]
    fn comparisons() {
        yes("amount > 100");
        no("amount < 100");
        yes("amount = 150");
        no("amount != 150");
        yes("amount >= 150");
        no("amount <= 149");
        yes(r#""abc" < "abd""#);
        yes(r#"currency = "EUR""#);
        null(r#"1 = "1""#);
        null(r#"1 != "1""#);
        null(r#"1 < "a""#);
        null("true < false");
        yes("null = null");
        yes("nothing = null");
        yes("unknown = null");
        no("amount = null");
        yes("amount != null");
        null("nothing > 1");
        yes("[1, 2] = [1, 2]");
        no("[1, 2] = [1, 2, 3]");
        yes("{a: 1, b: [2]} = {b: [2], a: 1}");
        no("{a: 1} = {b: 1}");
        yes("flag = true");
    }

    #[test]
    fn arithmetic() {
        check("1 + 2 * 3", json!(7));
        check("(1 + 2) * 3", json!(9));
        check("10 - 2 - 3", json!(5));
        check("2 ** 3", json!(8));
        check("2 ** 3 ** 2", json!(64));
        check("-2 ** 2", json!(4));
        check("2 ** -1", json!(0.5));
        check("10 / 4", json!(2.5));
        check("1 / 3", json!(0.333333333333333));
        null("1 / 0");
        null("10 ** 400");
        yes("0.1 + 0.2 = 0.3");
        check("- amount", json!(-150));
        check("-(amount - 50)", json!(-100));
        check("amount * 2 + items[1].price", json!(305));
        check(r#""a" + "b""#, json!("ab"));
        null(r#""a" + 1"#);
        null(r#"-"a""#);
        null("null + 1");
        null("nothing * 2");
        null("unknown - 1");
    }

    #[test]
    fn three_valued_logic() {
        yes(r#"amount > 100 and event.type = "order.created""#);
        no(r#"amount > 100 and event.type = "order.paid""#);
        yes(r#"amount > 1000 or event.type = "order.created""#);
        null("true and null");
        no("false and null");
        no("null and false");
        yes("true or null");
        yes("null or true");
        null("false or null");
        null("null or null");
        null("1 and true");
        no("1 and false");
        yes("true and true and true and flag");
        no("false or false or false");
        // `and` binds tighter than `or`.
        yes("true or false and false");
        no("(true or false) and false");
        no("not(true)");
        yes("not(false)");
        yes("not(amount < 100)");
        null("not(null)");
        null("not(1)");
    }

    #[test]
    fn in_tests() {
        yes("amount in [100, 150]");
        no("amount in [1, 2]");
        no("amount in []");
        yes("amount in (100..200]");
        yes("150 in (100..150]");
        no("150 in (100..150)");
        yes("100 in [100..150]");
        no("100 in ]100..150]");
        no("150 in [100..150[");
        yes("149 in [100..150[");
        yes("5 in > 3");
        no("5 in < 3");
        yes("5 in (< 3, > 4)");
        no("5 in (1, 2, 3)");
        yes("5 in (1, 5)");
        yes("5 in = 5");
        yes("5 in != 4");
        yes(r#""b" in ("a", "b")"#);
        yes(r#"currency in ["EUR", "USD"]"#);
        yes(r#""x" in tags"#);
        no(r#""z" in tags"#);
        yes("9 in (1 + 2) * 3");
        yes("amount in ([1..10], [100..200])");
        yes("amount in ((1..10), (100..200))");
        yes("null in [1, null]");
        null(r#""a" in [1, 2]"#);
        null("nothing in [1..10]");
        yes(r#"date("2026-01-05") in [date("2026-01-01")..date("2026-01-31")]"#);
        yes("amount in [100..amount]");
        yes("amount in [items[1].price..1000]");
        yes("amount in [100, 150] and flag");
        yes("(amount in > 100) = true");
    }

    #[test]
    fn between() {
        yes("amount between 100 and 200");
        no("amount between 1 and 2");
        yes("150 between 150 and 150");
        yes(r#""b" between "a" and "c""#);
        null("nothing between 1 and 2");
        null(r#"amount between "a" and 200"#);
        no(r#"amount between "a" and 2"#);
        yes("amount between 100 and 200 and flag");
        yes("amount + 1 between 100 + 1 and 200");
    }

    #[test]
    fn if_then_else() {
        check(r#"if amount > 100 then "big" else "small""#, json!("big"));
        check(
            r#"if amount > 1000 then "big" else "small""#,
            json!("small"),
        );
        check("if null then 1 else 2", json!(2));
        check(r#"if "x" then 1 else 2"#, json!(2));
        check("if flag then if amount > 1 then 3 else 4 else 5", json!(3));
        check("if false then 1 else 2 + 3", json!(5));
    }

    #[test]
    fn quantifiers_and_for() {
        yes("some i in items satisfies i.price > 10");
        no("some i in items satisfies i.price > 100");
        yes("every i in items satisfies i.price > 1");
        no("every i in items satisfies i.price > 10");
        yes(r#"some i in items satisfies i.sku = "b" and i.qty = 1"#);
        no("some x in [] satisfies true");
        yes("every x in [] satisfies false");
        null("some x in null satisfies true");
        null("every x in nothing satisfies true");
        yes("some x in 5 satisfies x = 5");
        yes("some x in [1, 2], y in [2, 3] satisfies x = y");
        no("some x in [1, 2], y in [3, 4] satisfies x = y");
        yes("every x in [1, 2], y in [3] satisfies x < y");
        yes("some x in [[1, 2], [3]], y in x satisfies y = 3");
        no("some x in [null, 1] satisfies x > 5");
        no("every x in [null, 10] satisfies x > 5");
        check("for i in items return i.price * i.qty", json!([10, 20]));
        check("sum(for i in items return i.price * i.qty)", json!(30));
        check(
            "for x in [1, 2], y in [10, 20] return x + y",
            json!([11, 21, 12, 22]),
        );
        null("for x in null return x");
    }

    #[test]
    fn string_functions() {
        yes(r#"contains("foobar", "oob")"#);
        no(r#"contains("foobar", "x")"#);
        null(r#"contains(1, "x")"#);
        null(r#"contains(nothing, "x")"#);
        yes(r#"starts with(event.type, "order.")"#);
        no(r#"starts with("foobar", "bar")"#);
        yes(r#"ends with("foobar", "bar")"#);
        no(r#"ends with("foobar", "foo")"#);
        null(r#"ends with("foobar", null)"#);
        check(r#"upper case("abc")"#, json!("ABC"));
        check(r#"lower case("ÀBC")"#, json!("àbc"));
        null("upper case(1)");
        check(r#"substring("foobar", 3)"#, json!("obar"));
        check(r#"substring("foobar", 3, 3)"#, json!("oba"));
        check(r#"substring("foobar", -2, 1)"#, json!("a"));
        check(r#"substring("foobar", -2)"#, json!("ar"));
        check(r#"substring("foobar", -10, 2)"#, json!("fo"));
        check(r#"substring("foobar", 10)"#, json!(""));
        check(r#"substring("foobar", 2, 0)"#, json!(""));
        check(r#"substring("héllo", 2, 1)"#, json!("é"));
        null(r#"substring("foobar", 0)"#);
        null(r#"substring("foobar", 1.5)"#);
        null(r#"substring("foobar", 1, -1)"#);
        null(r#"substring(1, 1)"#);
        check(r#"string length("héllo")"#, json!(5));
        check(r#"string length("")"#, json!(0));
        null("string length(1)");
        check(r#"substring before("foobar", "bar")"#, json!("foo"));
        check(r#"substring before("foobar", "x")"#, json!(""));
        check(r#"substring after("foobar", "ob")"#, json!("ar"));
        check("string(1.5)", json!("1.5"));
        check("string(2)", json!("2"));
        check("string(true)", json!("true"));
        check(r#"string(date("2026-01-02"))"#, json!("2026-01-02"));
        null("string(null)");
        check(r#"number("12.5")"#, json!(12.5));
        check(r#"number("-3")"#, json!(-3));
        null(r#"number("abc")"#);
        null(r#"number("1e5")"#);
        null(r#"number("inf")"#);
        null("number(1)");
    }

    #[test]
    fn matches_function() {
        yes(r#"matches("foobar", "^fo*")"#);
        no(r#"matches("foobar", "^bar")"#);
        yes(r#"matches("foobar", "bar$")"#);
        yes(r#"matches("abc123", "\d{3}$")"#);
        yes(r#"matches("abc123", "\\d{3}$")"#);
        no(r#"matches("abc12", "\d{3}$")"#);
        yes(r#"matches("2026-01-01", "^\d{4}-\d{2}-\d{2}$")"#);
        yes(r#"matches("FOO", "foo", "i")"#);
        no(r#"matches("FOO", "foo")"#);
        yes(r#"matches("Q", "[a-z]", "i")"#);
        no("matches(\"a\\nb\", \"a.b\")");
        yes("matches(\"a\\nb\", \"a.b\", \"s\")");
        no("matches(\"x\\nfoo\", \"^foo\")");
        yes("matches(\"x\\nfoo\", \"^foo\", \"m\")");
        yes(r#"matches("ab", "a b", "x")"#);
        no(r#"matches("a b", "a b", "x")"#);
        yes(r#"matches("b", "a|b")"#);
        yes(r#"matches("aaa", "^(a|aa)+$")"#);
        no(r#"matches("aab", "^(a|aa)+$")"#);
        yes(r#"matches("abc", "^(?:ab)c$")"#);
        yes(r#"matches("x9", "[^0-9][0-9]")"#);
        no(r#"matches("99", "^[^0-9]")"#);
        yes(r#"matches("ada@example.com", "^\w+@\w+\.com$")"#);
        no(r#"matches("ada@examplexcom", "^\w+@\w+\.com$")"#);
        yes(r#"matches("xxx", "^x{2,3}$")"#);
        no(r#"matches("xxxx", "^x{2,3}$")"#);
        yes(r#"matches("xxxx", "^x{2,}$")"#);
        yes(r#"matches("a-b", "^[a-]+-?b$")"#);
        yes(r#"matches("a b", "\s")"#);
        yes(r#"matches("", "^$")"#);
        yes(r#"matches("anything", "")"#);
        yes(r#"matches("aa", "a+?")"#);
        yes(r#"matches(event.source, "^/shop")"#);
        // Patterns known only at evaluation time: an invalid one gives null.
        null(r#"matches("(", pattern)"#);
        yes(r#"matches("[", "\[")"#);
        null(r#"matches("x", get value({p: "("}, "p"))"#);
        yes(r#"matches("ab", "^" + "a" + "b$")"#);
        null(r#"matches(1, "a")"#);
        null(r#"matches("a", "a", 1)"#);
        null(r#"matches("a", "a", flags)"#);
        // Nested quantifiers that make backtracking engines explode stay linear here.
        let long = format!("{}b", "a".repeat(5000));
        let e = compile(r#"matches(s, "^(a+)+$")"#);
        let started = Instant::now();
        assert_eq!(
            e.evaluate(&json!({"s": long}), &event()),
            Value::Bool(false)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn invalid_literal_patterns_are_parse_errors() {
        for (src, pos) in [
            (r#"matches("x", "[")"#, 13),
            (r#"matches("x", "a)")"#, 13),
            (r#"matches("x", "*a")"#, 13),
            (r#"matches("x", "a{3,1}")"#, 13),
            (r#"matches("x", "a**")"#, 13),
            (r#"matches("x", "(?=a)")"#, 13),
            (r#"matches("x", "\p{L}")"#, 13),
            (r#"matches("x", "a{5000}")"#, 13),
            (r#"matches("x", "[b-a]")"#, 13),
            (r#"matches("x", "a", "q")"#, 13),
        ] {
            let e = parse_err(src);
            assert_eq!(e.position, pos, "`{src}`: {e}");
            assert!(e.message.starts_with("invalid regex"), "`{src}`: {e}");
        }
    }

    #[test]
    fn number_and_list_functions() {
        check("abs(-2)", json!(2));
        check("abs(2.5)", json!(2.5));
        null(r#"abs("a")"#);
        check("floor(1.5)", json!(1));
        check("floor(-1.5)", json!(-2));
        check("ceiling(1.2)", json!(2));
        check("ceiling(-1.2)", json!(-1));
        null("ceiling(null)");
        check("count([1, 2, 3])", json!(3));
        check("count(items)", json!(2));
        check("count([])", json!(0));
        null("count(1)");
        check("sum([1, 2, 3])", json!(6));
        check("sum(1, 2, 3)", json!(6));
        check("sum(items.price)", json!(25));
        check("sum([0.1, 0.2])", json!(0.3));
        null("sum([])");
        null(r#"sum([1, "a"])"#);
        null("sum([1, null])");
        check("min([3, 1, 2])", json!(1));
        check("max(3, 1, 2)", json!(3));
        check("min(7)", json!(7));
        check(r#"min(["b", "a"])"#, json!("a"));
        check(
            r#"max(date("2026-01-01"), date("2026-02-01"))"#,
            json!("2026-02-01"),
        );
        null(r#"max([1, "a"])"#);
        null("max([true])");
        null("min([])");
        yes("all([true, true])");
        yes("all([])");
        null("all([true, null])");
        no("all([false, null])");
        yes("any([false, true])");
        no("any([])");
        null("any([false, 1])");
        yes("any(false, true)");
        yes("list contains([1, 2], 2)");
        no(r#"list contains(tags, "z")"#);
        yes("list contains([null], null)");
        null("list contains(1, 1)");
        check(r#"get value(customer, "name")"#, json!("Ada"));
        null(r#"get value(customer, "x")"#);
        null(r#"get value(1, "x")"#);
    }

    #[test]
    fn dates_and_times() {
        yes(r#"date and time(event.time) > date and time("2026-01-01T00:00:00Z")"#);
        no(r#"date and time(event.time) < date and time("2026-01-01T00:00:00Z")"#);
        yes(
            r#"date and time("2026-01-01T10:00:00+02:00") = date and time("2026-01-01T08:00:00Z")"#,
        );
        yes(r#"date and time("2026-01-01T10:00:00") = date and time("2026-01-01T10:00:00Z")"#);
        yes(r#"date and time("2026-01-01T10:00:00.250Z") > date and time("2026-01-01T10:00:00Z")"#);
        yes(r#"date("2026-01-01") < date("2026-01-02")"#);
        yes(r#"date(created) = date(2026, 2, 15)"#);
        yes(r#"date(created) between date("2026-02-01") and date("2026-02-28")"#);
        yes(r#"date(date and time(event.time)) = date("2026-03-01")"#);
        null(r#"date("2026-02-30")"#);
        null(r#"date("2026-1-1")"#);
        null(r#"date(event.time)"#);
        null("date(2026, 13, 1)");
        null("date(2026.5, 1, 1)");
        null(r#"date and time("garbage")"#);
        null("date and time(1)");
        null(r#"date("2026-01-01") = date and time("2026-01-01T00:00:00Z")"#);
        null(r#"date("2026-01-01") < "2026-01-02""#);
        check(
            r#"date and time("2026-01-01T10:00:00")"#,
            json!("2026-01-01T10:00:00Z"),
        );
        check(
            r#"date and time("2026-01-01")"#,
            json!("2026-01-01T00:00:00Z"),
        );
        check(
            r#"date and time(date("2026-01-01"))"#,
            json!("2026-01-01T00:00:00Z"),
        );
        check(
            r#"date and time("2026-01-01T10:00:00.5+02:00")"#,
            json!("2026-01-01T10:00:00.500+02:00"),
        );
        check(r#"date("2026-01-01")"#, json!("2026-01-01"));
        check("date and time(event.time).year", json!(2026));
        check("date and time(event.time).month", json!(3));
        check("date and time(event.time).hour", json!(12));
        check("date and time(event.time).minute", json!(0));
        check(r#"date("2026-03-04").weekday"#, json!(3));
        check(r#"date("2026-03-04").day"#, json!(4));
        null(r#"date("2026-03-04").hour"#);
        let value = compile(r#"date("2026-03-04")"#).evaluate(&data(), &event());
        assert!(matches!(value, Value::Date(_)));
        let value = compile("date and time(event.time)").evaluate(&data(), &event());
        assert!(matches!(value, Value::DateTime(_)));
    }

    #[test]
    fn evaluate_returns_feel_values() {
        let e = compile(r#"{n: 1.5, s: "x", l: [true, null], d: date("2026-01-01")}"#);
        let Value::Context(map) = e.evaluate(&data(), &event()) else {
            panic!("expected a context");
        };
        assert_eq!(map["n"], Value::Number(1.5));
        assert_eq!(map["s"], Value::String("x".into()));
        assert_eq!(map["l"], Value::List(vec![Value::Bool(true), Value::Null]));
        assert_eq!(
            Value::from_json(&json!({"a": [1]})).to_json(),
            json!({"a": [1]})
        );
        assert!(Value::Bool(true).is_true());
        assert!(!Value::Number(1.0).is_true());
        assert_eq!(compile("amount").source(), "amount");
    }

    #[test]
    fn parse_error_positions() {
        let cases: &[(&str, usize, &str)] = &[
            ("amount >", 8, "end of expression"),
            ("amount > > 1", 9, "expected an expression"),
            ("1 2", 2, "found number 2"),
            (r#""abc"#, 0, "unterminated string"),
            ("foo(1)", 0, "unknown function `foo`"),
            (
                r#"substring("a")"#,
                0,
                "wrong number of arguments (1) for `substring`",
            ),
            (r#"x = starts with("a")"#, 4, "`starts with`"),
            ("date(1, 2)", 0, "wrong number of arguments"),
            ("a # b", 2, "unexpected character `#`"),
            ("if a then b", 11, "`else`"),
            ("some x of y satisfies true", 7, "`in`"),
            ("some in in y satisfies true", 5, "variable name"),
            ("x in [1..5", 10, "close the interval"),
            ("x in [1 2]", 8, "`,`, `..` or `]`"),
            ("héllo ! 1", 6, "unexpected character `!`"),
            ("{a: 1, a: 2}", 7, "duplicate context key `a`"),
            ("a.", 2, "a name after `.`"),
            ("(1", 2, "`)`"),
            ("", 0, "expected an expression"),
            ("then", 0, "unexpected keyword `then`"),
            ("/* open", 0, "unterminated comment"),
            (r#""\u12""#, 1, "invalid \\u escape"),
            ("x in (< 1 .. 2)", 10, "`,` or `)`"),
        ];
        for (src, pos, fragment) in cases {
            let e = parse_err(src);
            assert_eq!(e.position, *pos, "`{src}`: {e}");
            assert!(e.message.contains(fragment), "`{src}`: {e}");
        }
        let e = parse_err("amount >");
        assert_eq!(
            e.to_string(),
            "at position 8: expected an expression, found end of expression"
        );
    }

    #[test]
    fn source_length_limit() {
        let fits = format!("\"{}\"", "a".repeat(MAX_SOURCE_CHARS - 2));
        assert_eq!(fits.chars().count(), MAX_SOURCE_CHARS);
        compile(&fits);
        let too_long = format!("\"{}\"", "a".repeat(MAX_SOURCE_CHARS - 1));
        let e = parse_err(&too_long);
        assert_eq!(e.position, MAX_SOURCE_CHARS);
        assert!(e.message.contains("longer than 4096"));
        // Counted in characters, not bytes.
        compile(&format!("\"{}\"", "é".repeat(MAX_SOURCE_CHARS - 2)));
    }

    #[test]
    fn nesting_limit() {
        let nested = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        check(&nested(MAX_NESTING), json!(1));
        let e = parse_err(&nested(MAX_NESTING + 1));
        assert_eq!(e.position, MAX_NESTING + 1);
        assert!(e.message.contains("nested deeper than 64"), "{e}");

        // The length limit stops this one before the parser sees it; below it, the nesting check.
        let e = parse_err(&"(".repeat(100_000));
        assert_eq!(e.position, MAX_SOURCE_CHARS);
        let e = parse_err(&"(".repeat(4000));
        assert_eq!(e.position, MAX_NESTING + 1);
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse_err(&"[".repeat(4000));
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse_err(&"-".repeat(4000));
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse_err(&"not(".repeat(1000));
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse_err(&format!("x in {}", "(".repeat(4000)));
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse_err(&"if ".repeat(1000));
        assert!(e.message.contains("nested deeper"), "{e}");

        let lists = format!("{}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        let mut expected = json!(1);
        for _ in 0..MAX_NESTING {
            expected = json!([expected]);
        }
        check(&lists, expected);
    }

    #[test]
    fn tree_height_limit() {
        let chain = |n: usize| vec!["1"; n].join(" + ");
        check(&chain(100), json!(100));
        let e = parse_err(&chain(200));
        assert!(e.message.contains("too complex"), "{e}");
        // `and`/`or` chains are flat, so long ones are fine.
        let ors = vec!["amount = 1"; 250].join(" or ");
        no(&ors);
    }

    #[test]
    fn deepest_accepted_expressions_fit_in_a_small_stack() {
        // Nesting and chain height near their limits together, per recursive construct, on a
        // 1 MiB thread (half of what Rust and tokio give threads by default); a debug build
        // needs about 512 KiB for these.
        let chain = vec!["amount"; 60].join(" + ");
        let cases = [
            (
                format!("{}{chain} > 0", "some x in [1] satisfies ".repeat(63)),
                json!(true),
            ),
            (
                format!("{}1{}", "[1][".repeat(63), "]".repeat(63)),
                json!(1),
            ),
            (
                format!(
                    "{}{chain}{}",
                    "if true then ".repeat(63),
                    " else 0".repeat(63)
                ),
                json!(9000),
            ),
            (
                format!(
                    "{}{chain}{}",
                    "count([{a: for y in [1] return abs(".repeat(12),
                    ")}])".repeat(12)
                ),
                json!(1),
            ),
        ];
        for (src, expected) in cases {
            let result = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || compile(&src).evaluate_json(&data(), &event()))
                .map(|handle| handle.join());
            assert!(
                matches!(result, Ok(Ok(ref v)) if *v == expected),
                "{result:?}"
            );
        }
    }

    #[test]
    fn evaluation_is_bounded() {
        let list: Vec<u32> = (0..300).collect();
        let data = json!({ "l": list });
        let started = Instant::now();
        for src in [
            "some a in l, b in l, c in l satisfies false",
            "every a in l, b in l, c in l satisfies true",
            "count(for a in l, b in l, c in l return a)",
            "some a in l satisfies some b in l satisfies count(l[item > a + b]) < 0",
        ] {
            assert_eq!(
                compile(src).evaluate(&data, &event()),
                Value::Null,
                "`{src}`"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        // Doubling strings is cut off rather than exhausting memory.
        let doubling: String = (1..40)
            .map(|i| format!("s{i}: s{} + s{}", i - 1, i - 1))
            .collect::<Vec<_>>()
            .join(", ");
        let src = format!("{{s0: \"abcdefgh\", {doubling}}}.s39");
        assert_eq!(compile(&src).evaluate(&data, &event()), Value::Null);
    }

    #[test]
    fn expressions_are_reusable_and_shareable() {
        let e = std::sync::Arc::new(compile("amount > limit"));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let e = e.clone();
                std::thread::spawn(move || {
                    e.matches(&json!({"amount": 10, "limit": i * 5}), &Map::new())
                })
            })
            .collect();
        let results: Vec<bool> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect();
        assert_eq!(results, vec![true, true, false, false]);
        let copy = (*e).clone();
        assert!(format!("{copy:?}").contains("Expression"));
    }

    fn feel_token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ",",
            ".",
            "..",
            ":",
            "+",
            "-",
            "*",
            "**",
            "/",
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "1",
            "0",
            "2.5",
            "\"a\"",
            "\"\\d+\"",
            "true",
            "null",
            "amount",
            "items",
            "tags",
            "i",
            "item",
            "event",
            "type",
            "and",
            "or",
            "not",
            "in",
            "between",
            "if",
            "then",
            "else",
            "some",
            "every",
            "for",
            "return",
            "satisfies",
            "x",
            "count",
            "sum",
            "min",
            "matches",
            "substring",
            "date",
            "and time",
            "starts with",
            "string length",
            "price",
            "]1",
            "\"2026-01-01\"",
            "\"(a|b)*\"",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(src in "\\PC{0,200}") {
            let _ = Expression::parse(&src);
        }

        #[test]
        fn evaluating_whatever_parses_never_panics(
            tokens in prop::collection::vec(feel_token(), 1..30)
        ) {
            let src = tokens.join(" ");
            if let Ok(e) = Expression::parse(&src) {
                let _ = e.evaluate(&data(), &event());
                let _ = e.evaluate_json(&json!([1]), &Map::new());
                let _ = e.matches(&json!({"amount": "x", "items": 3}), &event());
            }
        }

        #[test]
        fn arbitrary_regex_patterns_never_panic(pattern in "[a\\\\.()\\[\\]^$*+?{}|,0-9dws-]{0,30}", input in "[a-z0-9 ]{0,20}") {
            let src = "matches(s, p)";
            let value = compile(src).evaluate(&json!({"s": input, "p": pattern}), &Map::new());
            prop_assert!(matches!(value, Value::Bool(_) | Value::Null));
        }
    }

    /// Space Cloud rules translated to FEEL (`herald_core::trigger`) compare strings exactly,
    /// whatever characters they hold, and refuse field names FEEL reads as words.
    #[test]
    fn space_cloud_rule_strings_survive_translation() {
        use herald_core::trigger::filter_to_feel;
        let awkward = [
            "plain",
            "with \"quotes\"",
            "back\\slash \\d+",
            "line\nbreak\ttab\rcr",
            "bell\u{7}form\u{c}feed\u{8}",
            "unicode é ✓",
        ];
        for s in awkward {
            let rule = json!({"rule": "match", "type": "string", "eval": "==", "f1": "args.data.v", "f2": s});
            let feel = filter_to_feel(&rule).unwrap();
            let expr = Expression::parse(&feel).unwrap_or_else(|e| panic!("{feel}: {e}"));
            assert!(
                expr.matches(&json!({"v": s}), &Map::new()),
                "{s:?} via {feel}"
            );
            assert!(
                !expr.matches(&json!({"v": format!("{s}x")}), &Map::new()),
                "{s:?}"
            );
        }
        for word in ["null", "true", "and", "in", "event"] {
            let rule =
                json!({"rule": "match", "eval": "==", "f1": format!("args.data.{word}"), "f2": 1});
            assert!(filter_to_feel(&rule).is_err(), "{word}");
        }
    }
}

//! Tree-walking evaluator: resolves names against local bindings, the CloudEvent context
//! attributes (`event`) and the data object, applying FEEL's null-propagating semantics.
//! A step budget bounds the work of one evaluation, whatever the expression and event.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::ast::{ArithOp, Bindings, CmpOp, Expr, UnaryTest};
use super::functions::{self, number};
use super::value::{clone_counted, feel_cmp, feel_eq, from_json_counted, string_cost, Value};

/// Steps one evaluation may take (tree nodes visited, JSON nodes converted, regex steps);
/// when it runs out the whole result is null.
pub(crate) const STEP_BUDGET: u64 = 1_000_000;
/// Longest string a concatenation may build; repeated doubling could otherwise exhaust memory.
const MAX_STRING_BYTES: usize = 1 << 20;

enum Local<'e> {
    Var(&'e str, Value),
    /// The current element of a filter: visible as `item` and, for contexts, by entry name.
    Item(Value),
}

enum Flow {
    Continue,
    Stop,
    /// An iteration domain was null: the whole `some`/`every`/`for` is null.
    Invalid,
}

pub(crate) struct Env<'a, 'e> {
    data: &'a Json,
    event: &'a Map<String, Json>,
    locals: Vec<Local<'e>>,
    budget: u64,
}

impl<'a, 'e> Env<'a, 'e> {
    pub(crate) fn new(data: &'a Json, event: &'a Map<String, Json>) -> Self {
        Env {
            data,
            event,
            locals: Vec::new(),
            budget: STEP_BUDGET,
        }
    }

    pub(crate) fn run(&mut self, expr: &'e Expr) -> Value {
        let value = self.eval(expr);
        if self.budget == 0 {
            Value::Null
        } else {
            value
        }
    }

    fn eval(&mut self, expr: &'e Expr) -> Value {
        if self.budget == 0 {
            return Value::Null;
        }
        self.budget -= 1;
        match expr {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Number(n) => Value::Number(*n),
            Expr::String(s) => Value::String(s.clone()),
            Expr::List(items) => Value::List(items.iter().map(|e| self.eval(e)).collect()),
            Expr::Context(entries) => self.context(entries),
            Expr::Name(name) => self.name(name),
            Expr::Path(base, key) => self.path(base, key),
            Expr::Filter(base, cond) => self.filter(base, cond),
            Expr::Neg(e) => match self.eval(e) {
                Value::Number(n) => Value::Number(-n),
                _ => Value::Null,
            },
            Expr::Arith(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                self.arith(*op, a, b)
            }
            Expr::Compare(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                self.charge_strings(&[&a, &b]);
                compare(*op, &a, &b).map_or(Value::Null, Value::Bool)
            }
            Expr::And(items) => self.logic(items, false),
            Expr::Or(items) => self.logic(items, true),
            Expr::Between(x, low, high) => {
                let (x, low, high) = (self.eval(x), self.eval(low), self.eval(high));
                let above = compare(CmpOp::Ge, &x, &low);
                let below = compare(CmpOp::Le, &x, &high);
                and3(above, below).map_or(Value::Null, Value::Bool)
            }
            Expr::In(x, tests) => self.in_tests(x, tests),
            Expr::If(cond, then, otherwise) => {
                // FEEL takes the else branch for null and non-boolean conditions too.
                if self.eval(cond).is_true() {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            Expr::Quantified {
                every,
                bindings,
                cond,
            } => self.quantified(*every, bindings, cond),
            Expr::For { bindings, body } => self.for_expr(bindings, body),
            Expr::Call { func, args, regex } => {
                let args: Vec<Value> = args.iter().map(|a| self.eval(a)).collect();
                self.charge_strings(&args.iter().collect::<Vec<_>>());
                functions::call(*func, args, regex.as_deref(), &mut self.budget)
            }
        }
    }

    fn charge_strings(&mut self, values: &[&Value]) {
        for v in values {
            if let Value::String(s) = v {
                self.budget = self.budget.saturating_sub(string_cost(s));
            }
        }
    }

    fn local(&mut self, name: &str) -> Option<Value> {
        let found = self.locals.iter().rev().find_map(|local| match local {
            Local::Var(n, v) if *n == name => Some(v),
            Local::Item(v) if name == "item" => Some(v),
            Local::Item(Value::Context(map)) => map.get(name),
            _ => None,
        })?;
        Some(clone_counted(found, &mut self.budget))
    }

    fn is_local(&self, name: &str) -> bool {
        self.locals.iter().any(|local| match local {
            Local::Var(n, _) => *n == name,
            Local::Item(v) => {
                name == "item" || matches!(v, Value::Context(map) if map.contains_key(name))
            }
        })
    }

    /// Locals shadow `event`, which shadows the data object's fields.
    fn name(&mut self, name: &str) -> Value {
        if let Some(v) = self.local(name) {
            return v;
        }
        if name == "event" {
            let event: &'a Map<String, Json> = self.event;
            let budget = &mut self.budget;
            return Value::Context(
                event
                    .iter()
                    .map(|(k, v)| (k.clone(), from_json_counted(v, budget)))
                    .collect(),
            );
        }
        let data: &'a Json = self.data;
        match data.get(name) {
            Some(json) => from_json_counted(json, &mut self.budget),
            None => Value::Null,
        }
    }

    /// `a.b.c` rooted at the data object or `event` walks the JSON first and converts only
    /// what is left, instead of converting all of `a` and then discarding most of it.
    fn path(&mut self, base: &'e Expr, key: &'e str) -> Value {
        let mut keys = vec![key];
        let mut root = base;
        while let Expr::Path(inner, k) = root {
            keys.push(k);
            root = inner;
        }
        let Expr::Name(name) = root else {
            let value = self.eval(base);
            return path_get(value, key);
        };
        if self.is_local(name) {
            let value = self.eval(base);
            return path_get(value, key);
        }
        keys.reverse();
        let (start, rest) = if name == "event" {
            (self.event.get(keys[0]), &keys[1..])
        } else {
            (self.data.get(name.as_str()), &keys[..])
        };
        let Some(mut json) = start else {
            return Value::Null;
        };
        let mut used = 0;
        while let (Some(k), Json::Object(map)) = (rest.get(used), json) {
            match map.get(*k) {
                Some(next) => json = next,
                None => return Value::Null,
            }
            used += 1;
        }
        let mut value = from_json_counted(json, &mut self.budget);
        for k in &rest[used..] {
            value = path_get(value, k);
        }
        value
    }

    fn context(&mut self, entries: &'e [(String, Expr)]) -> Value {
        let mark = self.locals.len();
        let mut map = BTreeMap::new();
        for (key, expr) in entries {
            let value = self.eval(expr);
            map.insert(key.clone(), clone_counted(&value, &mut self.budget));
            // Later entries may refer to earlier ones.
            self.locals.push(Local::Var(key, value));
        }
        self.locals.truncate(mark);
        Value::Context(map)
    }

    /// `list[index]` (1-based, negative from the end) or `list[condition]`; which one is
    /// decided, as FEEL does, by whether the bracket evaluates to a number for the first item.
    fn filter(&mut self, base: &'e Expr, cond: &'e Expr) -> Value {
        let mut items = match self.eval(base) {
            Value::List(items) => items,
            Value::Null => return Value::Null,
            other => vec![other],
        };
        let mut keep = Vec::with_capacity(items.len());
        for i in 0..items.len() {
            // Moved into the scope and back rather than cloned: items can be large.
            let item = std::mem::replace(&mut items[i], Value::Null);
            self.locals.push(Local::Item(item));
            let verdict = self.eval(cond);
            if let Some(Local::Item(item)) = self.locals.pop() {
                items[i] = item;
            }
            if i == 0 {
                if let Value::Number(n) = verdict {
                    return index(items, n);
                }
            }
            keep.push(verdict.is_true());
            if self.budget == 0 {
                return Value::Null;
            }
        }
        Value::List(
            items
                .into_iter()
                .zip(keep)
                .filter_map(|(item, kept)| kept.then_some(item))
                .collect(),
        )
    }

    fn arith(&mut self, op: ArithOp, a: Value, b: Value) -> Value {
        match (op, a, b) {
            (ArithOp::Add, Value::Number(x), Value::Number(y)) => number(x + y),
            (ArithOp::Sub, Value::Number(x), Value::Number(y)) => number(x - y),
            (ArithOp::Mul, Value::Number(x), Value::Number(y)) => number(x * y),
            (ArithOp::Div, Value::Number(x), Value::Number(y)) if y != 0.0 => number(x / y),
            (ArithOp::Pow, Value::Number(x), Value::Number(y)) => number(x.powf(y)),
            (ArithOp::Add, Value::String(mut x), Value::String(y)) => {
                if x.len() + y.len() > MAX_STRING_BYTES {
                    return Value::Null;
                }
                self.budget = self
                    .budget
                    .saturating_sub(string_cost(&x) + string_cost(&y));
                x.push_str(&y);
                Value::String(x)
            }
            _ => Value::Null,
        }
    }

    /// `and` (short = false) / `or` (short = true) over any number of operands: the
    /// short-circuit value wins even over nulls, then any non-boolean makes the result null.
    fn logic(&mut self, items: &'e [Expr], short: bool) -> Value {
        let mut unknown = false;
        for item in items {
            match self.eval(item) {
                Value::Bool(b) if b == short => return Value::Bool(short),
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

    /// Several tests combine like `or`.
    fn in_tests(&mut self, x: &'e Expr, tests: &'e [UnaryTest]) -> Value {
        let x = self.eval(x);
        let mut unknown = false;
        for test in tests {
            let verdict = match test {
                UnaryTest::Equal(e) => match self.eval(e) {
                    Value::List(items) => membership(&x, &items),
                    other => feel_eq(&x, &other),
                },
                UnaryTest::Compare(op, e) => {
                    let v = self.eval(e);
                    compare(*op, &x, &v)
                }
                UnaryTest::Range {
                    low,
                    high,
                    low_closed,
                    high_closed,
                } => {
                    let (low, high) = (self.eval(low), self.eval(high));
                    let low_op = if *low_closed { CmpOp::Ge } else { CmpOp::Gt };
                    let high_op = if *high_closed { CmpOp::Le } else { CmpOp::Lt };
                    and3(compare(low_op, &x, &low), compare(high_op, &x, &high))
                }
            };
            match verdict {
                Some(true) => return Value::Bool(true),
                Some(false) => {}
                None => unknown = true,
            }
        }
        if unknown {
            Value::Null
        } else {
            Value::Bool(false)
        }
    }

    /// Visits every combination of the bindings (later domains may use earlier variables).
    fn iterate(
        &mut self,
        bindings: &'e [(String, Expr)],
        visit: &mut dyn FnMut(&mut Self) -> bool,
    ) -> Flow {
        let Some(((name, domain), rest)) = bindings.split_first() else {
            return if visit(self) {
                Flow::Continue
            } else {
                Flow::Stop
            };
        };
        let items = match self.eval(domain) {
            Value::List(items) => items,
            Value::Null => return Flow::Invalid,
            other => vec![other],
        };
        for item in items {
            if self.budget == 0 {
                return Flow::Invalid;
            }
            self.locals.push(Local::Var(name, item));
            let flow = self.iterate(rest, visit);
            self.locals.pop();
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
        Flow::Continue
    }

    fn quantified(&mut self, every: bool, bindings: &'e Bindings, cond: &'e Expr) -> Value {
        // `some` stops at the first true, `every` at the first non-true.
        let mut decided = false;
        let flow = self.iterate(bindings, &mut |env| {
            let hit = env.eval(cond).is_true();
            if hit != every {
                decided = true;
                return false;
            }
            true
        });
        match flow {
            Flow::Invalid => Value::Null,
            _ => Value::Bool(decided != every),
        }
    }

    fn for_expr(&mut self, bindings: &'e Bindings, body: &'e Expr) -> Value {
        let mut out = Vec::new();
        let flow = self.iterate(bindings, &mut |env| {
            out.push(env.eval(body));
            true
        });
        match flow {
            Flow::Invalid => Value::Null,
            _ => Value::List(out),
        }
    }
}

fn index(items: Vec<Value>, n: f64) -> Value {
    let len = items.len() as f64;
    if n.fract() != 0.0 || n == 0.0 || n.abs() > len {
        return Value::Null;
    }
    let at = if n > 0.0 { n - 1.0 } else { len + n };
    items.into_iter().nth(at as usize).unwrap_or(Value::Null)
}

fn membership(x: &Value, items: &[Value]) -> Option<bool> {
    let mut unknown = false;
    for item in items {
        match feel_eq(x, item) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Option<bool> {
    match op {
        CmpOp::Eq => feel_eq(a, b),
        CmpOp::Ne => feel_eq(a, b).map(|eq| !eq),
        CmpOp::Lt => feel_cmp(a, b).map(|o| o == Ordering::Less),
        CmpOp::Le => feel_cmp(a, b).map(|o| o != Ordering::Greater),
        CmpOp::Gt => feel_cmp(a, b).map(|o| o == Ordering::Greater),
        CmpOp::Ge => feel_cmp(a, b).map(|o| o != Ordering::Less),
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// Path step: context entry, element-wise over lists (FEEL: `items.price` is a list of
/// prices), or a component of a date / date-time.
fn path_get(value: Value, key: &str) -> Value {
    match value {
        Value::Context(mut map) => map.remove(key).unwrap_or(Value::Null),
        Value::List(items) => Value::List(items.into_iter().map(|i| path_get(i, key)).collect()),
        Value::Date(d) => date_part(d, None, key),
        Value::DateTime(dt) => date_part(dt.date_naive(), Some(dt.time()), key),
        _ => Value::Null,
    }
}

fn date_part(date: chrono::NaiveDate, time: Option<chrono::NaiveTime>, key: &str) -> Value {
    use chrono::{Datelike, Timelike};
    let n = match (key, time) {
        ("year", _) => f64::from(date.year()),
        ("month", _) => f64::from(date.month()),
        ("day", _) => f64::from(date.day()),
        ("weekday", _) => f64::from(date.weekday().number_from_monday()),
        ("hour", Some(t)) => f64::from(t.hour()),
        ("minute", Some(t)) => f64::from(t.minute()),
        ("second", Some(t)) => f64::from(t.second()),
        _ => return Value::Null,
    };
    Value::Number(n)
}

//! A small regular-expression engine for FEEL `matches()` (an XPath-flavoured subset).
//! Patterns compile to an NFA that is simulated breadth-first (Pike style), so matching is
//! linear in input length times pattern size and no pattern can backtrack catastrophically.

/// Longest accepted pattern, in characters.
const MAX_PATTERN: usize = 1000;
/// Largest compiled program; counted repetitions (`a{1000}`) copy their operand.
const MAX_INSTS: usize = 10_000;
const MAX_GROUP_DEPTH: usize = 32;
const MAX_REPEAT: u32 = 1000;

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    dot_all: bool,
    case_insensitive: bool,
    multi_line: bool,
    extended: bool,
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

#[derive(Debug, Clone)]
enum Matcher {
    Lit(char),
    Any,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Match(Matcher),
    LineStart,
    LineEnd,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug, Clone)]
enum Inst {
    Char(Matcher),
    Split(usize, usize),
    Jmp(usize),
    LineStart,
    LineEnd,
    Match,
}

#[derive(Debug, Clone)]
pub(crate) struct Regex {
    insts: Vec<Inst>,
    flags: Flags,
}

impl Regex {
    /// Compiles `pattern` with XPath flags (`s`, `i`, `m`, `x`); `Err` carries a message.
    pub(crate) fn new(pattern: &str, flags: &str) -> Result<Regex, String> {
        let mut f = Flags::default();
        for c in flags.chars() {
            match c {
                's' => f.dot_all = true,
                'i' => f.case_insensitive = true,
                'm' => f.multi_line = true,
                'x' => f.extended = true,
                other => return Err(format!("unsupported regex flag `{other}`")),
            }
        }
        let chars: Vec<char> = pattern.chars().collect();
        if chars.len() > MAX_PATTERN {
            return Err(format!("pattern longer than {MAX_PATTERN} characters"));
        }
        let mut parser = PatternParser {
            chars,
            pos: 0,
            depth: 0,
            extended: f.extended,
        };
        let node = parser.alternation()?;
        if parser.pos < parser.chars.len() {
            return Err("unbalanced `)` in pattern".to_string());
        }
        let mut insts = Vec::new();
        compile(&node, &mut insts)?;
        insts.push(Inst::Match);
        Ok(Regex { insts, flags: f })
    }

    /// Searches `text` for a match anywhere (XPath `matches` is unanchored). Each simulated
    /// thread step costs one unit of `budget`; `None` means the budget ran out.
    pub(crate) fn is_match(&self, text: &str, budget: &mut u64) -> Option<bool> {
        let chars: Vec<char> = text.chars().collect();
        let n = self.insts.len();
        let mut current = ThreadSet::new(n);
        let mut next = ThreadSet::new(n);
        for pos in 0..=chars.len() {
            if self.add_thread(&mut current, 0, pos, &chars) {
                return Some(true);
            }
            if pos == chars.len() {
                break;
            }
            match budget.checked_sub(current.list.len() as u64 + 1) {
                Some(left) => *budget = left,
                None => {
                    *budget = 0;
                    return None;
                }
            }
            let c = chars[pos];
            for i in 0..current.list.len() {
                let pc = current.list[i];
                if let Inst::Char(m) = &self.insts[pc] {
                    if self.char_matches(m, c)
                        && self.add_thread(&mut next, pc + 1, pos + 1, &chars)
                    {
                        return Some(true);
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        Some(false)
    }

    /// Follows empty transitions from `pc`; returns true when `Match` is reachable.
    fn add_thread(&self, set: &mut ThreadSet, pc: usize, pos: usize, chars: &[char]) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if !set.insert(pc) {
                continue;
            }
            match &self.insts[pc] {
                Inst::Match => return true,
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::LineStart => {
                    let ok = pos == 0 || (self.flags.multi_line && chars[pos - 1] == '\n');
                    if ok {
                        stack.push(pc + 1);
                    }
                }
                Inst::LineEnd => {
                    let ok = pos == chars.len() || (self.flags.multi_line && chars[pos] == '\n');
                    if ok {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) => {}
            }
        }
        false
    }

    fn char_matches(&self, m: &Matcher, c: char) -> bool {
        match m {
            Matcher::Any => self.flags.dot_all || (c != '\n' && c != '\r'),
            Matcher::Lit(l) => *l == c || (self.flags.case_insensitive && fold(*l) == fold(c)),
            Matcher::Class { negated, items } => {
                let hit = items.iter().any(|item| self.class_item_matches(item, c));
                hit != *negated
            }
        }
    }

    fn class_item_matches(&self, item: &ClassItem, c: char) -> bool {
        match item {
            ClassItem::Range(lo, hi) => {
                let within = |x: char| *lo <= x && x <= *hi;
                within(c)
                    || (self.flags.case_insensitive
                        && (c.to_lowercase().any(within) || c.to_uppercase().any(within)))
            }
            ClassItem::Digit(positive) => c.is_ascii_digit() == *positive,
            ClassItem::Word(positive) => (c.is_alphanumeric() || c == '_') == *positive,
            ClassItem::Space(positive) => c.is_whitespace() == *positive,
        }
    }
}

fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// A set of program counters with O(1) insert and clear proportional to its size.
struct ThreadSet {
    seen: Vec<bool>,
    list: Vec<usize>,
}

impl ThreadSet {
    fn new(n: usize) -> Self {
        ThreadSet {
            seen: vec![false; n],
            list: Vec::new(),
        }
    }

    fn insert(&mut self, pc: usize) -> bool {
        if self.seen[pc] {
            return false;
        }
        self.seen[pc] = true;
        self.list.push(pc);
        true
    }

    fn clear(&mut self) {
        for &pc in &self.list {
            self.seen[pc] = false;
        }
        self.list.clear();
    }
}

fn emit(insts: &mut Vec<Inst>, inst: Inst) -> Result<usize, String> {
    if insts.len() >= MAX_INSTS {
        return Err("pattern too large".to_string());
    }
    insts.push(inst);
    Ok(insts.len() - 1)
}

fn compile(node: &Node, insts: &mut Vec<Inst>) -> Result<(), String> {
    match node {
        Node::Empty => {}
        Node::Match(m) => {
            emit(insts, Inst::Char(m.clone()))?;
        }
        Node::LineStart => {
            emit(insts, Inst::LineStart)?;
        }
        Node::LineEnd => {
            emit(insts, Inst::LineEnd)?;
        }
        Node::Concat(nodes) => {
            for n in nodes {
                compile(n, insts)?;
            }
        }
        Node::Alt(branches) => {
            let mut jumps = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                if i + 1 < branches.len() {
                    let split = emit(insts, Inst::Split(0, 0))?;
                    compile(branch, insts)?;
                    jumps.push(emit(insts, Inst::Jmp(0))?);
                    insts[split] = Inst::Split(split + 1, insts.len());
                } else {
                    compile(branch, insts)?;
                }
            }
            let end = insts.len();
            for j in jumps {
                insts[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(inner, min, max) => {
            for _ in 0..*min {
                compile(inner, insts)?;
            }
            match max {
                None => {
                    let split = emit(insts, Inst::Split(0, 0))?;
                    compile(inner, insts)?;
                    emit(insts, Inst::Jmp(split))?;
                    insts[split] = Inst::Split(split + 1, insts.len());
                }
                Some(max) => {
                    // Each optional copy may be skipped straight to the end.
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(emit(insts, Inst::Split(0, 0))?);
                        compile(inner, insts)?;
                    }
                    let end = insts.len();
                    for s in splits {
                        insts[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    Ok(())
}

struct PatternParser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    extended: bool,
}

impl PatternParser {
    fn peek(&mut self) -> Option<char> {
        if self.extended {
            while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
                self.pos += 1;
            }
        }
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.concatenation()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concatenation()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    fn concatenation(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.integer()?;
                let max = if self.peek() == Some(',') {
                    self.pos += 1;
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(self.integer()?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    return Err("malformed `{n,m}` quantifier".to_string());
                }
                if max.is_some_and(|m| m < min) {
                    return Err("quantifier maximum below minimum".to_string());
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        if matches!(atom, Node::LineStart | Node::LineEnd) {
            return Err("quantifier after an anchor".to_string());
        }
        // A lazy quantifier matches the same strings; only which match is found differs.
        if self.peek() == Some('?') {
            self.pos += 1;
        }
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return Err("repeated quantifier".to_string());
        }
        // Repeating nothing (or zero times) is nothing; dropping it keeps `(){1000}{1000}`
        // from costing a million compile steps that emit no instruction, so never hit MAX_INSTS.
        if max == Some(0) || is_empty(&atom) {
            return Ok(Node::Empty);
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn integer(&mut self) -> Result<u32, String> {
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        match text.parse::<u32>() {
            Ok(n) if n <= MAX_REPEAT => Ok(n),
            Ok(_) => Err(format!("repetition count above {MAX_REPEAT}")),
            Err(_) => Err("malformed `{n,m}` quantifier".to_string()),
        }
    }

    fn atom(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Err("unexpected end of pattern".to_string());
        };
        self.pos += 1;
        match c {
            '.' => Ok(Node::Match(Matcher::Any)),
            '^' => Ok(Node::LineStart),
            '$' => Ok(Node::LineEnd),
            '(' => {
                if self.depth >= MAX_GROUP_DEPTH {
                    return Err("groups nested too deeply".to_string());
                }
                if self.chars.get(self.pos) == Some(&'?') {
                    if self.chars.get(self.pos + 1) == Some(&':') {
                        self.pos += 2;
                    } else {
                        return Err("unsupported group syntax `(?`".to_string());
                    }
                }
                self.depth += 1;
                let inner = self.alternation()?;
                self.depth -= 1;
                if self.peek() != Some(')') {
                    return Err("missing `)` in pattern".to_string());
                }
                self.pos += 1;
                Ok(inner)
            }
            '[' => self.class(),
            '\\' => match self.escape()? {
                Escape::Char(c) => Ok(Node::Match(Matcher::Lit(c))),
                Escape::Item(item) => Ok(Node::Match(Matcher::Class {
                    negated: false,
                    items: vec![item],
                })),
            },
            '*' | '+' | '?' | '{' => Err(format!("quantifier `{c}` without an operand")),
            ')' | ']' | '}' => Err(format!("unbalanced `{c}` in pattern")),
            c => Ok(Node::Match(Matcher::Lit(c))),
        }
    }

    fn escape(&mut self) -> Result<Escape, String> {
        let Some(&c) = self.chars.get(self.pos) else {
            return Err("pattern ends with `\\`".to_string());
        };
        self.pos += 1;
        Ok(match c {
            'd' => Escape::Item(ClassItem::Digit(true)),
            'D' => Escape::Item(ClassItem::Digit(false)),
            'w' => Escape::Item(ClassItem::Word(true)),
            'W' => Escape::Item(ClassItem::Word(false)),
            's' => Escape::Item(ClassItem::Space(true)),
            'S' => Escape::Item(ClassItem::Space(false)),
            'n' => Escape::Char('\n'),
            'r' => Escape::Char('\r'),
            't' => Escape::Char('\t'),
            c if c.is_ascii_punctuation() => Escape::Char(c),
            other => return Err(format!("unsupported escape `\\{other}`")),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let mut negated = false;
        if self.chars.get(self.pos) == Some(&'^') {
            negated = true;
            self.pos += 1;
        }
        let mut items = Vec::new();
        loop {
            let Some(&c) = self.chars.get(self.pos) else {
                return Err("missing `]` in pattern".to_string());
            };
            self.pos += 1;
            let low = match c {
                ']' if items.is_empty() => return Err("empty character class".to_string()),
                ']' => break,
                '[' => return Err("nested character classes are not supported".to_string()),
                '\\' => match self.escape()? {
                    Escape::Char(c) => c,
                    Escape::Item(item) => {
                        items.push(item);
                        continue;
                    }
                },
                c => c,
            };
            let is_range = self.chars.get(self.pos) == Some(&'-')
                && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']');
            if !is_range {
                items.push(ClassItem::Range(low, low));
                continue;
            }
            self.pos += 1;
            let high = match self.chars.get(self.pos).copied() {
                Some('[') => return Err("character class subtraction is not supported".into()),
                Some('\\') => {
                    self.pos += 1;
                    match self.escape()? {
                        Escape::Char(c) => c,
                        Escape::Item(_) => return Err("invalid range in character class".into()),
                    }
                }
                Some(c) => {
                    self.pos += 1;
                    c
                }
                None => return Err("missing `]` in pattern".to_string()),
            };
            if high < low {
                return Err("invalid range in character class".to_string());
            }
            items.push(ClassItem::Range(low, high));
        }
        Ok(Node::Match(Matcher::Class { negated, items }))
    }
}

fn is_empty(node: &Node) -> bool {
    match node {
        Node::Empty => true,
        Node::Concat(nodes) | Node::Alt(nodes) => nodes.iter().all(is_empty),
        Node::Repeat(inner, _, max) => *max == Some(0) || is_empty(inner),
        Node::Match(_) | Node::LineStart | Node::LineEnd => false,
    }
}

enum Escape {
    Char(char),
    Item(ClassItem),
}

//! A hand-written recursive-descent parser for well-formed rules files: the fast
//! path of [`super::parser::parse_file`].
//!
//! Why one file: it is one reader per grammar rule, in the grammar's order, meant to
//! be read side by side with `grammar/rules.pest`; split, the two would no longer
//! line up.
//!
//! pest spends most of a parse in its own bookkeeping (a call-limit check, stack
//! snapshots and implicit-whitespace attempts at every rule and `~`), about 20 µs
//! per alert. This parser reads the same grammar (`grammar/rules.pest`) directly
//! and builds the same AST with the same spans, including pest's quirks: a rule
//! that ends in an optional part that matched nothing still spans the whitespace
//! before it (`a ~ b?` consumes the skip between them).
//!
//! It never reports an error. On anything it does not accept (every syntax error,
//! and conditions with more grammar nodes than [`MAX_CONDITION_NODES`]) it returns
//! `None` and the caller parses with pest, which owns the diagnostics. So it may
//! be stricter than the grammar, never looser: the tests compare it with pest on
//! every fixture and on generated input, spans and node counts included.

use super::ast::*;
use crate::matcher::MatchOp;

/// Parses `source`, or `None` where pest must decide.
pub fn parse(source: &str) -> Option<File> {
    let mut p = Parser {
        src: source,
        b: source.as_bytes(),
        pos: 0,
        nodes: 0,
    };
    p.file()
}

/// The words `keyword` lists in the grammar: never metric names or kinds.
const KEYWORDS: [&str; 17] = [
    "and",
    "or",
    "not",
    "for",
    "in",
    "when",
    "resolve",
    "severity",
    "labels",
    "annotations",
    "keep",
    "firing",
    "escalate",
    "route",
    "metric",
    "alert",
    "evaluations",
];

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

struct Parser<'s> {
    src: &'s str,
    b: &'s [u8],
    pos: usize,
    /// Grammar nodes (pest pairs) inside the condition being parsed, counted as
    /// `check_condition_sizes` counts them.
    nodes: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    /// pest's implicit `WHITESPACE* (COMMENT WHITESPACE*)*`.
    fn skip(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'#') => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn literal(&mut self, s: &str) -> Option<()> {
        if self.b[self.pos..].starts_with(s.as_bytes()) {
            self.pos += s.len();
            Some(())
        } else {
            None
        }
    }

    /// The end of the run of identifier characters starting at `from`.
    fn ident_run(&self, from: usize) -> usize {
        let mut i = from;
        while self.at(i).is_some_and(is_ident_char) {
            i += 1;
        }
        i
    }

    /// Whether `kw_<word>` matches here: the word, then no identifier character.
    fn at_kw(&self, word: &str) -> bool {
        self.b[self.pos..].starts_with(word.as_bytes())
            && !self.at(self.pos + word.len()).is_some_and(is_ident_char)
    }

    fn kw(&mut self, word: &str) -> Option<()> {
        self.at_kw(word).then(|| self.pos += word.len())
    }

    /// Whether the grammar's `keyword` matches here: a listed word, then neither an
    /// identifier character nor `:`. No keyword is a prefix of another, so this is
    /// the maximal identifier run being one of them.
    fn at_keyword(&self) -> bool {
        let end = self.ident_run(self.pos);
        self.at(end) != Some(b':') && KEYWORDS.contains(&&self.src[self.pos..end])
    }

    fn spanned(&self, start: usize) -> Spanned<String> {
        Spanned::new(
            self.src[start..self.pos].to_string(),
            Span::new(start, self.pos),
        )
    }

    /// Runs `f`; on `None`, puts the position back (an optional part of a rule).
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let (pos, nodes) = (self.pos, self.nodes);
        let r = f(self);
        if r.is_none() {
            self.pos = pos;
            self.nodes = nodes;
        }
        r
    }

    // -----------------------------------------------------------------------------
    // Files and items

    /// `file = { SOI ~ item* ~ EOI }`
    fn file(&mut self) -> Option<File> {
        let mut items = Vec::new();
        self.skip();
        if let Some(item) = self.attempt(|p| p.item()) {
            items.push(item);
            while let Some(item) = self.attempt(|p| {
                p.skip();
                p.item()
            }) {
                items.push(item);
            }
        }
        self.skip();
        (self.pos == self.b.len()).then_some(File { items })
    }

    fn item(&mut self) -> Option<Item> {
        if self.at_kw("metric") {
            self.metric_decl().map(Item::Metric)
        } else if self.at_kw("alert") {
            self.alert().map(Item::Alert)
        } else {
            None
        }
    }

    /// `metric_decl = { kw_metric ~ metric_name ~ metric_kind ~ unit_name? }`
    fn metric_decl(&mut self) -> Option<MetricDecl> {
        let start = self.pos;
        self.kw("metric")?;
        self.skip();
        let name = self.metric_name()?;
        self.skip();
        let kind = self.keyword_guarded_word()?;
        self.skip();
        let unit = self.attempt(|p| p.unit_name());
        Some(MetricDecl {
            name,
            kind,
            unit,
            span: Span::new(start, self.pos),
        })
    }

    /// `metric_kind = @{ !keyword ~ word }`
    fn keyword_guarded_word(&mut self) -> Option<Spanned<String>> {
        if self.at_keyword() {
            return None;
        }
        let start = self.pos;
        self.word()?;
        Some(self.spanned(start))
    }

    /// `unit_name = @{ !keyword ~ word ~ ("/" ~ word)? }`
    fn unit_name(&mut self) -> Option<Spanned<String>> {
        if self.at_keyword() {
            return None;
        }
        let start = self.pos;
        self.word()?;
        self.attempt(|p| {
            p.literal("/")?;
            p.word()
        });
        Some(self.spanned(start))
    }

    /// `word = @{ ASCII_ALPHA+ }`
    fn word(&mut self) -> Option<()> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }

    /// `metric_name = @{ !keyword ~ (ASCII_ALPHA | "_" | ":") ~ (ASCII_ALPHANUMERIC | "_" | ":")* }`
    fn metric_name(&mut self) -> Option<Spanned<String>> {
        if self.at_keyword() {
            return None;
        }
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        {
            return None;
        }
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        {
            self.pos += 1;
        }
        Some(self.spanned(start))
    }

    /// `label_name = @{ (ASCII_ALPHA | "_") ~ ident_char* }`
    fn label_name(&mut self) -> Option<Spanned<String>> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        {
            return None;
        }
        self.pos = self.ident_run(self.pos);
        Some(self.spanned(start))
    }

    /// `string = ${ "\"" ~ string_inner ~ "\"" }`, unescaped; the span covers the quotes.
    fn string(&mut self) -> Option<Spanned<String>> {
        let start = self.pos;
        self.literal("\"")?;
        let mut out = String::new();
        loop {
            // The plain run up to the next quote, backslash or newline.
            let run = self.b[self.pos..]
                .iter()
                .position(|&c| matches!(c, b'"' | b'\\' | b'\n'))?;
            out.push_str(&self.src[self.pos..self.pos + run]);
            self.pos += run;
            match self.b[self.pos] {
                b'"' => break,
                b'\\' => {
                    match self.at(self.pos + 1)? {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'n' => out.push('\n'),
                        _ => return None,
                    }
                    self.pos += 2;
                }
                _ => return None,
            }
        }
        self.pos += 1;
        self.nodes += 2; // string, string_inner
        Some(Spanned::new(out, Span::new(start, self.pos)))
    }

    /// `alert = { kw_alert ~ string ~ "{" ~ field* ~ "}" }`
    fn alert(&mut self) -> Option<Alert> {
        let start = self.pos;
        self.kw("alert")?;
        self.skip();
        let name = self.string()?;
        self.skip();
        self.literal("{")?;
        self.skip();
        let mut fields = Vec::new();
        if let Some(f) = self.attempt(|p| p.field()) {
            fields.push(f);
            while let Some(f) = self.attempt(|p| {
                p.skip();
                p.field()
            }) {
                fields.push(f);
            }
        }
        self.skip();
        self.literal("}")?;
        Some(Alert {
            name,
            fields,
            span: Span::new(start, self.pos),
        })
    }

    fn field(&mut self) -> Option<Field> {
        let start = self.pos;
        let kind = if self.kw("when").is_some() {
            self.skip();
            FieldKind::When(self.condition()?)
        } else if self.kw("resolve").is_some() {
            self.skip();
            self.kw("when")?;
            self.skip();
            FieldKind::ResolveWhen(self.condition()?)
        } else if self.kw("severity").is_some() {
            self.skip();
            let s = self.pos;
            self.word()?;
            FieldKind::Severity(self.spanned(s))
        } else if self.kw("labels").is_some() {
            self.skip();
            FieldKind::Labels(self.pairs()?)
        } else if self.kw("annotations").is_some() {
            self.skip();
            FieldKind::Annotations(self.pairs()?)
        } else if self.kw("keep").is_some() {
            self.skip();
            self.kw("firing")?;
            self.skip();
            self.kw("for")?;
            self.skip();
            FieldKind::KeepFiringFor(self.quantity()?)
        } else if self.kw("escalate").is_some() {
            self.skip();
            FieldKind::Escalate(self.string()?)
        } else if self.kw("route").is_some() {
            self.skip();
            FieldKind::Route(self.string()?)
        } else {
            return None;
        };
        Some(Field {
            kind,
            span: Span::new(start, self.pos),
        })
    }

    /// `"{" ~ (pair ~ ","?)* ~ "}"`, `pair = { label_name ~ "=" ~ string }`
    fn pairs(&mut self) -> Option<Vec<Pair>> {
        self.literal("{")?;
        self.skip();
        let mut pairs = Vec::new();
        let element = |p: &mut Self| -> Option<Pair> {
            let key = p.label_name()?;
            p.skip();
            p.literal("=")?;
            p.skip();
            let value = p.string()?;
            p.skip();
            let _ = p.literal(",");
            Some(Pair { key, value })
        };
        if let Some(first) = self.attempt(element) {
            pairs.push(first);
            while let Some(next) = self.attempt(|p| {
                p.skip();
                element(p)
            }) {
                pairs.push(next);
            }
        }
        self.skip();
        self.literal("}")?;
        Some(pairs)
    }

    // -----------------------------------------------------------------------------
    // Conditions and expressions

    /// `condition = { expr ~ for_clause? }`
    fn condition(&mut self) -> Option<Condition> {
        let start = self.pos;
        self.nodes = 0;
        let (expr, _) = self.expr()?;
        self.skip();
        let hold = self.attempt(|p| p.for_clause());
        if self.nodes > MAX_CONDITION_NODES {
            return None;
        }
        Some(Condition {
            expr,
            hold,
            span: Span::new(start, self.pos),
        })
    }

    /// `for_clause = { kw_for ~ quantity ~ kw_evaluations? }`
    fn for_clause(&mut self) -> Option<Hold> {
        self.kw("for")?;
        self.nodes += 2; // for_clause, kw_for
        self.skip();
        let q = self.quantity()?;
        self.skip();
        if self.kw("evaluations").is_some() {
            self.nodes += 1;
            Some(Hold::Evaluations(q))
        } else {
            Some(Hold::Duration(q))
        }
    }

    /// `expr = { and_expr ~ (op_or ~ and_expr)* }`; also returns the pair's own span
    /// (which a parenthesised expression takes).
    fn expr(&mut self) -> Option<(Expr, Span)> {
        let start = self.pos;
        self.nodes += 1;
        let mut lhs = self.and_expr()?;
        self.skip();
        let mut first = true;
        while let Some(rhs) = self.attempt(|p| {
            if !first {
                p.skip();
            }
            p.op("or")?;
            p.skip();
            p.and_expr()
        }) {
            first = false;
            let s = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Or(Box::new(lhs), Box::new(rhs)),
                span: s,
            };
        }
        Some((lhs, Span::new(start, self.pos)))
    }

    /// `op_or = @{ "or" ~ !ident_char }` and `op_and`, `op_not` alike.
    fn op(&mut self, word: &str) -> Option<()> {
        self.kw(word)?;
        self.nodes += 1;
        Some(())
    }

    /// `and_expr = { not_expr ~ (op_and ~ not_expr)* }`
    fn and_expr(&mut self) -> Option<Expr> {
        self.nodes += 1;
        let mut lhs = self.not_expr()?;
        self.skip();
        let mut first = true;
        while let Some(rhs) = self.attempt(|p| {
            if !first {
                p.skip();
            }
            p.op("and")?;
            p.skip();
            p.not_expr()
        }) {
            first = false;
            let s = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::And(Box::new(lhs), Box::new(rhs)),
                span: s,
            };
        }
        Some(lhs)
    }

    /// `not_expr = { op_not* ~ comparison }`
    fn not_expr(&mut self) -> Option<Expr> {
        self.nodes += 1;
        let mut nots = Vec::new();
        let start = self.pos;
        if self.op("not").is_some() {
            nots.push(Span::new(start, self.pos));
            while let Some(s) = self.attempt(|p| {
                p.skip();
                let s = p.pos;
                p.op("not")?;
                Some(Span::new(s, p.pos))
            }) {
                nots.push(s);
            }
        }
        self.skip();
        let mut expr = self.comparison()?;
        for not in nots.into_iter().rev() {
            let s = not.to(expr.span);
            expr = Expr {
                kind: ExprKind::Not(Box::new(expr)),
                span: s,
            };
        }
        Some(expr)
    }

    /// `comparison = { arith ~ (cmp_op ~ arith ~ in_clause?)? }`
    fn comparison(&mut self) -> Option<Expr> {
        let start = self.pos;
        self.nodes += 1;
        let lhs = self.arith()?;
        self.skip();
        let rest = self.attempt(|p| {
            let op = p.cmp_op()?;
            p.skip();
            let rhs = p.arith()?;
            p.skip();
            let window = p.attempt(|p| {
                p.kw("in")?;
                p.nodes += 2; // in_clause, kw_in
                p.skip();
                p.quantity()
            });
            Some((op, rhs, window))
        });
        let Some((op, rhs, window)) = rest else {
            return Some(lhs);
        };
        Some(Expr {
            kind: ExprKind::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                window,
            },
            span: Span::new(start, self.pos),
        })
    }

    /// `cmp_op = _{ op_le | op_ge | op_eq | op_ne | op_lt | op_gt }`
    fn cmp_op(&mut self) -> Option<CompareOp> {
        let ops = [
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
        ];
        let (text, op) = ops
            .into_iter()
            .find(|(t, _)| self.b[self.pos..].starts_with(t.as_bytes()))?;
        self.pos += text.len();
        self.nodes += 1;
        Some(op)
    }

    /// `arith = { op_neg* ~ term ~ (arith_op ~ op_neg* ~ term)* }`, combined with
    /// the precedence of parser.rs's Pratt parser: `+ -` < `* /` < prefix `-`, left
    /// associative.
    fn arith(&mut self) -> Option<Expr> {
        self.nodes += 1;
        let mut operands = vec![self.signed_term()?];
        let mut ops = Vec::new();
        self.skip();
        let mut first = true;
        while let Some((op, rhs)) = self.attempt(|p| {
            if !first {
                p.skip();
            }
            let op = match p.peek()? {
                b'+' => ArithOp::Add,
                b'-' => ArithOp::Sub,
                b'*' => ArithOp::Mul,
                b'/' => ArithOp::Div,
                _ => return None,
            };
            p.pos += 1;
            p.nodes += 1;
            p.skip();
            Some((op, p.signed_term()?))
        }) {
            first = false;
            ops.push(op);
            operands.push(rhs);
        }
        Some(climb(operands, ops))
    }

    /// `op_neg* ~ term` (after an operator, the skip before the term is the
    /// sequence's own).
    fn signed_term(&mut self) -> Option<Expr> {
        let mut negs = Vec::new();
        if self.peek() == Some(b'-') {
            negs.push(self.pos);
            self.pos += 1;
            self.nodes += 1;
            while let Some(at) = self.attempt(|p| {
                p.skip();
                let at = p.pos;
                p.literal("-")?;
                p.nodes += 1;
                Some(at)
            }) {
                negs.push(at);
            }
        }
        self.skip();
        let mut expr = self.term()?;
        for at in negs.into_iter().rev() {
            let s = Span::new(at, at + 1).to(expr.span);
            expr = Expr {
                kind: ExprKind::Neg(Box::new(expr)),
                span: s,
            };
        }
        Some(expr)
    }

    /// `term = _{ quantity | call | selector | "(" ~ expr ~ ")" }`
    fn term(&mut self) -> Option<Expr> {
        let start = self.pos;
        let c = self.peek()?;
        if c.is_ascii_digit() {
            let q = self.quantity()?;
            let span = q.span;
            return Some(Expr {
                kind: ExprKind::Quantity(q),
                span,
            });
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let end = self.ident_run(start);
            if self.at(end) == Some(b'(') {
                return self.call(end);
            }
        }
        if c == b'(' {
            self.pos += 1;
            self.skip();
            let (inner, span) = self.expr()?;
            self.skip();
            self.literal(")")?;
            return Some(Expr {
                kind: ExprKind::Paren(Box::new(inner)),
                span,
            });
        }
        let selector = self.selector()?;
        Some(Expr {
            kind: ExprKind::Selector(selector),
            span: Span::new(start, self.pos),
        })
    }

    /// `call = { function_name ~ "(" ~ (expr ~ ("," ~ expr)*)? ~ ")" }`; the name
    /// ends at `name_end`, just before the `(`.
    fn call(&mut self, name_end: usize) -> Option<Expr> {
        let start = self.pos;
        self.pos = name_end;
        self.nodes += 2; // call, function_name
        let function = self.spanned(start);
        self.literal("(")?;
        self.skip();
        let mut args = Vec::new();
        let list = self.attempt(|p| {
            let mut args = vec![p.expr()?.0];
            p.skip();
            let mut first = true;
            while let Some(arg) = p.attempt(|p| {
                if !first {
                    p.skip();
                }
                p.literal(",")?;
                p.skip();
                p.expr().map(|(e, _)| e)
            }) {
                first = false;
                args.push(arg);
            }
            Some(args)
        });
        if let Some(list) = list {
            args = list;
        }
        self.skip();
        self.literal(")")?;
        Some(Expr {
            kind: ExprKind::Call { function, args },
            span: Span::new(start, self.pos),
        })
    }

    /// `selector = { metric_name ~ ("{" ~ (matcher ~ ("," ~ matcher)* ~ ","?)? ~ "}")? }`
    fn selector(&mut self) -> Option<Selector> {
        let metric = self.metric_name()?;
        self.nodes += 2; // selector, metric_name
        self.skip();
        let matchers = self
            .attempt(|p| {
                p.literal("{")?;
                p.skip();
                let list = p.attempt(|p| {
                    let mut list = vec![p.matcher()?];
                    p.skip();
                    let mut first = true;
                    while let Some(m) = p.attempt(|p| {
                        if !first {
                            p.skip();
                        }
                        p.literal(",")?;
                        p.skip();
                        p.matcher()
                    }) {
                        first = false;
                        list.push(m);
                    }
                    p.skip();
                    let _ = p.literal(",");
                    Some(list)
                });
                p.skip();
                p.literal("}")?;
                Some(list.unwrap_or_default())
            })
            .unwrap_or_default();
        Some(Selector { metric, matchers })
    }

    /// `matcher = { label_name ~ match_op ~ string }`
    fn matcher(&mut self) -> Option<Matcher> {
        let label = self.label_name()?;
        self.skip();
        let ops = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ];
        let (text, op) = ops
            .into_iter()
            .find(|(t, _)| self.b[self.pos..].starts_with(t.as_bytes()))?;
        self.pos += text.len();
        self.skip();
        let value = self.string()?;
        self.nodes += 3; // matcher, label_name, the operator
        Some(Matcher { label, op, value })
    }

    /// `quantity = ${ number ~ unit? }`,
    /// `number = @{ ASCII_DIGIT+ ~ ("." ~ ASCII_DIGIT+)? ~ (^"e" ~ ("+" | "-")? ~ ASCII_DIGIT+)? }`,
    /// `unit = @{ "%" | word ~ ("/" ~ word | (number ~ word)+)? }`
    fn quantity(&mut self) -> Option<Quantity> {
        let start = self.pos;
        // The grammar's number, exactly: the one duration syntax reads it too.
        let digits = |p: &mut Self| {
            let n = crate::duration::number_len(&p.src[p.pos..]);
            p.pos += n;
            (n > 0).then_some(())
        };
        digits(self)?;
        let number = self.src[start..self.pos].to_string();
        self.nodes += 2; // quantity, number
        let unit_start = self.pos;
        let unit = if self.literal("%").is_some() {
            Some("%".to_string())
        } else if self.word().is_some() {
            let per = self.attempt(|p| {
                p.literal("/")?;
                p.word()
            });
            if per.is_none() {
                // `1h30m`: further parts of a duration.
                while self
                    .attempt(|p| {
                        digits(p)?;
                        p.word()
                    })
                    .is_some()
                {}
            }
            Some(self.src[unit_start..self.pos].to_string())
        } else {
            None
        };
        if unit.is_some() {
            self.nodes += 1;
        }
        Some(Quantity {
            number,
            unit,
            span: Span::new(start, self.pos),
        })
    }
}

/// Operands and the infix operators between them, combined by precedence.
fn climb(operands: Vec<Expr>, ops: Vec<ArithOp>) -> Expr {
    fn prec(op: ArithOp) -> u8 {
        match op {
            ArithOp::Add | ArithOp::Sub => 1,
            ArithOp::Mul | ArithOp::Div => 2,
        }
    }
    fn combine(op: ArithOp, lhs: Expr, rhs: Expr) -> Expr {
        let s = lhs.span.to(rhs.span);
        Expr {
            kind: ExprKind::Arith(op, Box::new(lhs), Box::new(rhs)),
            span: s,
        }
    }
    // Shunting-yard with left associativity.
    let mut values: Vec<Expr> = Vec::with_capacity(operands.len());
    let mut pending: Vec<ArithOp> = Vec::new();
    let mut operands = operands.into_iter();
    values.push(operands.next().expect("at least one operand"));
    for (op, rhs) in ops.into_iter().zip(operands) {
        while pending.last().is_some_and(|&top| prec(top) >= prec(op)) {
            let top = pending.pop().expect("checked");
            let r = values.pop().expect("operand");
            let l = values.pop().expect("operand");
            values.push(combine(top, l, r));
        }
        pending.push(op);
        values.push(rhs);
    }
    while let Some(top) = pending.pop() {
        let r = values.pop().expect("operand");
        let l = values.pop().expect("operand");
        values.push(combine(top, l, r));
    }
    values.pop().expect("one value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parser::parse_with_pest;

    /// Whether the fast path accepted `src`; when it did, pest must accept it too and
    /// build the same tree with the same spans (Debug prints spans).
    fn agree(src: &str) -> bool {
        let Some(fast) = parse(src) else {
            return false;
        };
        match parse_with_pest(src) {
            Ok(slow) => assert_eq!(
                format!("{fast:#?}"),
                format!("{slow:#?}"),
                "fast path and pest disagree on:\n{src}"
            ),
            Err(e) => panic!("fast path accepted what pest refuses ({e:?}):\n{src}"),
        }
        true
    }

    fn rules_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                rules_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rules") {
                out.push(p);
            }
        }
    }

    #[test]
    fn the_default_rules_and_every_fixture_parse_alike() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut shipped = Vec::new();
        rules_files(&root.join("rules"), &mut shipped);
        assert!(!shipped.is_empty());
        for p in &shipped {
            let src = std::fs::read_to_string(p).unwrap();
            assert!(agree(&src), "the fast path refused {}", p.display());
        }
        let mut fixtures = Vec::new();
        rules_files(&root.join("tests/fixtures"), &mut fixtures);
        for p in &fixtures {
            agree(&std::fs::read_to_string(p).unwrap());
        }
    }

    #[test]
    fn pest_quirks_are_kept() {
        // Spans that run on over trailing whitespace and comments, where a rule ends
        // in an optional part that matched nothing.
        for src in [
            "metric a gauge   # kind, no unit\n\nmetric b gauge ratio\n",
            "alert \"x\" {\n  when a > 1   # no for\n  severity info\n}\n",
            "alert \"x\" { when (a  ) and not  not b{l=\"v\",} >= 2 in 5m for 3 evaluations severity info }",
            "alert \"x\" { when - - a * -b / 10MB/hour + f( c , 1h ) - 2 / 3 > 0 severity info }",
            "alert \"x\" { when avg(m{a=~\"x\", b!~\"y\", c!=\"z\"}, 5m) > 1 for 5m severity x labels { a = \"1\", b = \"\\\"q\\\\\\n\" } }",
            "alert \"x\" { when f() > 1 severity s keep firing for 5m escalate \"p\" route \"r\" resolve when g:x < 1 }",
            "  # leading comment\nalert \"名前\" { when format > 1 severity info annotations { summary = \"{{ value }} 件\" } }  # end",
            "alert \"x\" { when intake > 1 and orders < 2 or notes == 3 severity info }",
            "alert \"x\" { when a > 1e7 and b < 2.5E-3 and c > 10e for 1h30m severity info }",
            "alert \"x\" { when a > 1e+3MB and b > 2 for 1d2h3m4s severity info }",
        ] {
            assert!(agree(src), "the fast path refused:\n{src}");
        }
    }

    #[test]
    fn the_condition_size_limit_falls_at_the_same_node() {
        // Node counts differ by shape; for each, find where pest stops accepting and
        // check the fast path stops at the same length.
        let shapes: [fn(usize) -> String; 5] = [
            |n| vec!["a"; n].join(" + "),
            |n| format!("{} > 1", vec!["m{l=\"v\"}"; n].join(" * ")),
            |n| vec!["avg(x, 5m) > 1"; n].join(" and "),
            |n| format!("{}(a){} > 1 for 2 evaluations", "not ".repeat(n), " in 5m"),
            |n| format!("{}b > 1", "- ".repeat(n)),
        ];
        for shape in shapes {
            for n in 1..120 {
                let src = format!("alert \"x\" {{ when {} severity info }}", shape(n));
                let slow = parse_with_pest(&src).is_ok();
                assert_eq!(agree(&src), slow, "n={n}: {src}");
            }
        }
    }

    /// A small deterministic generator of rule files: valid structure from the whole
    /// grammar, odd spacing, then random damage.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }
        fn chance(&mut self, pct: u64) -> bool {
            self.next() % 100 < pct
        }
        fn ws(&mut self) -> &'static str {
            self.pick(&[" ", " ", " ", "  ", "\n  ", "\t", " # note\n ", "\r\n"])
        }
        fn term(&mut self, depth: u32) -> String {
            match self.next() % 6 {
                0 => self
                    .pick(&[
                        "1",
                        "0.5",
                        "90%",
                        "30s",
                        "10MB/hour",
                        "2e",
                        "5m",
                        "1e7",
                        "2.5E-3",
                        "1h30m",
                        "1h30",
                        "3e+2ms",
                    ])
                    .to_string(),
                1 if depth > 0 => format!("({}{})", self.expr(depth - 1), self.ws()),
                2 if depth > 0 => format!(
                    "{}({}, {})",
                    self.pick(&["avg", "rate", "predict", "absent", "f_x"]),
                    self.arith(depth - 1),
                    self.pick(&["5m", "1h", "6h, 24h"])
                ),
                3 => {
                    let op = self.pick(&["=", "!=", "=~", "!~"]);
                    let ws = self.ws();
                    format!(
                        "{}{{{}{}{}\"v\\\"{}\"{}}}",
                        self.pick(&["cpu", "a:b", "_x", "format", "in_flight"]),
                        self.pick(&["host", "_l", "x1"]),
                        ws,
                        op,
                        self.pick(&["", "\\\\", "\\n", "ü"]),
                        self.pick(&["", ",", ", y=\"2\"", ", y=\"2\","])
                    )
                }
                _ => self
                    .pick(&["cpu", "memory_usage", "a:b", "orders", "intake", "nothing"])
                    .to_string(),
            }
        }
        fn arith(&mut self, depth: u32) -> String {
            let mut s = String::new();
            for i in 0..=(self.next() % 2) {
                if i > 0 {
                    let (a, op, b) = (self.ws(), self.pick(&["+", "-", "*", "/"]), self.ws());
                    s.push_str(&format!("{a}{op}{b}"));
                }
                if self.chance(15) {
                    s.push_str(self.pick(&["-", "- ", "-\n"]));
                }
                s.push_str(&self.term(depth));
            }
            s
        }
        fn expr(&mut self, depth: u32) -> String {
            let mut s = String::new();
            for i in 0..=(self.next() % 2) {
                if i > 0 {
                    s.push_str(&format!(" {} ", self.pick(&["and", "or", "and not"])));
                }
                if self.chance(10) {
                    s.push_str("not ");
                }
                s.push_str(&self.arith(depth));
                if self.chance(80) {
                    let (a, op, b) = (
                        self.ws(),
                        self.pick(&[">", "<", ">=", "<=", "==", "!="]),
                        self.ws(),
                    );
                    s.push_str(&format!("{a}{op}{b}{}", self.arith(depth)));
                    if self.chance(20) {
                        s.push_str(" in 5m");
                    }
                }
            }
            s
        }
        fn file(&mut self) -> String {
            let mut s = String::new();
            for _ in 0..=(self.next() % 2) {
                if self.chance(30) {
                    let (name, kind, unit) = (
                        self.pick(&["cpu", "a:b", "in_x"]),
                        self.pick(&["gauge", "counter", "event"]),
                        self.pick(&["", " ratio", " bytes/s", " # c"]),
                    );
                    s.push_str(&format!("metric {name} {kind}{unit}\n"));
                }
                s.push_str("alert \"a\\\"b\" {");
                s.push_str(self.ws());
                let depth = (self.next() % 3) as u32;
                s.push_str(&format!("when {}", self.expr(depth)));
                if self.chance(40) {
                    s.push_str(self.pick(&[" for 5m", " for 3 evaluations", " for 1h "]));
                }
                s.push_str(self.ws());
                s.push_str(&format!(
                    "severity {}",
                    self.pick(&["critical", "info", "x"])
                ));
                if self.chance(40) {
                    s.push_str(" labels { team = \"t\", x=\"y\" }");
                }
                if self.chance(20) {
                    s.push_str(&format!(" resolve when {}", self.expr(1)));
                }
                if self.chance(20) {
                    s.push_str(" keep firing for 10m escalate \"p\" route \"r\"");
                }
                s.push_str(self.ws());
                s.push_str("}\n");
            }
            // Damage: drop or insert a character somewhere (on a char boundary).
            if self.chance(35) {
                let cut = (self.next() as usize) % s.len().max(1);
                let at = (0..=cut)
                    .rev()
                    .find(|i| s.is_char_boundary(*i))
                    .unwrap_or(0);
                if self.chance(50) {
                    if let Some(c) = s[at..].chars().next() {
                        s.replace_range(at..at + c.len_utf8(), "");
                    }
                } else {
                    let ins =
                        self.pick(&["(", ")", "\"", "{", ",", "-", "#", "\\", "x", "1", " and "]);
                    s.insert_str(at, ins);
                }
            }
            s
        }
    }

    /// Shrinks the first generated file where the two parsers part ways, for
    /// debugging: `cargo test --lib descent::tests::reduce -- --ignored`.
    #[test]
    #[ignore]
    fn reduce() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        for _ in 0..4000 {
            let src = g.file();
            let bad = |s: &str| parse(s).is_some() && parse_with_pest(s).is_err();
            if bad(&src) {
                let mut cur = src.clone();
                loop {
                    let mut progressed = false;
                    for len in [16usize, 8, 4, 2, 1] {
                        let mut i = 0;
                        while i + len <= cur.len() {
                            if cur.is_char_boundary(i) && cur.is_char_boundary(i + len) {
                                let mut t = cur.clone();
                                t.replace_range(i..i + len, "");
                                if bad(&t) {
                                    cur = t;
                                    progressed = true;
                                    continue;
                                }
                            }
                            i += 1;
                        }
                    }
                    if !progressed {
                        break;
                    }
                }
                panic!("minimal: {cur:?}");
            }
        }
    }

    #[test]
    fn generated_files_parse_alike() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut valid) = (0, 0);
        let total = 4_000;
        for _ in 0..total {
            let src = g.file();
            if agree(&src) {
                accepted += 1;
            }
            if parse_with_pest(&src).is_ok() {
                valid += 1;
            }
        }
        // The generator must mostly produce files the fast path takes, or this test
        // compares nothing; and valid files must not fall back to pest.
        assert!(accepted > total / 2, "only {accepted} of {total} accepted");
        assert_eq!(accepted, valid, "valid files the fast path refused");
    }
}

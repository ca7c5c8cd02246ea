//! Source text → AST. One `parse_<rule>` function per grammar rule; pest types stay in
//! this module.

use std::sync::LazyLock;

use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use super::ast::*;
use super::diagnostic::Diagnostic;
use crate::matcher::MatchOp;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/rules.pest"]
struct RulesParser;

/// Arithmetic precedence, lowest first. Boolean structure is in the grammar itself.
static ARITH: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left) | Op::infix(Rule::op_div, Assoc::Left))
        .op(Op::prefix(Rule::op_neg))
});

/// Parses one rules file. A syntax error stops at the first problem, as any parser
/// must; the checker then reports every semantic error at once.
///
/// The error is boxed: it is rare, and a `Diagnostic` is large next to a `File`.
pub fn parse_file(source: &str) -> Result<File, Box<Diagnostic>> {
    check_nesting(source)?;
    // Well-formed files take the hand-written fast path (same AST, same spans);
    // pest parses whatever it does not accept, and owns every error message.
    if let Some(file) = super::descent::parse(source) {
        return Ok(file);
    }
    parse_with_pest(source)
}

/// The most syntax errors reported for one file: past a few, each fix changes the
/// next ones anyway.
pub const MAX_SYNTAX_ERRORS: usize = 20;

/// A file parsed with recovery: every syntax error, and what parses of the rest.
#[derive(Debug)]
pub struct Parsed {
    /// The items that parse; `None` when recovery found nothing left to parse, or the
    /// file breaks a limit (nesting, condition size).
    pub file: Option<File>,
    /// Every syntax error, in the order found.
    pub errors: Vec<Diagnostic>,
    /// The byte ranges left out of `file` to get past those errors: an item that
    /// overlaps one is incomplete, and the checker's complaints about it are noise.
    pub skipped: Vec<std::ops::Range<usize>>,
}

/// Parses one file and reports every syntax error in it: after an error, the
/// statement at fault is left out (`recover.rs`) and the rest parsed again.
pub fn parse_recovering(source: &str) -> Parsed {
    let mut parsed = Parsed {
        file: None,
        errors: Vec::new(),
        skipped: Vec::new(),
    };
    if let Err(d) = check_nesting(source) {
        parsed.errors.push(*d);
        return parsed;
    }
    if let Some(file) = super::descent::parse(source) {
        parsed.file = Some(file);
        return parsed;
    }
    let mut text = std::borrow::Cow::Borrowed(source);
    loop {
        let at = match parse_with_pest(&text) {
            Ok(file) => {
                parsed.file = Some(file);
                return parsed;
            }
            Err(d) => {
                let at = d.span.start;
                let again = parsed
                    .errors
                    .last()
                    .is_some_and(|l| (l.span.start, l.span.end) == (d.span.start, d.span.end));
                // A limit (nesting, size) is not a slip to skip past.
                let limit = d.message.starts_with("condition is too complex");
                if !again {
                    parsed.errors.push(*d);
                }
                if again || limit {
                    return parsed;
                }
                at
            }
        };
        if parsed.errors.len() >= MAX_SYNTAX_ERRORS {
            return parsed;
        }
        let Some(region) = super::recover::region(&text, at) else {
            return parsed;
        };
        text = std::borrow::Cow::Owned(super::recover::blank(&text, region.clone()));
        parsed.skipped.push(region);
    }
}

/// Parses a standalone expression (`success_rate * 100`, `avg(cpu, 5m) > 90%`), as a
/// rule test's `promql_expr_test` gives one.
pub fn parse_expression(source: &str) -> Result<Expr, Box<Diagnostic>> {
    check_nesting(source)?;
    let mut pairs = RulesParser::parse(Rule::expression, source)
        .map_err(|e| Box::new(syntax_error(e, source)))?;
    let top = pairs
        .next()
        .expect("the expression rule always yields one pair");
    let nodes = top.clone().into_inner().flatten().count();
    if nodes > MAX_CONDITION_NODES {
        return Err(Box::new(
            Diagnostic::error(span(&top), "expression is too complex")
                .with_label(format!("{nodes} parts; at most {MAX_CONDITION_NODES}")),
        ));
    }
    let expr = children(top)
        .find(|p| p.as_rule() == Rule::expr)
        .expect("an expression holds an expr");
    Ok(parse_expr(expr))
}

/// [`parse_file`] through pest alone: the reference the fast path is tested against.
pub fn parse_with_pest(source: &str) -> Result<File, Box<Diagnostic>> {
    check_nesting(source)?;
    let mut pairs =
        RulesParser::parse(Rule::file, source).map_err(|e| Box::new(syntax_error(e, source)))?;
    let file = pairs.next().expect("the file rule always yields one pair");
    check_condition_sizes(&file)?;
    let items = file
        .into_inner()
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(|p| match p.as_rule() {
            Rule::metric_decl => Item::Metric(parse_metric_decl(p)),
            Rule::alert => Item::Alert(parse_alert(p)),
            r => unreachable!("item {r:?}"),
        })
        .collect();
    Ok(File { items })
}

/// Refuses parentheses nested deeper than [`MAX_NESTING`], before the recursive
/// parser sees them. Strings and comments are skipped.
fn check_nesting(source: &str) -> Result<(), Box<Diagnostic>> {
    // Bytes, not chars: every character that matters here is ASCII, and no byte of
    // a multi-byte UTF-8 character is ASCII, so offsets come out the same.
    let b = source.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'"' | b'\n' => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Box::new(
                        Diagnostic::error(Span::new(i, i + 1), "expression nested too deeply")
                            .with_label(format!("more than {MAX_NESTING} levels of parentheses"))
                            .with_hint(
                                "split the condition, or name parts of it in separate alerts",
                            ),
                    ));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses a condition with more than [`MAX_CONDITION_NODES`] grammar nodes, before
/// it becomes a (deep) syntax tree. Iterative: it must not recurse itself.
fn check_condition_sizes(file: &Pair<Rule>) -> Result<(), Box<Diagnostic>> {
    for p in file.clone().into_inner().flatten() {
        if p.as_rule() != Rule::condition {
            continue;
        }
        let nodes = p.clone().into_inner().flatten().count();
        if nodes > MAX_CONDITION_NODES {
            return Err(Box::new(
                Diagnostic::error(span(&p), "condition is too complex")
                    .with_label(format!("{nodes} parts; at most {MAX_CONDITION_NODES}"))
                    .with_hint("split it into several alerts"),
            ));
        }
    }
    Ok(())
}

/// A pair's children without keyword tokens, which carry no meaning of their own.
fn children(p: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    p.into_inner().filter(|c| {
        !matches!(
            c.as_rule(),
            Rule::kw_metric
                | Rule::kw_alert
                | Rule::kw_when
                | Rule::kw_resolve
                | Rule::kw_severity
                | Rule::kw_labels
                | Rule::kw_annotations
                | Rule::kw_keep
                | Rule::kw_firing
                | Rule::kw_for
                | Rule::kw_in
                | Rule::kw_escalate
                | Rule::kw_route
        )
    })
}

fn span(p: &Pair<Rule>) -> Span {
    Span::new(p.as_span().start(), p.as_span().end())
}

fn spanned(p: &Pair<Rule>) -> Spanned<String> {
    Spanned::new(p.as_str().to_string(), span(p))
}

fn parse_metric_decl(p: Pair<Rule>) -> MetricDecl {
    let s = span(&p);
    let mut inner = children(p);
    let name = spanned(&inner.next().unwrap());
    let kind = spanned(&inner.next().unwrap());
    let unit = inner.next().map(|u| spanned(&u));
    MetricDecl {
        name,
        kind,
        unit,
        span: s,
    }
}

fn parse_alert(p: Pair<Rule>) -> Alert {
    let s = span(&p);
    let mut inner = children(p);
    let name = parse_string(inner.next().unwrap());
    let fields = inner.map(parse_field).collect();
    Alert {
        name,
        fields,
        span: s,
    }
}

fn parse_field(p: Pair<Rule>) -> Field {
    let s = span(&p);
    let rule = p.as_rule();
    let mut inner = children(p);
    let kind = match rule {
        Rule::when_field => FieldKind::When(parse_condition(inner.next().unwrap())),
        Rule::resolve_field => FieldKind::ResolveWhen(parse_condition(inner.next().unwrap())),
        Rule::severity_field => FieldKind::Severity(spanned(&inner.next().unwrap())),
        Rule::labels_field => FieldKind::Labels(inner.map(parse_pair).collect()),
        Rule::annotations_field => FieldKind::Annotations(inner.map(parse_pair).collect()),
        Rule::keep_firing_field => FieldKind::KeepFiringFor(parse_quantity(inner.next().unwrap())),
        Rule::escalate_field => FieldKind::Escalate(parse_string(inner.next().unwrap())),
        Rule::route_field => FieldKind::Route(parse_string(inner.next().unwrap())),
        r => unreachable!("field {r:?}"),
    };
    Field { kind, span: s }
}

fn parse_pair(p: Pair<Rule>) -> super::ast::Pair {
    let mut inner = children(p);
    let key = spanned(&inner.next().unwrap());
    let value = parse_string(inner.next().unwrap());
    super::ast::Pair { key, value }
}

/// A string literal, unescaped. Its span covers the quotes.
fn parse_string(p: Pair<Rule>) -> Spanned<String> {
    let s = span(&p);
    let raw = children(p).next().unwrap().as_str();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Spanned::new(out, s)
}

fn parse_condition(p: Pair<Rule>) -> Condition {
    let s = span(&p);
    let mut inner = children(p);
    let expr = parse_expr(inner.next().unwrap());
    let hold = inner.next().map(parse_for_clause);
    Condition {
        expr,
        hold,
        span: s,
    }
}

fn parse_for_clause(p: Pair<Rule>) -> Hold {
    let mut inner = children(p);
    let q = parse_quantity(inner.next().unwrap());
    match inner.next() {
        Some(_evaluations) => Hold::Evaluations(q),
        None => Hold::Duration(q),
    }
}

fn parse_quantity(p: Pair<Rule>) -> Quantity {
    let s = span(&p);
    let mut inner = children(p);
    let number = inner.next().unwrap().as_str().to_string();
    let unit = inner.next().map(|u| u.as_str().to_string());
    Quantity {
        number,
        unit,
        span: s,
    }
}

/// `expr`, `and_expr`: left-associative chains of one boolean operator.
fn parse_expr(p: Pair<Rule>) -> Expr {
    let mut inner = children(p);
    let mut lhs = parse_and_expr(inner.next().unwrap());
    while let Some(_op) = inner.next() {
        let rhs = parse_and_expr(inner.next().unwrap());
        let s = lhs.span.to(rhs.span);
        lhs = Expr {
            kind: ExprKind::Or(Box::new(lhs), Box::new(rhs)),
            span: s,
        };
    }
    lhs
}

fn parse_and_expr(p: Pair<Rule>) -> Expr {
    let mut inner = children(p);
    let mut lhs = parse_not_expr(inner.next().unwrap());
    while let Some(_op) = inner.next() {
        let rhs = parse_not_expr(inner.next().unwrap());
        let s = lhs.span.to(rhs.span);
        lhs = Expr {
            kind: ExprKind::And(Box::new(lhs), Box::new(rhs)),
            span: s,
        };
    }
    lhs
}

fn parse_not_expr(p: Pair<Rule>) -> Expr {
    let nots: Vec<Span> = children(p.clone())
        .filter(|q| q.as_rule() == Rule::op_not)
        .map(|q| span(&q))
        .collect();
    let comparison = children(p)
        .find(|q| q.as_rule() == Rule::comparison)
        .unwrap();
    let mut expr = parse_comparison(comparison);
    for not in nots.into_iter().rev() {
        let s = not.to(expr.span);
        expr = Expr {
            kind: ExprKind::Not(Box::new(expr)),
            span: s,
        };
    }
    expr
}

fn parse_comparison(p: Pair<Rule>) -> Expr {
    let s = span(&p);
    let mut inner = children(p);
    let lhs = parse_arith(inner.next().unwrap());
    let Some(op) = inner.next() else {
        return lhs;
    };
    let op = match op.as_rule() {
        Rule::op_lt => CompareOp::Lt,
        Rule::op_le => CompareOp::Le,
        Rule::op_gt => CompareOp::Gt,
        Rule::op_ge => CompareOp::Ge,
        Rule::op_eq => CompareOp::Eq,
        Rule::op_ne => CompareOp::Ne,
        r => unreachable!("comparison operator {r:?}"),
    };
    let rhs = parse_arith(inner.next().unwrap());
    let window = inner
        .next()
        .map(|w| parse_quantity(children(w).next().unwrap()));
    Expr {
        kind: ExprKind::Compare {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            window,
        },
        span: s,
    }
}

fn parse_arith(p: Pair<Rule>) -> Expr {
    ARITH
        .map_primary(parse_term)
        .map_prefix(|op, rhs| {
            let s = span(&op).to(rhs.span);
            Expr {
                kind: ExprKind::Neg(Box::new(rhs)),
                span: s,
            }
        })
        .map_infix(|lhs, op, rhs| {
            let op = match op.as_rule() {
                Rule::op_add => ArithOp::Add,
                Rule::op_sub => ArithOp::Sub,
                Rule::op_mul => ArithOp::Mul,
                Rule::op_div => ArithOp::Div,
                r => unreachable!("arithmetic operator {r:?}"),
            };
            let s = lhs.span.to(rhs.span);
            Expr {
                kind: ExprKind::Arith(op, Box::new(lhs), Box::new(rhs)),
                span: s,
            }
        })
        .parse(children(p))
}

fn parse_term(p: Pair<Rule>) -> Expr {
    let s = span(&p);
    let kind = match p.as_rule() {
        Rule::quantity => ExprKind::Quantity(parse_quantity(p)),
        Rule::selector => ExprKind::Selector(parse_selector(p)),
        Rule::call => {
            let mut inner = children(p);
            let function = spanned(&inner.next().unwrap());
            let args = inner.map(parse_expr).collect();
            ExprKind::Call { function, args }
        }
        // A parenthesised expression: the pair is the inner `expr`; its span excludes
        // the parentheses, which is what diagnostics want to underline.
        Rule::expr => ExprKind::Paren(Box::new(parse_expr(p))),
        r => unreachable!("term {r:?}"),
    };
    Expr { kind, span: s }
}

fn parse_selector(p: Pair<Rule>) -> Selector {
    let mut inner = children(p);
    let metric = spanned(&inner.next().unwrap());
    let matchers = inner
        .map(|m| {
            let mut m = children(m);
            let label = spanned(&m.next().unwrap());
            let op = match m.next().unwrap().as_rule() {
                Rule::op_label_eq => MatchOp::Equal,
                Rule::op_ne => MatchOp::NotEqual,
                Rule::op_re_match => MatchOp::Regex,
                Rule::op_re_no_match => MatchOp::NotRegex,
                r => unreachable!("match operator {r:?}"),
            };
            let value = parse_string(m.next().unwrap());
            Matcher { label, op, value }
        })
        .collect();
    Selector { metric, matchers }
}

/// Turns pest's error into "expected a duration, a number or `(`" at the right place,
/// or, for the slips people make most, a message that names the slip.
fn syntax_error(e: pest::error::Error<Rule>, source: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let at = match e.location {
        InputLocation::Pos(p) => Span::new(p, p),
        InputLocation::Span((a, b)) => Span::new(a, b),
    };
    if let Some(d) = range_selector(source, at.start).or_else(|| spaced_duration(source, at.start))
    {
        return d;
    }
    let message = match &e.variant {
        ErrorVariant::ParsingError {
            positives,
            negatives: _,
        } => {
            let mut wanted: Vec<&str> = positives.iter().map(|r| describe(*r)).collect();
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                "unexpected input".to_string()
            } else {
                format!("expected {}", one_of(&wanted))
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let field_expected = matches!(&e.variant, ErrorVariant::ParsingError { positives, .. } if positives.contains(&Rule::kw_severity) || positives.contains(&Rule::severity_field));
    if field_expected && let Some(d) = unknown_field(source, at.start) {
        return d;
    }
    // An error at the first token of a line usually belongs to the line before,
    // left unfinished (`when x >`): point there.
    let line_start = source[..at.start].rfind('\n').map_or(0, |i| i + 1);
    let previous_end = source[..line_start].trim_end().len();
    let unfinished = !field_expected
        && line_start > 0
        && source[line_start..at.start].trim().is_empty()
        && previous_end > 0;
    let at = if unfinished {
        Span::new(previous_end, previous_end)
    } else {
        at
    };
    let diagnostic = Diagnostic::error(at, message).with_label("here");
    let wants_string = matches!(&e.variant, ErrorVariant::ParsingError { positives, .. } if positives.contains(&Rule::string));
    let word: String = source[at.start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ')'))
        .collect();
    if wants_string && !unfinished && !word.is_empty() && !word.starts_with('"') {
        return diagnostic.with_hint(format!("strings are double-quoted: `\"{word}\"`"));
    }
    // Just after a `for` clause, the likely slip is putting it mid-condition.
    let after_for = matches!(&e.variant, ErrorVariant::ParsingError { positives, .. } if positives.contains(&Rule::kw_evaluations));
    let next_is_operator = ["and", "or", "+", "-", "*", "/", ">", "<", "=", "!"]
        .iter()
        .any(|op| source[at.start..].starts_with(op));
    let next_is_item = ["alert ", "alert\"", "metric "]
        .iter()
        .any(|kw| source[at.start..].starts_with(kw));
    if field_expected && next_is_item {
        diagnostic.with_hint("the alert above is not closed: add `}` before this line")
    } else if after_for && next_is_operator {
        diagnostic.with_hint(
            "`for` holds the whole condition, so it comes last: `when a > 1 and b > 2 for 5m`",
        )
    } else {
        diagnostic
    }
}

/// `wehn x > 1` where a field belongs: name the word, and the field it resembles.
fn unknown_field(source: &str, at: usize) -> Option<Diagnostic> {
    let rest = &source[at..];
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let word = &rest[..len];
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "not",
        "for",
        "in",
        "firing",
        "evaluations",
        "metric",
        "alert",
    ];
    if word.is_empty()
        || !word.starts_with(|c: char| c.is_ascii_alphabetic())
        || KEYWORDS.contains(&word)
    {
        return None;
    }
    const FIELDS: &[&str] = &[
        "when",
        "severity",
        "labels",
        "annotations",
        "resolve",
        "keep",
        "escalate",
        "route",
    ];
    let hint = match super::suggest(word, FIELDS.iter().copied()) {
        Some(f) => format!("did you mean `{f}`?"),
        None => "the fields are when, severity, labels, annotations, resolve when, keep firing for, escalate and route".to_string(),
    };
    Some(
        Diagnostic::error(Span::new(at, at + len), format!("unknown field `{word}`"))
            .with_label("not a field")
            .with_hint(hint),
    )
}

/// PromQL's range selector, `increase(x[1h])` or `x[5m]`: tocsin writes the window as
/// the function's argument, `increase(x, 1h)`.
fn range_selector(source: &str, at: usize) -> Option<Diagnostic> {
    let rest = source.get(at..)?;
    if !rest.starts_with('[') {
        return None;
    }
    let close = rest.find([']', '\n'])?;
    if rest.as_bytes()[close] != b']' {
        return None;
    }
    let window = rest[1..close].trim();
    let span = Span::new(at, at + close + 1);
    // The selector before `[`: a metric name, perhaps with `{…}`.
    let before = &source[..at];
    let selector_start = if before.ends_with('}') {
        before.rfind('{').map(|i| ident_start(before, i))?
    } else {
        ident_start(before, before.len())
    };
    let selector = &source[selector_start..at];
    if selector.is_empty() {
        return None;
    }
    // The call around it, if any: `name(` right before the selector.
    let outside = source[..selector_start].trim_end();
    let function = outside
        .strip_suffix('(')
        .map(|f| &f[ident_start(f, f.len())..])
        .filter(|f| !f.is_empty());
    let hint = match function {
        Some(f) => {
            let (name, extra) = promql_function(f);
            format!("write the window as an argument: `{name}({selector}, {window}{extra})`")
        }
        None => format!(
            "use a window function, e.g. `max({selector}, {window})`, or `{selector} > N in {window}` for what accumulates"
        ),
    };
    Some(
        Diagnostic::error(span, "tocsin has no range selectors")
            .with_label("PromQL syntax")
            .with_hint(hint),
    )
}

/// A PromQL function's tocsin name, and what else it needs.
fn promql_function(name: &str) -> (&str, &str) {
    match name {
        "avg_over_time" => ("avg", ""),
        "min_over_time" => ("min", ""),
        "max_over_time" => ("max", ""),
        "sum_over_time" => ("sum", ""),
        "count_over_time" => ("count", ""),
        "absent_over_time" => ("absent", ""),
        "predict_linear" => ("predict", ", AHEAD"),
        other => (other, ""),
    }
}

/// Where the identifier (`[A-Za-z0-9_:]`) ending at `end` starts.
fn ident_start(text: &str, end: usize) -> usize {
    text[..end]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map_or(0, |i| i + 1)
}

/// `for 15 mins`, `in 5 m`: a number, a space, then a unit. Said as the one duration
/// syntax says it everywhere (`crate::duration`).
fn spaced_duration(source: &str, at: usize) -> Option<Diagnostic> {
    let word_len = source[at..]
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(source.len() - at);
    let word = &source[at..at + word_len];
    if word.is_empty()
        || (crate::duration::unit_seconds(word).is_none()
            && crate::duration::suggest_unit(word).is_none()
            && crate::duration::suggest_misspelt_unit(word).is_none())
    {
        return None;
    }
    let before = source[..at].trim_end();
    if before.len() == at {
        return None;
    }
    let number_start = before
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    let number = &before[number_start..];
    if number.is_empty() || crate::duration::number_len(number) != number.len() {
        return None;
    }
    let written = &source[number_start..at + word_len];
    let e = crate::duration::parse(written).err()?;
    Some(
        Diagnostic::error(Span::new(number_start, at + word_len), e.message)
            .with_label("not a duration")
            .with_hint(e.hint),
    )
}

fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// What a grammar rule is called in an error message.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::metric_decl | Rule::alert => "`alert` or `metric`",
        Rule::metric_kind => "a metric kind (counter, gauge or event)",
        Rule::unit_name => "a unit",
        Rule::when_field
        | Rule::resolve_field
        | Rule::severity_field
        | Rule::labels_field
        | Rule::annotations_field
        | Rule::keep_firing_field
        | Rule::escalate_field
        | Rule::route_field => {
            "a field (when, severity, labels, annotations, resolve when, keep firing for, escalate, route) or `}`"
        }
        Rule::severity => "a severity (critical, warning or info)",
        Rule::pair => "`name = \"value\"` or `}`",
        Rule::condition
        | Rule::expression
        | Rule::expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::comparison => "an expression",
        Rule::arith => "an expression",
        Rule::for_clause => "`for`",
        Rule::in_clause => "`in`",
        Rule::op_or | Rule::op_and => "`and` or `or`",
        Rule::op_not => "`not`",
        Rule::op_le | Rule::op_ge | Rule::op_eq | Rule::op_ne | Rule::op_lt | Rule::op_gt => {
            "a comparison (<, <=, >, >=, ==, !=)"
        }
        Rule::op_add | Rule::op_sub | Rule::op_mul | Rule::op_div => "an operator (+, -, *, /)",
        Rule::op_neg => "`-`",
        Rule::op_label_eq | Rule::op_re_match | Rule::op_re_no_match => {
            "a label matcher operator (=, !=, =~, !~)"
        }
        Rule::call | Rule::function_name => "a function call",
        Rule::selector | Rule::metric_name => "a metric name",
        Rule::matcher | Rule::label_name => "a label name",
        Rule::quantity | Rule::number => "a number or a duration",
        Rule::unit => "a unit",
        Rule::ident | Rule::word | Rule::keyword => "a name",
        Rule::string | Rule::string_inner => "a quoted string",
        Rule::kw_evaluations => "`evaluations`",
        Rule::kw_when
        | Rule::kw_resolve
        | Rule::kw_severity
        | Rule::kw_labels
        | Rule::kw_annotations
        | Rule::kw_keep
        | Rule::kw_escalate
        | Rule::kw_route => {
            "a field (when, severity, labels, annotations, resolve when, keep firing for, escalate, route) or `}`"
        }
        Rule::kw_metric | Rule::kw_alert => "`alert` or `metric`",
        Rule::kw_for => "`for`",
        Rule::kw_in => "`in`",
        Rule::kw_firing => "`firing`",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
        // Silent rules (`_{}`) and keywords never reach an error's positives alone.
        _ => "a keyword",
    }
}

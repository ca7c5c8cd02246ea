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

/// [`parse_file`] through pest alone: the reference the fast path is tested against.
pub fn parse_with_pest(source: &str) -> Result<File, Box<Diagnostic>> {
    check_nesting(source)?;
    let mut pairs =
        RulesParser::parse(Rule::file, source).map_err(|e| Box::new(syntax_error(e)))?;
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

/// Turns pest's error into "expected a duration, a number or `(`" at the right place.
fn syntax_error(e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let at = match e.location {
        InputLocation::Pos(p) => Span::new(p, p),
        InputLocation::Span((a, b)) => Span::new(a, b),
    };
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
    let diagnostic = Diagnostic::error(at, message).with_label("here");
    // Just after a `for` clause, the likely slip is putting it mid-condition.
    let after_for = matches!(&e.variant, ErrorVariant::ParsingError { positives, .. } if positives.contains(&Rule::kw_evaluations));
    if after_for {
        diagnostic.with_hint(
            "`for` holds the whole condition, so it comes last: `when a > 1 and b > 2 for 5m`",
        )
    } else {
        diagnostic
    }
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
        Rule::condition | Rule::expr | Rule::and_expr | Rule::not_expr | Rule::comparison => {
            "an expression"
        }
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

//! The checker: AST → typed, base-unit rules (`model.rs`), or every error in the files
//! at once. Units are dimensions here: a duration cannot be compared with a ratio, a
//! window must be a duration, and a threshold must fit the metric's declared unit.
//!
//! This file checks an alert's fields (severity, labels, annotations, holds,
//! windows); `expr.rs` types and unit-checks its conditions' expressions.

mod expr;

use std::collections::BTreeMap;

// Small maps keyed by names, built per alert: Fx, not SipHash (13% of a check).
use rustc_hash::FxHashMap as HashMap;
use std::time::Duration;

use super::ast::{self, ExprKind, FieldKind, Span, Spanned};
use super::diagnostic::{Diagnostic, LineIndex, SourceFile};
use super::model::*;
use super::suggest;
use super::template::Template;
use super::units::{DeclaredUnit, Dim, Scale, literal_unit};
use crate::matcher::{MatchOp, Matcher, MatcherError};

/// Limits a rule set must respect.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The longest window a rule may read; bounds the memory the series store needs.
    pub max_window: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_window: Duration::from_secs(7 * 86400),
        }
    }
}

/// Checks parsed files together: metric declarations apply across the whole set, and
/// alert names must be unique across it. `files[i]` was parsed from `sources[i]`;
/// a `None` is a file that did not parse (its syntax error is reported already).
pub fn check_files(
    sources: &[SourceFile],
    files: &[Option<ast::File>],
    options: &CheckOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    check_recovered(sources, files, &[], options)
}

/// [`check_files`] over files parsed with recovery: `incomplete[i]` holds the spans of
/// the items of file `i` that recovery cut into. Those are checked for what they say,
/// but not for what they lack (the `when` left out is the syntax error's).
pub fn check_recovered(
    sources: &[SourceFile],
    files: &[Option<ast::File>],
    incomplete: &[Vec<std::ops::Range<usize>>],
    options: &CheckOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let metrics = declared_metrics(files, &mut diags);
    let mut seen: HashMap<&str, (usize, Span)> = HashMap::default();
    let mut alerts = Vec::new();
    let mut regexes = HashMap::default();
    for (i, file) in files.iter().enumerate() {
        let Some(file) = file else { continue };
        let mut cx = Checker {
            source: &sources[i],
            lines: LineIndex::new(&sources[i].text),
            file: i,
            metrics: &metrics,
            options,
            diags: Vec::new(),
            regexes: std::mem::take(&mut regexes),
        };
        for item in &file.items {
            let ast::Item::Alert(alert) = item else {
                continue;
            };
            if let Some(&(first_file, first)) = seen.get(alert.name.node.as_str()) {
                cx.diags.push(
                    Diagnostic::error(
                        alert.name.span,
                        format!("duplicate alert name `{}`", alert.name.node),
                    )
                    .with_label("defined again here")
                    .with_related(first_file, first, "first defined here")
                    .with_hint("alert names are unique across a rule set: rename one"),
                );
            } else {
                seen.insert(&alert.name.node, (i, alert.name.span));
            }
            let cut = incomplete
                .get(i)
                .is_some_and(|spans| spans.iter().any(|r| r.start == alert.span.start));
            if let Some(rule) = cx.alert(alert, cut) {
                alerts.push(rule);
            }
        }
        regexes = std::mem::take(&mut cx.regexes);
        diags.extend(cx.diags.into_iter().map(|d| d.in_file(i)));
    }
    if diags.is_empty() {
        let metrics: BTreeMap<String, MetricInfo> =
            metrics.into_iter().map(|(k, (v, _))| (k, v)).collect();
        for a in &mut alerts {
            a.value_unit = a.condition.expr.value_unit(&metrics);
        }
        Ok(RuleSet { alerts, metrics })
    } else {
        Err(diags)
    }
}

/// Checks a standalone expression (a rule test's `promql_expr_test`) against the
/// metrics `files` declare. `source` is the expression's own text; its diagnostics
/// carry the file index `sources.len()`. Returns the checked expression and whether
/// it is a condition (true or false per series) rather than a number.
pub fn check_expression(
    sources: &[SourceFile],
    files: &[Option<ast::File>],
    source: &SourceFile,
    expr: &ast::Expr,
    options: &CheckOptions,
) -> Result<(Expr, bool), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let metrics = declared_metrics(files, &mut diags);
    let file = sources.len();
    let mut cx = Checker {
        source,
        lines: LineIndex::new(&source.text),
        file,
        metrics: &metrics,
        options,
        diags: Vec::new(),
        regexes: HashMap::default(),
    };
    let checked = cx.expr(expr);
    diags.extend(cx.diags.into_iter().map(|d| d.in_file(file)));
    match checked {
        Some((e, ty)) if diags.is_empty() => Ok((e, ty == Ty::Bool)),
        _ if !diags.is_empty() => Err(diags),
        _ => Err(vec![
            Diagnostic::error(expr.span, "cannot read this expression").in_file(file),
        ]),
    }
}

fn declared_metrics(
    files: &[Option<ast::File>],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, (MetricInfo, (usize, Span))> {
    let mut out: BTreeMap<String, (MetricInfo, (usize, Span))> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let Some(file) = file else { continue };
        for item in &file.items {
            let ast::Item::Metric(m) = item else { continue };
            let kind = MetricKind::ALL.iter().find(|(n, _)| *n == m.kind.node);
            let Some(&(_, kind)) = kind else {
                let names = MetricKind::ALL.iter().map(|(n, _)| *n);
                diags.push(
                    unknown(&m.kind, "metric kind", suggest(&m.kind.node, names.clone()))
                        .with_hint(hint_or_list(&m.kind.node, names, "the kinds are"))
                        .in_file(i),
                );
                continue;
            };
            let unit = match &m.unit {
                None => None,
                Some(u) => match DeclaredUnit::parse(&u.node) {
                    Ok(unit) => Some(unit),
                    Err(_) => {
                        let names = super::units::DECLARED_UNITS.iter().map(|(n, _)| *n);
                        diags.push(
                            unknown(u, "unit", None)
                                .with_hint(hint_or_list(&u.node, names, "the units are"))
                                .in_file(i),
                        );
                        continue;
                    }
                },
            };
            if let Some((_, (first_file, first))) = out.get(&m.name.node) {
                diags.push(
                    Diagnostic::error(
                        m.name.span,
                        format!("metric `{}` is declared twice", m.name.node),
                    )
                    .with_label("declared again here")
                    .with_related(*first_file, *first, "first declared here")
                    .in_file(i),
                );
                continue;
            }
            out.insert(
                m.name.node.clone(),
                (MetricInfo { kind, unit }, (i, m.name.span)),
            );
        }
    }
    out
}

fn unknown(word: &Spanned<String>, what: &str, _: Option<&str>) -> Diagnostic {
    Diagnostic::error(word.span, format!("unknown {what} `{}`", word.node))
        .with_label(format!("not a {what}"))
}

fn hint_or_list<'a>(
    word: &str,
    names: impl Iterator<Item = &'a str> + Clone,
    list: &str,
) -> String {
    match suggest(word, names.clone()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("{list}: {}", names.collect::<Vec<_>>().join(", ")),
    }
}

/// What an expression yields, for type and unit checks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    Bool,
    Num(Units),
}

/// What is known of a number's unit.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Units {
    Known(Dim),
    /// A bare literal (`20`, `0`): in base units of whatever it meets.
    Scalar,
    /// A metric with no declared unit: trusted as written.
    Unknown,
}

struct Checker<'a> {
    source: &'a SourceFile,
    /// Line starts of `source`, so an alert's line is a binary search.
    lines: LineIndex,
    file: usize,
    metrics: &'a BTreeMap<String, (MetricInfo, (usize, Span))>,
    options: &'a CheckOptions,
    diags: Vec<Diagnostic>,
    /// Regex matchers made so far, by (label, op, value), across files: rule sets
    /// repeat the same few, and compiling a regex (building its DFA) was a third of
    /// checking 10,000 rules. A clone shares the compiled regex.
    regexes: HashMap<(String, MatchOp, String), Matcher>,
}

impl Checker<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Checks one alert. An `incomplete` alert (recovery left part of it out) is
    /// checked for what it says only, and yields no rule.
    fn alert(&mut self, alert: &ast::Alert, incomplete: bool) -> Option<AlertRule> {
        let errors_before = self.diags.len();
        let mut firsts: HashMap<&'static str, Span> = HashMap::default();
        let mut condition = None;
        let mut resolve_when = None;
        let mut severity = None;
        let mut keep_firing_for = None;
        let mut labels = BTreeMap::new();
        let mut annotations = BTreeMap::new();
        let mut escalation = None;
        let mut route = None;
        for field in &alert.fields {
            let name = field_name(&field.kind);
            if let Some(&first) = firsts.get(name) {
                self.error(
                    Diagnostic::error(field.span, format!("`{name}` is given twice"))
                        .with_label("given again here")
                        .with_related(self.file, first, "first given here")
                        .with_hint("an alert has at most one of each field"),
                );
                continue;
            }
            firsts.insert(name, field.span);
            match &field.kind {
                FieldKind::When(c) => condition = self.condition(c),
                FieldKind::ResolveWhen(c) => resolve_when = self.condition(c),
                FieldKind::Severity(s) => severity = self.severity(s),
                FieldKind::Labels(pairs) => labels = self.labels(pairs),
                FieldKind::Annotations(pairs) => annotations = self.annotations(pairs),
                FieldKind::KeepFiringFor(q) => {
                    keep_firing_for = self.duration(q, "keep firing for")
                }
                FieldKind::Escalate(s) => escalation = Some(s.node.clone()),
                FieldKind::Route(s) => route = Some(s.node.clone()),
            }
        }
        for (required, example) in [
            ("when", "when cpu_usage > 90% for 15m"),
            ("severity", "severity critical"),
        ] {
            if !firsts.contains_key(required) && !incomplete {
                self.error(
                    Diagnostic::error(
                        alert.name.span,
                        format!("alert `{}` has no `{required}`", alert.name.node),
                    )
                    .with_label(format!("needs `{required}`"))
                    .with_hint(format!("add a line such as `{example}`")),
                );
            }
        }
        if self.diags.len() > errors_before || incomplete {
            return None;
        }
        Some(AlertRule {
            name: alert.name.node.clone(),
            origin: Origin {
                path: self.source.path.clone(),
                line: self.lines.line_col(&self.source.text, alert.span.start).0,
            },
            severity: severity?,
            value_unit: None,
            condition: condition?,
            resolve_when,
            keep_firing_for,
            labels,
            annotations,
            escalation,
            route,
        })
    }

    fn severity(&mut self, s: &Spanned<String>) -> Option<Severity> {
        let found = Severity::ALL.iter().find(|(n, _)| *n == s.node);
        if found.is_none() {
            let names = Severity::ALL.iter().map(|(n, _)| *n);
            self.error(unknown(s, "severity", None).with_hint(hint_or_list(
                &s.node,
                names,
                "the severities are",
            )));
        }
        found.map(|&(_, sev)| sev)
    }

    fn labels(&mut self, pairs: &[ast::Pair]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for p in pairs {
            if matches!(p.key.node.as_str(), "alertname" | "severity") {
                self.error(
                    Diagnostic::error(
                        p.key.span,
                        format!("label `{}` is set by tocsin", p.key.node),
                    )
                    .with_label("reserved label")
                    .with_hint("`alertname` is the alert's name and `severity` its severity field"),
                );
                continue;
            }
            if let Some(&first) = seen.get(p.key.node.as_str()) {
                self.error(self.twice("label", &p.key, first));
                continue;
            }
            seen.insert(&p.key.node, p.key.span);
            out.insert(p.key.node.clone(), p.value.node.clone());
        }
        out
    }

    fn twice(&self, what: &str, key: &Spanned<String>, first: Span) -> Diagnostic {
        Diagnostic::error(key.span, format!("{what} `{}` is given twice", key.node))
            .with_label("given again here")
            .with_related(self.file, first, "first given here")
    }

    fn annotations(&mut self, pairs: &[ast::Pair]) -> BTreeMap<String, Template> {
        let mut out = BTreeMap::new();
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for p in pairs {
            if let Some(&first) = seen.get(p.key.node.as_str()) {
                self.error(self.twice("annotation", &p.key, first));
                continue;
            }
            seen.insert(&p.key.node, p.key.span);
            match Template::parse(&p.value.node) {
                Ok(t) => {
                    out.insert(p.key.node.clone(), t);
                }
                Err(errors) => {
                    // Point into the string when no escape shifted the offsets.
                    let raw = &self.source.text[p.value.span.range()];
                    let exact = !raw.contains('\\');
                    for e in errors {
                        let span = if exact {
                            let base = p.value.span.start + 1;
                            Span::new(base + e.range.start, base + e.range.end)
                        } else {
                            p.value.span
                        };
                        let mut d =
                            Diagnostic::error(span, e.message).with_label("in this template");
                        d.hint = e.hint;
                        self.error(d);
                    }
                }
            }
        }
        out
    }

    fn condition(&mut self, c: &ast::Condition) -> Option<Condition> {
        let checked = self.expr(&c.expr);
        let hold = match &c.hold {
            None => Some(Hold::Immediately),
            Some(ast::Hold::Duration(q)) => self.duration(q, "for").map(Hold::For),
            Some(ast::Hold::Evaluations(q)) => self.evaluations(q).map(Hold::Evaluations),
        };
        let (expr, ty) = checked?;
        if let Ty::Num(_) = ty {
            self.error(
                Diagnostic::error(
                    c.expr.span,
                    "a condition must be true or false, but this is a number",
                )
                .with_label("a number")
                .with_hint("compare it with a threshold, e.g. `cpu_usage > 90%`"),
            );
            return None;
        }
        Some(Condition { expr, hold: hold? })
    }

    fn evaluations(&mut self, q: &ast::Quantity) -> Option<u32> {
        match (q.unit.as_deref(), q.number.parse::<u32>()) {
            (None, Ok(n)) if n >= 1 => Some(n),
            _ => {
                self.error(
                    Diagnostic::error(
                        q.span,
                        format!("`for {q} evaluations` needs a whole number of at least 1"),
                    )
                    .with_label("not a count of evaluations")
                    .with_hint("e.g. `for 3 evaluations`"),
                );
                None
            }
        }
    }

    /// A literal that must be a positive duration: a `for`, a window, `keep firing for`.
    fn duration(&mut self, q: &ast::Quantity, context: &str) -> Option<Duration> {
        let (secs, dim) = self.literal(q)?;
        let Some(dim) = dim else {
            self.error(
                Diagnostic::error(
                    q.span,
                    format!("`{context}` needs a duration, found the plain number `{q}`"),
                )
                .with_label("no unit")
                .with_hint(format!("did you mean `{}m`?", q.number)),
            );
            return None;
        };
        if dim != Dim::TIME {
            self.error(
                Diagnostic::error(
                    q.span,
                    format!("`{context}` needs a duration, found {dim} `{q}`"),
                )
                .with_label("not a duration")
                .with_hint(crate::duration::EXAMPLES),
            );
            return None;
        }
        if secs <= 0.0 {
            self.error(
                Diagnostic::error(q.span, format!("`{context}` needs a duration above zero"))
                    .with_label("empty")
                    .with_hint(if context == "for" {
                        "leave `for` out to fire as soon as the condition holds"
                    } else {
                        "a window must cover some time, e.g. `5m`"
                    }),
            );
            return None;
        }
        if secs > crate::duration::LONGEST.as_secs_f64() {
            self.error(
                Diagnostic::error(q.span, format!("`{context}` duration `{q}` is too long"))
                    .with_label("longer than ten years")
                    .with_hint(crate::duration::EXAMPLES),
            );
            return None;
        }
        Some(Duration::from_secs_f64(secs))
    }

    /// A literal's value in base units and its dimension (`None`: a plain number).
    pub(super) fn literal(&mut self, q: &ast::Quantity) -> Option<(f64, Option<Dim>)> {
        let number: f64 = q.number.parse().ok()?;
        if !number.is_finite() {
            self.error(
                Diagnostic::error(q.span, format!("`{}` is too large a number", q.number))
                    .with_label("beyond what a 64-bit float holds"),
            );
            return None;
        }
        let Some(unit) = q.unit.as_deref() else {
            return Some((number, None));
        };
        // `1h30m`: a duration in parts, read the one way durations are read.
        if unit.contains(|c: char| c.is_ascii_digit()) {
            return match crate::duration::parse(&q.to_string()) {
                Ok(d) => Some((d.as_secs_f64(), Some(Dim::TIME))),
                Err(e) => {
                    self.error(
                        Diagnostic::error(q.span, e.message)
                            .with_label("not a duration")
                            .with_hint(e.hint),
                    );
                    None
                }
            };
        }
        let (scale, dim) = self.unit(q, unit)?;
        Some((scale.apply(number), Some(dim)))
    }

    fn unit(&mut self, q: &ast::Quantity, unit: &str) -> Option<(Scale, Dim)> {
        match literal_unit(unit) {
            Ok(u) => Some(u),
            Err(e) => {
                let mut d = Diagnostic::error(q.span, format!("unknown unit `{unit}` in `{q}`"))
                    .with_label("unknown unit");
                d.hint = Some(match e.suggestion {
                    Some(s) => format!("did you mean `{}{s}`?", q.number),
                    // `10e`: an exponent without its digits.
                    None if unit.eq_ignore_ascii_case("e") => format!(
                        "scientific notation needs the exponent's digits: `{}e6` is {} million",
                        q.number, q.number
                    ),
                    None => "units are %, ms s m h d w, B KB MB GB TB KiB MiB GiB TiB, and rates like MB/hour".into(),
                });
                self.error(d);
                None
            }
        }
    }

    /// A window: a positive duration no longer than the configured maximum.
    fn window(&mut self, q: &ast::Quantity, context: &str) -> Option<Duration> {
        let d = self.duration(q, context)?;
        if d > self.options.max_window {
            self.error(
                Diagnostic::error(q.span, format!("window `{q}` is longer than the maximum of {}", humantime::format_duration(self.options.max_window)))
                    .with_label("too long")
                    .with_hint("the series store keeps every sample of the longest window; raise `--max-window` if this is intended"),
            );
            return None;
        }
        Some(d)
    }
}

fn field_name(f: &FieldKind) -> &'static str {
    match f {
        FieldKind::When(_) => "when",
        FieldKind::ResolveWhen(_) => "resolve when",
        FieldKind::Severity(_) => "severity",
        FieldKind::Labels(_) => "labels",
        FieldKind::Annotations(_) => "annotations",
        FieldKind::KeepFiringFor(_) => "keep firing for",
        FieldKind::Escalate(_) => "escalate",
        FieldKind::Route(_) => "route",
    }
}

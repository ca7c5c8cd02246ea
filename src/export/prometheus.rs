//! Checked rules → Prometheus alerting-rule YAML.
//!
//! The YAML is serialized from the structs below, never assembled as text, so quoting
//! is always right. Rules that PromQL cannot express are reported, never approximated:
//! an exported rule must fire exactly when tocsin's would.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::humanize::ValueFormat;
use crate::rules::RuleSet;
use crate::rules::ast::ArithOp;
use crate::rules::model::{
    AlertRule, ESCALATION_LABEL, Expr, Hold, Origin, ROUTE_LABEL, Selector, WindowCall, WindowFn,
};
use crate::rules::template::{Field, Segment, Template};

/// A rule that uses a construct PromQL cannot express.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportError {
    pub rule: String,
    pub origin: Origin,
    pub message: String,
}

#[derive(Serialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<String>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// One rule group per source file, named after the file's stem. Every rule that
/// cannot be exported is reported, with each of its problems, so one run shows them
/// all.
pub fn to_prometheus(set: &RuleSet) -> Result<String, Vec<ExportError>> {
    let mut groups: Vec<(PathBuf, Group)> = Vec::new();
    let mut errors = Vec::new();
    for alert in &set.alerts {
        let mut problems = Vec::new();
        let rule = rule(alert, &mut problems);
        errors.extend(problems.into_iter().map(|message| ExportError {
            rule: alert.name.clone(),
            origin: alert.origin.clone(),
            message,
        }));
        let path = &alert.origin.path;
        match groups.iter_mut().find(|(p, _)| p == path) {
            Some((_, group)) => group.rules.push(rule),
            None => {
                let name = group_name(path, &groups);
                groups.push((
                    path.clone(),
                    Group {
                        name,
                        rules: vec![rule],
                    },
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let file = RuleFile {
        groups: groups.into_iter().map(|(_, g)| g).collect(),
    };
    Ok(serde_yaml_ng::to_string(&file).expect("plain structs serialize"))
}

/// The file stem; Prometheus rejects repeated group names, so a stem already taken
/// (`a/x.rules` and `b/x.rules`) falls back to the path without its extension.
fn group_name(path: &Path, groups: &[(PathBuf, Group)]) -> String {
    let stem = path
        .file_stem()
        .map_or_else(|| path.to_string_lossy(), |s| s.to_string_lossy())
        .into_owned();
    if groups.iter().any(|(_, g)| g.name == stem) {
        path.with_extension("").to_string_lossy().into_owned()
    } else {
        stem
    }
}

/// Translates one rule, pushing a message for each construct it cannot express.
fn rule(alert: &AlertRule, problems: &mut Vec<String>) -> Rule {
    let expr = promql(&alert.condition.expr, problems);
    let hold = match alert.condition.hold {
        Hold::Immediately => None,
        Hold::For(d) => Some(duration(d, problems)),
        Hold::Evaluations(n) => {
            problems.push(format!(
                "`for {n} evaluations` has no Prometheus equivalent: Prometheus holds a \
                 condition for a duration; use `for <duration>` instead"
            ));
            None
        }
    };
    if alert.resolve_when.is_some() {
        problems.push(
            "`resolve when` (hysteresis) has no Prometheus equivalent: Prometheus resolves \
             an alert as soon as its condition stops holding; `keep firing for` can delay \
             that instead"
                .into(),
        );
    }
    Rule {
        alert: alert.name.clone(),
        expr,
        hold,
        keep_firing_for: alert.keep_firing_for.map(|d| duration(d, problems)),
        labels: labels(alert, problems),
        annotations: alert
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), template(t, alert)))
            .collect(),
    }
}

/// The rule's labels, its severity and its escalation policy and route. Prometheus
/// expands label values as templates, so they are escaped like literal text.
fn labels(alert: &AlertRule, problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), literal(v)))
        .collect();
    labels.insert("severity".into(), alert.severity.name().into());
    for (label, value, field) in [
        (ESCALATION_LABEL, &alert.escalation, "escalate"),
        (ROUTE_LABEL, &alert.route, "route"),
    ] {
        let Some(value) = value else { continue };
        if alert.labels.contains_key(label) {
            problems.push(format!(
                "the label `{label}` carries the `{field}` field in the export; \
                 rename the label"
            ));
        }
        labels.insert(label.into(), literal(value));
    }
    labels
}

/// A tocsin template as a Prometheus (Go) template. Prometheus' `$labels` holds only
/// the series' labels, not `alertname` or the rule's `severity` label, so the name and
/// severity, fixed per rule, are written out as text.
fn template(t: &Template, alert: &AlertRule) -> String {
    let mut out = String::new();
    for segment in &t.segments {
        match segment {
            Segment::Text(text) => out.push_str(&literal(text)),
            // The same humanizing tocsin applies, so both render alike.
            Segment::Field(Field::Value) => {
                out.push_str(ValueFormat::for_unit(alert.value_unit).prometheus_template())
            }
            // A rule label is constant, and Prometheus' `$labels` would not see it.
            Segment::Field(Field::Label(l)) => match alert.labels.get(l) {
                Some(v) => out.push_str(&literal(v)),
                None => write!(out, "{{{{ $labels.{l} }}}}").unwrap(),
            },
            Segment::Field(Field::Name) => out.push_str(&literal(&alert.name)),
            Segment::Field(Field::Severity) => out.push_str(alert.severity.name()),
        }
    }
    out
}

/// Text that Go's template engine prints as is. Only `{{` starts an action; a
/// trailing `{` is escaped too, since a following `{{ $value }}` would make it one.
fn literal(text: &str) -> String {
    let mut out = text.replace("{{", r#"{{ "{{" }}"#);
    if out.ends_with('{') {
        out.pop();
        out.push_str(r#"{{ "{" }}"#);
    }
    out
}

/// How tightly a PromQL rendering binds, loosest first: parentheses are added only
/// where PromQL's precedence would otherwise regroup the tree.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 1,
        Expr::And(..) | Expr::Not(_) => 2,
        Expr::Compare(..) => 3,
        Expr::Arith(ArithOp::Add | ArithOp::Sub, ..) => 4,
        Expr::Arith(..) => 5,
        Expr::Neg(_) => 6,
        Expr::Number(n) if n.is_sign_negative() => 6,
        Expr::Number(_) | Expr::Instant(_) | Expr::Window(_) => 7,
    }
}

/// The PromQL for an expression; a construct it cannot express pushes a problem.
fn promql(e: &Expr, problems: &mut Vec<String>) -> String {
    let prec = precedence(e);
    match e {
        Expr::Number(n) => number(*n),
        Expr::Instant(s) => selector(s),
        Expr::Window(w) => window(w, problems),
        Expr::Neg(x) => format!("-{}", operand(x, prec, problems)),
        Expr::Arith(op, l, r) => binary(l, op.symbol(), r, prec, problems),
        Expr::Compare(op, l, r) => {
            let text = binary(l, op.symbol(), r, prec, problems);
            if is_scalar(l) && is_scalar(r) {
                problems.push(format!(
                    "`{text}` compares two numbers, which PromQL cannot use as a condition"
                ));
            }
            text
        }
        Expr::And(l, r) => match &**r {
            Expr::Not(r) => binary(l, "unless", r, prec, problems),
            _ => binary(l, "and", r, prec, problems),
        },
        Expr::Or(l, r) => binary(l, "or", r, prec, problems),
        Expr::Not(x) => {
            problems.push(
                "`not` has no PromQL equivalent here: only `A and not B` (PromQL \
                 `A unless B`) can be exported"
                    .into(),
            );
            format!("not {}", operand(x, prec, problems))
        }
    }
}

/// `l op r` for an operator of precedence `prec`. PromQL's binary operators here are
/// all left-associative, so only the right operand needs parentheses at equal
/// precedence.
fn binary(l: &Expr, op: &str, r: &Expr, prec: u8, problems: &mut Vec<String>) -> String {
    let l = operand(l, prec - 1, problems);
    let r = operand(r, prec, problems);
    format!("{l} {op} {r}")
}

/// A child expression, parenthesized if it binds no tighter than `loosest`.
fn operand(e: &Expr, loosest: u8, problems: &mut Vec<String>) -> String {
    let text = promql(e, problems);
    if precedence(e) > loosest {
        text
    } else {
        format!("({text})")
    }
}

/// Whether PromQL sees a scalar rather than a vector.
fn is_scalar(e: &Expr) -> bool {
    match e {
        Expr::Number(_) => true,
        Expr::Neg(x) => is_scalar(x),
        Expr::Arith(_, l, r) => is_scalar(l) && is_scalar(r),
        _ => false,
    }
}

fn window(w: &WindowCall, problems: &mut Vec<String>) -> String {
    let range = format!("{}[{}]", selector(&w.selector), duration(w.range, problems));
    let function = match w.function {
        WindowFn::Avg => "avg_over_time",
        WindowFn::Min => "min_over_time",
        WindowFn::Max => "max_over_time",
        WindowFn::Sum => "sum_over_time",
        WindowFn::Count => "count_over_time",
        WindowFn::Rate => "rate",
        WindowFn::Increase => "increase",
        WindowFn::Deriv => "deriv",
        WindowFn::Absent => "absent_over_time",
        WindowFn::Predict => {
            let ahead = w.ahead.unwrap_or_default().as_secs_f64();
            return format!("predict_linear({range}, {})", number(ahead));
        }
    };
    format!("{function}({range})")
}

/// Words PromQL reads as operators, aggregations or numbers (case-insensitively),
/// so a metric with such a name must be selected through `__name__`.
const PROMQL_KEYWORDS: &str = "and or unless atan2 by without on ignoring group_left \
    group_right bool offset start end inf nan sum avg count min max group stddev stdvar \
    topk bottomk count_values quantile";

fn selector(s: &Selector) -> String {
    let mut matchers: Vec<String> = s
        .matchers
        .iter()
        .map(|m| format!("{}{}{}", m.name(), m.op().symbol(), string(m.value())))
        .collect();
    let lower = s.metric.to_ascii_lowercase();
    let name = if PROMQL_KEYWORDS.split_whitespace().any(|k| k == lower) {
        matchers.insert(0, format!("__name__={}", string(&s.metric)));
        ""
    } else {
        &s.metric
    };
    if matchers.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", matchers.join(", "))
    }
}

/// A PromQL double-quoted string (Go escapes).
fn string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The shortest text that reads back as the same f64.
fn number(n: f64) -> String {
    match n {
        f64::INFINITY => "Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        n if n.is_nan() => "NaN".into(),
        n => n.to_string(),
    }
}

/// A PromQL duration in the largest unit that divides it (`90s`, `15m`, `1d`).
/// PromQL counts in milliseconds, so anything finer cannot be exported.
fn duration(d: Duration, problems: &mut Vec<String>) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        problems.push(format!(
            "the duration {d:?} is finer than PromQL's millisecond resolution"
        ));
    }
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let (unit, size) = units
        .into_iter()
        .find(|(_, size)| ms.is_multiple_of(*size))
        .unwrap();
    format!("{}{unit}", ms / size)
}

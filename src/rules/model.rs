//! Checked rules: what the evaluator and the exporters consume. Every threshold is in
//! base units, every function resolved, every `in W` turned into the window function it
//! means. Nothing here refers to pest or to source text except `origin` for messages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::ast::{ArithOp, CompareOp};
use super::template::Template;
use super::units::DeclaredUnit;
use crate::matcher::Matcher;

/// A checked, loadable set of rules: every file of a rules folder.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub alerts: Vec<AlertRule>,
    /// Declared metrics by name.
    pub metrics: BTreeMap<String, MetricInfo>,
}

impl RuleSet {
    /// The longest window any rule reads, so the series store keeps just enough.
    pub fn longest_window(&self) -> Duration {
        self.alerts
            .iter()
            .flat_map(|a| {
                std::iter::once(&a.condition)
                    .chain(&a.resolve_when)
                    .map(|c| c.expr.longest_window())
            })
            .max()
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up, resets to zero on restart: `increase` and `rate` apply.
    Counter,
    /// Goes up and down: windows average or bound it.
    Gauge,
    /// Each sample is an increment pushed as it happens: windows sum it.
    Event,
}

impl MetricKind {
    pub const ALL: &[(&str, MetricKind)] = &[
        ("counter", MetricKind::Counter),
        ("gauge", MetricKind::Gauge),
        ("event", MetricKind::Event),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).unwrap().0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricInfo {
    pub kind: MetricKind,
    pub unit: Option<DeclaredUnit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: &[(&str, Severity)] = &[
        ("critical", Severity::Critical),
        ("warning", Severity::Warning),
        ("info", Severity::Info),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, s)| *s == self).unwrap().0
    }
}

/// Where a rule was written, for messages and for grouping on export.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    pub name: String,
    pub origin: Origin,
    pub severity: Severity,
    pub condition: Condition,
    /// Hysteresis: once firing, the alert resolves only when this holds.
    pub resolve_when: Option<Condition>,
    pub keep_firing_for: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, Template>,
    /// The declared unit of the value the alert reports, which picks how
    /// `{{ value }}` is shown (85%, 1m 30s, 3GiB).
    pub value_unit: Option<DeclaredUnit>,
    /// `escalate "POLICY"`; an exported rule carries it as [`ESCALATION_LABEL`].
    pub escalation: Option<String>,
    /// `route "NAME"`; an exported rule carries it as [`ROUTE_LABEL`].
    pub route: Option<String>,
}

/// The labels that carry a rule's `escalate` and `route` clauses outside tocsin, so
/// that tocsin, receiving an exported rule's alert back from Alertmanager, knows
/// which escalation policy and route apply.
pub const ESCALATION_LABEL: &str = "tocsin_escalation";
pub const ROUTE_LABEL: &str = "tocsin_route";

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub expr: Expr,
    pub hold: Hold,
    /// The condition as written (its whitespace runs made one space), for people:
    /// the web UI's rules page shows it next to the rule's file:line.
    pub text: String,
}

/// How long a condition must hold before it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Hold {
    /// At once.
    #[default]
    Immediately,
    /// At every evaluation for this long (`for 15m`).
    For(Duration),
    /// At this many evaluations in a row (`for 3 evaluations`).
    Evaluations(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    /// The latest sample of each matching series (if not stale).
    Instant(Selector),
    /// A function over a window of each matching series.
    Window(WindowCall),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `not x`: true where x is not.
    Not(Box<Expr>),
}

impl Expr {
    pub fn longest_window(&self) -> Duration {
        match self {
            Expr::Number(_) | Expr::Instant(_) => Duration::ZERO,
            Expr::Window(w) => w.range,
            Expr::Neg(e) | Expr::Not(e) => e.longest_window(),
            Expr::Arith(_, l, r) | Expr::Compare(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.longest_window().max(r.longest_window())
            }
        }
    }

    /// The declared unit of the value this expression reports: the left side of a
    /// comparison, the first operand of `and`/`or`, a window function's metric.
    pub fn value_unit(&self, metrics: &BTreeMap<String, MetricInfo>) -> Option<DeclaredUnit> {
        let unit_of = |s: &Selector| metrics.get(&s.metric).and_then(|m| m.unit);
        match self {
            Expr::Number(_) => None,
            Expr::Instant(s) => unit_of(s),
            Expr::Window(w) => match w.function {
                WindowFn::Count | WindowFn::Absent => Some(DeclaredUnit::Count),
                WindowFn::Rate | WindowFn::Deriv => match unit_of(&w.selector) {
                    Some(DeclaredUnit::Bytes) => Some(DeclaredUnit::BytesPerSecond),
                    Some(DeclaredUnit::Count) => Some(DeclaredUnit::PerSecond),
                    _ => None,
                },
                _ => unit_of(&w.selector),
            },
            Expr::Neg(e) | Expr::Not(e) => e.value_unit(metrics),
            Expr::Compare(_, l, r) | Expr::Arith(_, l, r) => match **l {
                Expr::Number(_) => r.value_unit(metrics),
                _ => l.value_unit(metrics),
            },
            Expr::And(l, _) | Expr::Or(l, _) => l.value_unit(metrics),
        }
    }

    /// Every selector read by the expression, for indexing rules by metric name.
    pub fn selectors(&self) -> Vec<&Selector> {
        let mut out = Vec::new();
        self.visit_selectors(&mut |s| out.push(s));
        out
    }

    fn visit_selectors<'a>(&'a self, f: &mut impl FnMut(&'a Selector)) {
        match self {
            Expr::Number(_) => {}
            Expr::Instant(s) => f(s),
            Expr::Window(w) => f(&w.selector),
            Expr::Neg(e) | Expr::Not(e) => e.visit_selectors(f),
            Expr::Arith(_, l, r) | Expr::Compare(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.visit_selectors(f);
                r.visit_selectors(f);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowFn {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Rate,
    Increase,
    Deriv,
    /// Linear forecast `ahead` past now, from a least-squares fit over the window.
    Predict,
    /// True when the series has no sample in the window.
    Absent,
}

impl WindowFn {
    pub const ALL: &[(&str, WindowFn)] = &[
        ("avg", WindowFn::Avg),
        ("min", WindowFn::Min),
        ("max", WindowFn::Max),
        ("sum", WindowFn::Sum),
        ("count", WindowFn::Count),
        ("rate", WindowFn::Rate),
        ("increase", WindowFn::Increase),
        ("deriv", WindowFn::Deriv),
        ("predict", WindowFn::Predict),
        ("absent", WindowFn::Absent),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, w)| *w == self).unwrap().0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WindowCall {
    pub function: WindowFn,
    pub selector: Selector,
    pub range: Duration,
    /// `predict` only: how far ahead to forecast.
    pub ahead: Option<Duration>,
}

/// `metric{…}`: the series of one metric whose labels all matchers accept.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

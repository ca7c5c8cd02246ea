//! Evaluation: checked rules over the series store at a time `now`, with PromQL's
//! vector semantics (one result per label set; binary operators match on identical
//! label sets, the metric name aside). Pure: no I/O, no clock.

mod functions;

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::clock::Timestamp;
use crate::labels::Labels;
use crate::matcher::MatchOp;
use crate::rules::ast::ArithOp;
use crate::rules::model::{AlertRule, Expr, Selector, WindowCall, WindowFn};
use crate::series::{Metric, SeriesStore};

/// How many series ahead of the one being read a window read prefetches: enough
/// loads in flight to cover memory latency, few enough to stay in L1.
const PREFETCH_AHEAD: usize = 8;

/// What one rule's evaluation found, per label set of the series it read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleResult<'a> {
    /// Every label set the condition was decided for (series with data): whether it
    /// holds there, and the value. Borrowed from the series store where possible.
    pub decided: Vec<(Cow<'a, Labels>, bool, f64)>,
    /// For rules with `resolve when`: label sets where that condition holds.
    pub resolvable: Option<FxHashSet<Labels>>,
}

impl RuleResult<'_> {
    /// Label sets where the condition holds, with the value that made it hold.
    pub fn active(&self) -> impl Iterator<Item = (&Labels, f64)> {
        self.decided
            .iter()
            .filter(|(_, holds, _)| *holds)
            .map(|(l, _, v)| (&**l, *v))
    }
}

/// Evaluates one rule at `now`. Cost grows with the series of the metrics the rule
/// names, not with the whole store.
pub fn evaluate_rule<'a>(
    rule: &AlertRule,
    store: &'a SeriesStore,
    now: Timestamp,
) -> RuleResult<'a> {
    let cx = Context { store, now };
    let decided = cx.condition(&rule.condition.expr).entries;
    let resolvable = rule.resolve_when.as_ref().map(|c| {
        cx.condition(&c.expr)
            .entries
            .into_iter()
            .filter(|(_, holds, _)| *holds)
            .map(|(l, _, _)| l.into_owned())
            .collect()
    });
    RuleResult {
        decided,
        resolvable,
    }
}

/// Evaluates a numeric or boolean expression; exposed for tests and tools.
pub fn evaluate_expr<'a>(expr: &Expr, store: &'a SeriesStore, now: Timestamp) -> Value<'a> {
    Context { store, now }.eval(expr)
}

/// One value per label set; the labels are the store's own.
pub type Vector<'a> = Vec<(Cow<'a, Labels>, f64)>;

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Scalar(f64),
    Vector(Vector<'a>),
    Condition(Truth<'a>),
}

/// The truth of a condition per label set. A comparison knows the label sets it
/// looked at (true or false); every other label set takes `default`. That default
/// is what makes `a and not b` keep `a` where `b` has no series, as PromQL's
/// `a unless b` does.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Truth<'a> {
    pub entries: Vec<(Cow<'a, Labels>, bool, f64)>,
    pub default: bool,
}

impl Truth<'_> {
    /// An index for looking label sets up in this truth.
    fn index(&self) -> FxHashMap<&Labels, (bool, f64)> {
        self.entries
            .iter()
            .map(|(l, t, v)| (&**l, (*t, *v)))
            .collect()
    }
}

fn index<'v>(v: &'v Vector<'_>) -> FxHashMap<&'v Labels, f64> {
    v.iter().map(|(l, x)| (&**l, *x)).collect()
}

struct Context<'a> {
    store: &'a SeriesStore,
    now: Timestamp,
}

impl<'a> Context<'a> {
    fn condition(&self, e: &Expr) -> Truth<'a> {
        match self.eval(e) {
            Value::Condition(t) => t,
            // The checker only lets conditions reach here; a number is "true where
            // present" as PromQL treats a bare vector in an alert expression.
            Value::Vector(v) => Truth {
                entries: v.into_iter().map(|(l, x)| (l, true, x)).collect(),
                default: false,
            },
            Value::Scalar(_) => Truth::default(),
        }
    }

    fn eval(&self, e: &Expr) -> Value<'a> {
        match e {
            Expr::Number(n) => Value::Scalar(*n),
            Expr::Instant(sel) => Value::Vector(self.instant(sel)),
            Expr::Window(w) if w.function == WindowFn::Absent => Value::Condition(self.absent(w)),
            Expr::Window(w) => Value::Vector(self.window(w)),
            Expr::Neg(x) => match self.eval(x) {
                Value::Scalar(n) => Value::Scalar(-n),
                Value::Vector(v) => Value::Vector(v.into_iter().map(|(l, x)| (l, -x)).collect()),
                c @ Value::Condition(_) => c,
            },
            Expr::Arith(op, l, r) => arith(*op, self.eval(l), self.eval(r)),
            Expr::Compare(op, l, r) => {
                let holds = |a: f64, b: f64| op.holds(a, b);
                let entries = match (self.eval(l), self.eval(r)) {
                    (Value::Vector(a), Value::Scalar(b)) => {
                        a.into_iter().map(|(l, x)| (l, holds(x, b), x)).collect()
                    }
                    (Value::Scalar(a), Value::Vector(b)) => {
                        b.into_iter().map(|(l, x)| (l, holds(a, x), x)).collect()
                    }
                    (Value::Vector(a), Value::Vector(b)) => {
                        let b = index(&b);
                        a.iter()
                            .filter_map(|(l, x)| {
                                b.get(&**l).map(|&y| (l.clone(), holds(*x, y), *x))
                            })
                            .collect()
                    }
                    (Value::Scalar(a), Value::Scalar(b)) => {
                        return Value::Condition(Truth {
                            entries: Vec::new(),
                            default: holds(a, b),
                        });
                    }
                    _ => Vec::new(),
                };
                Value::Condition(Truth {
                    entries,
                    default: false,
                })
            }
            Expr::And(l, r) => {
                let (a, b) = (self.condition(l), self.condition(r));
                let right = b.index();
                let truth = |l: &Labels| right.get(l).map_or(b.default, |e| e.0);
                let mut entries: Vec<(Cow<'a, Labels>, bool, f64)> = a
                    .entries
                    .iter()
                    .map(|(l, t, v)| (l.clone(), *t && truth(l), *v))
                    .collect();
                if a.default {
                    let left = a.index();
                    entries.extend(
                        b.entries
                            .iter()
                            .filter(|(l, ..)| !left.contains_key(&**l))
                            .cloned(),
                    );
                }
                Value::Condition(Truth {
                    entries,
                    default: a.default && b.default,
                })
            }
            Expr::Or(l, r) => {
                let (a, b) = (self.condition(l), self.condition(r));
                let (left, right) = (a.index(), b.index());
                let mut entries = Vec::with_capacity(a.entries.len() + b.entries.len());
                for (l, t, v) in &a.entries {
                    let e = match right.get(&**l) {
                        _ if *t => (true, *v),
                        Some(&(true, w)) => (true, w),
                        _ => (b.default, *v),
                    };
                    entries.push((l.clone(), e.0, e.1));
                }
                for (l, t, w) in &b.entries {
                    if !left.contains_key(&**l) {
                        entries.push((l.clone(), *t || a.default, *w));
                    }
                }
                Value::Condition(Truth {
                    entries,
                    default: a.default || b.default,
                })
            }
            Expr::Not(x) => {
                let t = self.condition(x);
                Value::Condition(Truth {
                    entries: t.entries.into_iter().map(|(l, b, v)| (l, !b, v)).collect(),
                    default: !t.default,
                })
            }
        }
    }

    /// The positions of the series of `sel`'s metric that its matchers accept.
    fn matching(&self, sel: &Selector) -> Option<(&'a Metric, Vec<u32>)> {
        let store: &'a SeriesStore = self.store;
        let metric = store.metric(&sel.metric)?;
        let positions = metric
            .labels()
            .iter()
            .enumerate()
            .filter(|(_, labels)| sel.matchers.iter().all(|m| m.matches_labels(labels)))
            .map(|(i, _)| i as u32)
            .collect();
        Some((metric, positions))
    }

    fn instant(&self, sel: &Selector) -> Vector<'a> {
        let lookback = self.store.limits().lookback;
        let Some(metric) = self.store.metric(&sel.metric) else {
            return Vec::new();
        };
        let labels = metric.labels();
        let mut out = Vec::with_capacity(labels.len());
        if sel.matchers.is_empty() {
            // Every series: walk the two dense arrays, nothing else.
            for (i, l) in labels.iter().enumerate() {
                if let Some(x) = metric.series(i).instant(self.now, lookback) {
                    out.push((Cow::Borrowed(l), x.v));
                }
            }
            return out;
        }
        for (i, l) in labels.iter().enumerate() {
            let accepted = sel.matchers.iter().all(|m| m.matches_labels(l));
            if accepted && let Some(x) = metric.series(i).instant(self.now, lookback) {
                out.push((Cow::Borrowed(l), x.v));
            }
        }
        out
    }

    fn window(&self, w: &WindowCall) -> Vector<'a> {
        let from = self.now - w.range;
        let range_secs = w.range.as_secs_f64();
        let ahead_secs = w.ahead.map_or(0.0, |d| d.as_secs_f64());
        let Some((metric, positions)) = self.matching(&w.selector) else {
            return Vec::new();
        };
        let labels = metric.labels();
        let mut out = Vec::with_capacity(positions.len());
        for (k, &i) in positions.iter().enumerate() {
            if let Some(&ahead) = positions.get(k + PREFETCH_AHEAD) {
                metric.prefetch(ahead as usize);
            }
            let i = i as usize;
            let samples = metric.series(i).range(from, self.now);
            if let Some(v) =
                functions::apply(w.function, &samples, self.now, range_secs, ahead_secs)
            {
                out.push((Cow::Borrowed(&labels[i]), v));
            }
        }
        out
    }

    /// `absent(m, W)`: one result, labelled by the selector's equality matchers as
    /// in PromQL's `absent_over_time`: true when no matching series has a sample in
    /// the window.
    fn absent(&self, w: &WindowCall) -> Truth<'a> {
        let from = self.now - w.range;
        let present = self
            .matching(&w.selector)
            .is_some_and(|(metric, positions)| {
                positions
                    .iter()
                    .any(|&i| !metric.series(i as usize).range(from, self.now).is_empty())
            });
        let labels = Labels::from_pairs(
            w.selector
                .matchers
                .iter()
                .filter(|m| m.op() == MatchOp::Equal)
                .map(|m| (m.name(), m.value())),
        );
        let value = if present { 0.0 } else { 1.0 };
        Truth {
            entries: vec![(Cow::Owned(labels), !present, value)],
            default: false,
        }
    }
}

fn arith<'a>(op: ArithOp, l: Value<'a>, r: Value<'a>) -> Value<'a> {
    let f = |a: f64, b: f64| match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => a / b,
    };
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(f(a, b)),
        (Value::Vector(a), Value::Scalar(b)) => {
            Value::Vector(a.into_iter().map(|(l, x)| (l, f(x, b))).collect())
        }
        (Value::Scalar(a), Value::Vector(b)) => {
            Value::Vector(b.into_iter().map(|(l, x)| (l, f(a, x))).collect())
        }
        (Value::Vector(a), Value::Vector(b)) => {
            let b = index(&b);
            Value::Vector(
                a.iter()
                    .filter_map(|(l, x)| b.get(&**l).map(|&y| (l.clone(), f(*x, y))))
                    .collect(),
            )
        }
        // The checker rejects arithmetic on conditions.
        _ => Value::Vector(Vec::new()),
    }
}

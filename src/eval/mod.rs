//! Evaluation: checked rules over the series store at a time `now`, with PromQL's
//! vector semantics (one result per label set; binary operators match on identical
//! label sets, the metric name aside). Pure: no I/O, no clock.

mod functions;

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::clock::Timestamp;
use crate::labels::Labels;
use crate::rules::ast::{ArithOp, MatchOp};
use crate::rules::model::{AlertRule, Expr, Selector, WindowCall, WindowFn};
use crate::series::{Sample, SeriesStore};

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

    fn matching<'s>(
        &self,
        sel: &'s Selector,
    ) -> impl Iterator<Item = (&'a Labels, &'a crate::series::Series)> + 's
    where
        'a: 's,
    {
        let store: &'a SeriesStore = self.store;
        store
            .metric(&sel.metric)
            .into_iter()
            .flat_map(|m| m.series.iter())
            .filter(|(labels, _)| {
                sel.matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.label).unwrap_or("")))
            })
    }

    fn instant(&self, sel: &Selector) -> Vector<'a> {
        let lookback = self.store.limits().lookback;
        self.matching(sel)
            .filter_map(|(l, s)| {
                s.instant(self.now, lookback)
                    .map(|x| (Cow::Borrowed(l), x.v))
            })
            .collect()
    }

    fn window(&self, w: &WindowCall) -> Vector<'a> {
        let from = self.now - w.range;
        let range_secs = w.range.as_secs_f64();
        let ahead_secs = w.ahead.map_or(0.0, |d| d.as_secs_f64());
        let mut buf: Vec<Sample> = Vec::new();
        self.matching(&w.selector)
            .filter_map(|(l, s)| {
                buf.clear();
                buf.extend(s.range(from, self.now));
                functions::apply(w.function, &buf, self.now, range_secs, ahead_secs)
                    .map(|v| (Cow::Borrowed(l), v))
            })
            .collect()
    }

    /// `absent(m, W)`: one result, labelled by the selector's equality matchers as
    /// in PromQL's `absent_over_time`: true when no matching series has a sample in
    /// the window.
    fn absent(&self, w: &WindowCall) -> Truth<'a> {
        let from = self.now - w.range;
        let present = self
            .matching(&w.selector)
            .any(|(_, s)| s.range(from, self.now).next().is_some());
        let labels = Labels::from_pairs(
            w.selector
                .matchers
                .iter()
                .filter(|m| m.op == MatchOp::Equal)
                .map(|m| (m.label.as_str(), m.value.as_str())),
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

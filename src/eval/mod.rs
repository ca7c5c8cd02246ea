//! Evaluation: checked rules over the series store at a time `now`, with PromQL's
//! vector semantics (one result per label set; binary operators match on identical
//! label sets, the metric name aside). Pure: no I/O, no clock.

mod functions;

use std::collections::{HashMap, HashSet};

use crate::clock::Timestamp;
use crate::labels::Labels;
use crate::rules::ast::{ArithOp, MatchOp};
use crate::rules::model::{AlertRule, Expr, Selector, WindowCall, WindowFn};
use crate::series::{Sample, SeriesStore};

/// What one rule's evaluation found, per label set of the series it read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleResult {
    /// Label sets where the condition holds, with the value that made it hold.
    pub active: HashMap<Labels, f64>,
    /// For rules with `resolve when`: label sets where that condition holds.
    pub resolvable: Option<HashSet<Labels>>,
    /// Label sets the condition was decided for, true or false: series with data.
    pub observed: HashSet<Labels>,
}

/// Evaluates one rule at `now`. Cost grows with the series of the metrics the rule
/// names, not with the whole store.
pub fn evaluate_rule(rule: &AlertRule, store: &SeriesStore, now: Timestamp) -> RuleResult {
    let cx = Context { store, now };
    let truth = cx.condition(&rule.condition.expr);
    let observed = truth.entries.keys().cloned().collect();
    let active = truth.true_entries().collect();
    let resolvable = rule.resolve_when.as_ref().map(|c| {
        cx.condition(&c.expr)
            .true_entries()
            .map(|(l, _)| l)
            .collect()
    });
    RuleResult {
        active,
        resolvable,
        observed,
    }
}

/// Evaluates a numeric or boolean expression; exposed for tests and tools.
pub fn evaluate_expr(expr: &Expr, store: &SeriesStore, now: Timestamp) -> Value {
    Context { store, now }.eval(expr)
}

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(HashMap<Labels, f64>),
    Condition(Truth),
}

/// The truth of a condition per label set. A comparison knows the label sets it
/// looked at (true or false); every other label set takes `default`. That default
/// is what makes `a and not b` keep `a` where `b` has no series, as PromQL's
/// `a unless b` does.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Truth {
    pub entries: HashMap<Labels, (bool, f64)>,
    pub default: bool,
}

impl Truth {
    fn get(&self, l: &Labels) -> bool {
        self.entries.get(l).map_or(self.default, |e| e.0)
    }

    pub fn true_entries(self) -> impl Iterator<Item = (Labels, f64)> {
        self.entries
            .into_iter()
            .filter(|(_, (t, _))| *t)
            .map(|(l, (_, v))| (l, v))
    }
}

struct Context<'a> {
    store: &'a SeriesStore,
    now: Timestamp,
}

impl Context<'_> {
    fn condition(&self, e: &Expr) -> Truth {
        match self.eval(e) {
            Value::Condition(t) => t,
            // The checker only lets conditions reach here; a number is "true where
            // present" as PromQL treats a bare vector in an alert expression.
            Value::Vector(v) => Truth {
                entries: v.into_iter().map(|(l, x)| (l, (true, x))).collect(),
                default: false,
            },
            Value::Scalar(_) => Truth::default(),
        }
    }

    fn eval(&self, e: &Expr) -> Value {
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
                Value::Condition(match (self.eval(l), self.eval(r)) {
                    (Value::Vector(a), Value::Scalar(b)) => Truth {
                        entries: a.into_iter().map(|(l, x)| (l, (holds(x, b), x))).collect(),
                        default: false,
                    },
                    (Value::Scalar(a), Value::Vector(b)) => Truth {
                        entries: b.into_iter().map(|(l, x)| (l, (holds(a, x), x))).collect(),
                        default: false,
                    },
                    (Value::Vector(a), Value::Vector(b)) => Truth {
                        entries: a
                            .into_iter()
                            .filter_map(|(l, x)| b.get(&l).map(|&y| (l, (holds(x, y), x))))
                            .collect(),
                        default: false,
                    },
                    (Value::Scalar(a), Value::Scalar(b)) => Truth {
                        entries: HashMap::new(),
                        default: holds(a, b),
                    },
                    _ => Truth::default(),
                })
            }
            Expr::And(l, r) => {
                let (a, b) = (self.condition(l), self.condition(r));
                let mut entries: HashMap<Labels, (bool, f64)> = a
                    .entries
                    .iter()
                    .map(|(l, &(t, v))| (l.clone(), (t && b.get(l), v)))
                    .collect();
                if a.default {
                    for (l, &(t, v)) in &b.entries {
                        entries.entry(l.clone()).or_insert((t, v));
                    }
                }
                Value::Condition(Truth {
                    entries,
                    default: a.default && b.default,
                })
            }
            Expr::Or(l, r) => {
                let (a, b) = (self.condition(l), self.condition(r));
                let mut entries = HashMap::with_capacity(a.entries.len() + b.entries.len());
                for (l, &(t, v)) in &a.entries {
                    let right = b.entries.get(l);
                    let e = match right {
                        _ if t => (true, v),
                        Some(&(true, w)) => (true, w),
                        _ => (b.default, v),
                    };
                    entries.insert(l.clone(), e);
                }
                for (l, &(t, w)) in &b.entries {
                    entries.entry(l.clone()).or_insert((t || a.default, w));
                }
                Value::Condition(Truth {
                    entries,
                    default: a.default || b.default,
                })
            }
            Expr::Not(x) => {
                let t = self.condition(x);
                Value::Condition(Truth {
                    entries: t
                        .entries
                        .into_iter()
                        .map(|(l, (b, v))| (l, (!b, v)))
                        .collect(),
                    default: !t.default,
                })
            }
        }
    }

    fn matching<'s>(
        &'s self,
        sel: &'s Selector,
    ) -> impl Iterator<Item = (&'s Labels, &'s crate::series::Series)> + 's {
        self.store
            .metric(&sel.metric)
            .into_iter()
            .flat_map(|m| m.series.iter())
            .filter(|(labels, _)| {
                sel.matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.label).unwrap_or("")))
            })
    }

    fn instant(&self, sel: &Selector) -> HashMap<Labels, f64> {
        let lookback = self.store.limits().lookback;
        self.matching(sel)
            .filter_map(|(l, s)| s.instant(self.now, lookback).map(|x| (l.clone(), x.v)))
            .collect()
    }

    fn window(&self, w: &WindowCall) -> HashMap<Labels, f64> {
        let from = self.now - w.range;
        let range_secs = w.range.as_secs_f64();
        let ahead_secs = w.ahead.map_or(0.0, |d| d.as_secs_f64());
        let mut buf: Vec<Sample> = Vec::new();
        self.matching(&w.selector)
            .filter_map(|(l, s)| {
                buf.clear();
                buf.extend(s.range(from, self.now));
                functions::apply(w.function, &buf, self.now, range_secs, ahead_secs)
                    .map(|v| (l.clone(), v))
            })
            .collect()
    }

    /// `absent(m, W)`: one result, labelled by the selector's equality matchers as
    /// in PromQL's `absent_over_time`: true when no matching series has a sample in
    /// the window.
    fn absent(&self, w: &WindowCall) -> Truth {
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
            entries: HashMap::from([(labels, (!present, value))]),
            default: false,
        }
    }
}

fn arith(op: ArithOp, l: Value, r: Value) -> Value {
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
        (Value::Vector(a), Value::Vector(b)) => Value::Vector(
            a.into_iter()
                .filter_map(|(l, x)| b.get(&l).map(|&y| (l, f(x, y))))
                .collect(),
        ),
        // The checker rejects arithmetic on conditions.
        _ => Value::Vector(HashMap::new()),
    }
}

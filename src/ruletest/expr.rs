//! `promql_expr_test`: an expression evaluated at a time must give the expected
//! samples. The expression is in tocsin's language, evaluated by the evaluator the
//! rules use; where it is written the same in PromQL (selectors, arithmetic,
//! comparisons with a threshold) the test means the same in promtool.
//!
//! Samples carry the metric name where PromQL keeps it: a selector, and a
//! comparison that filters one (`level > 5`); arithmetic and window functions drop
//! it, as in PromQL. Values compare as promtool compares them (relative error
//! below 1e-6, NaN equal to NaN). An expression tocsin cannot read fails the group
//! with the diagnostic, and names the PromQL construct tocsin does not have.

use std::fmt::Write as _;
use std::time::Duration;

use super::{ExprTest, duration, notation};
use crate::clock::Timestamp;
use crate::eval::{Value, evaluate_expr};
use crate::labels::Labels;
use crate::rules::model::Expr;
use crate::rules::{self, CheckOptions, SourceFile};
use crate::series::SeriesStore;

/// A checked `promql_expr_test` case, ready to run.
pub(super) struct Check<'t> {
    test: &'t ExprTest,
    expr: Expr,
    at: Duration,
    /// Expected samples: labels (the metric name as `__name__`) and value.
    want: Vec<(Labels, f64)>,
}

impl<'t> Check<'t> {
    pub(super) fn new(
        test: &'t ExprTest,
        sources: &[SourceFile],
        options: &CheckOptions,
    ) -> Result<Check<'t>, String> {
        let at = duration(&test.eval_time, "eval_time")?;
        let source = SourceFile {
            path: "expr".into(),
            text: test.expr.clone(),
        };
        let expr = match rules::check_expression(sources, &source, options) {
            Ok((expr, _)) => expr,
            Err(diags) => {
                let mut all = sources.to_vec();
                all.push(source);
                let mut message = format!(
                    "promql_expr_test: `{}` is not tocsin's language:\n{}",
                    test.expr,
                    rules::diagnostic::render(&all, &diags, false)
                );
                if let Some(what) = promql_only(&test.expr) {
                    let _ = write!(
                        message,
                        "tocsin's language has no {what}; keep this test for promtool, or write the expression in tocsin's language"
                    );
                }
                return Err(message);
            }
        };
        let want = test
            .exp_samples
            .iter()
            .map(|s| {
                let (name, labels) = notation::parse_labels(&s.labels)?;
                Ok((with_name(labels, name.as_deref()), s.value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Check {
            test,
            expr,
            at,
            want,
        })
    }

    /// Evaluates the expression at its time; a failure report when it differs.
    pub(super) fn run(&self, series: &SeriesStore) -> Option<String> {
        let now = Timestamp::from_secs(0) + self.at;
        let name = kept_name(&self.expr);
        let mut got: Vec<(Labels, f64)> = match evaluate_expr(&self.expr, series, now) {
            Value::Scalar(v) => vec![(Labels::new(), v)],
            Value::Vector(v) => v
                .into_iter()
                .map(|(l, x)| (with_name(l.into_owned(), name), x))
                .collect(),
            Value::Condition(t) => t
                .entries
                .into_iter()
                .filter(|(_, holds, _)| *holds)
                .map(|(l, _, x)| (with_name(l.into_owned(), name), x))
                .collect(),
        };
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want = self.want.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.0 == w.0 && almost_equal(g.1, w.1));
        if same {
            return None;
        }
        let mut s = format!(
            "expr: {:?}, time: {},\n",
            self.test.expr,
            humantime::format_duration(self.at)
        );
        for (title, samples) in [("exp", &want), ("got", &got)] {
            let _ = writeln!(s, "    {title}: {}", samples_text(samples));
        }
        Some(s)
    }
}

/// The metric name a result keeps, as PromQL keeps it: a selector's, through the
/// comparisons that filter it; arithmetic and functions drop it.
fn kept_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Instant(s) => Some(&s.metric),
        Expr::Compare(_, l, r) => match **l {
            Expr::Number(_) => kept_name(r),
            _ => kept_name(l),
        },
        Expr::And(l, _) => kept_name(l),
        Expr::Or(l, r) => kept_name(l).filter(|n| kept_name(r) == Some(n)),
        Expr::Not(x) => kept_name(x),
        Expr::Number(_) | Expr::Window(_) | Expr::Neg(_) | Expr::Arith(..) => None,
    }
}

fn with_name(labels: Labels, name: Option<&str>) -> Labels {
    match name {
        None => labels,
        Some(n) => Labels::from_pairs(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("__name__".to_string(), n.to_string())]),
        ),
    }
}

/// `[{__name__="level", tank="t1"} 2, …]`, as promtool lists samples.
fn samples_text(samples: &[(Labels, f64)]) -> String {
    let items: Vec<String> = samples
        .iter()
        .map(|(l, v)| {
            let pairs: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}} {v}", pairs.join(", "))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// promtool's comparison of sample values (cmd/promtool/unittest.go `almostEqual`).
fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 0.000001;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < EPSILON
}

/// The PromQL construct in `expr` that tocsin's language does not have, if one is
/// recognisable: said after the parser's own message.
fn promql_only(expr: &str) -> Option<&'static str> {
    let words: Vec<&str> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if has("by") || has("without") {
        Some("aggregation across series (`sum by (…)`)")
    } else if has("offset") || expr.contains('@') {
        Some("`offset` or `@` (time shifts)")
    } else if has("bool") {
        Some("`bool` comparisons")
    } else if has("on") || has("ignoring") || has("group_left") || has("group_right") {
        Some("vector matching (`on`, `ignoring`, `group_left`)")
    } else if has("unless") {
        Some("`unless` (write `a and not b`)")
    } else if expr.contains('[') {
        Some("range selectors (`x[5m]`)")
    } else if [
        "topk",
        "bottomk",
        "quantile",
        "histogram_quantile",
        "label_replace",
        "time",
    ]
    .iter()
    .any(|f| has(f))
    {
        Some("this PromQL function")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_as_promtool_compares_them() {
        assert!(almost_equal(f64::NAN, f64::NAN));
        assert!(almost_equal(1.0, 1.0 + 1e-9));
        assert!(!almost_equal(1.0, 1.001));
        assert!(!almost_equal(0.0, 1e-9));
    }

    #[test]
    fn promql_constructs_are_named() {
        assert_eq!(
            promql_only("sum by (job) (x)"),
            Some("aggregation across series (`sum by (…)`)")
        );
        assert_eq!(
            promql_only("x offset 5m"),
            Some("`offset` or `@` (time shifts)")
        );
        assert_eq!(promql_only("x * 2"), None);
    }
}

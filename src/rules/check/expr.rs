//! Expressions: types (number or condition), units as dimensions, selectors and
//! their matchers, window functions and their arguments.

use super::*;

impl Checker<'_> {
    pub(super) fn expr(&mut self, e: &ast::Expr) -> Option<(Expr, Ty)> {
        match &e.kind {
            ExprKind::Paren(inner) => self.expr(inner),
            ExprKind::Quantity(q) => {
                let (value, dim) = self.literal(q)?;
                let units = dim.map_or(Units::Scalar, Units::Known);
                Some((Expr::Number(value), Ty::Num(units)))
            }
            ExprKind::Selector(s) => {
                let sel = self.selector(s)?;
                let units = match self.metrics.get(&sel.metric) {
                    Some((MetricInfo { unit: Some(u), .. }, _)) => Units::Known(u.dim()),
                    _ => Units::Unknown,
                };
                Some((Expr::Instant(sel), Ty::Num(units)))
            }
            ExprKind::Call { function, args } => self.call(e, function, args),
            ExprKind::Neg(inner) => {
                let (x, ty) = self.number(inner, "-");
                Some((Expr::Neg(Box::new(x?)), Ty::Num(ty)))
            }
            ExprKind::Arith(op, l, r) => {
                let (lx, lu) = self.number(l, op.symbol());
                let (rx, ru) = self.number(r, op.symbol());
                let (lx, lu, rx, ru) = (lx?, lu, rx?, ru);
                let units = match op {
                    ast::ArithOp::Add | ast::ArithOp::Sub => {
                        self.unify(e, lu, ru, "add or subtract")?
                    }
                    ast::ArithOp::Mul => combine(lu, ru, Dim::times),
                    ast::ArithOp::Div => combine(lu, ru, Dim::per),
                };
                Some((Expr::Arith(*op, Box::new(lx), Box::new(rx)), Ty::Num(units)))
            }
            ExprKind::Compare {
                op,
                lhs,
                rhs,
                window,
            } => {
                let lhs_checked = match window {
                    Some(w) => self.accumulate(lhs, w),
                    None => {
                        let (x, u) = self.number(lhs, op.symbol());
                        x.map(|x| (x, u))
                    }
                };
                let (rx, ru) = self.number(rhs, op.symbol());
                let ((lx, lu), rx) = (lhs_checked?, rx?);
                self.unify(e, lu, ru, "compare")?;
                self.check_ratio_threshold(lhs, rhs)?;
                Some((Expr::Compare(*op, Box::new(lx), Box::new(rx)), Ty::Bool))
            }
            ExprKind::And(l, r) | ExprKind::Or(l, r) => {
                let word = if matches!(e.kind, ExprKind::And(..)) {
                    "and"
                } else {
                    "or"
                };
                let lx = self.boolean(l, word);
                let rx = self.boolean(r, word);
                let (lx, rx) = (Box::new(lx?), Box::new(rx?));
                let x = if word == "and" {
                    Expr::And(lx, rx)
                } else {
                    Expr::Or(lx, rx)
                };
                Some((x, Ty::Bool))
            }
            ExprKind::Not(inner) => {
                Some((Expr::Not(Box::new(self.boolean(inner, "not")?)), Ty::Bool))
            }
        }
    }

    fn number(&mut self, e: &ast::Expr, context: &str) -> (Option<Expr>, Units) {
        match self.expr(e) {
            Some((x, Ty::Num(u))) => (Some(x), u),
            Some((_, Ty::Bool)) => {
                self.error(
                    Diagnostic::error(
                        e.span,
                        format!("`{context}` needs a number, but this is a condition"),
                    )
                    .with_label("true or false, not a number"),
                );
                (None, Units::Unknown)
            }
            None => (None, Units::Unknown),
        }
    }

    fn boolean(&mut self, e: &ast::Expr, word: &str) -> Option<Expr> {
        match self.expr(e)? {
            (x, Ty::Bool) => Some(x),
            (_, Ty::Num(_)) => {
                self.error(
                    Diagnostic::error(
                        e.span,
                        format!("`{word}` joins conditions, but this is a number"),
                    )
                    .with_label("a number, not a condition")
                    .with_hint("compare it with a threshold, e.g. `queue_length > 100`"),
                );
                None
            }
        }
    }

    fn unify(&mut self, e: &ast::Expr, l: Units, r: Units, verb: &str) -> Option<Units> {
        match (l, r) {
            (Units::Known(a), Units::Known(b)) if a != b => {
                self.error(
                    Diagnostic::error(e.span, format!("cannot {verb} {a} and {b}"))
                        .with_label("units do not match")
                        .with_hint("both sides must measure the same thing: durations with durations, bytes with bytes"),
                );
                None
            }
            (Units::Known(a), _) | (_, Units::Known(a)) => Some(Units::Known(a)),
            (Units::Unknown, _) | (_, Units::Unknown) => Some(Units::Unknown),
            _ => Some(Units::Scalar),
        }
    }

    /// `cpu_usage > 90` against a metric declared as a ratio can never fire: say so.
    fn check_ratio_threshold(&mut self, lhs: &ast::Expr, rhs: &ast::Expr) -> Option<()> {
        let (ExprKind::Selector(s), ExprKind::Quantity(q)) = (&lhs.kind, &rhs.kind) else {
            return Some(());
        };
        let is_ratio = matches!(
            self.metrics.get(&s.metric.node),
            Some((
                MetricInfo {
                    unit: Some(DeclaredUnit::Ratio),
                    ..
                },
                _
            ))
        );
        let number: f64 = q.number.parse().unwrap_or(0.0);
        if is_ratio && q.unit.is_none() && number > 1.0 {
            self.error(
                Diagnostic::error(
                    q.span,
                    format!(
                        "`{}` is a ratio between 0 and 1, so it is never compared with {number}",
                        s.metric.node
                    ),
                )
                .with_label("above 1")
                .with_hint(format!("did you mean `{}%`?", q.number)),
            );
            return None;
        }
        Some(())
    }

    /// `x > N in W`: the amount of `x` accumulated over W — `increase` for counters,
    /// `sum` for events. Gauges do not accumulate.
    fn accumulate(&mut self, lhs: &ast::Expr, w: &ast::Quantity) -> Option<(Expr, Units)> {
        let ExprKind::Selector(s) = &lhs.kind else {
            self.error(
                Diagnostic::error(lhs.span, "`in` counts a metric over a window, so its left side must be a metric")
                    .with_label("not a metric")
                    .with_hint("e.g. `auth_failures > 20 in 5m`; for other expressions use a window function such as `sum(x, 5m)`"),
            );
            return None;
        };
        let range = self.window(w, "in");
        let selector = self.selector(s);
        let info = self.metrics.get(&s.metric.node).map(|(i, _)| i.clone());
        let function = match info.as_ref().map(|i| i.kind) {
            Some(MetricKind::Gauge) => {
                let decl = self.metrics[&s.metric.node].1;
                self.error(
                    Diagnostic::error(
                        s.metric.span,
                        format!(
                            "`in {w}` counts what accumulates, but `{}` is declared a gauge",
                            s.metric.node
                        ),
                    )
                    .with_label("a gauge")
                    .with_related(decl.0, decl.1, "declared here")
                    .with_hint(format!(
                        "for a gauge, bound it over the window instead: `max({}, {w}) > ...`",
                        s.metric.node
                    )),
                );
                return None;
            }
            Some(MetricKind::Event) => WindowFn::Sum,
            // A counter, or an undeclared metric read as Prometheus would: a counter.
            _ => WindowFn::Increase,
        };
        let units = match info.and_then(|i| i.unit) {
            Some(u) => Units::Known(u.dim()),
            None => Units::Unknown,
        };
        Some((
            Expr::Window(WindowCall {
                function,
                selector: selector?,
                range: range?,
                ahead: None,
            }),
            units,
        ))
    }

    fn selector(&mut self, s: &ast::Selector) -> Option<Selector> {
        let mut ok = self.declared_or_distinct(&s.metric);
        let matchers = s
            .matchers
            .iter()
            .filter_map(|m| {
                let (label, value) = (&m.label.node, &m.value.node);
                let made = if m.op.is_regex() {
                    let key = (label.clone(), m.op, value.clone());
                    match self.regexes.get(&key) {
                        Some(made) => Ok(made.clone()),
                        None => Matcher::new(label.clone(), m.op, value.clone()).inspect(|made| {
                            self.regexes.insert(key, made.clone());
                        }),
                    }
                } else {
                    Matcher::new(label.clone(), m.op, value.clone())
                };
                match made {
                    Ok(made) => Some(made),
                    Err(e) => {
                        ok = false;
                        let reason = match e {
                            MatcherError::Regex { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        self.error(
                            Diagnostic::error(
                                m.value.span,
                                format!("invalid regular expression for label `{label}`"),
                            )
                            .with_label(reason),
                        );
                        None
                    }
                }
            })
            .collect();
        ok.then(|| Selector {
            metric: s.metric.node.clone(),
            matchers,
        })
    }

    fn call(
        &mut self,
        e: &ast::Expr,
        function: &Spanned<String>,
        args: &[ast::Expr],
    ) -> Option<(Expr, Ty)> {
        let Some(&(_, f)) = WindowFn::ALL.iter().find(|(n, _)| *n == function.node) else {
            let names = WindowFn::ALL.iter().map(|(n, _)| *n);
            self.error(unknown(function, "function", None).with_hint(hint_or_list(
                &function.node,
                names,
                "the functions are",
            )));
            return None;
        };
        let usage = match f {
            WindowFn::Predict => "predict(metric, window, ahead)",
            WindowFn::Absent => "absent(metric, window)",
            _ => "FUNCTION(metric, window)",
        };
        let usage = usage.replace("FUNCTION", f.name());
        let arity = if f == WindowFn::Predict { 3 } else { 2 };
        if args.len() != arity {
            self.error(
                Diagnostic::error(
                    e.span,
                    format!(
                        "`{}` takes {arity} arguments, found {}",
                        f.name(),
                        args.len()
                    ),
                )
                .with_label("wrong number of arguments")
                .with_hint(format!("write it as `{usage}`")),
            );
            return None;
        }
        let ExprKind::Selector(s) = &args[0].kind else {
            self.error(
                Diagnostic::error(
                    args[0].span,
                    format!("the first argument of `{}` must be a metric", f.name()),
                )
                .with_label("not a metric")
                .with_hint(format!("write it as `{usage}`")),
            );
            return None;
        };
        let selector = self.selector(s);
        let duration_arg = |cx: &mut Self, a: &ast::Expr, what: &str| match &a.kind {
            ExprKind::Quantity(q) => cx.window(q, what),
            _ => {
                cx.error(
                    Diagnostic::error(
                        a.span,
                        format!(
                            "the {what} of `{}` must be a duration such as `1h`",
                            f.name()
                        ),
                    )
                    .with_label("not a duration")
                    .with_hint(format!("write it as `{usage}`")),
                );
                None
            }
        };
        let range = duration_arg(self, &args[1], "window");
        let ahead = if f == WindowFn::Predict {
            Some(duration_arg(self, &args[2], "forecast horizon")?)
        } else {
            None
        };
        let info = self
            .metrics
            .get(&s.metric.node)
            .map(|(i, d)| (i.clone(), *d));
        if let (
            WindowFn::Rate | WindowFn::Increase,
            Some((
                MetricInfo {
                    kind: MetricKind::Gauge,
                    ..
                },
                decl,
            )),
        ) = (f, &info)
        {
            self.error(
                Diagnostic::error(
                    function.span,
                    format!(
                        "`{}` is for counters, but `{}` is declared a gauge",
                        f.name(),
                        s.metric.node
                    ),
                )
                .with_label("needs a counter")
                .with_related(decl.0, decl.1, "declared here")
                .with_hint(format!(
                    "for a gauge, `deriv({}, ...)` gives the change per second",
                    s.metric.node
                )),
            );
            return None;
        }
        let units = match info.and_then(|(i, _)| i.unit) {
            Some(u) => Units::Known(u.dim()),
            None => Units::Unknown,
        };
        let ty = match f {
            WindowFn::Absent => Ty::Bool,
            WindowFn::Count => Ty::Num(Units::Known(Dim::NONE)),
            WindowFn::Rate | WindowFn::Deriv => {
                Ty::Num(combine(units, Units::Known(Dim::TIME), Dim::per))
            }
            _ => Ty::Num(units),
        };
        Some((
            Expr::Window(WindowCall {
                function: f,
                selector: selector?,
                range: range?,
                ahead,
            }),
            ty,
        ))
    }
}

impl Checker<'_> {
    /// An undeclared metric one or two keystrokes away from a declared one is a typo:
    /// `sucess_rate < 90%` next to `metric success_rate` could never fire. A metric
    /// that is truly another one is declared to say so.
    fn declared_or_distinct(&mut self, metric: &Spanned<String>) -> bool {
        if self.metrics.contains_key(&metric.node) {
            return true;
        }
        let name = metric.node.as_str();
        // Short names are closer to each other by chance: one edit for them.
        let allowed = if name.chars().count() <= 8 { 1 } else { 2 };
        let close = self
            .metrics
            .iter()
            .map(|(declared, (_, at))| (strsim::osa_distance(name, declared), declared, *at))
            .filter(|(distance, _, _)| *distance <= allowed)
            .min_by_key(|(distance, declared, _)| (*distance, declared.as_str()));
        let Some((_, declared, at)) = close else {
            return true;
        };
        self.error(
            Diagnostic::error(metric.span, format!("unknown metric `{name}`"))
                .with_label("not declared")
                .with_related(at.0, at.1, format!("`{declared}` is declared here"))
                .with_hint(format!(
                    "did you mean `{declared}`? If `{name}` is another metric, declare it: `metric {name} gauge`"
                )),
        );
        false
    }
}

fn combine(l: Units, r: Units, op: fn(Dim, Dim) -> Dim) -> Units {
    match (l, r) {
        (Units::Unknown, _) | (_, Units::Unknown) => Units::Unknown,
        (Units::Known(a), Units::Known(b)) => Units::Known(op(a, b)),
        (Units::Known(a), Units::Scalar) => Units::Known(a),
        (Units::Scalar, Units::Known(b)) => Units::Known(op(Dim::NONE, b)),
        (Units::Scalar, Units::Scalar) => Units::Scalar,
    }
}

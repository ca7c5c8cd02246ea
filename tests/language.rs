//! The language at the level of meaning: every condition of the seed parses verbatim
//! and checks to the thresholds, windows and holds a reader would expect, in base units.

use std::time::Duration;

use tocsin::rules::ast::CompareOp;
use tocsin::rules::model::{Expr, Hold, RuleSet, WindowFn};
use tocsin::rules::{CheckOptions, SourceFile, check_sources, read_sources};

const DECLARATIONS: &str = "
metric chrome_startup_failures counter count
metric auth_failures counter count
metric login_events event count
metric queue_length gauge count
";

fn check(body: &str) -> RuleSet {
    let text = format!("{DECLARATIONS}\n{body}");
    let sources = [SourceFile {
        path: "t.rules".into(),
        text,
    }];
    match check_sources(&sources, &CheckOptions::default()) {
        Ok(set) => set,
        Err(d) => panic!("{}", tocsin::rules::diagnostic::render(&sources, &d, false)),
    }
}

/// Checks one condition and returns its expression and hold.
fn condition(cond: &str) -> (Expr, Hold) {
    let set = check(&format!(
        "alert \"t\" {{\n  when {cond}\n  severity info\n}}\n"
    ));
    let c = set.alerts[0].condition.clone();
    (c.expr, c.hold)
}

/// `metric OP threshold` with the threshold in base units.
fn threshold(e: &Expr) -> (CompareOp, f64) {
    match e {
        Expr::Compare(op, _, r) => match **r {
            Expr::Number(n) => (*op, n),
            ref other => panic!("rhs {other:?}"),
        },
        other => panic!("not a comparison: {other:?}"),
    }
}

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

#[test]
fn seed_conditions_parse_verbatim_into_base_units() {
    let cases: &[(&str, CompareOp, f64, Hold)] = &[
        (
            "success_rate < 90% for 15m",
            CompareOp::Lt,
            0.9,
            Hold::For(mins(15)),
        ),
        (
            "ai_response_time > 30s for 10m",
            CompareOp::Gt,
            30.0,
            Hold::For(mins(10)),
        ),
        (
            "cache_hit_rate < 20% for 30m",
            CompareOp::Lt,
            0.2,
            Hold::For(mins(30)),
        ),
        (
            "cpu_usage > 90% for 15m",
            CompareOp::Gt,
            0.9,
            Hold::For(mins(15)),
        ),
        (
            "memory_growth_rate > 10MB/hour for 6h",
            CompareOp::Gt,
            10e6 / 3600.0,
            Hold::For(mins(360)),
        ),
        (
            "profile_lock_contention > 10% for 30m",
            CompareOp::Gt,
            0.1,
            Hold::For(mins(30)),
        ),
        (
            "unknown_api_calls > 0",
            CompareOp::Gt,
            0.0,
            Hold::Immediately,
        ),
        ("disk_space < 5%", CompareOp::Lt, 0.05, Hold::Immediately),
        (
            "memory_usage > 95% for 10m",
            CompareOp::Gt,
            0.95,
            Hold::For(mins(10)),
        ),
        (
            "queue_length > 100",
            CompareOp::Gt,
            100.0,
            Hold::Immediately,
        ),
        (
            "response_time > 20s for 1h",
            CompareOp::Gt,
            20.0,
            Hold::For(mins(60)),
        ),
        (
            "memory_usage > 80% for 12h",
            CompareOp::Gt,
            0.8,
            Hold::For(mins(720)),
        ),
    ];
    for (cond, op, value, hold) in cases {
        let (expr, got_hold) = condition(cond);
        let (got_op, got) = threshold(&expr);
        assert_eq!((got_op, got_hold), (*op, *hold), "{cond}");
        assert!((got - value).abs() < 1e-9, "{cond}: {got} != {value}");
    }
}

#[test]
fn in_window_accumulates_counters_and_sums_events() {
    for (cond, function, window) in [
        (
            "chrome_startup_failures > 5 in 1h",
            WindowFn::Increase,
            mins(60),
        ),
        ("auth_failures > 20 in 5m", WindowFn::Increase, mins(5)),
        ("login_events > 20 in 5m", WindowFn::Sum, mins(5)),
        // Undeclared metrics are read as Prometheus would: counters.
        ("undeclared_total > 1 in 10m", WindowFn::Increase, mins(10)),
    ] {
        let (expr, _) = condition(cond);
        let Expr::Compare(_, lhs, _) = expr else {
            panic!("{cond}")
        };
        let Expr::Window(w) = *lhs else {
            panic!("{cond}: {lhs:?}")
        };
        assert_eq!((w.function, w.range), (function, window), "{cond}");
    }
}

#[test]
fn richer_conditions_check() {
    for cond in [
        "cpu_usage{host=\"bot-1\", env!=\"dev\", role=~\"poster|replier\", zone!~\"test.*\"} > 90%",
        "errors > 3 * avg(errors, 1d)",
        "(cpu_usage > 90% or memory_usage > 95%) and not disk_space < 5%",
        "predict(disk_space, 6h, 24h) < 5%",
        "absent(heartbeat, 10m)",
        "rate(auth_failures, 5m) > 0.5 and deriv(memory_usage, 1h) > 0",
        "max(queue_length, 10m) - min(queue_length, 10m) >= 50",
        "sum(login_events, 1h) / count(login_events, 1h) > 2",
        "-deriv(disk_space, 1h) > 1%",
        "synthetic_check_success == 0 for 3 evaluations",
    ] {
        condition(cond);
    }
}

#[test]
fn hysteresis_keep_firing_escalation_and_route_are_kept() {
    let set = check(
        r#"alert "CPU使用率異常" {
  when cpu_usage > 90% for 15m
  resolve when cpu_usage < 80% for 5m
  keep firing for 10m
  severity critical
  escalate "default"
  route "ops"
}
"#,
    );
    let a = &set.alerts[0];
    assert_eq!(a.name, "CPU使用率異常");
    let resolve = a.resolve_when.as_ref().expect("resolve when");
    assert_eq!(resolve.hold, Hold::For(mins(5)));
    assert_eq!(threshold(&resolve.expr), (CompareOp::Lt, 0.8));
    assert_eq!(a.keep_firing_for, Some(mins(10)));
    assert_eq!(a.escalation.as_deref(), Some("default"));
    assert_eq!(a.route.as_deref(), Some("ops"));
    assert_eq!(a.origin.line, 7);
}

#[test]
fn shipped_rules_cover_the_seed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = read_sources(&[root.join("rules")]).unwrap();
    let set = check_sources(&sources, &CheckOptions::default()).expect("shipped rules check");
    let names: Vec<&str> = set.alerts.iter().map(|a| a.name.as_str()).collect();
    for expected in [
        "投稿成功率低下",
        "AI応答時間異常",
        "キャッシュヒット率低下",
        "CPU使用率異常",
        "メモリリーク検出",
        "Chrome起動失敗",
        "プロファイル競合多発",
        "認証失敗急増",
        "異常API呼び出し",
        "メモリ使用率危険",
        "ディスク容量枯渇",
        "CPU使用率高",
        "メモリ使用率高",
        "ディスク容量不足予告",
        "CPU増強検討",
        "メモリ増強検討",
        "処理能力向上検討",
        "並列処理拡張検討",
        "処理キュー分散検討",
        "ネットワーク拡張検討",
    ] {
        assert!(names.contains(&expected), "missing {expected}");
    }
    // The seed's impact and action texts travel with the rules.
    let success = set
        .alerts
        .iter()
        .find(|a| a.name == "投稿成功率低下")
        .unwrap();
    let impact = success.annotations["impact"].render("", "", "", &Default::default());
    assert_eq!(impact, "ビジネス目標への直接影響");
}

#[test]
fn a_syntax_error_in_one_file_and_a_check_error_in_another_are_both_reported() {
    let sources = [
        SourceFile {
            path: "a.rules".into(),
            text: "alert \"a\" {\n  when x >\n}\n".into(),
        },
        SourceFile {
            path: "b.rules".into(),
            text: "alert \"b\" {\n  when x > 1\n  severity bad\n}\n".into(),
        },
    ];
    let diags = check_sources(&sources, &CheckOptions::default()).unwrap_err();
    let files: Vec<usize> = diags.iter().map(|d| d.file).collect();
    assert_eq!(files, [0, 1]);
}

#[test]
fn a_metric_without_a_unit_can_be_followed_by_more_items() {
    let set = check(
        "metric a_total counter\nmetric b gauge\nalert \"x\" {\n  when b > 1\n  severity info\n}\n",
    );
    assert_eq!(set.metrics["a_total"].unit, None);
    assert_eq!(set.alerts.len(), 1);
}

/// Inputs the fuzzer found overflowing the stack or a `Duration` (kept as seeds in
/// fuzz/seeds/parse_check/crash-*.rules): each is now a plain error.
#[test]
fn pathological_inputs_are_errors_not_crashes() {
    let cases = [
        (
            format!(
                "alert \"x\" {{ when {}a > 1 severity info }}",
                "-".repeat(4000)
            ),
            "condition is too complex",
        ),
        (
            format!(
                "alert \"x\" {{ when {}a > 1 severity info }}",
                "not ".repeat(4000)
            ),
            "condition is too complex",
        ),
        (
            format!(
                "alert \"x\" {{ when {}a > 1{} severity info }}",
                "(".repeat(3000),
                ")".repeat(3000)
            ),
            "expression nested too deeply",
        ),
        (
            "alert \"x\" { when avg(a, 99999999999999w) > 1 severity info }".to_string(),
            "too long",
        ),
        (
            "alert \"x\" { when a > 1 for 99999999999999w severity info }".to_string(),
            "too long",
        ),
    ];
    for (text, want) in cases {
        let sources = [SourceFile {
            path: "x.rules".into(),
            text,
        }];
        let diags = check_sources(&sources, &CheckOptions::default()).unwrap_err();
        assert!(diags[0].message.contains(want), "{:?}", diags[0].message);
    }
}

/// Just inside the limits, everything that walks expressions (check, fmt, export)
/// still fits a test thread's stack in a debug build.
#[test]
fn the_deepest_accepted_condition_is_handled_everywhere() {
    let deepest = [
        format!(
            "alert \"x\" {{\n  when {}a > 1\n  severity info\n}}\n",
            "not ".repeat(185)
        ),
        format!(
            "alert \"x\" {{\n  when {}a > 1\n  severity info\n}}\n",
            "-".repeat(185)
        ),
        format!(
            "alert \"x\" {{\n  when {}a{} > 1\n  severity info\n}}\n",
            "(".repeat(32),
            ")".repeat(32)
        ),
        format!(
            "alert \"x\" {{\n  when a{} > 1\n  severity info\n}}\n",
            " + a".repeat(60)
        ),
    ];
    for text in deepest {
        let sources = [SourceFile {
            path: "x.rules".into(),
            text: text.clone(),
        }];
        let set = check_sources(&sources, &CheckOptions::default()).expect("within the limits");
        let _ = tocsin::export::prometheus::to_prometheus(&set);
        let formatted = tocsin::rules::fmt::format_source(&text).unwrap();
        assert_eq!(
            tocsin::rules::fmt::format_source(&formatted).unwrap(),
            formatted
        );
    }
}

/// Scientific notation is a number (`> 1e7`, `> 10e6`), and a duration in parts reads
/// as Prometheus reads it (`1h30m`), in rules as everywhere else.
#[test]
fn scientific_notation_and_durations_in_parts() {
    for (cond, want, hold) in [
        ("queue_length > 1e7", 1e7, Hold::Immediately),
        ("queue_length > 10e6", 1e7, Hold::Immediately),
        ("queue_length > 2.5E-3", 0.0025, Hold::Immediately),
        ("queue_length > 1e3 for 1h30m", 1000.0, Hold::For(mins(90))),
        ("queue_length > 1 for 1d2h", 1.0, Hold::For(mins(26 * 60))),
    ] {
        let (expr, got_hold) = condition(cond);
        assert_eq!(threshold(&expr), (CompareOp::Gt, want), "{cond}");
        assert_eq!(got_hold, hold, "{cond}");
    }
}

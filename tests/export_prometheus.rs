//! `tocsin export prometheus`: the exact PromQL of each construct, the constructs
//! PromQL cannot express, and the real promtool reading what we write (CI installs
//! promtool via `.ci/run`; these tests fail rather than skip without it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::Value;
use tocsin::export::prometheus::{ExportError, to_prometheus};
use tocsin::rules::model::RuleSet;
use tocsin::rules::template::{Field, Segment, Template};
use tocsin::rules::{CheckOptions, SourceFile, check_sources, read_sources};

mod common;
use common::promtool;

const METRICS: &str = "\
metric cpu_usage gauge ratio
metric memory_usage gauge ratio
metric memory_growth_rate gauge bytes/second
metric disk_space gauge ratio
metric response_time gauge seconds
metric queue_length gauge count
metric auth_failures counter count
metric sum gauge count
";

/// Checks in-memory files (`METRICS` is prepended to the first); panics on a
/// checker error, since every fixture here is meant to be valid.
fn check(files: &[(&str, &str)]) -> RuleSet {
    let sources: Vec<SourceFile> = files
        .iter()
        .enumerate()
        .map(|(i, (path, text))| SourceFile {
            path: PathBuf::from(path),
            text: if i == 0 {
                format!("{METRICS}{text}")
            } else {
                text.to_string()
            },
        })
        .collect();
    check_sources(&sources, &CheckOptions::default())
        .unwrap_or_else(|d| panic!("fixture does not check: {d:#?}"))
}

fn export(text: &str) -> Result<String, Vec<ExportError>> {
    to_prometheus(&check(&[("fixture.rules", text)]))
}

fn export_ok(text: &str) -> String {
    export(text).unwrap_or_else(|e| panic!("export failed: {e:#?}"))
}

/// Every rule of every group of an export.
fn rules(yaml: &str) -> Vec<Value> {
    let doc: Value = serde_yaml_ng::from_str(yaml).expect("export is YAML");
    doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .collect()
}

fn only_rule(text: &str) -> Value {
    let mut rules = rules(&export_ok(text));
    assert_eq!(rules.len(), 1);
    rules.remove(0)
}

/// The PromQL for one `when` condition.
fn expr(condition: &str) -> String {
    let rule = only_rule(&format!("alert \"t\" {{ when {condition} severity info }}"));
    rule["expr"].as_str().expect("expr").to_string()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).map(|x| x.as_str().expect("a string"))
}

fn assert_success(o: &Output, yaml: &str) {
    assert!(
        o.status.success(),
        "promtool rejected the export:\n{}{}\n{yaml}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("export_prometheus-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_promtool_accepts(yaml: &str, test: &str) {
    let dir = scratch(test);
    std::fs::write(dir.join("rules.yml"), yaml).unwrap();
    assert_success(&promtool(&dir, &["check", "rules", "rules.yml"]), yaml);
}

// ---------------------------------------------------------------------------------
// Expressions

#[test]
fn thresholds_are_base_unit_numbers() {
    assert_eq!(expr("cpu_usage > 90%"), "cpu_usage > 0.9");
    assert_eq!(expr("response_time > 30s"), "response_time > 30");
    assert_eq!(
        expr("memory_growth_rate > 10MB/hour"),
        "memory_growth_rate > 2777.777777777778"
    );
    assert_eq!(expr("90% < cpu_usage"), "0.9 < cpu_usage");
    assert_eq!(expr("-cpu_usage < -50%"), "-cpu_usage < -0.5");
}

#[test]
fn selectors_keep_matchers_and_escape_strings() {
    assert_eq!(
        expr(r#"cpu_usage{host=~"bot\\.[0-9]+", env!~"dev|test", dc="東京", q!="a\"b\\c"} > 50%"#),
        r#"cpu_usage{host=~"bot\\.[0-9]+", env!~"dev|test", dc="東京", q!="a\"b\\c"} > 0.5"#
    );
    // `sum` is a PromQL aggregation, so the metric is selected by `__name__`.
    assert_eq!(expr(r#"sum{x="1"} > 1"#), r#"{__name__="sum", x="1"} > 1"#);
    assert_eq!(expr("sum > 1"), r#"{__name__="sum"} > 1"#);
}

#[test]
fn window_functions() {
    let cases = [
        (
            "avg(cpu_usage, 1h) > 50%",
            "avg_over_time(cpu_usage[1h]) > 0.5",
        ),
        (
            "min(cpu_usage, 30m) > 50%",
            "min_over_time(cpu_usage[30m]) > 0.5",
        ),
        (
            "max(cpu_usage, 1d) > 50%",
            "max_over_time(cpu_usage[1d]) > 0.5",
        ),
        (
            "sum(queue_length, 90s) > 10",
            "sum_over_time(queue_length[90s]) > 10",
        ),
        (
            "count(queue_length, 15m) < 3",
            "count_over_time(queue_length[15m]) < 3",
        ),
        ("rate(auth_failures, 5m) > 1", "rate(auth_failures[5m]) > 1"),
        (
            "increase(auth_failures, 2d) > 100",
            "increase(auth_failures[2d]) > 100",
        ),
        (
            "deriv(queue_length, 10m) > 0",
            "deriv(queue_length[10m]) > 0",
        ),
        (
            "predict(disk_space, 6h, 24h) < 5%",
            "predict_linear(disk_space[6h], 86400) < 0.05",
        ),
        (
            r#"absent(cpu_usage{host="a"}, 10m)"#,
            r#"absent_over_time(cpu_usage{host="a"}[10m])"#,
        ),
        // `in W` on a counter is its increase over W.
        (
            "auth_failures > 20 in 5m",
            "increase(auth_failures[5m]) > 20",
        ),
        // Sub-second windows are milliseconds.
        (
            "avg(cpu_usage, 1500ms) > 50%",
            "avg_over_time(cpu_usage[1500ms]) > 0.5",
        ),
    ];
    for (condition, promql) in cases {
        assert_eq!(expr(condition), promql, "for `{condition}`");
    }
}

#[test]
fn arithmetic_keeps_its_grouping() {
    let cases = [
        (
            "(cpu_usage + memory_usage) / 2 > 50%",
            "(cpu_usage + memory_usage) / 2 > 0.5",
        ),
        (
            "cpu_usage + memory_usage / 2 > 50%",
            "cpu_usage + memory_usage / 2 > 0.5",
        ),
        (
            "cpu_usage - (memory_usage - disk_space) > 0",
            "cpu_usage - (memory_usage - disk_space) > 0",
        ),
        (
            "cpu_usage - memory_usage - disk_space > 0",
            "cpu_usage - memory_usage - disk_space > 0",
        ),
        (
            "-(cpu_usage + memory_usage) < -50%",
            "-(cpu_usage + memory_usage) < -0.5",
        ),
        (
            "(cpu_usage - avg(cpu_usage, 1d)) / avg(cpu_usage, 1d) > 50%",
            "(cpu_usage - avg_over_time(cpu_usage[1d])) / avg_over_time(cpu_usage[1d]) > 0.5",
        ),
        ("cpu_usage > memory_usage", "cpu_usage > memory_usage"),
    ];
    for (condition, promql) in cases {
        assert_eq!(expr(condition), promql, "for `{condition}`");
    }
}

#[test]
fn boolean_operators() {
    let cases = [
        (
            "cpu_usage > 90% and memory_usage > 90% or disk_space < 5%",
            "cpu_usage > 0.9 and memory_usage > 0.9 or disk_space < 0.05",
        ),
        (
            "cpu_usage > 90% and (memory_usage > 90% or disk_space < 5%)",
            "cpu_usage > 0.9 and (memory_usage > 0.9 or disk_space < 0.05)",
        ),
        (
            "cpu_usage > 90% and not memory_usage > 90%",
            "cpu_usage > 0.9 unless memory_usage > 0.9",
        ),
        (
            "cpu_usage > 90% and not (memory_usage > 90% or disk_space < 5%)",
            "cpu_usage > 0.9 unless (memory_usage > 0.9 or disk_space < 0.05)",
        ),
        (
            r#"queue_length > 100 and not absent(cpu_usage{host="a"}, 5m)"#,
            r#"queue_length > 100 unless absent_over_time(cpu_usage{host="a"}[5m])"#,
        ),
    ];
    for (condition, promql) in cases {
        assert_eq!(expr(condition), promql, "for `{condition}`");
    }
}

#[test]
fn hold_durations() {
    let hold = |clause: &str| {
        let rule = only_rule(&format!(
            "alert \"t\" {{ when cpu_usage > 90% {clause} severity info }}"
        ));
        str_of(&rule, "for").map(String::from)
    };
    assert_eq!(hold("for 15m").as_deref(), Some("15m"));
    assert_eq!(hold("for 90s").as_deref(), Some("90s"));
    assert_eq!(hold("for 120m").as_deref(), Some("2h"));
    assert_eq!(hold("for 24h").as_deref(), Some("1d"));
    assert_eq!(hold(""), None, "no `for` means at once");
}

#[test]
fn keep_firing_for() {
    let rule = only_rule("alert \"t\" { when cpu_usage > 90% severity info  keep firing for 5m }");
    assert_eq!(str_of(&rule, "keep_firing_for"), Some("5m"));
    let rule = only_rule("alert \"t\" { when cpu_usage > 90% severity info }");
    assert_eq!(str_of(&rule, "keep_firing_for"), None);
}

// ---------------------------------------------------------------------------------
// Labels, annotations, groups

#[test]
fn labels_carry_severity_escalation_and_route() {
    let rule = only_rule(
        r#"alert "t" {
  when cpu_usage > 90%
  severity warning
  labels { team = "ops" }
  escalate "夜間"
  route "pager"
}"#,
    );
    let labels: std::collections::BTreeMap<String, String> =
        serde_yaml_ng::from_value(rule["labels"].clone()).unwrap();
    let expected = [
        ("severity", "warning"),
        ("team", "ops"),
        ("tocsin_escalation", "夜間"),
        ("tocsin_route", "pager"),
    ];
    assert_eq!(
        labels,
        expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    );
}

#[test]
fn annotation_templates_become_go_templates() {
    let rule = only_rule(
        r#"alert "CPU使用率異常" {
  when cpu_usage > 90%
  severity critical
  annotations {
    summary = "{{ labels.host }} の CPU 使用率が {{ value }} です"
    title = "[{{ severity }}] {{ name }}"
    plain = "no placeholders }} here"
  }
}"#,
    );
    let a = &rule["annotations"];
    assert_eq!(
        str_of(a, "summary"),
        Some("{{ $labels.host }} の CPU 使用率が {{ $value | humanizePercentage }} です")
    );
    // Prometheus' `$labels` has neither `alertname` nor the rule's `severity` label
    // (see `prometheus_renders_annotations_as_tocsin_does`), so they are written out.
    assert_eq!(str_of(a, "title"), Some("[critical] CPU使用率異常"));
    assert_eq!(str_of(a, "plain"), Some("no placeholders }} here"));
}

/// Text from rules must never become Go template syntax: label values (which
/// Prometheus expands as templates), alert names shown by `{{ name }}`, and literal
/// template text.
#[test]
fn literal_text_cannot_inject_template_syntax() {
    let mut set = check(&[(
        "fixture.rules",
        r#"alert "x{{ 1 }}{" {
  when cpu_usage > 90%
  severity info
  labels { team = "{{ .Value }}" }
  annotations { summary = "{{ name }}{{ value }}" }
  escalate "{{ define }}"
}"#,
    )]);
    // The language cannot spell a literal `{{`, but the model can hold one.
    set.alerts[0].annotations.insert(
        "raw".into(),
        Template {
            segments: vec![
                Segment::Text("a {{ $x }} {{{".into()),
                Segment::Field(Field::Value),
            ],
        },
    );
    let rule = rules(&to_prometheus(&set).unwrap()).remove(0);
    assert_eq!(str_of(&rule, "alert"), Some("x{{ 1 }}{"));
    assert_eq!(
        str_of(&rule["labels"], "team"),
        Some(r#"{{ "{{" }} .Value }}"#)
    );
    assert_eq!(
        str_of(&rule["labels"], "tocsin_escalation"),
        Some(r#"{{ "{{" }} define }}"#)
    );
    assert_eq!(
        str_of(&rule["annotations"], "summary"),
        Some(r#"x{{ "{{" }} 1 }}{{ "{" }}{{ $value | humanizePercentage }}"#)
    );
    assert_eq!(
        str_of(&rule["annotations"], "raw"),
        Some(r#"a {{ "{{" }} $x }} {{ "{{" }}{{ "{" }}{{ $value | humanizePercentage }}"#)
    );
}

#[test]
fn one_group_per_file_in_first_seen_order() {
    let set = check(&[
        (
            "rules/zeta.rules",
            r#"alert "z1" { when cpu_usage > 90% severity info }
alert "z2" { when cpu_usage > 80% severity info }"#,
        ),
        (
            "rules/alpha.rules",
            r#"alert "a1" { when cpu_usage > 70% severity info }"#,
        ),
        (
            "other/zeta.rules",
            r#"alert "o1" { when cpu_usage > 60% severity info }"#,
        ),
    ]);
    let doc: Value = serde_yaml_ng::from_str(&to_prometheus(&set).unwrap()).unwrap();
    let groups: Vec<(&str, Vec<&str>)> = doc["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            let names = g["rules"].as_sequence().unwrap();
            (
                g["name"].as_str().unwrap(),
                names.iter().map(|r| r["alert"].as_str().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("zeta", vec!["z1", "z2"]),
            ("alpha", vec!["a1"]),
            // A repeated stem would be a repeated group name, which Prometheus rejects.
            ("other/zeta", vec!["o1"]),
        ]
    );
}

// ---------------------------------------------------------------------------------
// What PromQL cannot express

fn only_error(text: &str) -> ExportError {
    let mut errors = export(text).expect_err("export should fail");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

#[test]
fn evaluations_cannot_be_exported() {
    let e = only_error(r#"alert "t" { when cpu_usage > 90% for 3 evaluations severity info }"#);
    assert_eq!(e.rule, "t");
    assert!(e.message.contains("`for 3 evaluations`"), "{}", e.message);
    assert!(
        e.message.contains("no Prometheus equivalent"),
        "{}",
        e.message
    );
}

#[test]
fn hysteresis_cannot_be_exported() {
    let e = only_error(
        r#"alert "t" { when cpu_usage > 90% resolve when cpu_usage < 80% severity info }"#,
    );
    assert_eq!(e.rule, "t");
    assert!(e.message.contains("`resolve when`"), "{}", e.message);
}

#[test]
fn not_outside_and_not_cannot_be_exported() {
    for condition in [
        "not cpu_usage > 90%",
        "cpu_usage > 90% or not memory_usage > 90%",
        "not cpu_usage > 90% and memory_usage > 90%",
    ] {
        let e = only_error(&format!("alert \"t\" {{ when {condition} severity info }}"));
        assert_eq!(e.rule, "t");
        assert!(e.message.starts_with("`not`"), "{condition}: {}", e.message);
        assert!(e.message.contains("`A unless B`"), "{}", e.message);
    }
}

#[test]
fn comparing_two_numbers_cannot_be_exported() {
    let e = only_error(r#"alert "t" { when cpu_usage > 90% and 1 > 2 severity info }"#);
    assert!(
        e.message.contains("`1 > 2` compares two numbers"),
        "{}",
        e.message
    );
}

#[test]
fn a_label_cannot_hide_the_route() {
    let e = only_error(
        r#"alert "t" { when cpu_usage > 90% severity info labels { tocsin_route = "a" } route "b" }"#,
    );
    assert!(e.message.contains("`tocsin_route`"), "{}", e.message);
}

#[test]
fn every_unexportable_rule_is_reported() {
    let errors = export(
        r#"
alert "fine" { when cpu_usage > 90% severity info }
alert "evals" { when cpu_usage > 90% for 2 evaluations severity info }
alert "both" {
  when not cpu_usage > 90%
  resolve when cpu_usage < 50%
  severity info
}"#,
    )
    .expect_err("export should fail");
    let found: Vec<(&str, usize)> = errors
        .iter()
        .map(|e| (e.rule.as_str(), e.origin.line))
        .collect();
    let lines = METRICS.lines().count();
    assert_eq!(
        found,
        [
            ("evals", lines + 3),
            ("both", lines + 4),
            ("both", lines + 4)
        ]
    );
    assert!(
        errors
            .iter()
            .all(|e| e.origin.path == Path::new("fixture.rules"))
    );
}

// ---------------------------------------------------------------------------------
// The real promtool

/// Every supported construct at once, under Japanese names.
const VARIED: &str = r#"
alert "CPU使用率異常" {
  when cpu_usage{host=~"bot-.*", dc="東京"} > 90% for 15m
  severity critical
  labels { team = "ops", note = "{{ not a template }}" }
  annotations {
    summary = "{{ labels.host }} の CPU 使用率が {{ value }} です"
    title = "[{{ severity }}] {{ name }}"
  }
  keep firing for 5m
  escalate "default"
  route "pager"
}
alert "認証失敗急増" { when auth_failures > 20 in 5m severity critical }
alert "窓" {
  when avg(cpu_usage, 1h) > 50% and min(cpu_usage, 30m) > 10% or max(cpu_usage, 1d) > 99%
  severity warning
}
alert "合計" { when sum(queue_length, 90s) > 10 or count(queue_length, 15m) < 3 severity info }
alert "率" {
  when rate(auth_failures, 5m) > 1 or increase(auth_failures, 1d) > 100 or deriv(queue_length, 10m) > 0
  severity info
}
alert "予測" { when disk_space < 20% or predict(disk_space, 6h, 24h) < 5% for 1h severity warning }
alert "欠落" { when absent(cpu_usage{host="a"}, 10m) severity warning }
alert "除外" {
  when queue_length > 100 and not (cpu_usage > 90% or absent(cpu_usage, 5m))
  severity info
}
alert "算術" {
  when -(cpu_usage - avg(cpu_usage, 1d)) / (memory_usage + 1) < -50% and cpu_usage > memory_usage for 1500ms
  severity info
}
alert "keyword" { when sum{x="1"} - -1 > 2 severity info }
alert "bytes" { when memory_growth_rate > 10MB/hour for 6h severity warning }
"#;

#[test]
fn promtool_accepts_the_varied_fixture() {
    let yaml = export_ok(VARIED);
    assert_eq!(rules(&yaml).len(), 11);
    assert_promtool_accepts(&yaml, "varied");
}

#[test]
fn promtool_accepts_the_shipped_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let sources = read_sources(&[dir]).expect("read the shipped rules");
    let set = check_sources(&sources, &CheckOptions::default())
        .unwrap_or_else(|d| panic!("shipped rules do not check: {d:#?}"));
    let yaml = to_prometheus(&set).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(rules(&yaml).len(), set.alerts.len());
    assert_promtool_accepts(&yaml, "shipped");
}

/// Runs the export under Prometheus' own rule evaluation (`promtool test rules`):
/// the alert fires on a Japanese name, `for` holds, and annotations render as
/// tocsin renders them, with literal text staying literal.
#[test]
fn prometheus_renders_annotations_as_tocsin_does() {
    let yaml = export_ok(
        r#"alert "CPU使用率異常" {
  when cpu_usage{host=~"bot-.*"} > 90% for 2m
  severity critical
  labels { team = "{{ ops }}" }
  annotations { summary = "{{ name }} [{{ severity }}] {{ labels.host }}: {{ value }}" }
  escalate "default"
}"#,
    );
    let dir = scratch("render");
    std::fs::write(dir.join("rules.yml"), &yaml).unwrap();
    std::fs::write(
        dir.join("test.yml"),
        r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'cpu_usage{host="bot-1"}'
        values: '0.95x10'
      - series: 'cpu_usage{host="db-1"}'
        values: '0.95x10'
    alert_rule_test:
      - eval_time: 1m
        alertname: CPU使用率異常
        exp_alerts: []
      - eval_time: 3m
        alertname: CPU使用率異常
        exp_alerts:
          - exp_labels:
              host: bot-1
              severity: critical
              team: '{{ ops }}'
              tocsin_escalation: default
            exp_annotations:
              summary: 'CPU使用率異常 [critical] bot-1: 95%'
"#,
    )
    .unwrap();
    assert_success(&promtool(&dir, &["test", "rules", "test.yml"]), &yaml);
}

// ---------------------------------------------------------------------------------
// The binary

fn tocsin_export(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["export", "prometheus"])
        .arg(dir)
        .output()
        .expect("run tocsin")
}

#[test]
fn binary_prints_yaml_and_exits_0() {
    let dir = scratch("binary-ok");
    std::fs::write(
        dir.join("infra.rules"),
        format!(
            "{METRICS}alert \"CPU使用率異常\" {{ when cpu_usage > 90% for 15m severity critical }}"
        ),
    )
    .unwrap();
    let o = tocsin_export(&dir);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let yaml = String::from_utf8(o.stdout).unwrap();
    let rule = rules(&yaml).remove(0);
    assert_eq!(str_of(&rule, "alert"), Some("CPU使用率異常"));
    assert_eq!(str_of(&rule, "expr"), Some("cpu_usage > 0.9"));
    assert_eq!(str_of(&rule, "for"), Some("15m"));
}

#[test]
fn binary_reports_unexportable_rules_and_exits_1() {
    let dir = scratch("binary-err");
    let file = dir.join("infra.rules");
    std::fs::write(
        &file,
        format!(
            "{METRICS}alert \"ok\" {{ when cpu_usage > 90% severity info }}\n\
             alert \"evals\" {{ when cpu_usage > 90% for 3 evaluations severity info }}\n"
        ),
    )
    .unwrap();
    let o = tocsin_export(&dir);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "no partial YAML on stdout");
    let err = String::from_utf8_lossy(&o.stderr);
    let line = METRICS.lines().count() + 2;
    let expected = format!(
        "{}:{line}: alert `evals` cannot be exported: ",
        file.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("`for 3 evaluations`"), "{err}");
}

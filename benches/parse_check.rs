//! Parse and check a large generated rule set: 10,000 alert rules of realistic shapes,
//! spread over 10 files, with the metric declarations they need.
//!
//! `cargo bench --bench parse_check`
//!
//! The rule text is generated (and checked once for validity) before measuring; only
//! parsing and checking are timed.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tocsin::rules::{CheckOptions, SourceFile, check_sources, diagnostic, parser};

const FILES: usize = 10;
const ALERTS: usize = 10_000;
/// Per-service latency metrics, each declared, so the declaration table is not tiny.
const SERVICES: usize = 200;
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// The whole generated rule set: `metrics.rules` with the declarations, then the
/// alerts dealt round-robin into `FILES` files so every file has every shape.
fn generate() -> Vec<SourceFile> {
    let mut decls = String::from("# Generated metric declarations.\n\n");
    for line in [
        "metric cpu_usage gauge ratio",
        "metric memory_usage gauge ratio",
        "metric disk_space gauge ratio",
        "metric memory_growth_rate gauge bytes/second",
        "metric response_time gauge seconds",
        "metric auth_failures counter count",
        "metric errors_total counter count",
        "metric bytes_sent counter bytes",
        "metric queue_length gauge count",
    ] {
        decls.push_str(line);
        decls.push('\n');
    }
    for s in 0..SERVICES {
        writeln!(
            decls,
            "# Latency of service {s}.\nmetric svc_{s}_latency gauge seconds"
        )
        .unwrap();
    }

    let mut files: Vec<String> = (0..FILES)
        .map(|f| format!("# Generated alert rules, part {f}.\n\n"))
        .collect();
    for i in 0..ALERTS {
        let out = &mut files[i % FILES];
        alert(out, i);
    }

    let mut sources = vec![SourceFile {
        path: "bench/metrics.rules".into(),
        text: decls,
    }];
    sources.extend(files.into_iter().enumerate().map(|(f, text)| SourceFile {
        path: format!("bench/alerts-{f}.rules").into(),
        text,
    }));
    sources
}

/// Appends alert number `i`, one of eight shapes.
fn alert(out: &mut String, i: usize) {
    let host = format!("bot-{}", i % 500);
    let svc = i % SERVICES;
    let severity = SEVERITIES[i % SEVERITIES.len()];
    let (name, when, summary) = match i % 8 {
        0 => (
            format!("CPU使用率異常 {host} #{i}"),
            format!("cpu_usage{{host=\"{host}\"}} > {}% for 15m", 80 + i % 20),
            "{{ labels.host }} の CPU 使用率が {{ value }} です",
        ),
        1 => (
            format!("認証失敗急増 #{i}"),
            format!("auth_failures{{realm=\"r{}\"}} > 20 in 5m", i % 7),
            "過去5分間の認証失敗が {{ value }} 回です",
        ),
        2 => (
            format!("svc-{svc} latency regression #{i}"),
            format!("avg(svc_{svc}_latency, 1h) > 3 * avg(svc_{svc}_latency, 1d)"),
            "{{ name }}: 1h average latency is {{ value }}",
        ),
        3 => (
            format!("メモリリーク検出 {host} #{i}"),
            format!("memory_growth_rate{{host=\"{host}\"}} > 10MB/hour for 6h"),
            "{{ labels.host }} のメモリが毎時 {{ value }} 増加し続けています",
        ),
        4 => (
            format!("disk filling {host} #{i}"),
            format!(
                "disk_space{{host=\"{host}\", mount=~\"/(var|data)\"}} < 20% \
                 or predict(disk_space{{host=\"{host}\"}}, 6h, 24h) < 5%"
            ),
            "{{ labels.host }}: free disk {{ value }}, full within 24h",
        ),
        5 => (
            format!("error burst svc-{svc} #{i}"),
            format!(
                "increase(errors_total{{service=\"svc-{svc}\", env!=\"dev\"}}, 10m) > {} \
                 and not absent(errors_total, 10m)",
                50 + i % 50
            ),
            "{{ value }} errors in 10m ({{ severity }})",
        ),
        6 => (
            format!("応答時間異常 #{i}"),
            format!(
                "response_time > 30s and (memory_usage > 85% or queue_length > {}) for 10m",
                100 + i % 100
            ),
            "応答時間が {{ value }} です",
        ),
        _ => (
            format!("egress spike {host} #{i}"),
            format!("rate(bytes_sent{{host=\"{host}\"}}, 5m) > 50MB/s for 3 evaluations"),
            "{{ labels.host }} sends {{ value }}",
        ),
    };
    writeln!(
        out,
        r#"alert "{name}" {{
  when {when}
  severity {severity}
  labels {{
    category = "generated"
    team = "team-{team}"
  }}
  annotations {{
    summary = "{summary}"
    runbook = "https://runbooks.example/{kind}/{i}"
  }}
}}
"#,
        team = i % 12,
        kind = i % 8,
    )
    .unwrap();
}

fn bench(c: &mut Criterion) {
    let sources = generate();
    let options = CheckOptions::default();
    // The generated set must be valid, or (b) would be timing the error path.
    match check_sources(&sources, &options) {
        Ok(set) => assert_eq!(set.alerts.len(), ALERTS),
        Err(diags) => panic!(
            "generated rules do not check:\n{}",
            diagnostic::render(&sources, &diags[..diags.len().min(5)], false)
        ),
    }
    let bytes: usize = sources.iter().map(|s| s.text.len()).sum();
    eprintln!(
        "parse_check: {ALERTS} alerts, {SERVICES} + 9 metrics, {} files, {bytes} bytes",
        sources.len()
    );

    let mut group = c.benchmark_group("rules_10k");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(25))
        .throughput(Throughput::Elements(ALERTS as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            for s in &sources {
                let file = parser::parse_file(black_box(&s.text)).expect("generated rules parse");
                black_box(file);
            }
        })
    });
    group.bench_function("parse_check", |b| {
        b.iter(|| {
            black_box(check_sources(black_box(&sources), &options)).expect("generated rules check")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The rule text the parse benchmarks read: alert rules of eight realistic shapes
//! (thresholds with `for`, `in` windows, ratios of averages, predictions, `and not
//! absent`, Japanese names and annotations), dealt round-robin over [`FILES`] files,
//! with the metric declarations they need in a file of their own.

use std::fmt::Write as _;

use tocsin::rules::SourceFile;

/// Files the alerts are dealt into.
pub const FILES: usize = 10;
/// Per-service latency metrics, each declared, so the declaration table is not tiny.
pub const SERVICES: usize = 200;
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// The whole generated rule set: `metrics.rules` with the declarations, then the
/// alerts dealt round-robin into `FILES` files so every file has every shape.
pub fn generate(alerts: usize) -> Vec<SourceFile> {
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
    for i in 0..alerts {
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

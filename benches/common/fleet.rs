//! A fleet's metrics at a chosen scale, and rules over them: what the engine
//! benchmark and the scale curve evaluate.
//!
//! `metrics` metric names with `series_per_metric` series each (labels `host`,
//! `account`, `job`, as a bot fleet pushes them), `samples` samples per series 30 s
//! apart. Gauges hold a level in 0..10; every tenth metric is a counter that grows by
//! its level per sample. About 1% of series cross the rules' thresholds.

use std::sync::Arc;
use std::time::Duration;

use tocsin::clock::Timestamp;
use tocsin::labels::Labels;
use tocsin::rules::{CheckOptions, RuleSet, SourceFile, check_sources};
use tocsin::series::{Limits, Sample, SeriesStore};

/// Seconds between two samples of a series: the seed's push interval.
pub const STEP_SECS: i64 = 30;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub metrics: usize,
    pub series_per_metric: usize,
    pub samples: i64,
}

impl Shape {
    pub fn series(&self) -> usize {
        self.metrics * self.series_per_metric
    }

    /// The time of the newest sample: where evaluation looks from.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_secs((self.samples - 1) * STEP_SECS)
    }
}

pub fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("host".to_string(), format!("bot-{}", i % 100)),
        ("account".to_string(), format!("acct-{i}")),
        ("job".to_string(), "twitterbot".to_string()),
    ])
}

pub fn series_labels(shape: &Shape) -> Vec<Labels> {
    (0..shape.series_per_metric).map(labels).collect()
}

pub fn metric_name(m: usize) -> String {
    format!("metric_{m}")
}

fn is_counter(m: usize) -> bool {
    m % 10 == 9
}

pub fn limits() -> Limits {
    Limits {
        retention: Duration::from_secs(600),
        max_series: 2_000_000,
        ..Limits::default()
    }
}

/// The value series `i` of metric `m` has at step `k`.
pub fn value(m: usize, i: usize, k: i64) -> f64 {
    let level = ((i * 7 + m * 13) % 1000) as f64 / 100.0;
    if is_counter(m) {
        level * k as f64
    } else {
        level
    }
}

/// Appends `shape.samples` rounds, each a sample for every series, as pushes arrive.
/// Every series gets a label set of its own (as each pushed sample brings its own),
/// so memory per series counts its labels.
pub fn filled_store(shape: &Shape, all_labels: &[Labels]) -> SeriesStore {
    let mut store = SeriesStore::new(limits());
    let names: Vec<String> = (0..shape.metrics).map(metric_name).collect();
    for k in 0..shape.samples {
        let t = Timestamp::from_secs(k * STEP_SECS);
        for (m, name) in names.iter().enumerate() {
            for (i, l) in all_labels.iter().enumerate() {
                let v = value(m, i, k);
                if k == 0 {
                    let own = Labels::from_pairs(l.iter());
                    store.append(name, &own, Sample { t, v }).unwrap();
                } else {
                    store.append(name, l, Sample { t, v }).unwrap();
                }
            }
        }
    }
    store
}

/// `rules` rules; rule `r` reads metric `r % metrics`, with one of four conditions:
/// an instant threshold, the same held `for 5m`, a 5-minute average, or (on
/// counters) an increase over 5 minutes. Each rule reads `series_per_metric` series.
pub fn rule_text(rules: usize, metrics: usize) -> String {
    let mut text = String::new();
    for m in 0..metrics {
        let kind = if is_counter(m) { "counter" } else { "gauge" };
        text.push_str(&format!("metric metric_{m} {kind}\n"));
    }
    for r in 0..rules {
        let m = r % metrics;
        let cond = match (is_counter(m), r % 3) {
            (true, _) => format!("metric_{m} > 99 in 5m"),
            (_, 0) => format!("metric_{m} > 9.9"),
            (_, 1) => format!("metric_{m} > 9.9 for 5m"),
            _ => format!("avg(metric_{m}, 5m) > 9.9"),
        };
        text.push_str(&format!(
            "alert \"rule {r}\" {{\n  when {cond}\n  severity warning\n  annotations {{\n    summary = \"{{{{ labels.host }}}} at {{{{ value }}}}\"\n  }}\n}}\n"
        ));
    }
    text
}

pub fn rule_set(rules: usize, metrics: usize) -> Arc<RuleSet> {
    let sources = [SourceFile {
        path: "bench.rules".into(),
        text: rule_text(rules, metrics),
    }];
    Arc::new(check_sources(&sources, &CheckOptions::default()).expect("bench rules check"))
}

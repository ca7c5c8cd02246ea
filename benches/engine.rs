//! The engine at the scale: ingest into the series store, and evaluate 1,000
//! rules over 100,000 series. Also prints bytes per retained sample.
//!
//! Run: `cargo bench --bench engine`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tocsin::clock::Timestamp;
use tocsin::engine::Engine;
use tocsin::eval::evaluate_rule;
use tocsin::labels::Labels;
use tocsin::rules::{CheckOptions, SourceFile, check_sources};
use tocsin::series::{Limits, Sample, SeriesStore};

const METRICS: usize = 100;
const SERIES_PER_METRIC: usize = 1_000;
const RULES: usize = 1_000;
/// One sample every 30 s over 5 minutes: the seed's push interval.
const SAMPLES_PER_SERIES: i64 = 10;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("host".to_string(), format!("bot-{}", i % 100)),
        ("account".to_string(), format!("acct-{i}")),
        ("job".to_string(), "twitterbot".to_string()),
    ])
}

fn series_labels() -> Vec<Labels> {
    (0..SERIES_PER_METRIC).map(labels).collect()
}

fn limits() -> Limits {
    Limits {
        retention: Duration::from_secs(600),
        max_series: 1_000_000,
        ..Limits::default()
    }
}

/// 100 metrics × 1,000 series × 10 samples. Gauges hold a level in 0..10; counters
/// grow by that level per sample. About 1% of series cross the rules' thresholds.
fn filled_store(all_labels: &[Labels]) -> SeriesStore {
    let mut store = SeriesStore::new(limits());
    for k in 0..SAMPLES_PER_SERIES {
        let t = Timestamp::from_secs(k * 30);
        for m in 0..METRICS {
            let name = format!("metric_{m}");
            for (i, l) in all_labels.iter().enumerate() {
                let level = ((i * 7 + m * 13) % 1000) as f64 / 100.0;
                let v = if m % 10 == 9 { level * k as f64 } else { level };
                store.append(&name, l, Sample { t, v }).unwrap();
            }
        }
    }
    store
}

fn rule_set() -> Arc<tocsin::rules::RuleSet> {
    let mut text = String::new();
    for m in 0..METRICS {
        text.push_str(&format!(
            "metric metric_{m} {}\n",
            if m % 10 == 9 { "counter" } else { "gauge" }
        ));
    }
    for r in 0..RULES {
        let m = r % METRICS;
        let cond = match (m % 10, r % 3) {
            (9, _) => format!("metric_{m} > 99 in 5m"),
            (_, 0) => format!("metric_{m} > 9.9"),
            (_, 1) => format!("metric_{m} > 9.9 for 5m"),
            _ => format!("avg(metric_{m}, 5m) > 9.9"),
        };
        text.push_str(&format!(
            "alert \"rule {r}\" {{\n  when {cond}\n  severity warning\n  annotations {{\n    summary = \"{{{{ labels.host }}}} at {{{{ value }}}}\"\n  }}\n}}\n"
        ));
    }
    let sources = [SourceFile {
        path: "bench.rules".into(),
        text,
    }];
    Arc::new(check_sources(&sources, &CheckOptions::default()).expect("bench rules check"))
}

fn ingest(c: &mut Criterion) {
    let all_labels = series_labels();
    let mut group = c.benchmark_group("ingest");
    let samples = (METRICS * SERIES_PER_METRIC) as u64;
    group.throughput(Throughput::Elements(samples));
    group.sample_size(10);
    // One round of samples for every series that already exists: the steady state.
    group.bench_function("100k_series_one_round", |b| {
        b.iter_batched(
            || filled_store(&all_labels),
            |mut store| {
                let t = Timestamp::from_secs(SAMPLES_PER_SERIES * 30);
                for m in 0..METRICS {
                    let name = format!("metric_{m}");
                    for l in &all_labels {
                        store.append(&name, l, Sample { t, v: 1.0 }).unwrap();
                    }
                }
                black_box(store)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let all_labels = series_labels();
    let store = filled_store(&all_labels);
    let rules = rule_set();
    let now = Timestamp::from_secs((SAMPLES_PER_SERIES - 1) * 30);
    let held = store.sample_count();
    eprintln!(
        "retained: {held} samples in {} series; sample buffers {:.1} bytes/sample",
        store.series_count(),
        store.sample_bytes() as f64 / held as f64
    );
    let mut group = c.benchmark_group("evaluate");
    group.sample_size(10);
    group.bench_function("1000_rules_100k_series_eval_only", |b| {
        b.iter(|| {
            for rule in &rules.alerts {
                black_box(evaluate_rule(rule, &store, now));
            }
        })
    });
    // The engine in steady state: alerts already exist, so this is one tick.
    let mut engine = Engine::new(rules.clone(), Vec::new(), 1);
    engine.evaluate(&store, now);
    eprintln!(
        "active alerts at the steady state: {}",
        engine.alerts().count()
    );
    group.bench_function("1000_rules_100k_series_engine_tick", |b| {
        b.iter(|| black_box(engine.evaluate(&store, now)))
    });
    group.finish();
}

criterion_group!(benches, ingest, evaluate);
criterion_main!(benches);

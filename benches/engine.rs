//! The engine at the scale: ingest into the series store, and evaluate 1,000
//! rules over 100,000 series. Also prints bytes per retained sample.
//!
//! Run: `cargo bench --bench engine`. The scale curve (1k to 1M series, 1 to 1,000
//! rules) is `cargo bench --bench scale`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tocsin::clock::Timestamp;
use tocsin::engine::Engine;
use tocsin::eval::evaluate_rule;
use tocsin::series::Sample;

mod common;
use common::fleet::{self, STEP_SECS, Shape};

/// 100 metrics × 1,000 series × 10 samples (one every 30 s over 5 minutes).
const SHAPE: Shape = Shape {
    metrics: 100,
    series_per_metric: 1_000,
    samples: 10,
};
const RULES: usize = 1_000;

fn ingest(c: &mut Criterion) {
    let all_labels = fleet::series_labels(&SHAPE);
    let names: Vec<String> = (0..SHAPE.metrics).map(fleet::metric_name).collect();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(SHAPE.series() as u64));
    group.sample_size(10);
    // One round of samples for every series that already exists: the steady state.
    group.bench_function("100k_series_one_round", |b| {
        b.iter_batched(
            || fleet::filled_store(&SHAPE, &all_labels),
            |mut store| {
                let t = Timestamp::from_secs(SHAPE.samples * STEP_SECS);
                for name in &names {
                    for l in &all_labels {
                        store.append(name, l, Sample { t, v: 1.0 }).unwrap();
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
    let all_labels = fleet::series_labels(&SHAPE);
    let store = fleet::filled_store(&SHAPE, &all_labels);
    let rules = fleet::rule_set(RULES, SHAPE.metrics);
    let now = SHAPE.now();
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
    let mut engine = Engine::new(rules.clone(), Default::default(), 1);
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

criterion_group! {
    name = benches;
    config = common::plot::criterion_config();
    targets = ingest, evaluate
}
criterion_main!(benches);

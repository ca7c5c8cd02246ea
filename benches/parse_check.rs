//! Parse and check a large generated rule set: 10,000 alert rules of realistic shapes,
//! spread over 10 files, with the metric declarations they need.
//!
//! `cargo bench --bench parse_check`
//!
//! The rule text is generated (and checked once for validity) before measuring; only
//! parsing and checking are timed.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tocsin::rules::{CheckOptions, check_sources, diagnostic, parser};

mod common;
use common::rules_text::{SERVICES, generate};

const ALERTS: usize = 10_000;

fn bench(c: &mut Criterion) {
    let sources = generate(ALERTS);
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

criterion_group! {
    name = benches;
    config = common::plot::criterion_config();
    targets = bench
}
criterion_main!(benches);

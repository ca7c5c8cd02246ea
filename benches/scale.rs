//! The scale curve: ingestion and evaluation cost at 1k, 10k, 100k and 1M series
//! and 1, 100 and 1,000 rules; memory per series and per sample; and a restart with
//! 100,000 active alerts. Prints `metric value unit` lines and writes `scale.csv`
//! (and `scale.png` when a font is available) to `--out` (default `target/bench`).
//!
//! ```sh
//! cargo bench --bench scale                      # everything, about 2 minutes
//! cargo bench --bench scale -- --quick           # up to 100k series
//! cargo bench --bench scale -- --out docs/bench  # where BENCHMARKS.md's plot lives
//! cargo bench --bench scale -- profile eval      # one workload once, for a profiler:
//! valgrind --tool=callgrind target/release/deps/scale-* profile parse
//! ```
//!
//! Memory is counted by a global allocator that tracks live bytes, so "bytes per
//! series" is what the store asked for, not what the allocator rounded it up to.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::daemon::Daemon;
use tocsin::engine::Engine;
use tocsin::eval::evaluate_rule;
use tocsin::labels::Labels;
use tocsin::rules::{CheckOptions, check_sources, parser};
use tocsin::series::{IncomingSample, Sample};

mod common;
use common::fleet::{self, STEP_SECS, Shape};
use common::plot;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only the counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

const SERIES_PER_METRIC: usize = 1_000;
const SAMPLES: i64 = 10;
const RULE_COUNTS: [usize; 3] = [1, 100, 1_000];

fn emit(metric: &str, value: f64, unit: &str) {
    println!("{metric} {value:.6} {unit}");
}

/// The median of `runs` timings of `f`, in seconds.
fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One row of the curve.
struct Row {
    series: usize,
    rules: usize,
    /// Series the rules read, summed over rules.
    series_read: usize,
    eval_secs: f64,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("profile") {
        profile(args.get(1).map_or("eval", String::as_str));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| PathBuf::from("target/bench"), PathBuf::from);
    std::fs::create_dir_all(&out).expect("create the output folder");

    let sizes: &[usize] = if quick {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    let mut rows = Vec::new();
    let mut reads: Vec<(&str, usize, f64)> = Vec::new();
    let mut csv = String::from("series,rules,series_read,eval_ms,ns_per_series_read\n");
    for &n in sizes {
        let shape = Shape {
            metrics: n / SERIES_PER_METRIC,
            series_per_metric: SERIES_PER_METRIC,
            samples: SAMPLES,
        };
        let all_labels = fleet::series_labels(&shape);
        let before = live();
        let started = Instant::now();
        let store = fleet::filled_store(&shape, &all_labels);
        let fill = started.elapsed().as_secs_f64();
        let bytes = live() - before;
        let samples = store.sample_count();
        let sample_bytes = store.sample_bytes();
        emit(
            &format!("ingest_new_series_{n}"),
            samples as f64 / fill,
            "samples/s",
        );
        emit(
            &format!("memory_per_series_{n}"),
            (bytes - sample_bytes) as f64 / n as f64,
            "bytes",
        );
        emit(
            &format!("memory_per_sample_{n}"),
            sample_bytes as f64 / samples as f64,
            "bytes",
        );
        emit(
            &format!("memory_total_per_sample_{n}"),
            bytes as f64 / samples as f64,
            "bytes",
        );

        // The steady state: one more round for series that exist, into a copy of
        // the store so every run appends to the same state.
        let names: Vec<String> = (0..shape.metrics).map(fleet::metric_name).collect();
        let mut round = 0;
        let mut grown = store;
        let append = median_secs(5, || {
            round += 1;
            let t = Timestamp::from_secs((SAMPLES + round) * STEP_SECS);
            // The fleet's own values, so the store stays as it was (about 1% of
            // series over the rules' thresholds) for the evaluations below.
            for (m, name) in names.iter().enumerate() {
                for (i, l) in all_labels.iter().enumerate() {
                    let v = fleet::value(m, i, SAMPLES + round);
                    grown.append(name, l, Sample { t, v }).unwrap();
                }
            }
        });
        emit(&format!("ingest_round_{n}"), n as f64 / append, "samples/s");
        let store = grown;
        let now = Timestamp::from_secs((SAMPLES + round) * STEP_SECS);

        for &r in &RULE_COUNTS {
            let rules = fleet::rule_set(r, shape.metrics);
            let series_read = rules
                .alerts
                .iter()
                .map(|_| SERIES_PER_METRIC)
                .sum::<usize>();
            let runs = if r * n > 10_000_000 { 5 } else { 15 };
            let eval = median_secs(runs, || {
                for rule in &rules.alerts {
                    black_box(evaluate_rule(rule, &store, now));
                }
            });
            emit(&format!("eval_{n}_series_{r}_rules"), eval * 1e3, "ms");
            csv.push_str(&format!(
                "{n},{r},{series_read},{:.3},{:.1}\n",
                eval * 1e3,
                eval * 1e9 / series_read as f64
            ));
            rows.push(Row {
                series: n,
                rules: r,
                series_read,
                eval_secs: eval,
            });
        }
        // The engine's whole tick (evaluation plus the state machine for every alert)
        // at the issue's reference point.
        if n == 100_000 {
            let rules = fleet::rule_set(1_000, shape.metrics);
            let mut engine = Engine::new(rules, Default::default(), 1);
            engine.evaluate(&store, now);
            let active = engine
                .alerts()
                .filter(|a| a.state != tocsin::alert::State::Inactive)
                .count();
            emit("engine_tick_active_alerts", active as f64, "alerts");
            let tick = median_secs(15, || {
                black_box(engine.evaluate(&store, now));
            });
            emit("engine_tick_100000_series_1000_rules", tick * 1e3, "ms");
        }
        drop(store);
        // One rule reading every one of `n` series (one metric): evaluation cost
        // against the series a rule reads.
        let wide = Shape {
            metrics: 1,
            series_per_metric: n,
            samples: SAMPLES,
        };
        let wide_store = fleet::filled_store(&wide, &fleet::series_labels(&wide));
        for (name, rule) in [("instant", 0), ("avg_5m", 2)] {
            // Rule 0 of the set is `metric_0 > 9.9`, rule 2 `avg(metric_0, 5m) > 9.9`.
            let rules = fleet::rule_set(3, 1);
            let rule = &rules.alerts[rule];
            let eval = median_secs(9, || {
                black_box(evaluate_rule(rule, &wide_store, wide.now()));
            });
            emit(
                &format!("eval_one_{name}_rule_reading_{n}_series"),
                eval * 1e3,
                "ms",
            );
            reads.push((name, n, eval));
        }
    }
    let csv_path = out.join("scale.csv");
    std::fs::write(&csv_path, csv).expect("write scale.csv");
    eprintln!("wrote {}", csv_path.display());
    let curve: Vec<plot::Curve> = RULE_COUNTS
        .iter()
        .map(|&r| plot::Curve {
            label: format!("{r} rule{}", if r == 1 { "" } else { "s" }),
            points: rows
                .iter()
                .filter(|row| row.rules == r)
                .map(|row| (row.series as f64, row.eval_secs * 1e3))
                .collect(),
        })
        .collect();
    let per_read: Vec<plot::Curve> = RULE_COUNTS
        .iter()
        .map(|&r| plot::Curve {
            label: format!("{r} rule{}", if r == 1 { "" } else { "s" }),
            points: rows
                .iter()
                .filter(|row| row.rules == r)
                .map(|row| {
                    (
                        row.series as f64,
                        row.eval_secs * 1e9 / row.series_read as f64,
                    )
                })
                .collect(),
        })
        .collect();
    let one_rule: Vec<plot::Curve> = ["instant", "avg_5m"]
        .iter()
        .map(|&name| plot::Curve {
            label: format!(
                "one rule, {}",
                if name == "instant" {
                    "m > x"
                } else {
                    "avg(m, 5m) > x"
                }
            ),
            points: reads
                .iter()
                .filter(|(n, ..)| *n == name)
                .map(|&(_, n, secs)| (n as f64, secs * 1e3))
                .collect(),
        })
        .collect();
    match plot::scale_curve(&out.join("scale.png"), &curve, &per_read, &one_rule) {
        Ok(()) => eprintln!("wrote {}", out.join("scale.png").display()),
        Err(e) => eprintln!("no plot: {e}"),
    }

    parse_speed();
    restart(100_000);
}

/// Parse, and parse + check, 10,000 generated rules (the parse_check bench's input).
fn parse_speed() {
    let sources = common::rules_text::generate(10_000);
    let options = CheckOptions::default();
    let parse = median_secs(9, || {
        for s in &sources {
            black_box(parser::parse_file(&s.text).expect("generated rules parse"));
        }
    });
    emit("parse_10000_rules", parse * 1e3, "ms");
    let check = median_secs(9, || {
        black_box(check_sources(&sources, &options).expect("generated rules check"));
    });
    emit("parse_check_10000_rules", check * 1e3, "ms");
}

/// A daemon with `alerts` firing alerts (each with its escalation and the deliveries
/// it owes, never sent), stopped and opened again: the time to ready.
fn restart(alerts: usize) {
    let dir = std::env::temp_dir().join(format!("tocsin-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/restart.rules"),
        "alert \"disk full\" {\n  when disk_used > 90\n  severity critical\n}\n",
    )
    .unwrap();
    let mut config = Config::default();
    config.storage.path = dir.join("tocsin.redb");
    config.rules.paths = vec![dir.join("rules")];
    config.channels.console.enabled = false;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    // The daemon's operations are async; its loop is never started, so nothing
    // owed is sent and no deadline runs.
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let daemon = Daemon::open(config.clone(), clock.clone()).expect("open");
        for chunk in (0..alerts).collect::<Vec<_>>().chunks(10_000) {
            let batch: Vec<IncomingSample> = chunk
                .iter()
                .map(|&i| IncomingSample {
                    metric: "disk_used".into(),
                    labels: Labels::from_pairs([("host", format!("host-{i}"))]),
                    value: 95.0,
                    at: None,
                })
                .collect();
            daemon.ingest(batch).await.expect("ingest");
        }
        let firing = daemon.alerts().await.len();
        assert_eq!(firing, alerts, "every series fires");
    });
    let file = std::fs::metadata(dir.join("tocsin.redb")).map_or(0, |m| m.len());
    emit("restart_store_bytes", file as f64, "bytes");
    let times: Vec<f64> = (0..3)
        .map(|_| {
            runtime.block_on(async {
                let started = Instant::now();
                let daemon = Daemon::open(config.clone(), clock.clone()).expect("reopen");
                let took = started.elapsed().as_secs_f64();
                assert_eq!(daemon.alerts().await.len(), alerts);
                took
            })
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    emit(
        &format!("restart_{alerts}_alerts_time_to_ready"),
        sorted[1] * 1e3,
        "ms",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs one workload once, for callgrind or perf: `parse`, `check` or `eval`.
fn profile(what: &str) {
    match what {
        "parse" => {
            let sources = common::rules_text::generate(10_000);
            for s in &sources {
                black_box(parser::parse_file(&s.text).expect("parse"));
            }
        }
        "check" => {
            let sources = common::rules_text::generate(10_000);
            black_box(check_sources(&sources, &CheckOptions::default()).expect("check"));
        }
        "eval" => {
            let shape = Shape {
                metrics: 100,
                series_per_metric: SERIES_PER_METRIC,
                samples: SAMPLES,
            };
            let store = fleet::filled_store(&shape, &fleet::series_labels(&shape));
            let rules = fleet::rule_set(1_000, shape.metrics);
            let passes: usize = std::env::var("PASSES")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let started = Instant::now();
            for _ in 0..passes {
                for rule in &rules.alerts {
                    black_box(evaluate_rule(rule, &store, shape.now()));
                }
            }
            eprintln!(
                "{passes} passes, {:.1} ms each",
                started.elapsed().as_secs_f64() * 1e3 / passes as f64
            );
        }
        other => panic!("unknown workload {other}: parse, check or eval"),
    }
}

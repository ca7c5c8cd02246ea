//! Arbitrary bytes → the strict Prometheus text-format parser
//! (`tocsin::exposition::parse`), which `POST /api/v1/import/prometheus` and the
//! scrape loops read bodies with, then the intake bounds (`tocsin::admission`).
//! Neither may panic; accepted samples have names; a refusal names a line within
//! the body.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tocsin::admission::Bounds;
use tocsin::clock::Timestamp;
use tocsin::exposition;

const BOUNDS: Bounds = Bounds {
    max_labels: 8,
    max_label_name_bytes: 16,
    max_label_value_bytes: 32,
    max_annotation_value_bytes: 64,
    future_tolerance: Duration::from_secs(600),
};
const NOW: Timestamp = Timestamp(1_800_000_000_000);

fuzz_target!(|data: &[u8]| {
    match exposition::parse(data) {
        Ok(samples) => {
            for s in &samples {
                assert!(!s.sample.metric.is_empty());
                let s = &s.sample;
                if BOUNDS.sample(&s.metric, &s.labels, s.at, NOW).is_ok() {
                    assert!(s.labels.len() <= BOUNDS.max_labels);
                }
            }
        }
        Err(e) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            assert!(
                e.to_string().starts_with(&format!("line {}: ", e.line)),
                "a refusal names its line: {e}"
            );
        }
    }
});

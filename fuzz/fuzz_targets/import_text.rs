//! Arbitrary bytes → the strict Prometheus text-format parser
//! (`tocsin::exposition::parse`), which `POST /api/v1/import/prometheus` and the
//! scrape loops read bodies with. It must never panic; accepted samples obey the
//! label limit and have names; a refusal names a line within the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::exposition;

const MAX_LABELS: usize = 8;

fuzz_target!(|data: &[u8]| {
    match exposition::parse(data, MAX_LABELS) {
        Ok(samples) => {
            for s in &samples {
                assert!(!s.sample.metric.is_empty());
                assert!(s.sample.labels.len() <= MAX_LABELS);
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

//! Arbitrary bytes → the strict Prometheus text-format parser of
//! `POST /api/v1/import/prometheus`. It must never panic; accepted samples obey the
//! label limit and have names; a refusal names a line within the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::http::decoders::decode_exposition;

const MAX_LABELS: usize = 8;

fuzz_target!(|data: &[u8]| {
    match decode_exposition(data, MAX_LABELS) {
        Ok(samples) => {
            for s in &samples {
                assert!(!s.metric.is_empty());
                assert!(s.labels.len() <= MAX_LABELS);
            }
        }
        Err(why) => {
            let line: usize = why
                .strip_prefix("line ")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse().ok())
                .expect("a refusal names its line");
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        }
    }
});

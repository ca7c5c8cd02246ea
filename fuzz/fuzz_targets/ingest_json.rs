//! Arbitrary bytes → the JSON sample decoder of `POST /api/v1/samples`
//! (`tocsin::http::decoders::decode_samples`). It must never panic, and what it
//! accepts must hold: valid names, at most the label limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::http::decoders::decode_samples;

const MAX_LABELS: usize = 8;

fuzz_target!(|data: &[u8]| {
    if let Ok(samples) = decode_samples(data, MAX_LABELS) {
        for s in &samples {
            assert!(!s.metric.is_empty(), "an accepted sample has a name");
            assert!(s.labels.len() <= MAX_LABELS, "the label limit holds");
        }
    }
});

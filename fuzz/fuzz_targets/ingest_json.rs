//! Arbitrary bytes → the JSON sample decoder of `POST /api/v1/samples`
//! (`tocsin::http::decoders::decode_samples`), then the intake bounds every
//! sample meets in the daemon (`tocsin::admission`). Neither may panic; an
//! accepted sample has a name, and one the bounds admit is within them.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tocsin::admission::Bounds;
use tocsin::clock::Timestamp;
use tocsin::http::decoders::decode_samples;

const BOUNDS: Bounds = Bounds {
    max_labels: 8,
    max_label_name_bytes: 16,
    max_label_value_bytes: 32,
    max_annotation_value_bytes: 64,
    future_tolerance: Duration::from_secs(600),
};
const NOW: Timestamp = Timestamp(1_800_000_000_000);

fuzz_target!(|data: &[u8]| {
    if let Ok(samples) = decode_samples(data) {
        for s in &samples {
            assert!(!s.metric.is_empty(), "an accepted sample has a name");
            match BOUNDS.sample(&s.metric, &s.labels, s.at, NOW) {
                Ok(()) => {
                    assert!(s.labels.len() <= BOUNDS.max_labels);
                    assert!(s.labels.iter().all(|(k, v)| k.len() <= 16 && v.len() <= 32));
                    assert!(s.at.is_none_or(|t| t <= NOW + BOUNDS.future_tolerance));
                }
                // A refusal is a sentence, whatever the sample held.
                Err(why) => assert!(!why.to_string().is_empty() && !why.reason().is_empty()),
            }
        }
    }
});

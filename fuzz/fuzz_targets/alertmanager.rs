//! Arbitrary bytes → the Alertmanager webhook decoder (`POST /api/v1/alertmanager`)
//! and the `POST /api/v2/alerts` decoder, then the intake bounds every alert meets
//! in the daemon (`tocsin::admission`). None may panic (times far in the past or
//! future, odd labels, huge numbers); accepted alerts carry an `alertname`, and
//! one the bounds admit starts no later than the tolerance allows.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tocsin::admission::Bounds;
use tocsin::clock::Timestamp;
use tocsin::engine::ExternalAlert;
use tocsin::http::decoders::{decode_v2_alerts, decode_webhook};

const BOUNDS: Bounds = Bounds {
    max_labels: 8,
    max_label_name_bytes: 16,
    max_label_value_bytes: 32,
    max_annotation_value_bytes: 64,
    future_tolerance: Duration::from_secs(600),
};

fn admitted(a: &ExternalAlert, now: Timestamp) {
    assert!(a.labels.get("alertname").is_some());
    let e = &a.external;
    let checked = BOUNDS.alert(
        &a.labels,
        e.annotations.iter(),
        e.generator_url.as_deref(),
        e.starts_at,
        now,
    );
    match checked {
        Ok(()) => assert!(e.starts_at <= now + BOUNDS.future_tolerance),
        Err(why) => assert!(!why.to_string().is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(hook) = decode_webhook(data) {
        for a in &hook.alerts {
            admitted(a, Timestamp(1_800_000_000_000));
        }
    }
    for now in [
        Timestamp(0),
        Timestamp(1_800_000_000_000),
        Timestamp(i64::MAX),
    ] {
        if let Ok(alerts) = decode_v2_alerts(data, now) {
            for a in &alerts {
                admitted(a, now);
            }
        }
    }
});

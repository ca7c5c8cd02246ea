//! Arbitrary bytes → the Alertmanager webhook decoder (`POST /api/v1/alertmanager`)
//! and the `POST /api/v2/alerts` decoder. Neither may panic (times far in the past or
//! future, odd labels, huge numbers); accepted alerts carry an `alertname`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::clock::Timestamp;
use tocsin::http::decoders::{decode_v2_alerts, decode_webhook};

fuzz_target!(|data: &[u8]| {
    if let Ok(hook) = decode_webhook(data) {
        for a in &hook.alerts {
            assert!(a.labels.get("alertname").is_some());
        }
    }
    for now in [
        Timestamp(0),
        Timestamp(1_800_000_000_000),
        Timestamp(i64::MAX),
    ] {
        if let Ok(alerts) = decode_v2_alerts(data, now) {
            for a in &alerts {
                assert!(a.labels.get("alertname").is_some());
            }
        }
    }
});

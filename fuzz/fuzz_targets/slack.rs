//! Arbitrary bytes → what Slack and Twilio send: the slash-command form, the button
//! payload (a form field holding JSON), and the request signature checks. None may
//! panic. The signature checks must also be right: a body signed with the secret is
//! accepted, and the same body under another signature is refused; however the
//! signature is spelt (hex in capitals), what is verified is the same MAC, which
//! the replay cache keys on.
//!
//! Input layout: `timestamp \n signature \n body` for the signature checks; the
//! whole input is also decoded as a command form and as an interaction form.

#![no_main]

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use tocsin::clock::Timestamp;
use tocsin::config::Secret;
use tocsin::http::decoders::{decode_command, decode_interaction};
use tocsin::signature::{Verified, verify_slack, verify_twilio};

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fuzz_target!(|data: &[u8]| {
    let _ = decode_command(data);
    let _ = decode_interaction(data);

    let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (ts, sig, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(s), Some(b)) => (t, s, b),
        _ => (&b""[..], &b""[..], data),
    };
    let ts = std::str::from_utf8(ts).ok();
    let sig = std::str::from_utf8(sig).ok();
    let _ = verify_slack(std::slice::from_ref(&secret), ts, sig, body, NOW);

    // A body signed as Slack signs it is accepted, whatever the body.
    let stamp = "1800000000";
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()).unwrap();
    mac.update(format!("v0:{stamp}:").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes().to_vec();
    let good = format!("v0={}", hex::encode(&tag));
    let verify = |sig: &str| {
        verify_slack(
            std::slice::from_ref(&secret),
            Some(stamp),
            Some(sig),
            body,
            NOW,
        )
    };
    assert_eq!(verify(&good), Ok(Verified { mac: tag.clone() }));
    let capitals = format!("v0={}", hex::encode_upper(&tag));
    assert_eq!(verify(&capitals), Ok(Verified { mac: tag.clone() }));
    if let Some(sig) = sig {
        // Any other spelling that verifies is the same MAC: a replay, for the cache.
        match verify(sig) {
            Ok(v) => assert_eq!(v.mac, tag),
            Err(_) => assert!(!sig.eq_ignore_ascii_case(&good)),
        }
    }

    // Twilio: the form parameters of the body, sorted, after the URL.
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let url = "https://tocsin.example.com/twilio/sms";
    let _ = verify_twilio(&secret, url, &params, sig);
    let mut sorted = params.clone();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.expose().as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in &sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    let tag = mac.finalize().into_bytes().to_vec();
    let good = base64::engine::general_purpose::STANDARD.encode(&tag);
    assert_eq!(
        verify_twilio(&secret, url, &params, Some(&good)),
        Ok(Verified { mac: tag.clone() })
    );
    if let Some(sig) = sig
        && let Ok(v) = verify_twilio(&secret, url, &params, Some(sig))
    {
        assert_eq!(v.mac, tag);
    }
});

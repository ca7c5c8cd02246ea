//! Checking that an inbound request really comes from Slack or Twilio. Pure: the
//! caller passes the raw body, the headers' values and `now`.
//!
//! Slack signs `v0:{timestamp}:{raw body}` with HMAC-SHA256 and a signing secret;
//! Twilio signs the full URL plus the sorted form parameters with HMAC-SHA1 and the
//! account's auth token. Both compare through `Mac::verify_slice`, which takes the
//! same time wherever the first differing byte is.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::clock::Timestamp;
use crate::config::Secret;

/// How far a Slack request's timestamp may be from `now`, either way: Slack's own
/// replay window.
pub const SLACK_MAX_AGE_SECS: i64 = 300;

/// Why a request was refused as not coming from Slack or Twilio. `reason()` is the
/// metric label; `Display` is the sentence the caller gets back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No Slack signing secret (or no Twilio auth token) is configured: nothing can
    /// be verified, so everything is refused.
    NotConfigured,
    /// Twilio signs the public URL, and `server.public_url` is not set.
    NoPublicUrl,
    MissingTimestamp,
    BadTimestamp,
    /// More than five minutes from now: an old request being replayed, or a clock
    /// far off.
    StaleTimestamp,
    MissingSignature,
    WrongSignature,
    /// A signature already accepted once.
    Replayed,
}

impl Refusal {
    /// A short label for `tocsin_auth_failures_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotConfigured => "not_configured",
            Refusal::NoPublicUrl => "no_public_url",
            Refusal::MissingTimestamp => "missing_timestamp",
            Refusal::BadTimestamp => "bad_timestamp",
            Refusal::StaleTimestamp => "stale_timestamp",
            Refusal::MissingSignature => "missing_signature",
            Refusal::WrongSignature => "wrong_signature",
            Refusal::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotConfigured => "request signing is not configured, so nothing is accepted",
            Refusal::NoPublicUrl => {
                "server.public_url is not set, so the signed URL cannot be rebuilt"
            }
            Refusal::MissingTimestamp => "missing X-Slack-Request-Timestamp header",
            Refusal::BadTimestamp => "X-Slack-Request-Timestamp is not a Unix time",
            Refusal::StaleTimestamp => "request timestamp is more than 5 minutes from now",
            Refusal::MissingSignature => "missing signature header",
            Refusal::WrongSignature => "signature does not match",
            Refusal::Replayed => "request was already received once",
        })
    }
}

/// A request proven to come from Slack or Twilio: the MAC that proved it, as bytes.
/// A replay cache keys on these, never on the header's text: the header has more
/// than one spelling of the same MAC (hex in either case, base64 with blanks
/// around it), and a cache keyed on the text let an upper-cased copy of a signed
/// `/tocsin silence` through as new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub mac: Vec<u8>,
}

/// Checks a Slack request: the timestamp within [`SLACK_MAX_AGE_SECS`] of `now`, and
/// `signature` (`v0=<hex>`) the HMAC-SHA256 of `v0:{timestamp}:{body}` under any of
/// `secrets` (several while one is being rotated).
pub fn verify_slack(
    secrets: &[Secret],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: Timestamp,
) -> Result<Verified, Refusal> {
    if secrets.is_empty() {
        return Err(Refusal::NotConfigured);
    }
    let timestamp = timestamp.ok_or(Refusal::MissingTimestamp)?;
    let ts: i64 = timestamp.parse().map_err(|_| Refusal::BadTimestamp)?;
    let now_secs = now.0.div_euclid(1000);
    if now_secs.abs_diff(ts) > SLACK_MAX_AGE_SECS as u64 {
        return Err(Refusal::StaleTimestamp);
    }
    let signature = signature.ok_or(Refusal::MissingSignature)?;
    let tag = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(Refusal::WrongSignature)?;
    let accepted = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    });
    if accepted {
        Ok(Verified { mac: tag })
    } else {
        Err(Refusal::WrongSignature)
    }
}

/// Checks `X-Twilio-Signature`: base64 HMAC-SHA1 under `auth_token` of `url` (as
/// Twilio requested it, query included) followed by every form parameter's name and
/// value, sorted by name. Like Twilio's own validators it accepts the URL with or
/// without an explicit default port, since a proxy may add or drop it.
pub fn verify_twilio(
    auth_token: &Secret,
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Result<Verified, Refusal> {
    if auth_token.is_empty() {
        return Err(Refusal::NotConfigured);
    }
    let signature = signature.ok_or(Refusal::MissingSignature)?;
    let tag = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Refusal::WrongSignature)?;
    let params = sorted_params(params);
    let accepted = url_port_variants(url).iter().any(|u| {
        let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(u.as_bytes());
        mac.update(params.as_bytes());
        mac.verify_slice(&tag).is_ok()
    });
    if accepted {
        Ok(Verified { mac: tag })
    } else {
        Err(Refusal::WrongSignature)
    }
}

/// Names and values run together, sorted by name, then by value for a repeated
/// name (as twilio-python does).
fn sorted_params(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.iter().map(|(k, v)| format!("{k}{v}")).collect()
}

/// `url` as given, plus the same URL with its scheme's default port added (when it
/// has none) or removed (when it has the default one).
fn url_port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The port follows the host: after the last `@` (user info) and after any
    // IPv6 literal's closing bracket.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_colon = match host_port.rfind(']') {
        Some(bracket) => host_port[bracket..].find(':').map(|i| bracket + i),
        None => host_port.rfind(':'),
    };
    let other = match port_colon {
        None => format!("{scheme}://{authority}:{default_port}{tail}"),
        Some(i) if &host_port[i + 1..] == default_port => {
            format!("{scheme}://{}{tail}", &authority[..host_start + i])
        }
        Some(_) => return out,
    };
    out.push(other);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example (PROTOCOLS.md §2d).
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn slack(
        secrets: &[&str],
        ts: Option<&str>,
        sig: Option<&str>,
        body: &str,
        now_secs: i64,
    ) -> Result<Vec<u8>, Refusal> {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        verify_slack(
            &secrets,
            ts,
            sig,
            body.as_bytes(),
            Timestamp::from_secs(now_secs),
        )
        .map(|v| v.mac)
    }

    fn slack_mac() -> Vec<u8> {
        hex::decode(&SLACK_SIG[3..]).unwrap()
    }

    #[test]
    fn slack_published_example_verifies() {
        let ok = slack(
            &[SLACK_SECRET],
            Some(SLACK_TS),
            Some(SLACK_SIG),
            SLACK_BODY,
            1531420618 + 10,
        );
        assert_eq!(ok, Ok(slack_mac()));
    }

    #[test]
    fn slack_any_rotated_secret_verifies() {
        let ok = slack(
            &["the-new-secret", SLACK_SECRET],
            Some(SLACK_TS),
            Some(SLACK_SIG),
            SLACK_BODY,
            1531420618,
        );
        assert_eq!(ok, Ok(slack_mac()));
    }

    #[test]
    fn slack_refusals_say_why() {
        let now = 1531420618;
        let altered = SLACK_BODY.replace("text=", "text=ack+1");
        let upper = SLACK_SIG.to_uppercase();
        let cases: Vec<(Result<Vec<u8>, Refusal>, Refusal)> = vec![
            (
                slack(&[], Some(SLACK_TS), Some(SLACK_SIG), SLACK_BODY, now),
                Refusal::NotConfigured,
            ),
            (
                slack(&["other"], Some(SLACK_TS), Some(SLACK_SIG), SLACK_BODY, now),
                Refusal::WrongSignature,
            ),
            (
                slack(
                    &[SLACK_SECRET],
                    Some(SLACK_TS),
                    Some(SLACK_SIG),
                    &altered,
                    now,
                ),
                Refusal::WrongSignature,
            ),
            (
                slack(&[SLACK_SECRET], None, Some(SLACK_SIG), SLACK_BODY, now),
                Refusal::MissingTimestamp,
            ),
            (
                slack(
                    &[SLACK_SECRET],
                    Some("soon"),
                    Some(SLACK_SIG),
                    SLACK_BODY,
                    now,
                ),
                Refusal::BadTimestamp,
            ),
            (
                slack(&[SLACK_SECRET], Some(SLACK_TS), None, SLACK_BODY, now),
                Refusal::MissingSignature,
            ),
            (
                slack(
                    &[SLACK_SECRET],
                    Some(SLACK_TS),
                    Some(&upper),
                    SLACK_BODY,
                    now,
                ),
                Refusal::WrongSignature,
            ),
            (
                slack(
                    &[SLACK_SECRET],
                    Some(SLACK_TS),
                    Some("v0=zz"),
                    SLACK_BODY,
                    now,
                ),
                Refusal::WrongSignature,
            ),
            // Six minutes late, and six minutes early.
            (
                slack(
                    &[SLACK_SECRET],
                    Some(SLACK_TS),
                    Some(SLACK_SIG),
                    SLACK_BODY,
                    now + 360,
                ),
                Refusal::StaleTimestamp,
            ),
            (
                slack(
                    &[SLACK_SECRET],
                    Some(SLACK_TS),
                    Some(SLACK_SIG),
                    SLACK_BODY,
                    now - 360,
                ),
                Refusal::StaleTimestamp,
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, Err(want), "case {i}");
        }
        // The hex in capitals is the same MAC: accepted, and the same bytes, so the
        // replay cache sees a copy.
        let capitals = format!("v0={}", SLACK_SIG[3..].to_uppercase());
        assert_eq!(
            slack(
                &[SLACK_SECRET],
                Some(SLACK_TS),
                Some(&capitals),
                SLACK_BODY,
                now
            ),
            Ok(slack_mac())
        );
        // Exactly five minutes is still inside the window.
        assert!(
            slack(
                &[SLACK_SECRET],
                Some(SLACK_TS),
                Some(SLACK_SIG),
                SLACK_BODY,
                now + 300
            )
            .is_ok()
        );
    }

    // Twilio's published example (PROTOCOLS.md §3.4).
    fn twilio_params() -> Vec<(String, String)> {
        [
            ("From", "+12349013030"),
            ("CallSid", "CA1234567890ABCDE"),
            ("To", "+18005551212"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const TWILIO_SIG: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    #[test]
    fn twilio_published_example_verifies_with_or_without_the_port() {
        let token = Secret::new("12345");
        let p = twilio_params();
        let mac = base64::engine::general_purpose::STANDARD
            .decode(TWILIO_SIG)
            .unwrap();
        assert_eq!(
            verify_twilio(&token, TWILIO_URL, &p, Some(TWILIO_SIG)),
            Ok(Verified { mac: mac.clone() })
        );
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            verify_twilio(&token, with_port, &p, Some(TWILIO_SIG)),
            Ok(Verified { mac: mac.clone() })
        );
        // Blanks around it: the same MAC.
        assert_eq!(
            verify_twilio(&token, TWILIO_URL, &p, Some(&format!(" {TWILIO_SIG} "))),
            Ok(Verified { mac })
        );
    }

    #[test]
    fn twilio_refusals() {
        let token = Secret::new("12345");
        let p = twilio_params();
        let mut changed = p.clone();
        changed[0].1 = "+10000000000".into();
        let cases = [
            verify_twilio(&Secret::new("54321"), TWILIO_URL, &p, Some(TWILIO_SIG)),
            verify_twilio(&token, TWILIO_URL, &changed, Some(TWILIO_SIG)),
            verify_twilio(
                &token,
                "https://mycompany.com/myapp.php?foo=1",
                &p,
                Some(TWILIO_SIG),
            ),
            verify_twilio(
                &token,
                "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
                &p,
                Some(TWILIO_SIG),
            ),
            verify_twilio(&token, TWILIO_URL, &p, Some("not base64!")),
        ];
        for (i, got) in cases.into_iter().enumerate() {
            assert_eq!(got, Err(Refusal::WrongSignature), "case {i}");
        }
        assert_eq!(
            verify_twilio(&token, TWILIO_URL, &p, None),
            Err(Refusal::MissingSignature)
        );
        assert_eq!(
            verify_twilio(&Secret::new(""), TWILIO_URL, &p, Some(TWILIO_SIG)),
            Err(Refusal::NotConfigured)
        );
    }

    #[test]
    fn default_ports_are_added_or_removed() {
        assert_eq!(
            url_port_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_port_variants("http://u:p@a.example:80/x"),
            ["http://u:p@a.example:80/x", "http://u:p@a.example/x"]
        );
        assert_eq!(
            url_port_variants("https://[::1]:443/sms"),
            ["https://[::1]:443/sms", "https://[::1]/sms"]
        );
        assert_eq!(
            url_port_variants("https://[::1]/sms"),
            ["https://[::1]/sms", "https://[::1]:443/sms"]
        );
        assert_eq!(
            url_port_variants("https://a.example:8443"),
            ["https://a.example:8443"]
        );
    }
}

//! How stored records are written as bytes: one module for every backend (the
//! embedded redb file, and the PostgreSQL backend's `bytea` columns), so a record
//! written by one reads the same in the other.
//!
//! A value is one version byte, then the record in postcard (serde's compact
//! binary format: varints, no field names). Postcard has no field names, so a
//! change to a stored type's fields or variants changes the layout: bump
//! [`FORMAT`], and keep a decoder for the old layout here. The golden test below
//! fails when the layout moves without it.
//!
//! Files written before this format (schema version 3) hold JSON; [`from_json`]
//! reads them once, when the schema migration rewrites them.

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The layout this build writes, in the first byte of every value.
pub const FORMAT: u8 = 1;

/// Why a record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Binary(#[from] postcard::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown value format {0} (this tocsin writes {FORMAT}): upgrade tocsin")]
    Format(u8),
    #[error("empty value")]
    Empty,
}

/// `value` as stored: the version byte, then postcard.
pub fn encode<T: Serialize>(
    table: &'static str,
    key: impl Display,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT];
    encode_into(&mut out, value).map_err(|source| StoreError::Encode {
        table,
        key: key.to_string(),
        source,
    })?;
    Ok(out)
}

/// Appends `value` as stored (the version byte, then postcard) to `out`, after
/// what it holds already (the journal's frame header).
pub fn encode_after<T: Serialize>(
    out: &mut Vec<u8>,
    table: &'static str,
    key: impl Display,
    value: &T,
) -> Result<(), StoreError> {
    out.push(FORMAT);
    encode_into(out, value).map_err(|source| StoreError::Encode {
        table,
        key: key.to_string(),
        source,
    })
}

fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
    let taken = std::mem::take(out);
    *out = postcard::to_extend(value, taken)?;
    Ok(())
}

/// Reads a value [`encode`] wrote (this format or an older one it knows).
pub fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: impl Display,
    bytes: &[u8],
) -> Result<T, StoreError> {
    decode_bytes(bytes).map_err(|source| StoreError::Decode {
        table,
        key: key.to_string(),
        source,
    })
}

fn decode_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&other, _)) => Err(CodecError::Format(other)),
    }
}

/// Reads a JSON value of a schema version 3 file (or older), for its migration.
pub fn from_json<T: DeserializeOwned>(
    table: &'static str,
    key: impl Display,
    json: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Decode {
        table,
        key: key.to_string(),
        source: source.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Ack, Alert, External, NotifyReason, State, TimelineEntry};
    use crate::clock::Timestamp;
    use crate::escalation::Address;
    use crate::escalation::state::Escalation;
    use crate::labels::Labels;
    use crate::notify::AlertSnapshot;
    use crate::outbox::Delivery;

    fn alert() -> Alert {
        let labels = Labels::from_pairs([("alertname", "disk"), ("host", "bot-1")]);
        let mut a = Alert::new(labels.fingerprint(), "disk".into(), labels);
        a.state = State::Acknowledged;
        a.incident = Some(42);
        a.fired_at = Some(Timestamp(1_700_000_000_000));
        a.value = f64::NAN;
        a.ack = Some(Box::new(Ack {
            actor: "alice".into(),
            via: "slack".into(),
            note: Some("looking".into()),
            at: Timestamp(1_700_000_060_000),
        }));
        a.silenced_by.insert("s1".into());
        a.external = Some(Box::new(External {
            starts_at: Timestamp(1_699_999_000_000),
            ends_at: None,
            annotations: [("summary", "full")].into_iter().collect(),
            generator_url: None,
            external_url: None,
            group_key: Some("{}:{alertname=\"disk\"}".into()),
        }));
        a
    }

    fn delivery(a: &Alert) -> Delivery {
        Delivery {
            id: 7,
            key: "k".into(),
            address: Address::Slack {
                channel: "#alerts".into(),
            },
            reason: NotifyReason::Firing,
            level: 1,
            alert: AlertSnapshot::of(a, Default::default()).into(),
            group: "g".into(),
            due_at: Timestamp(5),
            created_at: Timestamp(4),
            attempts: 0,
            last_error: None,
            fallback_for: Some(Address::Console),
            fell_back: false,
        }
    }

    #[test]
    fn records_round_trip_and_non_finite_values_survive() {
        let a = alert();
        let back: Alert = decode("alerts", 1, &encode("alerts", 1, &a).unwrap()).unwrap();
        assert!(back.value.is_nan());
        assert_eq!(
            Alert { value: 0.0, ..back },
            Alert {
                value: 0.0,
                ..a.clone()
            }
        );
        let d = delivery(&a);
        let back: Delivery = decode("outbox", 7, &encode("outbox", 7, &d).unwrap()).unwrap();
        assert_eq!(back.address, d.address);
        assert_eq!(back.fallback_for, d.fallback_for);
        assert_eq!(back.alert, d.alert, "the snapshot, its empty fields too");
        let e = Escalation {
            fingerprint: a.fingerprint,
            incident: Some(42),
            policy: "default".into(),
            started_at: Timestamp(1),
            next_level: 2,
            due_at: None,
            repeats: 0,
            notified: [Address::Console, Address::Sms { to: "+1".into() }].into(),
        };
        let back: Escalation = decode("e", 1, &encode("e", 1, &e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_value_is_a_fraction_of_its_json() {
        let a = alert();
        let binary = encode("alerts", 1, &a).unwrap().len();
        let json = serde_json::to_string(&a).unwrap().len();
        assert!(binary * 3 < json, "{binary} bytes against {json} of JSON");
    }

    /// The layout of [`FORMAT`] 1, byte for byte. If this fails, a stored type's
    /// fields or variants changed: files written before cannot be read with the new
    /// layout, so bump [`FORMAT`] and keep a decoder for the old one.
    #[test]
    fn the_stored_layout_does_not_move_without_a_new_format() {
        let entry = TimelineEntry {
            at: Timestamp(1_700_000_000_000),
            from: State::Pending,
            to: State::Firing,
            actor: None,
            via: Some("slack".into()),
            reason: "fired".into(),
            note: None,
        };
        let bytes = encode("timeline", 1, &entry).unwrap();
        assert_eq!(
            hex::encode(&bytes),
            "0180a0abfef9620102000105736c61636b05666972656400",
            "timeline entry layout"
        );
    }

    /// Annotations and paged addresses are held as sorted lists, but were stored
    /// as a map and a set: records written before must read, and records written
    /// now must read in an older build, in the store (postcard) and in JSON.
    #[test]
    fn annotations_and_paged_addresses_are_written_as_the_map_and_the_set_were() {
        let map = std::collections::BTreeMap::from([
            ("summary".to_string(), "disk full".to_string()),
            ("runbook".to_string(), "https://r".to_string()),
        ]);
        let annotations: crate::alert::Annotations = map.clone().into();
        let set =
            std::collections::BTreeSet::from([Address::Sms { to: "+1".into() }, Address::Console]);
        let notified = crate::escalation::state::Notified::from([
            Address::Sms { to: "+1".into() },
            Address::Console,
            Address::Console,
        ]);
        let bytes = |v: &dyn erased::Both| v.bytes();
        assert_eq!(bytes(&annotations), bytes(&map));
        assert_eq!(bytes(&notified), bytes(&set));
        let read: crate::alert::Annotations =
            postcard::from_bytes(&postcard::to_allocvec(&map).unwrap()).unwrap();
        assert_eq!(read, annotations);
        assert_eq!(read.get("runbook"), Some("https://r"));
        let read: crate::escalation::state::Notified =
            serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
        assert_eq!(read, notified);
        assert_eq!(read.len(), 2, "unique, as in the set");
    }

    /// Both encodings of a value, to compare two types' layouts.
    mod erased {
        pub trait Both {
            fn bytes(&self) -> (Vec<u8>, String);
        }
        impl<T: serde::Serialize> Both for T {
            fn bytes(&self) -> (Vec<u8>, String) {
                (
                    postcard::to_allocvec(self).unwrap(),
                    serde_json::to_string(self).unwrap(),
                )
            }
        }
    }

    #[test]
    fn an_unknown_format_is_refused_with_a_reason() {
        let err = decode::<TimelineEntry>("timeline", "00ff/1", &[9, 1, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt timeline record 00ff/1: unknown value format 9 (this tocsin writes 1): upgrade tocsin"
        );
    }
}

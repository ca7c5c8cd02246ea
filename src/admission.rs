//! What intake admits, in one place for every way in: JSON samples, the text
//! format, scrapes, Alertmanager's webhook and `POST /api/v2/alerts`. Bounds in
//! bytes as well as counts (a label value of a megabyte, held by a series for as
//! long as it lives, is memory a count never sees), and timestamps no further
//! ahead of tocsin's clock than a tolerance: one sample from the year 9999 would
//! make every real sample of its series "older than the newest", so its rule could
//! never fire again.
//!
//! Pure: the caller passes `now` and refuses the whole request on the first
//! [`Refusal`], naming the sample or alert; `Refusal::reason` is the metric label.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::labels::Labels;

/// The bounds, from `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Labels of a sample or an alert, and annotations of an alert.
    pub max_labels: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    pub max_annotation_value_bytes: usize,
    /// How far ahead of `now` a timestamp may be.
    pub future_tolerance: Duration,
}

/// Why a sample or an alert was refused. `Display` names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyLabels {
        count: usize,
        max: usize,
    },
    TooManyAnnotations {
        count: usize,
        max: usize,
    },
    /// A label name (shown cut short) longer than its bound.
    LabelNameBytes {
        name: String,
        bytes: usize,
        max: usize,
    },
    /// The metric name, counted as a label value (it is `__name__` in Prometheus).
    MetricNameBytes {
        bytes: usize,
        max: usize,
    },
    LabelValueBytes {
        name: String,
        bytes: usize,
        max: usize,
    },
    /// An annotation's value, or `generatorURL`.
    AnnotationValueBytes {
        name: String,
        bytes: usize,
        max: usize,
    },
    /// A time more than the tolerance ahead of `now`.
    InTheFuture {
        /// `timestamp` for a sample, `startsAt` for an alert.
        field: &'static str,
        at: Timestamp,
        now: Timestamp,
        tolerance: Duration,
    },
}

impl Refusal {
    /// The label of `tocsin_samples_refused_total{reason}` and
    /// `tocsin_external_alerts_refused_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TooManyLabels { .. } => "label_limit",
            Refusal::TooManyAnnotations { .. } => "annotation_limit",
            Refusal::LabelNameBytes { .. } => "label_name_bytes",
            Refusal::MetricNameBytes { .. } | Refusal::LabelValueBytes { .. } => {
                "label_value_bytes"
            }
            Refusal::AnnotationValueBytes { .. } => "annotation_value_bytes",
            Refusal::InTheFuture { .. } => "future_timestamp",
        }
    }
}

/// The longest name shown in a message: a refused name can be megabytes long.
const SHOWN: usize = 40;

fn shown(name: &str) -> String {
    match name.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}…", &name[..cut]),
        None => format!("{name:?}"),
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyLabels { count, max } => write!(f, "{count} labels, at most {max}"),
            Refusal::TooManyAnnotations { count, max } => {
                write!(f, "{count} annotations, at most {max}")
            }
            Refusal::LabelNameBytes { name, bytes, max } => write!(
                f,
                "label name {} is {bytes} bytes, at most {max} (limits.max_label_name_bytes)",
                shown(name)
            ),
            Refusal::MetricNameBytes { bytes, max } => write!(
                f,
                "metric name is {bytes} bytes, at most {max} (limits.max_label_value_bytes)"
            ),
            Refusal::LabelValueBytes { name, bytes, max } => write!(
                f,
                "label {}: value is {bytes} bytes, at most {max} (limits.max_label_value_bytes)",
                shown(name)
            ),
            Refusal::AnnotationValueBytes { name, bytes, max } => write!(
                f,
                "annotation {}: value is {bytes} bytes, at most {max} \
                 (limits.max_annotation_value_bytes)",
                shown(name)
            ),
            Refusal::InTheFuture {
                field,
                at,
                now,
                tolerance,
            } => {
                let tolerance = humantime::format_duration(*tolerance);
                write!(f, "{field} ")?;
                if *field == "timestamp" {
                    write!(f, "{}", at.0)?;
                    if let Some(text) = readable(*at) {
                        write!(f, " ({text})")?;
                    }
                } else {
                    write!(f, "{}", readable(*at).unwrap_or_else(|| at.0.to_string()))?;
                }
                write!(
                    f,
                    " is more than {tolerance} ahead of tocsin's clock ({}); \
                     limits.future_tolerance",
                    now.to_rfc3339()
                )?;
                if *field == "timestamp"
                    && let Some((unit, ms)) = misread_unit(*at, *now, Duration::from_secs(86400))
                {
                    write!(
                        f,
                        ": it looks like {unit}; tocsin reads milliseconds since the epoch \
                         ({ms} would be {})",
                        Timestamp(ms).to_rfc3339()
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The time as RFC 3339, for the years that format can write (to 9999).
fn readable(at: Timestamp) -> Option<String> {
    const YEAR_10000: i64 = 253_402_300_800_000;
    (0..YEAR_10000).contains(&at.0).then(|| at.to_rfc3339())
}

/// A timestamp in microseconds or nanoseconds read as milliseconds is centuries
/// ahead: the unit it was most likely written in, and the milliseconds it meant,
/// when that lands within `near` of `now`.
fn misread_unit(at: Timestamp, now: Timestamp, near: Duration) -> Option<(&'static str, i64)> {
    let near = near.as_millis() as i64;
    [("microseconds", 1_000), ("nanoseconds", 1_000_000)]
        .into_iter()
        .map(|(unit, per_ms)| (unit, at.0 / per_ms))
        .find(|(_, ms)| (ms - now.0).abs() <= near)
}

impl Bounds {
    /// A label set: how many, and the bytes of each name and value.
    pub fn labels(&self, labels: &Labels) -> Result<(), Refusal> {
        if labels.len() > self.max_labels {
            return Err(Refusal::TooManyLabels {
                count: labels.len(),
                max: self.max_labels,
            });
        }
        for (name, value) in labels.iter() {
            if name.len() > self.max_label_name_bytes {
                return Err(Refusal::LabelNameBytes {
                    name: name.to_string(),
                    bytes: name.len(),
                    max: self.max_label_name_bytes,
                });
            }
            if value.len() > self.max_label_value_bytes {
                return Err(Refusal::LabelValueBytes {
                    name: name.to_string(),
                    bytes: value.len(),
                    max: self.max_label_value_bytes,
                });
            }
        }
        Ok(())
    }

    /// A time no further than the tolerance ahead of `now`.
    pub fn time(&self, field: &'static str, at: Timestamp, now: Timestamp) -> Result<(), Refusal> {
        if at > now + self.future_tolerance {
            return Err(Refusal::InTheFuture {
                field,
                at,
                now,
                tolerance: self.future_tolerance,
            });
        }
        Ok(())
    }

    /// A sample: its metric name, labels and timestamp (none is `now`).
    pub fn sample(
        &self,
        metric: &str,
        labels: &Labels,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        if metric.len() > self.max_label_value_bytes {
            return Err(Refusal::MetricNameBytes {
                bytes: metric.len(),
                max: self.max_label_value_bytes,
            });
        }
        self.labels(labels)?;
        match at {
            Some(at) => self.time("timestamp", at, now),
            None => Ok(()),
        }
    }

    /// An alert from another system: labels, annotations, `generatorURL` and
    /// `startsAt`. (`endsAt` may be far ahead: that is an alert that does not
    /// expire on its own.)
    pub fn alert<'a>(
        &self,
        labels: &Labels,
        annotations: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
        generator_url: Option<&'a str>,
        starts_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.labels(labels)?;
        if annotations.len() > self.max_labels {
            return Err(Refusal::TooManyAnnotations {
                count: annotations.len(),
                max: self.max_labels,
            });
        }
        if let Some((name, _)) = annotations
            .clone()
            .find(|(k, _)| k.len() > self.max_label_name_bytes)
        {
            return Err(Refusal::LabelNameBytes {
                name: name.to_string(),
                bytes: name.len(),
                max: self.max_label_name_bytes,
            });
        }
        let texts = annotations.chain(generator_url.map(|u| ("generatorURL", u)));
        for (name, value) in texts {
            if value.len() > self.max_annotation_value_bytes {
                return Err(Refusal::AnnotationValueBytes {
                    name: name.to_string(),
                    bytes: value.len(),
                    max: self.max_annotation_value_bytes,
                });
            }
        }
        self.time("startsAt", starts_at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_764_374_400_000); // 2025-11-29T00:00:00Z

    fn bounds() -> Bounds {
        Bounds {
            max_labels: 3,
            max_label_name_bytes: 8,
            max_label_value_bytes: 16,
            max_annotation_value_bytes: 32,
            future_tolerance: Duration::from_secs(600),
        }
    }

    #[test]
    fn bytes_are_bounded_with_the_field_named() {
        let b = bounds();
        let ok = Labels::from_pairs([("host", "bot-1")]);
        assert_eq!(b.sample("up", &ok, None, NOW), Ok(()));
        let long_value = Labels::from_pairs([("host", "x".repeat(17))]);
        let refused = b.sample("up", &long_value, None, NOW).unwrap_err();
        assert_eq!(refused.reason(), "label_value_bytes");
        assert_eq!(
            refused.to_string(),
            "label \"host\": value is 17 bytes, at most 16 (limits.max_label_value_bytes)"
        );
        let long_name = Labels::from_pairs([("n".repeat(100), "v")]);
        let refused = b.sample("up", &long_name, None, NOW).unwrap_err();
        assert_eq!(refused.reason(), "label_name_bytes");
        assert!(
            refused
                .to_string()
                .starts_with(&format!("label name {:?}… is 100 bytes", "n".repeat(SHOWN))),
            "{refused}"
        );
        let many = Labels::from_pairs([("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        assert_eq!(
            b.sample("up", &many, None, NOW).unwrap_err().to_string(),
            "4 labels, at most 3"
        );
        assert_eq!(
            b.sample(&"m".repeat(17), &ok, None, NOW)
                .unwrap_err()
                .reason(),
            "label_value_bytes"
        );
        let notes = std::collections::BTreeMap::from([("summary".to_string(), "s".repeat(33))]);
        let refused = b
            .alert(
                &ok,
                notes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                None,
                NOW,
                NOW,
            )
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "annotation \"summary\": value is 33 bytes, at most 32 \
             (limits.max_annotation_value_bytes)"
        );
        let url = "http://x/".repeat(4);
        let refused = b
            .alert(&ok, std::iter::empty(), Some(&url), NOW, NOW)
            .unwrap_err();
        assert_eq!(refused.reason(), "annotation_value_bytes");
        assert!(refused.to_string().contains("generatorURL"));
    }

    #[test]
    fn the_future_is_refused_and_a_wrong_unit_is_named() {
        let b = bounds();
        let labels = Labels::new();
        assert_eq!(
            b.sample("up", &labels, Some(NOW + Duration::from_secs(600)), NOW),
            Ok(())
        );
        let year_9999 = Timestamp(253_402_300_799_000);
        let refused = b.sample("up", &labels, Some(year_9999), NOW).unwrap_err();
        assert_eq!(refused.reason(), "future_timestamp");
        assert_eq!(
            refused.to_string(),
            "timestamp 253402300799000 (9999-12-31T23:59:59.000Z) is more than 10m ahead of \
             tocsin's clock (2025-11-29T00:00:00.000Z); limits.future_tolerance"
        );
        let micros = Timestamp(NOW.0 * 1000 + 123);
        assert!(
            b.sample("up", &labels, Some(micros), NOW)
                .unwrap_err()
                .to_string()
                .ends_with(
                    ": it looks like microseconds; tocsin reads milliseconds since the epoch \
                     (1764374400000 would be 2025-11-29T00:00:00.000Z)"
                )
        );
        let nanos = Timestamp(NOW.0 * 1_000_000);
        assert!(
            b.sample("up", &labels, Some(nanos), NOW)
                .unwrap_err()
                .to_string()
                .contains("it looks like nanoseconds"),
        );
        let refused = b
            .alert(&labels, std::iter::empty(), None, year_9999, NOW)
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("startsAt 9999-12-31T23:59:59.000Z is more than 10m ahead"),
            "{refused}"
        );
    }
}

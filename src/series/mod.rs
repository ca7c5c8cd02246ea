//! In-memory time series, keyed by metric name and label set, each keeping only the
//! samples the loaded rules can read: the longest window plus the staleness lookback.
//!
//! Memory is bounded twice: a per-series sample cap and a total series limit. A
//! sample that would break either is refused with a [`SeriesError`]; what is already
//! held is never evicted to make room, so existing alerts are unaffected.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::labels::Labels;

/// Prometheus' stale marker: a NaN with this exact bit pattern ends a series at its
/// timestamp, so an instant read after it finds no data.
pub const STALE_NAN_BITS: u64 = 0x7ff0000000000002;

pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: Timestamp,
    pub v: f64,
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// How far back the store keeps samples: the longest rule window plus the lookback.
    pub retention: Duration,
    /// How long after its last sample a series still has a value (Prometheus: 5m).
    pub lookback: Duration,
    pub max_series: usize,
    pub max_samples_per_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            retention: Duration::from_secs(3600) + Duration::from_secs(300),
            lookback: Duration::from_secs(300),
            max_series: 1_000_000,
            max_samples_per_series: 100_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("series limit of {limit} reached; new series are refused")]
    TooManySeries { limit: usize },
    #[error("series {metric}{labels} holds {limit} samples, its cap; sample refused")]
    TooManySamples {
        metric: String,
        labels: Labels,
        limit: usize,
    },
    #[error("sample at {at} is older than the newest sample of {metric}{labels}")]
    OutOfOrder {
        metric: String,
        labels: Labels,
        at: i64,
    },
}

/// A series' samples in time order.
#[derive(Clone, Debug, Default)]
pub struct Series {
    samples: VecDeque<Sample>,
    /// The newest sample, kept inline: an instant read at `now` (the common case)
    /// then needs no trip to the sample buffer.
    last: Option<Sample>,
}

impl Series {
    /// The samples with `from <= t <= to` (both ends included, as in Prometheus 2.x),
    /// stale markers left out.
    pub fn range(&self, from: Timestamp, to: Timestamp) -> impl Iterator<Item = Sample> + '_ {
        // The ring buffer's two halves are each sorted: search them as slices, which
        // is much cheaper than indexing through the deque.
        let (a, b) = self.samples.as_slices();
        let (a, b) = (within(a, from, to), within(b, from, to));
        a.iter().chain(b).filter(|s| !is_stale_marker(s.v)).copied()
    }

    /// The latest sample at or before `at` within `lookback`, unless it is a stale
    /// marker (the series ended).
    pub fn instant(&self, at: Timestamp, lookback: Duration) -> Option<Sample> {
        let s = match self.last {
            Some(last) if last.t <= at => last,
            _ => {
                let end = self.samples.partition_point(|s| s.t <= at);
                *self.samples.get(end.checked_sub(1)?)?
            }
        };
        (s.t >= at - lookback && !is_stale_marker(s.v)).then_some(s)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn last_t(&self) -> Option<Timestamp> {
        self.last.map(|s| s.t)
    }
}

/// The part of a sorted slice with `from <= t <= to`.
fn within(half: &[Sample], from: Timestamp, to: Timestamp) -> &[Sample] {
    let start = half.partition_point(|s| s.t < from);
    let end = half.partition_point(|s| s.t <= to);
    &half[start..end.max(start)]
}

/// All series of one metric name.
#[derive(Debug, Default)]
pub struct Metric {
    pub series: HashMap<Labels, Series>,
}

#[derive(Debug, Default)]
pub struct SeriesStore {
    limits: Limits,
    metrics: HashMap<String, Metric>,
    series_count: usize,
    sample_count: usize,
}

impl SeriesStore {
    pub fn new(limits: Limits) -> Self {
        SeriesStore {
            limits,
            ..Default::default()
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes retention (after a rules reload); samples now out of reach go at the
    /// next append or `trim`.
    pub fn set_retention(&mut self, retention: Duration) {
        self.limits.retention = retention;
    }

    /// Appends one sample. Samples of a series arrive in time order; one at the same
    /// timestamp as the newest replaces it (a re-sent sample), an older one is refused.
    pub fn append(&mut self, metric: &str, labels: &Labels, s: Sample) -> Result<(), SeriesError> {
        let cutoff = s.t - self.limits.retention;
        let m = match self.metrics.get_mut(metric) {
            Some(m) => m,
            None => self.metrics.entry(metric.to_string()).or_default(),
        };
        let series = match m.series.get_mut(labels) {
            Some(series) => series,
            None => {
                if self.series_count >= self.limits.max_series {
                    return Err(SeriesError::TooManySeries {
                        limit: self.limits.max_series,
                    });
                }
                self.series_count += 1;
                m.series.entry(labels.clone()).or_default()
            }
        };
        match series.last_t() {
            Some(last) if s.t < last => {
                return Err(SeriesError::OutOfOrder {
                    metric: metric.to_string(),
                    labels: labels.clone(),
                    at: s.t.0,
                });
            }
            Some(last) if s.t == last => {
                *series.samples.back_mut().expect("non-empty") = s;
                series.last = Some(s);
                return Ok(());
            }
            _ => {}
        }
        while series.samples.front().is_some_and(|f| f.t < cutoff) {
            series.samples.pop_front();
            self.sample_count -= 1;
        }
        if series.samples.len() >= self.limits.max_samples_per_series {
            return Err(SeriesError::TooManySamples {
                metric: metric.to_string(),
                labels: labels.clone(),
                limit: self.limits.max_samples_per_series,
            });
        }
        series.samples.push_back(s);
        series.last = Some(s);
        self.sample_count += 1;
        Ok(())
    }

    /// Whether a batch of samples would all be accepted, without changing anything,
    /// so an ingest request can be refused whole. Returns the index of the first
    /// sample that would be refused, and why.
    pub fn check_batch<'b>(
        &self,
        batch: impl IntoIterator<Item = (&'b str, &'b Labels, Timestamp)>,
    ) -> Result<(), (usize, SeriesError)> {
        let mut newest: std::collections::HashMap<(&str, &Labels), Timestamp> = Default::default();
        // Samples this batch adds to each series before the one being checked.
        let mut added: std::collections::HashMap<(&str, &Labels), usize> = Default::default();
        let mut new_series = 0;
        for (i, (metric, labels, t)) in batch.into_iter().enumerate() {
            let held = self.metrics.get(metric).and_then(|m| m.series.get(labels));
            let last = newest
                .get(&(metric, labels))
                .copied()
                .or_else(|| held.and_then(Series::last_t));
            if held.is_none() && !newest.contains_key(&(metric, labels)) {
                new_series += 1;
                if self.series_count + new_series > self.limits.max_series {
                    return Err((
                        i,
                        SeriesError::TooManySeries {
                            limit: self.limits.max_series,
                        },
                    ));
                }
            }
            if last.is_some_and(|last| t < last) {
                let e = SeriesError::OutOfOrder {
                    metric: metric.to_string(),
                    labels: labels.clone(),
                    at: t.0,
                };
                return Err((i, e));
            }
            // A sample at the newest timestamp replaces it; any other adds one, and
            // `append` refuses it at the cap (after dropping what fell out of
            // retention): refuse the batch now rather than take half of it.
            if last != Some(t) {
                let count = added.entry((metric, labels)).or_default();
                let cutoff = t - self.limits.retention;
                let kept = held.map_or(0, |s| {
                    s.samples.len() - s.samples.partition_point(|x| x.t < cutoff)
                });
                if kept + *count >= self.limits.max_samples_per_series {
                    let e = SeriesError::TooManySamples {
                        metric: metric.to_string(),
                        labels: labels.clone(),
                        limit: self.limits.max_samples_per_series,
                    };
                    return Err((i, e));
                }
                *count += 1;
            }
            newest.insert((metric, labels), t);
        }
        Ok(())
    }

    /// Drops samples older than the retention and series left empty.
    pub fn trim(&mut self, now: Timestamp) {
        let cutoff = now - self.limits.retention;
        let mut dropped_series = 0;
        let mut dropped_samples = 0;
        for m in self.metrics.values_mut() {
            m.series.retain(|_, s| {
                while s.samples.front().is_some_and(|f| f.t < cutoff) {
                    s.samples.pop_front();
                    dropped_samples += 1;
                }
                let keep = !s.samples.is_empty();
                if !keep {
                    dropped_series += 1;
                }
                keep
            });
        }
        self.metrics.retain(|_, m| !m.series.is_empty());
        self.series_count -= dropped_series;
        self.sample_count -= dropped_samples;
    }

    /// The series of one metric; the evaluator reads only the metrics a rule names.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.get(name)
    }

    pub fn series_count(&self) -> usize {
        self.series_count
    }

    pub fn sample_count(&self) -> usize {
        self.sample_count
    }

    /// Bytes held by sample buffers (capacity, not just length): for the memory budget.
    pub fn sample_bytes(&self) -> usize {
        self.metrics
            .values()
            .flat_map(|m| m.series.values())
            .map(|s| s.samples.capacity() * std::mem::size_of::<Sample>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn store() -> SeriesStore {
        SeriesStore::new(Limits {
            retention: Duration::from_secs(600),
            lookback: Duration::from_secs(300),
            max_series: 2,
            max_samples_per_series: 100,
        })
    }

    #[test]
    fn instant_reads_the_latest_sample_within_the_lookback() {
        let mut s = store();
        let l = Labels::from_pairs([("host", "a")]);
        s.append("cpu", &l, Sample { t: at(0), v: 1.0 }).unwrap();
        s.append("cpu", &l, Sample { t: at(60), v: 2.0 }).unwrap();
        let series = &s.metric("cpu").unwrap().series[&l];
        let lookback = Duration::from_secs(300);
        assert_eq!(series.instant(at(30), lookback).unwrap().v, 1.0);
        assert_eq!(series.instant(at(360), lookback).unwrap().v, 2.0);
        assert_eq!(
            series.instant(at(361), lookback),
            None,
            "stale after the lookback"
        );
    }

    #[test]
    fn a_stale_marker_ends_the_series() {
        let mut s = store();
        let l = Labels::new();
        s.append("up", &l, Sample { t: at(0), v: 1.0 }).unwrap();
        s.append(
            "up",
            &l,
            Sample {
                t: at(60),
                v: stale_marker(),
            },
        )
        .unwrap();
        let series = &s.metric("up").unwrap().series[&l];
        assert!(series.instant(at(30), Duration::from_secs(300)).is_some());
        assert_eq!(series.instant(at(61), Duration::from_secs(300)), None);
        assert_eq!(series.range(at(0), at(120)).count(), 1);
    }

    #[test]
    fn retention_drops_old_samples_and_limits_refuse_new_series() {
        let mut s = store();
        let a = Labels::from_pairs([("host", "a")]);
        for i in 0..100 {
            s.append(
                "cpu",
                &a,
                Sample {
                    t: at(i * 60),
                    v: i as f64,
                },
            )
            .unwrap();
        }
        // 600 s of retention at one sample a minute: the newest 11 samples remain.
        assert_eq!(s.sample_count(), 11);
        s.append(
            "cpu",
            &Labels::from_pairs([("host", "b")]),
            Sample { t: at(0), v: 0.0 },
        )
        .unwrap();
        let err = s.append(
            "cpu",
            &Labels::from_pairs([("host", "c")]),
            Sample { t: at(0), v: 0.0 },
        );
        assert_eq!(err, Err(SeriesError::TooManySeries { limit: 2 }));
        assert_eq!(s.series_count(), 2);
        s.trim(at(100 * 60 + 3600));
        assert_eq!((s.series_count(), s.sample_count()), (0, 0));
    }

    #[test]
    fn out_of_order_samples_are_refused_and_duplicates_replace() {
        let mut s = store();
        let l = Labels::new();
        s.append("x", &l, Sample { t: at(60), v: 1.0 }).unwrap();
        assert!(matches!(
            s.append("x", &l, Sample { t: at(0), v: 1.0 }),
            Err(SeriesError::OutOfOrder { .. })
        ));
        s.append("x", &l, Sample { t: at(60), v: 5.0 }).unwrap();
        assert_eq!(s.sample_count(), 1);
        assert_eq!(
            s.metric("x").unwrap().series[&l]
                .instant(at(60), Duration::from_secs(1))
                .unwrap()
                .v,
            5.0
        );
    }
}

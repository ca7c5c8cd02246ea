//! In-memory time series, keyed by metric name and label set, each keeping only the
//! samples the loaded rules can read: the longest window plus the staleness lookback.
//!
//! Memory is bounded twice: a per-series sample cap and a total series limit. A
//! sample that would break either is refused with a [`SeriesError`]; what is already
//! held is never evicted to make room, so existing alerts are unaffected.

mod buffer;

use std::borrow::Cow;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::labels::Labels;

use buffer::Buffer;

/// Prometheus' stale marker: a NaN with this exact bit pattern ends a series at its
/// timestamp, so an instant read after it finds no data.
pub const STALE_NAN_BITS: u64 = 0x7ff0000000000002;

pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A sample on its way in, from a push or a scrape: name and labels already
/// checked, the timestamp its source gave (`None` means "when ingested"). What the
/// store may still refuse (limits, order) it refuses at ingestion.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingSample {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub at: Option<Timestamp>,
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

/// One series as the evaluator reads it: its newest sample, kept beside the label
/// sets (an instant read at `now`, the common case, needs no trip to the sample
/// buffer), and its buffer.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    newest: Sample,
    buffer: &'a Buffer,
}

impl<'a> Series<'a> {
    /// The samples with `from <= t <= to` (both ends included, as in Prometheus 2.x),
    /// stale markers left out: the stored slice itself unless the series has any.
    pub fn range(&self, from: Timestamp, to: Timestamp) -> Cow<'a, [Sample]> {
        let window = self.buffer.window(from, to);
        if self.buffer.has_stale_markers() {
            Cow::Owned(
                window
                    .iter()
                    .filter(|s| !is_stale_marker(s.v))
                    .copied()
                    .collect(),
            )
        } else {
            Cow::Borrowed(window)
        }
    }

    /// The latest sample at or before `at` within `lookback`, unless it is a stale
    /// marker (the series ended).
    pub fn instant(&self, at: Timestamp, lookback: Duration) -> Option<Sample> {
        let s = if self.newest.t <= at {
            self.newest
        } else {
            self.buffer.at_or_before(at)?
        };
        (s.t >= at - lookback && !is_stale_marker(s.v)).then_some(s)
    }

    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// How many samples (stale markers included) are at or after `from`: what
    /// survives a trim at that cutoff.
    pub fn count_since(&self, from: Timestamp) -> usize {
        self.buffer.window(from, Timestamp(i64::MAX)).len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }
}

/// All series of one metric name, stored column-wise in insertion order: reading
/// every series of a metric (what a rule does) walks the label sets and newest
/// samples as two dense arrays, and only window functions touch the sample buffers.
#[derive(Debug, Default)]
pub struct Metric {
    labels: Vec<Labels>,
    newest: Vec<Sample>,
    buffers: Vec<Buffer>,
    /// Label set → position. Labels hash as their precomputed fingerprint.
    index: FxHashMap<Labels, u32>,
}

impl Metric {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The label sets of the series, by position.
    pub fn labels(&self) -> &[Labels] {
        &self.labels
    }

    /// The series at a position (`0..len()`).
    pub fn series(&self, i: usize) -> Series<'_> {
        Series {
            newest: self.newest[i],
            buffer: &self.buffers[i],
        }
    }

    pub fn get(&self, labels: &Labels) -> Option<Series<'_>> {
        self.index.get(labels).map(|&i| self.series(i as usize))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Labels, Series<'_>)> {
        (0..self.len()).map(|i| (&self.labels[i], self.series(i)))
    }

    /// Asks the CPU to start loading the newest samples of series `i`, a few series
    /// before a window function reads them. Each buffer is its own allocation, so
    /// without this every window read waits for memory in turn; with it, the loads
    /// of several series overlap. A hint only: never faults, changes no result.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(b) = self.buffers.get(i) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let newest = b.newest_ptr();
            // The newest samples and the cache line before them: a short window.
            let earlier = newest.wrapping_sub(4);
            // SAFETY: a prefetch is a hint that never dereferences or faults, whatever
            // the address; SSE is part of the x86_64 baseline.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(newest.cast());
                _mm_prefetch::<_MM_HINT_T0>(earlier.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    fn push_series(&mut self, labels: &Labels, s: Sample) {
        let mut buffer = Buffer::default();
        buffer.push(s);
        self.index.insert(labels.clone(), self.labels.len() as u32);
        self.labels.push(labels.clone());
        self.newest.push(s);
        self.buffers.push(buffer);
    }

    /// Removes the series at `i`; the last series takes its place.
    fn swap_remove(&mut self, i: usize) {
        let labels = self.labels.swap_remove(i);
        self.newest.swap_remove(i);
        self.buffers.swap_remove(i);
        self.index.remove(&labels);
        if let Some(moved) = self.labels.get(i) {
            self.index.insert(moved.clone(), i as u32);
        }
    }
}

#[derive(Debug, Default)]
pub struct SeriesStore {
    limits: Limits,
    metrics: FxHashMap<String, Metric>,
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
        let Some(&i) = m.index.get(labels) else {
            if self.series_count >= self.limits.max_series {
                return Err(SeriesError::TooManySeries {
                    limit: self.limits.max_series,
                });
            }
            m.push_series(labels, s);
            self.series_count += 1;
            self.sample_count += 1;
            return Ok(());
        };
        let i = i as usize;
        let newest = m.newest[i];
        if s.t < newest.t {
            return Err(SeriesError::OutOfOrder {
                metric: metric.to_string(),
                labels: labels.clone(),
                at: s.t.0,
            });
        }
        let buffer = &mut m.buffers[i];
        if s.t == newest.t {
            buffer.replace_newest(s);
            m.newest[i] = s;
            return Ok(());
        }
        self.sample_count -= buffer.drop_before(cutoff);
        if buffer.len() >= self.limits.max_samples_per_series {
            return Err(SeriesError::TooManySamples {
                metric: metric.to_string(),
                labels: labels.clone(),
                limit: self.limits.max_samples_per_series,
            });
        }
        buffer.push(s);
        m.newest[i] = s;
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
        let batch = batch.into_iter();
        let mut newest: FxHashMap<(&str, &Labels), Timestamp> =
            FxHashMap::with_capacity_and_hasher(batch.size_hint().0, Default::default());
        // Samples this batch adds to each series before the one being checked.
        let mut added: FxHashMap<(&str, &Labels), usize> = Default::default();
        let mut new_series = 0;
        for (i, (metric, labels, t)) in batch.enumerate() {
            let held = self.metrics.get(metric).and_then(|m| m.get(labels));
            let seen = newest.get(&(metric, labels)).copied();
            let last = seen.or_else(|| held.map(|s| s.newest.t));
            if held.is_none() && seen.is_none() {
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
                let kept = held.map_or(0, |s| s.count_since(cutoff));
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
        for m in self.metrics.values_mut() {
            // Backwards, so a swap-removal only moves series already visited.
            for i in (0..m.len()).rev() {
                self.sample_count -= m.buffers[i].drop_before(cutoff);
                if m.buffers[i].is_empty() {
                    m.swap_remove(i);
                    self.series_count -= 1;
                }
            }
        }
        self.metrics.retain(|_, m| !m.is_empty());
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
            .flat_map(|m| m.buffers.iter())
            .map(Buffer::capacity_bytes)
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
        let series = &s.metric("cpu").unwrap().get(&l).unwrap();
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
        let series = &s.metric("up").unwrap().get(&l).unwrap();
        assert!(series.instant(at(30), Duration::from_secs(300)).is_some());
        assert_eq!(series.instant(at(61), Duration::from_secs(300)), None);
        assert_eq!(series.range(at(0), at(120)).len(), 1);
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
            s.metric("x")
                .unwrap()
                .get(&l)
                .unwrap()
                .instant(at(60), Duration::from_secs(1))
                .unwrap()
                .v,
            5.0
        );
    }
}

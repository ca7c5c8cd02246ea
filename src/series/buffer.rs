//! One series' samples: a contiguous, time-ordered buffer that drops its oldest
//! samples from the front.
//!
//! Contiguous (a `Vec` and a start index, not a ring) so a window is one slice that
//! the window functions read in place, and a search for the window's start walks
//! back from the newest sample: a window read touches the cache lines of the window
//! and no others.

use crate::clock::Timestamp;

use super::{Sample, is_stale_marker};

#[derive(Clone, Debug, Default)]
pub struct Buffer {
    /// `samples[start..]` are live; the ones before are dropped and await compaction.
    samples: Vec<Sample>,
    start: usize,
    /// Stale markers among the live samples: when there are none (nearly always), a
    /// window is handed out as it is stored, with no copy to filter them.
    stale: u32,
}

impl Buffer {
    pub fn live(&self) -> &[Sample] {
        &self.samples[self.start..]
    }

    pub fn len(&self) -> usize {
        self.samples.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn has_stale_markers(&self) -> bool {
        self.stale > 0
    }

    /// Bytes reserved for samples, for the memory budget.
    pub fn capacity_bytes(&self) -> usize {
        self.samples.capacity() * std::mem::size_of::<Sample>()
    }

    /// A pointer to the newest sample, for prefetching; never dereferenced here.
    pub fn newest_ptr(&self) -> *const Sample {
        self.samples
            .as_ptr()
            .wrapping_add(self.samples.len().saturating_sub(1))
    }

    /// Replaces the newest sample (a re-sent sample at the same timestamp).
    pub fn replace_newest(&mut self, s: Sample) {
        if let Some(last) = self.samples.last_mut() {
            self.stale -= is_stale_marker(last.v) as u32;
            self.stale += is_stale_marker(s.v) as u32;
            *last = s;
        }
    }

    /// Appends a sample newer than every held one.
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.samples.capacity() {
            self.make_room();
        }
        self.stale += is_stale_marker(s.v) as u32;
        self.samples.push(s);
    }

    /// Before a push into a full buffer: slide the live samples to the front when an
    /// eighth of the buffer is dead (at most 7 samples moved per push, amortised),
    /// else grow by half (so a steady series settles at 1.14 to 1.7 times its live
    /// samples, not the 1 to 2 times of doubling).
    fn make_room(&mut self) {
        let cap = self.samples.capacity();
        if self.start > 0 && self.start >= cap / 8 {
            self.samples.drain(..self.start);
            self.start = 0;
        } else {
            self.samples.reserve_exact((cap / 2).max(4));
        }
    }

    /// Drops samples older than `cutoff`; returns how many.
    pub fn drop_before(&mut self, cutoff: Timestamp) -> usize {
        // Called on every append: usually nothing is due, and the oldest sample says
        // so without a search through the buffer (which would touch its middle).
        match self.live().first() {
            Some(oldest) if oldest.t < cutoff => {}
            _ => return 0,
        }
        let dropped = self.live().partition_point(|s| s.t < cutoff);
        if dropped == 0 {
            return 0;
        }
        let gone = &self.samples[self.start..self.start + dropped];
        if self.stale > 0 {
            self.stale -= gone.iter().filter(|s| is_stale_marker(s.v)).count() as u32;
        }
        self.start += dropped;
        if self.is_empty() {
            self.samples = Vec::new();
            self.start = 0;
        } else if self.len() * 4 < self.samples.capacity() && self.samples.capacity() > 16 {
            // A series that slowed down gives memory back.
            self.samples.drain(..self.start);
            self.start = 0;
            self.samples.shrink_to(self.len() * 2);
        }
        dropped
    }

    /// The samples with `from <= t <= to`, stale markers included.
    pub fn window(&self, from: Timestamp, to: Timestamp) -> &[Sample] {
        let live = self.live();
        let end = newest_at_or_before(live, to);
        let live = &live[..end];
        let start = first_at_or_after(live, from);
        &live[start..]
    }

    /// The newest sample at or before `at`.
    pub fn at_or_before(&self, at: Timestamp) -> Option<Sample> {
        let live = self.live();
        let end = newest_at_or_before(live, at);
        end.checked_sub(1).map(|i| live[i])
    }
}

/// How many samples have `t <= to`: searched from the newest end, where `to` (usually
/// now) nearly always is.
fn newest_at_or_before(live: &[Sample], to: Timestamp) -> usize {
    match live.last() {
        Some(last) if last.t <= to => live.len(),
        _ => live.partition_point(|s| s.t <= to),
    }
}

/// The index of the first sample with `t >= from`. A window is usually the newest
/// part of the buffer, so gallop back from the end (1, 2, 4, ... samples) and search
/// only the last step: the reads stay within the window's own cache lines.
fn first_at_or_after(live: &[Sample], from: Timestamp) -> usize {
    let n = live.len();
    let mut step = 1;
    let mut hi = n;
    while step <= n {
        let i = n - step;
        if live[i].t < from {
            return i + 1 + live[i + 1..hi].partition_point(|s| s.t < from);
        }
        hi = i;
        step *= 2;
    }
    live[..hi].partition_point(|s| s.t < from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::stale_marker;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn filled(n: i64) -> Buffer {
        let mut b = Buffer::default();
        for i in 0..n {
            b.push(Sample {
                t: at(i),
                v: i as f64,
            });
        }
        b
    }

    #[test]
    fn windows_agree_with_a_plain_filter_at_every_boundary() {
        for n in 0..40 {
            let b = filled(n);
            for from in -2..n + 2 {
                for to in from - 1..n + 2 {
                    let want: Vec<Sample> = b
                        .live()
                        .iter()
                        .copied()
                        .filter(|s| s.t >= at(from) && s.t <= at(to))
                        .collect();
                    assert_eq!(b.window(at(from), at(to)), &want[..], "n={n} {from}..={to}");
                }
            }
        }
    }

    #[test]
    fn dropping_and_pushing_keeps_order_and_bounded_capacity() {
        let mut b = Buffer::default();
        for i in 0..10_000 {
            b.push(Sample {
                t: at(i),
                v: i as f64,
            });
            b.drop_before(at(i - 99));
            assert_eq!(b.len(), (i + 1).min(100) as usize);
            assert_eq!(b.live()[0].t, at((i - 99).max(0)));
        }
        assert!(
            b.capacity_bytes() <= 2 * 100 * std::mem::size_of::<Sample>(),
            "{} bytes for 100 samples",
            b.capacity_bytes()
        );
    }

    #[test]
    fn stale_markers_are_counted_in_and_out() {
        let mut b = filled(3);
        b.push(Sample {
            t: at(3),
            v: stale_marker(),
        });
        assert!(b.has_stale_markers());
        b.replace_newest(Sample { t: at(3), v: 1.0 });
        assert!(!b.has_stale_markers());
        b.replace_newest(Sample {
            t: at(3),
            v: stale_marker(),
        });
        b.drop_before(at(4));
        assert!(!b.has_stale_markers());
        assert!(b.is_empty());
    }
}

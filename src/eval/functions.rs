//! Window functions over one series' samples, with Prometheus 2.42's semantics so
//! that results match `promtool test rules` (extrapolated `rate`/`increase`, counter
//! resets, least-squares `deriv`/`predict_linear`).

use crate::clock::Timestamp;
use crate::rules::model::WindowFn;
use crate::series::Sample;

/// Applies `f` to the samples of `[now - range, now]`. `None` is "no result for this
/// series", as PromQL drops series with too few samples.
pub fn apply(
    f: WindowFn,
    samples: &[Sample],
    now: Timestamp,
    range_secs: f64,
    ahead_secs: f64,
) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let values = samples.iter().map(|s| s.v);
    match f {
        WindowFn::Avg => Some(mean(samples)),
        WindowFn::Min => values.reduce(f64::min),
        WindowFn::Max => values.reduce(f64::max),
        WindowFn::Sum => Some(kahan_sum(values)),
        WindowFn::Count => Some(samples.len() as f64),
        WindowFn::Rate => extrapolated_rate(samples, now, range_secs, true, true),
        WindowFn::Increase => extrapolated_rate(samples, now, range_secs, true, false),
        WindowFn::Deriv => (samples.len() >= 2).then(|| linear_regression(samples, samples[0].t).0),
        WindowFn::Predict => (samples.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(samples, now);
            slope * ahead_secs + intercept
        }),
        // Evaluated per selector, not per series: see eval.
        WindowFn::Absent => None,
    }
}

/// Prometheus' `kahanSumInc`: Kahan–Neumaier compensated addition.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' `sum_over_time`.
fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// Prometheus' `avg_over_time`: an incremental mean with compensated addition, which
/// stays accurate for large values.
fn mean(samples: &[Sample]) -> f64 {
    let (mut mean, mut c, mut count) = (0.0_f64, 0.0, 0.0);
    for s in samples {
        count += 1.0;
        if mean.is_infinite() {
            if s.v.is_infinite() && (mean > 0.0) == (s.v > 0.0) {
                // The mean stays at this infinity.
                continue;
            }
            if !s.v.is_infinite() && !s.v.is_nan() {
                // Any finite sample leaves an infinite mean as it is.
                continue;
            }
        }
        (mean, c) = kahan_inc(s.v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

/// Prometheus' `extrapolatedRate` (promql/functions.go, 2.42): the increase between
/// the first and last sample, corrected for counter resets, extrapolated towards the
/// window's edges (but not past where the counter would have been zero).
fn extrapolated_rate(
    samples: &[Sample],
    now: Timestamp,
    range_secs: f64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let range_start = now.as_secs_f64() - range_secs;
    let range_end = now.as_secs_f64();
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = 0.0;
        for s in samples {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let mut to_start = first.t.as_secs_f64() - range_start;
    let to_end = range_end - last.t.as_secs_f64();
    let sampled = last.t.as_secs_f64() - first.t.as_secs_f64();
    let average_gap = sampled / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    // The factor is built first and applied once, in Prometheus' order, so the last
    // digits agree with promtool.
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range_secs;
    }
    Some(result * factor)
}

/// Least squares over (t - origin, v): (slope per second, intercept at origin), as
/// Prometheus' `linearRegression` computes it (compensated sums).
fn linear_regression(samples: &[Sample], origin: Timestamp) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let init_y = samples[0].v;
    let mut const_y = true;
    for (i, s) in samples.iter().enumerate() {
        if const_y && i > 0 && s.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t.0 - origin.0) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(s.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * s.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(t, v)| Sample {
                t: Timestamp::from_secs(t),
                v,
            })
            .collect()
    }

    #[test]
    fn increase_extrapolates_like_prometheus() {
        // A counter going up 1 per minute, read over 5m at t=10m: samples at 5..10m
        // (6 samples, start point included) span the whole window: increase is 5.
        let s = series(&[
            (300, 5.0),
            (360, 6.0),
            (420, 7.0),
            (480, 8.0),
            (540, 9.0),
            (600, 10.0),
        ]);
        let v = apply(
            WindowFn::Increase,
            &s,
            Timestamp::from_secs(600),
            300.0,
            0.0,
        )
        .unwrap();
        assert!((v - 5.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn counter_resets_count_as_increases() {
        let s = series(&[(0, 10.0), (60, 20.0), (120, 5.0), (180, 15.0)]);
        let v = apply(
            WindowFn::Increase,
            &s,
            Timestamp::from_secs(180),
            180.0,
            0.0,
        )
        .unwrap();
        // 15 - 10, plus the 20 counted before the counter restarted from zero.
        assert!((v - 25.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn predict_forecasts_a_linear_trend() {
        // Falling 1% an hour from 30%: in 24h it is at 6%.
        let s: Vec<Sample> = (0..=6)
            .map(|h| Sample {
                t: Timestamp::from_secs(h * 3600),
                v: 0.30 - 0.01 * h as f64,
            })
            .collect();
        let v = apply(
            WindowFn::Predict,
            &s,
            Timestamp::from_secs(6 * 3600),
            6.0 * 3600.0,
            86400.0,
        )
        .unwrap();
        assert!((v - 0.0).abs() < 1e-9, "{v}");
        let d = apply(
            WindowFn::Deriv,
            &s,
            Timestamp::from_secs(6 * 3600),
            6.0 * 3600.0,
            0.0,
        )
        .unwrap();
        assert!((d + 0.01 / 3600.0).abs() < 1e-12, "{d}");
    }

    #[test]
    fn last_digits_match_promtool() {
        // Values printed by `promtool test rules` (Prometheus 2.42) for the same inputs.
        let now = Timestamp::from_secs(120);
        let a = series(&[(0, 7.0), (60, 7.0), (120, 3.0)]);
        assert_eq!(
            apply(WindowFn::Avg, &a, now, 120.0, 0.0),
            Some(5.666666666666666)
        );
        let b = series(&[(0, 0.1), (60, 0.2), (120, 0.3)]);
        assert_eq!(apply(WindowFn::Sum, &b, now, 120.0, 0.0), Some(0.6));
        assert_eq!(
            apply(WindowFn::Deriv, &b, now, 120.0, 0.0),
            Some(0.0016666666666666668)
        );
        assert_eq!(apply(WindowFn::Predict, &b, now, 120.0, 3600.0), Some(6.3));
        let c = series(&[(0, 0.0), (60, 1.0), (120, 2.0), (180, 5.0)]);
        let rate = apply(WindowFn::Rate, &c, Timestamp::from_secs(180), 180.0, 0.0);
        assert_eq!(rate, Some(0.02777777777777778));
    }
}

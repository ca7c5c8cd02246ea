//! Workloads shared by the benchmarks, so the criterion benches, the scale curve and
//! the profiles in BENCHMARKS.md all measure the same inputs.

#![allow(dead_code)]

pub mod fleet;
pub mod plot;
pub mod rules_text;

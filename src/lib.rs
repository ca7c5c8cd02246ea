//! tocsin: a rule-engine alert manager. See ARCHITECTURE.md for the map.

pub mod clock;
pub mod eval;
pub mod export;
pub mod humanize;
pub mod labels;
pub mod rules;
pub mod series;

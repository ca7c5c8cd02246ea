//! tocsin: a rule-engine alert manager. See ARCHITECTURE.md for the map.

pub mod export;
pub mod rules;

//! tocsin: a rule-engine alert manager. See ARCHITECTURE.md for the map.

pub mod alert;
pub mod app;
pub mod calendar;
pub mod client;
pub mod clock;
pub mod config;
pub mod engine;
pub mod escalation;
pub mod eval;
pub mod export;
pub mod http;
pub mod humanize;
pub mod labels;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod oncall;
pub mod report;
pub mod rules;
pub mod ruletest;
pub mod scrape;
pub mod series;
pub mod signature;
pub mod silence;
pub mod store;
pub mod tls;

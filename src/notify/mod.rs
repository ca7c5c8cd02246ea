//! Notification channels. Only this module talks to the outside world about alerts.

pub mod console;

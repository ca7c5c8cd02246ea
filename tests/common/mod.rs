//! Helpers shared by integration tests that talk to real peers.

use std::path::Path;
use std::process::{Command, Output};

/// Runs Debian's `promtool` in `dir`, or fails saying how CI gets it: a silently
/// skipped check would let tocsin and Prometheus drift apart unnoticed.
pub fn promtool(dir: &Path, args: &[&str]) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run promtool ({e}); it must be on PATH for these tests. \
             CI installs it via `.ci/run` (Debian package `prometheus`)"
        ),
    }
}

#!/usr/bin/env bash
# The one-hour soak (not run in CI): a release build of examples/soak.rs in the
# background; progress in target/soak.log, the summary in scripts/soak-summary.md
# and the samples (RSS, live heap, CPU, ...) in scripts/soak-summary.csv.
#
#   scripts/soak.sh                  # 60 minutes at 12x (12 h of tocsin time)
#   scripts/soak.sh 30 24 scripts/soak-24x-summary.md   # minutes, speed, summary
#   SOAK_FOREGROUND=1 scripts/soak.sh 5 12
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-60}"
speed="${2:-12}"
out="${3:-scripts/soak-summary.md}"
cargo build --release --example soak
cmd=(target/release/examples/soak --minutes "$minutes" --speed "$speed" --out "$out")
if [[ -n "${SOAK_FOREGROUND:-}" ]]; then
  "${cmd[@]}"
else
  nohup "${cmd[@]}" >target/soak.log 2>&1 &
  echo "soak running as pid $!; tail -f target/soak.log"
fi

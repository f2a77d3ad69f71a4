#!/usr/bin/env bash
# The kill -9 loops with many trials, and their figures: for queue runs killed at random
# (trials, messages, delivered, lost, duplicated; against the test server, duplicates split
# by whether the server had answered, and against Postfix's smtp-sink), for submissions
# killed while spooling
# (trials, killed, whole entries, nothing queued, leftovers), both in tests/faults.rs, and
# for background runners killed at random (tests/runner.rs; a quarter as many trials).
#
#   tests/faults/kill-loop.sh            # 200 trials each
#   tests/faults/kill-loop.sh 1000       # more
#   FAULT_SEED=123 tests/faults/kill-loop.sh   # replay a run (the seed is printed)
#
# Uses $CARGO_TARGET_DIR like cargo does. Exits non-zero when a loop lost a message or
# found a damaged entry; the test's own output is shown then.
set -euo pipefail
cd "$(dirname "$0")/../.."

trials=${1:-${FAULT_TRIALS:-200}}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
FAULT_TRIALS=$trials cargo test --test integration -- --nocapture --test-threads=1 \
    faults::kill_minus_9 runner::kill_minus_9 >"$log" 2>&1 || status=$?

grep -oE 'kill -9 during .*|runner kill -9: .*' "$log" || true
grep -E '^test result' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "--- the run failed; its output:"
    tail -n 80 "$log"
fi
exit "$status"

#!/usr/bin/env bash
# Runs every fuzz target for a fixed time (default 8 s each; FUZZ_SECONDS to change, e.g. 600
# for the long local runs), starting from the committed corpus. Exits non-zero on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-8}
for target in $(cargo +nightly fuzz list); do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${secs}s"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=0 2>&1 | tail -n 2
done

#!/usr/bin/env bash
# Runs each libFuzzer target for RUNS executions: seeds from fuzz/corpus/<target> (never
# modified), new coverage kept in BUILD/corpus/<target>, crashing inputs in BUILD/findings.
# Leak checking is off while fuzzing (LibTorch keeps caches, so LeakSanitizer would scan the heap
# after nearly every input, 300x slower); `make test-sanitize` runs the test suite with it on.
# LibTorch allocates the uncompressed size a zip entry declares (up to 4 GiB) before it checks
# it, hence the 8 GiB malloc limit: such allocations are LibTorch's, not crashes.
# Usage: run_fuzz.sh BUILD RUNS TARGET...
set -euo pipefail
build=$1 runs=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/findings"
report="$build/fuzz_report.txt"
: > "$report"
status=0
for t in "$@"; do
  mkdir -p "$build/corpus/$t"
  echo "== $t: $runs executions" | tee -a "$report"
  start=$(date +%s)
  if ! LSAN_OPTIONS=suppressions="$root/fuzz/lsan.supp" "$build/$t" -runs="$runs" -detect_leaks=0 -rss_limit_mb=8192 -malloc_limit_mb=8192 -timeout=30 -print_final_stats=1 \
      -artifact_prefix="$build/findings/$t-" "$build/corpus/$t" "$root/fuzz/corpus/$t" > "$build/$t.log" 2>&1; then
    echo "$t: FAILED, see $build/$t.log and $build/findings" | tee -a "$report"
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done" "$build/$t.log" | tee -a "$report" || true
  echo "wall seconds: $(( $(date +%s) - start ))" | tee -a "$report"
done
exit $status

#!/usr/bin/env bash
# Runs ctest in a build folder and then prints the count of passed, failed and skipped tests,
# each skip with its reason.  Usage: run_ctest.sh LABEL BUILD_DIR [ctest arguments...]
set -uo pipefail
label=$1
dir=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir" || exit 1
# ctest runs tests side by side (-j): OpenMP threads that spin while idle take the cores of the
# test beside them (a 6 s test took 37 s next to a spinning one), so idle threads sleep.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
rm -f ctest-junit.xml
ctest --output-on-failure --output-junit ctest-junit.xml "$@"
rc=$?
if [ -f ctest-junit.xml ]; then
  python3 "$here/ctest_summary.py" ctest-junit.xml "$label" || true
fi
exit $rc

#!/usr/bin/env bash
# Runs ctest in a build folder and then prints the count of passed, failed and skipped tests,
# each skip with its reason.  Usage: run_ctest.sh LABEL BUILD_DIR [ctest arguments...]
set -uo pipefail
label=$1
dir=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir" || exit 1
rm -f ctest-junit.xml
ctest --output-on-failure --output-junit ctest-junit.xml "$@"
rc=$?
if [ -f ctest-junit.xml ]; then
  python3 "$here/ctest_summary.py" ctest-junit.xml "$label" || true
fi
exit $rc

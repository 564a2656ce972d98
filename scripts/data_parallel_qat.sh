#!/usr/bin/env bash
# Starts N ranks of tq_data_parallel_qat on this machine (file-store rendezvous) and waits.
# Usage: data_parallel_qat.sh BUILD N [options for tq_data_parallel_qat]
set -euo pipefail
build=$1 world=$2
shift 2
store=$(mktemp -u)
trap 'rm -f "$store"' EXIT
pids=()
for ((r = 0; r < world; r++)); do
  "$build/apps/demo/tq_data_parallel_qat" --rank "$r" --world-size "$world" --store "$store" "$@" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status

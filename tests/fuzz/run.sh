#!/bin/sh
# Runs each libFuzzer harness for a given time on its corpus, one after the
# other, and prints one line per harness: runs, speed, coverage, corpus.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS NAME...
#
# Seeds come from tests/fuzz/corpus/NAME; what a run adds goes to
# BUILD_DIR/corpus/NAME (kept between runs, so coverage accumulates), and a
# crash leaves its input in BUILD_DIR/artifacts. Exits non-zero if any
# harness found a crash, a leak, a timeout or a sanitizer report.
set -u
build=$1 seconds=$2
shift 2
here=$(dirname "$0")
mkdir -p "$build/artifacts"
failed=""
summary=""
for name in "$@"; do
  mkdir -p "$build/corpus/$name"
  case "$name" in
    http) extra="-max_len=65536 -detect_leaks=0" ;;  # server threads keep memory across runs
    onnx) extra="-max_len=131072" ;;
    image) extra="-max_len=65536" ;;
    *) extra="-max_len=16384" ;;
  esac
  log="$build/fuzz_$name.log"
  # shellcheck disable=SC2086
  "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" $extra \
    "$build/corpus/$name" "$here/corpus/$name" > "$log" 2>&1
  rc=$?
  stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 | \
    sed -E 's/.*#([0-9]+)[^c]*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*exec\/s: ([0-9]+).*/\1 runs, \5 exec\/s, \2 edges, \3 features, corpus \4/')
  if [ $rc -ne 0 ]; then
    failed="$failed $name"
    summary="$summary  fuzz_$name: FAILED (rc $rc): $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log")\n"
    tail -40 "$log" >&2
  else
    summary="$summary  fuzz_$name: ${seconds}s, $stats\n"
  fi
done
printf '== fuzzing\n%b' "$summary"
[ -z "$failed" ] || { echo "fuzzing failed:$failed (inputs in $build/artifacts)"; exit 1; }

#!/bin/sh
# Runs a command without the environment variables that change how visiond
# or its libraries behave: OPENBLAS_* (OpenBLAS's kernel, cache sizes,
# threads), OMP_* and GOMP_* (the OpenMP pool), VISIOND_* (our own knobs and
# the test harness's). Says on stderr which it removed (the values of
# OPENBLAS_* and OMP_* too; VISIOND_* values are never shown).
#
# Why: some hosts set OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE for everyone, and
# a test or a benchmark that inherits them measures the host's choice, not the
# project's. `make test` runs every suite through this script, and each test
# that depends on one of these variables sets it itself.
#
# usage: scripts/clean_env.sh [--quiet] [--keep NAME]... COMMAND [ARG]...
set -eu

quiet=0
keep=" "
while [ $# -gt 0 ]; do
  case "$1" in
    --quiet) quiet=1; shift ;;
    --keep) keep="$keep$2 "; shift 2 ;;
    *) break ;;
  esac
done

removed=""
for name in $(env | sed -n 's/^\(\(OPENBLAS\|G\{0,1\}OMP\|VISIOND\)_[A-Za-z0-9_]*\)=.*/\1/p'); do
  case "$keep" in *" $name "*) continue ;; esac
  # VISIOND_* may hold secrets (API keys): their values are not shown
  case "$name" in
    VISIOND_*) removed="$removed $name" ;;
    *) removed="$removed $name=$(printenv "$name")" ;;
  esac
  unset "$name"
done

if [ -n "$removed" ] && [ "$quiet" = 0 ]; then
  echo "clean_env: cleared from the environment:$removed" >&2
fi
exec "$@"

#!/bin/sh
# The NEON kernels against the portable C ones, by executed instructions
# under qemu-user: a proxy, since no ARM hardware is at hand to time them.
# Instructions are not time (qemu says nothing of latencies, dual issue or
# memory), but on in-order-ish cores like the TK1's Cortex-A15 and for
# kernels that keep their data in L1, fewer instructions per multiply-add
# is most of the story.
#
# For each architecture (arm64, armhf), kernel and kernel set, the driver
# (bench/arm/neon_proxy.c) runs the kernel once and three times on one
# thread; (count(3) - count(1)) / 2 is one run without the set-up.
#
# usage: bench/arm/neon_proxy.sh [arm64|armhf ...]   (default: both)
set -eu
cd "$(dirname "$0")/../.."
arches="${*:-arm64 armhf}"
printf '%-6s %-10s %-11s %12s %10s %9s %9s %9s\n' arch kernel set instructions work \
  "insn/MAC" "fma/MAC" "mem/MAC"
for a in $arches; do
  case "$a" in arm64) qemu=qemu-aarch64 ;; armhf) qemu=qemu-arm ;; *) exit 2 ;; esac
  make --no-print-directory -s ARCH="$a" DEPS=0 "build-$a/neon_proxy" >&2
  for k in direct3x3 direct1x1 winograd depthwise maxpool; do
    for set in neon generic; do
      one=$(VISIOND_CPU_ISA=$set bench/arm/count_insns.py $qemu "build-$a/neon_proxy" $k 1)
      three=$(VISIOND_CPU_ISA=$set bench/arm/count_insns.py $qemu "build-$a/neon_proxy" $k 3)
      echo "$one|$three" | awk -v a="$a" -v k="$k" '{
        split($0, r, "|"); split(r[1], x, " "); split(r[2], y, " ");
        n = (y[1] - x[1]) / 2; f = (y[2] - x[2]) / 2; m = (y[3] - x[3]) / 2; w = x[4];
        printf "%-6s %-10s %-11s %12d %10d %9.3f %9.3f %9.3f\n", a, k,
               x[5] == "NEON" ? "NEON" : "portable", n, w, n / w, f / w, m / w }'
    done
  done
done

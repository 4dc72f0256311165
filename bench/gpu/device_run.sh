#!/bin/bash
# The whole GPU check in one call on a lent machine, in phases that each
# stop at their own time limit and keep what they have (total limits: 8 min
# 20 s, inside one 10-minute command):
#   a smoke   (40 s)  device line, library versions, `visiond info`, one model
#                     under compute-sanitizer memcheck (if the machine allows it)
#   b algos   (100 s) every convolution algorithm on the shape set against the
#                     CPU, the algorithm cache (tests/gpu)
#   c models  (110 s) 4 conformance models, device vs CPU vs PyTorch at batch 1
#                     and 4, and the daemon on the device (tests/gpu)
#   d bench   (170 s) resnet50 and mobilenet_v2 at batch 1, 8, 32 against
#                     PyTorch fp32 (gpu_bench.py)
#   e table   (80 s)  resnet50's per-layer algorithms and the gain of per-layer
#                     selection over always IMPLICIT_GEMM
# then results.json and results.md in $OUT (results.py).
#
# On the device (after bench/gpu/collect.sh here):
#   run: command "bash bench/gpu/device_run.sh", carry [".devcarry"]
# Rehearsal here, the CPU standing in for the GPU:
#   STANDIN=cpu OUT=/tmp/out bash bench/gpu/device_run.sh
set -u
OUT=${OUT:-/tmp/out}
DEV=${STANDIN:-cuda}
mkdir -p "$OUT"
: > "$OUT/phases.jsonl"
py=$(command -v python3)
[ "$DEV" = cpu ] && [ -x /usr/bin/python3 ] && py=/usr/bin/python3 # Debian's torch here
here=$(cd "$(dirname "$0")/../.." && pwd)
carry="$here/.devcarry"
# CUDA's libraries for visiond alone: the folders of PyTorch's nvidia wheels
site=$($py -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)
libs=""
for d in "$site"/nvidia/*/lib "$site"/nvidia/cu*/lib; do [ -d "$d" ] && libs="$libs${libs:+:}$d"; done
echo "$libs" > "$carry/cuda_libs.txt"
export VISIOND_BIN="$carry/visiond" VISIOND_BUILD=/tmp/vbuild VISIOND_GPU_DEVICE="$DEV"
export VISIOND_EXPECT_GPU=1 PYTHONUNBUFFERED=1 DEV py here carry
# the conformance models phases b and c use (exported once, in phase b)
export VISIOND_GPU_MODELS=${GPU_MODELS:-squeezenet1_1,mobilenet_v2,resnet18,googlenet}
mkdir -p "$VISIOND_BUILD"

phase() { # name limit command...: its output in $OUT/name.log, its outcome in phases.jsonl
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "== phase $name (limit ${limit}s)"
  if declare -F "$1" > /dev/null; then # a function of this script: in a bash of its own
    timeout -k 5 "$limit" bash -c "$(declare -f "$1"); $1" > "$OUT/$name.log" 2>&1
  else
    timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  fi
  rc=$?
  printf '{"phase": "%s", "rc": %d, "seconds": %d, "limit": %d, "timed_out": %s}\n' \
    "$name" "$rc" $((SECONDS - start)) "$limit" \
    "$([ $rc = 124 ] || [ $rc = 137 ] && echo true || echo false)" >> "$OUT/phases.jsonl"
  tail -3 "$OUT/$name.log"
}

smoke() {
  if [ "$DEV" = cpu ]; then echo "device: the CPU standing in: $(grep -m1 'model name' /proc/cpuinfo)"
  else nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; fi
  $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
  echo "cuda libraries for visiond: $(cat "$carry/cuda_libs.txt")"
  "$VISIOND_BIN" info --model "$here/models/mnist/model.onnx" --device "$DEV" || return 1
  $py -c 'import numpy as np; np.save("/tmp/mnist_x.npy", np.random.default_rng(0).random((4, 1, 28, 28), np.float32))'
  if command -v compute-sanitizer > /dev/null && [ "$DEV" != cpu ]; then
    compute-sanitizer --tool memcheck --error-exitcode 9 "$carry/visiond" run \
      --model "$here/models/mnist/model.onnx" --input /tmp/mnist_x.npy --output /tmp/mnist_y.npy \
      --device "$DEV" && echo "memcheck: clean" || echo "memcheck: could not run or found errors (rc $?): see above"
  else
    echo "memcheck: not run (no compute-sanitizer here, or the CPU stands in)"
  fi
}

cd "$here"
phase smoke 40 smoke
phase algos 100 $py -m pytest -q -rs -p no:cacheprovider tests/gpu \
  -k "device_is_the_backend or every_algorithm or cached"
phase models 110 $py -m pytest -q -rs -p no:cacheprovider tests/gpu \
  -k "matches_cpu_and_pytorch or daemon_on_device"
bench_args=${BENCH_ARGS:-}
[ "$DEV" = cpu ] && bench_args=${BENCH_ARGS:---batches 1,8 --rounds 1 --iters 3}
phase bench 170 $py bench/gpu/gpu_bench.py --phase bench --visiond "$VISIOND_BIN" \
  --device "$DEV" --out "$OUT" --workdir /tmp/vbench $bench_args
phase table 80 $py bench/gpu/gpu_bench.py --phase algos --visiond "$VISIOND_BIN" \
  --device "$DEV" --out "$OUT" --workdir /tmp/vbench $bench_args
$py bench/gpu/results.py "$OUT" "$DEV"

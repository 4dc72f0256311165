#!/bin/sh
# Run ON THE DEVICE MACHINE (through the device tool, carrying .devcarry,
# which bench/gpu/collect.sh fills here): the GPU checks and the benchmark
# of issue 4, with results written to $OUT (copy them into bench/results/).
#
#   run: command "sh bench/gpu/run_on_device.sh", carry [".devcarry"]
#
# The device has CUDA, cuDNN (in PyTorch's wheels) and PyTorch with
# torchvision; the build's Debian libraries come from .devcarry/lib.
set -eu
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
py=$(command -v python3)
site=$($py -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)
nv=""
for d in "$site"/nvidia/*/lib; do [ -d "$d" ] && nv="$nv:$d"; done
export LD_LIBRARY_PATH="$PWD/.devcarry/lib${nv}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export VISIOND_BIN="$PWD/.devcarry/visiond"
nvidia-smi -L | tee "$OUT/device.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >> "$OUT/device.txt"
"$VISIOND_BIN" info --model .devcarry/mnist/model.onnx --device cuda | tee -a "$OUT/device.txt"
PYTHONUNBUFFERED=1 $py bench/gpu/gpu_bench.py --visiond "$VISIOND_BIN" --out "$OUT" \
  ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
# the GPU correctness suite (tests/gpu), its models exported there
VISIOND_BUILD=/tmp/vbuild PYTHONUNBUFFERED=1 $py -m pytest -q -rs -p no:cacheprovider tests/gpu \
  2>&1 | tee "$OUT/tests.log"

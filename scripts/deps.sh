#!/bin/sh
# Installs the Debian packages visiond needs, and only those that are missing.
#
# Why a script: README's two commands (make run, make test) must work on a fresh
# Debian 12 machine with nothing but gcc and make. Asking dpkg for each package
# costs well under a second, so every make invocation can call this; apt-get
# (and its slow 'update') only runs when something is actually missing.
#
# usage: scripts/deps.sh build|test|bench [arm64|armhf ...]
#   an architecture adds its cross compiler and the target's -dev packages
#   (Debian multiarch: the architecture is added to dpkg first); test and
#   bench add both, since make test builds and runs both under qemu-user.
set -eu

build_pkgs="pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev
  libopenblas-openmp-dev libjpeg-dev libpng-dev libmicrohttpd-dev libjansson-dev
  libsystemd-dev libgnutls28-dev"
test_pkgs="python3-torch python3-torchvision python3-onnx python3-numpy
  python3-pytest nodejs npm darknet prometheus
  clang libclang-rt-dev libomp-dev chromium systemd python3-jsonschema python3-yaml"
bench_pkgs="wrk hyperfine"
# what a cross build needs of the target (the host's protoc-c and onnx.proto serve it)
cross_libs="libprotobuf-c-dev libopenblas-openmp-dev libjpeg-dev libpng-dev libmicrohttpd-dev
  libjansson-dev libsystemd-dev libgnutls28-dev"
package_tools="dpkg-dev fakeroot"

level="${1:-build}"
[ $# -gt 0 ] && shift
case "$level" in
  build) want="$build_pkgs"; arches="$*" ;;
  test)  want="$build_pkgs $test_pkgs $package_tools"; arches="arm64 armhf" ;;
  bench) want="$build_pkgs $test_pkgs $bench_pkgs"; arches="$*" ;;
  *) echo "usage: $0 build|test|bench [arm64|armhf ...]" >&2; exit 2 ;;
esac

foreign=""
for a in $arches; do
  case "$a" in
    arm64) want="$want gcc-aarch64-linux-gnu qemu-user" ;;
    armhf) want="$want gcc-arm-linux-gnueabihf qemu-user" ;;
    *) echo "deps: unknown architecture $a (arm64 or armhf)" >&2; exit 2 ;;
  esac
  for p in $cross_libs; do want="$want $p:$a"; done
  dpkg --print-foreign-architectures | grep -qx "$a" || foreign="$foreign $a"
done

missing=""
for p in $want; do
  # node and npm may come from outside Debian (a preinstalled Node.js); accept those.
  case "$p" in
    # only its onnx.proto is used: a schema given as ONNX_PROTO stands in
    # (Ubuntu 20.04, JetPack 5, has no libonnx-dev)
    libonnx-dev) [ -n "${ONNX_PROTO:-}" ] && [ "$ONNX_PROTO" != /usr/include/onnx/onnx.proto ] &&
      [ -f "$ONNX_PROTO" ] && continue ;;
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done

[ -z "$missing" ] && [ -z "$foreign" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "deps: missing packages:$missing; run as root or install them" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
for a in $foreign; do
  echo "deps: adding the $a architecture to dpkg" >&2
  $SUDO dpkg --add-architecture "$a"
done
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing >&2

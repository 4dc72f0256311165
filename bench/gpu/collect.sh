#!/bin/sh
# Run HERE, before a GPU session: gathers what the device machine needs to
# run this build (it has CUDA, cuDNN and PyTorch but no Debian packages):
# build/visiond, its CUDA backend module (libvisiond_cuda.so, loaded from
# the binary's folder) plus the Debian libraries they link, into .devcarry/, which
# the device tool's `carry` takes along (.devcarry is git-ignored).
#
# usage: bench/gpu/collect.sh [BUILD]
set -eu
build=${1:-build}
out=.devcarry
rm -rf "$out" && mkdir -p "$out/lib"
cp "$build/visiond" "$out/"
test -f "$build/libvisiond_cuda.so" || { echo "no $build/libvisiond_cuda.so: build with CUDA=1" >&2; exit 1; }
cp "$build/libvisiond_cuda.so" "$out/"
# every library that is not CUDA's own nor the C library's core
ldd "$build/visiond" | awk '/=> \// {print $3}' | while read -r lib; do
  case "$lib" in
    */libcu*|*/libcudnn*|*/libcublas*|*/libc.so*|*/libm.so*|*/libdl.so*|*/libpthread.so*) ;;
    */ld-linux*|*/libstdc++*|*/libgcc_s*|*/librt.so*|*/libz.so*|*/libzstd*|*/liblzma*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
cp -r models/mnist "$out/"
du -sh "$out"

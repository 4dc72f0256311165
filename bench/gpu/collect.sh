#!/bin/sh
# Run HERE, before a GPU session: gathers what the device machine needs to
# run this build (it has CUDA 13, cuDNN 9 and PyTorch in its Python wheels,
# but no Debian packages) into .devcarry/ (git-ignored), which the device
# tool's `carry` takes along:
#   bin/visiond, bin/libvisiond_cuda.so   the build (the module is loaded from
#                                         the binary's folder)
#   lib/                                  the Debian libraries they link
#                                         (OpenBLAS, jansson, libmicrohttpd, ...),
#                                         never CUDA's own
#   visiond                               a wrapper that gives LD_LIBRARY_PATH to
#                                         visiond alone: lib/, then the folders
#                                         device_run.sh found CUDA's libraries in
#                                         (cuda_libs.txt). Python never sees it.
#
# usage: bench/gpu/collect.sh [BUILD]
set -eu
build=${1:-build}
out=.devcarry
test -f "$build/libvisiond_cuda.so" || { echo "no $build/libvisiond_cuda.so: build with CUDA=1" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out/lib" "$out/bin"
cp "$build/visiond" "$build/libvisiond_cuda.so" "$out/bin/"
for f in "$build/visiond" "$build/libvisiond_cuda.so"; do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$lib" in
    */libcu*|*/libcudnn*|*/libcublas*|*/libnv*|*/libc.so*|*/libm.so*|*/libdl.so*) ;;
    */libpthread.so*|*/ld-linux*|*/libstdc++*|*/libgcc_s*|*/librt.so*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
cat > "$out/visiond" <<'WRAP'
#!/bin/sh
# visiond with the carried libraries and the device's CUDA libraries (their
# folders in cuda_libs.txt, written by device_run.sh), for visiond alone.
here=$(cd "$(dirname "$0")" && pwd)
cuda=$(cat "$here/cuda_libs.txt" 2>/dev/null || true)
LD_LIBRARY_PATH="$here/lib${cuda:+:$cuda}" exec "$here/bin/visiond" "$@"
WRAP
chmod +x "$out/visiond"
strip --strip-unneeded "$out"/lib/*.so* "$out"/bin/* 2>/dev/null || true
du -sh "$out"

#!/bin/sh
# Builds the Debian package of one build folder: make deb (native), make
# ARCH=arm64 deb, make ARCH=armhf deb. Why a script and not debhelper: the
# tree is built by its own Makefile (cross builds included) and the package
# is what `make install` lays out, so this stages that install under /usr,
# moves the unit to /lib/systemd/system, strips the binaries, asks
# dpkg-shlibdeps for the library dependencies of the target architecture
# and writes DEBIAN/ by hand.
#
# The package: /usr/bin/visiond, the CUDA module where the build has one
# (/usr/lib/visiond; loaded only when its libraries are there, so its CUDA
# libraries are not dependencies), the default models (mnist, faces) and
# models/fetch.sh under /usr/share/visiond/models, /etc/visiond/visiond.json
# (loopback listener) and /etc/default/visiond as conffiles, the hardened
# unit (DynamicUser: no user to create). Nothing starts on install:
# `systemctl enable --now visiond` does.
#
# usage: scripts/make_deb.sh BUILD_DIR DEB_ARCH MULTIARCH ARCH VERSION (make deb passes them)
set -eu
build=$1 deb_arch=$2 multiarch=$3 arch=$4 version=$5
root="$build/deb/root"
rm -rf "$build/deb"
mkdir -p "$root"

make --no-print-directory -s ARCH="$arch" BUILD="$build" DEPS=0 PREFIX=/usr DESTDIR="$root" install
mkdir -p "$root/lib/systemd/system"
mv "$root/etc/systemd/system/visiond.service" "$root/lib/systemd/system/visiond.service"
rmdir "$root/etc/systemd/system" "$root/etc/systemd"

strip_tool=strip
[ "$arch" = native ] || strip_tool="$multiarch-strip"
"$strip_tool" --strip-unneeded "$root/usr/bin/visiond"
[ ! -f "$root/usr/lib/visiond/libvisiond_cuda.so" ] ||
  "$strip_tool" --strip-unneeded "$root/usr/lib/visiond/libvisiond_cuda.so"

# the libraries' packages, as the target architecture names them
work="$build/deb/shlibs"
mkdir -p "$work/debian"
printf 'Source: visiond\n\nPackage: visiond\nArchitecture: any\n' > "$work/debian/control"
cp "$root/usr/bin/visiond" "$work/visiond"
depends=$(cd "$work" && DEB_HOST_ARCH="$deb_arch" DEB_HOST_MULTIARCH="$multiarch" \
  dpkg-shlibdeps -O -e visiond 2>/dev/null | sed -n 's/^shlibs:Depends=//p' |
  sed 's/libopenblas0,/libopenblas0-openmp,/')  # the binary's rpath is the OpenMP build's
[ -n "$depends" ] || { echo "make_deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: visiond
Version: $version
Architecture: $deb_arch
Maintainer: visiond developers <visiond@localhost>
Installed-Size: $size
Depends: $depends
Suggests: libcudnn9-cuda-12 | nvidia-cudnn
Section: net
Priority: optional
Homepage: https://github.com/visiond/visiond
Description: image-recognition inference daemon (CNNs over HTTP)
 visiond serves ONNX convolutional networks over HTTP: classification,
 detection and segmentation from JPEG/PNG uploads, the Open Inference
 Protocol (v2), Prometheus metrics and systemd readiness. It runs on the
 CPU (OpenBLAS and its own NEON/AVX kernels) or, with the CUDA module and
 NVIDIA's libraries present, on the GPU (cuBLAS, cuDNN).
CONTROL
printf '/etc/visiond/visiond.json\n/etc/default/visiond\n' > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
SCRIPT
cat > "$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop visiond.service || true
fi
SCRIPT
cat > "$root/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
SCRIPT
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

out="$build/visiond_${version}_${deb_arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"

#!/bin/sh
# Installs one pinned npm package under DEST/node_modules, once (a second
# call costs nothing). --ignore-scripts: nothing we use needs install
# scripts (onnxruntime-node's only fetches GPU binaries we cannot download).
#
# usage: scripts/npm_pkg.sh DEST NAME VERSION
set -eu
dest=$1 name=$2 version=$3
pkg="$dest/node_modules/$name/package.json"
if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; then
  exit 0
fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name":"visiond-deps","private":true}' > "$dest/package.json"
npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error \
  "$name@$version" >&2

#!/bin/sh
# Installs ONNX Runtime's Node.js package (its CPU library ships inside it)
# under BUILD/ort, once. --ignore-scripts: its install script only fetches
# GPU binaries, which we neither need nor can download here.
set -eu
build=${1:-build}
version=1.30.0
dir="$build/ort"
if [ -f "$dir/node_modules/onnxruntime-node/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dir/node_modules/onnxruntime-node/package.json"; then
  exit 0
fi
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name":"visiond-ort","private":true}' > "$dir/package.json"
npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error \
  "onnxruntime-node@$version" >&2

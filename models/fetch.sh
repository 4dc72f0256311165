#!/bin/sh
# Downloads two ImageNet classifiers from the ONNX model zoo into the model
# repository, for machines with internet access: SqueezeNet 1.1 (5 MB) and
# ResNet-50 v1 (98 MB). Each file is pinned to a zoo commit and checked
# against its SHA-256 (from the zoo's Git LFS pointer) before it is used.
# Writes model.json (ImageNet preprocessing) and, when Debian's darknet
# package is installed, labels.txt (the 1000 ILSVRC-2012 classes in the
# zoo's order, named from darknet's lists).
#
# usage: models/fetch.sh [MODELS_DIR]        (default: the folder of this script)
set -eu
dest=${1:-$(dirname "$0")}
zoo=https://media.githubusercontent.com/media/onnx/models

fetch() { # name commit path sha256
  name=$1 url="$zoo/$2/$3" sha=$4
  out="$dest/$name/model.onnx"
  mkdir -p "$dest/$name"
  if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --status; then
    echo "$name: already here"
  else
    echo "$name: downloading $url"
    curl -fL --retry 3 -o "$out.part" "$url"
    if ! echo "$sha  $out.part" | sha256sum -c --status; then
      echo "$name: checksum mismatch, file removed" >&2
      rm -f "$out.part"
      exit 1
    fi
    mv "$out.part" "$out"
  fi
  cat > "$dest/$name/model.json" <<JSON
{
  "input": {"width": 224, "height": 224, "color": "rgb", "resize": "shorter_side_crop",
            "resize_shorter_side": 256, "scale": 0.00392156862745098,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "output": {"softmax": true},
  "batching": {"max_batch_size": $5, "max_queue_delay_us": 2000, "max_queue_size": 256,
               "timeout_ms": 10000}
}
JSON
  darknet=/usr/share/darknet/data
  if [ -f "$darknet/imagenet.labels.list" ] && [ -f "$darknet/imagenet.shortnames.list" ]; then
    # darknet lists the ILSVRC classes first; the zoo orders them by synset id
    paste "$darknet/imagenet.labels.list" "$darknet/imagenet.shortnames.list" | head -n 1000 |
      sort | cut -f 2 > "$dest/$name/labels.txt"
  else
    echo "$name: no labels (apt-get install darknet for ImageNet class names)" >&2
  fi
}

# SqueezeNet 1.1, opset 7; its input has a fixed batch of 1
fetch squeezenet1.1 9ef45be2139eb080c239f596837ac0748050df46 \
  vision/classification/squeezenet/model/squeezenet1.1-7.onnx \
  1eeff551a67ae8d565ca33b572fc4b66e3ef357b0eb2863bb9ff47a918cc4088 1
# ResNet-50 v1, opset 12, any batch
fetch resnet50 652f4e4af7975c8e7a505c4b6e0f8ac72d8260ea \
  vision/classification/resnet/model/resnet50-v1-12.onnx \
  ab65bdc02c5b3123eb3cdf6dac01742438517d8635d4f233913b2be1c70db3b6 16
echo "done: restart visiond to serve them"

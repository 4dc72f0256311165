"""The daemon's preprocessing against an independent implementation: PIL's
antialiased bilinear resize and torchvision's centre-crop arithmetic, then
(v / 255 - mean) / std, for Debian's darknet photos (352 to 1352 pixels
wide, so every one is a real downscale). With jpeg_dct_scaling on, the
reference decodes through PIL's draft mode, the same idea done by PIL."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from visiond_test import run_visiond

PHOTOS = sorted(os.path.join("/usr/share/darknet/data", p)
                for p in os.listdir("/usr/share/darknet/data") if p.endswith(".jpg"))
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def reference(path, short=256, crop=224, draft=False):
    img = Image.open(path)
    if draft:  # lets libjpeg decode at 1/2, 1/4 or 1/8 scale, as long as >= the request
        w, h = img.size
        img.draft("RGB", (short, short * h // w) if w <= h else (short * w // h, short))
    img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    img = img.resize(size, Image.BILINEAR)
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    x = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0
    return (x - MEAN) / STD


@pytest.mark.parametrize("dct", [False, True], ids=["exact", "dct_scaling"])
@pytest.mark.parametrize("photo", PHOTOS, ids=[os.path.basename(p) for p in PHOTOS])
def test_preprocess_matches_pil(repo_dir, tmp_path, photo, dct):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    os.symlink(os.path.realpath(os.path.join(repo_dir, "squeezenet", "model.onnx")),
               model_dir / "model.onnx")
    (model_dir / "model.json").write_text(json.dumps(
        {"input": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                   "jpeg_dct_scaling": dct}}))
    out = tmp_path / "x.npy"
    r = run_visiond("preprocess", "--model-dir", str(model_dir), "--image", photo, "--output",
                    str(out))
    assert r.returncode == 0, r.stderr
    got = np.load(out)[0]
    want = reference(photo, draft=dct)
    assert got.shape == want.shape == (3, 224, 224)
    # in 8-bit pixel units: PIL rounds between its two passes, visiond once
    diff = np.abs(got - want) * STD * 255
    assert diff.max() <= 1.01, diff.max()
    assert diff.mean() <= 0.25, diff.mean()

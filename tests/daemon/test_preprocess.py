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


def letterbox_geometry(w, h, size_w, size_h):
    """YOLO's letterbox, written from its description: scale to fit, round
    the resized sides (half to even, as Python rounds), centre, floor the
    offsets."""
    r = min(size_w / w, size_h / h)
    rw = min(max(round(w * r), 1), size_w)
    rh = min(max(round(h * r), 1), size_h)
    return rw, rh, (size_w - rw) // 2, (size_h - rh) // 2


@pytest.mark.parametrize("photo", PHOTOS[:4], ids=[os.path.basename(p) for p in PHOTOS[:4]])
def test_letterbox_matches_pil(repo_dir, tmp_path, photo):
    """resize "letterbox": PIL's antialiased resize of the whole photo to the
    fitted size, pasted centred on a pad_value canvas; the geometry that maps
    answers back is the reference's to the pixel."""
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    os.symlink(os.path.realpath(os.path.join(repo_dir, "squeezenet", "model.onnx")),
               model_dir / "model.onnx")
    (model_dir / "model.json").write_text(json.dumps(
        {"input": {"resize": "letterbox", "pad_value": 100, "width": 224, "height": 224,
                   "jpeg_dct_scaling": False}}))
    out, geo = tmp_path / "x.npy", tmp_path / "g.json"
    r = run_visiond("preprocess", "--model-dir", str(model_dir), "--image", photo, "--output",
                    str(out), "--geometry", str(geo))
    assert r.returncode == 0, r.stderr
    img = Image.open(photo).convert("RGB")
    w, h = img.size
    rw, rh, left, top = letterbox_geometry(w, h, 224, 224)
    g = json.loads(geo.read_text())[0]
    assert (g["image_w"], g["image_h"], g["resized_w"], g["resized_h"], g["offset_x"],
            g["offset_y"]) == (w, h, rw, rh, left, top)
    assert abs(g["scale_x"] - rw / w) < 1e-9 and abs(g["scale_y"] - rh / h) < 1e-9
    canvas = Image.new("RGB", (224, 224), (100, 100, 100))
    canvas.paste(img.resize((rw, rh), Image.BILINEAR), (left, top))
    want = np.asarray(canvas, np.float32).transpose(2, 0, 1) / 255.0
    got = np.load(out)[0]
    diff = np.abs(got - want) * 255
    assert diff.max() <= 1.01, diff.max()
    assert diff.mean() <= 0.25, diff.mean()
    # the border is exactly the pad value
    border = np.ones((224, 224), bool)
    border[top:top + rh, left:left + rw] = False
    assert np.all(np.abs(got[:, border] * 255 - 100) < 1e-3)


@pytest.mark.parametrize("wh", [(640, 480), (480, 640), (1000, 7), (7, 1000), (224, 224),
                                (223, 225), (3000, 2001)])
def test_letterbox_mapping_matches_reference(repo_dir, tmp_path, wh):
    """Box coordinates map back through the geometry to within 0.5 px of the
    reference's mapping: synthetic images of awkward sizes."""
    w, h = wh
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    os.symlink(os.path.realpath(os.path.join(repo_dir, "squeezenet", "model.onnx")),
               model_dir / "model.onnx")
    (model_dir / "model.json").write_text(json.dumps({"input": {"resize": "letterbox"}}))
    photo = tmp_path / "i.png"
    Image.new("RGB", (w, h), (10, 200, 30)).save(photo)
    r = run_visiond("preprocess", "--model-dir", str(model_dir), "--image", str(photo),
                    "--output", str(tmp_path / "x.npy"), "--geometry", str(tmp_path / "g.json"))
    assert r.returncode == 0, r.stderr
    g = json.loads((tmp_path / "g.json").read_text())[0]
    rw, rh, left, top = letterbox_geometry(w, h, 224, 224)
    rng = np.random.default_rng(w * 7 + h)
    pts = rng.uniform(0, 224, (50, 2))
    ref = np.stack([(pts[:, 0] - left) * w / rw, (pts[:, 1] - top) * h / rh], 1)
    got = np.stack([(pts[:, 0] - g["offset_x"]) / g["scale_x"],
                    (pts[:, 1] - g["offset_y"]) / g["scale_y"]], 1)
    assert np.abs(got - ref).max() <= 0.5
    # the content is where the geometry says: green inside, pad (114) outside
    x = np.load(tmp_path / "x.npy")[0] * 255
    assert abs(x[1, top + rh // 2, left + rw // 2] - 200) < 1.5
    if left > 0:
        assert abs(x[1, 112, 0] - 114) < 1e-3

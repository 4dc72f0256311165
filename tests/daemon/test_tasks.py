"""/detect and /segment over real HTTP on loopback, against references
that share no code with the daemon:

- the shipped face detector (models/faces) on every photo in
  ../shared/data/ultraface: ONNX Runtime on the daemon's own input tensors,
  then torchvision's NMS and the stretch mapping written here; the boxes
  must agree within 1 px, count for count, raw and multipart;
- a YOLO-style detector (the conformance suite's yolo_tiny, random weights)
  behind a letterbox: its raw output decoded here (centre boxes, best
  class), torchvision's batched_nms, the letterbox mapping written here;
- DeepLabV3 (random weights): PyTorch's logits, argmax, resized to the photo
  with torch's nearest rule, against the PNG mask and the class fractions.
"""
import base64
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from conftest import IMAGENET, add_model, conformance_model
from daemon import Daemon, multipart
from visiond_test import ROOT, face_photos, run_visiond

sys.path.insert(0, os.path.join(ROOT, "tests", "conformance"))
import make_models  # noqa: E402

PHOTOS = face_photos()
ORT_RUN = os.path.join(ROOT, "tests", "tools", "ort_run.js")
FACES = os.path.join(ROOT, "models", "faces")
YOLO_CONFIG = {"task": "detect",
               "input": {"resize": "letterbox", "pad_value": 114, "scale": 1 / 255},
               "output": {"layout": "yolo", "score_threshold": 0.6, "iou_threshold": 0.5,
                          "max_detections": 40}}
YOLO_LABELS = ["cat", "dog", "kite", "bus", "cup"]
VOC = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
       "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
       "sheep", "sofa", "train", "tvmonitor"]
SEG = "deeplabv3_mobilenet_v3_large"


@pytest.fixture(scope="module")
def tasks_repo(tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("tasks"))
    shutil.copytree(FACES, os.path.join(repo, "faces"))
    shutil.copytree(os.path.join(ROOT, "models", "mnist"), os.path.join(repo, "mnist"))
    add_model(repo, "yolo", conformance_model("yolo_tiny"), YOLO_CONFIG, YOLO_LABELS)
    add_model(repo, "seg", conformance_model(SEG),
              {"task": "segment", "input": dict(IMAGENET["input"], resize="stretch")}, VOC)
    return repo


@pytest.fixture(scope="module")
def daemon(tasks_repo):
    d = Daemon(tasks_repo).start()
    yield d
    d.stop()


def post(daemon, model, task, body, query="", headers=None):
    h = {"Content-Type": "image/jpeg"}
    h.update(headers or {})
    return daemon.request("POST", f"/v1/models/{model}/{task}{query}", body, h)


def preprocess(model_dir, photos, tmp_path, tag):
    x, g = tmp_path / f"{tag}.npy", tmp_path / f"{tag}.json"
    args = ["preprocess", "--model-dir", model_dir, "--output", str(x), "--geometry", str(g)]
    for p in photos:
        args += ["--image", p]
    r = run_visiond(*args)
    assert r.returncode == 0, r.stderr
    return x, json.loads(g.read_text())


def assert_same_detections(got, want, what):
    assert len(got) == len(want), f"{what}: {len(got)} boxes, the reference {len(want)}"
    for g, w in zip(got, want):
        assert np.abs(np.array(g["box"]) - np.array(w["box"])).max() <= 1.0, (what, g, w)
        assert abs(g["score"] - w["score"]) < 1e-3, (what, g, w)
        assert g["index"] == w["index"] and g["label"] == w["label"], (what, g, w)


# --- faces -------------------------------------------------------------------

@pytest.fixture(scope="module")
def face_reference(tmp_path_factory):
    """ONNX Runtime + torchvision NMS + the stretch mapping, per photo."""
    tmp = tmp_path_factory.mktemp("faceref")
    x, _ = preprocess(FACES, PHOTOS, tmp, "x")
    subprocess.run(["node", ORT_RUN, "run", os.path.join(FACES, "model.onnx"), str(x),
                    str(tmp / "ort%d.npy"), "2"], check=True)
    scores, boxes = np.load(tmp / "ort0.npy"), np.load(tmp / "ort1.npy")
    cfg = json.load(open(os.path.join(FACES, "model.json")))["output"]
    out = []
    for i, photo in enumerate(PHOTOS):
        w, h = Image.open(photo).size
        s = scores[i, :, 1]
        keep = s > np.float32(cfg["score_threshold"])
        b = boxes[i][keep] * np.array([320, 240, 320, 240], np.float32)  # fractions -> pixels
        k = torchvision.ops.nms(torch.from_numpy(b), torch.from_numpy(s[keep]),
                                cfg["iou_threshold"])[:cfg["max_detections"]].numpy()
        img = b[k].astype(np.float64) * np.array([w / 320, h / 240, w / 320, h / 240])
        img = np.clip(img, 0, [w, h, w, h])
        out.append({"width": w, "height": h, "detections": [
            {"box": list(bb), "score": float(sc), "index": 1, "label": "face"}
            for bb, sc in zip(img, s[keep][k])]})
    return out


def test_faces_match_the_reference_on_every_photo(daemon, face_reference):
    assert len(PHOTOS) >= 5
    for photo, want in zip(PHOTOS, face_reference):
        status, _, body = post(daemon, "faces", "detect", open(photo, "rb").read())
        assert status == 200, body
        ans = json.loads(body)
        assert ans["task"] == "detect" and ans["model"] == "faces"
        r = ans["results"][0]
        assert (r["width"], r["height"]) == (want["width"], want["height"])
        assert len(want["detections"]) >= 1, photo  # every photo shows faces
        assert_same_detections(r["detections"], want["detections"], os.path.basename(photo))
        print(f"{os.path.basename(photo)}: {len(r['detections'])} faces, reference "
              f"{len(want['detections'])}, largest box difference "
              f"{max([0.0] + [float(np.abs(np.array(g['box']) - w['box']).max()) for g, w in zip(r['detections'], want['detections'])]):.4f} px")


def test_faces_multipart_answers_in_order(daemon, face_reference):
    body, headers = multipart([("image", os.path.basename(p), "image/jpeg", open(p, "rb").read())
                               for p in PHOTOS])
    status, h, data = daemon.request("POST", "/v1/models/faces/detect", body, headers)
    assert status == 200, data
    ans = json.loads(data)
    assert len(ans["results"]) == len(PHOTOS)
    for photo, r, want in zip(PHOTOS, ans["results"], face_reference):
        assert_same_detections(r["detections"], want["detections"], os.path.basename(photo))
    assert set(ans["timing_ms"]) == {"queue", "preprocess", "inference", "total"}
    assert ans["batch_size"] >= 2  # the photos ran batched
    assert "inference;dur=" in h["Server-Timing"]


def test_faces_from_concurrent_clients(daemon, face_reference):
    """Separate requests at once: batched together, each answer its own."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        return json.loads(post(daemon, "faces", "detect", open(PHOTOS[i], "rb").read())[2])

    with ThreadPoolExecutor(len(PHOTOS)) as ex:
        answers = list(ex.map(one, range(len(PHOTOS))))
    for photo, ans, want in zip(PHOTOS, answers, face_reference):
        assert_same_detections(ans["results"][0]["detections"], want["detections"],
                               os.path.basename(photo))


def test_faces_rendered_as_jpeg(daemon, face_reference):
    photo = PHOTOS[0]
    status, h, data = post(daemon, "faces", "detect", open(photo, "rb").read(), "?render=jpeg")
    assert status == 200 and h["Content-Type"] == "image/jpeg", data[:200]
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    orig = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    assert img.shape == orig.shape
    green = np.array([0, 128, 0])  # class 1 is drawn in VOC colour 2
    for d in face_reference[0]["detections"]:
        x1, y1, x2, y2 = (int(v) for v in d["box"])
        top = img[y1, x1 + 1:x2]  # the box's top edge
        assert np.abs(top - green).max(axis=1).mean() < 25, d
    centre = [(int((d["box"][0] + d["box"][2]) / 2), int((d["box"][1] + d["box"][3]) / 2))
              for d in face_reference[0]["detections"]]
    inside = np.array([np.abs(img[y, x] - orig[y, x]).max() for x, y in centre])
    assert np.median(inside) < 30  # faces themselves are not painted over


def test_render_and_png_masks_take_one_image(daemon):
    body, headers = multipart([("image", "a.jpg", "image/jpeg", open(PHOTOS[0], "rb").read())] * 2)
    status, _, data = daemon.request("POST", "/v1/models/faces/detect?render=jpeg", body, headers)
    assert status == 400 and b"one image" in data


@pytest.mark.parametrize("model,task,want", [("faces", "classify", "detect"),
                                             ("faces", "segment", "detect"),
                                             ("mnist", "detect", "classify"),
                                             ("seg", "detect", "segment")])
def test_the_wrong_endpoint_names_the_task(daemon, model, task, want):
    status, body = daemon.json("POST", f"/v1/models/{model}/{task}",
                               open(PHOTOS[0], "rb").read(), {"Content-Type": "image/jpeg"})
    assert status == 400
    assert f"a {want} model" in body["error"] and f"/v1/models/{model}/{want}" in body["error"]


@pytest.mark.parametrize("query", ["?render=png", "?mask=png", "?mask=svg"])
def test_bad_options_are_400(daemon, query):
    model = "seg" if "svg" in query else "faces"
    task = "segment" if model == "seg" else "detect"
    status, _, data = post(daemon, model, task, open(PHOTOS[0], "rb").read(), query)
    assert status == 400 and json.loads(data)["error"]


def test_models_list_shows_tasks(daemon):
    status, body = daemon.json("GET", "/v1/models")
    assert status == 200
    by = {m["name"]: m for m in body["models"]}
    assert by["faces"]["task"] == "detect" and by["yolo"]["task"] == "detect"
    assert by["seg"]["task"] == "segment" and by["mnist"]["task"] == "classify"
    assert by["faces"]["output"]["layout"] == "boxes_scores"
    assert by["faces"]["output"]["background_class"] == 0
    assert by["yolo"]["output"]["layout"] == "yolo" and by["yolo"]["output"]["classes"] == 5
    assert by["yolo"]["input"]["resize"] == "letterbox"
    assert by["seg"]["output"]["classes"] == 21


def test_detections_histogram(daemon):
    for p in PHOTOS[:2]:
        assert post(daemon, "faces", "detect", open(p, "rb").read())[0] == 200
    _, _, text = daemon.request("GET", "/metrics")
    text = text.decode()
    count = [l for l in text.splitlines()
             if l.startswith('visiond_detections_per_image_count{model="faces"}')]
    assert count and float(count[0].split()[-1]) >= 2
    assert 'visiond_detections_per_image_bucket{model="faces",le="0"}' in text


# --- YOLO-style, letterboxed ---------------------------------------------------

def yolo_reference(pred, w, h, cfg):
    """[4 + C, K] centre boxes -> corners, best class, threshold, batched NMS,
    the letterbox undone (float32 where the daemon computes in float32)."""
    c = cfg["output"]
    cx, cy, bw, bh = pred[0], pred[1], pred[2], pred[3]
    two = np.float32(2)
    boxes = np.stack([cx - bw / two, cy - bh / two, cx + bw / two, cy + bh / two], 1)
    cls = pred[4:].argmax(0)
    score = pred[4:].max(0)
    keep = score > np.float32(c["score_threshold"])
    k = torchvision.ops.batched_nms(torch.from_numpy(boxes[keep]), torch.from_numpy(score[keep]),
                                    torch.from_numpy(cls[keep]), c["iou_threshold"])
    k = k[:c["max_detections"]].numpy()
    r = min(224 / w, 224 / h)
    rw, rh = round(w * r), round(h * r)
    left, top = (224 - rw) // 2, (224 - rh) // 2
    b = boxes[keep][k].astype(np.float64)
    b = (b - [left, top, left, top]) * [w / rw, h / rh, w / rw, h / rh]
    b = np.clip(b, 0, [w, h, w, h])
    return [{"box": list(bb), "score": float(s), "index": int(ci), "label": YOLO_LABELS[ci]}
            for bb, s, ci in zip(b, score[keep][k], cls[keep][k])]


@pytest.mark.parametrize("photo", PHOTOS[:3], ids=[os.path.basename(p) for p in PHOTOS[:3]])
def test_yolo_layout_through_a_letterbox(daemon, tasks_repo, tmp_path, photo):
    model_dir = os.path.join(tasks_repo, "yolo")
    x, _ = preprocess(model_dir, [photo], tmp_path, "x")
    r = run_visiond("run", "--model", os.path.join(model_dir, "model.onnx"), "--input", str(x),
                    "--output", str(tmp_path / "pred.npy"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    pred = np.load(tmp_path / "pred.npy")[0]
    assert pred.shape[0] == 4 + len(YOLO_LABELS)
    w, h = Image.open(photo).size
    want = yolo_reference(pred, w, h, YOLO_CONFIG)
    assert len(want) >= 3  # enough boxes to make NMS and the mapping matter
    status, _, body = post(daemon, "yolo", "detect", open(photo, "rb").read())
    assert status == 200, body
    got = json.loads(body)["results"][0]["detections"]
    assert_same_detections(got, want, os.path.basename(photo))


# --- segmentation ----------------------------------------------------------------

@pytest.fixture(scope="module")
def seg_torch():
    return make_models.build_model(SEG, make_models.seed_of(SEG))


@pytest.mark.parametrize("photo", PHOTOS[:2], ids=[os.path.basename(p) for p in PHOTOS[:2]])
def test_segment_mask_is_torch_argmax_resized(daemon, tasks_repo, seg_torch, tmp_path, photo):
    x, _ = preprocess(os.path.join(tasks_repo, "seg"), [photo], tmp_path, "x")
    with torch.no_grad():
        logits = seg_torch(torch.from_numpy(np.load(x)))[0]
    w, h = Image.open(photo).size
    want = F.interpolate(logits.argmax(0)[None, None].float(), size=(h, w),
                         mode="nearest")[0, 0].long().numpy()
    top2 = logits.topk(2, 0).values
    margin = F.interpolate((top2[0] - top2[1])[None, None], size=(h, w), mode="nearest")[0, 0]
    assert len(np.unique(want)) >= 2  # random weights, but more than one class

    status, hd, png = post(daemon, "seg", "segment", open(photo, "rb").read(), "",
                           {"Accept": "image/png"})
    assert status == 200 and hd["Content-Type"] == "image/png", png[:200]
    mask_img = Image.open(io.BytesIO(png))
    assert mask_img.mode == "P" and mask_img.size == (w, h)
    mask = np.asarray(mask_img).astype(int)
    differ = mask != want
    # where the daemon and torch disagree, torch's two best logits were all but tied
    assert differ.mean() < 0.002 and np.all(margin.numpy()[differ] < 1e-3), \
        (differ.mean(), margin.numpy()[differ].max() if differ.any() else 0)

    status, body = daemon.json("POST", "/v1/models/seg/segment?mask=base64",
                               open(photo, "rb").read(), {"Content-Type": "image/jpeg"})
    assert status == 200
    r = body["results"][0]
    assert (r["width"], r["height"]) == (w, h)
    assert base64.b64decode(r["mask"]) == png  # the same PNG, inline
    counts = np.bincount(mask.ravel(), minlength=21)
    fractions = {c["index"]: c["fraction"] for c in r["classes"]}
    assert set(fractions) == set(np.flatnonzero(counts).tolist())
    for c in r["classes"]:
        assert c["label"] == VOC[c["index"]]
        assert abs(c["fraction"] - counts[c["index"]] / mask.size) < 1e-9
    assert [c["fraction"] for c in r["classes"]] == sorted(fractions.values(), reverse=True)


def test_segment_rendered(daemon):
    status, h, data = post(daemon, "seg", "segment", open(PHOTOS[0], "rb").read(),
                           "?render=jpeg")
    assert status == 200 and h["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(data)).size == Image.open(PHOTOS[0]).size

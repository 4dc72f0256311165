"""The daemon's non-maximum suppression (`visiond nms`, engine/detect.c)
against torchvision.ops.batched_nms and torchvision.ops.nms: the same kept
indices in the same order, on random sets and on the sets that break
naive implementations (identical boxes, zero-area boxes, equal scores,
IoU exactly at the threshold, inverted and negative boxes). NaN scores
are never kept: the reference sees the set without them."""
import numpy as np
import pytest
import torch
import torchvision

from visiond_test import run_visiond


def visiond_nms(tmp_path, boxes, scores, classes=None, iou=0.5, agnostic=False):
    np.save(tmp_path / "b.npy", np.asarray(boxes, np.float32).reshape(-1, 4))
    np.save(tmp_path / "s.npy", np.asarray(scores, np.float32))
    args = ["nms", "--boxes", str(tmp_path / "b.npy"), "--scores", str(tmp_path / "s.npy"),
            "--iou", repr(iou), "--output", str(tmp_path / "k.npy")]
    if classes is not None:
        np.save(tmp_path / "c.npy", np.asarray(classes, np.int64))
        args += ["--classes", str(tmp_path / "c.npy")]
    if agnostic:
        args.append("--class-agnostic")
    r = run_visiond(*args)
    assert r.returncode == 0, r.stderr
    return np.load(tmp_path / "k.npy").tolist()


def torch_nms(boxes, scores, classes=None, iou=0.5):
    b = torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4))
    s = torch.from_numpy(np.asarray(scores, np.float32))
    if classes is None:
        return torchvision.ops.nms(b, s, iou).tolist()
    return torchvision.ops.batched_nms(b, s, torch.from_numpy(np.asarray(classes, np.int64)),
                                       iou).tolist()


def random_set(rng, n, distinct_scores=None, spread=100.0):
    xy = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(1, spread / 3, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    if distinct_scores:  # many ties
        scores = rng.choice(np.linspace(0.05, 1, distinct_scores), n).astype(np.float32)
    else:
        scores = rng.uniform(0, 1, n).astype(np.float32)
    return boxes, scores


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.3, 0.5, 0.7])
def test_random_sets_per_class(tmp_path, seed, iou):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 900))  # batched_nms's single-call path (under 1000 boxes)
    boxes, scores = random_set(rng, n, distinct_scores=25 if seed % 2 else None)
    classes = rng.integers(0, 4, n)
    got = visiond_nms(tmp_path, boxes, scores, classes, iou)
    assert got == torch_nms(boxes, scores, classes, iou)


@pytest.mark.parametrize("seed", range(3))
def test_large_sets_against_per_class_nms(tmp_path, seed):
    """Over 1000 boxes batched_nms runs nms class by class and merges the
    survivors with an unstable sort; distinct scores keep the order defined."""
    rng = np.random.default_rng(100 + seed)
    boxes, scores = random_set(rng, 3000, spread=400.0)
    scores = np.unique(scores)[:len(scores)]
    rng.shuffle(scores)
    boxes = boxes[:len(scores)]
    classes = rng.integers(0, 5, len(scores))
    assert visiond_nms(tmp_path, boxes, scores, classes, 0.5) == \
        torch_nms(boxes, scores, classes, 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_class_agnostic_is_plain_nms(tmp_path, seed):
    rng = np.random.default_rng(200 + seed)
    boxes, scores = random_set(rng, 500, distinct_scores=30)
    classes = rng.integers(0, 4, 500)
    got = visiond_nms(tmp_path, boxes, scores, classes, 0.45, agnostic=True)
    assert got == torch_nms(boxes, scores, None, 0.45)


ADVERSARIAL = {
    # the same box ten times, the same score: the first index survives
    "identical": ([[10, 10, 50, 50]] * 10, [0.9] * 10),
    # the same box, rising scores: the last survives
    "identical_rising": ([[10, 10, 50, 50]] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    # zero-area boxes: IoU is 0/0, which suppresses nothing
    "zero_area": ([[5, 5, 5, 5]] * 4 + [[1, 1, 1, 9], [1, 1, 9, 1]], [0.5] * 6),
    # IoU exactly 0.5 is not over a 0.5 threshold; a hair more is
    "at_threshold": ([[0, 0, 4, 1], [0, 0, 2, 1], [0, 0, 2.0001, 1]], [0.9, 0.8, 0.7]),
    # equal scores everywhere, overlapping chains
    "ties_chain": ([[i, 0, i + 10, 10] for i in range(0, 40, 2)], [0.5] * 20),
    # inverted (x2 < x1) and negative coordinates
    "inverted": ([[10, 10, 0, 0], [0, 0, 10, 10], [-20, -20, -5, -5], [-19, -19, -5, -5]],
                 [0.9, 0.8, 0.7, 0.6]),
    # nested boxes of falling size
    "nested": ([[0, 0, 100 - i, 100 - i] for i in range(0, 60, 3)],
               [1 - i / 100 for i in range(20)]),
    # huge coordinates (4K-frame pixels times 10)
    "huge": ([[38000, 21000, 38400, 21600], [38010, 21010, 38410, 21610], [0, 0, 1, 1]],
             [0.7, 0.7, 0.7]),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_sets(tmp_path, name):
    boxes, scores = ADVERSARIAL[name]
    assert visiond_nms(tmp_path, boxes, scores, None, 0.5) == torch_nms(boxes, scores, None, 0.5)


def test_identical_boxes_keep_the_first(tmp_path):
    assert visiond_nms(tmp_path, *ADVERSARIAL["identical"]) == [0]


def test_zero_area_boxes_are_all_kept(tmp_path):
    assert sorted(visiond_nms(tmp_path, *ADVERSARIAL["zero_area"])) == list(range(6))


def test_nan_scores_are_never_kept(tmp_path):
    rng = np.random.default_rng(7)
    boxes, scores = random_set(rng, 200, distinct_scores=20)
    nan = rng.random(200) < 0.2
    scores[nan] = np.nan
    scores[3] = np.inf  # not a score either
    nan[3] = True
    got = visiond_nms(tmp_path, boxes, scores, None, 0.5)
    finite = np.flatnonzero(~nan)
    want = [int(finite[i]) for i in torch_nms(boxes[finite], scores[finite], None, 0.5)]
    assert got == want
    assert not set(got) & set(np.flatnonzero(nan).tolist())


def test_bad_input_is_refused(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((3, 3), np.float32))
    np.save(tmp_path / "s.npy", np.zeros(3, np.float32))
    r = run_visiond("nms", "--boxes", str(tmp_path / "b.npy"), "--scores",
                    str(tmp_path / "s.npy"), "--iou", "0.5", "--output", str(tmp_path / "k.npy"))
    assert r.returncode == 3 and "[N, 4]" in r.stderr

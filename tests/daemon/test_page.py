"""The try-it page (GET /) in a real browser: Debian's headless Chromium
loads it from the daemon on loopback, a face photo is chosen in its file
input as a user would, and the test checks what the page drew against
what the API answers: one list entry per face and each box's edge painted
in the detector's colour on the canvas. A classifier's labels too.
Screenshots stay under build/page/ for people to look at."""
import json
import os
import shutil

import pytest

from cdp import Browser
from daemon import Daemon
from visiond_test import BUILD, ROOT, face_photos

SHOTS = os.path.join(BUILD, "page")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("page"))
    for name in ("faces", "mnist"):
        shutil.copytree(os.path.join(ROOT, "models", name), os.path.join(repo, name))
    d = Daemon(repo).start()
    yield d
    d.stop()


@pytest.fixture
def browser(tmp_path):
    b = Browser(str(tmp_path / "profile"))
    yield b
    b.close()


def test_the_page_is_self_contained(daemon):
    status, headers, body = daemon.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    html = body.decode()
    for external in ("http://", "https://", "src=\"//", "<link"):
        assert external not in html
    assert daemon.request("HEAD", "/")[0] == 200


def open_page(browser, daemon, model):
    browser.open(f"http://127.0.0.1:{daemon.port}/")
    assert browser.wait_for("document.body && document.body.dataset.models") == "2"
    browser.eval(f"document.getElementById('model').value = {json.dumps(model)}; "
                 "document.getElementById('model').onchange(); true")


def test_faces_are_drawn_in_the_page(daemon, browser):
    photo = face_photos()[0]
    status, body = daemon.json("POST", "/v1/models/faces/detect", open(photo, "rb").read(),
                               {"Content-Type": "image/jpeg"})
    assert status == 200
    faces = body["results"][0]["detections"]
    assert len(faces) >= 5
    open_page(browser, daemon, "faces")
    browser.set_files("#file", [photo])
    assert browser.wait_for("['done', 'error'].includes(document.body.dataset.state) && "
                            "document.body.dataset.state") == "done", \
        browser.eval("document.getElementById('status').textContent")
    os.makedirs(SHOTS, exist_ok=True)
    browser.screenshot(os.path.join(SHOTS, "faces.png"))
    items = browser.eval("[...document.querySelectorAll('#results li.detection')]"
                         ".map((li) => li.textContent)")
    assert len(items) == len(faces)
    assert all(i.startswith("face") for i in items)
    size = browser.eval("[document.getElementById('canvas').width, "
                        "document.getElementById('canvas').height]")
    assert size == [body["results"][0]["width"], body["results"][0]["height"]]
    # the middle of each box's top edge, on the canvas, is the detector's green
    pixels = browser.eval(
        "(() => { const c = document.getElementById('canvas').getContext('2d');"
        f" return {json.dumps([d['box'] for d in faces])}.map(([x1, y1, x2, y2]) =>"
        " Array.from(c.getImageData(Math.floor((x1 + x2) / 2), Math.floor(y1), 1, 1).data)); })()")
    for (r, g, b, a), face in zip(pixels, faces):
        assert g >= 100 and r <= 60 and b <= 60, (r, g, b, face)
    timing = browser.eval("document.getElementById('timing').textContent")
    assert "inference" in timing and "total" in timing
    assert not browser.console_errors()


def test_a_classifier_lists_labels(daemon, browser):
    open_page(browser, daemon, "mnist")
    browser.set_files("#file", [os.path.join(ROOT, "models", "mnist", "sample-7.png")])
    assert browser.wait_for("['done', 'error'].includes(document.body.dataset.state) && "
                            "document.body.dataset.state") == "done"
    first = browser.eval("document.querySelector('#results li.prediction').textContent")
    assert first.startswith("7 ")
    os.makedirs(SHOTS, exist_ok=True)
    browser.screenshot(os.path.join(SHOTS, "mnist.png"))

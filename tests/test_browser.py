"""The server's web page in a real browser: Debian's Chromium, headless, driven by Playwright's
client (scripts/setup_browser.sh installs both; Playwright never downloads a browser here).

The real server (uvicorn in a thread on 127.0.0.1 and a free port) runs the small untrained model;
the page gets a file upload and Chromium's fake camera: the drawing appears, the person count and
the round-trip time show, and the page logs no console error."""

import importlib.util
import os
import re
import tempfile

import cv2
import numpy as np
import pytest
from _serving import small_model_cfg

from bodyparts.data.synthetic.render import render_scene
from bodyparts.serving import BatchPredictor, ServerThread, create_app
from bodyparts.taxonomy import FINE_LR
from bodyparts.utils.predictions import PredictionFormatter

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"{CHROMIUM} not installed (scripts/setup_browser.sh installs it)", allow_module_level=True
    )
if importlib.util.find_spec("playwright") is None:
    pytest.skip(
        "the playwright Python package is not installed (requirements/test.txt)",
        allow_module_level=True,
    )

from playwright.sync_api import sync_playwright  # noqa: E402

# Flags needed here as root, on a machine without network: no sandbox, no GPU, no background
# connections; a fake camera that needs no permission prompt.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
FRAMES = "Number(document.getElementById('result').dataset.frames || 0)"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = small_model_cfg()
    return BatchPredictor(cfg), PredictionFormatter.from_config(cfg, 0.0)


@pytest.fixture(scope="module")
def server(model):
    with ServerThread(create_app(*model, model_name="small untrained model")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        with tempfile.TemporaryDirectory() as profile:  # a fresh --user-data-dir
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1100, "height": 640},
            )
            try:
                yield context
            finally:
                context.close()


class PageLog:
    """Console messages and uncaught errors of a page."""

    def __init__(self, page):
        self.errors = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def _open(browser, url):
    page = browser.new_page()
    log = PageLog(page)
    page.goto(url)
    page.wait_for_function(
        f"document.querySelectorAll('#legend li').length == {FINE_LR.num_classes - 1}"
    )
    return page, log


def test_page_draws_an_uploaded_file(browser, server, tmp_path):
    scene = render_scene(4, 96, 128, min_persons=2, max_persons=3)
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), scene.image[:, :, ::-1])
    page, log = _open(browser, server.url + "/")
    try:
        legend = page.locator("#legend li").all_inner_texts()
        assert legend == list(FINE_LR.part_names)
        assert page.locator("#token-row").is_hidden()  # no --token: no token field
        page.set_input_files("#file", str(path))
        page.wait_for_function(f"{FRAMES} >= 1", timeout=60_000)
        size = page.evaluate(
            "[document.getElementById('result').naturalWidth, "
            "document.getElementById('result').naturalHeight]"
        )
        # the drawing of the whole image (legend=false: the page lists the parts)
        assert size == [128, 96]
        assert page.inner_text("#persons") == "4"  # DETECTIONS_PER_IMAGE 4, threshold 0
        assert re.fullmatch(r"\d+ ms", page.inner_text("#rtt"))
        assert page.inner_text("#status") == ""
        pixels = page.evaluate(
            "() => { const img = document.getElementById('result');"
            " const c = document.createElement('canvas');"
            " c.width = img.naturalWidth; c.height = img.naturalHeight;"
            " const g = c.getContext('2d');"
            " g.drawImage(img, 0, 0);"
            " return Array.from(g.getImageData(0, 0, c.width, c.height).data); }"
        )
        shown = np.array(pixels, np.uint8).reshape(96, 128, 4)[..., :3]
        assert np.abs(shown.astype(int) - scene.image.astype(int)).max() > 50  # persons drawn on it
        assert log.errors == []
    finally:
        page.close()


def test_page_streams_the_fake_camera(browser, server):
    page, log = _open(browser, server.url + "/")
    try:
        page.click("#camera-start")
        page.wait_for_function(f"{FRAMES} >= 3", timeout=90_000)  # frames sent one after another
        width = page.evaluate("document.getElementById('result').naturalWidth")
        assert 0 < width <= 640
        assert re.fullmatch(r"\d+", page.inner_text("#persons"))
        assert re.fullmatch(r"\d+ ms", page.inner_text("#rtt"))
        # the frames went through the WebSocket /stream: persons with ids across frames
        assert page.inner_text("#engine") == "server (stream)"
        assert page.is_disabled("#camera-start") and not page.is_disabled("#camera-stop")
        page.click("#camera-stop")
        assert page.inner_text("#status") == "camera off"
        assert page.inner_text("#engine") == "server"
        page.wait_for_timeout(500)  # a frame in flight when the camera stopped is dropped
        last = page.evaluate("window.bodypartsLastResult")
        assert last["engine"] == "server (stream)"
        assert len(last["persons"]) == int(page.inner_text("#persons"))
        ids = [p["id"] for p in last["persons"]]
        assert all(i is None or (isinstance(i, int) and i > 0) for i in ids)
        assert page.inner_text("#ids") == (" ".join(f"#{i}" for i in ids if i is not None) or "–")
        assert log.errors == []
    finally:
        page.close()


def test_page_sends_the_token(browser, model, tmp_path):
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), render_scene(3, 64, 64, 1, 1).image[:, :, ::-1])
    with ServerThread(create_app(*model, token="s3cret")) as secured:
        page, log = _open(browser, secured.url + "/")
        try:
            assert page.locator("#token-row").is_visible()
            page.set_input_files("#file", str(path))
            page.wait_for_function("document.getElementById('status').textContent.includes('401')")
            assert "token" in page.inner_text("#status")
            page.fill("#token", "s3cret")
            page.set_input_files("#file", [])
            page.set_input_files("#file", str(path))
            page.wait_for_function(f"{FRAMES} >= 1", timeout=60_000)
            assert page.inner_text("#status") == ""
            # the only console error is the browser's note of the refused (401) request
            assert all("401" in e for e in log.errors) and len(log.errors) == 1, log.errors
        finally:
            page.close()


def test_api_docs_render_offline(browser, server):
    page = browser.new_page()
    log = PageLog(page)
    try:
        page.goto(server.url + "/docs")
        page.wait_for_selector("text=/predict", timeout=30_000)
        assert page.locator(".opblock").count() == 4  # predict, render, health, info
        assert log.errors == []
    finally:
        page.close()

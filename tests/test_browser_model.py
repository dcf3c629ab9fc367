"""The model in the browser: the page runs an ONNX export with ONNX Runtime Web (WebAssembly in
headless Chromium, which has no WebGPU here) and post-processes it in JavaScript
(bodyparts/serving/static/inbrowser.js). On the same image file its result is the Python runtime's
(runtime/bodyparts_runtime): the same model input bit for bit, the same persons, boxes, part map and
keypoints. Without an in-browser model, or when ONNX Runtime Web cannot load, the page uses the
server (POST /render) as before."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from _serving import PARTS_CONFIG, REPO, SMALL_MODEL_OPTS, small_model_cfg
from conftest import run_tool_cmd
from fastapi.testclient import TestClient
from test_browser import CHROMIUM_ARGS, FRAMES, PageLog

from bodyparts.data.synthetic.render import render_scene
from bodyparts.serving import BatchPredictor, BrowserModelError, ServerThread, create_app
from bodyparts.serving.browser import ORT_DIST_DIR, ort_files
from bodyparts.taxonomy import FINE_LR
from bodyparts.utils.predictions import PredictionFormatter

if ort_files() is None:
    pytest.skip(
        f"onnxruntime-web is not installed in {ORT_DIST_DIR} (node_modules/onnxruntime-web: "
        "scripts/setup_browser.sh runs npm ci in bodyparts/serving/web)",
        allow_module_level=True,
    )

from playwright.sync_api import sync_playwright  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "runtime"))  # the Python runtime, the reference
from bodyparts_runtime import Runtime  # noqa: E402
from bodyparts_runtime.postprocess import resize  # noqa: E402

EXPORT = os.path.join(REPO, "tools", "export_model.py")
ENGINE = "document.getElementById('engine').textContent"
RESULT = """() => { const r = window.bodypartsLastResult;
  return {engine: r.engine, inputSize: r.inputSize, boxes: r.boxes, scores: r.scores,
    classes: r.classes, keypoints: r.keypoints, partMap: Array.from(r.partMap),
    inputPixels: Array.from(r.inputPixels),
    silhouettes: r.silhouettes.map((s) => ({y0: s.y0, x0: s.x0, height: s.height,
      width: s.width, mask: Array.from(s.mask)}))}; }"""


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth blobs on noise (as tests/test_runtime.py): the untrained model finds boxes on it."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    for _ in range(3):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.ellipse(image, (x, y), (8, 16), 0, 0, 360, colour, -1)
    return image


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """The ONNX export of the small untrained model of tests/_serving.py."""
    root = tmp_path_factory.mktemp("browser_model")
    sample = root / "sample.png"
    assert cv2.imwrite(str(sample), _image(64, 64, 0))
    env = dict(os.environ, DETECTRON2_DATASETS=str(root / "datasets"), OMP_NUM_THREADS="1")
    out = root / "export"
    cmd = run_tool_cmd(
        EXPORT, "--config-file", PARTS_CONFIG, "--format", "onnx", "--sample-image", str(sample),
        "--output", str(out), *SMALL_MODEL_OPTS,
    )  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return str(out)


@pytest.fixture(scope="module")
def model():
    cfg = small_model_cfg()
    return BatchPredictor(cfg), PredictionFormatter.from_config(cfg, 0.0)


@pytest.fixture(scope="module")
def server(model, export):
    app = create_app(*model, model_name="small untrained model", browser_model=export)
    with ServerThread(app) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 700},
        )
        try:
            yield context
        finally:
            context.close()


def _open(browser, url, engine="in browser (wasm)", route=None):
    page = browser.new_page()
    log = PageLog(page)
    if route is not None:
        page.route(*route)
    page.goto(url)
    page.wait_for_function(
        f"document.querySelectorAll('#legend li').length == {FINE_LR.num_classes - 1}"
    )
    page.wait_for_function(f"{ENGINE} == {json.dumps(engine)}", timeout=120_000)
    return page, log


def _run_file(page, path, frames=1):
    page.set_input_files("#file", [])
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"{FRAMES} >= {frames}", timeout=120_000)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the pixels labelled in either map where the two agree."""
    either = (a > 0) | (b > 0)
    return float((a[either] == b[either]).mean()) if either.any() else 1.0


def _full_mask(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> np.ndarray:
    """bool (H, W): ``crop`` at (y0, x0), False elsewhere."""
    out = np.zeros((height, width), bool)
    out[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return out


def _page_silhouette(found, height: int, width: int) -> np.ndarray:
    crop = np.asarray(found["mask"], bool).reshape(found["height"], found["width"])
    return _full_mask(crop, found["y0"], found["x0"], height, width)


# 64 x 64: the model's test size (no resize); 48 x 80 and 150 x 110: resized (up, down)
@pytest.mark.parametrize("height,width", [(64, 64), (48, 80), (150, 110)])
def test_in_browser_result_is_the_python_runtimes(browser, server, export, tmp_path, height, width):
    image = _image(height, width, seed=height)
    path = tmp_path / "image.png"
    assert cv2.imwrite(str(path), image)
    page, log = _open(browser, server.url + "/")
    try:
        assert page.is_visible("#engine-row")
        _run_file(page, path)
        got = page.evaluate(RESULT)
        assert page.is_visible("#result-canvas") and page.is_hidden("#result")
        drawn = page.evaluate(
            "() => { const c = document.getElementById('result-canvas');"
            " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"
        )
        drawn = np.asarray(drawn, np.uint8).reshape(height, width, 4)[..., 2::-1]  # BGR
        assert np.abs(drawn.astype(int) - image).max() > 50  # the persons drawn on the image
        assert page.inner_text("#status") == ""
        assert float(page.inner_text("#fps")) > 0
        assert log.errors == []
    finally:
        page.close()
    runtime = Runtime(export)
    expected = runtime.persons(image, 0.0)
    # the model input, bit for bit (Pillow's fixed-point bilinear resize in JavaScript)
    resized = resize(image, runtime.info["min_size_test"], runtime.info["max_size_test"])
    assert got["inputSize"] == list(resized.shape[:2])
    pixels = np.asarray(got["inputPixels"], np.uint8).reshape(3, *resized.shape[:2])
    np.testing.assert_array_equal(pixels, resized.transpose(2, 0, 1))
    # the persons: DETECTIONS_PER_IMAGE 4, threshold 0 (the server's)
    assert len(got["scores"]) == len(expected["scores"]) > 0
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)
    assert got["classes"] == expected["classes"].tolist()
    boxes = np.asarray(got["boxes"])
    assert np.abs(boxes - expected["boxes"]).max() <= 1.0
    keypoints = np.asarray(got["keypoints"])
    assert np.abs(keypoints[..., :2] - expected["keypoints"][..., :2]).max() <= 1.0
    np.testing.assert_allclose(keypoints[..., 2], expected["keypoints"][..., 2], rtol=1e-3)
    part_map = np.asarray(got["partMap"], np.uint8).reshape(height, width)
    agreement = _agreement(part_map, runtime.part_map(expected))
    silhouettes = [
        _agreement(_page_silhouette(s, height, width), _full_mask(*e, height, width))
        for s, e in zip(got["silhouettes"], expected["silhouettes"])
    ]
    print(
        f"\n{height}x{width}: {len(got['scores'])} persons, box diff "
        f"{np.abs(boxes - expected['boxes']).max():.2e} px, part-map agreement {agreement:.4f}, "
        f"silhouettes {min(silhouettes):.4f}"
    )
    assert agreement >= 0.99
    assert min(silhouettes) >= 0.99


def test_page_runs_the_fake_camera_in_the_browser(browser, server):
    page, log = _open(browser, server.url + "/")
    try:
        page.click("#camera-start")
        page.wait_for_function(f"{FRAMES} >= 3", timeout=120_000)
        page.click("#camera-stop")
        assert page.evaluate("window.bodypartsLastResult.engine") == "in browser (wasm)"
        assert 0 < page.evaluate("window.bodypartsLastResult.width") <= 640
        assert float(page.inner_text("#fps")) > 0
        assert log.errors == []
    finally:
        page.close()


def test_page_can_choose_the_server(browser, server, tmp_path):
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), render_scene(4, 96, 128, 2, 3).image[:, :, ::-1])
    page, log = _open(browser, server.url + "/")
    try:
        page.select_option("#engine-choice", "server")
        assert page.inner_text("#engine") == "server"
        _run_file(page, path)
        assert page.evaluate("window.bodypartsLastResult.engine") == "server"
        assert page.is_visible("#result") and page.is_hidden("#result-canvas")
        assert page.evaluate("document.getElementById('result').naturalWidth") == 128
        assert page.inner_text("#persons") == "4"
        page.select_option("#engine-choice", "browser")
        _run_file(page, path, frames=2)
        assert page.evaluate("window.bodypartsLastResult.engine") == "in browser (wasm)"
        assert page.inner_text("#persons") == "4"
        assert log.errors == []
    finally:
        page.close()


def test_page_uses_the_server_without_an_in_browser_model(browser, model, tmp_path):
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), render_scene(3, 64, 64, 1, 1).image[:, :, ::-1])
    with ServerThread(create_app(*model)) as plain:
        page, log = _open(browser, plain.url + "/", engine="server")
        try:
            assert page.is_hidden("#engine-row")
            _run_file(page, path)
            assert page.evaluate("window.bodypartsLastResult.engine") == "server"
            assert page.inner_text("#status") == ""
            assert log.errors == []
        finally:
            page.close()


def test_page_uses_the_server_when_onnxruntime_web_cannot_load(browser, server, tmp_path):
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), render_scene(3, 64, 64, 1, 1).image[:, :, ::-1])
    route = ("**/ort/ort.min.js", lambda r: r.abort())
    page, log = _open(browser, server.url + "/", engine="server", route=route)
    try:
        page.wait_for_function("document.getElementById('status').textContent.includes('server')")
        assert "cannot run in this browser" in page.inner_text("#status")
        assert page.is_hidden("#engine-row")
        _run_file(page, path)
        assert page.evaluate("window.bodypartsLastResult.engine") == "server"
        # the only console error is the browser's note of the aborted request
        assert len(log.errors) == 1 and "ERR_FAILED" in log.errors[0], log.errors
    finally:
        page.close()


def test_page_uses_the_server_when_the_in_browser_model_fails(browser, server, tmp_path):
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), render_scene(5, 64, 64, 1, 1).image[:, :, ::-1])
    page, log = _open(browser, server.url + "/")
    try:
        page.evaluate(
            "() => { state.browser.session.run = () => Promise.reject(new Error('boom')); }"
        )
        _run_file(page, path)  # the file goes to the server instead
        assert page.evaluate("window.bodypartsLastResult.engine") == "server"
        assert page.inner_text("#engine") == "server" and page.is_hidden("#engine-row")
        assert page.is_visible("#result")
        assert log.errors == []
    finally:
        page.close()


def test_routes_and_export_folder_errors(model, export, tmp_path):
    with TestClient(create_app(*model)) as client:
        assert client.get("/info").json()["browser_model"] is None
        assert client.get("/browser-model/model.onnx").status_code == 404
        assert client.get("/ort/ort.min.js").status_code == 200  # installed: served anyway
    with TestClient(create_app(*model, browser_model=export)) as client:
        offer = client.get("/info").json()["browser_model"]
        assert offer == {
            "model": "browser-model/model.onnx",
            "export_info": "browser-model/export_info.json",
            "runtime": "ort/ort.min.js",
        }
        page = client.get("/")
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        with open(os.path.join(export, "model.onnx"), "rb") as f:
            assert client.get("/" + offer["model"]).content == f.read()
        assert client.get("/" + offer["export_info"]).json()["format"] == "onnx"
        wasm = client.get("/ort/ort-wasm-simd-threaded.jsep.wasm")
        assert wasm.headers["content-type"] == "application/wasm"
        others = ["/browser-model/info.json", "/ort/package.json", "/ort/%2e%2e%2fpackage.json"]
        for other in others:
            assert client.get(other).status_code == 404, other
    info = json.load(open(os.path.join(export, "export_info.json")))
    cases = [
        (None, "no export_info.json; not a bodyparts export folder"),
        ("{not json", "not readable as JSON"),
        (dict(info, format="torchscript"), "format 'torchscript'; the page runs ONNX exports"),
        (dict(info, kind="semantic"), "a 'semantic' model; the page runs the per-person"),
        (dict(info, file="gone.onnx"), "gone.onnx: no such file"),
        (dict(info, file="../model.onnx"), "is not a file name in the folder"),
        ({"format": "onnx"}, "no file, outputs, min_size_test, max_size_test"),
    ]
    for content, message in cases:
        folder = tmp_path / f"case{cases.index((content, message))}"
        folder.mkdir()
        if content is not None:
            text = content if isinstance(content, str) else json.dumps(content)
            (folder / "export_info.json").write_text(text)
        with pytest.raises(BrowserModelError, match=message.replace("(", "\\(")):
            create_app(*model, browser_model=str(folder))
    with pytest.raises(BrowserModelError, match="ONNX Runtime Web is not installed"):
        create_app(*model, browser_model=export, ort_dir=str(tmp_path))
    with pytest.raises(BrowserModelError, match="no such folder"):
        create_app(*model, browser_model=str(tmp_path / "missing"))

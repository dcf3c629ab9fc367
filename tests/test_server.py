"""The model server (bodyparts.serving, tools/serve.py, tools/benchmark_server.py), in process with
FastAPI's TestClient: every route, every bad input, the token, the full queue (503), micro-batching,
no leak over many bad requests; the same JSON and drawing as tools/demo.py on a small model."""

import http.client
import importlib.util
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from _serving import (
    REPO,
    FakeBatchPredictor,
    FakePredictor,
    fake_formatter,
    fake_part_map,
    jpeg_bytes,
    make_image,
    png_bytes,
    small_model_cfg,
)
from fastapi.testclient import TestClient

from bodyparts.data.contract import decode_rle
from bodyparts.serving import (
    BatchPredictor,
    InferenceWorker,
    QueueFull,
    ServerLimits,
    ServerThread,
    WorkerStopped,
    create_app,
    free_port,
)
from bodyparts.taxonomy import FINE_LR
from bodyparts.utils.predictions import PredictionFormatter
from bodyparts.utils.visualizer import draw_predictions, metadata_for

PNG = {"content-type": "image/png"}


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f"bodyparts_tool_{name}", os.path.join(REPO, "tools", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client():
    with TestClient(create_app(FakePredictor(), fake_formatter())) as c:
        yield c


def _decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a PNG"
    return image


# ---------------------------------------------------------------------------------------------
# routes


def test_predict_returns_the_demo_json_of_the_persons_above_the_threshold(client):
    image = make_image(24, 32)
    raw = client.post("/predict", content=png_bytes(image), headers=PNG)
    assert raw.status_code == 200, raw.text
    record = raw.json()
    assert (record["height"], record["width"], record["file_name"]) == (24, 32, None)
    assert record["score_threshold"] == 0.5 and record["part_taxonomy"] == "fine_lr"
    assert record["part_labels"] == {name: k + 1 for k, name in enumerate(FINE_LR.part_names)}
    assert len(record["keypoint_names"]) == 17
    assert len(record["persons"]) == 1  # the 0.3 person is below the threshold
    person = record["persons"][0]
    assert person["box_xyxy"] == [2.0, 3.0, 14.0, 20.0]  # rounded to 2 decimals
    assert person["score"] == pytest.approx(0.9) and person["category"] == 0
    assert person["keypoints"] == [[k + 0.5, 2 * k + 0.25, 0.5] for k in range(17)]
    labels = fake_part_map(24, 32)
    assert set(person["parts"]) == {"head", "torso"}
    np.testing.assert_array_equal(decode_rle(person["parts"]["head"]), labels == 1)
    np.testing.assert_array_equal(decode_rle(person["parts"]["torso"]), labels == 2)
    np.testing.assert_array_equal(decode_rle(person["silhouette"]), labels > 0)
    assert raw.headers["x-person-count"] == "1"
    assert float(raw.headers["x-inference-ms"]) >= 0 and float(raw.headers["x-queue-ms"]) >= 0

    # the same image as a multipart upload and as a JPEG: the same persons; the file name is kept
    form = client.post("/predict", files={"file": ("scene.png", png_bytes(image), "image/png")})
    assert form.status_code == 200 and form.json() == {**record, "file_name": "scene.png"}
    jpeg = client.post(
        "/predict", content=jpeg_bytes(image), headers={"content-type": "image/jpeg"}
    )
    assert jpeg.status_code == 200 and jpeg.json()["persons"] == record["persons"]
    octet = client.post(
        "/predict", content=png_bytes(image), headers={"content-type": "application/octet-stream"}
    )
    assert octet.status_code == 200 and octet.json() == record


def test_render_returns_the_png_demo_draws(client):
    image = make_image(24, 32)
    fake = FakePredictor()
    meta = metadata_for("fine_lr")
    expected = {}
    for legend in (True, False):
        inst = fake.outputs(image)["instances"]
        inst = inst[inst.scores >= 0.5]
        vis = draw_predictions(
            np.ascontiguousarray(image[:, :, ::-1]), inst, meta, 0.5, legend=legend
        )
        expected[legend] = vis[:, :, ::-1]
    resp = client.post("/render", content=png_bytes(image), headers=PNG)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert resp.headers["x-person-count"] == "1"
    drawn = _decode_png(resp.content)
    assert drawn.shape[0] == 24 and drawn.shape[1] > 32  # legend on the right
    np.testing.assert_array_equal(drawn, expected[True])
    plain = _decode_png(
        client.post("/render?legend=false", content=png_bytes(image), headers=PNG).content
    )
    np.testing.assert_array_equal(plain, expected[False])
    assert not np.array_equal(plain, image)  # something was drawn


def test_health_info_page_and_offline_docs(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "model": "bodyparts",
        "queued": 0,
        "max_queue": 8,
        "processed": 0,
        "failed": 0,
        "dropped": 0,
    }
    info = client.get("/info").json()
    palette = FINE_LR.palette()
    assert info["parts"] == [
        {"label": k, "name": FINE_LR.label_names[k], "color": palette[k].tolist()}
        for k in range(1, FINE_LR.num_classes)
    ]
    assert info["part_taxonomy"] == "fine_lr" and info["auth_required"] is False
    assert info["limits"] == {
        "max_pixels": 12_000_000,
        "max_bytes": 20 * 1024 * 1024,
        "max_queue": 8,
        "max_batch": 1,
        "body_timeout": 30.0,
        "shutdown_timeout": 10.0,
    }

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in (
        'id="result"',
        'id="persons"',
        'id="rtt"',
        'id="legend"',
        'id="file"',
        'id="camera-start"',
    ):
        assert element in page.text
    assets = [page.text]
    for path in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
        asset = client.get("/" + path)
        assert asset.status_code == 200, path
        assets.append(asset.text)
    assert len(assets) == 4  # the page, inbrowser.js, app.js, style.css
    script = next(text for text in assets if "getUserMedia" in text)
    assert "render?legend=false" in script and "performance.now()" in script
    # offline: nothing is loaded from another host
    for text in assets:
        assert not re.search(r"(src|href)=\"(https?:)?//", text) and "cdn" not in text.lower()

    docs = client.get("/docs")
    assert docs.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+\.(?:js|css))['"]""", docs.text)
    assert urls and all(u.startswith("/static-offline-docs/") for u in urls), urls
    assert all(client.get(u).status_code == 200 for u in urls)
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/render", "/health", "/info"} <= set(spec["paths"])
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*", "application/octet-stream"} <= set(body)
    assert {"400", "401", "413", "415", "503"} <= set(spec["paths"]["/render"]["post"]["responses"])


def test_model_error_is_a_500_and_the_server_goes_on():
    app = create_app(FakePredictor(fail_height=13), fake_formatter())
    with TestClient(app) as c:
        bad = c.post("/predict", content=png_bytes(make_image(13, 20)), headers=PNG)
        assert bad.status_code == 500
        assert bad.json()["error"] == "model_error" and "fake model failure" in bad.json()["detail"]
        good = c.post("/predict", content=png_bytes(make_image(24, 32)), headers=PNG)
        assert good.status_code == 200
        assert c.get("/health").json()["failed"] == 1


def test_without_a_running_worker_requests_get_503():
    c = TestClient(create_app(FakePredictor(), fake_formatter()))  # no lifespan: no worker
    resp = c.post("/predict", content=png_bytes(make_image()), headers=PNG)
    assert resp.status_code == 503 and resp.json()["error"] == "worker_stopped"
    assert c.get("/health").status_code == 503


# ---------------------------------------------------------------------------------------------
# bad input


def _truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


BIG = make_image(120, 100)
BAD_INPUTS = {
    # name: (request kwargs, status, error code, text the detail must hold)
    "empty body": (dict(content=b"", headers=PNG), 400, "empty_body", "0 bytes"),
    "not an image": (dict(content=b"hello world", headers=PNG), 400, "not_an_image", "11 bytes"),
    "random bytes": (
        dict(content=np.random.default_rng(1).bytes(700), headers={"content-type": "image/jpeg"}),
        400,
        "not_an_image",
        "not an image",
    ),
    "truncated png": (
        dict(content=_truncated(png_bytes(make_image(40, 40))), headers=PNG),
        400,
        "corrupt_image",
        "truncated",
    ),
    "truncated jpeg": (
        dict(
            content=_truncated(jpeg_bytes(make_image(40, 40))),
            headers={"content-type": "image/jpeg"},
        ),
        400,
        "corrupt_image",
        "truncated",
    ),
    "too many pixels": (
        dict(content=png_bytes(BIG), headers=PNG),
        413,
        "image_too_large",
        "100 x 120 = 12000 pixels",
    ),
    "body over the byte limit": (
        dict(content=b"\0" * 70_000, headers=PNG),
        413,
        "body_too_large",
        "60000 bytes",
    ),
    "text content type": (
        dict(content=png_bytes(make_image()), headers={"content-type": "text/plain"}),
        415,
        "unsupported_content_type",
        "'text/plain'",
    ),
    "json content type": (
        dict(content=b"{}", headers={"content-type": "application/json"}),
        415,
        "unsupported_content_type",
        "'application/json'",
    ),
    "no content type": (
        dict(content=png_bytes(make_image())),
        415,
        "unsupported_content_type",
        "no Content-Type",
    ),
    "form without file": (dict(files={"name": (None, "x")}), 400, "no_file", "'file'"),
    "uploaded text file": (
        dict(files={"file": ("notes.txt", b"hi", "text/plain")}),
        415,
        "unsupported_content_type",
        "'notes.txt'",
    ),
    "empty uploaded file": (
        dict(files={"file": ("a.png", b"", "image/png")}),
        400,
        "empty_body",
        "'a.png'",
    ),
    "multipart without boundary": (
        dict(content=b"xx", headers={"content-type": "multipart/form-data"}),
        400,
        "bad_multipart",
        "boundary",
    ),
}


@pytest.fixture
def limited_client():
    limits = ServerLimits(max_pixels=10_000, max_bytes=60_000)
    with TestClient(create_app(FakePredictor(), fake_formatter(), limits=limits)) as c:
        yield c


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_4xx_json_error_naming_the_problem(limited_client, case):
    kwargs, status, code, text = BAD_INPUTS[case]
    for route in ("/predict", "/render"):
        resp = limited_client.post(route, **kwargs)
        assert resp.status_code == status, (route, resp.text)
        body = resp.json()
        assert body["error"] == code and text in body["detail"], body
    assert limited_client.get("/health").json()["processed"] == 0  # nothing reached the model
    ok = limited_client.post("/predict", content=png_bytes(make_image()), headers=PNG)
    assert ok.status_code == 200  # the server goes on


def test_wrong_method_route_and_parameter_are_json_errors(client):
    for resp, status, code in (
        (client.get("/predict"), 405, "method_not_allowed"),
        (client.get("/nowhere"), 404, "not_found"),
        (
            client.post("/render?legend=maybe", content=png_bytes(make_image()), headers=PNG),
            422,
            "invalid_parameter",
        ),
    ):
        assert resp.status_code == status and resp.json()["error"] == code, resp.text
    assert (
        "legend" in client.post("/render?legend=maybe", content=b"", headers=PNG).json()["detail"]
    )


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="/proc/self/statm (Linux) not available"
)
def test_many_bad_requests_leak_no_memory_threads_or_queue_slots(limited_client):
    cases = [BAD_INPUTS[k][0] for k in sorted(BAD_INPUTS)]
    good = dict(content=png_bytes(make_image()), headers=PNG)

    def loop(rounds):
        for _ in range(rounds):
            for kwargs in cases:
                assert limited_client.post("/predict", **kwargs).status_code >= 400
            assert limited_client.post("/render", **good).status_code == 200

    loop(3)  # warm-up: thread pool, allocator pools, imports
    threads, rss = threading.active_count(), _rss_bytes()
    loop(12)  # 12 x 15 = 180 requests, 168 of them bad
    assert threading.active_count() <= threads  # no thread left behind
    worker = limited_client.app.state.worker
    assert worker.queued == 0 and worker.processed == 15 and worker.alive
    assert _rss_bytes() - rss < 40 * 1024 * 1024  # bounded (allocator noise), not per request


# ---------------------------------------------------------------------------------------------
# token


def test_token_is_required_on_the_model_routes():
    app = create_app(FakePredictor(), fake_formatter(), token="s3cret")
    with TestClient(app) as c:
        body = dict(content=png_bytes(make_image()), headers=PNG)
        for route in ("/predict", "/render"):
            missing = c.post(route, **body)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            assert (
                missing.json()["error"] == "unauthorized"
                and "missing token" in missing.json()["detail"]
            )
            wrong = c.post(
                route, content=body["content"], headers={**PNG, "Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401 and "wrong token" in wrong.json()["detail"]
            basic = c.post(
                route, content=body["content"], headers={**PNG, "Authorization": "Basic czNjcmV0"}
            )
            assert basic.status_code == 401
            ok = c.post(
                route, content=body["content"], headers={**PNG, "Authorization": "Bearer s3cret"}
            )
            assert ok.status_code == 200, ok.text
        # health, info and the page stay open; the page learns that it must ask for the token
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200
        assert c.get("/info").json()["auth_required"] is True
        assert c.get("/health").json()["processed"] == 2  # only the authorised requests ran


# ---------------------------------------------------------------------------------------------
# queue, 503, micro-batching


def _wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_full_queue_answers_503_with_retry_after():
    release = threading.Event()
    predictor = FakePredictor(block=release)
    app = create_app(predictor, fake_formatter(), limits=ServerLimits(max_queue=1))
    body = dict(content=png_bytes(make_image()), headers=PNG)
    answers = {}
    with TestClient(app) as c:
        worker = app.state.worker

        def send(key):
            answers[key] = c.post("/predict", **body)

        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert predictor.entered.wait(20)  # the worker holds the first request
        second = threading.Thread(target=send, args=("second",))
        second.start()
        _wait_until(lambda: worker.queued == 1)  # the second one waits: the queue is full
        for route in ("/predict", "/render"):
            full = c.post(route, **body)
            assert full.status_code == 503, full.text
            assert (
                full.json()["error"] == "queue_full"
                and "1 requests waiting" in full.json()["detail"]
            )
            assert int(full.headers["retry-after"]) >= 1
        release.set()
        first.join(30)
        second.join(30)
        assert answers["first"].status_code == 200 and answers["second"].status_code == 200
        after = c.post("/predict", **body)  # room again
        assert after.status_code == 200
        assert worker.processed == 3 and worker.queued == 0


def test_micro_batching_gives_waiting_images_to_one_model_call():
    release = threading.Event()
    predictor = FakeBatchPredictor(block=release)
    app = create_app(predictor, fake_formatter(), limits=ServerLimits(max_queue=8, max_batch=3))
    sizes = [(24, 32), (30, 20), (26, 40), (21, 33)]
    answers = {}
    with TestClient(app) as c:
        worker = app.state.worker

        def send(size):
            answers[size] = c.post("/predict", content=png_bytes(make_image(*size)), headers=PNG)

        threads = [threading.Thread(target=send, args=(sizes[0],))]
        threads[0].start()
        assert predictor.entered.wait(20)
        for size in sizes[1:]:
            threads.append(threading.Thread(target=send, args=(size,)))
            threads[-1].start()
        _wait_until(lambda: worker.queued == 3)
        release.set()
        for t in threads:
            t.join(30)
    # a single image takes the one-image call; the three waiting ones go in one batch
    assert predictor.calls == [1, 3] and worker.batches == 2
    for size in sizes:
        assert answers[size].status_code == 200
        assert (answers[size].json()["height"], answers[size].json()["width"]) == size


def test_worker_queue_bound_and_stop():
    release = threading.Event()
    started = threading.Event()

    def run_batch(items):
        started.set()
        release.wait(20)
        return [item * 2 if item != 3 else ValueError("three") for item in items]

    with pytest.raises(ValueError, match="max_queue"):
        InferenceWorker(run_batch, max_queue=0)
    worker = InferenceWorker(run_batch, max_queue=2)
    with pytest.raises(WorkerStopped):
        worker.submit(1)
    worker.start()
    try:
        running = worker.submit(1)
        assert started.wait(20)
        waiting = [worker.submit(2), worker.submit(3)]
        with pytest.raises(QueueFull) as info:
            worker.submit(4)
        assert info.value.retry_after >= 1 and info.value.max_queue == 2
        release.set()
        assert running.result(20) == 2 and waiting[0].result(20) == 4
        with pytest.raises(ValueError, match="three"):  # one item's error reaches its waiter only
            waiting[1].result(20)
        assert worker.processed == 3 and worker.failed == 1
    finally:
        worker.stop()
    assert not worker.alive
    with pytest.raises(WorkerStopped):
        worker.submit(5)


# ---------------------------------------------------------------------------------------------
# the real (small, untrained) model: the same JSON and drawing as tools/demo.py


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    old = os.environ.get("DETECTRON2_DATASETS")
    os.environ["DETECTRON2_DATASETS"] = str(tmp_path_factory.mktemp("datasets"))
    try:
        cfg = small_model_cfg()
        yield cfg, BatchPredictor(cfg)
    finally:
        if old is None:
            os.environ.pop("DETECTRON2_DATASETS", None)
        else:
            os.environ["DETECTRON2_DATASETS"] = old


def test_small_model_server_answers_as_the_demo_writes(small_model, tmp_path):
    from bodyparts.data.synthetic.render import render_scene

    cfg, predictor = small_model
    formatter = PredictionFormatter.from_config(cfg, 0.0)
    scene = render_scene(7, 64, 80, min_persons=1, max_persons=2)
    path = tmp_path / "scene.png"
    assert cv2.imwrite(str(path), scene.image[:, :, ::-1])
    demo = _load_tool("demo")
    image, reason = demo.read_input_image(str(path))
    assert reason == ""
    vis, record, _ = demo.run_model(predictor, image, str(path), formatter, legend=True)
    assert record["persons"], "SCORE_THRESH_TEST 0 and threshold 0 keep detections"

    with TestClient(create_app(predictor, formatter)) as c:
        with open(path, "rb") as f:
            data = f.read()
        served = c.post("/predict", files={"file": ("scene.png", data, "image/png")})
        assert served.status_code == 200, served.text
        assert served.json() == {**record, "file_name": "scene.png"}
        drawn = c.post("/render", content=data, headers=PNG)
        assert drawn.status_code == 200
        assert drawn.headers["x-person-count"] == str(len(record["persons"]))
        np.testing.assert_array_equal(_decode_png(drawn.content), vis)


def test_batch_predictor_matches_one_image_calls(small_model):
    from bodyparts.data.synthetic.render import render_scene

    _, predictor = small_model
    images = [np.ascontiguousarray(render_scene(s, 64, 64, 1, 2).image[:, :, ::-1]) for s in (2, 9)]
    batched = predictor.predict_batch(images)
    assert len(batched) == 2
    for image, out in zip(images, batched):
        single = predictor(image)["instances"]
        got = out["instances"]
        assert got.image_size == (64, 64) and len(got) == len(single) > 0
        torch.testing.assert_close(
            got.pred_boxes.tensor, single.pred_boxes.tensor, atol=1e-3, rtol=1e-4
        )
        torch.testing.assert_close(got.scores, single.scores, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            got.pred_part_masks.probs, single.pred_part_masks.probs, atol=1e-4, rtol=1e-4
        )


# ---------------------------------------------------------------------------------------------
# tools/serve.py and tools/benchmark_server.py


def test_serve_tool_usage_errors(tmp_path, capsys):
    serve = _load_tool("serve")
    parser = serve.get_parser()
    args = parser.parse_args(["--config-file", str(tmp_path / "missing.yaml")])
    assert (args.host, args.port, args.token) == ("127.0.0.1", 8000, None)  # loopback by default
    assert serve.main(args) == 2 and "missing.yaml does not exist" in capsys.readouterr().err
    args = parser.parse_args(["--config-file", str(tmp_path / "x.yaml"), "--max-queue", "0"])
    assert serve.main(args) == 2 and "max_queue must be >= 1" in capsys.readouterr().err


def test_benchmark_server_counts_every_answer(tmp_path):
    bench = _load_tool("benchmark_server")
    app = create_app(FakePredictor(), fake_formatter(), limits=ServerLimits(max_queue=16))
    with ServerThread(app) as server:
        out = tmp_path / "report.json"
        code = bench.main(
            [
                "--url",
                server.url,
                "--requests",
                "6",
                "--concurrency",
                "1",
                "3",
                "--size",
                "48",
                "--warmup",
                "1",
                "--json",
                str(out),
            ]
        )
        assert code == 0
        report = json.loads(out.read_text())
        assert [level["concurrency"] for level in report["levels"]] == [1, 3]
        for level in report["levels"]:
            assert level["requests"] == 6 and level["ok"] == 6 and level["outcomes"] == {"200": 6}
            assert level["rejected_queue_full"] == 0 and level["unexpected_errors"] == 0
            assert set(level["latency_ms"]) == {"p50", "p95", "p99", "max"}
        assert report["server"]["limits"]["max_queue"] == 16
        assert app.state.worker.processed == 1 + 6 + 6  # warm-up + two levels

        render = bench.main(
            [
                "--url",
                server.url,
                "--requests",
                "2",
                "--concurrency",
                "2",
                "--route",
                "render",
                "--size",
                "48",
                "--warmup",
                "0",
                "--json",
                str(out),
            ]
        )
        assert render == 0 and json.loads(out.read_text())["levels"][0]["ok"] == 2


def test_benchmark_server_reports_503s_and_unexpected_errors(tmp_path):
    bench = _load_tool("benchmark_server")
    out = tmp_path / "report.json"
    # a token the clients do not send: every answer is an unexpected 401, exit code 1
    app = create_app(FakePredictor(), fake_formatter(), token="t")
    with ServerThread(app) as server:
        code = bench.main(
            [
                "--url",
                server.url,
                "--requests",
                "4",
                "--concurrency",
                "2",
                "--size",
                "48",
                "--warmup",
                "0",
                "--json",
                str(out),
            ]
        )
    level = json.loads(out.read_text())["levels"][0]
    assert code == 1 and level["outcomes"] == {"401": 4} and level["unexpected_errors"] == 4

    # a slow model and a queue of one under 4 clients: only 200s and full-queue 503s
    class Slow(FakePredictor):
        def __call__(self, image):
            time.sleep(0.05)
            return super().__call__(image)

    app = create_app(Slow(), fake_formatter(), limits=ServerLimits(max_queue=1))
    with ServerThread(app) as server:
        code = bench.main(
            [
                "--url",
                server.url,
                "--requests",
                "12",
                "--concurrency",
                "4",
                "--size",
                "48",
                "--warmup",
                "0",
                "--json",
                str(out),
            ]
        )
    level = json.loads(out.read_text())["levels"][0]
    assert code == 0 and level["unexpected_errors"] == 0
    assert level["ok"] + level["rejected_queue_full"] == 12
    assert set(level["outcomes"]) <= {"200", "503 queue_full"}

    # targets other than loopback are refused before any request
    assert bench.main(["--url", "http://10.1.2.3:8000", "--requests", "1"]) == 2


# ---------------------------------------------------------------------------------------------
# shedding work: abandoned requests, slow bodies, drawing off the model thread, bounded shutdown,
# the Host allow-list (new names are imported inside the tests)


class _Records(logging.Handler):
    """Collects the log records of the server (uvicorn's loggers do not reach pytest's caplog).
    Enter it after creating the ServerThread: uvicorn's Config resets its loggers' handlers."""

    NAMES = ("uvicorn", "bodyparts")

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
        logger = logging.getLogger("bodyparts")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)
        logging.getLogger("bodyparts").setLevel(self._level)

    def errors(self):
        return [r for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


def _raw_request(port: int, path: str, body: bytes, content_length=None, host="127.0.0.1"):
    """A connected socket that has sent a POST with ``body`` (all of it or, with a larger
    ``content_length``, the first part of it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body) if content_length is None else content_length}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _read_response(sock) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the timeout)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _post(port: int, path: str, body: bytes, timeout: float = 60.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_a_client_that_disconnects_before_its_turn_never_reaches_the_model():
    release = threading.Event()
    predictor = FakePredictor(block=release)
    app = create_app(predictor, fake_formatter())
    body = png_bytes(make_image())
    with ServerThread(app) as server, _Records() as log:
        worker = app.state.worker
        answers = {}
        first = threading.Thread(
            target=lambda: answers.setdefault("first", _post(server.port, "/predict", body))
        )
        first.start()
        assert predictor.entered.wait(20)  # the model holds the first request
        gone = _raw_request(server.port, "/predict", body)
        _wait_until(lambda: worker.queued == 1)  # the second one waits for its turn
        gone.close()  # ... and its client leaves
        _wait_until(lambda: _get_json(server.port, "/health")["dropped"] == 1)
        assert worker.queued == 0
        release.set()
        first.join(30)
        assert answers["first"][0] == 200
        third = _post(server.port, "/predict", body)  # served after the dropped one's turn
        assert third[0] == 200
        health = _get_json(server.port, "/health")
    assert len(predictor.calls) == 2  # the first and the third: never the abandoned one
    assert health["processed"] == 2 and health["dropped"] == 1 and health["failed"] == 0
    assert any("dropped before the model" in r.getMessage() for r in log.records)
    assert not log.errors()


def _get_json(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def test_a_slow_body_times_out_with_408_and_a_vanished_one_leaves_no_traceback():
    limits = ServerLimits(body_timeout=1.0)  # noqa: F841 (a TypeError on the old server)
    predictor = FakePredictor()
    app = create_app(predictor, fake_formatter(), limits=limits)
    body = png_bytes(make_image())
    with ServerThread(app) as server, _Records() as log:
        slow = _raw_request(server.port, "/render", body[:50], content_length=len(body))
        start = time.monotonic()
        answer = _read_response(slow)  # the server answers and closes the connection
        elapsed = time.monotonic() - start
        slow.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 408"), answer[:200]
        error = json.loads(rest.split(b"\r\n\r\n", 1)[1])
        assert error["error"] == "body_timeout" and "--body-timeout" in error["detail"]
        assert elapsed < 20  # the 1 s bound, with a generous margin

        # a client that leaves in the middle of its upload: one log line, no traceback
        half = _raw_request(server.port, "/predict", body[:50], content_length=len(body))
        half.close()
        _wait_until(lambda: any("while sending its body" in r.getMessage() for r in log.records))
        assert _post(server.port, "/predict", body)[0] == 200  # the server goes on
    timeouts = [r for r in log.records if "--body-timeout" in r.getMessage()]
    assert len(timeouts) == 1 and timeouts[0].levelno == logging.WARNING
    assert not log.errors(), [r.getMessage() for r in log.errors()]
    assert len(predictor.calls) == 1


class _BlockingFormatter(PredictionFormatter):
    """The fake formatter whose drawings (``draw=True``) wait for ``release``."""

    def __init__(self, release: threading.Event):
        base = fake_formatter()
        super().__init__(base.metadata, score_threshold=base.score_threshold)
        self.release, self.drawing = release, threading.Event()

    def __call__(self, outputs, image_bgr, file_name=None, **kwargs):
        if kwargs.get("draw"):
            self.drawing.set()
            assert self.release.wait(30), "the test never released the drawing"
        return super().__call__(outputs, image_bgr, file_name, **kwargs)


def test_drawing_runs_off_the_model_thread_and_is_not_inference_time():
    release = threading.Event()
    predictor = FakePredictor()
    formatter = _BlockingFormatter(release)
    app = create_app(predictor, formatter)
    body = dict(content=png_bytes(make_image()), headers=PNG)
    answers = {}
    with TestClient(app) as c:

        def send(route):
            answers[route.strip("/")] = c.post(route, **body)

        drawing = threading.Thread(target=send, args=("/render",))
        drawing.start()
        assert formatter.drawing.wait(20)  # the drawing of the first request is held ...
        held_from = time.monotonic()
        predict = threading.Thread(target=send, args=("/predict",))
        predict.start()
        predict.join(20)  # ... while the model thread serves the next request
        served_meanwhile = "predict" in answers
        time.sleep(max(0.0, 1.0 - (time.monotonic() - held_from)))  # held >= 1 s in all
        release.set()
        drawing.join(30)
        predict.join(30)
    assert served_meanwhile, "the model thread waited for a drawing"
    assert answers["predict"].status_code == 200 and len(predictor.calls) == 2
    render = answers["render"]
    assert render.status_code == 200 and render.headers["content-type"] == "image/png"
    # the held drawing is post-processing time, not inference time nor queue time
    assert float(render.headers["x-postprocess-ms"]) >= 1000.0
    assert float(render.headers["x-inference-ms"]) < 1000.0
    assert float(render.headers["x-queue-ms"]) < 1000.0


def test_worker_drain_runs_queued_items_until_the_deadline_then_refuses():
    release = threading.Event()
    started = threading.Event()
    ran = []

    def run_batch(items):
        started.set()
        release.wait(20)
        ran.extend(items)
        return [item * 10 for item in items]

    worker = InferenceWorker(run_batch, max_queue=4)
    worker.start()
    try:
        running = worker.submit(1)
        assert started.wait(20)
        queued = [worker.submit(2), worker.submit(3)]
        abandoned = worker.submit(4)
        assert worker.abandon(abandoned) and worker.queued == 2 and worker.dropped == 1
        worker.drain(0.0)  # no time left: nothing queued starts any more
        with pytest.raises(WorkerStopped, match="shutting down"):
            worker.submit(5)
        release.set()
        assert running.result(20) == 10
        for future in queued:
            with pytest.raises(WorkerStopped, match="shutdown timeout"):
                future.result(20)
        worker.join(20)
        assert not worker.alive and ran == [1]
        assert worker.refused_at_shutdown == 2 and worker.dropped == 1
        assert not worker.abandon(running)  # it ran: nothing to drop

        # with time left, queued items still run; an empty queue ends the thread at once
        worker = InferenceWorker(lambda items: [i * 10 for i in items], max_queue=4)
        worker.start()
        release.clear()
        futures = [worker.submit(i) for i in (6, 7)]
        worker.drain(30.0)
        assert [f.result(20) for f in futures] == [60, 70]
        worker.join(20)
        assert not worker.alive and worker.refused_at_shutdown == 0
    finally:
        release.set()
        worker.stop()


def test_sigterm_with_a_full_queue_answers_503_and_exits_within_the_bound(tmp_path):
    from _serving import PARTS_CONFIG, SMALL_MODEL_OPTS

    from bodyparts.serving.server import SHUTDOWN_GRACE_S

    port = free_port()
    shutdown_timeout = 0.0  # every request not started at SIGTERM is refused
    # a slower small model (384 px inputs) so that requests wait in the queue
    opts = SMALL_MODEL_OPTS + ["INPUT.MIN_SIZE_TEST", "384", "INPUT.MAX_SIZE_TEST", "640"]
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "serve.py"),
        "--config-file",
        PARTS_CONFIG,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-queue",
        "8",
        "--shutdown-timeout",
        str(shutdown_timeout),
        "--log-level",
        "warning",
        *opts,
    ]
    env = {**os.environ, "DETECTRON2_DATASETS": str(tmp_path / "datasets")}
    stderr = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=stderr, stderr=stderr)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, open(tmp_path / "stderr.txt").read()[-3000:]
            try:
                if _get_json(port, "/health").get("status") == "ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tools/serve.py did not start in 300 s"
            time.sleep(0.2)
        body = png_bytes(make_image(64, 64))
        answers = []

        def client():
            try:
                status, headers, data = _post(port, "/predict", body, timeout=60)
                try:
                    code = json.loads(data).get("error") if status != 200 else None
                except ValueError:
                    code = data[:200]
                answers.append((status, code))
            except (OSError, http.client.HTTPException) as e:
                answers.append(("connection_error", type(e).__name__))

        clients = [threading.Thread(target=client) for _ in range(9)]  # 1 running + 8 queued
        for t in clients:
            t.start()
        _wait_until(lambda: _get_json(port, "/health")["queued"] >= 4, timeout=120)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        bound = shutdown_timeout + SHUTDOWN_GRACE_S + 15  # generous margin
        proc.wait(timeout=bound)
        exited_after = time.monotonic() - signalled
        for t in clients:
            t.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    log = open(tmp_path / "stderr.txt").read()
    assert exited_after < bound
    assert proc.returncode in (0, -signal.SIGTERM), log[-3000:]
    assert len(answers) == 9, answers
    refused = [a for a in answers if a[0] == 503]
    expected = ((200, None), (503, "shutting_down"), (503, "queue_full"))
    assert all(a in expected for a in answers), (answers, log[-4000:])
    # the queued requests (>= 4 at SIGTERM, one may start before the worker sees the signal)
    assert sum(a == (503, "shutting_down") for a in refused) >= 3, answers
    assert "Traceback" not in log, log[-3000:]


def test_a_foreign_host_header_gets_400():
    from bodyparts.serving import default_allowed_hosts

    loopback = default_allowed_hosts("127.0.0.1")
    assert set(loopback) == {"127.0.0.1", "localhost", "::1"}
    assert default_allowed_hosts("10.1.2.3", ["bodyparts.lan", ""]) == ["10.1.2.3", "bodyparts.lan"]
    assert set(default_allowed_hosts("0.0.0.0")) == {"127.0.0.1", "localhost", "::1"}
    app = create_app(FakePredictor(), fake_formatter(), allowed_hosts=loopback)
    body = dict(content=png_bytes(make_image()), headers=PNG)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1234", "[::1]:8000", "::1"):
            ok = c.post("/predict", content=body["content"], headers={**PNG, "host": host})
            assert ok.status_code == 200, (host, ok.text)
        for host in ("evil.example:8000", "127.0.0.1.evil.example", "localhost.evil", "[::2]:80"):
            for method, route in (("post", "/predict"), ("get", "/health"), ("get", "/")):
                kwargs = dict(body) if method == "post" else {}
                kwargs["headers"] = {**kwargs.get("headers", {}), "host": host}
                bad = getattr(c, method)(route, **kwargs)
                assert bad.status_code == 400, (host, route, bad.text)
                error = bad.json()
                assert error["error"] == "host_not_allowed" and host in error["detail"]
                assert "--allowed-hosts" in error["detail"]
        assert c.get("/health").json()["processed"] == 5  # the refused ones never ran

    # tools/serve.py: --allowed-hosts adds names; '*' allows any
    serve = _load_tool("serve")
    args = serve.get_parser().parse_args(["--config-file", "x.yaml", "--allowed-hosts", "a.lan,b"])
    assert args.allowed_hosts == "a.lan,b"
    wildcard = create_app(FakePredictor(), fake_formatter(), allowed_hosts=["*"])
    with TestClient(wildcard) as c:
        assert c.get("/health", headers={"host": "anything.example"}).status_code == 200

"""The server's streaming route (WebSocket /stream): frames in, the persons with their ids across
frames and the drawing out; errors per frame; token, Host and Origin checks."""

import threading
from typing import Dict

import cv2
import numpy as np
import pytest
import torch
from _serving import fake_formatter, jpeg_bytes, make_image, png_bytes
from detectron2.structures import Boxes, Instances
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bodyparts.serving import create_app

pytest.importorskip("trackers", reason="the 'trackers' package is not installed")
from bodyparts_runtime.tracking import id_color  # noqa: E402

H, W = 96, 160


class WalkingPredictor:
    """Two persons crossing: A (score 0.9) walks right, B (0.8) walks left, 10 px per call."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> Dict:
        with self.lock:
            t = self.calls
            self.calls += 1
        a = [10 + 10 * t, 10, 40 + 10 * t, 80]
        b = [120 - 10 * t, 14, 150 - 10 * t, 86]
        instances = Instances(
            image.shape[:2],
            pred_boxes=Boxes(torch.tensor([a, b], dtype=torch.float32)),
            scores=torch.tensor([0.9, 0.8]),
            pred_classes=torch.tensor([0, 0]),
        )
        return {"instances": instances}


def _frames(ws, n, image=None):
    out = []
    for i in range(n):
        ws.send_bytes(jpeg_bytes(make_image(H, W, i) if image is None else image))
        meta = ws.receive_json()
        assert "error" not in meta, meta
        drawing = cv2.imdecode(np.frombuffer(ws.receive_bytes(), np.uint8), cv2.IMREAD_COLOR)
        out.append((meta, drawing))
    return out


def test_stream_keeps_ids_across_frames_and_draws_them():
    with TestClient(create_app(WalkingPredictor(), fake_formatter())) as client:
        with client.websocket_connect("/stream") as ws:
            frames = _frames(ws, 12)  # A and B cross between frames 5 and 6
        meta, drawing = frames[0]
        assert meta["frame"] == 0 and meta["person_count"] == 2
        assert [p["id"] for p in meta["persons"]] == [None, None]  # not confirmed yet
        assert drawing.shape == (H, W, 3)  # the drawing, no legend
        for i, (meta, _) in enumerate(frames[1:], start=1):
            assert meta["frame"] == i
            # best first: A then B, each with its own id in every frame
            assert [p["id"] for p in meta["persons"]] == [1, 2], (i, meta["persons"])
            assert meta["persons"][0]["box_xyxy"][0] == pytest.approx(10 + 10 * i)
            assert meta["inference_ms"] >= 0 and meta["postprocess_ms"] >= 0
        # the last drawing: each person's left box edge in its id's colour (BGR)
        meta, drawing = frames[-1]
        for p in meta["persons"]:
            x0, y0, _, y1 = (int(round(v)) for v in p["box_xyxy"])
            edge = drawing[(y0 + y1) // 2 - 5 : (y0 + y1) // 2 + 5, x0].astype(int)
            want = np.array(id_color(p["id"])[::-1])
            assert (np.abs(edge - want).max(axis=1) <= 40).mean() > 0.5, (p["id"], edge[:2], want)
        # a second connection has a tracker of its own: ids from 1 again
        with client.websocket_connect("/stream") as ws:
            again = _frames(ws, 2)
        assert [p["id"] for p in again[1][0]["persons"]] == [1, 2]


def test_stream_answers_bad_frames_and_goes_on():
    app = create_app(WalkingPredictor(), fake_formatter())
    with TestClient(app) as client, client.websocket_connect("/stream") as ws:
        ws.send_text("hello")
        answer = ws.receive_json()
        assert answer["error"] == "binary_expected" and "binary message" in answer["detail"]
        ws.send_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a corrupt PNG
        answer = ws.receive_json()
        assert answer["frame"] == 0 and "error" in answer and "stream frame 0" in answer["detail"]
        truncated = png_bytes(make_image(H, W))[:-50]
        ws.send_bytes(truncated)
        assert "error" in ws.receive_json()
        meta, _ = _frames(ws, 1)[0]  # the stream still works
        assert meta["frame"] == 2 and meta["person_count"] == 2  # frames count every image sent


def test_stream_limits_and_model_errors():
    from bodyparts.serving import ServerLimits

    class Failing(WalkingPredictor):
        def __call__(self, image):
            if image.shape[0] == 33:
                raise RuntimeError("fake failure")
            return super().__call__(image)

    app = create_app(Failing(), fake_formatter(), limits=ServerLimits(max_pixels=100 * 100))
    with TestClient(app) as client, client.websocket_connect("/stream") as ws:
        ws.send_bytes(png_bytes(make_image(200, 200)))
        answer = ws.receive_json()
        assert (
            answer["error"] == "image_too_large" and "over the limit of 10000" in answer["detail"]
        )
        ws.send_bytes(png_bytes(make_image(33, 40)))
        answer = ws.receive_json()
        assert answer["error"] == "model_error" and "fake failure" in answer["detail"]
        assert _frames(ws, 1, make_image(90, 100))[0][0]["person_count"] == 2


def test_stream_token():
    app = create_app(WalkingPredictor(), fake_formatter(), token="s3cret")
    with TestClient(app) as client:
        for path, why in (("/stream", "missing token"), ("/stream?token=nope", "wrong token")):
            with client.websocket_connect(path) as ws:
                answer = ws.receive_json()
                assert answer["error"] == "unauthorized" and why in answer["detail"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == 1008
        with client.websocket_connect("/stream?token=s3cret") as ws:
            assert _frames(ws, 1)[0][0]["person_count"] == 2


def test_stream_host_and_origin_checks():
    app = create_app(WalkingPredictor(), fake_formatter(), allowed_hosts=["testserver"])
    with TestClient(app) as client:
        with client.websocket_connect(
            "/stream", headers={"Origin": "http://testserver:8000"}
        ) as ws:
            assert _frames(ws, 1)[0][0]["person_count"] == 2
        with client.websocket_connect("/stream") as ws:  # no Origin: not a browser
            assert _frames(ws, 1)[0][0]["person_count"] == 2
        for headers in (
            {"Origin": "http://evil.example"},  # a page of another site
            {"Origin": "null"},
            {"Host": "evil.example"},  # DNS rebinding
        ):
            with pytest.raises(WebSocketDisconnect) as refused:
                with client.websocket_connect("/stream", headers=headers):
                    pass
            assert refused.value.code == 1008, headers

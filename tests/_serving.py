"""Helpers of the server tests (tests/test_server.py, tests/test_browser.py): a fake predictor
with hand-made outputs, the small untrained model, encoded test images."""

import os
import threading
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from bodyparts.utils.predictions import PredictionFormatter, load_inference_cfg
from bodyparts.utils.visualizer import metadata_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
)
# Untrained (seeded) small model: tiny part head, 64 px inputs, every proposal kept so that it
# detects persons.
SMALL_MODEL_OPTS = [
    "MODEL.WEIGHTS",
    "",
    "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
    "8",
    "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
    "[32, 32]",
    "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
    "1",
    "INPUT.MIN_SIZE_TEST",
    "64",
    "INPUT.MAX_SIZE_TEST",
    "128",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "0.0",
    "TEST.DETECTIONS_PER_IMAGE",
    "4",
]


def png_bytes(image_bgr: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image_bgr)
    assert ok
    return data.tobytes()


def jpeg_bytes(image_bgr: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image_bgr)
    assert ok
    return data.tobytes()


def make_image(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A BGR image with varied pixels."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def fake_formatter(threshold: float = 0.5) -> PredictionFormatter:
    return PredictionFormatter(metadata_for("fine_lr"), score_threshold=threshold)


def fake_part_map(height: int, width: int) -> np.ndarray:
    """uint8 (H, W): head (1) at rows 3-9, columns 2-7; torso (2) at rows 10-19, columns 2-13."""
    labels = np.zeros((height, width), np.uint8)
    labels[3:10, 2:8] = 1
    labels[10:20, 2:14] = 2
    return labels


def fake_keypoints() -> torch.Tensor:
    """(1, 17, 3): keypoint k at (k + 0.5, 2k + 0.25) with score 0.5."""
    k = torch.arange(17, dtype=torch.float32)
    return torch.stack([k + 0.5, 2 * k + 0.25, torch.full((17,), 0.5)], dim=1)[None]


class FakePredictor:
    """Hand-made outputs for any image (H >= 20, W >= 14): one person of score 0.9 (box
    [2, 3, 14, 20], parts :func:`fake_part_map`, its silhouette, :func:`fake_keypoints`) and one of
    score 0.3 (below the default 0.5 threshold). ``block`` (an Event) makes every call wait for it;
    ``entered`` is set when a call starts. Images of height ``fail_height`` raise RuntimeError."""

    def __init__(self, block: Optional[threading.Event] = None, fail_height: int = -1):
        self.block, self.fail_height = block, fail_height
        self.entered = threading.Event()
        self.calls: List[int] = []  # images per call

    def outputs(self, image: np.ndarray) -> Dict:
        height, width = image.shape[:2]
        if height == self.fail_height:
            raise RuntimeError(f"fake model failure on a {height} px image")
        labels = fake_part_map(height, width)
        low = np.zeros_like(labels)
        low[0:2, 0:2] = 5
        maps = torch.from_numpy(np.stack([labels, low]))
        instances = Instances(
            (height, width),
            pred_boxes=Boxes(torch.tensor([[2.004, 3.0, 14.0, 20.0], [0.0, 0.0, 2.0, 2.0]])),
            scores=torch.tensor([0.9, 0.3]),
            pred_classes=torch.tensor([0, 0]),
            pred_part_labels=maps,
            pred_masks=maps > 0,
            pred_keypoints=torch.cat([fake_keypoints(), fake_keypoints()]),
        )
        return {"instances": instances}

    def _wait(self):
        self.entered.set()
        if self.block is not None:
            assert self.block.wait(30), "the test never released the fake predictor"

    def __call__(self, image: np.ndarray) -> Dict:
        self.calls.append(1)
        self._wait()
        return self.outputs(image)


class FakeBatchPredictor(FakePredictor):
    """FakePredictor with ``predict_batch`` (records the batch sizes in ``calls``)."""

    def predict_batch(self, images: List[np.ndarray]) -> List[Dict]:
        self.calls.append(len(images))
        self._wait()
        return [self.outputs(image) for image in images]


def small_model_cfg():
    return load_inference_cfg(PARTS_CONFIG, SMALL_MODEL_OPTS)

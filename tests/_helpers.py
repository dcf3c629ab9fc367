"""Helpers shared by the data tests: tiny hand-made images, records and dataset registrations.

Plain functions (and one fixture, imported by the test modules that use it) so that no test needs
real data; everything is written under pytest's ``tmp_path``.
"""
import os
import uuid
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from bodyparts.data.contract import encode_mask
from bodyparts.taxonomy import COCO_PERSON_KEYPOINTS

KP_NAMES = COCO_PERSON_KEYPOINTS.names

# A 4 x 6 part map in the fine_lr taxonomy (labels: 1 head, 2 torso, 3 left_upper_arm,
# 5 left_lower_arm, 7 left_hand, 9 left_upper_leg, 11 left_lower_leg, 13 left_foot).
FINE_PART_MAP = np.array(
    [
        [3, 3, 1, 1, 0, 0],
        [5, 2, 2, 7, 0, 0],
        [9, 9, 2, 2, 0, 0],
        [11, 13, 2, 0, 0, 0],
    ],
    dtype=np.uint8,
)


def write_image(path, height: int, width: int) -> np.ndarray:
    """Write a BGR PNG with varied pixel values; returns the (H, W, 3) uint8 array written."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    values = np.arange(height * width * 3, dtype=np.int64).reshape(height, width, 3) * 7 % 251
    image = values.astype(np.uint8)
    assert cv2.imwrite(str(path), image)
    return image


def write_label_png(path, labels: np.ndarray) -> None:
    """Write a single-channel uint8 label PNG."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    assert cv2.imwrite(str(path), labels.astype(np.uint8))


def parts_from_map(part_map: np.ndarray) -> Dict[int, dict]:
    """Contract ``parts`` field ({label: RLE}) of a label map (0 = background, 255 not allowed)."""
    return {int(lab): encode_mask(part_map == lab) for lab in np.unique(part_map) if lab != 0}


def keypoints(named: Optional[Dict[str, Tuple[float, float, int]]] = None) -> list:
    """Flat COCO-17 keypoint list; keypoints not named are (0, 0, 0)."""
    named = dict(named or {})
    out = []
    for name in KP_NAMES:
        x, y, v = named.pop(name, (0.0, 0.0, 0))
        out += [float(x), float(y), int(v)]
    assert not named, f"unknown keypoint names {sorted(named)}"
    return out


def remove_dataset(name: str) -> None:
    """Undo a DatasetCatalog/MetadataCatalog registration (no error if absent)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


@pytest.fixture
def dataset_name():
    """A unique dataset name; whatever a test registers under it is removed afterwards."""
    name = f"bodyparts_test_{uuid.uuid4().hex[:10]}"
    yield name
    remove_dataset(name)

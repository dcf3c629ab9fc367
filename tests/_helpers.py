"""Helpers shared by the data tests: tiny hand-made images, records and dataset registrations.

Plain functions (and one fixture, imported by the test modules that use it) so that no test needs
real data; everything is written under pytest's ``tmp_path``.
"""

import contextlib
import os
import uuid
from typing import Dict, Iterator, Optional, Tuple

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

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


def one_person_record(file_name: str) -> dict:
    """A 4 x 6 image with one person (box 3 x 4 at the top left, no keypoints), fine_lr parts:
    head 2 px (row 0, columns 0-1), torso 6 px (rows 1-2, columns 0-2). Pixel counts: image
    background 24 - 8 = 16, box background 12 - 8 = 4."""
    parts = np.zeros((4, 6), dtype=np.uint8)
    parts[0, :2] = 1
    parts[1:3, :3] = 2
    ann = {
        "bbox": [0.0, 0.0, 3.0, 4.0],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "parts": parts_from_map(parts),
    }
    return {
        "file_name": file_name,
        "height": 4,
        "width": 6,
        "image_id": 0,
        "part_taxonomy": "fine_lr",
        "annotations": [ann],
    }


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


@contextlib.contextmanager
def catalogs_restored() -> Iterator[None]:
    """On exit (also on a failure), put DatasetCatalog and MetadataCatalog back as they were on
    entry: names registered inside are removed, removed or re-registered ones come back with their
    loader function and their Metadata object (same object, same attributes)."""
    datasets = {name: DatasetCatalog[name] for name in DatasetCatalog.list()}
    metadata = {name: MetadataCatalog.get(name) for name in MetadataCatalog.list()}
    attributes = {name: dict(vars(meta)) for name, meta in metadata.items()}
    try:
        yield
    finally:
        for name in DatasetCatalog.list():
            if name not in datasets or DatasetCatalog[name] is not datasets[name]:
                DatasetCatalog.remove(name)
        for name, func in datasets.items():
            if name not in DatasetCatalog.list():
                DatasetCatalog.register(name, func)
        for name in MetadataCatalog.list():
            if name not in metadata or MetadataCatalog.get(name) is not metadata[name]:
                MetadataCatalog.remove(name)
        for name, meta in metadata.items():
            vars(meta).clear()
            vars(meta).update(attributes[name])  # bypasses Metadata's no-overwrite check
            MetadataCatalog[name] = meta


@pytest.fixture
def dataset_name():
    """A unique dataset name; whatever a test registers under it is removed afterwards."""
    name = f"bodyparts_test_{uuid.uuid4().hex[:10]}"
    yield name
    remove_dataset(name)

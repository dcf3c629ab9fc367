"""Synthetic people: the embedded default dataset.

Scenes come from :func:`bodyparts.data.synthetic.render.render_scene` (deterministic per seed) and
are written once, in the generic format, under ``<datasets root>/bodyparts_synthetic/<variant>/``::

    images/000000.jpg     RGB image
    sem_seg/000000.png    image-level part map (fine_lr labels, 0 = background)
    panoptic/000000.png   COCO-panoptic RGB ids: persons 1..n, stuff 1000 + stuff index
    annotations.json      generic format (box, silhouette RLE, keypoints, parts RLE per person)

``<variant>`` encodes the split, size, image size, seed and person count, so changing a setting
writes a new variant and never mixes old files. Generation happens on first use, with a progress
bar, under a file lock (several processes may ask at once); files appear atomically.
Train and val scenes use disjoint seed ranges, so the splits never share a scene.
"""

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from tqdm import tqdm

from ..contract import encode_mask
from ..synthetic.render import STUFF_CLASSES, render_scene
from .generic import bodyparts_metadata, load_bodyparts_json, save_bodyparts_json

__all__ = [
    "SPLITS",
    "scene_seed",
    "synthetic_split_dir",
    "generate_synthetic_split",
    "register_synthetic_people",
    "register_synthetic_from_cfg",
    "datasets_root",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
PART_TAXONOMY = "fine_lr"
_SPLIT_OFFSET = {"train": 0, "val": 500_000}  # scene seeds: disjoint ranges per split
_MAX_IMAGES = 500_000
STUFF_ID_OFFSET = 1000
# Panoptic metadata (Detectron2's "separated" convention: stuff_classes[0] stands for all things, so
# the semantic branch predicts 0 = things, 1.. = stuff, and records' stuff segments use those ids).
# *_scene_ids: the scene class id of each class in the 3-channel part-aware panoptic format
# (panoptic-parts: 0 = unlabeled; -1 = not a class).
PANOPTIC_METADATA = {
    "stuff_classes": ["things"] + list(STUFF_CLASSES),
    "stuff_colors": [(0, 0, 0), (135, 206, 235), (190, 153, 153), (107, 142, 35)],
    "thing_scene_ids": [1],
    "stuff_scene_ids": [-1] + [2 + i for i in range(len(STUFF_CLASSES))],
}


def datasets_root() -> str:
    """``$DETECTRON2_DATASETS``, default ``./datasets`` (Detectron2's convention)."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def scene_seed(seed: int, split: str, index: int) -> int:
    """Seed of scene ``index`` of ``split``; train and val ranges never overlap."""
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"unknown synthetic split {split!r}; expected one of {SPLITS}")
    if not 0 <= index < _MAX_IMAGES:
        raise ValueError(f"synthetic split size is limited to {_MAX_IMAGES} images")
    return seed * 1_000_003 + _SPLIT_OFFSET[split] + index


def synthetic_split_dir(
    root: str, split: str, num_images: int, image_size: int, seed: int, max_persons: int
) -> str:
    variant = f"{split}_n{num_images}_s{image_size}_seed{seed}_p{max_persons}"
    return os.path.join(root, "bodyparts_synthetic", variant)


@contextmanager
def _file_lock(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _panoptic_png(persons, stuff_map: np.ndarray):
    ids = stuff_map.astype(np.int32) + STUFF_ID_OFFSET
    segments = []
    for s, name in enumerate(STUFF_CLASSES):
        present = stuff_map == s
        for p in persons:
            present &= p.part_map == 0
        if present.any():
            segments.append(
                {"id": STUFF_ID_OFFSET + s, "category_id": s, "iscrowd": 0, "isthing": False}
            )
    for k, p in enumerate(persons):
        ids[p.part_map > 0] = k + 1
        segments.append({"id": k + 1, "category_id": 0, "iscrowd": 0, "isthing": True})
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    segments.sort(key=lambda s: s["id"])
    return rgb, segments


def _scene_record(scene, index: int, out_dir: str) -> Dict:
    name = f"{index:06d}"
    h, w = scene.image.shape[:2]
    paths = {
        "file_name": os.path.join(out_dir, "images", name + ".jpg"),
        "sem_seg_file_name": os.path.join(out_dir, "sem_seg", name + ".png"),
        "pan_seg_file_name": os.path.join(out_dir, "panoptic", name + ".png"),
    }
    cv2.imwrite(paths["file_name"], scene.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    sem = np.zeros((h, w), dtype=np.uint8)
    for p in scene.persons:
        sem = np.where(p.part_map > 0, p.part_map, sem)
    cv2.imwrite(paths["sem_seg_file_name"], sem)
    pan_rgb, segments = _panoptic_png(scene.persons, scene.stuff_map)
    cv2.imwrite(paths["pan_seg_file_name"], pan_rgb[:, :, ::-1])
    annotations = []
    for p in scene.persons:
        silhouette = p.part_map > 0
        ys, xs = np.nonzero(silhouette)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        annotations.append(
            {
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "area": float(silhouette.sum()),
                "segmentation": encode_mask(silhouette),
                "keypoints": [float(v) for v in p.keypoints.reshape(-1)],
                "parts": {
                    int(lab): encode_mask(p.part_map == lab)
                    for lab in np.unique(p.part_map)
                    if lab > 0
                },
                "parts_complete": True,
            }
        )
    return {
        **paths,
        "height": h,
        "width": w,
        "image_id": index,
        "annotations": annotations,
        "segments_info": segments,
    }


def generate_synthetic_split(
    root: str,
    split: str,
    num_images: int,
    image_size: int = 256,
    seed: int = 0,
    max_persons: int = 5,
) -> str:
    """Write the split (if not written yet) and return the path of its annotations.json."""
    if num_images < 1:
        raise ValueError(f"a synthetic split needs at least 1 image, got num_images={num_images}")
    out_dir = synthetic_split_dir(root, split, num_images, image_size, seed, max_persons)
    json_file = os.path.join(out_dir, "annotations.json")
    if os.path.isfile(json_file):
        return json_file
    with _file_lock(out_dir + ".lock"):
        if os.path.isfile(json_file):  # another process wrote it while we waited
            return json_file
        tmp_dir = out_dir + ".partial"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        for sub in ("images", "sem_seg", "panoptic"):
            os.makedirs(os.path.join(tmp_dir, sub))
        records = []
        desc = f"bodyparts_synthetic_{split}: generating {num_images} images"
        for i in tqdm(range(num_images), desc=desc, unit="img", mininterval=1.0):
            scene = render_scene(
                scene_seed(seed, split, i),
                image_size,
                image_size,
                min_persons=1,
                max_persons=max_persons,
            )
            records.append(_scene_record(scene, i, tmp_dir))
        save_bodyparts_json(
            records,
            os.path.join(tmp_dir, "annotations.json"),
            tmp_dir,
            part_taxonomy=PART_TAXONOMY,
            extra_info={
                "generator": "bodyparts.data.synthetic.render",
                "split": split,
                "seed": seed,
                "image_size": image_size,
                "max_persons": max_persons,
                "panoptic_categories": [{"id": 0, "name": "person", "isthing": True}]
                + [{"id": i, "name": n, "isthing": False} for i, n in enumerate(STUFF_CLASSES)],
            },
        )
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp_dir, out_dir)
    logger.info("Wrote %d synthetic images to %s", num_images, out_dir)
    return json_file


def _load_split(root, split, num_images, image_size, seed, max_persons, name) -> List[Dict]:
    json_file = generate_synthetic_split(root, split, num_images, image_size, seed, max_persons)
    records = load_bodyparts_json(json_file, os.path.dirname(json_file), name)
    for rec in records:  # stuff ids in the file index STUFF_CLASSES; records index stuff_classes
        for seg in rec.get("segments_info", []):
            if not seg["isthing"]:
                seg["category_id"] += 1
    return records


def register_synthetic_people(
    root: Optional[str] = None,
    *,
    num_train: int = 400,
    num_val: int = 50,
    image_size: int = 256,
    seed: int = 0,
    max_persons: int = 5,
    prefix: str = "bodyparts_synthetic",
) -> List[str]:
    """Register ``{prefix}_train`` and ``{prefix}_val``. Idempotent: a split already registered
    with the same settings and root is left as it is; other settings replace it.

    Nothing is generated until a split is first loaded.
    """
    root = datasets_root() if root is None else root
    names = []
    for split, n in (("train", num_train), ("val", num_val)):
        name = f"{prefix}_{split}"
        settings = dict(
            split=split, num_images=n, image_size=image_size, seed=seed, max_persons=max_persons
        )
        out_dir = synthetic_split_dir(root, split, n, image_size, seed, max_persons)
        if name in DatasetCatalog.list():
            meta = MetadataCatalog.get(name)
            if (
                meta.get("synthetic_split", None) == settings
                and meta.get("image_root", None) == out_dir
            ):
                names.append(name)
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        args = (root, split, n, image_size, seed, max_persons, name)
        DatasetCatalog.register(name, lambda args=args: _load_split(*args))
        MetadataCatalog.get(name).set(
            json_file=os.path.join(out_dir, "annotations.json"),
            image_root=out_dir,
            thing_dataset_id_to_contiguous_id={1: 0},
            **PANOPTIC_METADATA,
            synthetic_split=settings,
            **bodyparts_metadata(PART_TAXONOMY, "coco17"),
        )
        names.append(name)
    return names


def register_synthetic_from_cfg(cfg) -> List[str]:
    """Register the synthetic splits with the sizes in ``cfg.BODYPARTS.SYNTHETIC``."""
    s = cfg.BODYPARTS.SYNTHETIC
    return register_synthetic_people(
        num_train=s.NUM_TRAIN,
        num_val=s.NUM_VAL,
        image_size=s.IMAGE_SIZE,
        seed=s.SEED,
        max_persons=s.MAX_PERSONS,
    )

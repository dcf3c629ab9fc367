"""LIP (Look Into Person, Gong et al., CVPR 2017), single-person parsing, in its native layout.

Expected tree (``root``; :func:`register_all_lip` uses ``$DETECTRON2_DATASETS/lip``)::

    TrainVal_images/train_id.txt, val_id.txt          one image id per line (30,462 / 10,000)
    TrainVal_images/train_images/<id>.jpg, val_images/<id>.jpg
    TrainVal_parsing_annotations/train_segmentations/<id>.png, val_segmentations/<id>.png
                                                      uint8 labels 0..19 (lip20)
    Testing_images/                                   no labels: no split is registered

The archives are often extracted with their own folder inside (``TrainVal_images/TrainVal_images/
train_images``, ``TrainVal_parsing_annotations/TrainVal_parsing_annotations/train_segmentations``),
and CE2P / sssegmentation use a flat copy (``train_images/``, ``train_segmentations/``,
``train_id.txt`` in the root): :data:`LAYOUTS` lists the folders tried, in order; the first that
exists is used.

Records (one per listed image): ``part_taxonomy = "lip20"``, ``sem_seg_file_name`` = the
segmentation PNG (the image-level ground truth of the semantic segmenter and of the evaluator's
mIoU) and, for the instance model, one person: the annotated foreground (labels 1..19), its tight
box, ``parts`` = its labels, ``parts_complete: True``. An image whose map is all background has no
person. Labels 0..19 and 255 (ignore, as in CE2P's evaluation) are accepted; 255 pixels are
neither person nor background. Any other value, an RGB or 16-bit PNG, a map of another size than
its image, a missing or truncated file is an error naming the file.
"""

import functools
import hashlib
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...taxonomy import LIP20
from ..contract import PART_IGNORE, person_annotation
from .generic import bodyparts_metadata
from .native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    check_on_error,
    image_size,
    load_items_cached,
    read_label_png,
    register_native_split,
    validate_records,
)
from .pascal_part import read_id_list
from .synthetic import datasets_root

__all__ = ["PART_TAXONOMY", "LAYOUTS", "lip_paths", "load_lip", "register_all_lip"]

PART_TAXONOMY = "lip20"
SPLITS = ("train", "val")
# what -> candidate folders / files relative to the root, tried in order ({split} = train / val)
LAYOUTS: Dict[str, Tuple[str, ...]] = {
    "images": (
        "TrainVal_images/{split}_images",
        "TrainVal_images/TrainVal_images/{split}_images",
        "{split}_images",
    ),
    "segmentations": (
        "TrainVal_parsing_annotations/{split}_segmentations",
        "TrainVal_parsing_annotations/TrainVal_parsing_annotations/{split}_segmentations",
        "{split}_segmentations",
    ),
    "id_list": ("TrainVal_images/{split}_id.txt", "{split}_id.txt"),
}
_VERSION = "lip-1"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"LIP split must be one of {SPLITS}, got {split!r}")


def lip_paths(root: str, split: str) -> Dict[str, str]:
    """The image folder, segmentation folder and id list of ``split`` under ``root``: for each, the
    first candidate of :data:`LAYOUTS` that exists (the official one when none does)."""
    _check_split(split)
    out = {}
    for what, candidates in LAYOUTS.items():
        paths = [os.path.join(root, c.format(split=split)) for c in candidates]
        out[what] = next((p for p in paths if os.path.exists(p)), paths[0])
    return out


def _person(labels: np.ndarray) -> List[Dict[str, Any]]:
    """The annotated foreground of one map (uint8 (H, W) lip20 labels, 255 ignored) as a person."""
    parts = np.where(labels == PART_IGNORE, 0, labels)
    foreground = parts > 0
    if not foreground.any():
        return []
    ann = person_annotation(foreground, np.asfortranarray(parts))
    ann["parts_complete"] = True
    return [ann]


def _convert_item(item: LoadItem) -> List[Dict[str, Any]]:
    image, segmentation = item.sources
    size = image_size(image, "image not found")
    labels = read_label_png(
        segmentation, "parsing annotation", size, image, LIP20.num_classes, PART_IGNORE
    )
    record = {
        "file_name": image,
        "height": size[0],
        "width": size[1],
        "image_id": item.key,
        "part_taxonomy": PART_TAXONOMY,
        "sem_seg_file_name": segmentation,
        "annotations": _person(labels),
    }
    validate_records([record], segmentation, num_parts=LIP20.num_parts)
    return [record]


def load_lip(
    root: str,
    split: str,
    image_ids: Optional[Sequence[str]] = None,
    *,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load one LIP split as contract records (see the module docstring).

    Args:
        root: the LIP root (tree in the module docstring).
        split: "train" or "val".
        image_ids: ids to load, in this order; None = the split's id list (``<split>_id.txt``).
        on_error: "raise" or "skip" (bad images are logged, skipped and counted).
        use_cache: reuse the per-image record cache (``$BODYPARTS_CACHE_DIR``).
        report: filled with counts and timing.

    Returns:
        one record per image: ``file_name``, ``height``, ``width``, ``image_id`` (the id string),
        ``part_taxonomy="lip20"``, ``sem_seg_file_name`` and ``annotations`` (the one person, or
        none when the map is all background).
    """
    check_on_error(on_error)
    paths = lip_paths(root, split)
    for what in ("images", "segmentations"):
        if not os.path.isdir(paths[what]):
            tried = ", ".join(c.format(split=split) for c in LAYOUTS[what])
            raise DatasetFormatError(paths[what], f"{what} folder not found (tried {tried})")
    ids = read_id_list(paths["id_list"]) if image_ids is None else [str(i) for i in image_ids]
    items = [
        LoadItem(
            i,
            (
                os.path.join(paths["images"], f"{i}.jpg"),
                os.path.join(paths["segmentations"], f"{i}.png"),
            ),
        )
        for i in ids
    ]
    digest = hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()
    return load_items_cached(
        "lip",
        f"{os.path.abspath(paths['images'])}|{os.path.abspath(paths['segmentations'])}|{digest}",
        _VERSION,
        items,
        _convert_item,
        on_error=on_error,
        use_cache=use_cache,
        desc=f"lip_{split}",
        report=report,
    )


def register_all_lip(root: Optional[str] = None) -> List[str]:
    """Register ``lip_train`` and ``lip_val`` under ``<root>/lip`` (lazy; root default:
    ``$DETECTRON2_DATASETS``). The folders are looked up when a split is loaded."""
    lip_root = os.path.join(datasets_root() if root is None else root, "lip")
    names = []
    for split in SPLITS:
        names.append(f"lip_{split}")
        meta = dict(bodyparts_metadata(PART_TAXONOMY, None), lip_root=lip_root, lip_split=split)
        register_native_split(names[-1], functools.partial(load_lip, lip_root, split), meta)
    return names

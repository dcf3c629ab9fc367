"""CIHP (Crowd Instance-level Human Parsing, Gong et al., ECCV 2018) in its native layout.

Expected tree (``root``; :func:`register_all_cihp` uses ``$DETECTRON2_DATASETS/cihp``, the
extracted ``instance-level_human_parsing`` folder)::

    Training/train_id.txt            one image id per line (28,280 ids)
    Training/Images/<id>.jpg
    Training/Category_ids/<id>.png   uint8, image-level part labels 0..19 (cihp20)
    Training/Human_ids/<id>.png      uint8, person index 1..N, 0 = background
    Training/Instance_ids/<id>.png   uint8, person-part id (not read, see below)
    Validation/val_id.txt, Validation/{Images,Category_ids,Human_ids,Instance_ids}/  (5,000 ids)
    Testing/test_id.txt, Testing/Images/   no labels: no split is registered (datasets/README.md)

Records (one per listed image, also an image without any person): ``part_taxonomy = "cihp20"``,
``sem_seg_file_name`` = the ``Category_ids`` PNG (the image-level map the parsing evaluator scores,
as the reference evaluations do), one annotation per person value of ``Human_ids`` in increasing
order, with ``human_id`` = that value (values may have gaps: ids 1 and 3 without 2 give two
persons). A person's silhouette is its ``Human_ids`` pixels, its box their tight box, its ``parts``
the ``Category_ids`` labels on those pixels.

Format decisions (see ``datasets/README.md``):

* Labels 0..19 and 255 (ignore, as in the reference evaluations) are accepted in ``Category_ids``;
  any other value is an error naming the file. Pixels labelled 255 or 0 inside a person belong to
  no part (the mapper ignores them in the part loss: person pixel, part unknown). CIHP labels every
  person pixel, so ``parts_complete`` is True; a person none of whose pixels has a part label gets
  ``parts: None`` (box and silhouette only).
* Part labels outside every person (``Category_ids`` > 0 where ``Human_ids`` is 0) stay in the
  image-level map and belong to no person (counted in a debug log).
* ``Instance_ids`` is not read: on the real files it equals ``Category_ids + 20 * (Human_ids - 1)``
  on every person pixel (tests/test_dataset_cihp.py checks it), so it adds nothing to the two maps
  read; in 8 bits that formula overflows from the 13th person on (how the release stores such
  images is not verified).
* Maps must be 8-bit single-channel PNGs (mode L or P) of the image's size (read from the JPEG
  header); an RGB PNG (e.g. a colour visualisation put in the wrong folder), another size, a
  missing or truncated file is an error naming the file.
* ``persons=False`` reads ``Images`` and ``Category_ids`` only: records without ``annotations``
  (image-level maps for the semantic segmenter, e.g. a copy without ``Human_ids``).
"""

import functools
import hashlib
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ...taxonomy import CIHP20
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

__all__ = [
    "PART_TAXONOMY",
    "SPLITS",
    "cihp_paths",
    "person_label_maps",
    "load_cihp",
    "register_cihp_split",
    "register_all_cihp",
]

logger = logging.getLogger(__name__)

PART_TAXONOMY = "cihp20"
# registered split -> (folder, id list) under the CIHP root
SPLITS = {"train": ("Training", "train_id.txt"), "val": ("Validation", "val_id.txt")}
_VERSION = "cihp-1"


def cihp_paths(split_dir: str, image_id: str) -> Dict[str, str]:
    """The files of one image under a split folder (``Training`` / ``Validation``)."""
    return {
        "image": os.path.join(split_dir, "Images", f"{image_id}.jpg"),
        "category": os.path.join(split_dir, "Category_ids", f"{image_id}.png"),
        "human": os.path.join(split_dir, "Human_ids", f"{image_id}.png"),
        "instance": os.path.join(split_dir, "Instance_ids", f"{image_id}.png"),
    }


def person_label_maps(category: np.ndarray, human: np.ndarray) -> Dict[int, np.ndarray]:
    """Each person's part label map.

    Args:
        category: uint8 (H, W) ``Category_ids`` labels (0..19, 255 = ignore).
        human: uint8 (H, W) ``Human_ids`` values (0 = background).
    Returns:
        {human id: uint8 (H, W) part labels 1..19 on the person's pixels, 0 elsewhere (and on its
        pixels labelled 0 or 255)}, ids in increasing order; ids without pixels do not appear.
    """
    labelled = np.where(category == PART_IGNORE, 0, category)
    return {
        int(k): np.where(human == k, labelled, 0).astype(np.uint8)
        for k in np.flatnonzero(np.bincount(human.ravel(), minlength=256)[1:]) + 1
    }


def _persons(category: np.ndarray, human: np.ndarray) -> List[Dict[str, Any]]:
    annotations = []
    for k, labels in person_label_maps(category, human).items():
        ann = person_annotation(human == k, np.asfortranarray(labels))
        if ann["parts"]:
            ann["parts_complete"] = True
        else:
            ann["parts"] = None
        ann["human_id"] = k
        annotations.append(ann)
    return annotations


def _convert_item(item: LoadItem, persons: bool) -> List[Dict[str, Any]]:
    """One image (+ its maps) -> [record]."""
    image = item.sources[0]
    size = image_size(image, "image not found")
    paths = dict(zip(("image", "category", "human"), item.sources))
    category = read_label_png(
        paths["category"], "Category_ids map", size, image, CIHP20.num_classes, PART_IGNORE
    )
    record: Dict[str, Any] = {
        "file_name": image,
        "height": size[0],
        "width": size[1],
        "image_id": item.key,
        "part_taxonomy": PART_TAXONOMY,
        "sem_seg_file_name": paths["category"],
    }
    if persons:
        human = read_label_png(paths["human"], "Human_ids map", size, image)
        record["annotations"] = _persons(category, human)
        orphans = int(np.count_nonzero((human == 0) & (category != 0) & (category != PART_IGNORE)))
        if orphans:
            logger.debug("%s: %d part pixels outside every person", paths["category"], orphans)
    validate_records([record], paths.get("human", paths["category"]), num_parts=CIHP20.num_parts)
    return [record]


def _listed_ids(split_dir: str) -> List[str]:
    folder = os.path.join(split_dir, "Images")
    if not os.path.isdir(folder):
        raise DatasetFormatError(folder, "image folder not found")
    return sorted(f[: -len(".jpg")] for f in os.listdir(folder) if f.endswith(".jpg"))


def load_cihp(
    split_dir: str,
    image_ids: Optional[Sequence[str]] = None,
    *,
    persons: bool = True,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load one CIHP split folder as contract records (see the module docstring).

    Args:
        split_dir: ``<root>/Training`` or ``<root>/Validation`` (any folder with ``Images/``,
            ``Category_ids/`` and ``Human_ids/``).
        image_ids: ids to load, in this order (e.g. from ``train_id.txt``); None = every
            ``Images/*.jpg``, sorted. An id whose files are missing is an error (or a skip).
        persons: False = image-level maps only (no ``Human_ids`` read, no ``annotations``).
        on_error: "raise" or "skip" (bad images are logged, skipped and counted).
        use_cache: reuse the per-image record cache (:func:`~.native.load_items_cached`).
        report: filled with counts (items, records, parsed, cached, skipped) and time.

    Returns:
        one record per image: ``file_name``, ``height``, ``width``, ``image_id`` (the id string),
        ``part_taxonomy="cihp20"``, ``sem_seg_file_name`` (the Category_ids PNG) and, with
        ``persons``, ``annotations``: per person ``bbox`` (XYWH_ABS), ``segmentation`` (RLE),
        ``parts`` ({label: RLE} or None), ``parts_complete``, ``human_id``.
    """
    check_on_error(on_error)
    ids = _listed_ids(split_dir) if image_ids is None else [str(i) for i in image_ids]
    items = []
    for i in ids:
        p = cihp_paths(split_dir, i)
        sources = (p["image"], p["category"]) + ((p["human"],) if persons else ())
        items.append(LoadItem(i, sources))
    digest = hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()
    return load_items_cached(
        "cihp",
        f"{os.path.abspath(split_dir)}|{persons}|{digest}",
        _VERSION,
        items,
        functools.partial(_convert_item, persons=persons),
        on_error=on_error,
        use_cache=use_cache,
        desc=f"cihp {split_dir}",
        report=report,
    )


def _load_listed(split_dir: str, list_file: str, on_error: str = "raise") -> List[Dict[str, Any]]:
    return load_cihp(split_dir, read_id_list(list_file), on_error=on_error)


def register_cihp_split(name: str, split_dir: str, list_file: Optional[str] = None) -> None:
    """Register one split under ``name`` (lazy). ``list_file`` = the id list (``train_id.txt``);
    None = every image of ``split_dir/Images``. ``on_error`` comes from ``$BODYPARTS_ON_ERROR``."""
    meta = dict(
        bodyparts_metadata(PART_TAXONOMY, None),
        image_root=os.path.join(split_dir, "Images"),
        sem_seg_root=os.path.join(split_dir, "Category_ids"),
        split_dir=split_dir,
        split_file=list_file,
    )
    if list_file is None:
        load = functools.partial(load_cihp, split_dir)
    else:
        load = functools.partial(_load_listed, split_dir, list_file)
    register_native_split(name, load, meta)


def register_all_cihp(root: Optional[str] = None) -> List[str]:
    """Register ``cihp_train`` (``Training/train_id.txt``) and ``cihp_val``
    (``Validation/val_id.txt``) under ``<root>/cihp`` (root default: ``$DETECTRON2_DATASETS``)."""
    cihp_root = os.path.join(datasets_root() if root is None else root, "cihp")
    names = []
    for split, (folder, list_name) in SPLITS.items():
        split_dir = os.path.join(cihp_root, folder)
        names.append(f"cihp_{split}")
        register_cihp_split(names[-1], split_dir, os.path.join(split_dir, list_name))
    return names

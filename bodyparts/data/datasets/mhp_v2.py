"""MHP-v2 (LV-MHP-v2, Zhao et al., ACM MM 2018) in its native layout: one label PNG per person.

Expected tree (``root``; :func:`register_all_mhp_v2` uses ``$DETECTRON2_DATASETS/LV-MHP-v2``, the
folder the official archive unpacks to)::

    list/train.txt, list/val.txt           image ids, one per line (no extension)
    {train,val}/images/<id>.jpg            the images
    {train,val}/parsing_annos/<id>_<NN>_<KK>.png
                                           person KK (1-based) of the NN persons of the image, full
                                           image size; labels 0..58 in channel 0 (most files have
                                           3 channels; the other channels are not labels)
    {train,val}/pose_annos/<id>.mat        person_0, person_1, ...: float (20, 3) per person

The folder ``annotations/`` (the name in the official evaluation code, ``mhp_data.py``) is accepted
instead of ``parsing_annos/`` (:data:`PARSING_DIRS`).

Records: one per listed image, ``part_taxonomy = "mhp59"`` (label = channel-0 value),
``keypoint_taxonomy = "mhp16"``, plus ``mhp_num_persons`` (NN of the file names). One person per
parsing file, in KK order.

Format decisions (see ``datasets/README.md``):

* Silhouette = non-zero pixels of the person's file; box = its tight box; ``parts`` = its labels
  (disjoint and inside the silhouette by construction), ``parts_complete`` True. Label values above
  58 are an error naming the file and the values. A file whose labels are all 0 gives no person
  (counted in the log): an empty mask has no box.
* Persons are the files that exist, as in the official evaluation code (``mhp_data.py`` lists the
  folder). A file missing for some KK of 1..NN is logged, not an error; files of one image that
  disagree on NN, or KK outside 1..NN, are errors. A listed image without any parsing file is an
  error (every MHP-v2 image has at least two persons).
* A PNG whose size differs from its JPEG's (read from the header) is an error naming both sizes.
* Keypoints: person KK is ``person_<KK-1>`` of the pose file (rows 0..15 = the 16 keypoints of
  ``mhp16`` as (x, y, flag); rows 16..19, the face and person boxes, are not used). Flags (official
  README): 0 visible -> visibility 2, 1 occluded -> visibility 1, 2 out of image -> visibility 0
  at (0, 0). Negative coordinates (the annotation tool writes -1 for unmarked, occluded and
  out-of-image points) -> visibility 0. Coordinates are the tool's OpenCV pixel indices (0-based:
  pixel centre at integers), so ``x = x_file + 0.5`` in the contract's continuous coordinates
  (:data:`KEYPOINT_PIXEL_OFFSET`; UNVERIFIED on real files). A point that falls outside the image
  gets visibility 0 with ``keypoints_outside="invisible"`` (counted in the log), or an error with
  ``"error"``. A missing pose file, or a pose file without ``person_<KK-1>``, gives persons without
  keypoints (``keypoints`` None, counted in the log); an unreadable one is an error.

Conversion runs once per image; :func:`load_items_cached` caches the records and re-reads an image
when its JPEG, one of its PNGs or its pose file changes (or a PNG appears or disappears).
"""

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...taxonomy import get_keypoint_taxonomy, get_part_taxonomy
from ..contract import person_annotation
from .generic import bodyparts_metadata
from .native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    check_on_error,
    image_size,
    load_items_cached,
    read_id_list,
    register_native_split,
    validate_records,
)
from .synthetic import datasets_root

__all__ = [
    "PART_TAXONOMY",
    "KEYPOINT_TAXONOMY",
    "SPLITS",
    "PARSING_DIRS",
    "KEYPOINT_PIXEL_OFFSET",
    "parse_person_file_name",
    "load_mhp_v2",
    "register_mhp_v2_split",
    "register_all_mhp_v2",
]

logger = logging.getLogger(__name__)

PART_TAXONOMY = "mhp59"
KEYPOINT_TAXONOMY = "mhp16"
SPLITS = ("train", "val")
PARSING_DIRS = ("parsing_annos", "annotations")  # searched in this order
KEYPOINT_PIXEL_OFFSET = 0.5  # contract x = file x + this (file: 0-based pixel index)
POSE_FLAG_VISIBILITY = {0: 2, 1: 1, 2: 0}  # official flag -> COCO visibility
_VERSION = f"mhp_v2-1-offset{KEYPOINT_PIXEL_OFFSET}"
_PERSON_FILE = re.compile(r"^(?P<image>.+)_(?P<num>\d+)_(?P<index>\d+)\.png$")


@dataclass(frozen=True)
class _Image:
    """The files of one image: JPEG, person PNGs as (NN, KK, path) in KK order, pose file."""

    image_id: str
    image: str
    persons: Tuple[Tuple[int, int, str], ...]
    pose: str


def parse_person_file_name(name: str) -> Optional[Tuple[str, int, int]]:
    """``"<id>_<NN>_<KK>.png"`` -> (id, NN, KK); None for any other name."""
    m = _PERSON_FILE.match(name)
    if m is None:
        return None
    return m.group("image"), int(m.group("num")), int(m.group("index"))


# ---------------------------------------------------------------------------------------------
# Native files


def _parsing_dir(split_dir: str) -> str:
    for sub in PARSING_DIRS:
        folder = os.path.join(split_dir, sub)
        if os.path.isdir(folder):
            return folder
    raise DatasetFormatError(
        split_dir, f"no person annotation folder (one of {list(PARSING_DIRS)})"
    )


def _person_files(parsing_dir: str) -> Dict[str, List[Tuple[int, int, str]]]:
    """Every ``<id>_<NN>_<KK>.png`` of the folder, grouped by id, sorted by KK."""
    out: Dict[str, List[Tuple[int, int, str]]] = {}
    for name in os.listdir(parsing_dir):
        parsed = parse_person_file_name(name)
        if parsed is not None:
            image_id, num, index = parsed
            out.setdefault(image_id, []).append((num, index, os.path.join(parsing_dir, name)))
    for files in out.values():
        files.sort(key=lambda f: (f[1], f[0]))
    return out


def _read_labels(path: str, hw: Tuple[int, int], num_parts: int) -> np.ndarray:
    """A person PNG -> uint8 (H, W) labels: channel 0 of a multi-channel file. (Not
    :func:`~.native.read_label_png`, which accepts single-channel maps only: most MHP-v2 files are
    3-channel.)"""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DatasetFormatError(path, "person annotation PNG not found") from None
    except Exception as e:  # PIL raises many types for truncated or foreign files
        raise DatasetFormatError(
            path, f"not a readable PNG, truncated? ({type(e).__name__}: {e})"
        ) from None
    if arr.ndim == 3:
        arr = arr[:, :, 0]  # the official evaluation code's rule: labels are channel 0
    if arr.ndim != 2 or arr.dtype.kind not in "biu":
        raise DatasetFormatError(
            path, f"expected integer labels (H, W[, C]), got {arr.shape} {arr.dtype}"
        )
    if arr.shape != hw:
        raise DatasetFormatError(
            path,
            f"label map is {arr.shape[0]}x{arr.shape[1]} (H x W) but its image is {hw[0]}x{hw[1]}",
        )
    if int(arr.max(initial=0)) > num_parts:
        values = sorted(int(v) for v in np.unique(arr[arr > num_parts]))[:5]
        raise DatasetFormatError(path, f"label value(s) {values} outside 0..{num_parts}")
    return arr.astype(np.uint8, copy=False)


def _read_pose_file(path: str) -> Optional[Dict[str, np.ndarray]]:
    """``person_<k>`` arrays of a pose file; None when the file does not exist."""
    import scipy.io

    if not os.path.isfile(path):
        return None
    try:
        data = scipy.io.loadmat(path)
    except Exception as e:  # truncated, not a .mat, v7.3/HDF5, ...: all name the file
        raise DatasetFormatError(
            path, f"cannot read MATLAB file ({type(e).__name__}: {e})"
        ) from None
    return {k: v for k, v in data.items() if k.startswith("person_")}


def _keypoints(
    pose_path: str,
    variable: str,
    value: Any,
    hw: Tuple[int, int],
    names: Sequence[str],
    keypoints_outside: str,
) -> Tuple[List[float], int]:
    """One ``person_<k>`` array -> (flat [x, y, v] * 16 in continuous coords, number outside)."""
    arr = np.asarray(value)
    if (
        arr.ndim != 2
        or arr.shape[0] < len(names)
        or arr.shape[1] != 3
        or arr.dtype.kind not in "biuf"
    ):
        raise DatasetFormatError(
            pose_path,
            f"{variable!r} must be a numeric ({len(names)} + 4, 3) array of x, y, flag rows, got "
            f"{arr.shape} {arr.dtype}",
        )
    h, w = hw
    out, outside = [], 0
    for k, name in enumerate(names):
        x, y, flag = (float(v) for v in arr[k])
        code = round(flag)
        if (
            not (np.isfinite(x) and np.isfinite(y))
            or abs(flag - code) > 1e-3
            or code not in POSE_FLAG_VISIBILITY
        ):
            raise DatasetFormatError(
                pose_path,
                f"{variable!r} keypoint {name}: expected finite x, y and a flag in 0/1/2 "
                f"(visible/occluded/out of image), got {[x, y, flag]}",
            )
        visibility = POSE_FLAG_VISIBILITY[code]
        if visibility == 0 or x < 0 or y < 0:  # out of image, or not marked (-1)
            out += [0.0, 0.0, 0]
            continue
        cx, cy = x + KEYPOINT_PIXEL_OFFSET, y + KEYPOINT_PIXEL_OFFSET
        if cx <= w and cy <= h:
            out += [cx, cy, visibility]
            continue
        if keypoints_outside == "error":
            raise DatasetFormatError(
                pose_path,
                f"{variable!r} keypoint {name} at ({cx:.1f}, {cy:.1f}) lies outside the "
                f"{w}x{h} image",
            )
        outside += 1
        out += [0.0, 0.0, 0]
    return out, outside


# ---------------------------------------------------------------------------------------------
# Image -> record


def _check_person_files(image: _Image, parsing_dir: str) -> int:
    """NN of the image's files (checked to agree, KK within 1..NN); logs missing persons."""
    if not image.persons:
        raise DatasetFormatError(
            os.path.join(parsing_dir, f"{image.image_id}_<NN>_<KK>.png"),
            "no person annotation file for this listed image",
        )
    num, _, first = image.persons[0]
    for n, k, path in image.persons:
        if n != num:
            raise DatasetFormatError(
                path, f"says {n} persons, but {os.path.basename(first)} says {num}"
            )
        if not 1 <= k <= num:
            raise DatasetFormatError(path, f"person index {k} outside 1..{num}")
    missing = sorted(set(range(1, num + 1)) - {k for _, k, _ in image.persons})
    if missing:
        logger.info(
            "%s: %d of %d person files missing (persons %s); the others are loaded",
            image.image_id,
            len(missing),
            num,
            missing,
        )
    return num


def _convert_image(image: _Image, parsing_dir: str, keypoints_outside: str) -> List[Dict[str, Any]]:
    names = get_keypoint_taxonomy(KEYPOINT_TAXONOMY).names
    num_parts = get_part_taxonomy(PART_TAXONOMY).num_parts
    num = _check_person_files(image, parsing_dir)
    hw = image_size(image.image, "image file not found")
    pose = _read_pose_file(image.pose)
    persons, empty, no_pose, outside = [], 0, 0, 0
    for _, index, path in image.persons:
        labels = _read_labels(path, hw, num_parts)
        silhouette = labels != 0
        if not silhouette.any():
            empty += 1
            continue
        ann = person_annotation(silhouette, np.asfortranarray(labels))
        ann["parts_complete"] = True
        variable = f"person_{index - 1}"
        if pose is None or variable not in pose:
            no_pose += 1
            ann["keypoints"] = None
        else:
            ann["keypoints"], n_out = _keypoints(
                image.pose, variable, pose[variable], hw, names, keypoints_outside
            )
            outside += n_out
        persons.append(ann)
    if empty or no_pose or outside:
        logger.debug(
            "%s: %d empty person files (no person), %d persons without pose, %d keypoints outside "
            "the image (visibility 0)",
            image.image_id,
            empty,
            no_pose,
            outside,
        )
    record = {
        "file_name": image.image,
        "height": hw[0],
        "width": hw[1],
        "image_id": image.image_id,
        "part_taxonomy": PART_TAXONOMY,
        "keypoint_taxonomy": KEYPOINT_TAXONOMY,
        "mhp_num_persons": num,
        "annotations": persons,
    }
    validate_records([record], image.persons[0][2], num_parts, list(names))
    return [record]


# ---------------------------------------------------------------------------------------------
# Public API


def load_mhp_v2(
    root: str,
    split: str,
    *,
    list_file: Optional[str] = None,
    keypoints_outside: str = "invisible",
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load one MHP-v2 split as contract records (one per listed image).

    Args:
        root: the LV-MHP-v2 folder (tree in the module docstring).
        split: "train" or "val": the image folder ``<root>/<split>``.
        list_file: image ids to load; default ``<root>/list/<split>.txt``.
        keypoints_outside: "invisible" (visibility 0, counted in the log) or "error".
        on_error: "raise" or "skip" (a bad image is logged, skipped and counted).
        use_cache: reuse the per-image record cache (``$BODYPARTS_CACHE_DIR``).
        report: filled with counts (items = listed images) and timing.

    Returns:
        records (see :mod:`bodyparts.data.contract`) in list order, with ``mhp_num_persons``.
    """
    check_on_error(on_error)
    if split not in SPLITS:
        raise ValueError(f"MHP-v2 split must be one of {SPLITS}, got {split!r}")
    if keypoints_outside not in ("invisible", "error"):
        raise ValueError(
            f"keypoints_outside must be 'invisible' or 'error', got {keypoints_outside!r}"
        )
    root = os.path.abspath(root)
    list_file = os.path.join(root, "list", f"{split}.txt") if list_file is None else list_file
    split_dir = os.path.join(root, split)
    ids = read_id_list(list_file)
    parsing_dir = _parsing_dir(split_dir)
    files = _person_files(parsing_dir)
    images = {
        i: _Image(
            image_id=i,
            image=os.path.join(split_dir, "images", f"{i}.jpg"),
            persons=tuple(files.get(i, ())),
            pose=os.path.join(split_dir, "pose_annos", f"{i}.mat"),
        )
        for i in ids
    }
    items = [
        LoadItem(key=i, sources=(im.image, im.pose, *(p for _, _, p in im.persons)))
        for i, im in images.items()
    ]
    name = f"mhp_v2_{split}"
    records = load_items_cached(
        "mhp_v2",
        repr((root, split, os.path.abspath(list_file), keypoints_outside)),
        _VERSION,
        items,
        lambda item: _convert_image(images[item.key], parsing_dir, keypoints_outside),
        on_error=on_error,
        use_cache=use_cache,
        desc=name,
        report=report,
    )
    _log_summary(name, records)
    return records


def _log_summary(name: str, records: List[Dict[str, Any]]) -> None:
    persons = [a for r in records for a in r["annotations"]]
    fewer = sum(1 for r in records if len(r["annotations"]) < r["mhp_num_persons"])
    no_pose = sum(1 for a in persons if a.get("keypoints") is None)
    logger.info(
        "%s: %d images, %d persons (%d without pose annotation); %d images with fewer persons than "
        "their file names say (missing or empty person files)",
        name,
        len(records),
        len(persons),
        no_pose,
        fewer,
    )


def register_mhp_v2_split(name: str, root: str, split: str, **load_kwargs) -> None:
    """Register one split under ``name`` (lazy: files are read on first ``DatasetCatalog.get``).

    ``load_kwargs`` go to :func:`load_mhp_v2` (``list_file``, ``keypoints_outside``);
    ``on_error`` is decided at load time by :func:`register_native_split` (``$BODYPARTS_ON_ERROR``).
    """
    meta = bodyparts_metadata(PART_TAXONOMY, KEYPOINT_TAXONOMY)
    meta.update(mhp_v2_root=root, mhp_v2_split=split)

    def load(on_error: str = "raise") -> List[Dict[str, Any]]:
        return load_mhp_v2(root, split, on_error=on_error, **load_kwargs)

    register_native_split(name, load, meta)


def register_all_mhp_v2(root: Optional[str] = None) -> List[str]:
    """Register ``mhp_v2_train`` and ``mhp_v2_val`` under ``<root>/LV-MHP-v2`` (root default:
    ``$DETECTRON2_DATASETS``). Returns the names."""
    mhp_root = os.path.join(datasets_root() if root is None else root, "LV-MHP-v2")
    names = []
    for split in SPLITS:
        names.append(f"mhp_v2_{split}")
        register_mhp_v2_split(names[-1], mhp_root, split)
    return names

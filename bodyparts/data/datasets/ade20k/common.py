"""ADE20K, both releases: what the 2016 and 2021 readers share.

Format facts: datasets/ade20k.md. Records follow :mod:`bodyparts.data.contract`, with
``part_taxonomy = "ade_person15"`` (the 15 level-1 person parts of :mod:`bodyparts.taxonomy`).
The release readers are :mod:`.release_2016` (``index_ade20k.mat``, ``_seg.png`` /
``_parts_N.png`` / ``_atr.txt``) and :mod:`.release_2021` (``index_ade20k.pkl``, per-image JSON and
instance masks); this module holds the class tables, the person-part records, the image listing
(index file, cached, or a directory walk) and the registration of both releases.

Shared decisions

* Class maps (``_seg.png``, ``_parts_1.png``) are decoded as ``cls = (R // 10) * 256 + G`` in
  int32, so class indices above 255 never wrap (the earlier tool's uint8 cast turned ``head`` 1206
  into 182). Instances come from the B channel, compared by value (never by rank).
* Only level-1 parts (``_parts_1``) are used; level-2 parts (eye, mouth, rim, ...) lie inside
  level-1 parts and are ignored.
* A person's silhouette is its visible pixels; its box is the tight XYWH box of the silhouette.
  Persons with an empty silhouette are dropped (debug log). Only images with at least one person
  give a record.
* A person's parts are restricted to its silhouette. ``parts`` is ``None`` when the person has no
  ade_person15 part (many ADE persons have none). ``parts_complete`` is True only when the parts
  cover the whole silhouette: ADE part annotation is partial (a missing torso is common), and the
  uncovered person pixels are "unknown", not background.
* Person-part classes: head 1206, torso 2820, neck 1646, back 83, buttocks 338, left/right
  shoulder 1432/2121, arm 1428/2117, hand 1430/2119, leg 1431/2120, foot 1429/2118. Their names
  are checked against the index's ``objectnames`` and the 2021 JSON ``name`` (a release with
  shifted class indices fails loudly instead of giving wrong labels).

Loads go through :func:`~bodyparts.data.datasets.native.load_items_cached` (one item per image);
the listing read from a (large) index file is cached too, keyed by the index file's size and time.
"""

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.structures import BoxMode
from PIL import Image

from ....checkpoint import WeightsFileError, restricted_load
from ....taxonomy import get_part_taxonomy
from ...contract import encode_mask, mask_box
from ..generic import bodyparts_metadata
from ..native import (
    DatasetFormatError,
    cache_dir,
    validate_records,
)

# The logger of the former single module ``bodyparts.data.datasets.ade20k``: unchanged names.
logger = logging.getLogger(__package__)

PART_TAXONOMY = "ade_person15"
PERSON_CLASS = 1831
# ADE class index (1-based into objectnames) -> ade_person15 part name.
PART_CLASSES: Dict[int, str] = {
    1206: "head",
    2820: "torso",
    1646: "neck",
    83: "back",
    338: "buttocks",
    1432: "left_shoulder",
    2121: "right_shoulder",
    1428: "left_arm",
    2117: "right_arm",
    1430: "left_hand",
    2119: "right_hand",
    1431: "left_leg",
    2120: "right_leg",
    1429: "left_foot",
    2118: "right_foot",
}
# Body classes that ade_person15 cannot express; as 2021 parts of a person they stay unlabelled.
IGNORED_PERSON_PART_CLASSES: Dict[int, str] = {
    54: "arm",
    1174: "hand",
    1433: "leg",
    890: "face",
    884: "eye",
    885: "eyebrow",
    1615: "mouth",
    1659: "nose",
    831: "ear",
    1160: "hair",
}
RELEASE_DIRS = {"2016": "ADE20K_2016_07_26", "2021": "ADE20K_2021_17_01"}
_SPLIT_DIRS = {"train": "training", "val": "validation"}
_TYPESET = {1: "train", 2: "val"}
_VERSION = "1"

Mask = np.ndarray  # bool (H, W)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _label_of(part_name: str) -> int:
    return get_part_taxonomy(PART_TAXONOMY).part_names.index(part_name) + 1


def _ade_name(part_name: str) -> str:
    """Taxonomy part name -> ADE class name ("left_arm" -> "left arm")."""
    return part_name.replace("_", " ")


def _name_tokens(name: str) -> List[str]:
    """WordNet-style name "person, individual, ..." -> ["person", "individual", ...]."""
    return [t.strip().lower() for t in str(name).split(",")]


def _canonical_split(split: str) -> str:
    for short, folder in _SPLIT_DIRS.items():
        if split in (short, folder):
            return short
    raise ValueError(f"unknown ADE20K split {split!r}; expected 'train' or 'val'")


def decode_ade_classes(rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """ADE class/instance PNG (H, W, 3) uint8 -> (class (H, W) int32, instance B (H, W) uint8).

    ``class = (R // 10) * 256 + G``, computed in int32 (no uint8 wrap); 0 = unlabelled.
    """
    r = rgb[..., 0].astype(np.int32)
    return (r // 10) * 256 + rgb[..., 1].astype(np.int32), rgb[..., 2]


def _read_png(path: str, size: Tuple[int, int], modes: Sequence[str], what: str) -> np.ndarray:
    """Decode a PNG of one of ``modes``; raises unless it exists, decodes and is ``size`` (H, W)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im) if mode in modes else None
    except FileNotFoundError:
        raise DatasetFormatError(path, f"{what} not found") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetFormatError(path, f"{what} is truncated or not a PNG ({e})") from None
    if arr is None:
        raise DatasetFormatError(path, f"{what} has PIL mode {mode}, expected {'/'.join(modes)}")
    if arr.shape[:2] != tuple(size):
        raise DatasetFormatError(
            path, f"{what} is {arr.shape[1]}x{arr.shape[0]} but its image is {size[1]}x{size[0]}"
        )
    return arr


def _read_class_png(path: str, size: Tuple[int, int], what: str) -> Tuple[np.ndarray, np.ndarray]:
    """``_seg.png``/``_parts_N.png`` -> (class (H, W) int32, instance B (H, W) uint8)."""
    return decode_ade_classes(_read_png(path, size, ("RGB",), what))


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetFormatError(path, f"{what} not found") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _person_annotation(
    silhouette: Mask, parts: Optional[Dict[int, Mask]], ade_id: int, extra: Dict[str, Any]
) -> Dict[str, Any]:
    """Contract annotation of one person (silhouette non-empty; ``parts`` label -> mask or None)."""
    ann = {
        "bbox": mask_box(silhouette),
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "segmentation": encode_mask(silhouette),
        "parts": None,
        "ade_id": int(ade_id),
        **extra,
    }
    parts = {k: m for k, m in (parts or {}).items() if m.any()}
    if parts:
        covered = np.logical_or.reduce(list(parts.values()))
        ann["parts"] = {int(k): encode_mask(m) for k, m in sorted(parts.items())}
        ann["parts_complete"] = bool(not (silhouette & ~covered).any())
    return ann


def _record(jpg: str, size: Tuple[int, int], annotations: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "file_name": jpg,
        "height": int(size[0]),
        "width": int(size[1]),
        "image_id": os.path.splitext(os.path.basename(jpg))[0],
        "part_taxonomy": PART_TAXONOMY,
        "annotations": annotations,
    }


def _finish(jpg: str, size, annotations, source: str) -> List[Dict[str, Any]]:
    if not annotations:
        return []
    records = [_record(jpg, size, annotations)]
    validate_records(records, source, num_parts=len(PART_CLASSES))
    return records


# ---------------------------------------------------------------------------------------------
# Listing: index files (cached) or a directory walk


@dataclass(frozen=True)
class _Entry:
    split: str  # "train" / "val"
    key: str  # image path relative to the release root, without extension
    has_person: Optional[bool]  # from objectPresence; None = unknown


def _read_listing_cache(path: str, stamp: Tuple) -> Optional[List[_Entry]]:
    """The cached listing, or None when missing, stale, not plain data (restricted unpickler) or
    malformed: the index is then re-read, the cache never trusted."""
    try:
        with open(path, "rb") as f:
            payload = restricted_load(f, path=path)
    except FileNotFoundError:
        return None
    except (WeightsFileError, OSError) as e:
        logger.warning("ignoring unusable index cache %s (%s); re-reading the index", path, e)
        return None
    if not isinstance(payload, dict) or payload.get("stamp") != stamp:
        return None
    rows = payload.get("entries")
    valid = isinstance(rows, list) and all(
        isinstance(r, tuple)
        and len(r) == 3
        and isinstance(r[0], str)
        and isinstance(r[1], str)
        and r[2] in (None, True, False)
        for r in rows
    )
    if not valid:
        logger.warning("ignoring malformed index cache %s; re-reading the index", path)
        return None
    return [_Entry(*r) for r in rows]


def _listing_cached(
    index_file: str, read: Callable[[str], List[_Entry]], use_cache: bool
) -> List[_Entry]:
    """``read(index_file)``, cached in the record cache dir, keyed by the index file's stat."""
    try:
        st = os.stat(index_file)
    except FileNotFoundError:
        raise DatasetFormatError(index_file, "index file not found") from None
    stamp = (os.path.abspath(index_file), st.st_size, st.st_mtime_ns, _VERSION)
    digest = hashlib.sha1(repr(stamp[0]).encode("utf-8")).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"ade20k_index-{digest}.pkl")
    if use_cache:
        cached = _read_listing_cache(path, stamp)
        if cached is not None:
            return cached
    entries = read(index_file)
    if use_cache:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            rows = [(e.split, e.key, e.has_person) for e in entries]  # plain data only
            with open(tmp, "wb") as f:
                pickle.dump({"stamp": stamp, "entries": rows}, f, protocol=4)
            os.replace(tmp, path)
        except OSError as e:
            logger.warning("could not cache the listing of %s (%s)", index_file, e)
    return entries


def _entry_key(folder: str, filename: str, index_file: str) -> Tuple[str, str]:
    """Index ``folder`` ("ADE20K_.../images/.../street") + ``filename`` -> (split, key)."""
    parts = str(folder).replace("\\", "/").split("/")
    if "images" not in parts:
        raise DatasetFormatError(index_file, f"folder {folder!r} has no 'images' component")
    rel = parts[parts.index("images") :]
    split = next((s for s, d in _SPLIT_DIRS.items() if d in rel), None)
    key = "/".join(rel + [os.path.splitext(str(filename))[0]])
    return split, key


def _check_objectnames(names: Optional[Sequence[str]], index_file: str) -> None:
    """The index's class names must agree with the class indices this loader uses."""
    if names is None:
        return
    expected = {PERSON_CLASS: "person", **{c: _ade_name(n) for c, n in PART_CLASSES.items()}}
    for cls, name in expected.items():
        if cls > len(names):
            raise DatasetFormatError(
                index_file, f"objectnames has {len(names)} classes, class {cls} ({name}) missing"
            )
        if name not in _name_tokens(names[cls - 1]):
            raise DatasetFormatError(
                index_file, f"class {cls} is {names[cls - 1]!r} in objectnames, expected {name!r}"
            )


def _presence_row(presence: Any, num: int, index_file: str) -> Optional[np.ndarray]:
    if presence is None:
        return None
    if hasattr(presence, "toarray"):
        presence = presence.toarray()
    presence = np.asarray(presence)
    if presence.ndim != 2 or presence.shape[0] < PERSON_CLASS or presence.shape[1] != num:
        raise DatasetFormatError(
            index_file, f"objectPresence has shape {presence.shape}, expected (C, {num})"
        )
    return presence[PERSON_CLASS - 1] > 0


def _entries(filenames, folders, typeset, presence, index_file: str) -> List[_Entry]:
    if len(filenames) != len(folders):
        raise DatasetFormatError(
            index_file, f"{len(filenames)} filenames but {len(folders)} folders"
        )
    person = _presence_row(presence, len(filenames), index_file)
    out = []
    for i, (name, folder) in enumerate(zip(filenames, folders)):
        split, key = _entry_key(folder, name, index_file)
        if typeset is not None:
            split = _TYPESET.get(int(typeset[i]))
        if split is None:
            raise DatasetFormatError(
                index_file, f"image {name!r}: split unknown (typeset / folder {folder!r})"
            )
        out.append(_Entry(split, key, None if person is None else bool(person[i])))
    return out


def _walk(top: str, suffix: str, root: str) -> List[str]:
    """Keys (root-relative paths without ``suffix``) of files ending in ``suffix`` under ``top``.
    2021 instance-mask folders (``<name>/`` next to ``<name>.json``) are not entered."""
    if not os.path.isdir(top):
        raise DatasetFormatError(top, "image folder not found (and no index file)")
    keys = []
    for dirpath, dirnames, filenames in os.walk(top):
        names = set(filenames)
        dirnames[:] = sorted(d for d in dirnames if f"{d}.json" not in names)
        for name in sorted(filenames):
            if name.endswith(suffix):
                rel = os.path.relpath(os.path.join(dirpath, name[: -len(suffix)]), root)
                keys.append(rel.replace(os.sep, "/"))
    return keys


def _list_keys(
    root, split, index_file, default_index, read_index, walk_top, walk_suffix, use_cache
):
    """Keys of the split's images: from the index file when given/present, else a walk."""
    if index_file is None and os.path.isfile(os.path.join(root, default_index)):
        index_file = os.path.join(root, default_index)
    if index_file is not None:
        entries = _listing_cached(index_file, read_index, use_cache)
        return [e.key for e in entries if e.split == split and e.has_person is not False]
    return _walk(os.path.join(root, *walk_top, _SPLIT_DIRS[split]), walk_suffix, root)


# ---------------------------------------------------------------------------------------------
# Registration


def ade20k_metadata(release_root: str, release: str, split: str) -> Dict[str, Any]:
    """Metadata of a registered ADE20K split: the ade_person15 tables plus the release root."""
    meta = bodyparts_metadata(PART_TAXONOMY, keypoint_taxonomy=None)
    meta.update(dataset_root=release_root, ade20k_release=release, split=split)
    return meta

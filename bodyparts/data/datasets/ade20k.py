"""ADE20K person and person-part loaders for the native 2016 and 2021 releases.

Format facts: datasets/ade20k.md. Records follow :mod:`bodyparts.data.contract`, with
``part_taxonomy = "ade_person15"`` (the 15 level-1 person parts of :mod:`bodyparts.taxonomy`).

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

2021 release (``ADE20K_2021_17_01``)

* Images are listed through ``index_ade20k.pkl`` (``folder`` + ``filename``; the split from
  ``typeset`` when present, else from the ``training``/``validation`` folder; images without a
  person in ``objectPresence`` are not read) or, without an index, by walking
  ``images/ADE/<training|validation>/**/*.json``.
* Persons are JSON objects with ``part_level`` 0 and ``name_ndx`` 1831; the silhouette is the 255
  pixels of the instance PNG (128 = occluded amodal extension, not visible).
* A person's parts are the ``part_level`` 1 objects whose ``ispartof`` (scalar or list) names the
  person's id; their pixels are the 255 pixels of their instance PNGs. Parts of cars, chairs,
  buildings, ... are never taken. If two part PNGs claim a pixel, the class of ``_parts_1.png``
  at that pixel decides; a pixel it cannot decide stays unlabelled.
* A person part of a class outside the taxonomy is an error naming the file, the id and the
  class, except the known body classes the taxonomy cannot express
  (:data:`IGNORED_PERSON_PART_CLASSES`: the unsided ``arm``/``hand``/``leg``, ``face`` and the face
  parts, should they appear at level 1): they are left unlabelled, so the person gets
  ``parts_complete: False``.
* Quirks normalised: scalar ``hasparts``/``ispartof`` -> lists, string ``attributes`` -> list,
  ``occluded`` ``[]`` -> None. Instance PNG sizes are checked against the image and ``imsize``.

2016 release (``ADE20K_2016_07_26``)

* Images are listed through ``index_ade20k.mat`` (``filename``, ``folder``, ``typeset`` 1 = train,
  2 = val; only images whose ``objectPresence`` row of class 1831 is positive, when the field
  exists) or, without an index, by walking ``images/<training|validation>/**/*_seg.png``.
* Person instances are the B values of class-1831 pixels in ``_seg.png``.
* The 2016 files do not link parts to objects. Each part instance (a (class, B) pair of
  ``_parts_1.png`` with an ade_person15 class) is given to the person instance it overlaps most,
  if at least half of its pixels lie on that person; otherwise it is not a person part (the back
  of a chair or sofa, a statue's head) and is dropped (debug log).
* ``_atr.txt`` (6 ``#``-separated fields) is parsed strictly (a malformed line is an error with
  its line number) and cross-checks the files: ``_seg.png`` may not hold more person instances than
  the level-0 ``person`` lines (fewer is allowed: a fully occluded person has no pixels), and every
  person-part class of ``_parts_1.png`` must have a level-1 line of that name.

Loads go through :func:`~bodyparts.data.datasets.native.load_items_cached` (one item per image);
the listing read from a (large) index file is cached too, keyed by the index file's size and time.
"""

import functools
import hashlib
import json
import logging
import os
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.structures import BoxMode
from PIL import Image

from ...checkpoint import WeightsFileError, restricted_load
from ...taxonomy import get_part_taxonomy
from ..contract import encode_mask, mask_box
from .generic import bodyparts_metadata
from .native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    cache_dir,
    check_on_error,
    image_size,
    load_items_cached,
    register_native_split,
    validate_records,
)
from .synthetic import datasets_root

__all__ = [
    "PART_TAXONOMY",
    "PERSON_CLASS",
    "PART_CLASSES",
    "IGNORED_PERSON_PART_CLASSES",
    "RELEASE_DIRS",
    "AtrRow",
    "ade20k_metadata",
    "decode_ade_classes",
    "parse_atr",
    "load_ade20k_2016",
    "load_ade20k_2021",
    "register_all_ade20k",
]

logger = logging.getLogger(__name__)

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
_MIN_PART_ON_PERSON = 0.5  # 2016: share of a part instance's pixels that must lie on its person

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
        isinstance(r, tuple) and len(r) == 3 and isinstance(r[0], str) and isinstance(r[1], str)
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


def _read_pkl_index(index_file: str) -> List[_Entry]:
    """2021 ``index_ade20k.pkl`` (a dict of lists/arrays) -> entries."""
    try:  # the dataset's own file, from the internet: plain data and numpy arrays only
        with open(index_file, "rb") as f:
            index = restricted_load(f, path=index_file)
    except WeightsFileError as e:
        raise DatasetFormatError(index_file, e.problem) from None
    except OSError as e:
        raise DatasetFormatError(index_file, f"cannot be read ({e.strerror or e})") from None
    if not isinstance(index, dict) or "filename" not in index or "folder" not in index:
        raise DatasetFormatError(index_file, "expected a dict with keys 'filename' and 'folder'")
    names = index.get("objectnames")
    _check_objectnames(None if names is None else [str(n) for n in names], index_file)
    typeset = index.get("typeset")
    typeset = None if typeset is None else np.asarray(typeset).reshape(-1)
    filenames = [str(n) for n in index["filename"]]
    folders = [str(n) for n in index["folder"]]
    return _entries(filenames, folders, typeset, index.get("objectPresence"), index_file)


def _mat_str(x: Any) -> str:
    """scipy cell entry (1-element array, possibly nested) -> str."""
    while isinstance(x, np.ndarray):
        x = x.flat[0] if x.size else ""
    return str(x)


def _read_mat_index(index_file: str) -> List[_Entry]:
    """2016 ``index_ade20k.mat`` (struct ``index``, datasets/ade20k.md) -> entries."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(index_file, variable_names=["index"])
    except Exception as e:
        raise DatasetFormatError(
            index_file, f"not a readable MATLAB file ({type(e).__name__}: {e})"
        ) from None
    if "index" not in mat:
        raise DatasetFormatError(index_file, "no variable 'index'")
    index = mat["index"].flat[0]
    fields = index.dtype.names or ()
    for key in ("filename", "folder"):
        if key not in fields:
            raise DatasetFormatError(index_file, f"struct 'index' has no field {key!r}")
    names = [_mat_str(n) for n in index["objectnames"].flat] if "objectnames" in fields else None
    _check_objectnames(names, index_file)
    typeset = index["typeset"].reshape(-1) if "typeset" in fields else None
    filenames = [_mat_str(n) for n in index["filename"].flat]
    folders = [_mat_str(n) for n in index["folder"].flat]
    presence = index["objectPresence"] if "objectPresence" in fields else None
    return _entries(filenames, folders, typeset, presence, index_file)


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
# 2021: JSON + instance PNGs


@dataclass
class _AdeObject:
    """One normalised element of a 2021 JSON ``object`` list."""

    id: int
    name: str
    name_ndx: int
    level: int
    ispartof: List[int]
    hasparts: List[int]
    instance_mask: Optional[str]
    attributes: List[str]
    occluded: Optional[str]


def _as_id_list(value: Any) -> List[int]:
    """``[]`` / bare int / list of ints -> list of ints (the MATLAB->JSON scalar collapse)."""
    if value is None or value == []:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def _as_str_list(value: Any) -> List[str]:
    if value is None or value == []:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _parse_object(obj: Any, json_path: str, pos: int) -> _AdeObject:
    where = f"object #{pos}" + (
        f" (id {obj.get('id')})" if isinstance(obj, dict) and "id" in obj else ""
    )
    if not isinstance(obj, dict):
        raise DatasetFormatError(json_path, f"{where} is not a JSON object")
    for key in ("id", "name", "name_ndx", "parts"):
        if key not in obj:
            raise DatasetFormatError(json_path, f"{where}: missing key {key!r}")
    parts = obj["parts"]
    if not isinstance(parts, dict) or "part_level" not in parts:
        raise DatasetFormatError(json_path, f"{where}: 'parts' must be a dict with 'part_level'")
    level = int(parts["part_level"])
    if level > 0 and "ispartof" not in parts:
        raise DatasetFormatError(json_path, f"{where}: part (level {level}) without 'ispartof'")
    occluded = obj.get("occluded")
    try:
        return _AdeObject(
            id=int(obj["id"]),
            name=str(obj["name"]),
            name_ndx=int(obj["name_ndx"]),
            level=level,
            ispartof=_as_id_list(parts.get("ispartof")),
            hasparts=_as_id_list(parts.get("hasparts")),
            instance_mask=obj.get("instance_mask"),
            attributes=_as_str_list(obj.get("attributes")),
            occluded=occluded if isinstance(occluded, str) else None,
        )
    except (TypeError, ValueError) as e:
        raise DatasetFormatError(json_path, f"{where}: malformed value ({e})") from None


def _read_annotation_json(json_path: str) -> Dict[str, Any]:
    text = _read_text(json_path, "annotation JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetFormatError(
            json_path,
            f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); truncated file?",
        ) from None
    ann = data.get("annotation") if isinstance(data, dict) else None
    if not isinstance(ann, dict):
        raise DatasetFormatError(json_path, "missing key 'annotation' (a JSON object)")
    for key in ("filename", "imsize", "object"):
        if key not in ann:
            raise DatasetFormatError(json_path, f"missing key 'annotation.{key}'")
    if not isinstance(ann["object"], list):
        raise DatasetFormatError(json_path, "'annotation.object' must be a list")
    return ann


def _check_json_image(ann: Dict[str, Any], json_path: str, jpg: str, size: Tuple[int, int]) -> None:
    if ann["filename"] != os.path.basename(jpg):
        raise DatasetFormatError(
            json_path, f"describes {ann['filename']!r}, not {os.path.basename(jpg)!r}"
        )
    imsize = ann["imsize"]
    if (
        not isinstance(imsize, list)
        or len(imsize) < 2
        or [int(v) for v in imsize[:2]] != list(size)
    ):
        raise DatasetFormatError(
            json_path,
            f"imsize {imsize} differs from the image {jpg} ({size[0]} x {size[1]}, H x W)",
        )


def _visible_mask(img_dir: str, obj: _AdeObject, json_path: str, size: Tuple[int, int]) -> Mask:
    """255 pixels (visible) of an object's instance PNG; 128 (occluded extension) is not visible."""
    if not obj.instance_mask:
        raise DatasetFormatError(
            json_path, f"object id {obj.id} ({obj.name}): missing key 'instance_mask'"
        )
    path = os.path.join(img_dir, obj.instance_mask)
    arr = _read_png(path, size, ("L",), f"instance mask of object id {obj.id}")
    if np.count_nonzero((arr != 0) & (arr != 128) & (arr != 255)):
        bad = sorted(set(np.unique(arr).tolist()) - {0, 128, 255})[:5]
        raise DatasetFormatError(path, f"instance mask values must be 0/128/255, found {bad}")
    return arr == 255


def _part_label_2021(obj: _AdeObject, person: _AdeObject, json_path: str) -> Optional[int]:
    """ade_person15 label of a level-1 part of ``person``; None for an ignored known class."""
    part = PART_CLASSES.get(obj.name_ndx)
    if part is None:
        if obj.name_ndx in IGNORED_PERSON_PART_CLASSES:
            logger.debug(
                "%s: part id %d (%s) of person %d left unlabelled",
                json_path,
                obj.id,
                obj.name,
                person.id,
            )
            return None
        raise DatasetFormatError(
            json_path,
            f"object id {obj.id}: part of person id {person.id} has class {obj.name_ndx} "
            f"({obj.name!r}), which is not an {PART_TAXONOMY} part",
        )
    if _ade_name(part) not in _name_tokens(obj.name):
        raise DatasetFormatError(
            json_path,
            f"object id {obj.id}: class {obj.name_ndx} should be {_ade_name(part)!r}, "
            f"the JSON names it {obj.name!r}",
        )
    return _label_of(part)


def _resolve_overlaps(
    masks: Dict[int, Mask], part_classes: Callable[[], Optional[np.ndarray]]
) -> Dict[int, Mask]:
    """Make part masks disjoint: a pixel claimed by several parts keeps the part whose class
    ``_parts_1.png`` shows there (``part_classes()`` -> class map (H, W) or None); else none."""
    count = np.sum([m.astype(np.uint8) for m in masks.values()], axis=0)
    overlap = count > 1
    if not overlap.any():
        return masks
    classes = part_classes()
    label_class = {_label_of(n): c for c, n in PART_CLASSES.items()}
    out = {}
    for label, m in masks.items():
        keep = m & ~overlap
        if classes is not None:
            keep |= m & overlap & (classes == label_class[label])
        out[label] = keep
    return out


def _parts_2021(
    person, silhouette, objects, img_dir, json_path, size, parts_png
) -> Optional[Dict[int, Mask]]:
    """label -> mask (H, W) of the person's level-1 parts inside its silhouette; None if none."""
    masks: Dict[int, Mask] = {}
    for obj in objects:
        if obj.level != 1 or person.id not in obj.ispartof:
            continue
        label = _part_label_2021(obj, person, json_path)
        if label is not None:
            m = _visible_mask(img_dir, obj, json_path, size) & silhouette
            masks[label] = masks[label] | m if label in masks else m
    if not masks:
        return None

    def part_classes():
        if not os.path.isfile(parts_png):
            return None
        return _read_class_png(parts_png, size, "level-1 part map")[0]

    return _resolve_overlaps(masks, part_classes)


def _convert_2021(item: LoadItem) -> List[Dict[str, Any]]:
    """One 2021 image -> [record] ([] if no person). Sources: jpg, json, parts_1, instance dir."""
    jpg, json_path, parts_png, _ = item.sources
    size = image_size(jpg)
    ann = _read_annotation_json(json_path)
    _check_json_image(ann, json_path, jpg, size)
    objects = [_parse_object(o, json_path, i) for i, o in enumerate(ann["object"])]
    ids = {o.id for o in objects}
    if len(ids) != len(objects):
        raise DatasetFormatError(json_path, "duplicate object ids")
    img_dir = os.path.dirname(jpg)
    annotations = []
    for person in (o for o in objects if o.level == 0 and o.name_ndx == PERSON_CLASS):
        missing = [c for c in person.hasparts if c not in ids]
        if missing:
            raise DatasetFormatError(
                json_path, f"person id {person.id}: hasparts names unknown ids {missing}"
            )
        silhouette = _visible_mask(img_dir, person, json_path, size)
        if not silhouette.any():
            logger.debug("%s: person id %d has no visible pixel; dropped", json_path, person.id)
            continue
        parts = _parts_2021(person, silhouette, objects, img_dir, json_path, size, parts_png)
        extra = {"attributes": person.attributes, "occluded": person.occluded}
        annotations.append(_person_annotation(silhouette, parts, person.id, extra))
    return _finish(jpg, size, annotations, json_path)


def _sources_2021(root: str, key: str) -> Tuple[str, ...]:
    base = os.path.join(root, key)
    return (f"{base}.jpg", f"{base}.json", f"{base}_parts_1.png", base)


def load_ade20k_2021(
    root: str,
    split: str,
    *,
    index_file: Optional[str] = None,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load the person annotations of ADE20K 2021 (``ADE20K_2021_17_01``).

    Args:
        root: the release folder (holding ``images/ADE/`` and optionally ``index_ade20k.pkl``).
        split: "train" or "val" (folders ``training`` / ``validation``).
        index_file: ``index_ade20k.pkl``; default ``<root>/index_ade20k.pkl`` if present, else the
            images are found by walking ``images/ADE/<split folder>/**/*.json``.
        on_error: "raise" or "skip" (log and count bad images).
        use_cache: reuse the per-image record cache (and the cached index listing).
        report: filled with counts and timing.

    Returns:
        one contract record per image with at least one person (``part_taxonomy`` "ade_person15").
    """
    check_on_error(on_error)
    split = _canonical_split(split)
    keys = _list_keys(
        root,
        split,
        index_file,
        "index_ade20k.pkl",
        _read_pkl_index,
        ("images", "ADE"),
        ".json",
        use_cache,
    )
    items = [LoadItem(key, _sources_2021(root, key)) for key in keys]
    return load_items_cached(
        "ade20k_2021",
        f"{os.path.abspath(root)}|{split}|{index_file}",
        _VERSION,
        items,
        _convert_2021,
        on_error=on_error,
        use_cache=use_cache,
        desc=f"ADE20K 2021 {split}",
        report=report,
    )


# ---------------------------------------------------------------------------------------------
# 2016: _seg.png + _parts_1.png + _atr.txt


@dataclass(frozen=True)
class AtrRow:
    """One line of a 2016 ``_atr.txt``."""

    instance: int  # index into the instance map of its level
    level: int  # 0 = object, 1 = part, 2 = part of a part
    crop: int  # 1 = only partly visible
    wordnet_name: str  # e.g. "person, individual, someone, somebody, mortal, soul"
    raw_name: str
    attributes: Tuple[str, ...]


def parse_atr(path: str) -> List[AtrRow]:
    """Parse a 2016 ``_atr.txt``: lines ``NNN # level # crop # wordnet name # raw name # "attrs"``.

    Raises:
        DatasetFormatError: naming the file and the line number of a malformed line.
    """
    rows = []
    for lineno, line in enumerate(_read_text(path, "attribute file (_atr.txt)").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("#")]
        if len(fields) != 6:
            raise DatasetFormatError(
                path, f"line {lineno}: expected 6 '#'-separated fields, got {len(fields)}"
            )
        inst, level, crop, wordnet, raw, attrs = fields
        if not (inst.isdigit() and level.isdigit() and crop.isdigit()):
            raise DatasetFormatError(
                path, f"line {lineno}: instance, level and crop must be integers"
            )
        if len(attrs) < 2 or attrs[0] != '"' or attrs[-1] != '"':
            raise DatasetFormatError(
                path, f"line {lineno}: attributes must be a double-quoted string"
            )
        words = tuple(a.strip() for a in attrs[1:-1].split(",") if a.strip())
        rows.append(AtrRow(int(inst), int(level), int(crop), wordnet, raw, words))
    return rows


def _atr_names(row: AtrRow) -> List[str]:
    return _name_tokens(row.wordnet_name) + [row.raw_name.strip().lower()]


def _check_atr(rows: List[AtrRow], num_persons: int, part_classes: Sequence[int], atr: str) -> None:
    """Cross-check: person instance count (level 0) and person-part class names (level 1)."""
    listed = sum(1 for r in rows if r.level == 0 and _name_tokens(r.wordnet_name)[0] == "person")
    if num_persons > listed:
        raise DatasetFormatError(
            atr, f"_seg.png has {num_persons} person instances, the file lists {listed}"
        )
    level1 = {n for r in rows if r.level == 1 for n in _atr_names(r)}
    for cls in part_classes:
        name = _ade_name(PART_CLASSES[cls])
        if name not in level1:
            raise DatasetFormatError(
                atr, f"_parts_1.png has class {cls} ({name}) but no level-1 line names it"
            )


def _part_instances(parts_png: str, size) -> List[Tuple[int, Mask]]:
    """(class, mask) of every ade_person15 part instance ((class, B) pair) of ``_parts_1.png``."""
    if not os.path.isfile(parts_png):
        return []
    classes, inst = _read_class_png(parts_png, size, "level-1 part map")
    ours = np.isin(classes, list(PART_CLASSES))
    if not ours.any():
        return []
    codes = classes.astype(np.int64) * 256 + inst
    return [(int(c // 256), ours & (codes == c)) for c in np.unique(codes[ours])]


def _assign_parts_2016(
    persons: List[Mask], instances, source: str
) -> List[Optional[Dict[int, Mask]]]:
    """Give each part instance to the person it overlaps most (>= half of its pixels on it)."""
    out: List[Dict[int, Mask]] = [{} for _ in persons]
    for cls, mask in instances:
        overlaps = [int(np.count_nonzero(mask & p)) for p in persons]
        best = int(np.argmax(overlaps))
        if overlaps[best] < _MIN_PART_ON_PERSON * np.count_nonzero(mask):
            logger.debug(
                "%s: %s instance off any person (%d px on one); not a person part",
                source,
                PART_CLASSES[cls],
                overlaps[best],
            )
            continue
        label, m = _label_of(PART_CLASSES[cls]), mask & persons[best]
        out[best][label] = out[best][label] | m if label in out[best] else m
    return [d or None for d in out]


def _convert_2016(item: LoadItem) -> List[Dict[str, Any]]:
    """One 2016 image -> [record] (or [] without persons). Sources: jpg, seg, parts_1, atr."""
    jpg, seg_png, parts_png, atr = item.sources
    size = image_size(jpg)
    classes, inst = _read_class_png(seg_png, size, "object map (_seg.png)")
    rows = parse_atr(atr)
    person_pixels = classes == PERSON_CLASS
    b_values = [int(b) for b in np.unique(inst[person_pixels])]
    instances = _part_instances(parts_png, size)
    _check_atr(rows, len(b_values), sorted({c for c, _ in instances}), atr)
    persons = [person_pixels & (inst == b) for b in b_values]
    parts = _assign_parts_2016(persons, instances, parts_png)
    annotations = [_person_annotation(s, p, b, {}) for s, p, b in zip(persons, parts, b_values)]
    return _finish(jpg, size, annotations, seg_png)


def _sources_2016(root: str, key: str) -> Tuple[str, ...]:
    base = os.path.join(root, key)
    return (f"{base}.jpg", f"{base}_seg.png", f"{base}_parts_1.png", f"{base}_atr.txt")


def load_ade20k_2016(
    root: str,
    split: str,
    *,
    index_file: Optional[str] = None,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load the person annotations of ADE20K 2016 (``ADE20K_2016_07_26``).

    Args:
        root: the release folder (holding ``images/`` and ``index_ade20k.mat``).
        split: "train" (typeset 1, ``training``) or "val" (typeset 2, ``validation``).
        index_file: ``index_ade20k.mat``; default ``<root>/index_ade20k.mat`` if present, else the
            images are found by walking ``images/<split folder>/**/*_seg.png``.
        on_error, use_cache, report: as in :func:`load_ade20k_2021`.

    Returns:
        one contract record per image with at least one person (``part_taxonomy`` "ade_person15").
    """
    check_on_error(on_error)
    split = _canonical_split(split)
    keys = _list_keys(
        root,
        split,
        index_file,
        "index_ade20k.mat",
        _read_mat_index,
        ("images",),
        "_seg.png",
        use_cache,
    )
    items = [LoadItem(key, _sources_2016(root, key)) for key in keys]
    return load_items_cached(
        "ade20k_2016",
        f"{os.path.abspath(root)}|{split}|{index_file}",
        _VERSION,
        items,
        _convert_2016,
        on_error=on_error,
        use_cache=use_cache,
        desc=f"ADE20K 2016 {split}",
        report=report,
    )


# ---------------------------------------------------------------------------------------------
# Registration


def ade20k_metadata(release_root: str, release: str, split: str) -> Dict[str, Any]:
    """Metadata of a registered ADE20K split: the ade_person15 tables plus the release root."""
    meta = bodyparts_metadata(PART_TAXONOMY, keypoint_taxonomy=None)
    meta.update(dataset_root=release_root, ade20k_release=release, split=split)
    return meta


def register_all_ade20k(root: Optional[str] = None) -> List[str]:
    """Register ``ade20k_{2016,2021}_person_{train,val}`` (lazy: nothing is read until used).

    Args:
        root: datasets root holding ``ADE20K_2016_07_26/`` and ``ADE20K_2021_17_01/``; default
            ``$DETECTRON2_DATASETS`` (``./datasets``).
    Returns:
        the registered names.
    """
    root = root if root is not None else datasets_root()
    loaders = {"2016": load_ade20k_2016, "2021": load_ade20k_2021}
    names = []
    for release, load in loaders.items():
        release_root = os.path.join(root, RELEASE_DIRS[release])
        for split in _SPLIT_DIRS:
            name = f"ade20k_{release}_person_{split}"
            register_native_split(
                name,
                functools.partial(load, release_root, split),
                ade20k_metadata(release_root, release, split),
            )
            names.append(name)
    return names

"""ADE20K 2021 release (``ADE20K_2021_17_01``): ``index_ade20k.pkl`` and per-image JSON + masks.

Format facts: datasets/ade20k.md; the decisions both releases share (class decoding, silhouettes,
``parts_complete``, the class table, the listing cache) are in :mod:`.common`.

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
  (:data:`~.common.IGNORED_PERSON_PART_CLASSES`: the unsided ``arm``/``hand``/``leg``, ``face``
  and the face parts, should they appear at level 1): they are left unlabelled, so the person gets
  ``parts_complete: False``.
* Quirks normalised: scalar ``hasparts``/``ispartof`` -> lists, string ``attributes`` -> list,
  ``occluded`` ``[]`` -> None. Instance PNG sizes are checked against the image and ``imsize``.
"""

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ....checkpoint import WeightsFileError, restricted_load
from ..native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    check_on_error,
    image_size,
    load_items_cached,
)
from .common import (
    _VERSION,
    IGNORED_PERSON_PART_CLASSES,
    PART_CLASSES,
    PART_TAXONOMY,
    PERSON_CLASS,
    Mask,
    _ade_name,
    _canonical_split,
    _check_objectnames,
    _entries,
    _Entry,
    _finish,
    _label_of,
    _list_keys,
    _name_tokens,
    _person_annotation,
    _read_class_png,
    _read_png,
    _read_text,
    logger,
)

# ---------------------------------------------------------------------------------------------
# Index: index_ade20k.pkl


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

"""ADE20K 2016 release (``ADE20K_2016_07_26``): ``index_ade20k.mat``, ``_seg.png``,
``_parts_N.png`` and ``_atr.txt``.

Format facts: datasets/ade20k.md; the decisions both releases share (class decoding, silhouettes,
``parts_complete``, the class table, the listing cache) are in :mod:`.common`.

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
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

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
    PART_CLASSES,
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
    _read_text,
    logger,
)

_MIN_PART_ON_PERSON = 0.5  # 2016: share of a part instance's pixels that must lie on its person


# ---------------------------------------------------------------------------------------------
# Index: index_ade20k.mat


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

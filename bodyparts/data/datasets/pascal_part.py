"""PASCAL-Part (person class) and Pascal-Person-Part, read from their native files.

Native format (datasets/pascal_part.md): one MATLAB 5 ``.mat`` file per VOC2010 image,
``Annotations_Part/<id>.mat``, holding one struct ``anno`` with ``imname`` and ``objects`` (one
entry per annotated object of any VOC class: ``class``, ``class_ind``, ``mask`` (H, W) {0, 1},
``parts`` with ``part_name`` and ``mask``). The images are ``JPEGImages/<id>.jpg``.

Format decisions:

* One record per image **that has at least one person**; images without persons give no record.
  Records use ``part_taxonomy="pascal_part24"``: label k = index k of the official ``part2ind.m``.
* Persons are the objects whose ``class`` is ``'person'``; ``class_ind`` must then be 15 (and 15
  must mean person), otherwise the file is rejected. Other objects and their parts are ignored, so
  none of their pixels is ever labelled as a person or a part.
* Silhouette = the object's ``mask`` (not the union of parts, which misses about 1.5 % of it);
  bbox = its tight XYWH_ABS box; persons with an empty mask are dropped (debug log).
* Parts overlap in the files (the head contains the face parts, hair overlaps the head, limbs
  overlap at joints). They are resolved into disjoint labels with the FIXED priority
  :data:`PART_PRIORITY` (later entries win; the order of parts inside the file plays no role)::

      torso < neck < upper arms < upper legs < lower arms < lower legs < hands < feet
            < head < hair < ears < eyebrows < eyes < nose < mouth

  so that smaller, more specific regions win. Several parts with the same name are united. Part
  pixels outside the silhouette are dropped.
* ``parts`` is ``None`` (no part supervision) when the person's part list is empty or none of its
  part pixels lies inside the silhouette. Otherwise ``parts_complete`` is ``True`` iff the labelled
  pixels cover at least :data:`COMPLETE_COVERAGE` (95 %) of the silhouette: a truncated or
  occluded person whose visible pixels are all labelled is complete, a person with unlabelled
  visible limbs is not (its unlabelled pixels are then ignored rather than called background).
* Every inconsistency raises :class:`~bodyparts.data.datasets.native.DatasetFormatError` naming the
  file (and the object as ``anno.objects(k)``, 1-based as in MATLAB): unreadable or truncated
  ``.mat``, missing ``anno`` or fields, ``imname`` differing from the file name, an unknown person
  part name, a mask whose size differs from the JPEG's, a missing or unreadable JPEG.
  JPEG sizes come from the header only.

Pascal-Person-Part is PASCAL-Part restricted to the images of its id lists; its six
classes are the declared ``pascal_part24 -> ppp6`` mapping of :mod:`bodyparts.taxonomy` (neck ->
torso, hands -> lower arms, feet -> lower legs), applied by the mappers and evaluators. The
official ``pascal_person_part_gt/<id>.png`` maps are NOT used as ``sem_seg_file_name``: they hold
ppp6 labels, while the contract requires labels of the record's taxonomy (pascal_part24). Their
folder is given in the split metadata (``ppp_gt_dir``).
"""

import functools
import hashlib
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.io

from ...taxonomy import PASCAL_PART24
from ..contract import person_annotation
from .generic import bodyparts_metadata
from .native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    image_size,
    load_items_cached,
    read_id_list,
    register_native_split,
    validate_records,
)
from .synthetic import datasets_root

__all__ = [
    "PART_TAXONOMY",
    "PART_PRIORITY",
    "COMPLETE_COVERAGE",
    "PERSON_CLASS_IND",
    "load_pascal_part",
    "load_pascal_person_part",
    "read_id_list",  # defined in .native; re-exported for the loaders that import it from here
    "resolve_part_labels",
    "register_all_pascal_part",
    "pascal_part_paths",
]

logger = logging.getLogger(__name__)

PART_TAXONOMY = "pascal_part24"
PERSON_CLASS_IND = 15  # VOC class index of "person" (alphabetical 1..20)
COMPLETE_COVERAGE = 0.95  # parts_complete iff labelled pixels / silhouette pixels >= this

# Overlap priority, lowest first: a pixel covered by several parts gets the last one listed.
PART_PRIORITY: Tuple[str, ...] = (
    "torso",
    "neck",
    "luarm",
    "ruarm",
    "luleg",
    "ruleg",
    "llarm",
    "rlarm",
    "llleg",
    "rlleg",
    "lhand",
    "rhand",
    "lfoot",
    "rfoot",
    "head",
    "hair",
    "lear",
    "rear",
    "lebrow",
    "rebrow",
    "leye",
    "reye",
    "nose",
    "mouth",
)
assert sorted(PART_PRIORITY) == sorted(PASCAL_PART24.part_names)

_VERSION = f"pascal_part-1|{COMPLETE_COVERAGE}|{','.join(PART_PRIORITY)}"
_LABEL = {name: PASCAL_PART24.label_of(name) for name in PASCAL_PART24.part_names}


# ---- scipy.io.loadmat layout normalisation (default options: struct_as_record, no squeeze)


def _structs(value: Any, path: str, what: str) -> List[np.void]:
    """A MATLAB struct array of any shape ((1, N), (N, 1), (0, 0), scalar) -> list of records."""
    if isinstance(value, np.void) and value.dtype.names:
        return [value]
    if isinstance(value, np.ndarray) and value.dtype.names is not None:
        return list(value.ravel(order="F"))
    if isinstance(value, np.ndarray) and value.size == 0:  # MATLAB [] instead of an empty struct
        return []
    raise DatasetFormatError(path, f"{what} is not a MATLAB struct array (got {_describe(value)})")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.shape} of {value.dtype}"
    return type(value).__name__


def _field(rec: np.void, name: str, path: str, what: str) -> Any:
    names = rec.dtype.names or ()
    if name not in names:
        raise DatasetFormatError(path, f"{what} has no field {name!r} (fields: {list(names)})")
    return rec[name]


def _string(value: Any, path: str, what: str) -> str:
    """A MATLAB char row vector (loadmat: ndarray (1,) of str) -> str."""
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind == "U" and arr.size == 1:
        return str(arr.ravel()[0])
    if arr.dtype.kind == "U" and arr.size == 0:
        return ""
    raise DatasetFormatError(path, f"{what} is not a character string (got {_describe(value)})")


def _integer(value: Any, path: str, what: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise DatasetFormatError(path, f"{what} is not a numeric scalar (got {_describe(value)})")
    return int(arr.ravel()[0])


def _mask(value: Any, shape: Tuple[int, int], path: str, what: str, image: str) -> np.ndarray:
    """A MATLAB (H, W) mask -> bool (H, W); its size must equal the image's."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise DatasetFormatError(path, f"{what} is not a 2-D numeric mask (got {_describe(value)})")
    if arr.shape != shape:
        raise DatasetFormatError(
            path,
            f"{what} has size {arr.shape[0]}x{arr.shape[1]} (HxW) but the image {image} is "
            f"{shape[0]}x{shape[1]}",
        )
    return arr != 0


# ---- reading one annotation file


def _read_anno(mat_path: str) -> np.void:
    """loadmat with default options -> the ``anno`` record."""
    try:
        data = scipy.io.loadmat(mat_path)
    except FileNotFoundError:
        raise DatasetFormatError(mat_path, "annotation file not found") from None
    except Exception as e:  # scipy raises many types on truncated or foreign files
        raise DatasetFormatError(
            mat_path,
            f"not a readable MATLAB 5 .mat file, truncated or corrupt? ({type(e).__name__}: {e})",
        ) from None
    if "anno" not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DatasetFormatError(mat_path, f"no variable 'anno' in the file (variables: {found})")
    annos = _structs(data["anno"], mat_path, "'anno'")
    if len(annos) != 1:
        raise DatasetFormatError(
            mat_path, f"'anno' must be a 1x1 struct, found {len(annos)} entries"
        )
    return annos[0]


def _is_person(obj: np.void, mat_path: str, where: str) -> bool:
    cls = _string(_field(obj, "class", mat_path, where), mat_path, f"{where}.class")
    ind = _integer(_field(obj, "class_ind", mat_path, where), mat_path, f"{where}.class_ind")
    if (cls == "person") != (ind == PERSON_CLASS_IND):
        raise DatasetFormatError(
            mat_path,
            f"{where}: class {cls!r} disagrees with class_ind {ind} (person is {PERSON_CLASS_IND})",
        )
    return cls == "person"


def _person_parts(
    obj: np.void, shape, mat_path: str, where: str, image: str
) -> Dict[str, np.ndarray]:
    """The person's part masks by name (bool (H, W)); same-name parts are united."""
    named: Dict[str, np.ndarray] = {}
    for j, part in enumerate(
        _structs(_field(obj, "parts", mat_path, where), mat_path, f"{where}.parts")
    ):
        pwhere = f"{where}.parts({j + 1})"
        name = _string(_field(part, "part_name", mat_path, pwhere), mat_path, f"{pwhere}.part_name")
        if name not in _LABEL:
            raise DatasetFormatError(
                mat_path,
                f"{where} (person): unknown part name {name!r} in {pwhere}; "
                f"known person parts: {list(PASCAL_PART24.part_names)}",
            )
        mask = _mask(
            _field(part, "mask", mat_path, pwhere),
            shape,
            mat_path,
            f"{pwhere}.mask ({name})",
            image,
        )
        named[name] = named[name] | mask if name in named else mask
    return named


def resolve_part_labels(named_masks: Dict[str, np.ndarray], silhouette: np.ndarray) -> np.ndarray:
    """Overlapping named part masks -> one disjoint label map.

    Args:
        named_masks: part name (pascal_part24) -> bool (H, W).
        silhouette: bool (H, W), the person's object mask.
    Returns:
        uint8 (H, W): pascal_part24 labels painted in :data:`PART_PRIORITY` order (later wins),
        0 outside the silhouette and where no part lies.
    """
    labels = np.zeros(silhouette.shape, dtype=np.uint8)
    for name in PART_PRIORITY:
        if name in named_masks:
            labels[named_masks[name]] = _LABEL[name]
    labels[~silhouette] = 0
    return labels


def _person_annotation(silhouette: np.ndarray, named: Dict[str, np.ndarray]) -> Dict[str, Any]:
    labels = np.asfortranarray(resolve_part_labels(named, silhouette))  # RLE wants column-major
    ann = person_annotation(silhouette, labels)
    if not ann["parts"]:
        ann["parts"] = None
    else:
        covered = float(np.count_nonzero(labels))
        ann["parts_complete"] = bool(covered >= COMPLETE_COVERAGE * ann["area"])
    return ann


def _convert_item(item: LoadItem) -> List[Dict[str, Any]]:
    """One ``.mat`` (+ its JPEG) -> [] (no person) or [record]."""
    mat_path, image_path = item.sources
    anno = _read_anno(mat_path)
    imname = _string(_field(anno, "imname", mat_path, "'anno'"), mat_path, "anno.imname")
    if imname != item.key:
        raise DatasetFormatError(
            mat_path, f"anno.imname {imname!r} differs from the file name {item.key!r}"
        )
    objects = _structs(_field(anno, "objects", mat_path, "'anno'"), mat_path, "anno.objects")
    persons = [
        (k, o) for k, o in enumerate(objects) if _is_person(o, mat_path, f"anno.objects({k + 1})")
    ]
    if not persons:
        return []
    shape = image_size(image_path, "image file not found")
    annotations = []
    for k, obj in persons:
        where = f"anno.objects({k + 1})"
        silhouette = _mask(
            _field(obj, "mask", mat_path, where), shape, mat_path, f"{where}.mask", image_path
        )
        named = _person_parts(obj, shape, mat_path, where, image_path)
        if silhouette.any():
            annotations.append(_person_annotation(silhouette, named))
    if len(annotations) < len(persons):
        logger.debug(
            "%s: dropped %d person(s) with an empty mask", mat_path, len(persons) - len(annotations)
        )
    if not annotations:
        return []
    record = {
        "file_name": image_path,
        "height": shape[0],
        "width": shape[1],
        "image_id": item.key,
        "part_taxonomy": PART_TAXONOMY,
        "annotations": annotations,
    }
    validate_records([record], mat_path, num_parts=PASCAL_PART24.num_parts)
    return [record]


# ---- public loaders


def _ids_in(anno_dir: str) -> List[str]:
    if not os.path.isdir(anno_dir):
        raise DatasetFormatError(anno_dir, "annotation directory not found")
    return sorted(f[: -len(".mat")] for f in os.listdir(anno_dir) if f.endswith(".mat"))


def load_pascal_part(
    anno_dir: str,
    image_dir: str,
    image_ids: Optional[Sequence[str]] = None,
    *,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load PASCAL-Part person annotations as contract records (see the module docstring).

    Args:
        anno_dir: folder of ``<id>.mat`` files (``Annotations_Part``).
        image_dir: folder of ``<id>.jpg`` files (VOC2010 ``JPEGImages``).
        image_ids: ids to load, in this order; None = every ``*.mat`` in ``anno_dir``, sorted.
            An id without a ``.mat`` file is an error (or a skip with ``on_error="skip"``).
        on_error: "raise" or "skip" (bad files are logged, skipped and counted).
        use_cache: reuse the per-file record cache (:func:`~.native.load_items_cached`).
        report: filled with counts (items, records, parsed, cached, skipped) and time.

    Returns:
        one record per image WITH at least one person (images without persons are not returned):
        ``part_taxonomy="pascal_part24"``, one annotation per person with ``bbox`` (XYWH_ABS),
        ``segmentation`` (RLE of the object mask, size [H, W]), ``parts`` ({label: RLE}, disjoint,
        or None) and ``parts_complete``.
    """
    ids = _ids_in(anno_dir) if image_ids is None else [str(i) for i in image_ids]
    items = [
        LoadItem(i, (os.path.join(anno_dir, f"{i}.mat"), os.path.join(image_dir, f"{i}.jpg")))
        for i in ids
    ]
    ids_digest = (
        "all" if image_ids is None else hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()
    )
    cache_key = f"{os.path.abspath(anno_dir)}|{os.path.abspath(image_dir)}|{ids_digest}"
    return load_items_cached(
        "pascal_part",
        cache_key,
        _VERSION,
        items,
        _convert_item,
        on_error=on_error,
        use_cache=use_cache,
        desc=f"pascal_part {anno_dir}",
        report=report,
    )


def load_pascal_person_part(
    anno_dir: str,
    image_dir: str,
    list_file: str,
    *,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Pascal-Person-Part: the PASCAL-Part person records (pascal_part24) of ``list_file``'s ids.

    ``list_file`` is ``train_id.txt`` / ``val_id.txt`` (one id per line) or ``train.txt`` /
    ``val.txt`` (``<image path> <gt path>``), see :func:`read_id_list`. The 6 Pascal-Person-Part
    classes are the ``pascal_part24 -> ppp6`` mapping of :mod:`bodyparts.taxonomy`. Arguments and
    returns as :func:`load_pascal_part`.
    """
    ids = read_id_list(list_file)
    return load_pascal_part(
        anno_dir, image_dir, ids, on_error=on_error, use_cache=use_cache, report=report
    )


# ---- registration


def pascal_part_paths(root: str) -> Dict[str, str]:
    """The expected files under the datasets root (see ``datasets/README.md``)."""
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    ppp = os.path.join(root, "pascal_person_part")
    return {
        "anno_dir": os.path.join(root, "pascal_part", "Annotations_Part"),
        "image_root": os.path.join(voc, "JPEGImages"),
        "voc_main": os.path.join(voc, "ImageSets", "Main"),
        "ppp_lists": os.path.join(ppp, "pascal_person_part_trainval_list"),
        "ppp_gt_dir": os.path.join(ppp, "pascal_person_part_gt"),
    }


def _load_voc_split(
    anno_dir: str, image_root: str, split_file: str, on_error: str = "raise"
) -> List[Dict[str, Any]]:
    """VOC2010 Main split ids that have a PASCAL-Part annotation file."""
    annotated = set(_ids_in(anno_dir))
    ids = [i for i in read_id_list(split_file) if i in annotated]
    return load_pascal_part(anno_dir, image_root, ids, on_error=on_error)


def register_all_pascal_part(root: Optional[str] = None) -> List[str]:
    """Register PASCAL-Part person and Pascal-Person-Part splits under ``root`` (lazy).

    Splits: ``pascal_part_person_{train,val}`` (VOC2010 ``ImageSets/Main/{train,val}.txt`` ids that
    have a ``.mat`` in ``pascal_part/Annotations_Part``) and ``pascal_person_part_{train,val}``
    (``pascal_person_part_trainval_list/{train,val}_id.txt``). All records are pascal_part24; the
    Pascal-Person-Part splits carry the hint ``default_part_taxonomy="ppp6"``.

    Args:
        root: datasets root; None = ``$DETECTRON2_DATASETS`` (default ``./datasets``).
    Returns:
        the registered names.
    """
    root = datasets_root() if root is None else root
    paths = pascal_part_paths(root)
    anno_dir, image_root = paths["anno_dir"], paths["image_root"]
    base = dict(
        bodyparts_metadata(PART_TAXONOMY, None),
        dataset_root=root,
        anno_dir=anno_dir,
        image_root=image_root,
    )
    names = []
    for split in ("train", "val"):
        split_file = os.path.join(paths["voc_main"], f"{split}.txt")
        name = f"pascal_part_person_{split}"
        register_native_split(
            name,
            functools.partial(_load_voc_split, anno_dir, image_root, split_file),
            dict(base, split_file=split_file),
        )
        names.append(name)
    for split in ("train", "val"):
        list_file = os.path.join(paths["ppp_lists"], f"{split}_id.txt")
        name = f"pascal_person_part_{split}"
        register_native_split(
            name,
            functools.partial(load_pascal_person_part, anno_dir, image_root, list_file),
            dict(
                base,
                split_file=list_file,
                default_part_taxonomy="ppp6",
                ppp_gt_dir=paths["ppp_gt_dir"],
            ),
        )
        names.append(name)
    return names

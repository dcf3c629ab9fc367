"""The generic on-disk format: COCO JSON with one annotation per person and its part labels; and
:func:`register_bodyparts_dataset`, which registers any function returning contract records.

See ``datasets/README.md`` ("Bring your own data") for the format with an example, and
``docs/custom_datasets.md`` for a dataset with its own label set. Loading gives records in the data
contract (:mod:`bodyparts.data.contract`); every record is validated and a malformed file gets a
:class:`DataContractError` that names the file, the image, the annotation and the problem (or, with
``on_error="skip"``, a logged skip and a final count).
"""

import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ...taxonomy import get_keypoint_taxonomy, get_part_taxonomy
from ..contract import DataContractError, validate_record

__all__ = [
    "FORMAT_VERSION",
    "load_bodyparts_json",
    "save_bodyparts_json",
    "register_bodyparts_json",
    "register_bodyparts_dataset",
    "bodyparts_metadata",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_PERSON_CATEGORY_ID = 1


def bodyparts_metadata(
    part_taxonomy: str, keypoint_taxonomy: Optional[str] = "coco17"
) -> Dict[str, Any]:
    """Metadata shared by person datasets: thing class, part taxonomy and keypoint taxonomy
    tables."""
    parts = get_part_taxonomy(part_taxonomy)
    meta: Dict[str, Any] = {
        "thing_classes": ["person"],
        "thing_colors": [(220, 20, 60)],
        "part_taxonomy": parts.name,
        "part_names": list(parts.part_names),
        "part_colors": [tuple(c) for c in parts.colors],
        "part_flip_pairs": [tuple(p) for p in parts.flip_pairs],
        "evaluator_type": "bodyparts",
        "data_format": "bodyparts",  # records follow bodyparts.data.contract
    }
    if keypoint_taxonomy:
        kps = get_keypoint_taxonomy(keypoint_taxonomy)
        meta.update(
            keypoint_taxonomy=kps.name,
            keypoint_names=list(kps.names),
            keypoint_flip_map=[tuple(p) for p in kps.flip_map],
            keypoint_connection_rules=kps.connection_rules(),
            keypoint_oks_sigmas=list(kps.oks_sigmas),
        )
    return meta


def _fail(json_file: str, msg: str) -> None:
    raise DataContractError(f"{json_file}: {msg}")


def _read_json(json_file: str) -> Dict[str, Any]:
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataContractError(f"{json_file}: annotation file not found") from None
    except json.JSONDecodeError as e:
        raise DataContractError(
            f"{json_file}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "truncated file?"
        ) from None
    except UnicodeDecodeError as e:
        raise DataContractError(f"{json_file}: not a UTF-8 text file ({e})") from None
    if not isinstance(data, dict):
        _fail(
            json_file, "top level must be a JSON object with 'images', 'annotations', 'categories'"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            _fail(json_file, f"missing or non-list top-level field {key!r}")
    return data


def _convert_annotation(
    ann: Dict[str, Any], cat_map: Dict[int, int], json_file: str
) -> Dict[str, Any]:
    if ann.get("category_id") not in cat_map:
        _fail(
            json_file,
            f"image {ann.get('image_id')!r}, annotation id {ann.get('id')!r}: "
            f"unknown category_id {ann.get('category_id')!r}",
        )
    out = {
        "id": ann.get("id"),
        "bbox": ann.get("bbox"),
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": cat_map[ann["category_id"]],
        "iscrowd": int(ann.get("iscrowd", 0)),
    }
    if "segmentation" in ann:
        out["segmentation"] = ann["segmentation"]
    kps = ann.get("keypoints")
    if kps is not None:
        # COCO keypoints are pixel indices; Detectron2 (and the contract) use continuous
        # coordinates.
        # Unlabelled points (v = 0) stay at (0, 0).
        out["keypoints"] = [
            v + 0.5 if i % 3 != 2 and kps[3 * (i // 3) + 2] > 0 else v for i, v in enumerate(kps)
        ]
    parts = ann.get("parts")
    if parts is not None:
        if not isinstance(parts, dict):
            out["parts"] = parts  # validate_record names the problem
        else:
            try:
                out["parts"] = {int(k): v for k, v in parts.items()}
            except ValueError:
                out["parts"] = parts
    if "parts_complete" in ann:
        out["parts_complete"] = ann["parts_complete"]
    return out


def load_bodyparts_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    *,
    on_error: str = "raise",
    check_files: bool = True,
) -> List[Dict[str, Any]]:
    """Load a generic-format file into contract records.

    Args:
        json_file: the COCO-style JSON file.
        image_root: directory that ``file_name``, ``sem_seg_file_name`` and ``pan_seg_file_name``
            are relative to.
        dataset_name: if given, its metadata must agree with the file's taxonomy.
        on_error: "raise" (default): the first problem raises DataContractError; "skip": each bad
            image is logged and skipped, and the number skipped is logged at the end.
        check_files: check that every referenced image file exists.

    Returns:
        list of records (see :mod:`bodyparts.data.contract`).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    data = _read_json(json_file)
    info = data.get("info") or {}
    part_taxonomy = info.get("part_taxonomy")
    if part_taxonomy is None:
        _fail(json_file, "info.part_taxonomy is missing (name of the part taxonomy of 'parts')")
    try:
        parts = get_part_taxonomy(part_taxonomy)
    except ValueError as e:
        _fail(json_file, f"info.part_taxonomy: {e}")
    if dataset_name is not None:
        meta_tax = MetadataCatalog.get(dataset_name).get("part_taxonomy", part_taxonomy)
        if meta_tax != part_taxonomy:
            _fail(
                json_file,
                f"part taxonomy {part_taxonomy!r} differs from {dataset_name}'s {meta_tax!r}",
            )
    persons = [c for c in data["categories"] if c.get("name") == "person"]
    if len(persons) != 1:
        _fail(json_file, "categories must contain exactly one category named 'person'")
    cat_map = {persons[0]["id"]: 0}
    if dataset_name is not None:
        expected = MetadataCatalog.get(dataset_name).get(
            "thing_dataset_id_to_contiguous_id", cat_map
        )
        if expected != cat_map:
            _fail(
                json_file,
                f"person category id {persons[0]['id']} differs from {dataset_name}'s metadata "
                f"{expected}",
            )
    keypoint_names = persons[0].get("keypoints") or None

    anns_by_image: Dict[Any, List[Dict[str, Any]]] = {}
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann:
            _fail(json_file, f"annotation {str(ann)[:80]} has no image_id")
        anns_by_image.setdefault(ann["image_id"], []).append(ann)
    for k, img in enumerate(data["images"]):
        if not isinstance(img, dict):
            _fail(json_file, f"images[{k}] must be an object, got {str(img)[:80]}")
    image_ids = [img.get("id") for img in data["images"]]
    if len(set(image_ids)) != len(image_ids):
        _fail(json_file, "duplicate image ids in 'images'")
    unknown = set(anns_by_image) - set(image_ids)
    if unknown:
        _fail(
            json_file,
            f"annotations refer to image ids not in 'images': {sorted(map(str, unknown))[:5]}",
        )

    records, skipped = [], 0
    for img in data["images"]:
        try:
            rec = _image_record(
                img, anns_by_image.get(img.get("id"), []), cat_map, image_root, json_file
            )
            rec["part_taxonomy"] = part_taxonomy
            validate_record(
                rec,
                source=json_file,
                num_classes=len(cat_map),
                num_parts=parts.num_parts,
                keypoint_names=keypoint_names,
            )
            if check_files and not os.path.isfile(rec["file_name"]):
                raise DataContractError(
                    f"{json_file}: image {rec['image_id']!r}: image file {rec['file_name']} "
                    "not found"
                )
        except DataContractError as e:
            if on_error == "raise":
                raise
            skipped += 1
            logger.warning("skipping: %s", e)
            continue
        records.append(rec)
    if skipped:
        logger.warning(
            "%s: skipped %d of %d images with problems", json_file, skipped, len(data["images"])
        )
    logger.info(
        "Loaded %d images, %d persons from %s",
        len(records),
        sum(len(r["annotations"]) for r in records),
        json_file,
    )
    return records


def _image_record(img, anns, cat_map, image_root, json_file) -> Dict[str, Any]:
    for key in ("id", "file_name", "height", "width"):
        if key not in img:
            _fail(json_file, f"image {img.get('id', '?')!r}: missing field {key!r}")
    rec = {
        "file_name": os.path.join(image_root, img["file_name"]),
        "height": img["height"],
        "width": img["width"],
        "image_id": img["id"],
        "annotations": [_convert_annotation(a, cat_map, json_file) for a in anns],
    }
    if img.get("sem_seg_file_name"):
        rec["sem_seg_file_name"] = os.path.join(image_root, img["sem_seg_file_name"])
    if img.get("pan_seg_file_name"):
        rec["pan_seg_file_name"] = os.path.join(image_root, img["pan_seg_file_name"])
        rec["segments_info"] = img.get("segments_info", [])
    return rec


def save_bodyparts_json(
    records: Sequence[Dict[str, Any]],
    json_file: str,
    image_root: str,
    *,
    part_taxonomy: str,
    keypoint_taxonomy: Optional[str] = "coco17",
    extra_info: Optional[Dict[str, Any]] = None,
) -> None:
    """Write contract records as a generic-format file (the inverse of :func:`load_bodyparts_json`).

    Paths are stored relative to ``image_root``. The file is written atomically.
    """
    kps = get_keypoint_taxonomy(keypoint_taxonomy) if keypoint_taxonomy else None
    category = {"id": _PERSON_CATEGORY_ID, "name": "person", "supercategory": "person"}
    if kps is not None:
        index = {n: i + 1 for i, n in enumerate(kps.names)}
        category.update(
            keypoints=list(kps.names), skeleton=[[index[a], index[b]] for a, b in kps.skeleton]
        )
    images, annotations = [], []
    for rec in records:
        img = {
            "id": rec["image_id"],
            "file_name": os.path.relpath(rec["file_name"], image_root),
            "height": rec["height"],
            "width": rec["width"],
        }
        for key in ("sem_seg_file_name", "pan_seg_file_name"):
            if key in rec:
                img[key] = os.path.relpath(rec[key], image_root)
        if "segments_info" in rec:
            img["segments_info"] = rec["segments_info"]
        images.append(img)
        for ann in rec["annotations"]:
            box = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYWH_ABS)
            out = {
                "id": len(annotations) + 1,
                "image_id": rec["image_id"],
                "category_id": _PERSON_CATEGORY_ID,
                "bbox": [float(b) for b in box],
                "area": float(ann.get("area", box[2] * box[3])),
                "iscrowd": int(ann.get("iscrowd", 0)),
            }
            if "segmentation" in ann:
                out["segmentation"] = ann["segmentation"]
            if ann.get("keypoints") is not None:
                k = ann["keypoints"]
                out["keypoints"] = [
                    (round(float(v) - 0.5, 2) if k[3 * (i // 3) + 2] > 0 else 0)
                    if i % 3 != 2
                    else int(v)
                    for i, v in enumerate(k)
                ]
                out["num_keypoints"] = sum(1 for v in k[2::3] if v > 0)
            if ann.get("parts") is not None:
                out["parts"] = {str(int(lab)): rle for lab, rle in ann["parts"].items()}
            if "parts_complete" in ann:
                out["parts_complete"] = ann["parts_complete"]
            annotations.append(out)
    info = {
        "bodyparts_format": FORMAT_VERSION,
        "part_taxonomy": part_taxonomy,
        **(extra_info or {}),
    }
    if kps is not None:
        info["keypoint_taxonomy"] = kps.name
    payload = {"info": info, "images": images, "annotations": annotations, "categories": [category]}
    tmp = json_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    os.replace(tmp, json_file)


def register_bodyparts_json(
    name: str,
    json_file: str,
    image_root: str,
    *,
    part_taxonomy: str,
    keypoint_taxonomy: Optional[str] = "coco17",
    person_category_id: int = _PERSON_CATEGORY_ID,
    on_error: str = "raise",
    **extra_metadata,
) -> None:
    """Register a generic-format dataset under ``name`` (lazy: the file is read on first use).

    ``person_category_id`` is the id of the "person" category in the file; COCOEvaluator reads the
    file directly as COCO ground truth (``json_file`` metadata) and maps that id to class 0.
    """
    DatasetCatalog.register(
        name, lambda: load_bodyparts_json(json_file, image_root, name, on_error=on_error)
    )
    MetadataCatalog.get(name).set(
        json_file=json_file,
        image_root=image_root,
        thing_dataset_id_to_contiguous_id={person_category_id: 0},
        **bodyparts_metadata(part_taxonomy, keypoint_taxonomy),
        **extra_metadata,
    )


def register_bodyparts_dataset(
    name: str,
    records_fn: Callable[[], List[Dict[str, Any]]],
    *,
    part_taxonomy: str,
    keypoint_taxonomy: Optional[str] = None,
    evaluator_type: str = "bodyparts",
    validate: bool = True,
    **extra_metadata,
) -> None:
    """Register a split whose records a function of yours produces, in a registered taxonomy.

    The records follow the data contract (:mod:`bodyparts.data.contract`); ``records_fn()`` runs
    lazily, on the first ``DatasetCatalog.get(name)``. Records without ``part_taxonomy`` get
    ``part_taxonomy`` (and, when they carry keypoints, ``keypoint_taxonomy``); the metadata is
    :func:`bodyparts_metadata` (part names, colours, flip pairs, keypoint tables), so the Trainer
    picks the bodyparts mapper and ``evaluator_type``'s evaluators
    (:data:`bodyparts.engine.EVALUATORS`). Register the taxonomies first
    (:func:`bodyparts.taxonomy.register_part_taxonomy`).

    Args:
        name: the split's name in ``DatasetCatalog`` (``DATASETS.TRAIN`` / ``DATASETS.TEST``).
        records_fn: ``() -> [record, ...]``.
        part_taxonomy: registered part taxonomy of the records' ``parts`` labels.
        keypoint_taxonomy: registered keypoint taxonomy of the records' ``keypoints``; None: the
            records have no keypoints.
        evaluator_type: key of :data:`bodyparts.engine.EVALUATORS` ("bodyparts": COCO AP and the
            parsing metrics).
        validate: check every record with :func:`bodyparts.data.contract.validate_record` when
            loaded (a :class:`DataContractError` naming the split, the image and the field).
        extra_metadata: more ``MetadataCatalog`` entries (e.g. ``image_root``).

    Raises:
        TaxonomyError: an unregistered taxonomy (at once, not at the first load).
        ValueError: ``name`` is registered already.
    """
    parts = get_part_taxonomy(part_taxonomy)
    kps = get_keypoint_taxonomy(keypoint_taxonomy) if keypoint_taxonomy else None
    if name in DatasetCatalog.list():
        raise ValueError(
            f"dataset {name!r} is registered already; DatasetCatalog.remove({name!r}) and "
            f"MetadataCatalog.remove({name!r}) first to replace it"
        )
    meta = {
        **bodyparts_metadata(parts.name, kps.name if kps else None),
        "evaluator_type": evaluator_type,
    }
    meta.update(extra_metadata)
    num_classes = len(meta["thing_classes"])

    def load() -> List[Dict[str, Any]]:
        records = records_fn()
        if not isinstance(records, list):
            raise DataContractError(
                f"dataset {name!r}: records_fn must return a list of records, "
                f"got {type(records).__name__}"
            )
        for rec in records:
            _complete_record(rec, name, parts.name, kps.name if kps else None)
            if validate:
                validate_record(
                    rec,
                    source=f"dataset {name!r}",
                    num_classes=num_classes,
                    num_parts=parts.num_parts,
                    keypoint_names=list(kps.names) if kps else None,
                )
        return records

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**meta)


def _complete_record(
    rec: Dict[str, Any], name: str, part_taxonomy: str, keypoint_taxonomy: Optional[str]
) -> None:
    """Fill in the dataset's taxonomies; a record that names other ones, or carries keypoints in a
    dataset without a keypoint taxonomy, is a DataContractError."""
    if not isinstance(rec, dict):
        raise DataContractError(
            f"dataset {name!r}: a record must be a dict, got {type(rec).__name__}"
        )
    where = f"dataset {name!r}, image {rec.get('image_id')!r}"
    if rec.setdefault("part_taxonomy", part_taxonomy) != part_taxonomy:
        raise DataContractError(
            f"{where}: part_taxonomy {rec['part_taxonomy']!r} differs from the dataset's "
            f"{part_taxonomy!r}"
        )
    has_keypoints = any(
        isinstance(a, dict) and a.get("keypoints") is not None for a in rec.get("annotations", [])
    )
    if not has_keypoints:
        return
    if keypoint_taxonomy is None:
        raise DataContractError(
            f"{where}: persons carry keypoints, but the dataset was registered without "
            "keypoint_taxonomy"
        )
    if rec.setdefault("keypoint_taxonomy", keypoint_taxonomy) != keypoint_taxonomy:
        raise DataContractError(
            f"{where}: keypoint_taxonomy {rec['keypoint_taxonomy']!r} differs from the dataset's "
            f"{keypoint_taxonomy!r}"
        )

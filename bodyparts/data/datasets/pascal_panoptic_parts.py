"""Pascal-Panoptic-Parts (PPP) ground truth, read from its native ``.tif`` label images.

Native format (datasets/pascal_panoptic_parts.md): a single-channel integer TIFF per VOC2010 image,
``<id>.tif``, whose pixels hold *universal ids* (uids) of up to 7 decimal digits:

* 1-2 digits ``sid`` (semantic class only; 0 = unlabeled),
* 4-5 digits ``sid * 1000 + iid`` (instance ``iid`` of a thing class),
* 6-7 digits ``sid * 100000 + iid * 100 + pid`` (part ``pid`` of that instance; ``pid = 0`` is
  "part void": the annotators did not label the part there).

3-digit uids are invalid. Classes, which of them have instances (things) and parts, and the
"countable" part ids of some classes (car wheels 20..29, ...) come from the ``panoptic_parts``
package's dataset spec, and the evaluated classes from its evaluation spec (default: the CVPR-21
59-class / 57-part spec), both read at run time from the installed package
(:func:`load_ppp_classes`; the package's Python modules are not imported: up to 2.0rc6 they refuse
to import on Python >= 3.10). :func:`decode_ppp_uids` is the package's ``decode_uids`` arithmetic.

Format decisions (what a record holds):

* One record per label file (images without persons included): ``file_name`` (the VOC JPEG),
  ``height``, ``width``, ``image_id`` (the VOC id, str), ``part_taxonomy="pascal_part24"`` (PPP's
  person pids 1..24 are PASCAL-Part's ``part2ind`` indices, equal to the labels of that taxonomy),
  ``ppp_file_name`` (the ``.tif``, for the official toolkit), ``pan_seg_file_name`` and
  ``segments_info``.
* Thing classes (``thing_classes``): the evaluated classes with instances, ``person`` first (= 0),
  then the others in sid order. Stuff classes (``stuff_classes``): ``"things"`` then the evaluated
  stuff classes in sid order, so stuff ``category_id`` starts at 1 (Detectron2's *separated*
  panoptic convention). ``thing_scene_ids`` / ``stuff_scene_ids`` are the PPP sids, so the
  3-channel part-aware prediction format uses the dataset's own ids.
* A thing instance is a (sid, iid) pair of a 4-7 digit uid, ``iid = 0`` included (as the
  package's evaluation treats it). One annotation per instance: tight box, silhouette RLE, area,
  ``category_id``. Persons get ``parts`` ``{pid: RLE}`` (pixels with a 4-5 digit uid or
  ``pid = 0`` are unlabelled), ``None`` when no pixel of the person has a pid > 0, otherwise
  ``parts_complete`` = labelled pixels >= :data:`~.pascal_part.COMPLETE_COVERAGE` of the
  silhouette (PASCAL-Part's rule). Other things have ``parts`` None (their part ids are checked,
  not kept). Thing pixels with a 1-2 digit uid (no instance) form one crowd annotation
  (``iscrowd`` 1) per class. Annotations are ordered by class, then iid, the crowd region last.
* ``pan_seg_file_name``: a COCO-panoptic RGB PNG (id = R + 256 G + 256^2 B) written into the record
  cache directory (one per label file, rewritten whenever the ``.tif`` changes or the PNG is
  missing, atomic writes). Segment ids: ``sid * 1000 + iid`` for instances, ``sid`` for crowd
  regions and stuff; 0 for unlabeled pixels (uid 0), void (-1) and classes the eval spec ignores.
  ``segments_info`` lists ``{id, category_id, iscrowd, isthing}`` in annotation order, then stuff.
* Errors raise :class:`~.native.DatasetFormatError` naming the file: missing, unreadable or
  not-a-TIFF label files, samples of a type that cannot hold 7-digit uids (8/16-bit, colour),
  a size different from the JPEG's, invalid uids (3 digits, more than 7, negative other than -1),
  unknown sids, instance ids of stuff classes, pids out of range for the class; a missing JPEG.
"""

import functools
import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ...taxonomy import PASCAL_PART24
from ..contract import person_annotation, validate_record
from .generic import bodyparts_metadata
from .native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    cache_dir,
    image_size,
    load_items_cached,
    register_native_split,
)
from .pascal_part import COMPLETE_COVERAGE, read_id_list
from .synthetic import datasets_root

__all__ = [
    "PART_TAXONOMY",
    "PERSON_SID",
    "DEFAULT_EVAL_SPEC",
    "PPPClasses",
    "load_ppp_classes",
    "panoptic_parts_file",
    "decode_ppp_uids",
    "check_uids",
    "read_ppp_label",
    "ppp_metadata",
    "load_pascal_panoptic_parts",
    "pascal_panoptic_parts_paths",
    "register_all_pascal_panoptic_parts",
]

logger = logging.getLogger(__name__)

PART_TAXONOMY = "pascal_part24"
PERSON_SID = 15  # PPP sid of "person" (= VOC class index)
VOID_UID = -1  # accepted as "no information" (panoptic id 0)
MAX_UID = 9_999_999
DEFAULT_EVAL_SPEC = "specs/eval_specs/ppq_ppp_59_57_cvpr21_default_evalspec.yaml"
_SPLIT_FOLDERS = {"train": ("training", "train"), "val": ("validation", "val")}
_VERSION = f"pascal_panoptic_parts-1|{COMPLETE_COVERAGE}"


# ---- the package's spec files


def panoptic_parts_file(relative: str) -> str:
    """Path of a file inside the installed ``panoptic_parts`` package (without importing it)."""
    spec = importlib.util.find_spec("panoptic_parts")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the panoptic-parts package is not installed (pip install panoptic-parts)"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], relative)


def _read_yaml(path: str) -> Dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader)
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not a readable YAML spec ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a spec must be a YAML mapping")
    return data


@dataclass(frozen=True)
class PPPClasses:
    """Scene classes of a panoptic-parts dataset spec and evaluation spec.

    Attributes:
        names: scene class name by sid (index 0 = "UNLABELED").
        colors: RGB by sid.
        instance_sids: sids of the classes with instances (things) in the dataset.
        max_pid: by sid, the largest pid the label files may hold (countable part ids included);
            0 = the class has no parts.
        thing_sids: evaluated thing sids in contiguous-id order (person first, then sid order).
        stuff_sids: evaluated stuff sids in sid order (stuff category_id k + 1).
        dataset_spec_file, eval_spec_file: the spec files read.
    """

    names: Tuple[str, ...]
    colors: Tuple[Tuple[int, int, int], ...]
    instance_sids: frozenset
    max_pid: Tuple[int, ...]
    thing_sids: Tuple[int, ...]
    stuff_sids: Tuple[int, ...]
    dataset_spec_file: str
    eval_spec_file: str


@functools.lru_cache(maxsize=8)
def load_ppp_classes(eval_spec_file: Optional[str] = None) -> PPPClasses:
    """Read an evaluation spec and its dataset spec (default: the package's PPP 59/57 CVPR-21 spec).

    A relative ``dataset_spec_path`` in the eval spec is resolved as the package does (relative to
    the folder holding the ``panoptic_parts`` package), else relative to the eval spec's folder.

    Raises:
        ValueError: a spec is unreadable or inconsistent (names the file and the key).
    """
    eval_spec_file = eval_spec_file or panoptic_parts_file(DEFAULT_EVAL_SPEC)
    es = _read_yaml(eval_spec_file)
    rel = es.get("dataset_spec_path")
    if not isinstance(rel, str):
        raise ValueError(f"{eval_spec_file}: missing 'dataset_spec_path'")
    bases = (
        ("",)
        if os.path.isabs(rel)
        else (
            os.path.dirname(os.path.normpath(panoptic_parts_file(""))),
            os.path.dirname(eval_spec_file),
        )
    )
    candidates = [os.path.join(b, rel) for b in bases]
    ds_file = next((c for c in candidates if os.path.isfile(c)), candidates[0])
    ds = _read_yaml(ds_file)
    try:
        parts = dict(ds["scene_class2part_classes"])
        with_instances = list(ds["scene_classes_with_instances"])
        colors = dict(ds["scene_class2color"])
        groupings = dict(ds.get("countable_pids_groupings") or {})
        things, stuff = list(es["eval_sid_things"]), list(es["eval_sid_stuff"])
        sid2eval = dict(es["dataset_sid2eval_sid"])
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"{ds_file} / {eval_spec_file}: missing or malformed spec key {e}"
        ) from None
    names = ("UNLABELED",) + tuple(str(n) for n in parts)
    max_pid = [0] + [len(p or ()) for p in parts.values()]
    for cls, groups in groupings.items():
        sid = names.index(cls)
        max_pid[sid] = max([max_pid[sid]] + [max(v) for v in groups.values()])
    unknown = [n for n in with_instances if n not in names]
    merged = [s for s in things + stuff if sid2eval.get(s) != s]
    if unknown or merged or names[PERSON_SID] != "person" or PERSON_SID not in things:
        raise ValueError(
            f"{ds_file} / {eval_spec_file}: unsupported spec (unknown instance classes {unknown}, "
            f"evaluated sids not mapped to themselves {merged}, or sid {PERSON_SID} is not an "
            "evaluated 'person' class)"
        )
    return PPPClasses(
        names=names,
        colors=tuple(tuple(int(c) for c in colors.get(n, (0, 0, 0))) for n in names),
        instance_sids=frozenset(names.index(n) for n in with_instances),
        max_pid=tuple(max_pid),
        thing_sids=(PERSON_SID,) + tuple(sorted(s for s in things if s != PERSON_SID)),
        stuff_sids=tuple(sorted(stuff)),
        dataset_spec_file=os.path.abspath(ds_file),
        eval_spec_file=os.path.abspath(eval_spec_file),
    )


def ppp_metadata(classes: Optional[PPPClasses] = None) -> Dict[str, Any]:
    """Metadata of a PPP split: ``bodyparts_metadata("pascal_part24", None)`` plus the panoptic
    classes (thing/stuff classes, colors, scene ids, ``thing_dataset_id_to_contiguous_id`` = sid ->
    contiguous id) and the spec files (``ppp_dataset_spec_file``, ``ppp_eval_spec_file``)."""
    c = classes or load_ppp_classes()
    return dict(
        bodyparts_metadata(PART_TAXONOMY, None),
        thing_classes=[c.names[s] for s in c.thing_sids],
        thing_colors=[c.colors[s] for s in c.thing_sids],
        stuff_classes=["things"] + [c.names[s] for s in c.stuff_sids],
        stuff_colors=[(0, 0, 0)] + [c.colors[s] for s in c.stuff_sids],
        thing_scene_ids=list(c.thing_sids),
        stuff_scene_ids=[-1] + list(c.stuff_sids),
        thing_dataset_id_to_contiguous_id={s: k for k, s in enumerate(c.thing_sids)},
        ignore_label=255,
        ppp_dataset_spec_file=c.dataset_spec_file,
        ppp_eval_spec_file=c.eval_spec_file,
    )


# ---- uids


def decode_ppp_uids(uids: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uids -> (sid, iid, pid), the arithmetic of ``panoptic_parts.utils.format.decode_uids``.

    Args:
        uids: integer array (any shape) of valid uids (see :func:`check_uids`; no -1).
    Returns:
        int32 arrays of the same shape: sid; iid (-1 for 1-2 digit uids); pid (-1 for uids of up to
        5 digits, 0 = part void).
    """
    u = np.asarray(uids).astype(np.int64)
    padded = np.where(u <= 99, u * 100_000, np.where(u <= 99_999, u * 100, u))
    sid_iid, pid = np.divmod(padded, 100)
    sid, iid = np.divmod(sid_iid, 1000)
    iid = np.where(u <= 99, -1, iid)
    pid = np.where(u <= 99_999, -1, pid)
    return sid.astype(np.int32), iid.astype(np.int32), pid.astype(np.int32)


def _where(uids: np.ndarray, bad: np.ndarray, what: str) -> str:
    rows, cols = np.nonzero(bad)
    values = sorted(set(uids[bad].tolist()))
    more = " ..." if len(values) > 5 else ""
    return (
        f"{len(rows)} pixel(s) with {what} (values {values[:5]}{more}; "
        f"first at row {rows[0]}, column {cols[0]})"
    )


def check_uids(uids: np.ndarray, path: str) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` if an (H, W) uid map holds invalid uids:
    3-digit uids, more than 7 digits, or negative values other than -1 (void)."""
    for bad, what in (
        ((uids >= 100) & (uids <= 999), "invalid 3-digit uids (uids have 1-2, 4-5 or 6-7 digits)"),
        (uids > MAX_UID, "uids of more than 7 digits"),
        (uids < VOID_UID, f"negative uids (only {VOID_UID} = void is accepted)"),
    ):
        if bad.any():
            raise DatasetFormatError(path, _where(uids, bad, what))


def read_ppp_label(path: str) -> np.ndarray:
    """Read a PPP ``.tif`` label image -> int32 (H, W) uids (checked with :func:`check_uids`).

    Raises:
        DatasetFormatError: naming ``path``: missing, unreadable, not a TIFF, more than one channel,
            samples that cannot hold 7-digit uids (8- or 16-bit), non-integer float samples,
            invalid uids.
    """
    from PIL import Image

    if not os.path.isfile(path):
        raise DatasetFormatError(path, "label file not found")
    try:
        with Image.open(path) as im:
            fmt, mode = im.format, im.mode
            if fmt == "TIFF":
                arr = np.asarray(im)
    except Exception as e:  # PIL raises many types for truncated or foreign files
        raise DatasetFormatError(
            path, f"not a readable TIFF image ({type(e).__name__}: {e})"
        ) from None
    if fmt != "TIFF":
        raise DatasetFormatError(path, f"not a TIFF file (it is a {fmt} image)")
    if arr.ndim != 2:
        raise DatasetFormatError(
            path,
            f"expected a single-channel label image, got {arr.shape[-1]} channels (mode {mode})",
        )
    if arr.dtype.kind not in "iuf" or arr.dtype.itemsize < 4:
        raise DatasetFormatError(
            path,
            f"samples are {arr.dtype} (Pillow mode {mode}), which cannot hold the up to 7-digit "
            "uids; expected 32-bit integer samples",
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise DatasetFormatError(path, f"float samples ({arr.dtype}) that are not integer uids")
    wide = arr.astype(np.int64)
    check_uids(wide, path)
    return wide.astype(np.int32)


# ---- one label file -> one record


def _pan_png_path(label_dir: str, image_id: str) -> str:
    digest = hashlib.sha1(os.path.abspath(label_dir).encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir(), "pascal_panoptic_parts_png", digest, f"{image_id}.png")


def _write_png_atomic(path: str, ids: np.ndarray) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    tmp = f"{path}.{os.getpid()}.tmp.png"
    Image.fromarray(rgb, "RGB").save(tmp)
    os.replace(tmp, path)


def _uid_table(values: np.ndarray, path: str, classes: PPPClasses, uids: np.ndarray):
    """Per distinct uid: panoptic segment id and person part label; checks sids and pids."""
    sids, iids, pids = decode_ppp_uids(np.maximum(values, 0))
    contiguous = {s: k for k, s in enumerate(classes.thing_sids)}
    contiguous.update({s: k + 1 for k, s in enumerate(classes.stuff_sids)})
    seg_ids = np.zeros(len(values), dtype=np.int64)
    for k, (uid, sid, iid, pid) in enumerate(
        zip(values.tolist(), sids.tolist(), iids.tolist(), pids.tolist())
    ):
        if uid <= 0:
            continue
        problem = None
        if sid >= len(classes.names):
            problem = (
                f"unknown scene id {sid} (the dataset spec has sids 0..{len(classes.names) - 1})"
            )
        elif sid not in classes.instance_sids and iid > 0:
            problem = f"instance id {iid} of the stuff class {classes.names[sid]!r} (sid {sid})"
        elif pid > classes.max_pid[sid]:
            allowed = f"part ids 1..{classes.max_pid[sid]}" if classes.max_pid[sid] else "no parts"
            problem = (
                f"part id {pid} out of range for {classes.names[sid]!r} (sid {sid}, {allowed})"
            )
        if problem:
            raise DatasetFormatError(path, _where(uids, uids == uid, problem))
        if sid in contiguous:  # classes the eval spec ignores stay 0 (void)
            seg_ids[k] = sid * 1000 + iid if sid in classes.instance_sids and iid >= 0 else sid
    part_labels = np.where((sids == PERSON_SID) & (pids > 0), pids, 0).astype(np.uint8)
    return seg_ids, part_labels, contiguous


def _thing_annotation(
    mask: np.ndarray, category_id: int, iscrowd: int, labels: Optional[np.ndarray]
):
    ann = person_annotation(mask, None if labels is None else np.asfortranarray(labels))
    ann.update(category_id=category_id, iscrowd=iscrowd)
    if labels is not None:
        if not ann["parts"]:
            ann["parts"] = None
        else:
            ann["parts_complete"] = bool(
                np.count_nonzero(labels) >= COMPLETE_COVERAGE * ann["area"]
            )
    return ann


def _convert_item(item: LoadItem, classes: PPPClasses, label_dir: str) -> List[Dict[str, Any]]:
    """One ``.tif`` (+ its JPEG) -> [record]; writes the record's panoptic PNG."""
    tif_path, image_path = item.sources
    uids = read_ppp_label(tif_path)
    shape = image_size(image_path, "image file not found")
    if uids.shape != shape:
        raise DatasetFormatError(
            tif_path,
            f"label image is {uids.shape[0]}x{uids.shape[1]} (HxW) but the image {image_path} is "
            f"{shape[0]}x{shape[1]}",
        )
    values, inverse = np.unique(uids, return_inverse=True)
    seg_ids, part_of_uid, contiguous = _uid_table(values, tif_path, classes, uids)
    inverse = inverse.reshape(uids.shape)
    pan = seg_ids[inverse]
    part_map = part_of_uid[inverse]
    present = set(np.unique(seg_ids[seg_ids > 0]).tolist())
    things = sorted(
        (s for s in present if s >= 1000 or s in classes.instance_sids),
        key=lambda s: (contiguous[s // 1000 if s >= 1000 else s], s < 1000, s),
    )
    annotations, segments = [], []
    for seg in things:
        sid, crowd = (seg // 1000, 0) if seg >= 1000 else (seg, 1)
        mask = pan == seg
        labels = np.where(mask, part_map, 0) if sid == PERSON_SID and not crowd else None
        annotations.append(_thing_annotation(mask, contiguous[sid], crowd, labels))
        segments.append(
            {"id": seg, "category_id": contiguous[sid], "iscrowd": crowd, "isthing": True}
        )
    for seg in sorted(present - set(things), key=lambda s: contiguous[s]):
        segments.append({"id": seg, "category_id": contiguous[seg], "iscrowd": 0, "isthing": False})
    png_path = _pan_png_path(label_dir, item.key)
    _write_png_atomic(png_path, pan)
    record = {
        "file_name": image_path,
        "height": shape[0],
        "width": shape[1],
        "image_id": item.key,
        "part_taxonomy": PART_TAXONOMY,
        "annotations": annotations,
        "pan_seg_file_name": png_path,
        "segments_info": segments,
        "ppp_file_name": tif_path,
    }
    validate_record(
        record,
        source=tif_path,
        num_classes=len(classes.thing_sids),
        num_parts=PASCAL_PART24.num_parts,
    )
    return [record]


# ---- public loader


def load_pascal_panoptic_parts(
    label_dir: str,
    image_dir: str,
    image_ids: Optional[Sequence[str]] = None,
    *,
    classes: Optional[PPPClasses] = None,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load PPP label files as contract records with panoptic ground truth (module docstring).

    Args:
        label_dir: folder of ``<id>.tif`` label images.
        image_dir: folder of ``<id>.jpg`` images (VOC2010 ``JPEGImages``).
        image_ids: ids to load, in this order; None = every ``*.tif`` in ``label_dir``, sorted.
            An id without a ``.tif`` is an error (or a skip with ``on_error="skip"``).
        classes: the scene classes (default :func:`load_ppp_classes`), see :func:`ppp_metadata`.
        on_error: "raise" or "skip" (bad files are logged, skipped and counted).
        use_cache: reuse the per-file record cache (:func:`~.native.load_items_cached`). The
            panoptic PNGs are written to the cache directory in either case.
        report: filled with counts (items, records, parsed, cached, skipped) and time.

    Returns:
        one record per label file (see the module docstring).
    """
    classes = classes or load_ppp_classes()
    if image_ids is None:
        if not os.path.isdir(label_dir):
            raise DatasetFormatError(label_dir, "label directory not found")
        ids = sorted(f[: -len(".tif")] for f in os.listdir(label_dir) if f.endswith(".tif"))
    else:
        ids = [str(i) for i in image_ids]
    items = [
        LoadItem(i, (os.path.join(label_dir, f"{i}.tif"), os.path.join(image_dir, f"{i}.jpg")))
        for i in ids
    ]
    ids_digest = (
        "all" if image_ids is None else hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()
    )
    cache_key = "|".join(
        (os.path.abspath(label_dir), os.path.abspath(image_dir), ids_digest, repr(classes))
    )
    convert = functools.partial(_convert_item, classes=classes, label_dir=label_dir)
    records = load_items_cached(
        "pascal_panoptic_parts",
        cache_key,
        _VERSION,
        items,
        convert,
        on_error=on_error,
        use_cache=use_cache,
        desc=f"pascal_panoptic_parts {label_dir}",
        report=report,
    )
    by_key = {item.key: item for item in items}
    missing = [r for r in records if not os.path.isfile(r["pan_seg_file_name"])]
    for rec in missing:  # the cache knew the record, but its PNG was deleted: write it again
        convert(by_key[rec["image_id"]])
    if missing:
        logger.info("pascal_panoptic_parts: rewrote %d missing panoptic PNG(s)", len(missing))
    return records


# ---- registration


def pascal_panoptic_parts_paths(root: str) -> Dict[str, str]:
    """The expected files under the datasets root (see ``datasets/README.md``)."""
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    return {
        "label_root": os.path.join(root, "pascal_panoptic_parts", "labels"),
        "image_root": os.path.join(voc, "JPEGImages"),
        "voc_main": os.path.join(voc, "ImageSets", "Main"),
    }


def _load_split(root: str, split: str, on_error: str = "raise") -> List[Dict[str, Any]]:
    """``labels/<training|train or validation|val>/*.tif`` if such a folder exists, else the
    ``labels/*.tif`` files listed in VOC2010 ``ImageSets/Main/<split>.txt``."""
    paths = pascal_panoptic_parts_paths(root)
    label_root, image_root = paths["label_root"], paths["image_root"]
    for folder in _SPLIT_FOLDERS[split]:
        label_dir = os.path.join(label_root, folder)
        if os.path.isdir(label_dir):
            return load_pascal_panoptic_parts(label_dir, image_root, on_error=on_error)
    split_file = os.path.join(paths["voc_main"], f"{split}.txt")
    if not os.path.isdir(label_root) or not os.path.isfile(split_file):
        raise DatasetFormatError(
            label_root,
            f"no split folder labels/{' or labels/'.join(_SPLIT_FOLDERS[split])} and no flat "
            f"labels/ folder with the split list {split_file}",
        )
    labelled = {f[: -len(".tif")] for f in os.listdir(label_root) if f.endswith(".tif")}
    ids = [i for i in read_id_list(split_file) if i in labelled]
    return load_pascal_panoptic_parts(label_root, image_root, ids, on_error=on_error)


def register_all_pascal_panoptic_parts(root: Optional[str] = None) -> List[str]:
    """Register ``pascal_panoptic_parts_{train,val}`` under ``root`` (lazy).

    Args:
        root: datasets root; None = ``$DETECTRON2_DATASETS`` (default ``./datasets``).
    Returns:
        the registered names.
    """
    root = datasets_root() if root is None else root
    paths = pascal_panoptic_parts_paths(root)
    base = dict(
        ppp_metadata(),
        dataset_root=root,
        label_root=paths["label_root"],
        image_root=paths["image_root"],
    )
    names = []
    for split in ("train", "val"):
        name = f"pascal_panoptic_parts_{split}"
        register_native_split(
            name, functools.partial(_load_split, root, split), dict(base, split=split)
        )
        names.append(name)
    return names

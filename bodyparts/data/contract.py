"""The bodyparts data contract: the one in-memory record format every loader produces.

A record is a Detectron2 dataset dict (one per image)::

    {
      "file_name": str,            # path of the image file
      "height": int, "width": int, # image size in pixels
      "image_id": int | str,       # unique within the split
      "part_taxonomy": str,        # name in bodyparts.taxonomy.PART_TAXONOMIES of the part labels
                                   # below
      "keypoint_taxonomy": str,    # optional; name in KEYPOINT_TAXONOMIES of the keypoints below
                                   # (default: the model's, BODYPARTS.KEYPOINT_TAXONOMY)
      "annotations": [             # one dict per person
        {
          "bbox": [x, y, w, h],          # floats, absolute pixels
          "bbox_mode": BoxMode.XYWH_ABS, # or XYXY_ABS
          "category_id": 0,              # contiguous id into metadata.thing_classes ("person" = 0)
          "iscrowd": 0,
          "segmentation": RLE | [[x0, y0, x1, y1, ...], ...],  # silhouette (visible person pixels)
          "keypoints": [x0, y0, v0, ...],  # optional; K*3 floats, continuous image coords
                                           # (pixel (i, j) covers [j, j+1) x [i, i+1)), v in {0,1,2}
          "parts": {label: RLE, ...},      # optional; per part label (1..num_parts of
                                           # part_taxonomy) the person's pixels of that part;
                                           # absent/None = no part annotation for this person (no
                                           # part loss)
          "parts_complete": bool,          # optional, default True; False = some parts unlabelled
        }, ...
      ],
      "sem_seg_file_name": str,    # optional: image-level part map PNG (uint8, taxonomy labels,
                                   # 255 ignore)
      "pan_seg_file_name": str,    # optional: COCO-panoptic RGB PNG (id = R + 256 G + 256^2 B)
      "segments_info": [...],      # optional, with pan_seg_file_name: {id, category_id, iscrowd,
                                   # isthing}; things: category_id into metadata.thing_classes;
                                   # stuff: into metadata.stuff_classes, whose entry 0 is "things"
                                   # (Detectron2's separated panoptic convention), so stuff ids
                                   # start at 1
    }

RLE is COCO's compressed RLE ``{"size": [height, width], "counts": str}`` (pycocotools).
:func:`validate_record` checks a record and raises :class:`DataContractError` naming the source
file, the image, the annotation and the field.
"""

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import BoxMode

from ..taxonomy import uint8_lut
from .errors import DataContractError
from .image_io import read_label_map

__all__ = [
    "DataContractError",
    "validate_record",
    "encode_mask",
    "decode_rle",
    "as_pycoco_rle",
    "part_label_map",
    "part_label_crop",
    "rle_counts",
    "silhouette_mask",
    "image_part_map",
    "mask_box",
    "person_annotation",
    "PART_IGNORE",
    "PERSON_CATEGORY",
    "is_person",
]

PART_IGNORE = 255  # part label of pixels without part annotation
PERSON_CATEGORY = 0  # contiguous thing id of "person" in every bodyparts dataset


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """Binary mask (H, W) -> COCO compressed RLE with a JSON-serialisable ``counts`` string."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def as_pycoco_rle(rle: Mapping) -> Dict[str, Any]:
    """Contract RLE (compressed with str or bytes counts, or uncompressed) -> pycocotools RLE."""
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        return mask_util.frPyObjects(dict(rle), *rle["size"])
    return {
        "size": list(rle["size"]),
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


def decode_rle(rle: Mapping) -> np.ndarray:
    """COCO RLE (compressed or uncompressed) -> uint8 mask (H, W)."""
    return mask_util.decode(as_pycoco_rle(rle))


def rle_counts(rles: Sequence[Mapping]) -> List[np.ndarray]:
    """The run lengths of COCO RLEs (``counts`` compressed as str or bytes, or uncompressed
    lists), as int64 arrays: runs of 0s and 1s alternating, 0s first, column-major (pycocotools'
    order). The compressed strings of all ``rles`` are read together in a few numpy passes
    (pycocotools' string format: 6-bit digits, 5 data bits each, little-endian, sign in the last
    digit, counts after the second stored as the difference to the count two before).

    Raises:
        ValueError: a string with a byte outside the format, or ending inside a number.
    """
    out: List[Optional[np.ndarray]] = [None] * len(rles)
    strings, where = [], []
    for i, rle in enumerate(rles):
        counts = rle["counts"]
        if isinstance(counts, (list, tuple, np.ndarray)):
            out[i] = np.asarray(counts, dtype=np.int64).reshape(-1)
        else:
            strings.append(counts.encode("ascii") if isinstance(counts, str) else bytes(counts))
            where.append(i)
    for i, counts in zip(where, _parse_rle_strings(strings)):
        out[i] = counts
    return out


def _parse_rle_strings(strings: List[bytes]) -> List[np.ndarray]:
    """:func:`rle_counts` of compressed strings, all in one pass."""
    lengths = np.array([len(s) for s in strings], dtype=np.int64)
    if not lengths.sum():
        return [np.zeros(0, dtype=np.int64) for _ in strings]
    digit = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - 48
    if digit.min() < 0 or digit.max() > 63:
        raise ValueError("RLE counts: a byte outside COCO's compressed RLE alphabet ('0'..'o')")
    string_end = np.cumsum(lengths)
    last = digit[string_end[lengths > 0] - 1]
    if (last & 0x20).any():
        raise ValueError("RLE counts: the string ends inside a number (truncated)")
    ends = np.flatnonzero((digit & 0x20) == 0)  # the last digit of each number
    starts = np.concatenate([[0], ends[:-1] + 1])
    num_digits = ends - starts + 1
    if num_digits.max() > 12:
        raise ValueError("RLE counts: a number of more than 12 digits")
    position = np.arange(digit.size) - np.repeat(starts, num_digits)
    value = np.add.reduceat((digit & 0x1F) << (5 * position), starts)
    negative = (digit[ends] & 0x10) != 0
    value[negative] -= np.left_shift(np.int64(1), 5 * num_digits[negative])
    # number m (from 0) of its string: from m = 3 on, add the count m - 2 (a running sum over the
    # numbers of one parity of one string, from m = 1 and m = 2)
    string_of = np.searchsorted(string_end, ends, side="right")
    per_string = np.bincount(string_of, minlength=len(strings))
    first = np.cumsum(per_string) - per_string
    m = np.arange(value.size) - first[string_of]
    group = np.where(m >= 1, 2 * string_of + (m & 1), -1)
    order = np.argsort(group, kind="stable")
    grouped, group = value[order], group[order]
    total = np.cumsum(grouped)
    head = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
    offset = np.repeat(total[head] - grouped[head], np.diff(np.append(head, group.size)))
    summed = value.copy()
    chained = group >= 0
    summed[order[chained]] = (total - offset)[chained]
    return np.split(summed, first[1:])


def _check_counts(counts: np.ndarray, height: int, width: int, what: str) -> None:
    if counts.size and (counts.min() < 0 or int(counts.sum()) != height * width):
        raise ValueError(
            f"{what}: RLE run lengths cover {int(counts.sum())} pixels (or are negative), the "
            f"{height}x{width} mask has {height * width}"
        )


def part_label_crop(
    annotation: Mapping, height: int, width: int
) -> Optional[Tuple[np.ndarray, int, int]]:
    """The non-zero rectangle of :func:`part_label_map`: (uint8 (h, w) labels, y0, x0), the map
    being 0 outside it; None when the person has no part pixel. Only the rectangle is written
    (from the RLE runs, without decoding each part to a full-image mask).

    Raises:
        ValueError: naming the part, when its RLE has another size than H x W or its runs do not
            cover it exactly.
    """
    parts = annotation.get("parts") or {}
    labels = [int(label) for label in parts]
    rles = list(parts.values())
    for label, rle in zip(labels, rles):
        if [int(v) for v in rle["size"]] != [height, width]:
            raise ValueError(
                f"part {label}: RLE of size {list(rle['size'])}, the image is [{height}, {width}]"
            )
    run_starts, run_ends, run_labels = [], [], []
    for label, counts in zip(labels, rle_counts(rles)):
        _check_counts(counts, height, width, f"part {label}")
        ends = np.cumsum(counts)[1::2]  # the 1-runs: odd positions
        starts = ends - counts[1::2]
        keep = ends > starts
        run_starts.append(starts[keep])
        run_ends.append(ends[keep])
        run_labels.append(np.full(int(keep.sum()), label, dtype=np.int64))
    if not run_starts or not sum(len(s) for s in run_starts):
        return None
    start, end = np.concatenate(run_starts), np.concatenate(run_ends)
    label = np.concatenate(run_labels)
    order = np.argsort(start, kind="stable")
    start, end, label = start[order], end[order], label[order]
    if (start[1:] < end[:-1]).any():  # overlapping parts (not by contract): later parts win
        return _crop_of(_part_label_map_by_masks(parts, height, width))
    # the runs are column-major: the columns they span, then the rows within
    col0, col1 = start // height, (end - 1) // height
    one_column = col0 == col1
    row0 = np.where(one_column, start % height, 0).min()
    row1 = np.where(one_column, (end - 1) % height, height - 1).max()
    base, stop = int(col0.min()) * height, (int(col1.max()) + 1) * height
    gaps = np.diff(np.concatenate([[base], np.stack([start, end], 1).reshape(-1), [stop]]))
    values = np.zeros(gaps.size, dtype=np.uint8)
    values[1::2] = label
    flat = np.repeat(values, gaps)
    columns = flat.reshape(-1, height).T  # (H, columns spanned)
    return np.ascontiguousarray(columns[row0 : row1 + 1]), int(row0), int(col0.min())


def _crop_of(labels: np.ndarray) -> Optional[Tuple[np.ndarray, int, int]]:
    rows, cols = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
    if rows.size == 0:
        return None
    crop = labels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.ascontiguousarray(crop), int(rows[0]), int(cols[0])


def _part_label_map_by_masks(parts: Mapping, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width), dtype=np.uint8)
    for label, rle in parts.items():  # copyto with a mask view: no index arrays
        np.copyto(out, np.uint8(int(label)), where=decode_rle(rle).view(bool))
    return out


def part_label_map(annotation: Mapping, height: int, width: int) -> np.ndarray:
    """The person's part label map (H, W) uint8: part labels, 0 elsewhere; all PART_IGNORE if the
    person has no part annotation. Parts are disjoint by contract (checked by validate_record;
    where they overlap, the later part wins). Written from :func:`part_label_crop`."""
    if annotation.get("parts") is None:
        return np.full((height, width), PART_IGNORE, dtype=np.uint8)
    out = np.zeros((height, width), dtype=np.uint8)
    crop = part_label_crop(annotation, height, width)
    if crop is not None:
        labels, y0, x0 = crop
        out[y0 : y0 + labels.shape[0], x0 : x0 + labels.shape[1]] = labels
    return out


def silhouette_mask(annotation: Mapping, height: int, width: int) -> np.ndarray:
    """bool (H, W) visible pixels of a person: its segmentation (RLE or polygons), else its box."""
    seg = annotation.get("segmentation")
    if isinstance(seg, list) and seg:
        rle = mask_util.merge(mask_util.frPyObjects(seg, height, width))
        return mask_util.decode(rle).astype(bool)
    if isinstance(seg, Mapping):
        return decode_rle(seg).astype(bool)
    x0, y0, x1, y1 = BoxMode.convert(
        list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS
    )
    out = np.zeros((height, width), dtype=bool)
    out[max(int(y0), 0) : max(math.ceil(y1), 0), max(int(x0), 0) : max(math.ceil(x1), 0)] = True
    return out


def _full_lut(lut: np.ndarray) -> np.ndarray:
    """uint8 (256,) look-up table: ``lut`` for its labels, PART_IGNORE (255) for every other
    value (:func:`bodyparts.taxonomy.uint8_lut`)."""
    return uint8_lut(lut)


def is_person(annotation: Mapping) -> bool:
    """Whether an annotation is a person (``category_id`` 0, the default): the only class with
    parts."""
    return annotation.get("category_id", 0) == PERSON_CATEGORY


def image_part_map(
    annotations: Sequence[Mapping],
    height: int,
    width: int,
    lut: np.ndarray,
    *,
    sem_seg_file: Optional[str] = None,
    ignore_unlabelled: bool = False,
    part_crops: Optional[Mapping[int, Optional[Tuple[np.ndarray, int, int]]]] = None,
) -> np.ndarray:
    """The image-level part map of one record in a target taxonomy (the ground truth of semantic
    part segmentation, shared by the mapper and the evaluator). Only persons (``category_id`` 0)
    count: other thing classes of panoptic datasets (cars, ...) are background here.

    Read from ``sem_seg_file`` (the record's ``sem_seg_file_name``) when given: the dataset's own
    image-level map wins over the person annotations. Otherwise built from the persons: the
    silhouettes of persons without part annotation (``parts`` absent/None), of crowd regions and of
    persons with ``parts_complete: False`` are PART_IGNORE (with ``ignore_unlabelled``, also those
    of the other persons that have a ``segmentation``); then every annotated part pixel of a
    non-crowd person gets its mapped label (later persons over earlier ones). All other pixels are
    background 0.

    Args:
        annotations: the record's person annotations (see module docstring).
        height, width: image size H x W.
        lut: uint8 (C_src,) record taxonomy label -> target label (``taxonomy.mapping_lut``).
        sem_seg_file: optional PNG of uint8 record-taxonomy labels, 255 = ignored.
        ignore_unlabelled: also ignore silhouette pixels that no part covers in complete persons
            (training: such pixels are not taught as background); False counts them as background,
            as benchmark ground truth does.
        part_crops: {annotation index: its :func:`part_label_crop`} already decoded by the
            caller (not decoded again).
    Returns:
        uint8 (H, W) target labels, PART_IGNORE (255) = no ground truth.
    Raises:
        ImageFileError: (a :class:`DataContractError`, also a ValueError) naming the PNG, when it is
            missing, empty, not an image, truncated or corrupt, or not an 8-bit single-channel map
            (:func:`~bodyparts.data.image_io.read_label_map`).
        ValueError: naming the PNG, when its size differs from H x W.
    """
    full = _full_lut(lut)
    if sem_seg_file:
        labels = read_label_map(sem_seg_file, "part map")
        if labels.shape != (height, width):
            raise ValueError(
                f"{sem_seg_file}: part map of size {labels.shape} (rows, columns), the image is "
                f"{(height, width)}"
            )
        return full[labels]
    semantic = np.zeros((height, width), dtype=np.uint8)
    persons = [(k, a) for k, a in enumerate(annotations) if is_person(a)]
    labelled = [a.get("parts") is not None and not a.get("iscrowd", 0) for _, a in persons]
    for (_, ann), has_parts in zip(persons, labelled):
        unlabelled_pixels = ignore_unlabelled and ann.get("segmentation") is not None
        if not has_parts or not ann.get("parts_complete", True) or unlabelled_pixels:
            semantic[silhouette_mask(ann, height, width)] = PART_IGNORE
    for (k, ann), has_parts in zip(persons, labelled):
        if not has_parts:
            continue
        if part_crops is not None and k in part_crops:
            crop = part_crops[k]
        else:
            crop = part_label_crop(ann, height, width)
        if crop is not None:
            labels, y0, x0 = crop
            window = semantic[y0 : y0 + labels.shape[0], x0 : x0 + labels.shape[1]]
            np.copyto(window, full[labels], where=labels != 0)
    return semantic


def mask_box(mask: np.ndarray) -> List[float]:
    """Tight ``[x, y, w, h]`` box (XYWH_ABS, pixels) of a non-empty mask (H, W)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def person_annotation(
    silhouette: np.ndarray, part_labels: Optional[np.ndarray] = None
) -> Dict[str, Any]:
    """A person annotation from its silhouette, bool (H, W) non-empty, and optional part labels.

    Returns ``bbox`` (tight, XYWH_ABS), ``bbox_mode``, ``category_id`` 0, ``iscrowd`` 0, ``area``,
    ``segmentation`` (RLE) and ``parts``: None without ``part_labels``, else {label: RLE} of the
    labels > 0 present in ``part_labels`` ((H, W) integer map, 0 = no part; possibly empty).
    """
    ann: Dict[str, Any] = {
        "bbox": mask_box(silhouette),
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "area": float(np.count_nonzero(silhouette)),
        "segmentation": encode_mask(silhouette),
        "parts": None,
    }
    if part_labels is not None:
        counts = np.bincount(np.asarray(part_labels).ravel(order="K").astype(np.int64))
        ann["parts"] = {
            int(k): encode_mask(part_labels == k) for k in np.flatnonzero(counts[1:]) + 1
        }
    return ann


class _Ctx:
    def __init__(self, source: str, record: Mapping):
        self.where = f"{source}: " if source else ""
        self.where += f"image {record.get('image_id', '?')!r} ({record.get('file_name', '?')})"

    def fail(self, msg: str, ann: Optional[int] = None, ann_id: Any = None) -> None:
        at = ""
        if ann is not None:
            at = f", annotation #{ann}" + (f" (id {ann_id})" if ann_id is not None else "")
        raise DataContractError(f"{self.where}{at}: {msg}")


def _is_number(x) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, bool)
        and math.isfinite(x)
    )


def _check_rle(ctx: _Ctx, rle, field: str, h: int, w: int, i: int, aid) -> None:
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        ctx.fail(f"field {field!r} must be an RLE dict with 'size' and 'counts'", i, aid)
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) for v in size)
    ):
        ctx.fail(f"field {field!r}: RLE 'size' must be [height, width], got {size!r}", i, aid)
    if [int(s) for s in size] != [h, w]:
        ctx.fail(
            f"field {field!r}: mask size {list(rle['size'])} differs from the image size "
            f"[{h}, {w}]",
            i,
            aid,
        )


def _check_segmentation(ctx: _Ctx, seg, h: int, w: int, i: int, aid) -> None:
    if isinstance(seg, list):
        if not seg:
            ctx.fail("field 'segmentation': empty polygon list", i, aid)
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                ctx.fail(
                    "field 'segmentation': a polygon needs an even number >= 6 of coordinates",
                    i,
                    aid,
                )
            if not all(_is_number(c) for c in poly):
                ctx.fail("field 'segmentation': polygon coordinates must be finite numbers", i, aid)
    else:
        _check_rle(ctx, seg, "segmentation", h, w, i, aid)


def _check_keypoints(ctx, kps, h, w, num_keypoints, keypoint_names, i, aid) -> None:
    if not isinstance(kps, (list, tuple)) or len(kps) % 3:
        ctx.fail("field 'keypoints' must be a flat list [x0, y0, v0, x1, y1, v1, ...]", i, aid)
    if num_keypoints is not None and len(kps) != 3 * num_keypoints:
        ctx.fail(
            f"field 'keypoints' has {len(kps) // 3} keypoints, the dataset has {num_keypoints}",
            i,
            aid,
        )
    for k in range(len(kps) // 3):
        x, y, v = kps[3 * k : 3 * k + 3]
        name = keypoint_names[k] if keypoint_names and k < len(keypoint_names) else f"#{k}"
        if not (_is_number(x) and _is_number(y)) or v not in (0, 1, 2):
            ctx.fail(
                f"keypoint {name}: expected numbers x, y and visibility in {{0, 1, 2}}, "
                f"got {[x, y, v]}",
                i,
                aid,
            )
        if v > 0 and not (0 <= x <= w and 0 <= y <= h):
            ctx.fail(
                f"keypoint {name} at ({x:.1f}, {y:.1f}) with visibility {v} lies outside the "
                f"{w}x{h} image (a keypoint outside the image must have visibility 0)",
                i,
                aid,
            )


def _check_parts(ctx, parts, h, w, num_parts, i, aid) -> None:
    if not isinstance(parts, Mapping):
        ctx.fail("field 'parts' must be a dict {part label: RLE}", i, aid)
    rles = []
    for label, rle in parts.items():
        try:
            lab = int(label)
        except (TypeError, ValueError):
            ctx.fail(f"field 'parts': key {label!r} is not an integer part label", i, aid)
        if lab < 1 or (num_parts is not None and lab > num_parts):
            ctx.fail(
                f"field 'parts': unknown part label {lab} (taxonomy has labels 1..{num_parts})",
                i,
                aid,
            )
        _check_rle(ctx, rle, f"parts[{lab}]", h, w, i, aid)
        rles.append(as_pycoco_rle(rle))
    if len(rles) > 1:
        union = mask_util.area(mask_util.merge(rles, intersect=False))
        if int(union) != int(sum(mask_util.area(rles))):
            ctx.fail("field 'parts': part masks overlap (a pixel must have one part label)", i, aid)


def validate_record(
    record: Mapping,
    *,
    source: str = "",
    num_classes: Optional[int] = None,
    num_parts: Optional[int] = None,
    keypoint_names: Optional[List[str]] = None,
) -> None:
    """Check one record against the contract.

    Args:
        record: a dataset dict (see module docstring).
        source: the file the record came from, quoted in errors.
        num_classes: number of thing classes (category_id must be below it).
        num_parts: number of parts of the record's taxonomy (part labels must be 1..num_parts).
        keypoint_names: the dataset's keypoint names; their count is the expected K.

    Raises:
        DataContractError: naming the source, image, annotation and field.
    """
    ctx = _Ctx(source, record)
    for key in ("file_name", "height", "width", "image_id"):
        if key not in record:
            ctx.fail(f"missing field {key!r}")
    if not isinstance(record["file_name"], str) or not record["file_name"]:
        ctx.fail("field 'file_name' must be a non-empty path")
    h, w = record["height"], record["width"]
    if not (
        isinstance(h, (int, np.integer)) and isinstance(w, (int, np.integer)) and h > 0 and w > 0
    ):
        ctx.fail(
            f"fields 'height'/'width' must be positive integers, got {h!r} x {w!r} (empty image?)"
        )
    anns = record.get("annotations", [])
    if not isinstance(anns, list):
        ctx.fail("field 'annotations' must be a list")
    num_kp = len(keypoint_names) if keypoint_names else None
    for i, ann in enumerate(anns):
        aid = ann.get("id") if isinstance(ann, Mapping) else None
        if not isinstance(ann, Mapping):
            ctx.fail("annotation must be a dict", i)
        for key in ("bbox", "bbox_mode", "category_id"):
            if key not in ann:
                ctx.fail(f"missing field {key!r}", i, aid)
        box = ann["bbox"]
        if (
            not isinstance(box, (list, tuple))
            or len(box) != 4
            or not all(_is_number(b) for b in box)
        ):
            ctx.fail(f"field 'bbox' must be 4 finite numbers, got {box!r}", i, aid)
        try:
            mode = BoxMode(ann["bbox_mode"])
        except ValueError:
            ctx.fail(f"field 'bbox_mode': {ann['bbox_mode']!r} is not a BoxMode", i, aid)
        if mode not in (BoxMode.XYWH_ABS, BoxMode.XYXY_ABS):
            ctx.fail(f"field 'bbox_mode' must be XYWH_ABS or XYXY_ABS, got {mode.name}", i, aid)
        x0, y0, x1, y1 = BoxMode.convert(list(box), mode, BoxMode.XYXY_ABS)
        if x1 <= x0 or y1 <= y0:
            ctx.fail(f"field 'bbox' {list(box)} has zero or negative width/height", i, aid)
        if x0 < -1 or y0 < -1 or x1 > w + 1 or y1 > h + 1:
            ctx.fail(f"field 'bbox' {list(box)} lies outside the {w}x{h} image", i, aid)
        cat = ann["category_id"]
        if (
            not isinstance(cat, (int, np.integer))
            or cat < 0
            or (num_classes is not None and cat >= num_classes)
        ):
            ctx.fail(
                f"field 'category_id': {cat!r} is not a class index below {num_classes}", i, aid
            )
        if "segmentation" in ann:
            _check_segmentation(ctx, ann["segmentation"], h, w, i, aid)
        if ann.get("keypoints") is not None:
            _check_keypoints(ctx, ann["keypoints"], h, w, num_kp, keypoint_names, i, aid)
        if ann.get("parts") is not None:
            _check_parts(ctx, ann["parts"], h, w, num_parts, i, aid)
        if "parts_complete" in ann and not isinstance(ann["parts_complete"], bool):
            ctx.fail("field 'parts_complete' must be true or false", i, aid)

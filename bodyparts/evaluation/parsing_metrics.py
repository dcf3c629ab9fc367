"""Pure numpy metrics of human parsing as defined in docs/metrics.md (quirks reproduced on purpose).

Shapes and letters:

* ``C``: number of part labels **including background 0**; labels ``>= C`` in a ground-truth map
  (e.g. 255) are ignored, a predicted map must only hold labels ``< C``.
* ``H x W``: image size in pixels; ``P`` predicted persons and ``G`` ground-truth persons of one
  image, each as a full-image label map (part labels inside the person, 0 elsewhere).
* ``N``: predicted persons pooled over a split; ``Q``: predicted part regions pooled over a split
  (one region = the pixels of one part class owned by one predicted person in the image-level
  instance map, where persons are pasted in ascending score order: :func:`part_region_ious`).
* ``T``: IoU thresholds.

Conventions: ``hist[g, p]`` counts pixels with ground truth ``g`` and prediction ``p``. IoU is
``hist[c, c] / (row_c + col_c - hist[c, c])``, NaN when the union is empty, and NaN classes are
skipped by every mean. All matching thresholds are **strict** (``IoU > t``).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "VOL_THRESHOLDS",
    "confusion_matrix",
    "semantic_metrics",
    "label_areas",
    "instance_iou_matrix",
    "instance_iou_from_crops",
    "as_crops",
    "crop_label_areas",
    "PartCrop",
    "nonzero_crop",
    "paste_crops_with_owner",
    "visible_crops",
    "voc_ap",
    "parsing_true_positives",
    "ap_parsing",
    "pcp",
    "ap_region_per_class",
    "ap_region",
    "paste_order",
    "paste_with_owner",
    "paste_part_maps",
    "image_level_map",
    "instance_level_map",
    "part_region_ious",
]

# IoU thresholds whose mean AP is the "vol" variant (AP^p_vol, AP^r_vol): 0.1, 0.2, ..., 0.9.
VOL_THRESHOLDS: Tuple[float, ...] = tuple(k / 10 for k in range(1, 10))


def _nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """nanmean without the all-NaN RuntimeWarning: NaN where every entry is NaN."""
    valid = ~np.isnan(x)
    count = valid.sum(axis=axis)
    total = np.where(valid, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float, NaN where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _nonzero_entries(flat: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero entries of a (K, N) array, row-major: (rows, cols, values as int64)."""
    idx = np.flatnonzero(flat != 0)  # much faster than np.nonzero on a 2-D integer array
    rows, cols = np.divmod(idx, flat.shape[1])
    return rows, cols, flat.reshape(-1)[idx].astype(np.int64)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion counts of one pair of label maps.

    Args:
        gt: integer array of any shape (e.g. (H, W)), ground-truth labels; pixels outside
            ``[0, C)`` (e.g. 255) are ignored.
        pred: integer array of the same shape, predicted labels in ``[0, C)``.
        num_classes: C.
    Returns:
        int64 (C, C) ``hist[g, p]``.
    Raises:
        ValueError: shapes differ, or a prediction at a non-ignored pixel is outside ``[0, C)``.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"confusion_matrix: gt shape {gt.shape} != pred shape {pred.shape}")
    gt = gt.ravel().astype(np.int64)
    pred = pred.ravel().astype(np.int64)
    valid = (gt >= 0) & (gt < num_classes)
    gt, pred = gt[valid], pred[valid]
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"confusion_matrix: predicted labels must lie in [0, {num_classes})")
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def semantic_metrics(hist: np.ndarray) -> Dict[str, object]:
    """Image-level part segmentation metrics of a confusion matrix accumulated over a split.

    Args:
        hist: (C, C) counts ``hist[g, p]``.
    Returns:
        dict with fractions in [0, 1] (NaN where undefined):

        * ``"IoU"``: float (C,) per-class IoU, NaN where the union is empty;
          ``"mIoU"``: nanmean over all C classes, background included.
        * ``"pixel_acc"``: trace / total; ``"mean_acc"``: nanmean_c hist[c, c] / row_c.
        * ``"fwIoU"``: sum_c (row_c / total) IoU_c over classes present in the ground truth.
        * ``"F1"``: float (C,) 2 TP / (2 TP + FP + FN), NaN where the denominator is 0;
          ``"mean_F1"``: its nanmean.
    """
    hist = np.asarray(hist, dtype=np.float64)
    tp = np.diag(hist)
    row = hist.sum(axis=1)  # ground-truth pixels per class (TP + FN)
    col = hist.sum(axis=0)  # predicted pixels per class (TP + FP)
    total = hist.sum()
    iou = _safe_div(tp, row + col - tp)
    f1 = _safe_div(2 * tp, row + col)
    acc = _safe_div(tp, row)
    present = row > 0
    fwiou = float((row[present] / total * iou[present]).sum()) if total > 0 else float("nan")
    return {
        "mIoU": float(_nanmean(iou)),
        "IoU": iou,
        "pixel_acc": float(_safe_div(tp.sum(), total)),
        "mean_acc": float(_nanmean(acc)),
        "fwIoU": fwiou,
        "F1": f1,
        "mean_F1": float(_nanmean(f1)),
    }


def label_areas(label_maps: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel count of every label in every map.

    Args:
        label_maps: integer (K, H, W) maps; labels ``>= C`` are not counted.
        num_classes: C.
    Returns:
        int64 (K, C): ``areas[k, c]`` = pixels of map k with label c.
    """
    k = label_maps.shape[0]
    npix = int(np.prod(label_maps.shape[1:]))
    rows, _, labels = _nonzero_entries(label_maps.reshape(k, npix))
    valid = (labels >= 0) & (labels < num_classes)
    idx = rows[valid] * num_classes + labels[valid]
    areas = np.bincount(idx, minlength=k * num_classes).reshape(k, num_classes)
    areas[:, 0] = npix - np.bincount(rows, minlength=k)
    return areas


def instance_iou_matrix(
    pred_maps: np.ndarray, gt_maps: np.ndarray, num_classes: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Per-instance parsing IoU of every (predicted, ground-truth) person pair of one image.

    ``IoU_c(p, g)`` is the class-c IoU of ``hist(gt_maps[g], pred_maps[p])`` over the **whole
    image** (background included, ground-truth pixels ``>= C`` ignored), and ``mIoU_inst(p, g)`` its
    nanmean over the C classes (classes absent from both maps are NaN and skipped). Computed by
    :func:`instance_iou_from_crops` on each prediction's non-zero rectangle.

    Args:
        pred_maps: integer (P, H, W) predicted person maps, labels in ``[0, C)``.
        gt_maps: integer (G, H, W) ground-truth person maps, labels in ``[0, C)`` or ignored (>= C).
        num_classes: C.
    Returns:
        miou: float64 (P, G) mIoU_inst.
        iou: float64 (P, G, C) per-class IoU, NaN where class c is absent from both maps.
    """
    pred_maps = np.asarray(pred_maps)
    if np.asarray(gt_maps).shape[1:] != pred_maps.shape[1:]:
        raise ValueError(
            f"instance_iou_matrix: pred {pred_maps.shape} vs gt {np.asarray(gt_maps).shape}"
        )
    if pred_maps.size and (pred_maps.max() >= num_classes or pred_maps.min() < 0):
        raise ValueError(f"instance_iou_matrix: predicted labels must lie in [0, {num_classes})")
    crops = [nonzero_crop(m.astype(np.uint8, copy=False)) for m in pred_maps]
    return instance_iou_from_crops(crops, gt_maps, num_classes)


def instance_iou_from_crops(
    pred_crops: Sequence[Optional["PartCrop"]],
    gt_maps: Union[np.ndarray, Sequence[Optional["PartCrop"]]],
    num_classes: int,
    image_size: Optional[Tuple[int, int]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`instance_iou_matrix` of P predictions given as :class:`PartCrop` (None: no part
    pixel), without their full-image maps.

    Exact integer counts as the naive per-pair ``confusion_matrix``: a prediction is 0 outside its
    rectangle, and so is a ground truth given as a crop, so only where both rectangles meet are the
    two joined; the other pixels and the background row and column follow from the areas.

    Args:
        pred_crops: P crops of labels in ``[0, C)`` inside the H x W image.
        gt_maps: integer (G, H, W) ground-truth person maps, labels in ``[0, C)`` or ignored
            (>= C); or the G persons as crops (uint8 labels, 0 outside), with ``image_size``.
        num_classes: C.
        image_size: (H, W) when ``gt_maps`` are crops.
    Returns:
        miou (P, G), iou (P, G, C): as :func:`instance_iou_matrix`.
    """
    c = num_classes
    gt_crops, (height, width) = as_crops(gt_maps, image_size)
    num_p, num_g = len(pred_crops), len(gt_crops)
    if num_p == 0 or num_g == 0:
        return np.zeros((num_p, num_g)), np.zeros((num_p, num_g, c))
    npix = height * width
    # per ground truth: labels with every ignored one as c, as int64 codes c_gt * c, and areas
    codes, rects = [], []
    area_g = np.zeros((num_g, c + 1), dtype=np.int64)
    for g, crop in enumerate(gt_crops):
        if crop is None:
            area_g[g, 0] = npix
            codes.append(None)
            rects.append(None)
            continue
        labels = _ignored_as(np.asarray(crop.labels), c)
        area_g[g] = np.bincount(labels.reshape(-1), minlength=c + 1)[: c + 1]
        area_g[g, 0] += npix - labels.size
        codes.append(labels * c)
        h, w = labels.shape
        rects.append((crop.y0, crop.x0, crop.y0 + h, crop.x0 + w))
    valid = npix - area_g[:, c]  # (G,) pixels not ignored
    # where no two ground truths are non-zero on one pixel (one instance map, e.g. CIHP): one map
    # of (ground truth, label) codes, joined with each prediction in one count
    owners = _owner_codes(codes, rects, (height, width), c)

    inter = np.zeros((num_p, num_g, c), dtype=np.int64)
    col = np.zeros((num_p, num_g, c), dtype=np.int64)
    on_background = np.zeros((num_p, num_g), dtype=np.int64)  # predicted non-zero on gt 0
    for p, crop in enumerate(pred_crops):
        if crop is None:
            continue
        labels = np.asarray(crop.labels)
        h, w = labels.shape
        if labels.size and (labels.max() >= c or labels.min() < 0):
            raise ValueError(f"instance_iou_from_crops: predicted labels must lie in [0, {c})")
        box = (crop.y0, crop.x0, crop.y0 + h, crop.x0 + w)
        if owners is not None:
            window = owners[box[0] : box[2], box[1] : box[3]]
            joint = np.bincount((window + labels).reshape(-1), minlength=(num_g + 1) * (c + 1) * c)
            joint = joint.reshape(num_g + 1, c + 1, c)
            area_p = joint.sum(axis=(0, 1))
            joint = joint[1:]  # (G, C + 1, C): on the pixels of each ground truth, row 0 empty
            joint[:, 0] = area_p[None] - joint[:, 1:].sum(axis=1)
            inter[p] = np.diagonal(joint[:, :c], axis1=1, axis2=2)
            col[p] = joint[:, :c].sum(axis=1)
            on_background[p] = joint[:, 0, 1:].sum(axis=1)
            continue
        pred = labels.astype(np.int64)
        area_p = np.bincount(pred.reshape(-1), minlength=c)
        for g in range(num_g):
            joint = np.zeros((c + 1, c), dtype=np.int64)
            joint[0] = area_p  # the prediction's pixels outside the ground truth's rectangle
            meet = _meet(rects[g], box)
            if meet is not None:
                y0, x0, y1, x1 = meet
                gy, gx = rects[g][0], rects[g][1]
                sub_p = pred[y0 - box[0] : y1 - box[0], x0 - box[1] : x1 - box[1]]
                sub_g = codes[g][y0 - gy : y1 - gy, x0 - gx : x1 - gx]
                both = np.bincount((sub_g + sub_p).reshape(-1), minlength=(c + 1) * c)
                joint += both.reshape(c + 1, c)
                joint[0] -= np.bincount(sub_p.reshape(-1), minlength=c)
            inter[p, g] = np.diagonal(joint[:c])
            col[p, g] = joint[:c].sum(axis=0)  # predicted c on valid ground truth
            on_background[p, g] = joint[0, 1:].sum()
    # background: predicted 0 on valid ground truth = valid - predicted non-zero there; both 0 =
    # ground-truth 0 pixels - predicted non-zero pixels on ground-truth 0
    col[:, :, 0] = valid[None, :] - col[:, :, 1:].sum(axis=2)
    inter[:, :, 0] = area_g[None, :, 0] - on_background
    row = np.broadcast_to(area_g[None, :, :c], (num_p, num_g, c)).astype(np.float64)
    inter = inter.astype(np.float64)
    iou = _safe_div(inter, row + col - inter)
    return _nanmean(iou), iou


def _owner_codes(
    codes: List[Optional[np.ndarray]],
    rects: List[Optional[Tuple[int, int, int, int]]],
    size: Tuple[int, int],
    c: int,
) -> Optional[np.ndarray]:
    """int64 (H, W) ``((g + 1) * (C + 1) + label) * C`` on the non-zero pixels of ground truth g
    (``codes[g]``: labels * C with ignored as C, in ``rects[g]``), 0 elsewhere; None when two
    ground truths are non-zero on one pixel."""
    owners = np.zeros(size, dtype=np.int64)
    for g, (code, rect) in enumerate(zip(codes, rects)):
        if code is None:
            continue
        window = owners[rect[0] : rect[2], rect[1] : rect[3]]
        mine = code != 0
        if window[mine].any():
            return None
        window[mine] = code[mine] + (g + 1) * (c + 1) * c
    return owners


def _ignored_as(labels: np.ndarray, c: int) -> np.ndarray:
    """int64 labels with every value outside [0, c) (ignored ground truth) as c."""
    labels = labels.astype(np.int64)
    return np.where((labels < 0) | (labels >= c), c, labels)


def _meet(a: Optional[Tuple[int, int, int, int]], b: Tuple[int, int, int, int]):
    """The intersection (y0, x0, y1, x1) of two rectangles; None if empty."""
    if a is None:
        return None
    y0, x0, y1, x1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (y0, x0, y1, x1) if y0 < y1 and x0 < x1 else None


def as_crops(
    maps: Union[np.ndarray, Sequence[Optional["PartCrop"]]],
    image_size: Optional[Tuple[int, int]] = None,
) -> Tuple[List[Optional["PartCrop"]], Tuple[int, int]]:
    """Person maps as crops: (G, H, W) maps -> their :func:`nonzero_crop` (views) and (H, W); a
    sequence of :class:`PartCrop` (None: an all-zero map) is returned as it is with
    ``image_size``.

    Raises:
        ValueError: crops without ``image_size``.
    """
    if isinstance(maps, np.ndarray):
        if maps.ndim != 3:
            raise ValueError(f"person maps must be (G, H, W), got shape {maps.shape}")
        return [nonzero_crop(m) for m in maps], (int(maps.shape[1]), int(maps.shape[2]))
    if image_size is None:
        raise ValueError("person maps given as crops need the image size (H, W)")
    return list(maps), (int(image_size[0]), int(image_size[1]))


def crop_label_areas(
    crops: Sequence[Optional["PartCrop"]], num_classes: int, image_size: Tuple[int, int]
) -> np.ndarray:
    """:func:`label_areas` of maps given as crops (0 outside each): int64 (K, C)."""
    npix = int(image_size[0]) * int(image_size[1])
    areas = np.zeros((len(crops), num_classes), dtype=np.int64)
    for k, crop in enumerate(crops):
        if crop is None:
            areas[k, 0] = npix
            continue
        labels = np.asarray(crop.labels).reshape(-1)
        counts = np.bincount(labels, minlength=num_classes)
        areas[k] = counts[:num_classes]
        areas[k, 0] += npix - labels.size
    return areas


def _nonzero_rect(label_map: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """(y0, x0, y1, x1) bounding the non-zero pixels of a (H, W) map; None if there are none."""
    rows = np.flatnonzero(label_map.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(label_map.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Pascal VOC all-point AP: area under the monotone precision envelope.

    Args:
        recall: float (K,) recall after each of K ranked detections (non-decreasing; may exceed 1
            with the AP^r quirk, like the reference code).
        precision: float (K,) precision after each detection.
    Returns:
        AP (0.0 when K = 0).
    """
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def parsing_true_positives(
    scores: np.ndarray,
    best_iou: np.ndarray,
    best_gt: np.ndarray,
    thresholds: Sequence[float],
    score_threshold: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """AP^p matching: predictions ranked by score, each compared with its best ground truth only.

    A prediction is a TP at t iff ``best_iou > t`` and its best ground truth was not matched at t by
    a higher-ranked prediction; otherwise an FP (no fallback to the second-best ground truth).
    Predictions with ``score < score_threshold`` are dropped (neither TP nor FP).

    Args:
        scores: float (N,) person scores.
        best_iou: float (N,) mIoU_inst with the best ground truth (NaN if the image has none).
        best_gt: int (N,) split-wide id of that ground truth (-1 if the image has none).
        thresholds: T IoU thresholds.
        score_threshold: smallest score kept.
    Returns:
        order: int (N',) indices of the kept predictions, by descending score (stable).
        tp: bool (T, N') whether the ranked prediction is a TP at each threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.nonzero(scores >= score_threshold)[0]
    order = keep[np.argsort(-scores[keep], kind="stable")]
    ious = np.asarray(best_iou, dtype=np.float64)[order]
    gts = np.asarray(best_gt, dtype=np.int64)[order]
    tp = np.zeros((len(thresholds), order.size), dtype=bool)
    for i, t in enumerate(thresholds):
        candidates = np.nonzero((ious > t) & (gts >= 0))[0]
        _, first = np.unique(gts[candidates], return_index=True)  # first claim of each ground truth
        tp[i, candidates[first]] = True
    return order, tp


def _ap_from_tp(tp: np.ndarray, num_gt: int) -> float:
    """VOC AP of ranked TP flags (K,) with ``num_gt`` positives (NaN if num_gt == 0)."""
    if num_gt <= 0:
        return float("nan")
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    return voc_ap(ctp / float(num_gt), ctp / np.maximum(ctp + cfp, 1))


def ap_parsing(
    scores: np.ndarray,
    best_iou: np.ndarray,
    best_gt: np.ndarray,
    num_gt: int,
    thresholds: Sequence[float] = VOL_THRESHOLDS,
    score_threshold: float = 0.0,
) -> Dict[float, float]:
    """AP^p (MHP-v2 ``eval_mhp.py``) per IoU threshold.

    Args:
        scores, best_iou, best_gt: (N,) per predicted person of the split, see
            :func:`parsing_true_positives`.
        num_gt: ground-truth persons of the split (with a non-empty part map).
        thresholds: T IoU thresholds (strict ``>``).
        score_threshold: predictions below it are skipped entirely.
    Returns:
        ``{t: AP}`` in [0, 1]; NaN if ``num_gt == 0``, 0.0 if there are no kept predictions.
    """
    _, tp = parsing_true_positives(scores, best_iou, best_gt, thresholds, score_threshold)
    return {float(t): _ap_from_tp(tp[i], num_gt) for i, t in enumerate(thresholds)}


def pcp(
    scores: np.ndarray,
    best_iou: np.ndarray,
    best_gt: np.ndarray,
    part_ious: np.ndarray,
    gt_present: np.ndarray,
    num_gt: int,
    threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> float:
    """PCP_t: for each TP of AP^p at t, the fraction of the ground truth's part classes (c >= 1)
    whose IoU_c > t; unmatched ground truths count 0; mean over all ``num_gt`` ground truths.

    Args:
        scores, best_iou, best_gt: (N,) as in :func:`ap_parsing`.
        part_ious: float (N, C) per-class IoU of each prediction with its best ground truth.
        gt_present: bool (N, C) part classes present in that ground truth (column 0 is ignored).
        num_gt: ground-truth persons of the split.
        threshold: t (strict ``>``, for the match and for the parts).
        score_threshold: predictions below it are skipped.
    Returns:
        PCP in [0, 1]; NaN if ``num_gt == 0``.
    """
    if num_gt <= 0:
        return float("nan")
    order, tp = parsing_true_positives(scores, best_iou, best_gt, [threshold], score_threshold)
    matched = order[tp[0]]
    present = np.asarray(gt_present, dtype=bool)[matched, 1:]
    ious = np.asarray(part_ious, dtype=np.float64)[matched, 1:]
    correct = (np.nan_to_num(ious, nan=0.0) > threshold) & present
    denom = present.sum(axis=1)
    frac = np.where(denom > 0, correct.sum(axis=1) / np.maximum(denom, 1), 0.0)
    return float(frac.sum() / num_gt)


def ap_region_per_class(
    region_classes: np.ndarray,
    region_scores: np.ndarray,
    region_ious: np.ndarray,
    num_gt_regions: np.ndarray,
    thresholds: Sequence[float] = VOL_THRESHOLDS,
    score_threshold: float = 0.0,
) -> np.ndarray:
    """AP^r per part class and threshold (CIHP/PGN ``evaluation/test_inst_part_ap.py``).

    A predicted region of class c is a TP at t iff its max IoU with the ground-truth regions of
    class c in its image is > t. Ground-truth regions are **not** marked as used (the reference
    code's quirk: two predictions on one ground truth are both TPs, recall may exceed 1). Regions
    are ranked by descending score over the split (stable: ties keep their order; the reference's
    ``np.argsort(scores)[::-1]`` leaves the order of ties unspecified); recall = cumTP / number of
    ground-truth regions of c, precision = cumTP / rank; VOC all-point AP (:func:`voc_ap`).

    Args:
        region_classes: int (Q,) part class (1..C-1) of each predicted region.
        region_scores: float (Q,) its score (the person's score).
        region_ious: float (Q,) its max IoU with the image's ground-truth regions of its class
            (0 if there are none), e.g. from :func:`part_region_ious`.
        num_gt_regions: int (C,) ground-truth regions per class over the split (entry 0 unused).
        thresholds: T IoU thresholds.
        score_threshold: regions with a lower score are skipped.
    Returns:
        float (C, T): AP per class and threshold; NaN for class 0 and classes without ground truth.
        Like the reference code, a class's AP exceeds 1 when more predictions pass than it has
        ground-truth regions (recall > 1).
    """
    classes = np.asarray(region_classes, dtype=np.int64)
    scores = np.asarray(region_scores, dtype=np.float64)
    ious = np.asarray(region_ious, dtype=np.float64)
    num_gt_regions = np.asarray(num_gt_regions, dtype=np.int64)
    out = np.full((num_gt_regions.size, len(thresholds)), np.nan)
    kept = scores >= score_threshold
    for c in range(1, num_gt_regions.size):
        idx = np.nonzero(kept & (classes == c))[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        for i, t in enumerate(thresholds):
            out[c, i] = _ap_from_tp(ious[idx] > t, int(num_gt_regions[c]))
    return out


def ap_region(
    region_classes: np.ndarray,
    region_scores: np.ndarray,
    region_ious: np.ndarray,
    num_gt_regions: np.ndarray,
    thresholds: Sequence[float] = VOL_THRESHOLDS,
    score_threshold: float = 0.0,
) -> Dict[float, float]:
    """AP^r_t = mean over part classes with ground truth of :func:`ap_region_per_class`.

    The reference averages over all C-1 part classes; a class without any ground-truth region
    there gives 0 (no prediction either) or NaN (predictions), so the two means agree whenever
    every class has ground truth in the split (CIHP val). Here such classes are left out.

    Returns:
        ``{t: AP^r_t}`` in [0, 1] (NaN if no class has ground-truth regions). AP^r_vol is the
        mean over :data:`VOL_THRESHOLDS`.
    """
    per_class = ap_region_per_class(
        region_classes, region_scores, region_ious, num_gt_regions, thresholds, score_threshold
    )
    mean = _nanmean(per_class.T)  # (T,)
    return {float(t): float(mean[i]) for i, t in enumerate(thresholds)}


# ------------------------------------------------------------------------------------------------
# image-level maps of an instance model (docs/metrics.md section 1) and its part regions (section 5)

_NO_LABEL = 255  # label that never overwrites when pasting (no part annotation / ignored)


def paste_order(scores: np.ndarray, score_threshold: float) -> np.ndarray:
    """The paste order of docs/metrics.md section 1: persons with ``score >= score_threshold``, by
    ascending score, so that a higher score is pasted later and wins. Ties keep index order (the
    later index wins).

    Args:
        scores: float (P,) person scores.
        score_threshold: smallest score pasted.
    Returns:
        int64 (P',) indices into ``scores``, first pasted first.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = np.nonzero(scores >= score_threshold)[0]
    return keep[np.argsort(scores[keep], kind="stable")].astype(np.int64)


@dataclass
class PartCrop:
    """One person's part labels inside a rectangle of the image: ``labels`` uint8 (h, w) at rows
    ``y0 .. y0 + h - 1`` and columns ``x0 .. x0 + w - 1``; 0 (and the whole image outside the
    rectangle) is background."""

    labels: np.ndarray
    y0: int
    x0: int


def nonzero_crop(labels: np.ndarray) -> Optional[PartCrop]:
    """The smallest :class:`PartCrop` (a view) holding every non-zero pixel of a (H, W) map; None
    when it has none."""
    rect = _nonzero_rect(labels)
    if rect is None:
        return None
    y0, x0, y1, x1 = rect
    return PartCrop(labels[y0:y1, x0:x1], y0, x0)


def paste_crops_with_owner(
    crops: Sequence[Optional[PartCrop]], order: Optional[Sequence[int]], image_size
) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`paste_with_owner` of per-person crops (None: no part pixel): the same labels and
    owners as pasting the persons' full-image maps, written inside each rectangle only.

    Args:
        crops: per person a :class:`PartCrop` or None.
        order: indices into ``crops``, first pasted first (default all, in index order).
        image_size: (H, W).
    """
    height, width = (int(v) for v in image_size)
    labels = np.zeros((height, width), dtype=np.uint8)
    owner = np.full((height, width), -1, dtype=np.int64)
    for i in range(len(crops)) if order is None else order:
        crop = crops[int(i)]
        if crop is None:
            continue
        h, w = crop.labels.shape
        fg = (crop.labels > 0) & (crop.labels != _NO_LABEL)
        window = (slice(crop.y0, crop.y0 + h), slice(crop.x0, crop.x0 + w))
        np.copyto(labels[window], crop.labels, where=fg)  # no index arrays
        np.copyto(owner[window], int(i), where=fg)
    return labels, owner


def visible_crops(
    crops: Sequence[Optional[PartCrop]],
    labels: np.ndarray,
    owner: np.ndarray,
    order: Sequence[int],
) -> Tuple[np.ndarray, list]:
    """The persons of a pasted map as MHP-v2's official ``eval_submission.py`` reads them from
    ``global_seg`` / ``global_tag``: each pasted person's visible pixels (``labels`` where
    ``owner`` is that person), the persons with none left out.

    Args:
        crops: per person a :class:`PartCrop` or None (their rectangles bound the visible pixels).
        labels, owner: :func:`paste_crops_with_owner` of ``crops`` in ``order``.
        order: the pasted persons (indices into ``crops``).
    Returns:
        kept: int64 (P',) indices into ``crops`` of the persons with a visible pixel, ascending.
        visible: their P' crops (labels 0 where another person covers them).
    """
    kept, visible = [], []
    for i in sorted(int(i) for i in order):
        crop = crops[i]
        if crop is None:
            continue
        h, w = crop.labels.shape
        window = (slice(crop.y0, crop.y0 + h), slice(crop.x0, crop.x0 + w))
        mine = owner[window] == i
        if mine.any():
            kept.append(i)
            visible_labels = np.where(mine, labels[window], 0).astype(np.uint8)
            visible.append(PartCrop(visible_labels, crop.y0, crop.x0))
    return np.asarray(kept, dtype=np.int64), visible


def paste_with_owner(
    part_maps: np.ndarray, order: Optional[Sequence[int]] = None, image_size=None
) -> Tuple[np.ndarray, np.ndarray]:
    """Paste per-person part maps into one image-level map, remembering whose label each pixel is.

    Only labels 1..254 overwrite: a person's background (0) never erases another person's parts,
    and 255 (no part annotation) is never pasted.

    Args:
        part_maps: integer (P, H, W) per-person label maps (0 outside the person's parts).
        order: indices of the persons to paste, first pasted first (later ones overwrite);
            default all, 0..P-1.
        image_size: (H, W), needed only when P = 0.
    Returns:
        labels: uint8 (H, W), the label of the last pasted person with a label there, else 0.
        owner: int64 (H, W), the index (into ``part_maps``) of that person, -1 where none.
    """
    part_maps = np.asarray(part_maps)
    if part_maps.ndim != 3:
        raise ValueError(f"part_maps must be (P, H, W), got shape {part_maps.shape}")
    if part_maps.shape[0] or image_size is None:
        height, width = part_maps.shape[1:]
    else:
        height, width = image_size
    labels = np.zeros((int(height), int(width)), dtype=np.uint8)
    owner = np.full((int(height), int(width)), -1, dtype=np.int64)
    for i in range(part_maps.shape[0]) if order is None else order:
        person = part_maps[int(i)]
        fg = (person > 0) & (person != _NO_LABEL)
        labels[fg] = person[fg]
        owner[fg] = int(i)
    return labels, owner


def paste_part_maps(
    part_maps: np.ndarray, order: Optional[Sequence[int]] = None, image_size=None
) -> np.ndarray:
    """uint8 (H, W) labels of :func:`paste_with_owner` (same arguments)."""
    return paste_with_owner(part_maps, order, image_size)[0]


def image_level_map(
    pred_maps: np.ndarray, scores: np.ndarray, score_threshold: float, image_size=None
) -> np.ndarray:
    """Image-level part map of an instance model (docs/metrics.md section 1): persons with
    ``score >= score_threshold`` pasted in ascending score order (:func:`paste_order`), the part
    labels of a higher-scored person overwriting.

    Args:
        pred_maps: integer (P, H, W) person maps (0 outside the person).
        scores: float (P,) person scores.
        score_threshold: smallest score pasted.
        image_size: (H, W), needed only when P = 0.
    Returns:
        uint8 (H, W) labels, 0 where no kept person has a part.
    """
    return paste_part_maps(pred_maps, paste_order(scores, score_threshold), image_size)


def instance_level_map(
    pred_maps: np.ndarray, scores: np.ndarray, score_threshold: float, image_size=None
) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`image_level_map` and the person that owns each pixel.

    Returns:
        labels: uint8 (H, W) as :func:`image_level_map`.
        owner: int64 (H, W) index into ``pred_maps`` of the person whose label is shown, -1 where
            no kept person has a part.
    """
    return paste_with_owner(pred_maps, paste_order(scores, score_threshold), image_size)


def part_region_ious(
    labels: np.ndarray,
    owner: np.ndarray,
    gt_maps: Union[np.ndarray, Sequence[Optional[PartCrop]]],
    num_classes: int,
) -> Dict[str, np.ndarray]:
    """The predicted part regions of one image and their best IoU with the ground truth (AP^r,
    docs/metrics.md section 5, PGN's ``test_inst_part_ap.py``).

    A predicted region is the set of pixels of one label c >= 1 owned by one person in the pasted
    map (:func:`instance_level_map`): regions never overlap, like the instance-part PNG the
    reference reads. A ground-truth region is the class-c pixels of one ground-truth person. IoU is
    plain mask IoU (no ignored pixels); a region's IoU is its largest IoU with a ground-truth region
    of its class in the image, 0 if there is none.

    Args:
        labels: uint8 (H, W) pasted labels in ``[0, C)``.
        owner: int (H, W) person index of each labelled pixel (>= 0 where ``labels > 0``).
        gt_maps: integer (G, H, W) ground-truth person maps (labels >= C are no region), or the G
            persons as crops (0 outside).
        num_classes: C.
    Returns:
        dict of (Q,) arrays, regions sorted by class, then person: ``person`` (int64 owner index),
        ``cls`` (int64 class 1..C-1), ``area`` (int64 pixels), ``iou`` (float64 best IoU).
    """
    labels = np.asarray(labels)
    size = labels.shape
    flat_labels = labels.reshape(-1).astype(np.int64)
    owner = np.asarray(owner).reshape(-1).astype(np.int64)
    fg = np.flatnonzero(flat_labels > 0)
    if fg.size and (flat_labels[fg].max() >= num_classes or owner[fg].min() < 0):
        raise ValueError(
            f"part_region_ious: labels must lie in [0, {num_classes}) with an owner >= 0 on each"
        )
    num_persons = int(owner[fg].max()) + 1 if fg.size else 1
    # np.unique(..., return_inverse, return_counts) of the region keys, by counting (no sort)
    pixel_keys = flat_labels[fg] * num_persons + owner[fg]
    counts = np.bincount(pixel_keys, minlength=num_classes * num_persons)
    keys = np.flatnonzero(counts)
    area = counts[keys]
    lookup = np.zeros(counts.size, dtype=np.int64)
    lookup[keys] = np.arange(keys.size)
    num_regions = keys.size
    cls, person = np.divmod(keys, num_persons)
    iou = np.zeros(num_regions)
    gt_crops, _ = as_crops(gt_maps, size)
    num_gt = len(gt_crops)
    if num_gt and num_regions:
        region = np.full(flat_labels.size, -1, dtype=np.int64)
        region[fg] = lookup[pixel_keys]
        region = region.reshape(size)
        inter = np.zeros((num_gt, num_regions))
        for g, crop in enumerate(gt_crops):
            if crop is None:
                continue
            h, w = crop.labels.shape
            window = (slice(crop.y0, crop.y0 + h), slice(crop.x0, crop.x0 + w))
            pred = labels[window]
            same = (np.asarray(crop.labels) == pred) & (pred > 0)
            inter[g] = np.bincount(region[window][same], minlength=num_regions)
        gt_area = crop_label_areas(gt_crops, num_classes, size)[:, cls]  # (G, Q)
        iou = (inter / (area[None, :] + gt_area - inter)).max(axis=0)
    return {
        "person": person.astype(np.int64),
        "cls": cls.astype(np.int64),
        "area": area.astype(np.int64),
        "iou": iou,
    }

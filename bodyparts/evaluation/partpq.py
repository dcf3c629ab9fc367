"""Panoptic quality (PQ) and part-aware panoptic quality (PartPQ): pure, vectorised numpy.

The definitions are those of the reference implementation, the ``panoptic_parts`` package
(2.0rc6, ``panoptic_parts.utils.evaluation_PartPQ``, docs/metrics.md section 7) and give its numbers
on the same inputs. One image is reduced to per-class statistics by a few vectorised passes over
its pixels (segment ids from ``bincount``, a sparse segment-pair confusion, one part histogram for
all matched pairs) instead of the reference's per-segment and per-pair full-image masks.

Shapes and letters:

* ``H x W``: image size; ``K`` evaluated scene classes (:class:`SceneClasses`);
  ``L`` part labels occurring in one image.
* Ground truth, three integer maps (H, W): ``gt_sem`` scene id (ids of no evaluated class, e.g.
  0 = unlabeled, are **void**); ``gt_inst`` instance id: a segment is a (scene id, instance id)
  pair; for thing classes instance 0 is the class's **crowd** region, stuff is normally one
  segment with instance 0; ``gt_part`` part label (0 = not defined, 1..254), read inside the
  segments of classes with parts.
* Prediction, the 3-channel panoptic-parts format as three maps (H, W): ``pred_sem`` (scene ids of
  no evaluated class, e.g. 255, = no prediction), ``pred_inst``, ``pred_part`` (255 = void).

Per class ``c`` (``V`` = void pixels; ``K_c`` = crowd of class ``c``: its crowd segment and, for
classes with parts, every ground-truth segment without any part label, which the reference turns
into crowd):

* ``(g, p)`` is a TP pair when ``|g & p| / (|g | p| - |p & V|) > 0.5`` (unique per g and p).
* An unmatched prediction is an FP unless ``|p & (V | K_c)| / |p| > 0.5``; unmatched ground-truth
  segments are FN.
* The IoU of a TP: the mask IoU above for classes without parts; for classes with parts the part
  mIoU of the pair, computed over the **whole image** minus ``V``, ``K_c`` and the pixels of ``g``
  whose part is not defined, where the ground-truth label is g's part inside g and 0 elsewhere and
  the predicted label p's part inside p and 0 elsewhere; the mean runs over the labels occurring
  in either, except the predicted void 255 (whose pixels still count against the ground-truth
  labels they cover). Label 0 therefore covers every pixel outside the pair (a reference quirk,
  kept). ``IoU_l = n_ll / (row_l + col_l - n_ll)``.
* ``PQ_c = sum IoU / (TP + FP/2 + FN/2)``, ``SQ_c = sum IoU / TP`` (0 without TP), ``RQ_c = TP /
  (TP + FP/2 + FN/2)``; averages over the classes with ``TP + FP + FN > 0``.

PQ is PartPQ with no class with parts (:meth:`SceneClasses.without_parts`): the plain COCO
panoptic quality (``panopticapi`` semantics: void subtracted from the union, crowd and void
overlap filter FPs).

Differences from the reference, none of which changes a number on the inputs of this format:

* The reference removes only the *first* ground-truth segment that lies wholly in crowd, per class
  and image (a loop with ``break``). Here each thing class has exactly one crowd segment (all its
  instance-0 pixels), and the uid format of the ground-truth files cannot encode a second one, so
  that is every crowd segment; they are all removed.
* A 6-7 digit uid with instance 0 (e.g. ``1500005``) is a non-crowd instance in the reference; its
  counterpart here (instance 0 of a thing class) is crowd.
  :func:`~.panoptic_parts_check.encode_uids` writes crowd as the bare scene id, which both read as
  crowd.
* An average over an empty group (no class with parts present, say) is NaN, where the
  reference's ``pq_average`` divides by zero; a class without ground truth and predictions is NaN
  in the per-class results, where the reference reports 0.0 (both skip it in the averages).
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "SceneClasses",
    "PanopticStats",
    "segment_stats",
    "panoptic_quality",
    "format_results",
    "PRED_VOID",
]

PRED_VOID = 255  # predicted part label "void" (and predicted scene id "no segment")


@dataclass(frozen=True)
class SceneClasses:
    """The K evaluated scene classes: names, scene ids (1..254, unique), and which are things and
    which carry parts."""

    names: Tuple[str, ...]
    scene_ids: Tuple[int, ...]
    thing: Tuple[bool, ...]
    parts: Tuple[bool, ...]

    def __post_init__(self):
        k = len(self.names)
        if not (len(self.scene_ids) == len(self.thing) == len(self.parts) == k):
            raise ValueError(
                f"SceneClasses: {k} names, {len(self.scene_ids)} scene ids, {len(self.thing)} "
                f"thing flags and {len(self.parts)} part flags; expected one of each per class"
            )
        if len(set(self.names)) != k:
            raise ValueError(f"SceneClasses: duplicate class names in {list(self.names)}")
        if len(set(self.scene_ids)) != k or not all(0 < int(s) < PRED_VOID for s in self.scene_ids):
            raise ValueError(
                f"SceneClasses: scene ids {list(self.scene_ids)} must be unique and in 1..254"
            )

    def __len__(self) -> int:
        return len(self.names)

    def without_parts(self) -> "SceneClasses":
        """The same classes, none with parts (PQ)."""
        return SceneClasses(self.names, self.scene_ids, self.thing, (False,) * len(self))


@dataclass
class PanopticStats:
    """Per-class statistics, summed over images: ``iou`` float64 (K,) sum of the TP IoUs (part
    mIoUs for classes with parts); ``tp``, ``fp``, ``fn`` int64 (K,) counts."""

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> "PanopticStats":
        z = np.zeros(num_classes, dtype=np.int64)
        return cls(np.zeros(num_classes), z, z.copy(), z.copy())

    def __add__(self, other: "PanopticStats") -> "PanopticStats":
        return PanopticStats(
            self.iou + other.iou, self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        )


def _class_index(sem: np.ndarray, scene_ids: Sequence[int]) -> np.ndarray:
    """int64 (H*W,) index into the classes of each pixel's scene id, -1 for other ids."""
    size = max(scene_ids) + 1
    lut = np.full(size + 1, -1, dtype=np.int64)
    lut[list(scene_ids)] = np.arange(len(scene_ids))
    return lut[np.clip(sem.ravel(), 0, size)]


def _count(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of ``keys`` (M,) >= 0, sorted (S,), the index of each key among them (M,) and
    their counts (S,); O(M) with ``bincount`` when the values are small enough."""
    size = int(keys.max()) + 1 if keys.size else 0
    if size > 4 * keys.size + (1 << 16):
        present, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return present, inverse.ravel(), counts
    counts = np.bincount(keys, minlength=size)
    present = np.flatnonzero(counts)
    remap = np.zeros(size, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return present, remap[keys], counts[present]


def _segments(
    cls: np.ndarray, inst: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segments of the pixels with class ``cls`` (M,) and instance ``inst`` (M,), both >= 0.

    Returns: class (S,), instance (S,), segment index of each pixel (M,), area (S,).
    """
    m = int(inst.max()) + 1 if inst.size else 1
    present, inverse, area = _count(cls * m + inst)
    return present // m, present % m, inverse, area


def _check_maps(maps: Dict[str, Optional[np.ndarray]]) -> Tuple[int, int]:
    shapes = {name: np.shape(a) for name, a in maps.items() if a is not None}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"segment_stats: label maps must all be (H, W) of one size, got {shapes}")
    for name, a in maps.items():
        if a is None:
            continue
        if not np.issubdtype(np.asarray(a).dtype, np.integer):
            raise ValueError(
                f"segment_stats: {name} must be an integer map, got dtype {np.asarray(a).dtype}"
            )
        if a.size and a.min() < 0 and name != "gt_sem" and name != "pred_sem":
            raise ValueError(f"segment_stats: {name} has negative values (min {a.min()})")
    for name, top in (("gt_part", PRED_VOID - 1), ("pred_part", PRED_VOID)):
        a = maps[name]
        if a is not None and a.size and a.max() > top:
            raise ValueError(
                f"segment_stats: {name} has label {a.max()}, labels must be in 0..{top}"
            )
    return first


def segment_stats(
    gt_sem: np.ndarray,
    gt_inst: np.ndarray,
    gt_part: Optional[np.ndarray],
    pred_sem: np.ndarray,
    pred_inst: np.ndarray,
    pred_part: Optional[np.ndarray],
    classes: SceneClasses,
) -> PanopticStats:
    """Per-class TP / FP / FN counts and TP IoU sums of one image (module docstring).

    Args:
        gt_sem, gt_inst, gt_part: ground-truth maps (H, W), integer; ``gt_part`` may be None when
            no class has parts.
        pred_sem, pred_inst, pred_part: predicted maps (H, W), integer; ``pred_part`` may be None
            when no class has parts.
        classes: the K evaluated classes (``classes.parts``: PartPQ for those; all False: PQ).
    Returns:
        :class:`PanopticStats` with (K,) arrays.
    """
    parts = np.asarray(classes.parts, dtype=bool)
    thing = np.asarray(classes.thing, dtype=bool)
    if parts.any() and (gt_part is None or pred_part is None):
        raise ValueError("segment_stats: classes with parts need gt_part and pred_part maps")
    maps = dict(
        gt_sem=gt_sem, gt_inst=gt_inst, gt_part=gt_part, pred_sem=pred_sem, pred_inst=pred_inst
    )
    maps["pred_part"] = pred_part
    maps = {k: (None if v is None else np.asarray(v)) for k, v in maps.items()}
    _check_maps(maps)
    num_k, num_px = len(classes), maps["gt_sem"].size
    ids = [int(s) for s in classes.scene_ids]

    # ground-truth segments; crowd: thing instance 0, and segments of part classes without parts
    gc = _class_index(maps["gt_sem"], ids)
    gmask = gc >= 0
    g_cls, g_inst, g_inv, g_area = _segments(
        gc[gmask], maps["gt_inst"].ravel()[gmask].astype(np.int64)
    )
    num_g = len(g_area)
    gseg = np.full(num_px, -1, dtype=np.int64)
    gseg[gmask] = g_inv
    g_crowd = thing[g_cls] & (g_inst == 0)
    g_labelled = np.zeros(num_g, dtype=np.int64)
    if parts.any():
        labelled = maps["gt_part"].ravel()[gmask] > 0
        g_labelled = np.bincount(g_inv[labelled], minlength=num_g)
        g_crowd |= parts[g_cls] & (g_labelled == 0)
    real = ~g_crowd

    # predicted segments and their overlap with void and with the crowd of their own class
    pc = _class_index(maps["pred_sem"], ids)
    pmask = pc >= 0
    p_cls, _, p_inv, p_area = _segments(
        pc[pmask], maps["pred_inst"].ravel()[pmask].astype(np.int64)
    )
    num_p = len(p_area)
    pseg = np.full(num_px, -1, dtype=np.int64)
    pseg[pmask] = p_inv
    p_void = np.bincount(pseg[pmask & ~gmask], minlength=num_p)
    both = gmask & pmask
    gs, ps = gseg[both], pseg[both]
    same = g_cls[gs] == p_cls[ps]
    p_crowd = np.bincount(ps[same & g_crowd[gs]], minlength=num_p)

    # matching: IoU > 0.5 between real segments of one class (void subtracted from the union)
    sel = same & real[gs]
    pair_keys, _, inter = _count(gs[sel] * max(num_p, 1) + ps[sel])
    pg, pp = np.divmod(pair_keys, max(num_p, 1))
    union = g_area[pg] + p_area[pp] - p_void[pp] - inter
    iou = inter / union
    match = iou > 0.5
    tg, tpred, tiou = pg[match], pp[match], iou[match]

    stats = PanopticStats.zeros(num_k)
    stats.tp = np.bincount(g_cls[tg], minlength=num_k)
    stats.fn = np.bincount(g_cls[real], minlength=num_k) - stats.tp
    unmatched = np.ones(num_p, dtype=bool)
    unmatched[tpred] = False
    is_fp = unmatched & ((p_void + p_crowd) / np.maximum(p_area, 1) <= 0.5)
    stats.fp = np.bincount(p_cls[is_fp], minlength=num_k)
    with_parts = parts[g_cls[tg]]
    if with_parts.any():
        crowd_area = np.zeros(num_k, dtype=np.int64)
        np.add.at(crowd_area, g_cls[g_crowd], g_area[g_crowd])
        outside = num_px - np.count_nonzero(~gmask) - crowd_area  # image minus V and K_c, per class
        tiou = tiou.copy()
        tiou[with_parts] = _pair_part_mious(
            maps,
            gseg,
            pseg,
            gmask,
            g_cls,
            g_crowd,
            tg[with_parts],
            tpred[with_parts],
            outside[g_cls[tg[with_parts]]] - (g_area - g_labelled)[tg[with_parts]],
        )
    stats.iou = np.bincount(g_cls[tg], weights=tiou, minlength=num_k).astype(np.float64)
    return stats


def _pair_part_mious(maps, gseg, pseg, gmask, g_cls, g_crowd, tg, tpred, evaluated) -> np.ndarray:
    """Part mIoU (T,) of T matched pairs (ground-truth segments ``tg``, predictions ``tpred``);
    ``evaluated`` (T,): number of pixels each pair is evaluated on."""
    num_t = len(tg)
    # per segment, with a last entry for "no segment" (index -1)
    pair_of_g = np.full(len(g_cls) + 1, -1, dtype=np.int64)
    pair_of_g[tg] = np.arange(num_t)
    pair_of_p = np.full(int(pseg.max(initial=-1)) + 2, -1, dtype=np.int64)
    pair_of_p[tpred] = np.arange(num_t)
    crowd_cls = np.append(np.where(g_crowd, g_cls, -1), -1)
    pix_g, pix_p = pair_of_g[gseg], pair_of_p[pseg]  # (H*W,) pair whose g / p holds the pixel
    pix = np.flatnonzero((pix_g >= 0) | (pix_p >= 0))  # only these pixels have a label != (0, 0)
    pix_g, pix_p, gs = pix_g[pix], pix_p[pix], gseg[pix]
    gl = maps["gt_part"].ravel()[pix].astype(np.int64)
    pl = maps["pred_part"].ravel()[pix].astype(np.int64)
    # in g with a defined part: (g's part, p's part if the pixel is in p else 0)
    a = (pix_g >= 0) & (gl > 0)
    a_t, a_g = pix_g[a], gl[a]
    a_p = np.where(pix_p[a] == a_t, pl[a], 0)
    # in p, outside g, not void, not crowd of the pair's class: (0, p's part)
    b = (pix_p >= 0) & (pix_p != pix_g) & gmask[pix]
    b[b] = crowd_cls[gs[b]] != g_cls[tg][pix_p[b]]
    b_t, b_p = pix_p[b], pl[b]

    occurs = np.zeros(PRED_VOID + 1, dtype=bool)
    occurs[0] = occurs[a_g] = occurs[a_p] = occurs[b_p] = True
    labels = np.flatnonzero(occurs)  # sorted, starts with 0
    lut = np.zeros(PRED_VOID + 1, dtype=np.int64)
    lut[labels] = np.arange(len(labels))
    num_l = len(labels)
    keys = np.concatenate(
        [(a_t * num_l + lut[a_g]) * num_l + lut[a_p], b_t * num_l * num_l + lut[b_p]]
    )
    hist = np.bincount(keys, minlength=num_t * num_l * num_l).reshape(num_t, num_l, num_l)
    hist[:, 0, 0] += evaluated - hist.sum(axis=(1, 2))  # the rest of the evaluated pixels: (0, 0)
    diag = np.diagonal(hist, axis1=1, axis2=2)
    union = hist.sum(axis=2) + hist.sum(axis=1) - diag
    present = union > 0
    present[:, labels == PRED_VOID] = False  # predicted void: no IoU of its own
    ious = np.where(present, diag / np.maximum(union, 1), 0.0)
    with np.errstate(invalid="ignore"):
        return ious.sum(axis=1) / present.sum(axis=1)


def _group(
    per_class: Dict[str, np.ndarray], members: np.ndarray, counted: np.ndarray, suffix: str
) -> Dict[str, float]:
    sel = members & counted
    n = int(sel.sum())
    out = {
        f"{m}{suffix}": float(per_class[m][sel].mean()) if n else float("nan")
        for m in ("PQ", "SQ", "RQ")
    }
    out[f"n{suffix}"] = n
    return out


def panoptic_quality(stats: PanopticStats, classes: SceneClasses) -> Dict[str, Any]:
    """PQ, SQ, RQ per class and averaged, from summed statistics (fractions, not percent).

    Returns:
        dict: ``PQ``, ``SQ``, ``RQ``, ``n`` (classes counted) over all classes, the same with the
        suffixes ``_th`` (things), ``_st`` (stuff), ``_parts`` (classes with parts) and
        ``_noparts``, NaN for a group without counted class; ``per_class``: {``PQ``, ``SQ``,
        ``RQ``, ``TP``, ``FP``, ``FN``} (K,) arrays, NaN for classes with TP + FP + FN = 0.
    """
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (stats.tp, stats.fp, stats.fn))
    counted = tp + fp + fn > 0
    den = np.where(counted, tp + 0.5 * fp + 0.5 * fn, 1.0)
    per_class = {
        "PQ": np.where(counted, stats.iou / den, np.nan),
        "SQ": np.where(counted, np.where(tp > 0, stats.iou / np.maximum(tp, 1), 0.0), np.nan),
        "RQ": np.where(counted, tp / den, np.nan),
    }
    thing, parts = np.asarray(classes.thing, dtype=bool), np.asarray(classes.parts, dtype=bool)
    out: Dict[str, Any] = {}
    for members, suffix in (
        (np.ones_like(thing), ""),
        (thing, "_th"),
        (~thing, "_st"),
        (parts, "_parts"),
        (~parts, "_noparts"),
    ):
        out.update(_group(per_class, members, counted, suffix))
    per_class.update(TP=stats.tp.copy(), FP=stats.fp.copy(), FN=stats.fn.copy())
    out["per_class"] = per_class
    return out


def format_results(
    classes: SceneClasses,
    panoptic_seg: Optional[PanopticStats] = None,
    part_panoptic: Optional[PanopticStats] = None,
) -> "OrderedDict[str, Dict[str, float]]":
    """Result dicts (percent) of summed statistics: ``panoptic_seg`` {PQ, SQ, RQ, PQ_th, SQ_th,
    RQ_th, PQ_st, SQ_st, RQ_st, PQ-<class>} and ``part_panoptic`` {PartPQ, PartSQ, PartRQ and
    their ``_parts`` / ``_noparts`` variants, PartPQ-<class>}; NaN where undefined."""
    out: "OrderedDict[str, Dict[str, float]]" = OrderedDict()
    if panoptic_seg is not None:
        pq = panoptic_quality(panoptic_seg, classes.without_parts())
        res = {
            f"{m}{s}": 100 * pq[f"{m}{s}"] for s in ("", "_th", "_st") for m in ("PQ", "SQ", "RQ")
        }
        res.update(
            {f"PQ-{n}": 100 * float(v) for n, v in zip(classes.names, pq["per_class"]["PQ"])}
        )
        out["panoptic_seg"] = res
    if part_panoptic is not None:
        ppq = panoptic_quality(part_panoptic, classes)
        res = {
            f"Part{m}{s}": 100 * ppq[f"{m}{s}"]
            for s in ("", "_parts", "_noparts")
            for m in ("PQ", "SQ", "RQ")
        }
        res.update(
            {f"PartPQ-{n}": 100 * float(v) for n, v in zip(classes.names, ppq["per_class"]["PQ"])}
        )
        out["part_panoptic"] = res
    return out

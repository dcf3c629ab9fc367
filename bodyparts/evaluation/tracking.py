"""Identity switches of tracked persons against ground truth, as CLEAR-MOT counts them
(Bernardin and Stiefelhagen, "Evaluating multiple object tracking performance: the CLEAR MOT
metrics", 2008; IDSW of the MOT Challenge).

Per frame, a ground-truth person keeps its previous hypothesis (track id) when that track has a
box in this frame with IoU >= ``iou_threshold`` with it; the persons left are matched to the boxes
left by maximum total IoU (Hungarian; pairs below the threshold are not matched). A switch is a
person matched to a track id other than the one it was last matched to. (The py-motmetrics package
computes the same but does not run on numpy 2, which bodyparts pins.)
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["TrackingCounts", "id_switches"]


@dataclass
class TrackingCounts:
    """Attributes:
    switches: identity switches (IDSW).
    matches: ground-truth boxes matched to a tracked box (one with an id).
    ground_truth: ground-truth boxes in all frames.
    tracks_per_person: {person: number of distinct track ids it was matched to}.
    """

    switches: int
    matches: int
    ground_truth: int
    tracks_per_person: Dict[int, int]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x0, y0, x1, y1 boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def id_switches(
    gt_boxes: Sequence[np.ndarray],
    gt_ids: Sequence[Sequence[int]],
    boxes: Sequence[np.ndarray],
    track_ids: Sequence[Sequence[Optional[int]]],
    iou_threshold: float = 0.5,
) -> TrackingCounts:
    """CLEAR-MOT identity switches of a tracker's output (module docstring).

    Args:
        gt_boxes, gt_ids: per frame, the ground-truth persons' (N, 4) boxes and identities.
        boxes, track_ids: per frame, the tracked (M, 4) boxes and their ids (None or < 0: no id
            yet; such boxes are left out).
        iou_threshold: smallest IoU of a match.
    """
    if not (len(gt_boxes) == len(gt_ids) == len(boxes) == len(track_ids)):
        raise ValueError("ground truth and tracker output must have the same number of frames")
    last: Dict[int, int] = {}
    seen: Dict[int, set] = {}
    switches = matches = total = 0
    for g_box, g_id, t_box, t_id in zip(gt_boxes, gt_ids, boxes, track_ids):
        g_box = np.asarray(g_box, dtype=np.float64).reshape(-1, 4)
        g_id = [int(i) for i in g_id]
        total += len(g_id)
        keep = [j for j, i in enumerate(t_id) if i is not None and i >= 0]
        t_box = np.asarray(t_box, dtype=np.float64).reshape(-1, 4)[keep]
        t_id = [int(t_id[j]) for j in keep]
        if not len(g_id) or not len(t_id):
            continue
        overlap = _iou(g_box, t_box)
        pairs = {}
        for gi, person in enumerate(g_id):  # previous correspondences that still hold
            if person in last and last[person] in t_id:
                tj = t_id.index(last[person])
                if overlap[gi, tj] >= iou_threshold and tj not in pairs.values():
                    pairs[gi] = tj
        rest_g = [gi for gi in range(len(g_id)) if gi not in pairs]
        rest_t = [tj for tj in range(len(t_id)) if tj not in pairs.values()]
        if rest_g and rest_t:
            sub = overlap[np.ix_(rest_g, rest_t)]
            rows, cols = linear_sum_assignment(-sub)
            for r, c in zip(rows, cols):
                if sub[r, c] >= iou_threshold:
                    pairs[rest_g[r]] = rest_t[c]
        for gi, tj in pairs.items():
            person, track = g_id[gi], t_id[tj]
            matches += 1
            if person in last and last[person] != track:
                switches += 1
            last[person] = track
            seen.setdefault(person, set()).add(track)
    return TrackingCounts(switches, matches, total, {k: len(v) for k, v in seen.items()})

"""Pure post-processing of the part branch: per-ROI probabilities -> per-person part maps in image
space.

Shapes: R = detected persons (ROIs) of one image, C = number of part labels including background
(label 0), M = ROI resolution of the part branch, H x W = image size in pixels. S <= R: the
detections whose class has parts (:class:`~bodyparts.modeling.PartPredictions`).
"""

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.structures import Instances

from .part_outputs import PartPredictions, as_part_predictions

__all__ = [
    "part_inference",
    "store_part_predictions",
    "paste_part_masks",
    "paste_in_box",
    "part_label_maps_in_image",
]


def part_inference(
    part_logits: torch.Tensor,
    pred_instances: List[Instances],
    selected: Optional[List[torch.Tensor]] = None,
) -> None:
    """Softmax over part labels, split per image, stored as ``pred_part_masks``
    (:func:`store_part_predictions`).

    Args:
        part_logits: (R_total, C, M, M) logits for all images' detections, in the order of
            ``pred_instances`` (with ``selected``: of the selected detections only, S_total rows).
        pred_instances: per image, Instances with R_i detections.
        selected: per image, bool (R_i,): the detections the logits are for (classes with parts).
    """
    store_part_predictions(part_logits.softmax(dim=1), pred_instances, selected)


def store_part_predictions(
    part_probs: torch.Tensor,
    pred_instances: List[Instances],
    selected: Optional[List[torch.Tensor]] = None,
    silhouettes: bool = False,
) -> None:
    """Split the branch's probabilities per image and store them in ``pred_instances``.

    Args:
        part_probs: float (R_total or S_total, C, M, M) softmax probabilities, image after image.
        pred_instances: per image, Instances with R_i detections; each gets ``pred_part_masks``,
            a :class:`PartPredictions` of its R_i detections (TorchScript: its ``dense()``
            (R_i, C, M, M), as Detectron2's scripted Instances holds tensors only).
        selected: per image, bool (R_i,): the detections with a row of probabilities (None: all).
        silhouettes: also store ``pred_masks`` = 1 - P(background), (R_i, 1, M, M) (only with
            ``selected`` None: every detection needs one).
    """
    if selected is None:
        num = [len(i) for i in pred_instances]
    else:
        num = [int(s.sum()) for s in selected]
    for k, probs_i in enumerate(part_probs.split(num, dim=0)):
        inst = pred_instances[k]
        if selected is None:
            pred = PartPredictions.from_dense(probs_i)
        else:
            pred = PartPredictions.from_selection(probs_i, selected[k])
        if torch.jit.is_scripting():
            inst.pred_part_masks = pred.dense()
        else:
            inst.pred_part_masks = pred
        if silhouettes:
            inst.pred_masks = 1.0 - probs_i[:, :1]


def paste_part_masks(part_probs, boxes: torch.Tensor, image_size) -> torch.Tensor:
    """Paste per-ROI part probabilities into the image and take the arg-max per pixel.

    Args:
        part_probs: :class:`PartPredictions` of R detections (those without part
            probabilities get all-zero maps), or float (R, C, M, M) probabilities in ROI space.
        boxes: float (R, 4) XYXY boxes in image pixels (the ROIs of ``part_probs``).
        image_size: (H, W) of the output.
    Returns:
        uint8 (R, H, W): label 1..C-1 where the person's pasted part probability wins, 0 elsewhere
        (outside its box, or where background wins).

    Probabilities are resampled bilinearly (``grid_sample``, pixel centres, ``align_corners=False``)
    and only then arg-maxed, never label ids.
    """
    pred = as_part_predictions(part_probs)
    if pred.probs.shape[0] != pred.num_instances:
        size = (len(pred), int(image_size[0]), int(image_size[1]))
        out = torch.zeros(size, dtype=torch.uint8, device=pred.probs.device)
        index = pred.index
        out[index] = paste_part_masks(pred.probs, boxes[index.to(boxes.device)], image_size)
        return out
    part_probs = pred.probs
    height, width = int(image_size[0]), int(image_size[1])
    num = part_probs.shape[0]
    out = torch.zeros((num, height, width), dtype=torch.uint8, device=part_probs.device)
    if num == 0:
        return out
    boxes = boxes.to(part_probs.dtype)
    for i in range(num):  # one box at a time: memory O(C * box area), not O(R * C * H * W)
        box = paste_in_box(part_probs[i], boxes[i], height, width)
        if box is not None:
            labels, iy0, ix0 = box
            out[i, iy0 : iy0 + labels.shape[0], ix0 : ix0 + labels.shape[1]] = labels
    return out


def paste_in_box(
    probs: torch.Tensor, box: torch.Tensor, height: int, width: int
) -> Optional[Tuple[torch.Tensor, int, int]]:
    """One person's part labels pasted into an H x W image, computed inside its box only.

    Args:
        probs: float (C, M, M) part probabilities in ROI space.
        box: (4,) XYXY box in image pixels.
        height, width: image size H x W.
    Returns:
        (uint8 (h, w) labels, y0, x0): the labels of the pixels ``y0 .. y0 + h - 1`` x
        ``x0 .. x0 + w - 1`` (the box clipped to the image, whole pixels), 0 where background
        wins or the pixel centre lies outside the box; None when the box holds no pixel. The
        image is 0 elsewhere (:func:`paste_part_masks`).

    The labels are those of ``grid_sample`` + arg-max at every pixel; on the CPU, only the pixels
    near a label change are resampled (:func:`_labels_where_they_may_change`), with the same labels.
    """
    x0, y0, x1, y1 = box.to(probs.dtype).tolist()
    ix0, iy0 = max(int(x0), 0), max(int(y0), 0)
    ix1, iy1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    dtype, device = probs.dtype, probs.device
    xs = (torch.arange(ix0, ix1, device=device, dtype=dtype) + 0.5 - x0) / max(x1 - x0, 1e-6)
    ys = (torch.arange(iy0, iy1, device=device, dtype=dtype) + 0.5 - y0) / max(y1 - y0, 1e-6)
    xs, ys = xs * 2 - 1, ys * 2 - 1
    # on the CPU, in float32 / float64 (the margin below is for their rounding), for boxes of more
    # pixels than the ROI (else resampling all costs less)
    if (
        device.type == "cpu"
        and dtype in (torch.float32, torch.float64)
        and probs.shape[0] > 1
        and xs.numel() * ys.numel() > probs[0].numel()
    ):
        labels = _labels_where_they_may_change(probs, ys, xs)
        # pixel centres outside the box: the first / last rows and columns (coordinates increase)
        y, x = ys.numpy(), xs.numpy()
        labels[: int(np.count_nonzero(y < -1)), :] = 0
        labels[y.size - int(np.count_nonzero(y > 1)) :, :] = 0
        labels[:, : int(np.count_nonzero(x < -1))] = 0
        labels[:, x.size - int(np.count_nonzero(x > 1)) :] = 0
        return labels, iy0, ix0
    inside = (ys.abs() <= 1)[:, None] & (xs.abs() <= 1)[None, :]  # pixel centre in the box
    return _sampled_labels(probs, ys, xs).masked_fill_(~inside, 0), iy0, ix0


def _sampled_labels(probs: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """uint8 (h, w) arg-max of ``probs`` (C, M, M) resampled bilinearly at the normalised
    coordinates ``ys`` (h,) x ``xs`` (w,) (``grid_sample``, border padding)."""
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1)[None]
    pasted = F.grid_sample(
        probs[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    # max(dim).indices: the first largest, as argmax, several times faster over dim 0 on CPU
    return pasted.max(dim=0).indices.to(torch.uint8)


# a label wins every bilinear mix of ROI pixels where it wins by more than this (relative to the
# largest |probability|): float32 rounding of a 4-term weighted sum is below 1e-6 of it
_SAFE_MARGIN = 1e-5
# bound on the difference between a sample position computed here and grid_sample's (ROI pixels;
# float32 rounding of a position below M is below M * 2^-22)
_POSITION_SLACK = 1e-3
_UNSURE = 255  # not a label (labels are uint8 below it)


def _labels_where_they_may_change(
    probs: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor
) -> torch.Tensor:
    """:func:`_sampled_labels`, equal label for label, resampling only near label changes (CPU).

    A bilinear sample mixes 2 x 2 neighbouring ROI pixels with non-negative weights; where one
    label wins at each of them by more than ``_SAFE_MARGIN``, it wins the mix too (no rounding can
    turn it), so that pixel's label is the ROI pixels' label. The ROI pixels a sample may mix are
    taken from its position +- ``_POSITION_SLACK`` (3 x 3 instead of 2 x 2 where the position is
    that close to a whole ROI pixel). The other pixels (near a label change, near-ties, NaN) go
    through ``grid_sample`` itself, at those points only: the same arithmetic as the full grid,
    point by point. (numpy: its small-array operations cost less than torch's on one thread.)
    """
    num_labels, m_h, m_w = probs.shape
    if num_labels >= _UNSURE:
        return _sampled_labels(probs, ys, xs)
    p = probs.detach().numpy()
    best = p.max(axis=0)
    scale = max(float(best.max()), -float(p.min()), 1.0)  # NaN: no pixel is clear
    # labels within the margin of the best, per ROI pixel: exactly one where a label wins clearly
    near = (p >= (best - _SAFE_MARGIN * scale)[None]).view(np.uint8)
    count = near.sum(axis=0, dtype=np.uint8)
    ids = np.arange(num_labels, dtype=np.uint8)[:, None, None]
    key = (near * ids).sum(axis=0, dtype=np.uint8)
    key[count != 1] = _UNSURE
    # the first ROI pixel (row, column) each sample may mix, and whether it may mix 3 of them
    row0, rows3 = _first_neighbour(ys.numpy(), m_h)
    col0, cols3 = _first_neighbour(xs.numpy(), m_w)
    labels = _shared_label(key, 2).take(row0, axis=0).take(col0, axis=1)
    if rows3.any() or cols3.any():
        cell3 = _shared_label(key, 3)
        labels[rows3] = cell3.take(row0[rows3], axis=0).take(col0, axis=1)
        labels[:, cols3] = cell3.take(row0, axis=0).take(col0[cols3], axis=1)
    todo = np.flatnonzero(labels == _UNSURE)
    if todo.size:
        rows, cols = (torch.from_numpy(i) for i in np.divmod(todo, labels.shape[1]))
        grid = torch.stack([xs[cols], ys[rows]], dim=-1)[None, None]  # (1, 1, K, 2)
        sampled = F.grid_sample(
            probs[None], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0, :, 0]
        labels.reshape(-1)[todo] = sampled.max(dim=0).indices.numpy()
    return torch.from_numpy(labels)


def _first_neighbour(coords: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """For normalised sample coordinates (align_corners=False, border padding): the first ROI
    pixel a sample may mix (int64) and whether it may mix three (bool), allowing for
    ``_POSITION_SLACK``."""
    position = ((coords.astype(np.float64) + 1) * size - 1) / 2
    low = np.clip(np.floor(position - _POSITION_SLACK), 0, size - 1)
    high = np.clip(np.floor(position + _POSITION_SLACK) + 1, 0, size - 1)
    return low.astype(np.int64), (high - low) > 1


def _shared_label(key: np.ndarray, size: int) -> np.ndarray:
    """uint8 (M, M): at (i, j), the label that every ROI pixel of rows i .. i + size - 1 and
    columns j .. j + size - 1 (clamped to the border) has in ``key``, else _UNSURE (also where
    ``key`` is _UNSURE)."""
    high, low = key, key
    for axis in (0, 1):
        n = key.shape[axis]
        last = [n - 1] * (size - 1)
        high_p = np.concatenate([high, high.take(last, axis=axis)], axis=axis)
        low_p = np.concatenate([low, low.take(last, axis=axis)], axis=axis)
        for shift in range(1, size):
            window = slice(shift, shift + n)
            index = (window, slice(None)) if axis == 0 else (slice(None), window)
            high = np.maximum(high, high_p[index])
            low = np.minimum(low, low_p[index])
    return np.where(low == high, high, np.uint8(_UNSURE))


def part_label_maps_in_image(instances: Instances) -> torch.Tensor:
    """uint8 (R, H, W) per-person part label maps of ``instances`` (needs ``pred_part_masks``,
    ``pred_boxes`` and ``image_size``); all zero for detections without part probabilities."""
    return paste_part_masks(
        instances.pred_part_masks, instances.pred_boxes.tensor, instances.image_size
    )

"""Pure post-processing of the part branch: per-ROI probabilities -> per-person part maps in image
space.

Shapes: R = detected persons (ROIs) of one image, C = number of part labels including background
(label 0), M = ROI resolution of the part branch, H x W = image size in pixels. S <= R: the
detections whose class has parts (:class:`~bodyparts.modeling.PartPredictions`).
"""

import math
from typing import List, Optional, Tuple

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
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1)[None]
    pasted = F.grid_sample(
        probs[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    # max(dim).indices: the first largest, as argmax, several times faster over dim 0 on CPU
    labels = pasted.max(dim=0).indices.to(torch.uint8)
    inside = (ys.abs() <= 1)[:, None] & (xs.abs() <= 1)[None, :]  # pixel centre in the box
    return labels.masked_fill_(~inside, 0), iy0, ix0


def part_label_maps_in_image(instances: Instances) -> torch.Tensor:
    """uint8 (R, H, W) per-person part label maps of ``instances`` (needs ``pred_part_masks``,
    ``pred_boxes`` and ``image_size``); all zero for detections without part probabilities."""
    return paste_part_masks(
        instances.pred_part_masks, instances.pred_boxes.tensor, instances.image_size
    )

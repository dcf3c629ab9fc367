"""Pure post-processing of the part branch: per-ROI logits -> per-person part maps in image space.

Shapes: R = detected persons (ROIs) of one image, C = number of part labels including background
(label 0), M = ROI resolution of the part branch, H x W = image size in pixels. S <= R: the
detections whose class has parts, when only some classes have (:class:`SubsetPartMasks`).
"""

import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from detectron2.structures import Instances

from .part_outputs import SubsetPartMasks

__all__ = ["part_inference", "store_part_probs", "paste_part_masks", "part_label_maps_in_image"]


def part_inference(
    part_logits: torch.Tensor,
    pred_instances: List[Instances],
    selected: Optional[Sequence[torch.Tensor]] = None,
) -> None:
    """Softmax over part labels, split per image, stored as ``pred_part_masks``.

    Args:
        part_logits: (R_total, C, M, M) logits for all images' detections, in the order of
            ``pred_instances`` (with ``selected``: of the selected detections only, S_total rows).
        pred_instances: per image, Instances with R_i detections; gets ``pred_part_masks``:
            float (R_i, C, M, M) probabilities (sum to 1 over C) in ROI space of ``pred_boxes``;
            with ``selected``, a :class:`SubsetPartMasks` holding the (S_i, C, M, M) rows.
        selected: per image, bool (R_i,): the detections the logits are for (classes with parts).
    """
    store_part_probs(part_logits.softmax(dim=1), pred_instances, selected)


def store_part_probs(
    part_probs: torch.Tensor,
    pred_instances: List[Instances],
    selected: Optional[Sequence[torch.Tensor]] = None,
) -> None:
    """:func:`part_inference` from probabilities already computed (e.g. ROI chunk by chunk):
    ``part_probs`` (R_total or S_total, C, M, M) split per image into ``pred_part_masks``."""
    if selected is None:
        num = [len(i) for i in pred_instances]
        for probs_i, inst in zip(part_probs.split(num, dim=0), pred_instances):
            inst.pred_part_masks = probs_i
        return
    num = [int(s.sum()) for s in selected]
    for probs_i, sel, inst in zip(part_probs.split(num, dim=0), selected, pred_instances):
        inst.pred_part_masks = SubsetPartMasks.from_selection(probs_i, sel)


def paste_part_masks(
    part_probs: Union[torch.Tensor, SubsetPartMasks], boxes: torch.Tensor, image_size
) -> torch.Tensor:
    """Paste per-ROI part probabilities into the image and take the arg-max per pixel.

    Args:
        part_probs: float (R, C, M, M) probabilities in ROI space, or a :class:`SubsetPartMasks`
            of R detections (those without part probabilities get all-zero maps).
        boxes: float (R, 4) XYXY boxes in image pixels (the ROIs of ``part_probs``).
        image_size: (H, W) of the output.
    Returns:
        uint8 (R, H, W): label 1..C-1 where the person's pasted part probability wins, 0 elsewhere
        (outside its box, or where background wins).

    Probabilities are resampled bilinearly (``grid_sample``, pixel centres, ``align_corners=False``)
    and only then arg-maxed, never label ids.
    """
    if isinstance(part_probs, SubsetPartMasks):
        size = (len(part_probs), int(image_size[0]), int(image_size[1]))
        out = torch.zeros(size, dtype=torch.uint8, device=part_probs.device)
        index = part_probs.index
        out[index] = paste_part_masks(part_probs.masks, boxes[index.to(boxes.device)], image_size)
        return out
    height, width = int(image_size[0]), int(image_size[1])
    num = part_probs.shape[0]
    out = torch.zeros((num, height, width), dtype=torch.uint8, device=part_probs.device)
    if num == 0:
        return out
    boxes = boxes.to(part_probs.dtype)
    for i in range(num):  # one box at a time: memory O(C * box area), not O(R * C * H * W)
        x0, y0, x1, y1 = boxes[i].tolist()
        ix0, iy0 = max(int(x0), 0), max(int(y0), 0)
        ix1, iy1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        xs = (torch.arange(ix0, ix1, device=boxes.device, dtype=boxes.dtype) + 0.5 - x0) / max(
            x1 - x0, 1e-6
        )
        ys = (torch.arange(iy0, iy1, device=boxes.device, dtype=boxes.dtype) + 0.5 - y0) / max(
            y1 - y0, 1e-6
        )
        gy, gx = torch.meshgrid(ys * 2 - 1, xs * 2 - 1, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)[None]
        pasted = F.grid_sample(
            part_probs[i : i + 1], grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        inside = (grid.abs() <= 1).all(dim=-1)[0]
        labels = pasted[0].argmax(dim=0).to(torch.uint8)
        out[i, iy0:iy1, ix0:ix1] = torch.where(inside, labels, torch.zeros_like(labels))
    return out


def part_label_maps_in_image(instances: Instances) -> torch.Tensor:
    """uint8 (R, H, W) per-person part label maps of ``instances`` (needs ``pred_part_masks``,
    ``pred_boxes`` and ``image_size``); all zero for detections without part probabilities."""
    return paste_part_masks(
        instances.pred_part_masks, instances.pred_boxes.tensor, instances.image_size
    )

"""Pure loss functions of the part branch and class-balancing weights of docs/metrics.md section 8.

Shapes: R = foreground ROIs of the batch, C = part labels including background (0), M = ROI side of
the part branch's output.
"""

from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.structures import Instances

__all__ = ["part_targets", "part_loss", "class_balance_weights", "IGNORE"]

IGNORE = 255


def part_targets(instances: List[Instances], size: int) -> torch.Tensor:
    """Ground-truth part labels of each foreground proposal, cropped and resized into its box.

    Args:
        instances: per image, foreground proposals with ``proposal_boxes`` and ``gt_part_maps``
            (:class:`~bodyparts.structures.PartMaps`, indexed to the matched person).
        size: M.
    Returns:
        long (R, M, M): labels in [0, C), IGNORE (255) for persons without part annotation and for
        points outside the image. Images whose instances lack ``gt_part_maps`` (datasets without
        part labels) give IGNORE everywhere.
    """
    out = []
    for inst in instances:
        if len(inst) == 0:
            continue
        boxes = inst.proposal_boxes.tensor
        if inst.has("gt_part_maps"):
            out.append(inst.gt_part_maps.crop_and_resize(boxes, size))
        else:
            out.append(
                torch.full((len(inst), size, size), IGNORE, dtype=torch.long, device=boxes.device)
            )
    if not out:
        return torch.zeros((0, size, size), dtype=torch.long)
    return torch.cat(out, dim=0)


def part_loss(
    part_logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-pixel softmax cross-entropy over background + parts, ignoring IGNORE pixels.

    Args:
        part_logits: (R, C, M, M); also image-level logits (N, C, H, W), which the semantic
            segmenter passes with R = N and M x M = H x W.
        targets: long (R, M', M'); resized to M x M with nearest sampling if M' != M.
        class_weights: optional float (C,), "outer" weighting ``-sum_i w_i y_i log softmax(x)_i``.
    Returns:
        scalar: the sum of (weighted) per-pixel losses divided by the number of labelled pixels,
        so persons without part labels count neither in the sum nor in the normaliser. With no
        labelled pixel (no foreground ROI, or no part labels in the batch) it is
        ``part_logits.sum() * 0``, connected to the graph so that every DDP process has the same
        autograd graph.
    """
    if part_logits.numel() == 0 or targets.numel() == 0:
        return part_logits.sum() * 0
    size = tuple(part_logits.shape[-2:])
    if tuple(targets.shape[-2:]) != size:
        targets = F.interpolate(targets[:, None].float(), size=size, mode="nearest")[:, 0].long()
    targets = targets.to(part_logits.device)
    valid = targets != IGNORE
    num_valid = int(valid.sum())
    if num_valid == 0:
        return part_logits.sum() * 0
    weight = None if class_weights is None else class_weights.to(part_logits)
    loss = F.cross_entropy(
        part_logits, targets, weight=weight, ignore_index=IGNORE, reduction="sum"
    )
    return loss / num_valid


def class_balance_weights(pixel_counts: Sequence[float], mode: str) -> np.ndarray:
    """Class weights from pixel counts ``C_i`` (docs/metrics.md section 8).

    - ``"none"``: all ones.
    - ``"inverse"``: ``w_i`` proportional to ``1 / f_i``, ``f_i = C_i / sum_j C_j``, normalised to
      mean 1.
    - ``"exponential"``: ``B_i = max(C) / C_i``, ``w_i = B_i exp(-(B_i - mean(B)) / (4 std(B)))``.

    Classes with a zero count get weight 0 (they never occur as targets). Returns float32 (C,).
    """
    c = np.asarray(pixel_counts, dtype=np.float64)
    present = c > 0
    w = np.zeros_like(c)
    if mode == "none":
        return np.ones_like(c, dtype=np.float32)
    if not present.any():
        raise ValueError("class_balance_weights: every class has a zero pixel count")
    if mode == "inverse":
        f = c[present] / c.sum()
        inv = 1.0 / f
        w[present] = inv / inv.mean()
    elif mode == "exponential":
        b = c.max() / c[present]
        std = b.std()
        w[present] = b * np.exp(-(b - b.mean()) / (4 * std)) if std > 0 else b
    else:
        raise ValueError(
            f"unknown class balance mode {mode!r}; expected 'none', 'inverse' or 'exponential'"
        )
    return w.astype(np.float32)

"""Typed part outputs for detectors where only some classes have parts.

Shapes: R = detections of one image, S = those of them whose class has parts (S <= R), C = part
labels including background, M = ROI side of the part branch.

A multi-class detector (the part-aware panoptic model on Pascal-Panoptic-Parts: 20 thing classes,
persons only with parts) runs the part branch on the S part-class detections only. Their
``pred_part_masks`` field is then a :class:`SubsetPartMasks`: an ``Instances`` field of length R
that stores the (S, C, M, M) probabilities once, so memory grows with S, not R (at R = 100,
C = 15, M = 128 a dense field would take 98 MB per image).
"""

from typing import Any, List, Union

import torch

__all__ = ["SubsetPartMasks"]


class SubsetPartMasks:
    """Part probabilities of some of the R detections of one image.

    Attributes:
        masks: float (S, C, M, M) softmax probabilities in ROI space, one per detection with parts,
            in detection order.
        index: long (S,) ascending: the detection (0..R-1) of each row of ``masks``.
        num_instances: R.

    Supports what ``Instances`` does with a field: ``len``, indexing by int, slice, bool (R,) or
    long index tensors (the result keeps the rows of the detections selected, in the new order),
    ``to(device)``, and ``SubsetPartMasks.cat`` (``Instances.cat``).
    """

    def __init__(self, masks: torch.Tensor, index: torch.Tensor, num_instances: int):
        index = torch.as_tensor(index, dtype=torch.long, device=masks.device)
        if masks.dim() != 4 or index.dim() != 1 or masks.shape[0] != index.numel():
            raise ValueError(
                f"SubsetPartMasks: masks of shape {tuple(masks.shape)} (expected (S, C, M, M)) and "
                f"an index of shape {tuple(index.shape)} (expected (S,))"
            )
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_instances):
            raise ValueError(
                f"SubsetPartMasks: index {index.tolist()} outside 0..{num_instances - 1}"
            )
        if index.numel() > 1 and not bool((index[1:] > index[:-1]).all()):
            raise ValueError(f"SubsetPartMasks: index {index.tolist()} is not strictly ascending")
        self.masks = masks
        self.index = index
        self.num_instances = int(num_instances)

    @classmethod
    def from_selection(cls, masks: torch.Tensor, selected: torch.Tensor) -> "SubsetPartMasks":
        """``masks`` (S, C, M, M) of the detections where the bool (R,) ``selected`` is True."""
        return cls(masks, torch.nonzero(selected.to(masks.device)).flatten(), selected.numel())

    def __len__(self) -> int:
        return self.num_instances

    @property
    def device(self) -> torch.device:
        return self.masks.device

    @property
    def has_masks(self) -> torch.Tensor:
        """bool (R,): whether each detection has part probabilities."""
        out = torch.zeros(self.num_instances, dtype=torch.bool, device=self.device)
        out[self.index] = True
        return out

    def _rows(self) -> torch.Tensor:
        """long (R,): row of ``masks`` of each detection, -1 where it has none."""
        rows = torch.full((self.num_instances,), -1, dtype=torch.long, device=self.device)
        rows[self.index] = torch.arange(self.index.numel(), device=self.device)
        return rows

    def __getitem__(self, item: Union[int, slice, torch.Tensor]) -> "SubsetPartMasks":
        if isinstance(item, int):
            if not -self.num_instances <= item < self.num_instances:
                raise IndexError(
                    f"SubsetPartMasks index {item} out of range for {self.num_instances}"
                )
            item = slice(item % self.num_instances, item % self.num_instances + 1)
        rows = self._rows()[item if not isinstance(item, torch.Tensor) else item.to(self.device)]
        rows = rows.reshape(-1)
        keep = rows >= 0
        return SubsetPartMasks(self.masks[rows[keep]], torch.nonzero(keep).flatten(), rows.numel())

    def to(self, *args: Any, **kwargs: Any) -> "SubsetPartMasks":
        masks = self.masks.to(*args, **kwargs)
        return SubsetPartMasks(masks, self.index.to(masks.device), self.num_instances)

    @classmethod
    def cat(cls, items: List["SubsetPartMasks"]) -> "SubsetPartMasks":
        """Concatenate along the detections (as ``Instances.cat``)."""
        if not items:
            raise ValueError("SubsetPartMasks.cat of an empty list")
        offsets, total = [], 0
        for item in items:
            offsets.append(item.index + total)
            total += item.num_instances
        return cls(torch.cat([i.masks for i in items]), torch.cat(offsets), total)

    def __repr__(self) -> str:
        return (
            f"SubsetPartMasks(num_instances={self.num_instances}, with_masks={self.index.numel()}, "
            f"masks={tuple(self.masks.shape)})"
        )

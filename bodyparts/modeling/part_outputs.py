"""The one output type of the part branch: :class:`PartPredictions`.

Shapes: R = detections (of one image once split per image), S = those of them whose class has
parts (S <= R; S = R for a person detector), C = part labels including background (label 0),
M = ROI side of the part branch.

The part branch's inference returns it (``BodyPartBranch.inference``) and stores it per image as
the ``pred_part_masks`` field of Detectron2's ``Instances``; its consumers (pasting into the image,
the flip TTA, the panoptic merge, the evaluators, the visualizer, the demo, the server and the
export outputs) read it through this class only. It stores the (S, C, M, M) probabilities once,
so memory grows with the detections that have parts, not with R: at R = 100, C = 15, M = 128 a
dense field for a 20-class panoptic detector would take 98 MB per image.

TorchScript compiles the class (the export's scripting path runs the same branch code); Detectron2's
scripted ``Instances`` holds only tensor and ``Boxes`` fields, so there the branch stores
:meth:`PartPredictions.dense` instead (``bodyparts.modeling.inference.store_part_predictions``).
"""

from dataclasses import dataclass
from typing import Any, List, Optional, Union

import torch
from torch import Tensor

__all__ = ["PartPredictions", "as_part_predictions"]


@dataclass(init=False, eq=False, repr=False)
class PartPredictions:
    """Part probabilities of the S detections with parts among R.

    Attributes:
        probs: float (S, C, M, M) softmax probabilities in ROI space (sum to 1 over C), in
            detection order.
        index: long (S,) strictly ascending: the detection (0..R-1) of each row of ``probs``.
        num_instances: R.

    As an ``Instances`` field it supports what ``Instances`` does with a field: ``len``, indexing
    by int, slice, bool (R,) or long index tensors (the rows of the detections selected, in the new
    order), ``to(device)`` and ``PartPredictions.cat`` (``Instances.cat``).
    """

    probs: Tensor
    index: Tensor
    num_instances: int

    def __init__(self, probs: Tensor, index: Tensor, num_instances: int):
        self.probs = probs
        self.index = index.to(device=probs.device, dtype=torch.long)
        self.num_instances = num_instances
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self._check()

    @torch.jit.unused
    def _check(self) -> None:
        probs, index, num = self.probs, self.index, self.num_instances
        if probs.dim() != 4 or index.dim() != 1 or probs.shape[0] != index.numel():
            raise ValueError(
                f"PartPredictions: probs of shape {tuple(probs.shape)} (expected (S, C, M, M)) "
                f"and an index of shape {tuple(index.shape)} (expected (S,))"
            )
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num):
            raise ValueError(f"PartPredictions: index {index.tolist()} outside 0..{num - 1}")
        if index.numel() > 1 and not bool((index[1:] > index[:-1]).all()):
            raise ValueError(f"PartPredictions: index {index.tolist()} is not strictly ascending")

    @staticmethod
    def from_dense(probs: Tensor) -> "PartPredictions":
        """Every one of the R detections has a row: ``probs`` (R, C, M, M)."""
        index = torch.arange(probs.shape[0], device=probs.device)
        return PartPredictions(probs, index, probs.shape[0])

    @staticmethod
    def from_selection(probs: Tensor, selected: Tensor) -> "PartPredictions":
        """``probs`` (S, C, M, M) of the detections where the bool (R,) ``selected`` is True."""
        index = torch.nonzero(selected.to(probs.device)).flatten()
        return PartPredictions(probs, index, selected.shape[0])

    def __len__(self) -> int:
        return self.num_instances

    def has_parts(self) -> Tensor:
        """bool (R,): whether each detection has part probabilities."""
        out = torch.zeros(self.num_instances, dtype=torch.bool, device=self.probs.device)
        out[self.index] = True
        return out

    def dense(self) -> Tensor:
        """float (R, C, M, M); all-zero rows for the detections without parts."""
        if self.probs.shape[0] == self.num_instances:
            return self.probs
        shape = [self.num_instances] + list(self.probs.shape[1:])
        out = self.probs.new_zeros(shape)
        out[self.index] = self.probs
        return out

    def to(self, device: torch.device) -> "PartPredictions":
        return PartPredictions(self.probs.to(device), self.index.to(device), self.num_instances)

    @torch.jit.unused
    def _rows(self) -> Tensor:
        """long (R,): row of ``probs`` of each detection, -1 where it has none."""
        rows = torch.full((self.num_instances,), -1, dtype=torch.long, device=self.probs.device)
        rows[self.index] = torch.arange(self.index.numel(), device=self.probs.device)
        return rows

    @torch.jit.unused
    def __getitem__(self, item: Union[int, slice, Tensor]) -> "PartPredictions":
        if isinstance(item, int):
            if not -self.num_instances <= item < self.num_instances:
                raise IndexError(
                    f"PartPredictions index {item} out of range for {self.num_instances}"
                )
            item = slice(item % self.num_instances, item % self.num_instances + 1)
        if isinstance(item, Tensor):
            item = item.to(self.probs.device)
        rows = self._rows()[item].reshape(-1)
        keep = rows >= 0
        return PartPredictions(self.probs[rows[keep]], torch.nonzero(keep).flatten(), rows.numel())

    @staticmethod
    @torch.jit.unused
    def cat(items: List["PartPredictions"]) -> "PartPredictions":
        """Concatenate along the detections (as ``Instances.cat``)."""
        if not items:
            raise ValueError("PartPredictions.cat of an empty list")
        offsets, total = [], 0
        for item in items:
            offsets.append(item.index + total)
            total += item.num_instances
        return PartPredictions(torch.cat([i.probs for i in items]), torch.cat(offsets), total)

    @torch.jit.unused
    def __repr__(self) -> str:
        return (
            f"PartPredictions(num_instances={self.num_instances}, "
            f"with_parts={self.index.numel()}, probs={tuple(self.probs.shape)})"
        )


def as_part_predictions(value: Any, source: Optional[str] = None) -> PartPredictions:
    """``value`` as :class:`PartPredictions`: itself, or a dense float (R, C, M, M) tensor (e.g.
    the ``part_probs`` output of an exported model, or probabilities a user built) with a row per
    detection. Anything else is a TypeError naming ``source``."""
    if isinstance(value, PartPredictions):
        return value
    if isinstance(value, Tensor) and value.dim() == 4:
        return PartPredictions.from_dense(value)
    shape = tuple(value.shape) if isinstance(value, Tensor) else None
    raise TypeError(
        f"{source or 'pred_part_masks'}: expected PartPredictions or a float (R, C, M, M) tensor, "
        f"got {type(value).__name__}" + (f" of shape {shape}" if shape is not None else "")
    )

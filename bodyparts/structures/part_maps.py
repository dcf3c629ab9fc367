"""Per-person part label maps as ground truth in ``Instances``.

Shapes: N = persons, H x W = image size (after augmentation). Labels follow the model's part
taxonomy: 0 background, k = part k, 255 = ignore (no part annotation for that person).

Indexing is lazy: ``PartMaps`` keeps the image's maps once and an index vector, so that
Detectron2's ``label_and_sample_proposals`` (which indexes every ``gt_*`` field by the matched GT of
each of hundreds of proposals) does not copy an (H, W) map per proposal. :meth:`crop_and_resize`
samples only the ROI grid points it needs.
"""

from typing import Optional, Union

import torch

__all__ = ["PartMaps"]


class PartMaps:
    """N per-person part label maps in image space.

    Attributes:
        base: uint8 tensor (N0, H, W), the image's persons' maps (shared, never copied by indexing).
        index: long tensor (N,), which map of ``base`` each entry is.
    """

    IGNORE = 255

    def __init__(self, tensor: torch.Tensor, index: Optional[torch.Tensor] = None):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor)
        if tensor.dim() != 3:
            raise ValueError(
                f"PartMaps expects an (N, H, W) tensor, got shape {tuple(tensor.shape)}"
            )
        if tensor.dtype != torch.uint8:
            raise ValueError(f"PartMaps expects uint8 labels, got {tensor.dtype}")
        self.base = tensor
        if index is None:
            index = torch.arange(tensor.shape[0], device=tensor.device)
        self.index = index.to(device=tensor.device, dtype=torch.long)

    @property
    def tensor(self) -> torch.Tensor:
        """uint8 (N, H, W): the maps, materialised (copies unless no indexing happened)."""
        if self.index.numel() == self.base.shape[0] and torch.equal(
            self.index, torch.arange(self.base.shape[0], device=self.base.device)
        ):
            return self.base
        return self.base[self.index]

    @property
    def image_size(self):
        return tuple(self.base.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.base.device

    def to(self, *args, **kwargs) -> "PartMaps":
        base = self.base.to(*args, **kwargs)
        return PartMaps(base, self.index.to(base.device))

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, item: Union[int, slice, torch.Tensor]) -> "PartMaps":
        if isinstance(item, int):
            # index[item].view(1), not index[item : item + 1]: the slice is empty for -1 and
            # silently empty out of range, where an int index must raise IndexError.
            return PartMaps(self.base, self.index[item].view(1))
        return PartMaps(self.base, self.index[item])

    def has_parts(self) -> torch.Tensor:
        """Bool tensor (N,): whether each person has part annotation (not all-ignore)."""
        if len(self) == 0:
            return torch.zeros(0, dtype=torch.bool, device=self.device)
        per_base = (self.base != self.IGNORE).flatten(1).any(dim=1)
        return per_base[self.index]

    def crop_and_resize(self, boxes: torch.Tensor, size: int) -> torch.Tensor:
        """Part labels of each entry sampled on a ``size`` x ``size`` grid inside its box.

        Nearest-neighbour: grid point (i, j) of box (x0, y0, x1, y1) takes the label of the pixel
        containing (x0 + (j + 0.5) (x1 - x0) / size, y0 + (i + 0.5) (y1 - y0) / size). Label ids are
        never interpolated. Points outside the image get IGNORE.

        Args:
            boxes: float (N, 4) XYXY in image pixels, one per entry.
            size: M, the output side.
        Returns:
            long (N, M, M) labels.
        """
        n = len(self)
        if n == 0:
            return torch.zeros((0, size, size), dtype=torch.long, device=self.device)
        boxes = boxes.to(self.device, dtype=torch.float32)
        steps = (torch.arange(size, device=self.device, dtype=torch.float32) + 0.5) / size
        xs = boxes[:, 0:1] + steps[None] * (boxes[:, 2:3] - boxes[:, 0:1])  # (N, M)
        ys = boxes[:, 1:2] + steps[None] * (boxes[:, 3:4] - boxes[:, 1:2])
        h, w = self.image_size
        xi, yi = xs.floor().long(), ys.floor().long()
        inside = ((yi >= 0) & (yi < h))[:, :, None] & ((xi >= 0) & (xi < w))[:, None, :]
        labels = self.base[
            self.index[:, None, None],
            yi.clamp(0, h - 1)[:, :, None],
            xi.clamp(0, w - 1)[:, None, :],
        ].long()
        return torch.where(inside, labels, torch.full_like(labels, self.IGNORE))

    @staticmethod
    def cat(maps) -> "PartMaps":
        return PartMaps(torch.cat([m.tensor for m in maps], dim=0))

    def __repr__(self) -> str:
        return f"PartMaps(num_instances={len(self)}, image_size={self.image_size})"

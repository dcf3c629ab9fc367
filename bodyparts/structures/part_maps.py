"""Per-person part label maps as ground truth in ``Instances``.

Shapes: N = persons, H x W = image size (after augmentation). Labels follow the model's part
taxonomy: 0 background, k = part k, 255 = ignore (no part annotation for that person).
"""
from typing import Union

import torch

__all__ = ["PartMaps"]


class PartMaps:
    """N per-person part label maps in image space.

    Attributes:
        tensor: uint8 tensor (N, H, W).
    """

    IGNORE = 255

    def __init__(self, tensor: torch.Tensor):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor)
        if tensor.dim() != 3:
            raise ValueError(f"PartMaps expects an (N, H, W) tensor, got shape {tuple(tensor.shape)}")
        if tensor.dtype != torch.uint8:
            raise ValueError(f"PartMaps expects uint8 labels, got {tensor.dtype}")
        self.tensor = tensor

    @property
    def image_size(self):
        return tuple(self.tensor.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to(self, *args, **kwargs) -> "PartMaps":
        return PartMaps(self.tensor.to(*args, **kwargs))

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item: Union[int, slice, torch.Tensor]) -> "PartMaps":
        if isinstance(item, int):
            # tensor[item].unsqueeze(0), not tensor[item : item + 1]: the slice is empty for -1 and
            # silently empty out of range, where an int index must raise IndexError.
            return PartMaps(self.tensor[item].unsqueeze(0))
        return PartMaps(self.tensor[item])

    def has_parts(self) -> torch.Tensor:
        """Bool tensor (N,): whether each person has part annotation (not all-ignore)."""
        if len(self) == 0:
            return torch.zeros(0, dtype=torch.bool, device=self.device)
        return (self.tensor != self.IGNORE).flatten(1).any(dim=1)

    @staticmethod
    def cat(maps) -> "PartMaps":
        return PartMaps(torch.cat([m.tensor for m in maps], dim=0))

    def __repr__(self) -> str:
        return f"PartMaps(num_instances={len(self)}, image_size={self.image_size})"

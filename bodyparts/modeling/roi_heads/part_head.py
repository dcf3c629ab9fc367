"""Part heads: ROI features -> per-pixel logits over background + body parts.

Shapes: R = ROIs, D = input channels, P = pooler resolution, C = part labels including background,
M = output side (the built-in heads: P * 2 * up_scale), D' x P' x P' = trunk features.

The contract of a part head (what :class:`BodyPartBranch` relies on, nothing more):

- **Required.** An ``nn.Module`` registered in ``ROI_BODYPART_HEAD_REGISTRY``, built as
  ``cls(cfg, input_shape)`` (``input_shape``: ShapeSpec of the pooled features, ``channels`` = D,
  ``height`` = ``width`` = P), whose ``forward(x)`` maps ROI features (R, D, P, P) to part logits
  (R, C, M, M), C = the number of labels of ``BODYPARTS.PART_TAXONOMY``. Any M works: targets are
  cropped to the logits' size.
- **Optional: a shared trunk**, needed only by ``MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS``
  (keypoint heatmaps from the head's features): ``trunk(x)`` (R, D, P, P) -> (R, D', P', P'),
  ``predict(features)`` (R, D', P', P') -> (R, C, M, M) with ``forward(x) == predict(trunk(x))``,
  and the int attribute ``out_channels`` = D'. :func:`check_shared_trunk` checks it when the
  branch is built.
"""

from typing import Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ConvTranspose2d, ShapeSpec, get_norm
from detectron2.utils.registry import Registry
from torch import nn

from ...config import ConfigValueError
from ...taxonomy import get_part_taxonomy

__all__ = [
    "ROI_BODYPART_HEAD_REGISTRY",
    "PartRCNNConvDeconvHead",
    "PartDilatedContextHead",
    "build_part_head",
    "check_shared_trunk",
]

ROI_BODYPART_HEAD_REGISTRY = Registry("ROI_BODYPART_HEAD")
ROI_BODYPART_HEAD_REGISTRY.__doc__ = """
Registry for part heads. A head is an ``nn.Module`` built with ``cls(cfg, input_shape)`` whose
``forward`` takes ROI features (R, D, P, P) and returns part logits (R, C, M, M). Optional
extension for ``MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS``: ``trunk(x)`` -> (R, D', P', P'),
``predict(features)`` -> (R, C, M, M) with ``forward(x) == predict(trunk(x))``, and
``out_channels`` = D' (see the module docstring of ``bodyparts.modeling.roi_heads.part_head``).
"""

SHARED_TRUNK_MEMBERS = ("trunk", "predict", "out_channels")


def check_shared_trunk(head: nn.Module, needed_by: str) -> None:
    """Raise TypeError naming ``needed_by`` unless ``head`` has the optional shared-trunk members
    (``trunk``, ``predict`` callables and an int ``out_channels``)."""
    missing = [m for m in SHARED_TRUNK_MEMBERS[:2] if not callable(getattr(head, m, None))]
    if not isinstance(getattr(head, "out_channels", None), int):
        missing.append("out_channels")
    if missing:
        raise TypeError(
            f"part head {type(head).__name__} lacks {', '.join(missing)}: {needed_by} needs the "
            "optional shared-trunk extension of the part-head contract "
            f"({', '.join(SHARED_TRUNK_MEMBERS)}; see ROI_BODYPART_HEAD_REGISTRY)"
        )


class PartRCNNConvDeconvHead(nn.Module):
    """Mask R-CNN-style part head: 3x3 convs, a stride-2 deconv, a 1x1 predictor over C labels,
    then bilinear upsampling of the logits by ``up_scale`` (Parsing R-CNN: P=32 -> 64 -> 128).
    Implements the shared-trunk extension: ``trunk`` = the convs, D' = ``conv_dims[-1]``, P' = P."""

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_classes: int,
        conv_dims: Sequence[int],
        dilations: Sequence[int] = (),
        conv_norm: str = "",
        up_scale: int = 2,
    ):
        """
        Args:
            input_shape: channels of the pooled ROI features.
            num_classes: C, background included.
            conv_dims: output channels of each 3x3 conv (at least one).
            dilations: dilation of each conv (default all 1); padding keeps the resolution.
            conv_norm: normalization of the convs ("" = none, "GN", "BN", ...).
            up_scale: bilinear upsampling factor applied to the logits after the deconv.
        """
        super().__init__()
        if not conv_dims:
            raise ValueError("a part head needs at least one conv (ROI_BODYPART_HEAD.CONV_DIMS)")
        dilations = tuple(dilations) or (1,) * len(conv_dims)
        if len(dilations) != len(conv_dims):
            raise ValueError(
                f"{len(dilations)} dilations for {len(conv_dims)} convs "
                "(ROI_BODYPART_HEAD.DILATIONS)"
            )
        self.up_scale = up_scale
        self.convs = nn.ModuleList()
        channels = input_shape.channels
        for dim, dil in zip(conv_dims, dilations):
            self.convs.append(
                Conv2d(
                    channels,
                    dim,
                    3,
                    padding=dil,
                    dilation=dil,
                    bias=not conv_norm,
                    norm=get_norm(conv_norm, dim),
                    activation=nn.ReLU(inplace=True),  # the conv output is not kept twice
                )
            )
            channels = dim
        self.deconv = ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        self.predictor = Conv2d(channels, num_classes, 1)
        self.out_channels = channels
        for layer in [*self.convs, self.deconv]:
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.constant_(layer.bias, 0)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.constant_(self.predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape):
        node = cfg.MODEL.ROI_BODYPART_HEAD
        return {
            "input_shape": input_shape,
            "num_classes": get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).num_classes,
            "conv_dims": list(node.CONV_DIMS),
            "conv_norm": node.NORM,
            "up_scale": node.UP_SCALE,
        }

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(R, D, P, P) -> (R, conv_dims[-1], P, P): the conv features before the deconv."""
        for conv in self.convs:
            x = conv(x)
        return x

    def predict(self, trunk: torch.Tensor) -> torch.Tensor:
        """(R, conv_dims[-1], P, P) trunk features -> (R, C, M, M) part logits."""
        x = self.predictor(F.relu(self.deconv(trunk), inplace=True))
        if self.up_scale != 1:
            x = F.interpolate(
                x, scale_factor=float(self.up_scale), mode="bilinear", align_corners=False
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, D, P, P) ROI features -> (R, C, M, M) part logits, M = P * 2 * up_scale."""
        return self.predict(self.trunk(x))


ROI_BODYPART_HEAD_REGISTRY.register(PartRCNNConvDeconvHead)


@ROI_BODYPART_HEAD_REGISTRY.register()
class PartDilatedContextHead(PartRCNNConvDeconvHead):
    """The conv-deconv head with dilated 3x3 convs (``ROI_BODYPART_HEAD.DILATIONS``, e.g. 1, 2, 4,
    8): a receptive field covering the whole ROI at the same cost, for wider context between
    parts."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["dilations"] = list(cfg.MODEL.ROI_BODYPART_HEAD.DILATIONS)
        return ret


def build_part_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """The registry's head ``MODEL.ROI_BODYPART_HEAD.NAME``, built as ``cls(cfg, input_shape)``.
    An unregistered name is a ConfigValueError naming the key and the registered heads."""
    name = cfg.MODEL.ROI_BODYPART_HEAD.NAME
    registered = sorted(name for name, _ in ROI_BODYPART_HEAD_REGISTRY)
    if name not in registered:
        raise ConfigValueError(
            f"MODEL.ROI_BODYPART_HEAD.NAME {name!r} is not valid; choose one of: "
            f"{', '.join(registered)} (or register your head in ROI_BODYPART_HEAD_REGISTRY)"
        )
    return ROI_BODYPART_HEAD_REGISTRY.get(name)(cfg, input_shape)

"""Part heads: ROI features -> per-pixel logits over background + body parts.

Shapes: R = ROIs, D = input channels, P = pooler resolution, C = part labels including background,
M = output resolution = P * 2 * up_scale.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ConvTranspose2d, ShapeSpec, get_norm
from detectron2.utils.registry import Registry
from torch import nn

from ...taxonomy import get_part_taxonomy

__all__ = ["ROI_BODYPART_HEAD_REGISTRY", "PartRCNNConvDeconvHead", "PartDilatedContextHead", "build_part_head"]

ROI_BODYPART_HEAD_REGISTRY = Registry("ROI_BODYPART_HEAD")
ROI_BODYPART_HEAD_REGISTRY.__doc__ = """
Registry for part heads: take ROI features (R, D, P, P), return part logits (R, C, M, M).
Built with ``cfg, input_shape``.
"""


class PartRCNNConvDeconvHead(nn.Module):
    """Mask R-CNN-style part head: 3x3 convs, a stride-2 deconv, a 1x1 predictor over C labels,
    then bilinear upsampling of the logits by ``up_scale`` (Parsing R-CNN: P=32 -> 64 -> 128)."""

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
            raise ValueError(f"{len(dilations)} dilations for {len(conv_dims)} convs (ROI_BODYPART_HEAD.DILATIONS)")
        self.up_scale = up_scale
        self.convs = nn.ModuleList()
        channels = input_shape.channels
        for dim, dil in zip(conv_dims, dilations):
            self.convs.append(
                Conv2d(channels, dim, 3, padding=dil, dilation=dil, bias=not conv_norm,
                       norm=get_norm(conv_norm, dim), activation=F.relu)
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
        x = self.predictor(F.relu(self.deconv(trunk)))
        if self.up_scale != 1:
            x = F.interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, D, P, P) ROI features -> (R, C, M, M) part logits, M = P * 2 * up_scale."""
        return self.predict(self.trunk(x))


ROI_BODYPART_HEAD_REGISTRY.register(PartRCNNConvDeconvHead)


@ROI_BODYPART_HEAD_REGISTRY.register()
class PartDilatedContextHead(PartRCNNConvDeconvHead):
    """The conv-deconv head with dilated 3x3 convs (``ROI_BODYPART_HEAD.DILATIONS``, e.g. 1, 2, 4, 8):
    a receptive field covering the whole ROI at the same cost, for wider context between parts."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["dilations"] = list(cfg.MODEL.ROI_BODYPART_HEAD.DILATIONS)
        return ret


def build_part_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    return ROI_BODYPART_HEAD_REGISTRY.get(cfg.MODEL.ROI_BODYPART_HEAD.NAME)(cfg, input_shape)


"""RegNet backbones for CPU speed: Detectron2's own RegNet
(``detectron2/modeling/backbone/regnet.py``, the design space of Radosavovic et al. 2020, "Designing
Network Design Spaces") alone or under Detectron2's FPN, built from the ``MODEL.REGNETS`` keys and
registered in ``BACKBONE_REGISTRY``:

* ``build_regnet_backbone``: the RegNet, stages ``s1``..``s4`` at strides 4, 8, 16, 32;
* ``build_regnet_fpn_backbone``: the RegNet under ``FPN`` (``MODEL.FPN.*``; P2-P6 as the ResNet
  FPN gives).

The defaults are RegNetX-400MF (about 1/4 of ResNet-18's FLOPs). Other published RegNets only
change ``DEPTH``, ``W_0``, ``W_A``, ``W_M``, ``GROUP_WIDTH`` and ``SE_RATIO`` (README.md lists
some).
"""

from typing import List

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
from detectron2.modeling.backbone.regnet import (
    RegNet,
    ResBottleneckBlock,
    SimpleStem,
    generate_regnet_parameters,
)

__all__ = ["build_regnet_backbone", "build_regnet_fpn_backbone", "regnet_stage_names"]


def regnet_stage_names(depth: int, w_a: float, w_0: int, w_m: float) -> List[str]:
    """Names of the stages (``s1``, ``s2``, ...) that these RegNet parameters give.

    Raises:
        ValueError: parameters outside the RegNet design space (names the ``MODEL.REGNETS`` keys).
    """
    if not (depth >= 1 and w_a >= 0 and w_0 > 0 and w_m > 1 and w_0 % 8 == 0):
        raise ValueError(
            f"MODEL.REGNETS: DEPTH={depth}, W_A={w_a}, W_0={w_0}, W_M={w_m} are not RegNet "
            "parameters "
            "(need DEPTH >= 1, W_A >= 0, W_0 > 0 and a multiple of 8, W_M > 1)"
        )
    num_stages = generate_regnet_parameters(w_a, w_0, w_m, depth)[2]
    return [f"s{i + 1}" for i in range(num_stages)]


@BACKBONE_REGISTRY.register()
def build_regnet_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """Detectron2's ``RegNet`` (simple stem, residual bottleneck blocks with group convs) from
    ``MODEL.REGNETS``; ``MODEL.BACKBONE.FREEZE_AT`` freezes the stem (1) and stages (2, ...).

    Raises:
        ValueError: naming the key, for parameters outside the design space, ``OUT_FEATURES``
            that are not stages of the network, a ``NORM`` whose groups do not divide the widths,
            or an input with other than 3 channels.
    """
    node = cfg.MODEL.REGNETS
    if input_shape.channels != 3:
        raise ValueError(
            f"RegNet backbone: the stem takes 3 input channels, got {input_shape.channels} "
            "(MODEL.PIXEL_MEAN)"
        )
    stages = regnet_stage_names(node.DEPTH, node.W_A, node.W_0, node.W_M)
    missing = [f for f in node.OUT_FEATURES if f not in stages]
    if missing or not node.OUT_FEATURES:
        raise ValueError(
            f"MODEL.REGNETS.OUT_FEATURES {list(node.OUT_FEATURES)}: {missing or 'empty'}; this "
            f"RegNet has stages {stages}"
        )
    try:
        return RegNet(
            stem_class=SimpleStem,
            stem_width=node.STEM_WIDTH,
            block_class=ResBottleneckBlock,
            depth=node.DEPTH,
            w_a=node.W_A,
            w_0=node.W_0,
            w_m=node.W_M,
            group_width=node.GROUP_WIDTH,
            bottleneck_ratio=node.BOTTLENECK_RATIO,
            se_ratio=node.SE_RATIO,
            freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
            norm=node.NORM,
            out_features=list(node.OUT_FEATURES),
        )
    except ValueError as e:  # e.g. GroupNorm's 32 groups and a width that is not a multiple
        raise ValueError(
            f"MODEL.REGNETS (NORM={node.NORM!r}, widths from W_0/W_A/W_M): {e}"
        ) from None


@BACKBONE_REGISTRY.register()
def build_regnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """:func:`build_regnet_backbone` under Detectron2's ``FPN`` (``MODEL.FPN.IN_FEATURES``,
    ``OUT_CHANNELS``, ``NORM``, ``FUSE_TYPE``; a max-pooled P6 on top, as the ResNet FPN)."""
    bottom_up = build_regnet_backbone(cfg, input_shape)
    available = list(bottom_up.output_shape())
    missing = [f for f in cfg.MODEL.FPN.IN_FEATURES if f not in available]
    if missing:
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES {list(cfg.MODEL.FPN.IN_FEATURES)}: {missing} not among the "
            f"RegNet outputs {available} (MODEL.REGNETS.OUT_FEATURES)"
        )
    return FPN(
        bottom_up=bottom_up,
        in_features=list(cfg.MODEL.FPN.IN_FEATURES),
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )

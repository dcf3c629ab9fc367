"""Backbones added by bodyparts (registered in Detectron2's BACKBONE_REGISTRY on import)."""

from .regnet import (  # noqa: F401
    build_regnet_backbone,
    build_regnet_fpn_backbone,
    regnet_stage_names,
)

"""The image-level body-part segmenter: Detectron2's semantic FPN with a class-balanced part loss.

``META_ARCHITECTURE: BodyPartsSemanticSegmentor`` with ``SEM_SEG_HEAD.NAME: BodyPartSemSegFPNHead``
predicts, for every pixel, a label of ``BODYPARTS.PART_TAXONOMY`` (background 0 included). Both are
registered in Detectron2's registries on import.

Shapes: N images, C = labels of the model's part taxonomy, H x W the padded input size, H/s x W/s
the head's output at ``SEM_SEG_HEAD.COMMON_STRIDE`` s.
"""

from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY, SemanticSegmentor
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

from ..taxonomy import PartTaxonomy, get_part_taxonomy
from .losses import IGNORE, part_loss
from .roi_heads.class_weights import checked_class_weights, initial_class_weights

__all__ = ["BodyPartSemSegFPNHead", "BodyPartsSemanticSegmentor", "check_sem_seg_config"]


def check_sem_seg_config(cfg) -> PartTaxonomy:
    """Start-up check of the semantic part segmenter's keys; returns the model's part taxonomy.

    Raises:
        ValueError: ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` differs from the number of labels of
            ``BODYPARTS.PART_TAXONOMY``, or ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE`` is not 255
            (the mapper's ignore label); names both keys.
    """
    taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
    head = cfg.MODEL.SEM_SEG_HEAD
    if head.NUM_CLASSES != taxonomy.num_classes:
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.NUM_CLASSES={head.NUM_CLASSES} but BODYPARTS.PART_TAXONOMY="
            f"{taxonomy.name!r} has {taxonomy.num_classes} labels "
            f"(background + {taxonomy.num_parts} parts)"
        )
    if head.IGNORE_VALUE != IGNORE:
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.IGNORE_VALUE={head.IGNORE_VALUE}; the part maps of "
            f"BODYPARTS.PART_TAXONOMY={taxonomy.name!r} mark ignored pixels with {IGNORE}"
        )
    return taxonomy


@SEM_SEG_HEADS_REGISTRY.register()
class BodyPartSemSegFPNHead(SemSegFPNHead):
    """Detectron2's semantic FPN head whose loss is the class-weighted ("outer") cross-entropy of
    docs/metrics.md section 8, ``-sum_i w_i y_i log softmax(x)_i``, summed over labelled pixels and
    divided by their number (255 ignored). Without weights it equals Detectron2's mean loss; a
    batch without any labelled pixel gives a zero loss connected to the graph.
    """

    # class_weights.py: this module's class_weights buffer is MODEL.BODYPART_SEM_SEG's, its
    # background pixels counted over the whole image
    class_weights_node = "BODYPART_SEM_SEG"
    class_weights_background = "image"

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        class_weights: Optional[torch.Tensor] = None,
        ignore_value: int = IGNORE,
        **kwargs,
    ):
        """
        Args:
            input_shape, num_classes, kwargs: as ``SemSegFPNHead`` (conv_dims, common_stride,
                loss_weight, norm).
            class_weights: optional (C,) per-label loss weights (background first), kept in the
                checkpoint (a persistent buffer); NaN = not computed yet (the Trainer fills
                them, ``roi_heads/class_weights.py``).
            ignore_value: must be 255, the mappers' ignore label.
        """
        if ignore_value != IGNORE:
            raise ValueError(
                f"BodyPartSemSegFPNHead: ignore_value must be {IGNORE}, got {ignore_value}"
            )
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if tuple(weights.shape) != (num_classes,):
                raise ValueError(
                    f"BodyPartSemSegFPNHead: class_weights of shape {tuple(weights.shape)} for "
                    f"{num_classes} classes"
                )
        super().__init__(input_shape, num_classes=num_classes, ignore_value=ignore_value, **kwargs)
        self.register_buffer("class_weights", weights)  # persistent: in the checkpoint

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        check_sem_seg_config(cfg)
        ret = super().from_config(cfg, input_shape)
        ret["class_weights"] = initial_class_weights(cfg, "BODYPART_SEM_SEG")  # reads no dataset
        return ret

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            predictions: (N, C, H/s, W/s) logits.
            targets: long (N, H, W) labels, 255 ignored.
        Returns:
            ``{"loss_sem_seg": scalar}``, times ``loss_weight``.
        """
        predictions = F.interpolate(
            predictions.float(),
            scale_factor=self.common_stride,
            mode="bilinear",
            align_corners=False,
        )
        weights = checked_class_weights(
            self.class_weights, "BodyPartSemSegFPNHead (MODEL.BODYPART_SEM_SEG)"
        )
        return {"loss_sem_seg": part_loss(predictions, targets, weights) * self.loss_weight}


@META_ARCH_REGISTRY.register()
class BodyPartsSemanticSegmentor(SemanticSegmentor):
    """Detectron2's ``SemanticSegmentor`` predicting image-level part maps in the model's part
    taxonomy. Inputs as Detectron2's (``image``, ``sem_seg`` in training, ``height``/``width``);
    in inference each output is ``{"sem_seg": (C, height, width) logits}``.
    """

    @configurable
    def __init__(self, *, part_taxonomy: Union[str, PartTaxonomy], **kwargs):
        """
        Args:
            part_taxonomy: the taxonomy (or its name) whose labels the head predicts.
            kwargs: as ``SemanticSegmentor`` (backbone, sem_seg_head, pixel_mean, pixel_std).
        Raises:
            ValueError: the head predicts another number of classes than the taxonomy has labels.
        """
        super().__init__(**kwargs)
        if not isinstance(part_taxonomy, PartTaxonomy):
            part_taxonomy = get_part_taxonomy(part_taxonomy)
        predictor = getattr(self.sem_seg_head, "predictor", None)
        if predictor is not None and predictor.out_channels != part_taxonomy.num_classes:
            raise ValueError(
                f"the semantic head predicts {predictor.out_channels} classes; part taxonomy "
                f"{part_taxonomy.name!r} has {part_taxonomy.num_classes} labels"
            )
        self.part_taxonomy = part_taxonomy

    @classmethod
    def from_config(cls, cfg):
        taxonomy = check_sem_seg_config(cfg)
        return {**super().from_config(cfg), "part_taxonomy": taxonomy}

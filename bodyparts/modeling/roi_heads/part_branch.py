"""The part branch as a component any ROI heads can use, and the mixin that wires it in.

Add part masks to an existing Detectron2 ROI-heads class in a few lines::

    from detectron2.modeling.roi_heads import CascadeROIHeads, ROI_HEADS_REGISTRY
    from bodyparts.modeling import BodyPartHeadsMixin

    @ROI_HEADS_REGISTRY.register()
    class CascadeBodyPartROIHeads(BodyPartHeadsMixin, CascadeROIHeads):
        pass

and set ``MODEL.ROI_HEADS.NAME: CascadeBodyPartROIHeads`` and ``MODEL.BODYPART_ON: True``. The mixin
adds ``_init_part_head`` / ``_forward_part`` and extends ``forward`` and
``forward_with_given_boxes`` through ``super()``: the host class keeps its own box, mask and
keypoint logic. Without the mixin, build a :class:`BodyPartBranch` and call it yourself.
"""
from typing import Dict, List, Optional, Union

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.layers import ConvTranspose2d, interpolate
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads.keypoint_head import keypoint_rcnn_inference, keypoint_rcnn_loss
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Instances
from torch import nn

from ..inference import part_inference
from ..losses import part_loss, part_targets
from .part_head import build_part_head

__all__ = ["BodyPartBranch", "BodyPartHeadsMixin", "subsample_foreground"]


def subsample_foreground(instances: List[Instances], max_per_image: int) -> List[Instances]:
    """Keep at most ``max_per_image`` proposals per image, chosen at random (all if fewer)."""
    out = []
    for inst in instances:
        if max_per_image > 0 and len(inst) > max_per_image:
            keep = torch.randperm(len(inst), device=inst.proposal_boxes.device)[:max_per_image]
            inst = inst[keep]
        out.append(inst)
    return out


class BodyPartBranch(nn.Module):
    """Pooler + part head + loss/inference of the per-person part label maps.

    Training (``forward(features, proposals)`` on sampled proposals with ``gt_classes``,
    ``proposal_boxes`` and ``gt_part_maps``): selects foreground proposals, keeps at most
    ``max_fg_per_image`` of them, returns ``{"loss_part": loss_weight * part_loss}``.

    Inference (``forward(features, instances)`` on detections with ``pred_boxes``): adds
    ``pred_part_masks`` (R, C, M, M) probabilities in ROI space; with ``silhouette_from_parts`` also
    ``pred_masks`` = 1 - P(background) (R, 1, M, M). Pasting into image space happens in
    post-processing (``BodyPartsRCNN``, ``part_label_maps_in_image``), once the boxes are in the
    output image's coordinates.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: List[str],
        pooler: ROIPooler,
        head: nn.Module,
        num_classes: int,
        loss_weight: float = 1.0,
        max_fg_per_image: int = 16,
        class_weights: Optional[torch.Tensor] = None,
        silhouette_from_parts: bool = False,
        num_keypoints: int = 0,
    ):
        """
        Args:
            num_keypoints: > 0 to predict keypoints from the part head's conv features (shared
                trunk, one pooling) instead of Detectron2's keypoint head: a stride-2 deconv to
                K heatmaps, upsampled to the part output size, trained with
                ``keypoint_rcnn_loss`` (normalised by visible keypoints).
        """
        super().__init__()
        self.in_features = in_features
        self.pooler = pooler
        self.head = head
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.max_fg_per_image = max_fg_per_image
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.shape != (num_classes,):
                raise ValueError(f"class_weights has shape {tuple(class_weights.shape)}, expected ({num_classes},)")
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.silhouette_from_parts = silhouette_from_parts
        self.keypoint_predictor = None
        if num_keypoints > 0:
            dim = head.out_channels
            self.keypoint_predictor = ConvTranspose2d(dim, num_keypoints, 4, stride=2, padding=1)
            nn.init.kaiming_normal_(self.keypoint_predictor.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(self.keypoint_predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        from ...taxonomy import get_part_taxonomy
        from .class_weights import class_weights_from_cfg

        node = cfg.MODEL.ROI_BODYPART_HEAD
        in_features = list(node.IN_FEATURES)
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise KeyError(f"MODEL.ROI_BODYPART_HEAD.IN_FEATURES {missing} not among the backbone's {sorted(input_shape)}")
        channels = {input_shape[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(f"MODEL.ROI_BODYPART_HEAD.IN_FEATURES have different channel counts {channels}")
        pooler = ROIPooler(
            output_size=node.POOLER_RESOLUTION,
            scales=tuple(1.0 / input_shape[f].stride for f in in_features),
            sampling_ratio=node.POOLER_SAMPLING_RATIO,
            pooler_type=node.POOLER_TYPE,
        )
        shape = ShapeSpec(channels=channels.pop(), height=node.POOLER_RESOLUTION, width=node.POOLER_RESOLUTION)
        if node.SILHOUETTE_FROM_PARTS and cfg.MODEL.MASK_ON:
            raise ValueError(
                "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS and MODEL.MASK_ON both set: choose one source of pred_masks"
            )
        if node.KEYPOINTS_FROM_PARTS and cfg.MODEL.KEYPOINT_ON:
            raise ValueError(
                "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS and MODEL.KEYPOINT_ON both set: choose one keypoint head"
            )
        return {
            "in_features": in_features,
            "pooler": pooler,
            "head": build_part_head(cfg, shape),
            "num_classes": get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).num_classes,
            "loss_weight": node.LOSS_WEIGHT,
            "max_fg_per_image": node.MAX_FG_PER_IMAGE,
            "class_weights": class_weights_from_cfg(cfg),
            "silhouette_from_parts": node.SILHOUETTE_FROM_PARTS,
            "num_keypoints": cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS if node.KEYPOINTS_FROM_PARTS else 0,
        }

    def forward(
        self, features: Dict[str, torch.Tensor], instances: List[Instances], num_classes: Optional[int] = None
    ) -> Union[Dict[str, torch.Tensor], List[Instances]]:
        """See the class docstring. ``num_classes``: the detector's number of object classes
        (foreground = ``gt_classes < num_classes``); default: all non-background proposals."""
        feats = [features[f] for f in self.in_features]
        if self.training:
            fg, _ = select_foreground_proposals(instances, num_classes if num_classes is not None else 1)
            fg = subsample_foreground(fg, self.max_fg_per_image)
            trunk = self.head.trunk(self.pooler(feats, [x.proposal_boxes for x in fg]))
            logits = self.head.predict(trunk)
            targets = part_targets(fg, logits.shape[-1])
            losses = {"loss_part": self.loss_weight * part_loss(logits, targets, self.class_weights)}
            if self.keypoint_predictor is not None:
                losses["loss_keypoint"] = self._keypoint_loss(self._keypoint_heatmaps(trunk, logits.shape[-1]), fg)
            return losses
        trunk = self.head.trunk(self.pooler(feats, [x.pred_boxes for x in instances]))
        logits = self.head.predict(trunk)
        part_inference(logits, instances)
        if self.keypoint_predictor is not None:
            keypoint_rcnn_inference(self._keypoint_heatmaps(trunk, logits.shape[-1]), instances)
        if self.silhouette_from_parts:
            for inst in instances:
                inst.pred_masks = 1.0 - inst.pred_part_masks[:, :1]
        return instances

    def _keypoint_heatmaps(self, trunk: torch.Tensor, size: int) -> torch.Tensor:
        """(R, D, P, P) trunk features -> (R, K, size, size) keypoint logits."""
        x = self.keypoint_predictor(trunk)
        return interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    @staticmethod
    def _keypoint_loss(heatmaps: torch.Tensor, instances: List[Instances]) -> torch.Tensor:
        with_kps = [i for i in instances if i.has("gt_keypoints")]
        if len(with_kps) != len(instances) or heatmaps.shape[0] == 0:
            # a batch without keypoint ground truth: zero, connected to the graph (DDP-safe)
            return heatmaps.sum() * 0
        return keypoint_rcnn_loss(heatmaps, instances, normalizer=None)


class BodyPartHeadsMixin:
    """Adds the part branch to a Detectron2 ROI-heads class (see the module docstring).

    The host's ``forward`` runs first (boxes, masks, keypoints); in training the mixin then trains
    the part branch on the same sampled proposals, in inference ``forward_with_given_boxes`` adds
    the part outputs to the detections. With ``MODEL.BODYPART_ON: False`` it does nothing.
    """

    @configurable
    def __init__(self, *, part_branch: Optional[BodyPartBranch] = None, **kwargs):
        super().__init__(**kwargs)
        self.part_on = part_branch is not None
        self.part_branch = part_branch

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(cls._init_part_head(cfg, input_shape))
        return ret

    @classmethod
    def _init_part_head(cls, cfg, input_shape) -> dict:
        return {"part_branch": BodyPartBranch(cfg, input_shape) if cfg.MODEL.BODYPART_ON else None}

    def _forward_part(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        """Training: ``{"loss_part": ...}``; inference: ``instances`` with the part outputs."""
        if not self.part_on:
            return {} if self.training else instances
        return self.part_branch(features, instances, num_classes=self.num_classes)

    def forward(self, images, features, proposals, targets=None):
        if self.training:
            proposals, losses = super().forward(images, features, proposals, targets)
            losses.update(self._forward_part(features, proposals))
            return proposals, losses
        return super().forward(images, features, proposals, targets)  # calls forward_with_given_boxes

    def forward_with_given_boxes(self, features, instances):
        instances = super().forward_with_given_boxes(features, instances)
        return self._forward_part(features, instances)
